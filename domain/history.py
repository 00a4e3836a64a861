"""The list history of a subject as a pure function of its inputs (RULES.md 3-5, 3a).

``timeline(state, rules, cal)`` derives, from the SET of a subject's inputs (domain/state.py), every
list change the rules give, each dated by the decision that causes it, never by arrival:

* blacklists per domain (严重失信主体名单) and the court-debtor list (失信被执行人): intervals from the
  listing decision's / listing's / record's date to the first of expiry, deletion, approved
  repair, removal decision; a record found wrong by an upheld objection is out of force from the
  resolution until its correction; a revoked record, or one revoked by an upheld objection, is
  withdrawn with everything derived from it (RULES.md 5: "anything derived from it undone");
* suspension while every record a membership rests on is disputed (filed .. resolved);
* escalation while the subject is on lists of ``escalation_min_domains`` domains or more;
* the red list after ``red_list_clean_years`` without adverse records or lists;
* publicity: repair eligible after the minimum period, expired at the maximum or at repair;
* objections not resolved within their working-day deadline.

The timeline does not depend on when anything arrived, so the same inputs in any arrival order
give the same timeline. ``derive(state, as_of, ...)`` cuts it at the subject's clock: the changes
effective on or before ``as_of`` are the history (what has happened), the first later date is
``next_due`` (the timer's tick), and the situation on ``as_of`` is the ``view`` the queries read.
The engine announces the difference between the history before and after an input
(domain/engine.py); a change of the past is announced as a withdrawal plus the new changes.

Cost: ``advance`` re-derives only the records an input touches (their facts: domain/facts.py) and
re-assembles the lists from the per-record facts kept in the state (no per-date loop); only a clock
that passes a due date revisits every record's publicity.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final, NamedTuple

from domain.calendar import WorkingCalendar, add_years
from domain.facts import (
    _ONE_DAY,
    BASIS_VERSION,
    FAR,
    Cand,
    _basis_move,
    _change,
    _d,
    _plus_years,
    copy_basis,
    earliest_repair,
    first_date,
    last_date_upto,
    linked_from,
    new_basis,
    next_date,
    objection_index,
    publicity_track,
    record_facts,
    repair_out_of_force,
    value_on,
)
from domain.record_maps import editable, finished, like
from domain.rulebook import Rulebook
from domain.state import SubjectState, repair_grants
from domain.types import Doc

TRANSITION_ORDER: Final = {t: i for i, t in enumerate((
    "exited", "de-escalated", "red_list_exited", "resumed", "suspended", "entered", "escalated",
    "red_list_entered", "repair_eligible", "publicity_expired", "objection_overdue", "withdrawn"))}
"""The order of one date's changes of one list in the stored tracks (``_order``), which the read-backs
(``memberships_of``, ``escalations_of``, domain/memberships.py) sort again as each needs. Kept as it
was: the states stored so far hold their tracks in this order (announcements use ANNOUNCE_ORDER)."""
ANNOUNCE_ORDER: Final = {t: i for i, t in enumerate((
    "resumed", "exited", "de-escalated", "red_list_exited", "entered", "escalated", "red_list_entered",
    "suspended", "repair_eligible", "publicity_expired", "objection_overdue", "withdrawn"))}
"""The order of one date's changes of one list in an announcement (domain/engine.py ``announce``): a
valid sequence of state transitions for a subscriber that applies them one by one. A stay's flips
fall within it (a suspension may begin on its entry day, a resumption comes before its exit), so:
a resumption before an exit, the exit of an old stay before the entry of a new one, an entry before
the suspension of the stay it begins."""
ENTRY_TRANSITIONS: Final = {"blacklist": ("entered", "exited"), "court_debtor": ("entered", "exited"),
                     "escalated": ("escalated", "de-escalated"), "red_list": ("red_list_entered", "red_list_exited")}


class Derived(NamedTuple):
    history: dict[str, Doc]  # change id -> change, effective on or before as_of
    view: Doc                # the situation on as_of
    next_due: str | None


# ------------------------------------------------------------------------------------ per record


# ------------------------------------------------------------------------------------ per-record facts


# ------------------------------------------------------------------------------------ the tracks


def lists_of(facts: Doc | None) -> set[str]:
    """The membership lists (``blacklist:<domain>``, ``court_debtor``) one record's facts take
    part in: its candidates' lists, and the domain's blacklist its removal decision ends."""
    if not facts:
        return set()
    names = {_list_name(c[0], c[1]) for c in facts["cands"]}
    if facts["removal"]:
        names.add(f"blacklist:{facts['removal']}")
    return names


def _list_name(kind: str, domain: str | None) -> str:
    return "court_debtor" if kind == "court_debtor" else f"blacklist:{domain}"


def _is_membership_list(name: str) -> bool:
    return name == "court_debtor" or name.startswith("blacklist:")


def memberships_of(track: list[Doc]) -> list[Doc]:
    """The memberships of one list, read back from its track (its changes, sorted as ``_order``
    sorts them): what the lists' assembly would give for them, in the fields the rest of the
    derivation reads (name, list, domain, since, until, causes, flips). A list's memberships are
    disjoint and only the last may be open, so its i-th exit ends its i-th entry; a suspension or
    resumption belongs to the membership whose interval holds its date."""
    out: list[Doc] = []
    exits: list[tuple[dt.date, tuple[Any, Any]]] = []
    flips: list[tuple[dt.date, bool, tuple[Any, ...]]] = []
    for c in track:
        t = c["transition"]
        enter, leave = ENTRY_TRANSITIONS[c["kind"]]
        if t == enter:
            out.append({"name": c["list"], "list": c["kind"], "domain": c["domain"],
                        "since": _d(c["effective_date"]), "until": None, "causes": c["causes"], "flips": [],
                        "enter": (c.get("cause_kind"), c.get("cause_decision"))})
        elif t == leave:
            exits.append((_d(c["effective_date"]), (c.get("cause_kind"), c.get("cause_decision"))))
        elif t in ("suspended", "resumed"):
            flips.append((_d(c["effective_date"]), t == "suspended", (c["cause_kind"], c["cause_decision"])))
    out.sort(key=lambda m: m["since"])
    for m, (until, why) in zip(out, sorted(exits, key=lambda e: e[0])):
        m["until"], m["leave"] = until, why
    starts = [m["since"] for m in out]
    for flip in sorted(flips, key=lambda f: f[0]):
        out[bisect.bisect_right(starts, flip[0]) - 1]["flips"].append(flip)
    return out


def list_tracks(state: SubjectState, facts: Mapping[str, Doc], basis: Doc, index: Doc, rules: Rulebook,
                cal: WorkingCalendar, *, kept: tuple[dict[str, list[Doc]], set[str]] | None = None,
                ) -> tuple[dict[str, list[Doc]], Doc]:
    """Every change of the subject's lists (blacklists, court debtors, escalation, red list,
    overdue objections), past and projected, by list name; and the intervals behind them.

    ``kept``: (the tracks before an input, the membership lists the input may have changed). A
    membership list the input did not touch keeps its track, and its memberships are read back
    from it (``memberships_of``), so that an input about one list does not assemble the others
    again from all their records (a hot subject: issue 13). Escalation, which rests on every
    membership list, is derived again when one of them may have changed, and read back from its
    track (``escalations_of``) otherwise; the red list and overdue objections always."""
    sid = state["id"]
    objections = state.get("objections") or {}
    disputes = index["disputes"]
    cands: list[Cand] = []
    removals: dict[str, list[tuple[dt.date, str]]] = {}
    dirty = None if kept is None else kept[1]
    if dirty is None or dirty:
        for key in basis["listed"]:
            f = facts[key]
            if f["removal"] and (dirty is None or f"blacklist:{f['removal']}" in dirty):
                removals.setdefault(f["removal"], []).append((_d(f["d"]), key))
            for c in f["cands"]:
                if dirty is not None and _list_name(c[0], c[1]) not in dirty:
                    continue
                cands.append(Cand(c[0], c[1], _d(c[2]), _d(c[3]) if c[3] else None, key, (c[4], c[5]),
                                  (c[6], c[7])))
    adverse = basis["adverse"]
    first = first_date(basis["dates"])
    changes: list[Doc] = []

    # removal decisions end the domain's blacklist memberships they fall in: the subject's own a
    # removal of its own, those linked from an organisation that organisation's (linked to its legal
    # representative: domain/engine.py ``_links``)
    if removals:
        records = state.get("records") or {}
        for i, c in enumerate(cands):
            if c.list != "blacklist":
                continue
            for removed, rkey in sorted(removals.get(c.domain, ())):
                if linked_from(records, rkey) != linked_from(records, c.key):
                    continue
                if c.since <= removed and (c.until is None or removed < c.until):
                    cands[i] = c = c._replace(until=removed, leave=("removal", rkey))
                    break

    # memberships: the union of a list's intervals
    by_list: dict[str, list[Cand]] = {}
    for c in cands:
        if c.until is not None and c.until <= c.since:
            continue  # removed before it began
        name = _list_name(c.list, c.domain)
        by_list.setdefault(name, []).append(c)
    memberships: list[Doc] = []
    for name, group in sorted(by_list.items()):
        group.sort(key=lambda c: (c.since, c.key))
        cur: Doc | None = None
        for c in group:
            if cur is not None and (cur["until"] is None or c.since <= cur["until"]):
                cur["parts"].append(c)
                if cur["until"] is not None and (c.until is None or c.until > cur["until"]):
                    cur["until"], cur["leave"] = c.until, c.leave
                continue
            cur = {"name": name, "list": c.list, "domain": c.domain, "since": c.since, "until": c.until,
                   "enter": c.enter, "leave": c.leave, "parts": [c]}
            memberships.append(cur)

    for m in memberships:
        # a change names the records that decide it (docs/events.md, cause_record_ids): an entry
        # the records its membership begins with, an exit those it ends with, a suspension or
        # resumption the entry's. Not every record the membership rests on: a severe decision that
        # extends a membership then changes none of its announced changes (it used to withdraw
        # and announce its entry again, naming every record, on every such decision), and a hot
        # subject's changes stay the same size whatever its history (issue 13)
        m["causes"] = sorted({c.key for c in m["parts"] if c.since == m["since"]})
        enter, leave = ENTRY_TRANSITIONS[m["list"]]
        changes.append(_change(sid, m["name"], m["list"], m["domain"], enter, m["since"], m["causes"], m["enter"]))
        if m["until"] is not None:
            ending = sorted({c.key for c in m["parts"] if c.until == m["until"]})
            changes.append(_change(sid, m["name"], m["list"], m["domain"], leave, m["until"], ending, m["leave"]))
        m["flips"] = _suspensions(m, disputes)
        for when, suspended, cause in m["flips"]:
            changes.append(_change(sid, m["name"], m["list"], m["domain"], "suspended" if suspended else "resumed",
                                   when, m["causes"], cause))
    if kept is not None:  # the lists the input did not touch, as they were
        for name, track in kept[0].items():
            if _is_membership_list(name) and name not in kept[1]:
                memberships.extend(memberships_of(track))
                changes.extend(track)
        memberships.sort(key=lambda m: (m["name"], m["since"]))

    if kept is not None and not kept[1]:
        # no membership list changed, so neither did the escalation, which rests on them alone:
        # kept as it was (deriving it again costs what all its memberships' causes do, on every
        # input about a hot subject on several lists: issue 13)
        track = kept[0].get("escalated") or []
        escalations = escalations_of(track)
        changes.extend(track)
    else:
        escalations = _escalation(sid, memberships, rules.escalation_min_domains, changes)
    red = _red_list(sid, _d(first) if first else None, adverse, memberships, rules.red_list_clean_years, changes)

    deadlines: dict[str, dt.date] = {}
    for oid, o in sorted(objections.items()):
        filed = _d(o["filed"])
        deadline = cal.add_workdays(filed, rules.objection_workdays(bool(o.get("provider_verification"))))
        overdue = deadline + _ONE_DAY
        deadlines[oid] = overdue
        if o.get("resolved") is None or _d(o["resolved"]) > deadline:
            changes.append(_change(sid, f"objection:{oid}", "objection", None, "objection_overdue", overdue,
                                   [o["record_key"]], ("objection_filed", oid)))

    tracks: dict[str, list[Doc]] = {}
    for c in changes:
        tracks.setdefault(c["list"], []).append(c)
    for track in tracks.values():
        track.sort(key=_order)
    return tracks, {"memberships": memberships, "escalations": escalations, "red": red, "deadlines": deadlines}


def _order(c: Doc) -> tuple[Any, ...]:
    return (c["effective_date"], c["list"], TRANSITION_ORDER.get(c["transition"], 99))


def timeline(state: SubjectState, rules: Rulebook, cal: WorkingCalendar) -> tuple[list[Doc], Doc]:
    """Every list change the subject's inputs give, past and projected, sorted by date (derived
    from scratch: the reference the incremental ``advance`` must equal)."""
    index = objection_index(state)
    facts = {k: f for k in (state.get("records") or {})
             if (f := record_facts(k, state, index, rules)) is not None}
    basis = new_basis()
    pubs = {key: publicity_track(state["id"], key, f) for key, f in facts.items()}
    for key, f in facts.items():
        _basis_move(basis, key, f, pubs[key], 1)
    tracks, parts = list_tracks(state, facts, basis, index, rules, cal)
    changes = [c for t in tracks.values() for c in t]
    for track in pubs.values():
        changes.extend(track)
    changes.sort(key=_order)
    parts["facts"], parts["basis"], parts["publicity_tracks"] = facts, basis, {k: t for k, t in pubs.items() if t}
    return changes, parts


@lru_cache(maxsize=65536)
def _plus_years_iso(value: str, years: int) -> str:
    return _plus_years(value, years).isoformat()


def _suspensions(m: Doc, disputes: Doc) -> list[tuple[dt.date, bool, tuple[Any, ...]]]:
    """Where a membership is suspended: while every record it rests on (in force then) is disputed."""
    keyed = {c.key for c in m["parts"]}
    if not any(k in disputes for k in keyed):
        return []
    since, until = m["since"], m["until"] or FAR
    points = {since}
    for c in m["parts"]:
        points.update(p for p in (c.since, c.until) if p is not None and since < p < until)
    for k in keyed:
        for filed, resolved, _ in disputes.get(k, ()):
            points.update(p for p in (filed, resolved) if p is not None and since < p < until)
    flips = []
    state = False
    for t in sorted(points):
        active = [c.key for c in m["parts"] if c.since <= t and (c.until is None or t < c.until)]
        cover = [next((o for f, r, o in disputes.get(k, ()) if f <= t and (r is None or t < r)), None) for k in active]
        suspended = bool(active) and all(cover)
        if suspended != state:
            if suspended:
                cause = ("objection_filed", next((o for f, r, o in (x for k in active for x in disputes.get(k, ()))
                                                  if f == t), cover[0]))
            else:
                ended = [o for k in active for f, r, o in disputes.get(k, ()) if r == t]
                cause = ("objection_resolved", ended[0]) if ended else ("record", None)
            flips.append((t, suspended, cause))
            state = suspended
    return flips


def _status_at(m: Doc, t: dt.date) -> tuple[bool, bool]:
    """(on the list, suspended) of a membership on date t."""
    if t < m["since"] or (m["until"] is not None and t >= m["until"]):
        return False, False
    suspended = False
    for when, flag, _ in m["flips"]:
        if when > t:
            break
        suspended = flag
    return True, suspended


_READ_BACK_ORDER: Final = {"escalated": 0, "suspended": 1, "resumed": 1, "de-escalated": 2}
"""On one date, an escalation's start before its flips, a flip before an end (``escalations_of``)."""


