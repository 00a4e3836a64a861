"""The credit report (信用报告) and what is under publicity (公示) at an instant (RULES.md 3-5, 7).

``publicity(state, at, rules)`` answers, for one subject, which of its penalties and licences (the 双公示
records) and its other publicised actions (RULES.md 2: the Henan rules extend publicity to ten kinds of
action, 十公示) are under publicity at the instant ``at`` and which have been withdrawn from it by then
(终止公示), with the date and the reason:

* a penalty is published from its decision date to the end of its publicity period (the facts the
  rules core keeps per record, ``state["facts"][key]["pub"]``: the maximum of its tier, or the
  approval date of a credit repair, RULES.md 3); withdrawn then, by ``expiry`` or ``repair``;
* a licence is published from its decision date while in force: to its ``valid_to`` date when it
  has one, that day included (有效期至 is its last valid day; withdrawn the day after, by
  ``expiry``), else for as long as it stands (also when valid to 2099-12-31, indefinite);
* another action (强制, 确认, 征收, 给付, 裁决, 补偿, 奖励, 检查: ``kind`` ``action``, its ``action_kind`` in
  ``details``) is published from its decision date; one with an adverse finding (``adverse``: negative
  information) for at most ``henan_max_disclosure_years`` (the Henan regulation's cap on disclosing
  negative information, RULES.md 3; withdrawn then, by ``expiry``), any other for as long as it stands;
* a record revoked by its department (a newer version marked revoked) is withdrawn on the date of
  that version (``revoked``); one an upheld objection revoked, on the resolution date
  (``objection``); but a record whose publicity had already ended (``expiry``, ``repair``) before
  it was revoked left publicity then, and the revocation does not publish it again in between.
  A record decided after the instant is not yet published. At an instant before a repair, a
  revocation or an upheld objection, the end shown is that of the record's own period: the later
  decision was not known then (RULES.md 3a).

``credit_report(state, at, ...)`` assembles the report of one subject at an instant: identity, the
records under publicity and withdrawn, the lists held then (domain/memberships.py) and the list
history up to then, objections and repairs known then, the red list, the rules versions, the
report's time. ``seal(content)`` adds the content hash: SHA-256 of the canonical JSON of the
content (:func:`canonical_json`: keys sorted, no whitespace, UTF-8, non-ASCII as is), which
``creditstream report-verify`` recomputes (:func:`verify`). The caller redacts the content for a
reader without the personal role (domain/privacy.py) BEFORE sealing it, so the hash covers what
was served.

Pure: no I/O, no clock (the caller chooses the instant and gives the report's time).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final, cast

import msgspec

from domain.calendar import add_years
from domain.clock import date_of_ms
from domain.facts import earliest_repair, objection_index, penalty_dates, penalty_publicity, repair_out_of_force
from domain.memberships import DOMAIN_KINDS, Membership, day_of, intervals, memberships_at
from domain.rulebook import Rulebook
from domain.state import SubjectState, repair_decisions
from domain.types import Doc, View

__all__ = [
    "REPORT_FORMAT",
    "HASH_ALGORITHM",
    "PUBLIC_KINDS",
    "PublicRecord",
    "Publicity",
    "publicity",
    "credit_report",
    "canonical_json",
    "content_hash",
    "seal",
    "verify",
    "BadReport",
]

REPORT_FORMAT: Final = "creditstream.credit-report/1"
HASH_ALGORITHM: Final = "sha256"
PUBLIC_KINDS: Final = ("penalty", "license", "action")
"""The record kinds the disclosure publishes: the double publicity (双公示) of penalties and licences, and
the other eight kinds of action the Henan rules publicise (十公示, RULES.md 2)."""
WITHDRAWAL_REASONS: Final = ("expiry", "repair", "revoked", "objection")

_DETAIL_FIELDS: Final = {
    # kind -> (the detail's name, the record field it is read from)
    "penalty": tuple((f, f) for f in ("violation_type", "penalty_category", "penalty_content", "legal_basis",
                                      "fine_amount", "confiscated_amount", "deciding_authority")),
    "license": tuple((f, f) for f in ("doc_name", "certificate_name", "license_no", "license_category", "content",
                                      "valid_from", "valid_to", "licensing_authority")),
    "action": (("action_content", "content"), ("result", "result"), ("adverse", "adverse"),
               ("deciding_authority", "deciding_authority")),
}


class BadReport(ValueError):
    """A document that is not a sealed credit report (report-verify exits 1 with this message)."""


class PublicRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A penalty, licence or other action as the disclosure and the report show it, at an instant."""

    record_key: str
    kind: str                      # penalty / license / action (details["action_kind"] says which)
    doc_no: str | None
    source_unit: str | None
    source_unit_code: str | None
    decision_date: str
    severity: str | None
    domain: str | None
    details: dict[str, str]        # the published fields of its kind (violation, content, licence no., ...)
    published_from: str            # the decision date
    published_until: str | None    # the end the rules give, the day publicity ends (a licence: the day
                                   # after its valid_to); None: no end known
    repair_from: str | None        # penalties: the earliest date a credit repair may be approved
    state: str                     # published / repair_eligible / withdrawn
    withdrawn_on: str | None       # the date publicity ended (终止公示), on or before the instant
    withdrawn_by: str | None       # expiry / repair / revoked / objection
    disputed_by: str | None        # an objection pending on it at the instant


