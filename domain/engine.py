"""One step of a subject's log: an input in, the new state and what it causes out.

``step(state, event, rules, cal)`` is the whole of the subject agent's logic, pure and
deterministic, so the agent, a replay and the reliability suite's oracle compute the same states
and the same list changes from the same subject-event log:

1. fold the input into the set of the subject's inputs (domain/state.py; order-independent);
2. move the subject's clock to the latest date the input names or arrived on (never past the
   wall clock: ingest refuses anything dated or stamped in the future);
3. derive the list history up to the clock from all inputs (domain/history.py) and announce the
   difference with the history announced before: new changes, and for any announced change the
   input made untrue, a ``withdrawn`` change naming it (docs/events.md);
4. follow-ups: a severe record of an organisation is linked onto its legal representative's
   personal record (a ``linked`` event for that person's log); the timeliness of a new decision
   against the 7-working-day publication rule (arrival time is used for this, and for audit, only).

Joint punishment runs trigger - push - feedback (RULES.md 4): every announced change that starts a
measure (entered, escalated) waits for the implementing units' feedback; ``awaiting_feedback``
holds them (change id -> the date it was pushed: the subject's clock when it was announced, which is
its effective date unless the decision arrived late) until a feedback names the change id; a
withdrawn change stops waiting. The feedback deadline runs from the push: the implementing units
cannot act on a decision before it reaches them (RULES.md 3a: arrival time is for timeliness).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Final, NamedTuple, cast

import msgspec

from domain import events as ev
from domain.calendar import WorkingCalendar
from domain.clock import date_of_ms
from domain.digest import hex16
from domain.facts import BASIS_VERSION
from domain.history import ANNOUNCE_ORDER, advance
from domain.identifiers import is_valid_resident_id
from domain.rulebook import Rulebook
from domain.state import (
    LINKED_KEY,
    SubjectState,
    apply_detached,
    apply_feedback,
    apply_linked,
    apply_objection,
    apply_record,
    apply_repair,
    attach_generation,
    current_linked_key,
    deletion_record_of,
    deletion_records,
    detached_key,
    entry_contents,
    linked_key,
    move_digest,
    new_state,
    objection_targets,
    record_key_of,
    resolve_key,
    unit_moved_keys,
    unit_names,
    with_current_identity,
    with_current_linked_keys,
    with_learned_units,
)
from domain.types import Doc, View
from domain.validate import content_hash

PUBLICATION_WORKDAYS: Final = 7  # 双公示: published within 7 working days of the decision date
TIMELINESS_KINDS: Final = frozenset({"penalty", "license"})
NO_CHANGE: Final = frozenset({"redelivered", "duplicate", "stale", "invalid", "stale-tick", "moved-away",
                               "detach-noted"})
FEEDBACK_KINDS: Final = frozenset({"blacklist", "court_debtor", "escalated"})
FEEDBACK_TRANSITIONS: Final = frozenset({"entered", "escalated"})


class Step(NamedTuple):
    state: SubjectState
    outcome: str
    changes: list[Doc]     # to announce, in order: withdrawals first, then by effective date
    links: list[ev.SubjectEvent]  # events for other subjects' logs (a legal representative's)
    timeliness: tuple[tuple[str, int, int], ...]
    """What the input changes in the units' timeliness counts: (source unit, working days from the
    decision date to its first sighting, +1 or -1). A decision counts once, by its winning version's
    unit and date and its earliest sighting: a version that moves these takes the old count back
    (-1) and adds the new one (+1), so the counts are the same whatever order versions arrive in."""
    touched: frozenset[str] | None = None
    """The record keys whose per-record parts (entry, facts, publicity track and view) the input may
    have changed; None: any of them (the clock passed a due date, or everything was derived again).
    A state stored split re-writes only these (sinks/state_codec.py)."""
    domains: tuple[tuple[str, int], ...] = ()
    """What the input changes in the records-per-domain counts: (domain, +1 or -1). A record counts
    once, under its winning version's domain, from its first input on (a revocation that came first
    included): a correction that moves it takes the old count back, so the counts are the same
    whatever order versions arrive in (they counted a record's first input, if it was not a
    revocation, under that input's domain: seen differing between two arrival orders)."""


def step(state: SubjectState | None, event: ev.SubjectEvent | Doc, rules: Rulebook, cal: WorkingCalendar) -> Step:
    event = ev.from_dict(event)
    if state is None and isinstance(event, ev.DetachedEvent) and event.via is not None:
        # a linked copy leaving a person who has no file: nothing to take away (the organisation
        # links nothing to a file before it is made), and no file made for it
        return Step(new_state(event.subject, event.id_kind), "redelivered", [], [], ())
    if state is None:
        state = new_state(event.subject, getattr(event, "id_kind", "uscc"))
    if isinstance(event, (ev.ObjectionEvent, ev.RepairEvent)):  # (one an earlier version linked)
        aim = current_linked_key(event.record_key, event.origin)
        if aim is not event.record_key:
            event = msgspec.structs.replace(event, record_key=aim)
    # a file kept by an earlier version of the rules or of the derivation: derived again whole,
    # its links keyed as they are now, and everything its records send other files sent again
    # (re-keyed only where it is derived: an input that changes nothing returns the file as it was)
    kept, earlier = state, _kept_by_earlier_version(state, rules)
    upgrade_counts: tuple[tuple[tuple[str, int, int], ...], tuple[tuple[str, int], ...]] = ((), ())
    if earlier and not isinstance(event, ev.FeedbackEvent):
        relinked = with_current_linked_keys(state)
        state = with_learned_units(relinked)
        if state is not relinked:  # records merged: the report's counts follow them (as _timeliness_moved)
            merged_keys = unit_moved_keys(relinked, state)
            # (timeliness counts a department's own records, never their copies on a person's file)
            own = {k for k in merged_keys if not k.startswith(LINKED_KEY)}
            upgrade_counts = (_timeliness_of(_entries_moved(relinked, state, own), cal),
                              _domains_of(_entries_moved(relinked, state, merged_keys)))
    # an identity kept in an earlier form (domain/state.py IDENTITY_FORM): derived again from the records
    state = with_current_identity(state)
    if isinstance(event, ev.RecordEvent):
        new, outcome = apply_record(state, event)
    elif isinstance(event, ev.LinkedEvent):
        new, outcome = apply_linked(state, event)
    elif isinstance(event, ev.ObjectionEvent):
        new, outcome = apply_objection(state, event)
    elif isinstance(event, ev.RepairEvent):
        new, outcome = apply_repair(state, event)
    elif isinstance(event, ev.FeedbackEvent):
        new, outcome = apply_feedback(state, event)
        return Step(new, outcome, [], [], (), frozenset())
    elif isinstance(event, ev.DetachedEvent):
        new, outcome = apply_detached(state, event)
    else:  # tick (one at or before the subject's clock derives a file kept by an earlier version: rederive)
        new, outcome = state, ("tick" if event.due > (state.get("as_of") or "") else
                               "rederived" if earlier else "stale-tick")
    if outcome in ("redelivered", "invalid"):
        if new.get("units") is state.get("units"):
            return Step(kept if earlier else new, outcome, [], [], (), frozenset())
        # a redelivery that taught a unit's code (a link an organisation sends again once it learned
        # it): what the code moved is derived below, and the input is a duplicate, whose state is kept
        # and whose changes are announced (a redelivery changes nothing: agents/subject.py drops it)
        outcome = "duplicate"
    if isinstance(event, (ev.ObjectionEvent, ev.RepairEvent)):  # the record it names as the state keeps it
        aim = resolve_key(new.get("units"), event.record_key)
        if aim != event.record_key:
            event = msgspec.structs.replace(event, record_key=aim)
    moved = unit_moved_keys(state, new)  # (records a unit's code learned moved: domain/state.py learn_unit)
    touched = _touched(state, new, event, moved)
    timeliness = _timeliness_moved(state, new, event, touched, cal) if isinstance(event, ev.RecordEvent) or \
        isinstance(event, ev.DetachedEvent) and event.via is None else ()
    domains = _domains_moved(state, new, touched) \
        if isinstance(event, (ev.RecordEvent, ev.LinkedEvent, ev.DetachedEvent)) else ()
    if upgrade_counts != ((), ()):
        timeliness, domains = upgrade_counts[0] + timeliness, upgrade_counts[1] + domains
    # the clock: the latest date any input named or arrived on, a duplicate's included, so that it
    # is the same whichever copy came first
    # (a record moving away tells nothing of the date: the subject's clock stays)
    kept_as_of = state.get("as_of") or ""
    as_of = kept_as_of if isinstance(event, ev.DetachedEvent) and kept_as_of else \
        max([event.arrival_date, *event.named_dates(), kept_as_of])
    if outcome in NO_CHANGE and not earlier and as_of <= (state.get("as_of") or "") \
            and not _first_sightings_moved(state, new, event, touched) and state.get("units") == new.get("units"):
        # a version of an objection or a repair that does not win still goes to the legal
        # representatives' files, so that theirs keep the same versions in every order
        links = _links(new, event, outcome, rules) if _office_versions_moved(state, new, event) else []
        return Step(new, outcome, [], links, timeliness, frozenset(touched), domains)
    adv = advance(state, new, touched, as_of, rules, cal)
    if new is state:
        new = dict(state)  # type: ignore[assignment]
    changes = announce(adv.withdrawn, adv.added, event)
    new["timeline"] = adv.timeline
    new["facts"] = adv.facts
    new["basis"] = adv.basis
    new["facts_rules"] = rules.version
    new["evaluation"] = adv.view
    new["as_of"] = as_of
    cast(Doc, new).pop("history", None)  # (an earlier layout kept the cut history itself)
    if changes:
        awaiting = dict(new.get("awaiting_feedback") or {})
        for change in changes:
            change["event_ms"] = event.event_ms
            change["rules_version"] = rules.version
            if change["transition"] == "withdrawn":
                awaiting.pop(change["withdraws"], None)
            elif change["transition"] in FEEDBACK_TRANSITIONS and change["kind"] in FEEDBACK_KINDS \
                    and change["change_id"] not in (new.get("feedback") or {}):
                awaiting[change["change_id"]] = max(as_of, change["effective_date"])  # pushed now
        new["awaiting_feedback"] = awaiting
    if outcome == "repair" and isinstance(event, ev.RepairEvent) \
            and not adv.view["repairs"].get(event.record_key, {}).get("applied"):
        outcome = "repair-waiting" if adv.view["repairs"][event.record_key]["reason"] == "unknown-record" \
            else "repair-refused"

    if isinstance(event, ev.DetachedEvent):
        links = _detached_links(state, new, event, outcome, rules)
    else:
        links = relinks(new, rules) if earlier else _with_moved_links(_links(new, event, outcome, rules), new, rules,
                                                                      touched, moved)
    return Step(new, outcome, changes, links, timeliness, None if adv.all_parts else frozenset(touched), domains)


def _kept_by_earlier_version(state: SubjectState, rules: Rulebook) -> bool:
    """Whether a known file was derived with other rules or another form of the derivation (it is
    then derived again whole: domain/history.py ``advance``)."""
    return derived_otherwise(state, rules.version)


def derived_otherwise(state: View, rules_version: str, derivation: int = BASIS_VERSION) -> bool:
    """Whether a known file (one with records, objections or repairs) was derived under other rules
    than ``rules_version`` (the rules file's ``version``) or by another form of the derivation than
    ``derivation`` (domain/facts.py ``BASIS_VERSION``): its next input derives it again whole, a
    tick included (ops/rederive.py writes such ticks after an upgrade)."""
    return bool(state.get("records") or state.get("objections") or state.get("repairs")) and (
        state.get("facts_rules") != rules_version or derived_by(state) != derivation)


def derived_by(state: View) -> int | None:
    """The form of the derivation a stored file was derived by (its ``basis`` version), if any."""
    v = (state.get("basis") or {}).get("v")
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _first_sightings_moved(before: SubjectState, after: SubjectState, event: ev.SubjectEvent,
                           touched: set[str]) -> bool:
    """A stale version or a re-send changes no record's content, but it can change the record's
    versions or its deletion's (a version older than those known, a content first seen earlier than
    recorded), and with them which version came first: an upheld objection's correction is the
    first version after it was filed (domain/facts.py ``_gap``). Then the record is derived again.
    ``touched``: the input's record keys (``_touched``)."""
    if after is before or not isinstance(event, (ev.RecordEvent, ev.LinkedEvent)):
        return False
    old_records, new_records = before.get("records") or {}, after.get("records") or {}
    for key in touched:
        old, new = old_records.get(key) or {}, new_records.get(key) or {}
        if old.get("versions") != new.get("versions"):
            return True
        # a court deletion's versions too: the legal representatives' files get them all, in any order
        if (old.get("deletion") or {}).get("versions") != (new.get("deletion") or {}).get("versions"):
            return True
    return False


def _office_versions_moved(before: SubjectState, after: SubjectState, event: ev.SubjectEvent) -> bool:
    """An objection's or a repair's versions changed (a version that does not win, an earlier
    sighting of a known one) although its winner did not."""
    if after is before:
        return False
    if isinstance(event, ev.ObjectionEvent):
        part, key = "objections", event.objection_id
    elif isinstance(event, ev.RepairEvent):
        part, key = "repairs", event.record_key
    else:
        return False
    old = (cast(Doc, before).get(part) or {}).get(key) or {}
    new = (cast(Doc, after).get(part) or {}).get(key) or {}
    return old.get("versions") != new.get("versions")


def _touched(before: SubjectState, after: SubjectState, event: ev.SubjectEvent, moved: set[str]) -> set[str]:
    """The record keys whose own facts an input may have changed (``moved``: those a unit's code it
    taught moved, ``unit_moved_keys``)."""
    if isinstance(event, ev.ObjectionEvent):
        return objection_targets((before.get("objections") or {}).get(event.objection_id)) | objection_targets(
            (after.get("objections") or {}).get(event.objection_id)) | moved
    if isinstance(event, ev.RepairEvent):
        return {event.record_key} | moved
    if isinstance(event, ev.RecordEvent):
        return {record_key_of(after.get("units"), event.record)} | moved
    if isinstance(event, ev.LinkedEvent):
        return {record_key_of(after.get("units"), event.record, event.via)} | moved
    if isinstance(event, ev.DetachedEvent):
        return {detached_key(before, event)} | moved
    return moved


def announce(withdrawn: list[Doc], added: list[Doc], event: ev.SubjectEvent) -> list[Doc]:
    """What a subscriber must be told so that its history becomes the new one: a ``withdrawn``
    change for every announced change no longer true (its id is derived from the withdrawn id
    and the input that withdrew it), then every new change, by effective date."""
    out = []
    for old in sorted(withdrawn, key=lambda c: (c["effective_date"], c["change_id"])):
        cid = old["change_id"]
        out.append({
            "change_id": hex16(f"withdrawn|{cid}|{event.origin}".encode()),
            "subject": event.subject, "list": old["list"], "kind": old["kind"], "domain": old.get("domain"),
            "transition": "withdrawn", "effective_date": old["effective_date"], "causes": list(old["causes"]),
            "cause_kind": "withdrawal", "cause_decision": old.get("cause_decision"), "withdraws": cid,
        })
    new = [dict(c, subject=event.subject) for c in added]
    # on one date and list, as state transitions apply: an entry before its suspension (ANNOUNCE_ORDER)
    new.sort(key=lambda c: (c["effective_date"], c["list"], ANNOUNCE_ORDER.get(c["transition"], 99)))
    return out + new


def fold_changes(changes: Iterable[Doc]) -> dict[str, Doc]:
    """What a subscriber holds after applying announced changes in order: every change by id,
    a ``withdrawn`` change removing the one it names. Equal to the subject's history."""
    held: dict[str, Doc] = {}
    for change in changes:
        if change["transition"] == "withdrawn":
            held.pop(change["withdraws"], None)
        else:
            held[change["change_id"]] = change
    return held


def overdue_feedback(state: Doc, today: str, workdays: int, cal: WorkingCalendar) -> list[tuple[str, str]]:
    """(change id, date pushed) of the changes still without feedback ``workdays`` working days
    after they were pushed (announced)."""
    today_d = dt.date.fromisoformat(today)
    return sorted((cid, pushed) for cid, pushed in (state.get("awaiting_feedback") or {}).items()
                  if cal.workdays_between(dt.date.fromisoformat(pushed), today_d) > workdays)


def is_late(workdays: int) -> bool:
    return workdays > PUBLICATION_WORKDAYS


REMOVAL_PREFIX: Final = "listing_decision|"
"""The keys of listing and removal decisions (``decision_key``)."""

Reps = list[tuple[str, str | None]]
"""Legal representatives: (ID number, name)."""


def _links(state: SubjectState, event: ev.SubjectEvent, outcome: str, rules: Rulebook) -> list[ev.SubjectEvent]:
    """Events for the personal logs of the legal representatives of an organisation whose severe
    record an input concerned (RULES.md 4: a severe dishonest act of an organisation is also
    recorded on the personal record of its legal representative).

    A decision that is or was severe (or a court listing, or a listing decision that puts the
    organisation on a blacklist) in any of its versions is linked whole: every version the
    organisation keeps, with its own stamp and origin, to every legal representative any version
    names. The person's file folds them as the organisation's does, so it holds the same winner in
    any arrival order: a correction to a general penalty reaches the person as the severe original
    did (and an original that arrives after its correction does not put the person on a list the
    organisation is not on); re-sent versions are re-deliveries there.

    What the credit office decides about the record follows it (RULES.md 3, 5): every version of
    an objection that names it and of its repair decision, aimed at the linked record, so that the
    person's measures are suspended while the organisation's are, and end with its repair, or with
    an upheld objection that revokes it. Sent with the record (an objection or a repair that came
    first) and with each objection or repair that comes after it; whichever arrives last, the
    person's file ends the same. So does a removal decision (移出决定) of a domain a linked record
    lists the organisation in, with its objections: to the representatives of those records, with
    the record and when it comes after it. On the person's file it ends only the memberships linked
    from that organisation (domain/history.py ``list_tracks``), not the person's own."""
    if state.get("id_kind") != "uscc":
        return []
    if isinstance(event, ev.RecordEvent):
        if event.record.get("kind") == "registration":
            return []
        return _record_links(state, record_key_of(state.get("units"), event.record), rules)
    if isinstance(event, ev.ObjectionEvent):
        reps_of: dict[str, str | None] = {}
        for key in sorted(objection_targets((state.get("objections") or {}).get(event.objection_id))):
            reps_of.update(_linked_to(state, key, rules))
        return _linked_objection(state, event.objection_id, sorted(reps_of.items())) if reps_of else []
    if isinstance(event, ev.RepairEvent):
        reps = _linked_to(state, event.record_key, rules)
        return _linked_repair(state, event.record_key, reps) if reps else []
    return []


def _detached_links(before: SubjectState, after: SubjectState, event: ev.DetachedEvent, outcome: str,
                    rules: Rulebook) -> list[ev.SubjectEvent]:
    """A version of an organisation's record that moved to another organisation leaves the files of
    the legal representatives it was linked to (``_links``): a ``detached`` notice of its linked copy
    for each the record still links to, at the same generation; a representative it links to no
    more (the version that named the person, or made the record linked, moved away) loses every
    linked copy of the record (``whole``), as in an order where that version never came."""
    if outcome != "detached" or event.via is not None or before.get("id_kind") != "uscc":
        return []
    key = detached_key(before, event)
    entry = (before.get("records") or {}).get(key)
    if entry is None:
        return []
    reps = _ever_linked_to(before, key, rules)
    still = dict(_linked_to(after, key, rules)) if key in (after.get("records") or {}) else {}
    record, digest = event.record, event.hash
    if record.get("kind") == "court_deletion":  # as the listing sent it (deletion_records)
        sent = deletion_record_of(entry, key, record)
        if sent is None:
            return []
        record, digest = sent, content_hash(sent)
    return [ev.detached(rep_id, record, digest, event.gen, event.event_ms, None, via=before["id"],
                        whole=rep_id not in still)
            for rep_id in sorted(reps)]


def _ever_linked_to(state: SubjectState, key: str, rules: Rulebook) -> dict[str, str | None]:
    """Everyone the organisation's record ``key`` may have been linked to: those it links to now
    (``_linked_to``), and any of its versions names (a severe version that moved away before a milder
    one made the milder one linked too)."""
    reps = dict(_linked_to(state, key, rules))
    entry = (state.get("records") or {}).get(key)
    for content in entry_contents(cast(Doc, entry)).values() if entry is not None else ():
        rep = content.get("legal_rep") or {}
        rep_id = rep.get("id_no")
        if rep_id and is_valid_resident_id(rep_id):
            reps.setdefault(rep_id, rep.get("name"))
    return reps


def _moved_links(after: SubjectState, rules: Rulebook, touched: set[str], moved: set[str]) -> list[ev.SubjectEvent]:
    """What the records an input moved to another key sends the legal representatives (an input that
    taught the organisation a unit's code: domain/state.py ``learn_unit``): each one's versions, the
    objections naming it and its repair, aimed as the organisation keeps it now, with what the
    organisation knows of the unit, so that the person's file keys it the same way."""
    if not moved or after.get("id_kind") != "uscc" or moved == touched and len(touched) == 1:
        return []  # (the input's own record: linked already)
    records = after.get("records") or {}
    out: list[ev.SubjectEvent] = []
    for key in sorted(moved):
        if key in records:
            out += _record_links(after, key, rules)
    return out


def _with_moved_links(links: list[ev.SubjectEvent], after: SubjectState, rules: Rulebook, touched: set[str],
                      moved: set[str]) -> list[ev.SubjectEvent]:
    """``links`` and the links of the records the input moved (``_moved_links``), each event once."""
    extra = _moved_links(after, rules, touched, moved)
    if not extra:
        return links
    seen = {(type(e).__name__, e.subject, e.origin) for e in links}
    for event in extra:
        ident = (type(event).__name__, event.subject, event.origin)
        if ident not in seen:
            seen.add(ident)
            links.append(event)
    return links


def _record_links(state: SubjectState, key: str, rules: Rulebook,
                  removals: list[str] | None = None) -> list[ev.SubjectEvent]:
    """What the organisation's record ``key`` sends its legal representatives (``_links``): its
    versions, the objections naming it and its repair; for a record that lists the organisation in
    a domain, the removal decisions of that domain (``removals``: the keys of the organisation's
    removal decisions, if known) with their objections."""
    reps = _linked_to(state, key, rules)
    if not reps:
        return []
    out = _with_office(state, key, reps)
    domains = _listed_domains(cast(Doc, state["records"][key]), rules)
    if domains:
        records = state.get("records") or {}
        for rkey in (removals if removals is not None else _removal_keys(state)):
            if rkey != key and _removal_domains(cast(Doc, records[rkey])) & domains:
                out += _with_office(state, rkey, reps)
    return out


def _with_office(state: SubjectState, key: str, reps: Reps) -> list[ev.SubjectEvent]:
    """The record ``key``'s versions, the objections naming it and its repair, for ``reps``."""
    out = _linked_versions(state, key, reps)
    objections = state.get("objections") or {}
    for oid in sorted(oid for oid, o in objections.items() if key in objection_targets(o)):
        out += _linked_objection(state, oid, reps)
    return out + _linked_repair(state, key, reps)


def _removal_keys(state: SubjectState) -> list[str]:
    return sorted(k for k in state.get("records") or () if k.startswith(REMOVAL_PREFIX)
                  and _removal_domains(cast(Doc, state["records"][k])))


def _linked_to(state: SubjectState, key: str, rules: Rulebook) -> Reps:
    """The legal representatives the organisation's record ``key`` goes to: those it names when it
    is linked itself (``_representatives``); for a removal decision, also those of the organisation's
    records it ends a listing of (every record of the organisation is looked at: removals are few),
    whom those records send it to when they come after it (``_record_links``), so that it reaches
    them in every order, a removal one version of which is linked itself too."""
    reps = _representatives(state, key)
    if not key.startswith(REMOVAL_PREFIX):
        return reps
    records = state.get("records") or {}
    removed = _removal_domains(cast(Doc, records[key])) if key in records else set()
    if not removed:
        return reps
    found: dict[str, str | None] = dict(reps)
    for k in sorted(records):
        named = _representatives(state, k) if k != key else []
        if named and _listed_domains(cast(Doc, records[k]), rules) & removed:
            found.update(named)
    return sorted(found.items())


def relinks(state: SubjectState, rules: Rulebook) -> list[ev.SubjectEvent]:
    """Everything an organisation's file sends its legal representatives, every record at once
    (each event once): what a version that links more, or keys links otherwise, sends when it first
    derives a file kept by an earlier one (``step``). The person's file takes the events it had as
    re-deliveries."""
    if state.get("id_kind") != "uscc":
        return []
    removals = _removal_keys(state)
    out: list[ev.SubjectEvent] = []
    seen: set[tuple[str, str, str]] = set()
    for key in sorted(state.get("records") or ()):
        for link in _record_links(state, key, rules, removals):
            ident = (link.subject, link.origin, type(link).__name__)
            if ident not in seen:
                seen.add(ident)
                out.append(link)
    return out


def _linked_versions(state: SubjectState, key: str, reps: Reps) -> list[ev.SubjectEvent]:
    """Every version of the organisation's record ``key`` the organisation keeps (a court listing's
    deletions with it), with its own stamp and origin, for each legal representative's file."""
    entry = state["records"][key]
    contents = entry_contents(cast(Doc, entry))
    versions = [(ms, origin, contents[digest], digest)
                for digest, (ms, origin) in (entry.get("versions") or {}).items() if digest in contents]
    versions += [(ms, origin, content, "") for ms, origin, content in deletion_records(entry, key)]
    versions.sort(key=lambda v: (v[0], v[1]))
    units = unit_names(state.get("units"), key)
    # a version that came here by a move of its legacy number: its copies say at which (apply_record)
    moved = state.get("moves")
    return [ev.linked(rep_id, name, state["id"], origin, content, ms, units,
                      attach_generation(state, move_digest(content, digest)) if moved else 0)
            for rep_id, name in reps for ms, origin, content, digest in versions]


def _listed_domains(entry: Doc, rules: Rulebook) -> set[str]:
    """The blacklist domains any version of a record lists its subject in: a listing decision's
    domain, or that of the operator's rule a version matches (a severe penalty)."""
    if entry.get("content") is None or not entry.get("hash"):
        return set()
    out: set[str] = set()
    for content in entry_contents(entry).values():
        kind = content.get("kind")
        if kind == "listing_decision":
            fields = content.get("fields") or {}
            if fields.get("action") == "list" and fields.get("list_domain"):
                out.add(fields["list_domain"])
        elif kind not in ("court_listing", "court_deletion", "registration"):
            rule = rules.blacklist_rule_for(content)
            if rule is not None:
                out.add(rule.list_domain)
    return out


def _removal_domains(entry: Doc) -> set[str]:
    """The blacklist domains any version of a removal decision (移出决定) takes its subject off."""
    if entry.get("content") is None or not entry.get("hash"):
        return set()
    return {str(fields["list_domain"]) for content in entry_contents(entry).values()
            if content.get("kind") == "listing_decision" and (fields := content.get("fields") or {}).get("action")
            == "remove" and fields.get("list_domain")}


def _representatives(state: SubjectState, key: str) -> list[tuple[str, str | None]]:
    """The legal representatives (ID number, name) that the organisation's record ``key`` is linked
    to: any a version names, when some version is severe or a court listing; none otherwise (a
    court's deletion before its listing: linked with the listing)."""
    entry = (state.get("records") or {}).get(key)
    if entry is None or entry.get("content") is None or not entry.get("hash"):
        return []
    contents = entry_contents(cast(Doc, entry))
    if not any(c.get("severity") == "severe" or c.get("kind") == "court_listing" or _lists(c)
               for c in contents.values()):
        return []
    reps: dict[str, str | None] = {}
    for content in contents.values():
        rep = content.get("legal_rep") or {}
        rep_id = rep.get("id_no")
        if rep_id and is_valid_resident_id(rep_id):
            reps.setdefault(rep_id, rep.get("name"))
    return sorted(reps.items())


def _lists(content: Doc) -> bool:
    """A listing decision that puts its subject on a blacklist (列入决定)."""
    fields = content.get("fields") or {}
    return content.get("kind") == "listing_decision" and fields.get("action") == "list"


def _linked_objection(state: SubjectState, oid: str, reps: Reps) -> list[ev.SubjectEvent]:
    """Every version of the organisation's objection ``oid``, for each legal representative's file:
    the same objection (its id prefixed by the organisation's), on the linked record."""
    slot = (state.get("objections") or {}).get(oid)
    if not slot:
        return []
    org = state["id"]
    units = state.get("units")
    # (a version that named the unit by its name goes as it named it, with the code the organisation
    # reads that name as: the person's file aims it the same way, and follows the name as it does)
    return [ev.ObjectionEvent(origin=f"link:{org}:{origin}", subject=rep_id, event_ms=ms, id_kind="resident_id",
                              objection_id=f"{org}:{oid}",
                              record_key=linked_key(content.get("named") or content["record_key"], org),
                              status=content["status"], filed=content.get("filed"), resolved=content.get("resolved"),
                              provider_verification=bool(content.get("provider_verification")),
                              outcome=content.get("outcome"), units=unit_names(units, content["record_key"]) or None)
            for rep_id, _name in reps for content, ms, origin, _rank in slot.get("versions") or ()]


def _linked_repair(state: SubjectState, key: str, reps: Reps) -> list[ev.SubjectEvent]:
    """Every version of the repair decision on the organisation's record ``key``, for each legal
    representative's file, on the linked record."""
    slot = (state.get("repairs") or {}).get(key)
    if not slot:
        return []
    org = state["id"]
    units = unit_names(state.get("units"), key) or None
    return [ev.RepairEvent(origin=f"link:{org}:{origin}", subject=rep_id, event_ms=ms, id_kind="resident_id",
                           record_key=linked_key(content.get("named") or key, org), decision_date=content["approved"],
                           approved=bool(content.get("granted")), doc_no=content.get("doc_no"), units=units)
            for rep_id, _name in reps for content, ms, origin, _rank in slot.get("versions") or ()]


def _timeliness_basis(entry: View | None) -> tuple[str, str, str] | None:
    """What a penalty's or licence's timeliness (RULES.md 2, 3a) is taken from: its unit, its
    decision date and the China date of its earliest sighting (the department's stamp); None for
    other records."""
    content = (entry or {}).get("content")
    if not content or content.get("kind") not in TIMELINESS_KINDS or entry is None:
        return None
    decided, first = content.get("decision_date"), entry.get("first_ms")
    if not decided or not first:
        return None
    return str(content.get("source_unit") or "?"), str(decided), date_of_ms(int(first))


def _timeliness_moved(before: SubjectState, after: SubjectState, event: ev.RecordEvent | ev.DetachedEvent,
                      touched: set[str],
                      cal: WorkingCalendar) -> tuple[tuple[str, int, int], ...]:
    """The change in timeliness counts an input makes (``Step.timeliness``): the old count taken
    back, the new one added, when the unit, the decision date or the earliest sighting moved."""
    if event.record.get("kind") not in TIMELINESS_KINDS:
        return ()
    return _timeliness_of(_entries_moved(before, after, touched), cal)


def _timeliness_of(entries_moved: list[tuple[View | None, View | None]],
                   cal: WorkingCalendar) -> tuple[tuple[str, int, int], ...]:
    """The timeliness counts taken back and added for records' entries before and after a change."""
    moved: list[tuple[str, int, int]] = []
    for entries in entries_moved:
        old, new = _timeliness_basis(entries[0]), _timeliness_basis(entries[1])
        if old == new:
            continue
        for basis, sign in ((old, -1), (new, 1)):
            if basis is not None:
                unit, decided, arrived = basis
                workdays = cal.workdays_between(dt.date.fromisoformat(decided), dt.date.fromisoformat(arrived))
                moved.append((unit, workdays, sign))
    return tuple(moved)


def _domains_moved(before: SubjectState, after: SubjectState, touched: set[str]) -> tuple[tuple[str, int], ...]:
    """The change in the records-per-domain counts an input makes (``Step.domains``)."""
    return _domains_of(_entries_moved(before, after, touched))


def _domains_of(entries_moved: list[tuple[View | None, View | None]]) -> tuple[tuple[str, int], ...]:
    """The records-per-domain counts taken back and added for records' entries before and after a change."""
    out: list[tuple[str, int]] = []
    for entries in entries_moved:
        old, new = _counted_domain(entries[0]), _counted_domain(entries[1])
        if old != new:
            out += [(domain, sign) for domain, sign in ((old, -1), (new, 1)) if domain is not None]
    return tuple(out)


def _entries_moved(before: SubjectState, after: SubjectState,
                   touched: set[str]) -> list[tuple[View | None, View | None]]:
    """The touched records' entries before and after the input (``_touched``: the decision's key, and
    the keys a unit's code learned moved), those the input changed, by key."""
    old_records, new_records = before.get("records") or {}, after.get("records") or {}
    out = []
    for key in sorted(touched) if len(touched) > 1 else touched:
        old_entry, new_entry = old_records.get(key), new_records.get(key)
        if old_entry is not new_entry:
            out.append((cast("View | None", old_entry), cast("View | None", new_entry)))
    return out


def _counted_domain(entry: View | None) -> str | None:
    """The domain a record entry counts under: its winning version's; None: not counted (no entry,
    no content yet: a court deletion before its listing)."""
    if entry is None or entry.get("content") is None:
        return None
    domain = entry.get("domain")
    return domain if isinstance(domain, str) and domain else None


# the report's counter of an input the rules core failed on (a bug; the input is dead-lettered)
ERROR_COUNTS: Final = {"outcome:error": 1}


def report_counts(event: ev.SubjectEvent, result: Step) -> dict[str, int]:
    """The counters an applied input adds to the subject generation's statistics (read by
    ``creditstream report``): its outcome, whether it was a department input, the list changes by
    kind and transition, its unit's timeliness (late after 7 working days) and the records per
    domain."""
    if result.outcome == "invalid":
        return {"outcome:invalid": 1}
    out = {f"outcome:{result.outcome}": 1}
    if isinstance(event, ev.DEPARTMENT_INPUTS) and not event.origin.startswith(ev.LINK_ORIGIN) \
            and not (isinstance(event, ev.RecordEvent) and event.moved):  # (came in once, where it was)
        out["inputs"] = 1
    for change in result.changes:
        key = f"change:{change['kind']}:{change['transition']}"
        out[key] = out.get(key, 0) + 1
    for unit, workdays, sign in result.timeliness:
        for field, n in ((f"unit:{unit}:records", sign),
                         (f"unit:{unit}:{'late' if is_late(workdays) else 'on_time'}", sign),
                         (f"unit:{unit}:late_workdays_total", sign * workdays)):
            out[field] = out.get(field, 0) + n
    for domain, sign in result.domains:
        field = f"domain:{domain}:records"
        out[field] = out.get(field, 0) + sign
    return out
