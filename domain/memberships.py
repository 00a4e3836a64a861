"""A subject's list memberships as intervals, and its standing at any instant (as-of history).

The rules already derive every list change of a subject, dated by the decision that causes it and
independent of arrival (domain/history.py), and the state keeps all of them, past and projected:
``state["timeline"]["lists"]`` (list name -> changes). Nothing is cut off there: the history up to
the subject's clock (``as_of``) is the part of it effective on or before ``as_of``, and the rest is
what the rules expect from the inputs known now (expiries, red-list entries). This module reads that
timeline back as intervals:

* ``intervals(state)``: every membership (blacklist per domain, court debtors, escalation, red
  list) with its entry and exit dates and causes, its suspensions (the objection that began each
  one and what ended it), the records it rests on and the rules version it was derived with;
* ``memberships_at(state, at)``: the lists the subject is on at an instant, whether each is
  suspended then, and the records in force then that each rests on (the per-record facts the state
  keeps, ``state["facts"]``: a record whose listing ended by repair, expiry or deletion is no longer
  a basis after that date, even while another record keeps the list).

An instant after the subject's clock is answered from the timeline too, but flagged ``projected``:
it is what the rules give if no further input arrives. Dates are China dates (domain/clock.py); a
change effective on a date holds from 00:00 China time of that date. Pure: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Final, cast

import msgspec

from domain.clock import CHINA
from domain.facts import list_ends_at
from domain.rulebook import Rulebook
from domain.state import SubjectState
from domain.types import Doc

__all__ = [
    "MEMBERSHIP_KINDS",
    "Cause",
    "Suspension",
    "Membership",
    "ListStanding",
    "Standing",
    "day_of",
    "intervals",
    "memberships_at",
    "ends_then",
    "records_in_force",
]

MEMBERSHIP_KINDS: Final = ("blacklist", "court_debtor", "escalated", "red_list")
DOMAIN_KINDS: Final = frozenset(("blacklist", "court_debtor"))
_ENTRY: Final = frozenset(("entered", "escalated", "red_list_entered"))
_EXIT: Final = frozenset(("exited", "de-escalated", "red_list_exited"))
_FLIPS: Final = frozenset(("suspended", "resumed"))
# within one date: a membership's exit, then an entry, then its suspensions (history.py orders
# "suspended" before "entered" on the same date, which reads back the wrong way round)
_RANK: Final = {**{t: 0 for t in _EXIT}, **{t: 1 for t in _ENTRY}, "suspended": 2, "resumed": 2}


class Cause(msgspec.Struct, frozen=True):
    """Why a list change happened: its cause kind (listing, record, expiry, deletion, repair,
    removal, objection_filed, objection_resolved, ...) and the decision (a record key, an
    objection id, a court deletion), as on the list-change topic (docs/events.md)."""

    kind: str
    decision: str | None


class Suspension(msgspec.Struct, frozen=True, kw_only=True):
    """A stretch of a membership during which its measures are suspended by an objection."""

    since: str
    until: str | None        # None: suspended until the membership ends
    objection: str | None    # the objection whose filing began it (None: escalation, derived)
    ended_by: Cause | None   # objection_resolved + the objection id, record, or exited


class Membership(msgspec.Struct, frozen=True, kw_only=True):
    """One stay of a subject on one list."""

    list: str                # blacklist:<domain>, court_debtor, escalated, red_list
    kind: str                # one of MEMBERSHIP_KINDS
    domain: str | None
    entered: str
    exited: str | None       # None: no end the rules know of (e.g. a court debtor able but refusing)
    entered_by: Cause
    exited_by: Cause | None
    entry_projected: bool    # entered after the subject's clock (e.g. a red list three years on)
    exit_projected: bool     # the exit lies after the subject's clock: expected, not yet happened
    suspensions: tuple[Suspension, ...]
    # the records (decision keys) it rests on: a blacklist's or court debtors', every one of its
    # stay (from the per-record facts); an escalation's, those its entry names
    causes: tuple[str, ...]
    rules_version: str | None  # the rulebook version the timeline was derived with

    def covers(self, day: str) -> bool:
        return self.entered <= day and (self.exited is None or day < self.exited)

    def suspension_at(self, day: str) -> Suspension | None:
        if not self.covers(day):
            return None
        for s in self.suspensions:
            if s.since <= day and (s.until is None or day < s.until):
                return s
        return None


class ListSpan(msgspec.Struct, frozen=True, kw_only=True):
    """A list the subject is on at an instant: which, since and until when, whether suspended."""

    list: str
    kind: str
    domain: str | None
    since: str
    until: str | None
    until_projected: bool
    suspended: bool
    objection: str | None    # the objection that suspended it (blacklists, court debtors)
    lists: tuple[str, ...]   # escalated: the domain lists it rests on at the instant; otherwise ()


class ListStanding(ListSpan, frozen=True, kw_only=True):
    """A list the subject is on at an instant, with the keys of the records it rests on."""

    causes: tuple[str, ...]  # the records in force at the instant it rests on


class Standing(msgspec.Struct, frozen=True, kw_only=True):
    """A subject's lists at one instant."""

    subject: str
    at: str                  # the China date of the instant asked about
    as_of: str | None        # the subject's clock: what the state knows up to
    projected: bool          # at is after as_of: what the rules expect, not yet happened
    rules_version: str | None
    lists: tuple[ListStanding, ...]

    def get(self, name: str) -> ListStanding | None:
        return next((s for s in self.lists if s.list == name), None)