def escalations_of(track: list[Doc]) -> list[Doc]:
    """The escalations read back from the escalated list's track: what ``_escalation`` gives, in
    the fields the rest of the derivation reads (since, until, causes, flips, suspended). The
    escalations are disjoint; on one date an escalation's start comes before its flips, and a flip
    before an end."""
    out: list[Doc] = []
    cur: Doc | None = None
    for c in sorted(track, key=lambda c: (c["effective_date"], _READ_BACK_ORDER.get(c["transition"], 3))):
        t, when = c["transition"], _d(c["effective_date"])
        if t == "escalated":
            cur = {"since": when, "until": None, "causes": c["causes"], "suspended": False, "flips": []}
            out.append(cur)
        elif cur is None:
            continue
        elif t in ("suspended", "resumed"):
            cur["suspended"] = t == "suspended"
            cur["flips"].append((when, t == "suspended"))
        elif t == "de-escalated":
            cur["until"] = when
            cur = None
    return out


def _escalation(sid: str, memberships: list[Doc], k: int, changes: list[Doc]) -> list[Doc]:
    domains = {m["domain"] for m in memberships}
    if len(domains) < k:
        return []
    points = sorted({p for m in memberships for p in [m["since"], m["until"]] + [f[0] for f in m["flips"]]
                     if p is not None})
    out: list[Doc] = []
    cur = None
    for t in points:
        on: dict[str, bool] = {}  # domain -> suspended (all of its memberships suspended)
        causes: set[str] = set()
        for m in memberships:
            active, suspended = _status_at(m, t)
            if active:
                on[m["domain"]] = on.get(m["domain"], True) and suspended
                causes.update(m["causes"])
        escalated = len(on) >= k
        suspended = sum(1 for s in on.values() if not s) < k
        if escalated and cur is None:
            cur = {"since": t, "until": None, "causes": sorted(causes), "suspended": suspended, "flips": []}
            out.append(cur)
            changes.append(_change(sid, "escalated", "escalated", None, "escalated", t, cur["causes"],
                                   _cause_at(memberships, t, "enter", ("listing", None))))
            if suspended:
                cur["flips"].append((t, True))
                changes.append(_change(sid, "escalated", "escalated", None, "suspended", t, cur["causes"],
                                       _cause_at(memberships, t, "flip", ("objection_filed", None))))
        elif not escalated and cur is not None:
            cur["until"] = t
            changes.append(_change(sid, "escalated", "escalated", None, "de-escalated", t, cur["causes"],
                                   _cause_at(memberships, t, "leave", ("expiry", None))))
            cur = None
        elif cur is not None and suspended != cur["suspended"]:
            cur["suspended"] = suspended
            cur["flips"].append((t, suspended))
            changes.append(_change(sid, "escalated", "escalated", None, "suspended" if suspended else "resumed", t,
                                   cur["causes"], _cause_at(memberships, t, "flip", (
                                       "objection_filed" if suspended else "objection_resolved", None))))
    return out


