"""The credit check (应查必查): which measures apply to a subject, for a matter, at an instant.

``check(state, matter, at, rules)`` answers, from the subject's state alone (its as-of history,
domain/memberships.py) and the rulebook's measures catalogue (``[[measure]]`` in the rules file):

* ``outcome``: ``restricted`` (a prohibit / restrict measure applies), ``review`` (only extra
  review conditions apply), ``suspended`` (measures would apply, but every list they rest on is
  suspended by a pending objection, RULES.md 5), ``incentive`` (red list: green channel, priority,
  bonus points, fewer inspections), ``clear`` (nothing applies), ``no_record`` (no state: the
  subject is unknown to the processor; ``code_problem`` says why no subject can have a malformed
  code, such as a USCC whose check character does not match);
* ``measures`` that apply, ``suspended`` measures, ``incentives``: each with its id, effect,
  descriptions, policy source and the lists that trigger it at that instant;
* ``basis``: those lists at that instant (entry and expected exit, suspended or not, by which
  objection) and the records in force they rest on (record key, kind, document number, unit,
  decision date, domain; whether a pending objection disputes it then). A record whose listing
  ended (publicity or listing expired, repaired, deleted, removed) is not a basis after that date.

Escalation (blacklists of two or more domains) adds its own, heavier measures to the domain ones.
An instant after the subject's clock is answered from the timeline and flagged ``projected``.

The result is a msgspec Struct: ``msgspec.json.encode(result)`` is the JSON an endpoint returns as
is (``to_builtins(result)``: the same as plain data). Pure: no I/O; the caller reads the state and chooses the instant.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import msgspec

from domain.identifiers import code_problem
from domain.memberships import ListSpan, ListStanding, Standing, day_of, memberships_at
from domain.rulebook import Measure, Rulebook
from domain.state import SubjectState
from domain.types import Doc

__all__ = ["OUTCOMES", "UnknownMatter", "RecordBasis", "ListBasis", "AppliedMeasure", "CheckResult", "check",
           "to_builtins"]

OUTCOMES: Final = ("restricted", "review", "suspended", "incentive", "clear", "no_record")
PUNISHMENT: Final = frozenset(("prohibit", "restrict"))


class UnknownMatter(ValueError):
    """A check for a matter the rules' catalogue does not know."""


class RecordBasis(msgspec.Struct, frozen=True, kw_only=True):
    """A record a list rests on, as the check reports it (no personal names)."""

    record_key: str
    kind: str | None
    doc_no: str | None
    source_unit: str | None
    source_unit_code: str | None
    decision_date: str | None
    domain: str | None
    severity: str | None
    listing_reason: str | None   # court listings: e.g. refuse_with_ability
    via: str | None              # a linked record: the organisation it came from
    disputed_by: str | None      # an objection pending on this record at the instant


class ListBasis(ListSpan, frozen=True, kw_only=True):
    """A list the subject is on at the instant that triggers a measure of the matter, with the
    records it rests on."""

    records: tuple[RecordBasis, ...]