# ------------------------------------------------------------------------------------ instants


_EXTENDED_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}(?:$|[T ])")
"""An instant's text begins with its date in the extended form (YYYY-MM-DD)."""


def day_of(at: dt.date | dt.datetime | str) -> str:
    """The China date (ISO) of an instant: a date as is; a datetime in China time (a naive one is
    taken to be China time already); a string in ISO form (a date, or a date and time)."""
    if isinstance(at, str):
        text = at.strip()
        try:
            if not _EXTENDED_DATE.match(text):  # Python's parser takes 18 digits (an ID number) as 4101-05-19
                raise ValueError(text)
            if len(text) == 10:
                return dt.date.fromisoformat(text).isoformat()
            at = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a date or date-time in ISO form (YYYY-MM-DD[THH:MM[:SS][+08:00]]): "
                             f"{text[:40]!r}") from None
    if isinstance(at, dt.datetime):
        if at.tzinfo is not None:
            try:
                at = at.astimezone(CHINA)
            except OverflowError:  # 9999-12-31T23:00-12:00 is past the last date a datetime holds
                raise ValueError(f"{at.isoformat()} in China time is outside the years 1-9999") from None
        return at.date().isoformat()
    if isinstance(at, dt.date):
        return at.isoformat()
    raise TypeError(f"an instant is a date, a datetime or an ISO string, not {type(at).__name__}")


# ------------------------------------------------------------------------------------ intervals


def intervals(state: SubjectState | Doc) -> list[Membership]:
    """Every list membership of the subject, past and projected, by list name then entry date."""
    tl = state.get("timeline") or {}
    as_of = state.get("as_of") or ""
    version = state.get("facts_rules")
    facts = state.get("facts")
    listings = _listings(facts) if isinstance(facts, Mapping) else None
    out: list[Membership] = []
    for name, track in sorted((tl.get("lists") or {}).items()):
        changes = [c for c in track if c.get("kind") in MEMBERSHIP_KINDS]
        if changes:
            out.extend(_read_track(name, changes, as_of, version, listings))
    out.sort(key=lambda m: (m.list, m.entered))
    return out


def _listings(facts: Mapping[str, Any]) -> dict[tuple[str, str | None], list[tuple[str, str]]]:
    """Every record's listings (its per-record facts' candidates) by (list kind, domain), as
    (since, record key) pairs sorted: one pass over the records for all of a subject's memberships."""
    out: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
    for key, f in facts.items():
        for cand in (f or {}).get("cands") or ():
            if cand[3] is not None and cand[3] <= cand[2]:
                continue  # ended the day it began (a court listing deleted on its own date): never on a list
            out.setdefault((cand[0], cand[1]), []).append((cand[2], key))
    for pairs in out.values():
        pairs.sort()
    return out


def _stay_records(listings: dict[tuple[str, str | None], list[tuple[str, str]]], kind: str, domain: str | None,
                  entered: str, exited: str | None) -> tuple[str, ...]:
    """The records a blacklist or court-debtor membership rests on over its whole stay: those with a
    listing of its kind and domain that begins within it. A list change names only the records
    that decide it (domain/history.py ``list_tracks``), not all of these."""
    pairs = listings.get((kind, domain)) or []
    lo = bisect.bisect_left(pairs, (entered,))
    hi = len(pairs) if exited is None else bisect.bisect_left(pairs, (exited,), lo)
    return tuple(sorted({key for _, key in pairs[lo:hi]}))


def _read_track(name: str, changes: list[Doc], as_of: str, version: str | None,
                listings: dict[tuple[str, str | None], list[tuple[str, str]]] | None = None) -> list[Membership]:
    changes = sorted(changes, key=lambda c: (c["effective_date"], _RANK.get(c["transition"], 3)))
    out: list[Membership] = []
    cur: dict[str, Any] | None = None

    def close(until: str | None, cause: Cause | None) -> None:
        assert cur is not None
        flips = cur["suspensions"]
        if flips and flips[-1]["until"] is None and until is not None:
            flips[-1].update(until=until, ended_by=cause)
        causes = cur["causes"]
        if listings is not None and cur["kind"] in DOMAIN_KINDS:
            # the entry names the records the membership began with; it rests on those of its stay
            causes = _stay_records(listings, cur["kind"], cur["domain"], cur["entered"], until) or causes
        out.append(Membership(
            list=name, kind=cur["kind"], domain=cur["domain"], entered=cur["entered"], exited=until,
            entered_by=cur["entered_by"], exited_by=cause if until is not None else None,
            entry_projected=cur["entered"] > as_of, exit_projected=until is not None and until > as_of,
            suspensions=tuple(Suspension(**s) for s in flips), causes=causes, rules_version=version))

    for c in changes:
        transition, day = c["transition"], c["effective_date"]
        cause = Cause(c.get("cause_kind") or "", c.get("cause_decision"))
        if transition in _ENTRY:
            if cur is not None:  # (never from the rules: an entry while on the list) keep both readable
                close(day, Cause("entered_again", None))
            cur = {"kind": c["kind"], "domain": c.get("domain"), "entered": day, "entered_by": cause,
                   "causes": tuple(c.get("causes") or ()), "suspensions": []}
        elif cur is None:
            continue  # an exit or a flip without its entry: nothing to attach it to
        elif transition in _EXIT:
            close(day, cause)
            cur = None
        elif transition in _FLIPS:
            flips = cur["suspensions"]
            if transition == "suspended" and not (flips and flips[-1]["until"] is None):
                flips.append({"since": day, "until": None, "ended_by": None,
                              "objection": cause.decision if cause.kind == "objection_filed" else None})
            elif transition == "resumed" and flips and flips[-1]["until"] is None:
                flips[-1].update(until=day, ended_by=cause)
    if cur is not None:
        close(None, None)
    return out