def _cause_at(memberships: list[Doc], t: dt.date, what: str, default: tuple[str, Any]) -> tuple[str, Any]:
    """What caused the escalation's change on ``t`` (docs/events.md ``cause_kind``,
    ``cause_decision``): the cause of a domain's membership entering (``enter``), ending (``leave``)
    or being suspended or resumed (``flip``) that day; the first in order when several did, so the
    same in any arrival order; ``default`` when none says (an earlier layout's memberships)."""
    found: list[tuple[str, Any]] = []
    for m in memberships:
        if what == "enter" and m.get("since") == t and m.get("enter"):
            found.append(tuple(m["enter"]))
        elif what == "leave" and m.get("until") == t and m.get("leave"):
            found.append(tuple(m["leave"]))
        elif what == "flip":
            found += [tuple(f[2]) for f in m.get("flips") or () if f[0] == t and len(f) > 2 and f[2]]
    found = [(str(c[0]), c[1]) for c in found if len(c) == 2]
    return min(found, key=lambda c: (c[0], str(c[1] or ""))) if found else default


def _red_list(sid: str, first: dt.date | None, adverse: Any, memberships: list[Doc], clean: int,
              changes: list[Doc]) -> list[Doc]:
    """Three clean years (RULES.md 4): no adverse record within the last ``clean`` years, and on no
    list within them (the years count from the day a stay ended); ends on the next adverse record or
    list entry. ``adverse``: ``[date, the adverse records
    of that date (sorted)]`` pairs, sorted by date (the basis's: a list, or a large state's
    ``DatedPairs``)."""
    if first is None:
        return []
    # adverse records block [date, date + clean years); overlapping blocks merged first (a block
    # can only end a red list where it starts, and a date inside a merged block never does). The
    # end of a block grows with its date, so a merged block is found by jumping to the last date
    # inside its current end: a few steps per block, not one per record (a subject with thousands
    # of adverse records, issue 13)
    merged: list[tuple[dt.date, dt.date, tuple[str, Any]]] = []
    begin = first_date(adverse)
    while begin is not None:
        end = _plus_years_iso(begin, clean)
        while True:
            # the last date the block takes in (inclusive; begin itself at least)
            last = last_date_upto(adverse, end) or begin
            further = _plus_years_iso(last, clean)
            if further <= end:
                break
            end = further
        merged.append((_d(begin), _d(end), ("adverse_record", value_on(adverse, begin)[0])))
        begin = next_date(adverse, last)
    blocks: list[tuple[dt.date, dt.date | None, tuple[str, Any]]] = list(merged)
    # a stay on a list is adverse while it lasts, and the clean years count from its end: a subject
    # deleted from the court debtors' list, or off a blacklist, yesterday is no honest subject today
    blocks += [(m["since"], add_years(m["until"], clean) if m["until"] is not None else None,
                ("listing", m["causes"][0])) for m in memberships]
    blocks.sort(key=lambda b: (b[0], b[2]))
    cursor: dt.date | None = add_years(first, clean)
    out: list[Doc] = []
    for start, until, cause in blocks:
        if cursor is None:
            break
        if start > cursor:
            out.append({"since": cursor, "until": start, "leave": cause})
        if until is None:
            cursor = None
        elif until > cursor:
            cursor = until
    if cursor is not None:
        out.append({"since": cursor, "until": None, "leave": None})
    for r in out:
        changes.append(_change(sid, "red_list", "red_list", None, "red_list_entered", r["since"], [],
                               ("clean_period", None)))
        if r["until"] is not None:
            changes.append(_change(sid, "red_list", "red_list", None, "red_list_exited", r["until"], [], r["leave"]))
    return out