class Publicity(msgspec.Struct, frozen=True, kw_only=True):
    at: str
    published: tuple[PublicRecord, ...]   # under publicity at the instant
    withdrawn: tuple[PublicRecord, ...]   # publicity ended on or before the instant (终止公示)


def _details(kind: str, entry: View, content: View) -> dict[str, str]:
    fields = content.get("fields") or {}
    out = {}
    if kind == "action":
        action_kind = entry.get("action_kind") or content.get("action_kind")
        if action_kind:
            out["action_kind"] = str(action_kind)
    for name, field in _DETAIL_FIELDS.get(kind, ()):
        value = fields.get(field)
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif value is not None and value != "":
            out[name] = str(value)
    return out


def _disputed_by(state: View, key: str, day: str) -> str | None:
    for oid, o in sorted((state.get("objections") or {}).items()):
        if o.get("record_key") == key and o.get("filed") and o["filed"] <= day \
                and (o.get("resolved") is None or day < o["resolved"]):
            return str(oid)
    return None


def _revoked_by_objection(state: View, key: str) -> str | None:
    """The resolution date of an upheld objection that revoked the record, if any."""
    dates = [str(o["resolved"]) for o in (state.get("objections") or {}).values()
             if o.get("record_key") == key and o.get("status") == "upheld" and o.get("outcome") == "revoked"
             and o.get("resolved")]
    return min(dates) if dates else None


INDEFINITE: Final = "2099-12-31"
"""A licence valid to this date (or later) is valid indefinitely (RULES.md 2: "2099-12-31 means
indefinite"): it has no end of publicity."""


def _licence_end(content: View) -> str | None:
    """The date a licence's publicity ends (it is withdrawn, 终止公示): the day after its
    ``valid_to`` (有效期至, the last day it is valid, included: it is published on that day too);
    None while it has no end (no ``valid_to``, or valid to 2099-12-31 or later: indefinite)."""
    valid_to = (content.get("fields") or {}).get("valid_to")
    if not valid_to:
        return None
    last = str(valid_to)
    if last >= INDEFINITE:
        return None
    try:
        return (dt.date.fromisoformat(last[:10]) + dt.timedelta(days=1)).isoformat()
    except ValueError:  # not a date (validation gives ISO dates): the day after is unknown, keep the text
        return last


def _natural_window(state: View, key: str, entry: View, content: View,
                    rules: Rulebook) -> tuple[str | None, str | None, str | None] | None:
    """(until, repair_from, end reason) of a revoked record's publicity had it not been revoked:
    a penalty's period (the tier's maximum, or a repair), a licence's ``valid_to`` (ending the day after),
    an adverse action's cap (:func:`_own_end`)."""
    if entry.get("kind") == "penalty":
        pub = penalty_publicity(entry, (state.get("repairs") or {}).get(key), rules)
        return (pub[1].isoformat(), pub[0].isoformat(), pub[2]) if pub is not None else None
    valid_to = _own_end(entry, content, rules)
    return (valid_to, None, "expiry") if valid_to else None