class AppliedMeasure(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    effect: str
    description_zh: str
    description_en: str
    source: str
    triggered_by: tuple[str, ...]   # the lists (at the instant) that trigger it


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    subject: str | None
    matter: str
    matter_zh: str
    matter_en: str
    at: str                      # the China date of the instant
    outcome: str                 # one of OUTCOMES
    measures: tuple[AppliedMeasure, ...]     # apply at the instant
    suspended: tuple[AppliedMeasure, ...]    # would apply; suspended by a pending objection
    incentives: tuple[AppliedMeasure, ...]
    basis: tuple[ListBasis, ...]
    as_of: str | None            # the subject's clock: what the state knows up to
    projected: bool              # at is after as_of
    rules_version: str           # the catalogue's (rulebook's) version
    lists_rules_version: str | None  # the rulebook version the subject's lists were derived with
    code_problem: str | None = None  # no_record: why no subject can have the code (identifiers.code_problem)


def to_builtins(result: CheckResult) -> Doc:
    """The result as plain JSON data (dicts, lists, strings, booleans, None)."""
    out: Doc = msgspec.json.decode(msgspec.json.encode(result))
    return out


def check(state: SubjectState | Doc | None, matter: str, at: dt.date | dt.datetime | str, rules: Rulebook,
          *, subject: str | None = None) -> CheckResult:
    """Which measures of ``matter`` apply to the subject at ``at``. ``state`` None: the subject is
    unknown (``subject`` names it in the answer). Raises :class:`UnknownMatter` for a matter not
    in the catalogue, ``ValueError`` for an instant that is not a date or date-time."""
    info = rules.matters.get(matter)
    if info is None:
        raise UnknownMatter(f"unknown matter {matter!r} (rules version {rules.version}; known: "
                            f"{', '.join(sorted(rules.matters)) or 'none: the rules file has no [matter.*]'})")
    day = day_of(at)
    catalogue = rules.measures_for(matter)
    if state is None:
        return CheckResult(subject=subject, matter=matter, matter_zh=info.zh, matter_en=info.en, at=day,
                           outcome="no_record", measures=(), suspended=(), incentives=(), basis=(), as_of=None,
                           projected=False, rules_version=rules.version, lists_rules_version=None,
                           code_problem=code_problem(subject) if subject is not None else None)
    standing = memberships_at(state, day, rules)
    applied: list[AppliedMeasure] = []
    suspended: list[AppliedMeasure] = []
    incentives: list[AppliedMeasure] = []
    used: set[str] = set()
    for measure in catalogue:
        active, held = _triggers(measure, standing, state)
        if not active:
            continue
        used.update(active)
        entry = _applied(measure, held or active)
        if measure.effect == "incentive":
            incentives.append(entry)
        elif held:
            applied.append(entry)
        else:
            suspended.append(entry)
    effects = {m.effect for m in applied}
    outcome = ("restricted" if effects & PUNISHMENT else "review" if "review" in effects
               else "suspended" if suspended else "incentive" if incentives else "clear")
    basis = tuple(_list_basis(s, state, day) for s in standing.lists if s.list in used)
    return CheckResult(subject=standing.subject or subject, matter=matter, matter_zh=info.zh, matter_en=info.en,
                       at=day, outcome=outcome, measures=tuple(applied), suspended=tuple(suspended),
                       incentives=tuple(incentives), basis=basis, as_of=standing.as_of,
                       projected=standing.projected, rules_version=rules.version,
                       lists_rules_version=standing.rules_version)


def _applied(measure: Measure, lists: list[str]) -> AppliedMeasure:
    return AppliedMeasure(id=measure.id, effect=measure.effect, description_zh=measure.description_zh,
                          description_en=measure.description_en, source=measure.source,
                          triggered_by=tuple(sorted(set(lists))))


def _triggers(measure: Measure, standing: Standing, state: SubjectState | Doc) -> tuple[list[str], list[str]]:
    """(lists at the instant that trigger the measure, those of them not suspended)."""
    active: list[str] = []
    held: list[str] = []
    for trigger in measure.lists:
        head, _, tail = trigger.partition(":")
        for s in standing.lists:
            if (head == "blacklist" and s.kind == "blacklist" and (not tail or s.domain == tail)) \
                    or (not tail and head == s.list and head in ("court_debtor", "escalated", "red_list")):
                active.append(s.list)
                if not s.suspended:
                    held.append(s.list)
            elif head == "court_debtor" and tail and s.kind == "court_debtor":
                # a listing with that reason, in force at the instant; suspended if the list is or
                # if every such listing is disputed
                reasons = [(k, _disputed_by(state, k, standing.at)) for k in s.causes
                           if _fields(state, k).get("listing_reason") == tail]
                if reasons:
                    active.append(s.list)
                    if not s.suspended and any(d is None for _, d in reasons):
                        held.append(s.list)
    return active, held


def _fields(state: SubjectState | Doc, key: str) -> Doc:
    entry = (state.get("records") or {}).get(key) or {}
    fields: Doc = (entry.get("content") or {}).get("fields") or {}
    return fields


def _disputed_by(state: SubjectState | Doc, key: str, day: str) -> str | None:
    """The objection pending on the record at ``day`` (filed on or before it, not yet resolved)."""
    for oid, o in sorted((state.get("objections") or {}).items()):
        if o.get("record_key") != key or not o.get("filed") or o["filed"] > day:
            continue
        if o.get("resolved") is None or day < o["resolved"]:
            return str(oid)
    return None


def _list_basis(s: ListStanding, state: SubjectState | Doc, day: str) -> ListBasis:
    records = tuple(_record_basis(k, state, day) for k in s.causes)
    span = {f: getattr(s, f) for f in ListSpan.__struct_fields__}
    return ListBasis(**span, records=records)


def _record_basis(key: str, state: SubjectState | Doc, day: str) -> RecordBasis:
    entry: Any = (state.get("records") or {}).get(key) or {}
    content = entry.get("content") or {}
    fields = content.get("fields") or {}

    def pick(name: str) -> Any:
        value = entry.get(name)
        return value if value is not None else content.get(name)

    reason = fields.get("listing_reason")
    return RecordBasis(
        record_key=key, kind=pick("kind"), doc_no=pick("doc_no"), source_unit=pick("source_unit"),
        source_unit_code=pick("source_unit_code"), decision_date=pick("decision_date"),
        domain=pick("domain") or fields.get("list_domain"),
        severity=pick("severity"), listing_reason=reason if isinstance(reason, str) else None,
        via=entry.get("via"), disputed_by=_disputed_by(state, key, day))