# ------------------------------------------------------------------------------------ cut at a date


def derive(state: SubjectState, as_of: str | dt.date, rules: Rulebook, cal: WorkingCalendar) -> Derived:
    """The history up to ``as_of``, the situation on it, and the next date anything changes,
    derived from scratch (the reference for ``advance``)."""
    at = as_of if isinstance(as_of, dt.date) else _d(as_of)
    at_iso = at.isoformat()
    changes, parts = timeline(state, rules, cal)
    cut = bisect.bisect_right([c["effective_date"] for c in changes], at_iso)
    history = {c["change_id"]: c for c in changes[:cut]}
    future = [c["effective_date"] for c in changes[cut:]]
    future += [f["d"] for f in parts["facts"].values() if f["d"] > at_iso]
    next_due = min(future) if future else None
    view = _view(state, at, parts, rules, next_due)
    view["publicity"] = {k: v for k in sorted(parts["facts"])
                         if (v := _publicity_view(parts["facts"][k], at_iso)) is not None}
    return Derived(history, view, next_due)


class Advanced(NamedTuple):
    timeline: Doc       # {"lists": {list name: [changes]}, "publicity": {record key: [changes]}}
    facts: Mapping[str, Any]  # record key -> record_facts (a dict, or a large state's persistent map)
    basis: Doc          # the compact aggregate the lists are assembled from (new_basis)
    view: Doc           # the situation on as_of
    withdrawn: list[Doc]  # announced changes no longer true
    added: list[Doc]      # changes now true and not announced before
    all_parts: bool = False  # every record's facts or publicity view was derived again, not only the touched