def _window(state: View, key: str, entry: View, content: View,
            rules: Rulebook) -> tuple[str | None, str | None, str | None] | None:
    """(until, repair_from, end reason) of one record's publicity; None: it is not published at all."""
    kind = entry.get("kind")
    decided = entry.get("decision_date") or content.get("decision_date")
    if not decided:
        return None
    revoked: tuple[str, str] | None = None
    objection = _revoked_by_objection(state, key)
    if objection is not None:
        revoked = objection, "objection"
    elif content.get("revoked"):
        # dated by the department's stamp of the revoking version (its first sighting), not by the
        # entry's latest update, which a re-sent copy or any later version moves (RULES.md 2, 3a)
        seen = (entry.get("versions") or {}).get(entry.get("hash") or "")
        stamp = seen[0] if seen else entry.get("updated_ms")
        revoked = (date_of_ms(int(stamp)) if stamp else str(decided)), "revoked"
    if revoked is not None:
        # a record whose publicity had ended (expiry, repair) before it was revoked left it then:
        # the revocation does not make it published again in between
        natural = _natural_window(state, key, entry, content, rules)
        if natural is not None and natural[0] is not None and natural[0] < revoked[0]:
            return natural
        return revoked[0], None, revoked[1]
    if kind == "penalty":
        facts = (state.get("facts") or {}).get(key) or {}
        pub = facts.get("pub")
        if not pub:
            return None
        start, end, leave = pub[0], pub[1], pub[2]
        return str(end), str(start), "repair" if leave == "repair" else "expiry"
    valid_to = _own_end(entry, content, rules)
    return (valid_to, None, "expiry") if valid_to else (None, None, None)


def _natural_end(entry: View, content: View, rules: Rulebook) -> tuple[str | None, str | None]:
    """(until, repair_from) of a record's publicity by its own period alone, before any repair,
    revocation or objection: a penalty's tier maximum and minimum, a licence's ``valid_to`` (the day
    after)."""
    if entry.get("kind") == "penalty":
        dates = penalty_dates(entry, rules)
        return (dates[1].isoformat(), dates[0].isoformat()) if dates is not None else (None, None)
    return _own_end(entry, content, rules), None


def _own_end(entry: View, content: View, rules: Rulebook) -> str | None:
    """The day a licence's or an action's publicity ends by itself (the day it is withdrawn); None:
    no end. A licence: the day after its ``valid_to``. An action with an adverse finding (negative
    information): its decision date plus ``henan_max_disclosure_years``; any other action: none."""
    if entry.get("kind") != "action":
        return _licence_end(content)
    if not (content.get("fields") or {}).get("adverse"):
        return None
    decided = str(entry.get("decision_date") or content.get("decision_date") or "")
    try:
        return add_years(dt.date.fromisoformat(decided[:10]), rules.henan_max_disclosure_years).isoformat()
    except ValueError:  # not a date (validation gives ISO dates): no end known
        return None


def publicity(state: SubjectState | View, at: dt.date | dt.datetime | str, rules: Rulebook) -> Publicity:
    """The subject's penalties, licences and other actions under publicity at ``at``, and those withdrawn by then
    (module docstring), each list by decision date then record key. ``rules``: the rule set in force
    (the publicity period a revoked penalty had)."""
    day = day_of(at)
    published: list[PublicRecord] = []
    withdrawn: list[PublicRecord] = []
    for key, entry in sorted((state.get("records") or {}).items()):
        kind = entry.get("kind")
        content = entry.get("content")
        if kind not in PUBLIC_KINDS or not isinstance(content, Mapping):
            continue
        window = _window(state, key, entry, content, rules)
        decided = str(entry.get("decision_date") or content.get("decision_date") or "")
        if window is None or decided > day:
            continue
        until, repair_from, reason = window
        ended = until is not None and until <= day
        if not ended and reason != "expiry":
            # a repair, a revocation or an upheld objection after the instant was not known then
            # (RULES.md 3a: a decision takes effect on its date): the end the rules gave then
            until, repair_from = _natural_end(entry, content, rules)
        record = PublicRecord(
            record_key=key, kind=str(kind), doc_no=entry.get("doc_no"), source_unit=entry.get("source_unit"),
            source_unit_code=entry.get("source_unit_code"), decision_date=decided, severity=entry.get("severity"),
            domain=entry.get("domain"), details=_details(str(kind), entry, content), published_from=decided,
            published_until=until, repair_from=repair_from,
            state="withdrawn" if ended else "repair_eligible" if repair_from is not None and repair_from <= day
            else "published",
            withdrawn_on=until if ended else None, withdrawn_by=reason if ended else None,
            disputed_by=None if ended else _disputed_by(state, key, day))
        (withdrawn if ended else published).append(record)
    return Publicity(at=day, published=tuple(sorted(published, key=_order)),
                     withdrawn=tuple(sorted(withdrawn, key=_order)))