# ------------------------------------------------------------------------------------ at an instant


def records_in_force(state: SubjectState | Doc, m: Membership, day: str) -> tuple[str, ...]:
    """The records a blacklist or court-debtor membership rests on at ``day``: those whose own
    listing (the per-record facts the state keeps) covers the day. A record whose listing ended
    (expiry, deletion, approved repair, removal) or has not begun is not a basis then."""
    facts = state.get("facts")
    if m.kind not in DOMAIN_KINDS or not isinstance(facts, Mapping):
        return m.causes if m.covers(day) else ()
    found = []
    for key in m.causes:
        f = facts.get(key) or {}
        for cand in f.get("cands") or ():
            lst, domain, since, until = cand[0], cand[1], cand[2], cand[3]
            if lst == m.kind and domain == m.domain and since <= day and (until is None or day < until):
                found.append(key)
                break
    # the timeline and the facts are derived together; should they ever disagree, name them all
    return tuple(found) if found or not m.covers(day) else m.causes


def memberships_at(state: SubjectState | Doc, at: dt.date | dt.datetime | str,
                   rules: Rulebook | None = None) -> Standing:
    """The lists the subject is on at the instant ``at``, from its state alone. With ``rules``, an
    instant before the subject's clock gives each list's ``until`` as the decisions dated by then
    gave it (:func:`ends_then`): not the date of a later repair, deletion or removal."""
    day = day_of(at)
    as_of = state.get("as_of")
    members = intervals(state)
    domain_lists = [m for m in members if m.kind in DOMAIN_KINDS and m.covers(day)]
    ends = ends_then(state, day, domain_lists, rules) if rules is not None and as_of and day < as_of else None
    standings: list[ListStanding] = []
    for m in members:
        if not m.covers(day):
            continue
        suspension = m.suspension_at(day)
        if m.kind == "escalated":
            names = tuple(sorted(d.list for d in domain_lists))
            causes = tuple(sorted({k for d in domain_lists for k in records_in_force(state, d, day)}))
        else:
            names, causes = (), records_in_force(state, m, day)
        until, projected = m.exited, m.exit_projected
        if ends is not None and ends.get(m.list, m.exited) != m.exited:
            until = ends[m.list]  # expected then, not what happened
            projected = until is not None
        standings.append(ListStanding(
            list=m.list, kind=m.kind, domain=m.domain, since=m.entered, until=until,
            until_projected=projected, suspended=suspension is not None,
            objection=suspension.objection if suspension is not None else None, causes=causes, lists=names))
    return Standing(subject=str(state.get("id") or ""), at=day, as_of=as_of,
                    projected=as_of is not None and day > as_of, rules_version=state.get("facts_rules"),
                    lists=tuple(standings))


def ends_then(state: SubjectState | Doc, day: str, domain_lists: list[Membership],
              rules: Rulebook) -> dict[str, str | None]:
    """The end each list held at ``day`` had as the decisions dated on or before it gave it (list name
    -> date; None: no fixed end): blacklists and court debtors from the records' listings then
    (domain/facts.py ``list_ends_at``); the escalation when fewer than its minimum of those lists would
    remain; the red list none (only a later adverse record ends it). RULES.md 3a: a decision takes
    effect on its date, so a report or a page of a past instant does not show a later one's."""
    ends: dict[str, str | None] = {"red_list": None}
    if not domain_lists:
        return ends
    known = list_ends_at(cast(SubjectState, state), day, rules)
    for m in domain_lists:
        ends[m.list] = known.get(m.list, m.exited)
    k = rules.escalation_min_domains
    domains: dict[str | None, str | None] = {}
    for m in domain_lists:  # a domain's end: the latest of its lists' (None: no fixed end)
        end = ends[m.list]
        if m.domain in domains:
            prev = domains[m.domain]
            end = None if prev is None or end is None else max(prev, end)
        domains[m.domain] = end
    if len(domains) >= k:
        ordered = sorted(domains.values(), key=lambda e: (e is None, e or ""), reverse=True)
        ends["escalated"] = ordered[k - 1]
    return ends