def advance(before: SubjectState, after: SubjectState, touched: set[str], as_of: str, rules: Rulebook,
            cal: WorkingCalendar) -> Advanced:
    """Re-derive what an input changed, and what the clock moving from ``before["as_of"]`` to
    ``as_of`` brought due. Only the records the input ``touched`` are re-derived (their facts and
    publicity); of the membership lists, only those of the touched records are assembled again from
    the kept per-record facts, the others keep their tracks (``list_tracks``'s ``kept``). The result
    equals ``derive`` from scratch (property tests check it)."""
    sid = after["id"]
    old_as_of = before.get("as_of") or ""
    old_tl = before.get("timeline") or {}
    old_lists, old_pub = old_tl.get("lists") or {}, old_tl.get("publicity") or {}
    index = objection_index(after)
    # a subject seen for the first time has nothing to re-derive: its only records are the touched ones
    empty = not (before.get("records") or before.get("objections") or before.get("repairs"))
    full = not empty and (before.get("facts_rules") != rules.version
                          or (before.get("basis") or {}).get("v") != BASIS_VERSION)
    if full:
        _, scratch = timeline(after, rules, cal)
        facts, basis, pub = scratch["facts"], scratch["basis"], scratch["publicity_tracks"]
        keys = set(facts) | set(old_pub)
    else:  # working copies: a large state's persistent maps share every entry not changed (record_maps)
        old_facts = before.get("facts") or {}
        working_facts, working_pub = editable(old_facts), editable(old_pub)
        basis = copy_basis(before.get("basis") or new_basis())
        keys = touched
        for key in keys:
            _basis_move(basis, key, old_facts.get(key), old_pub.get(key) or [], -1)
            f = record_facts(key, after, index, rules)
            track = publicity_track(sid, key, f)
            _basis_move(basis, key, f, track, 1)
            if f is None:
                working_facts.pop(key, None)
            else:
                working_facts[key] = f
            if track:
                working_pub[key] = track
            else:
                working_pub.pop(key, None)
        facts, pub = finished(working_facts), finished(working_pub)
    if full:
        lists, parts = list_tracks(after, facts, basis, index, rules, cal)
    else:  # only the membership lists of the records the input touched are assembled again
        dirty: set[str] = set()
        for key in keys:
            dirty |= lists_of(old_facts.get(key)) | lists_of(facts.get(key))
        lists, parts = list_tracks(after, facts, basis, index, rules, cal, kept=(old_lists, dirty))
    old_next = (before.get("evaluation") or {}).get("next_due")
    clock_passed_due = full or (old_next is not None and old_next <= as_of)

    withdrawn: list[Doc] = []
    added: list[Doc] = []

    def diff(old: list[Doc], new: list[Doc]) -> None:
        was = {c["change_id"]: c for c in old if c["effective_date"] <= old_as_of}
        now = {c["change_id"]: c for c in new if c["effective_date"] <= as_of}
        for cid, c in was.items():
            n = now.get(cid)
            if n is None:
                withdrawn.append(c)
            elif n.get("cause_kind") != c.get("cause_kind") or n.get("cause_decision") != c.get("cause_decision"):
                # the same change with another cause (a late record that decides it instead, or one
                # of two on its date revoked): withdrawn and announced again under its id, so that a
                # subscriber's copy names the cause the inputs give, in every arrival order
                withdrawn.append(c)
                added.append(n)
        added.extend(c for cid, c in now.items() if cid not in was)

    diff([c for t in old_lists.values() for c in t], [c for t in lists.values() for c in t])
    for key in keys:
        diff(old_pub.get(key) or [], pub.get(key) or [])
    if clock_passed_due and not full:  # projected changes of untouched records fell due
        for key, track in pub.items():
            if key not in keys:
                added.extend(c for c in track if old_as_of < c["effective_date"] <= as_of)

    future = [c["effective_date"] for t in lists.values() for c in t if c["effective_date"] > as_of]
    future += [d for d in (next_date(basis["pub_dates"], as_of), next_date(basis["dates"], as_of)) if d is not None]
    next_due = min(future) if future else None
    view = _view(after, _d(as_of), parts, rules, next_due)
    old_views = (before.get("evaluation") or {}).get("publicity") or {}
    publicity = editable(old_views) if not clock_passed_due else {}
    for key in (facts.keys() if clock_passed_due else keys):
        entry = _publicity_view(facts.get(key), as_of)
        if entry is None:
            publicity.pop(key, None)
        else:
            publicity[key] = entry
    if not clock_passed_due:
        for key in keys:
            if key not in facts:
                publicity.pop(key, None)
    # a large state's maps stay persistent (the full path and a due clock derive plain dicts)
    form = after.get("records")
    view["publicity"] = like(form, finished(publicity))
    return Advanced({"lists": lists, "publicity": like(form, pub)}, like(form, facts), basis, view, withdrawn, added,
                    clock_passed_due)