def _order(r: PublicRecord) -> tuple[str, str]:
    return r.decision_date, r.record_key


# ------------------------------------------------------------------------------------ the report


def _builtins(obj: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(obj))


def _record_summary(state: View, key: str) -> Doc:
    entry = (state.get("records") or {}).get(key) or {}
    content = entry.get("content") or {}
    fields = content.get("fields") or {}

    def pick(name: str) -> Any:
        value = entry.get(name)
        return value if value is not None else content.get(name)

    return {"record_key": key, "kind": pick("kind"), "doc_no": pick("doc_no"), "source_unit": pick("source_unit"),
            "decision_date": pick("decision_date"), "domain": pick("domain") or fields.get("list_domain"),
            "severity": pick("severity"), "status": entry.get("status"), "via": entry.get("via")}


def _objections(state: View, day: str) -> list[Doc]:
    out = []
    for oid, o in sorted((state.get("objections") or {}).items()):
        filed = o.get("filed")
        if not filed or filed > day:
            continue
        resolved = o.get("resolved")
        known = resolved is not None and resolved <= day
        out.append({"objection_id": str(oid), "record_key": o.get("record_key"), "filed": filed,
                    "status": o.get("status") if known else "filed", "resolved": resolved if known else None,
                    "outcome": o.get("outcome") if known else None,
                    "provider_verification": bool(o.get("provider_verification"))})
    return out


def _repairs(state: View, day: str, rules: Rulebook) -> list[Doc]:
    """Every credit-repair decision known at the instant (approved on or before it), by record, then
    earliest approval first: whether it granted the repair, and whether it is the one that ended the
    record's publicity and lists (``applied``) or why not, as the rules' evaluation gives it
    (domain/history.py): ``not-granted``, ``before-earliest``, ``record-out-of-force``, the record's
    own (``record-not-active``, ``court-listing``, ...), or ``repaired-earlier`` (an earlier grant
    applied)."""
    records = state.get("records") or {}
    slots = state.get("repairs") or {}
    corrected_by = objection_index(cast(SubjectState, state))["corrected_by"] if slots else {}
    out = []
    for key, slot in sorted(slots.items()):
        entry = records.get(key)
        earliest, reason = earliest_repair(entry, rules)
        applied = False
        for decision in repair_decisions(slot):
            approved = decision.get("approved")
            if not approved or str(approved) > day:
                continue
            why: str | None
            if not decision.get("granted"):
                why = "not-granted"
            elif applied:
                why = "repaired-earlier"
            elif earliest is None:
                why = reason
            elif dt.date.fromisoformat(str(approved)[:10]) < earliest:
                why = "before-earliest"
            elif repair_out_of_force(entry, corrected_by.get(key), str(approved)):
                why = "record-out-of-force"
            else:
                why, applied = None, True
            out.append({"record_key": key, "approved": approved, "granted": bool(decision.get("granted")),
                        "doc_no": decision.get("doc_no"), "applied": why is None, "reason": why})
    return out


def _stay_then(state: View, m: Membership, day: str, known: str) -> Doc:
    """One stay of the list history as it stood at the instant ``day`` (it began on or before it):
    nothing that happened after the instant shows. An exit after it is null (and what caused it);
    a suspension that began after it is left out, and one that ended after it is open (no end,
    nothing that ended it); the records it rests on are those listed by then. ``exit_projected``:
    the stay's end lies after ``known`` (as the lists' ``until_projected``)."""
    exited = m.exited if m.exited is not None and m.exited <= day else None
    suspensions = [{"since": x.since, "until": x.until if x.until is not None and x.until <= day else None,
                    "objection": x.objection,
                    "ended_by": _builtins(x.ended_by) if x.until is not None and x.until <= day else None}
                   for x in m.suspensions if x.since <= day]
    causes = m.causes
    facts = state.get("facts")
    if m.kind in DOMAIN_KINDS and isinstance(facts, Mapping):
        listed = {key for key in m.causes
                  if any(c[0] == m.kind and c[1] == m.domain and c[2] <= day
                         for c in (facts.get(key) or {}).get("cands") or ())}
        causes = tuple(key for key in m.causes if key in listed) or causes
    stay: Doc = _builtins(m)
    return stay | {"exited": exited, "exited_by": _builtins(m.exited_by) if exited is not None else None,
                   "entry_projected": m.entered > known, "exit_projected": m.exited is not None and m.exited > known,
                   "suspensions": suspensions, "causes": list(causes)}