def history_of(state: SubjectState) -> dict[str, Doc]:
    """The changes of a subject's timeline effective on or before its clock: its list history."""
    at = state.get("as_of") or ""
    tl = state.get("timeline") or {}
    return {c["change_id"]: c for part in ("lists", "publicity") for t in (tl.get(part) or {}).values() for c in t
            if c["effective_date"] <= at}


def _publicity_view(facts: Doc | None, at: str) -> Doc | None:
    if not facts or not facts.get("pub") or facts["d"] > at:
        return None
    start, end, leave_kind = facts["pub"][:3]
    state_name = "ended" if at >= end else "repair_eligible" if at >= start else "published"
    return {"repair_from": start, "publicity_end": end, "repaired": leave_kind == "repair" and end <= at,
            "state": state_name}


def _view(state: SubjectState, at: dt.date, parts: Doc, rules: Rulebook, next_due: str | None) -> Doc:
    lists: dict[str, Doc] = {}
    for m in parts["memberships"]:
        active, suspended = _status_at(m, at)
        if active:
            lists[m["name"]] = _membership(m["list"], m["domain"], m["since"], m["until"], m["causes"], suspended)
    for e in parts["escalations"]:
        if e["since"] <= at and (e["until"] is None or at < e["until"]):
            suspended = False
            for when, flag in e["flips"]:
                if when <= at:
                    suspended = flag
            lists["escalated"] = _membership("escalated", None, e["since"], e["until"], e["causes"], suspended)
    for r in parts["red"]:
        if r["since"] <= at and (r["until"] is None or at < r["until"]):
            lists["red_list"] = _membership("red_list", None, r["since"], r["until"], [], False)
    overdue, objection_records = [], {}
    for oid, o in sorted((state.get("objections") or {}).items()):
        if o.get("resolved") is None and at >= parts["deadlines"][oid]:
            overdue.append(oid)
            objection_records[oid] = o["record_key"]
    repairs = {}
    corrected_by = objection_index(state)["corrected_by"] if state.get("repairs") else {}
    for key, repair in sorted((state.get("repairs") or {}).items()):
        entry = (state.get("records") or {}).get(key)
        earliest, reason = earliest_repair(entry, rules)
        # the first granted decision that applies (of several: a refusal of another application
        # leaves a grant standing), else the latest granted, else the refusal
        decided: Doc = repair
        why: str | None = "not-granted"
        for grant in repair_grants(repair):
            decided, why = grant, reason
            if earliest is not None and _d(grant["approved"]) < earliest:
                why = "before-earliest"
            elif why is None and repair_out_of_force(entry, corrected_by.get(key), grant["approved"]):
                why = "record-out-of-force"
            if why is None:
                break
        repairs[key] = {"approved": decided["approved"], "applied": why is None, "reason": why,
                        "earliest": earliest.isoformat() if earliest else None, "doc_no": decided.get("doc_no")}
    return {"lists": dict(sorted(lists.items())), "publicity": {}, "overdue_objections": overdue,
            "objection_records": objection_records, "repairs": repairs, "next_due": next_due}


def _membership(kind: str, domain: str | None, since: dt.date, until: dt.date | None, causes: list[str],
                suspended: bool) -> Doc:
    return {"list": kind, "domain": domain, "since": since.isoformat(),
            "until": until.isoformat() if until is not None else None, "causes": list(causes), "suspended": suspended}


def evaluate(state: SubjectState, as_of: str | dt.date, rules: Rulebook, cal: WorkingCalendar) -> Doc:
    """The subject's situation on ``as_of`` (lists, publicity, overdue objections, repairs, next_due)."""
    return derive(state, as_of, rules, cal).view