def credit_report(state: SubjectState | Doc, at: dt.date | dt.datetime | str, *, rules_version: str,
                  generated_at: str, rules: Rulebook) -> Doc:
    """The content of the subject's credit report at the instant ``at`` (module docstring), as JSON
    data. ``generated_at``: the report's time (ISO 8601), part of the sealed content. ``rules``: as
    for :func:`publicity`."""
    day = day_of(at)
    # what the report knows: up to the instant, or up to the subject's clock if that is earlier; a
    # date after it is projected (expected, not yet happened then), for the lists held then and the
    # list history alike
    as_of = state.get("as_of")
    known = min(day, str(as_of)) if as_of else day
    standing = memberships_at(state, day, rules)
    pub = publicity(state, day, rules)
    history = [m for m in intervals(state) if m.entered <= day]
    red = standing.get("red_list")
    names = [str(n) for n in state.get("names") or ()]
    keys = sorted({k for s in standing.lists for k in s.causes})
    return {
        "format": REPORT_FORMAT,
        "subject": {"id": state.get("id"), "id_kind": state.get("id_kind"), "name": names[-1] if names else None,
                    "names": names, "category": state.get("category"), "ids": dict(state.get("ids") or {})},
        "at": day,
        "as_of": state.get("as_of"),
        "projected": standing.projected,
        "generated_at": generated_at,
        "rules_version": rules_version,
        "lists_rules_version": standing.rules_version,
        "publicity": {"published": _builtins(pub.published), "withdrawn": _builtins(pub.withdrawn)},
        "lists": [_builtins(s) | {"until_projected": s.until is not None and s.until > known} for s in standing.lists],
        "list_records": [_record_summary(state, k) for k in keys],
        "list_history": [_stay_then(state, m, day, known) for m in history],
        "red_list": {"listed": red is not None, "since": red.since if red else None,
                     "until": red.until if red else None},
        "objections": _objections(state, day),
        "repairs": _repairs(state, day, rules),
    }


# ------------------------------------------------------------------------------------ the hash


def canonical_json(obj: Any) -> bytes:
    """The canonical form the content hash is taken of: JSON with object keys sorted, no whitespace,
    non-ASCII characters as they are, UTF-8. Integers, strings, booleans, null, lists and objects
    only (no floats in a report: a float's text form is not canonical across languages)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def content_hash(content: Any) -> str:
    """``sha256:`` + the hex SHA-256 of :func:`canonical_json` of ``content``."""
    return f"{HASH_ALGORITHM}:{hashlib.sha256(canonical_json(content)).hexdigest()}"


def seal(content: Doc) -> Doc:
    """The report as served: ``{"content": ..., "content_hash": "sha256:<hex>"}``."""
    return {"content": content, "content_hash": content_hash(content)}


def verify(document: Any) -> tuple[bool, str]:
    """Recompute a sealed report's hash: (True, hash) if it matches, (False, why) if not. Raises
    :class:`BadReport` for a document that is no sealed credit report."""
    if not isinstance(document, Mapping) or "content" not in document or "content_hash" not in document:
        raise BadReport("not a sealed credit report: a JSON object with content and content_hash is expected")
    content, claimed = document["content"], document["content_hash"]
    if not isinstance(content, Mapping) or content.get("format") != REPORT_FORMAT:
        raise BadReport(f"not a credit report of format {REPORT_FORMAT}")
    if not isinstance(claimed, str) or not claimed.startswith(HASH_ALGORITHM + ":"):
        raise BadReport(f"content_hash must be {HASH_ALGORITHM}:<64 hex digits>")
    try:
        actual = content_hash(content)
    except ValueError as exc:
        raise BadReport(f"the content cannot be put in canonical form: {exc}") from None
    if actual == claimed.lower():
        return True, actual
    return False, f"the content hashes to {actual}, the report claims {claimed}"
