"""domain.memberships: a subject's list memberships as intervals and at any instant (issue 15, 2),
read from the timeline the state keeps; cross-checked against the rules' own derivation at the
same instant (domain.history.derive), which re-derives everything from the inputs."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from domain import events as ev
from domain.history import derive
from domain.memberships import Cause, day_of, intervals, memberships_at
from domain.validate import decision_key
from tests.builders import objection, record, record_event, repair
from tests.unit.list_inputs import CAL, DATES, RULES, TODAY, list_inputs, run


def test_court_listing_entered_and_exited_on_its_dates():
    listing = record("court_listing", "(2024)豫01执1号", "2024-03-01", listing_reason="other")
    deletion = record("court_deletion", "(2024)豫01执1号", "2025-01-10", deletion_reason="performed")
    state = run([record_event(deletion, TODAY), record_event(listing, TODAY)])
    (m,) = [m for m in intervals(state) if m.kind == "court_debtor"]
    assert (m.list, m.kind, m.domain, m.entered, m.exited) == (
        "court_debtor", "court_debtor", "court_enforcement", "2024-03-01", "2025-01-10")
    assert m.entered_by == Cause("listing", decision_key(listing))
    assert m.exited_by.kind == "deletion" and "(2024)豫01执1号" in m.exited_by.decision
    assert m.causes == (decision_key(listing),)
    assert not m.entry_projected and not m.exit_projected
    assert m.rules_version == RULES.version
    assert memberships_at(state, "2024-02-29").lists == ()
    assert memberships_at(state, "2024-03-01").get("court_debtor") is not None
    assert memberships_at(state, "2025-01-09").get("court_debtor") is not None
    assert memberships_at(state, "2025-01-10").get("court_debtor") is None


def test_an_exit_after_the_clock_is_projected():
    listing = record("listing_decision", "税黑〔2025〕1号", "2025-03-03", list_domain="taxation", action="list")
    state = run([record_event(listing, TODAY)])
    (m,) = [m for m in intervals(state) if m.kind == "blacklist"]
    assert (m.list, m.entered, m.exited, m.exit_projected) == ("blacklist:taxation", "2025-03-03", "2028-03-03", True)
    now, later = memberships_at(state, TODAY), memberships_at(state, "2028-03-02")
    assert not now.projected and later.projected
    assert later.get("blacklist:taxation").until_projected
    assert memberships_at(state, "2028-03-03").get("blacklist:taxation") is None


def test_suspended_during_an_objection_and_resumed_after_it():
    pen = record("penalty", "环罚〔2024〕1号", "2024-02-05", severity="severe", domain="environment")
    key = decision_key(pen)
    state = run([record_event(pen, "2024-02-06"),
                 objection("OB-1", key, "filed", "2024-03-04", arrived="2024-03-04"),
                 objection("OB-1", key, "rejected", "2024-03-04", "2024-03-07", arrived="2024-03-07")])
    (m,) = [m for m in intervals(state) if m.list == "blacklist:environment"]
    (s,) = m.suspensions
    assert (s.since, s.until, s.objection, s.ended_by) == (
        "2024-03-04", "2024-03-07", "OB-1", Cause("objection_resolved", "OB-1"))
    before, during, after = (memberships_at(state, d).get("blacklist:environment")
                             for d in ("2024-03-03", "2024-03-05", "2024-03-07"))
    assert not before.suspended and during.suspended and not after.suspended
    assert during.objection == "OB-1" and during.causes == (key,)


def test_a_pending_objection_suspends_to_the_end():
    pen = record("penalty", "环罚〔2024〕2号", "2024-02-05", severity="severe", domain="environment")
    state = run([record_event(pen, "2024-02-06"),
                 objection("OB-2", decision_key(pen), "filed", "2024-03-04", arrived="2024-03-04")])
    (m,) = [m for m in intervals(state) if m.list == "blacklist:environment"]
    # suspended until the membership itself ends (its expected expiry): nothing resolved it
    assert [(s.since, s.until, s.objection, s.ended_by.kind) for s in m.suspensions] == [
        ("2024-03-04", "2027-02-05", "OB-2", "expiry")]
    assert m.exit_projected
    assert memberships_at(state, "2025-01-01").get("blacklist:environment").suspended


def test_an_approved_repair_ends_the_membership_and_the_record_is_no_basis_after_it():
    pen = record("penalty", "环罚〔2024〕3号", "2024-02-05", severity="severe", domain="environment")
    key = decision_key(pen)
    state = run([record_event(pen, "2024-02-06"), repair(key, "2024-08-01", arrived="2024-08-01")])
    (m,) = [m for m in intervals(state) if m.list == "blacklist:environment"]
    assert (m.exited, m.exited_by) == ("2024-08-01", Cause("repair", key))
    assert memberships_at(state, "2024-07-31").get("blacklist:environment").causes == (key,)
    assert memberships_at(state, "2024-08-01").get("blacklist:environment") is None


def test_the_records_in_force_at_an_instant():
    """Two listings keep one membership; after the first expires only the second is its basis."""
    first = record("listing_decision", "税黑〔2020〕1号", "2020-01-06", list_domain="taxation", action="list",
                   period_years=2)
    second = record("listing_decision", "税黑〔2021〕1号", "2021-06-01", list_domain="taxation", action="list")
    state = run([record_event(first, TODAY), record_event(second, TODAY)])
    (m,) = [m for m in intervals(state) if m.kind == "blacklist"]
    assert (m.entered, m.exited) == ("2020-01-06", "2024-06-01")
    assert set(m.causes) == {decision_key(first), decision_key(second)}
    assert memberships_at(state, "2020-05-01").get("blacklist:taxation").causes == (decision_key(first),)
    assert set(memberships_at(state, "2021-07-01").get("blacklist:taxation").causes) == set(m.causes)
    assert memberships_at(state, "2022-01-06").get("blacklist:taxation").causes == (decision_key(second),)


def test_escalation_and_red_list_intervals():
    a = record("listing_decision", "税黑〔2020〕1号", "2020-01-06", list_domain="taxation", action="list",
               period_years=2)
    b = record("listing_decision", "安黑〔2020〕1号", "2020-06-01", list_domain="work_safety", action="list",
               period_years=1)
    state = run([record_event(a, TODAY), record_event(b, TODAY)])
    by = {m.list: m for m in intervals(state)}
    assert (by["escalated"].entered, by["escalated"].exited) == ("2020-06-01", "2021-06-01")
    assert memberships_at(state, "2021-01-04").get("escalated").lists == ("blacklist:taxation",
                                                                          "blacklist:work_safety")
    # three years without adverse records and off every list: the taxation listing (2 years) lasted
    # to 2022-01-06, after the work-safety one (to 2021-06-01): clean from 2025-01-06
    assert (by["red_list"].entered, by["red_list"].exited, by["red_list"].entry_projected) == (
        "2025-01-06", None, False)
    assert memberships_at(state, "2025-01-05").get("red_list") is None
    assert memberships_at(state, "2025-01-06").get("red_list") is not None


def test_instants():
    assert day_of("2024-03-04") == "2024-03-04"
    assert day_of(dt.date(2024, 3, 4)) == "2024-03-04"
    assert day_of(dt.datetime(2024, 3, 3, 17, 0, tzinfo=dt.UTC)) == "2024-03-04"  # 01:00 in China
    assert day_of("2024-03-03T15:59:59+00:00") == "2024-03-03"
    assert day_of(dt.datetime(2024, 3, 3, 23, 0)) == "2024-03-03"  # naive: China time
    # an ID number is no instant (seen: POST /check took "410105199201011234" as 4101-05-19)
    for bad in ("2024-13-01", "yesterday", "", "410105199201011234", "20240101"):
        with pytest.raises(ValueError, match="ISO form"):
            day_of(bad)
    # past the datetime's range once in China time: a bad instant (the check API's 400), not an OverflowError
    for edge in ("9999-12-31T23:00:00-12:00", "0001-01-01T01:00:00+14:00"):
        with pytest.raises(ValueError, match="outside the years"):
            day_of(edge)
    with pytest.raises(TypeError):
        day_of(20240304)  # type: ignore[arg-type]


def test_a_state_without_a_timeline_has_no_memberships():
    assert intervals({"id": "x", "records": {}}) == []
    standing = memberships_at({"id": "x", "records": {}}, "2024-01-01")
    assert standing.lists == () and not standing.projected


def test_memberships_are_json():
    listing = record("court_listing", "(2025)豫01执2号", "2025-03-03", listing_reason="refuse_with_ability")
    state = run([record_event(listing, TODAY)])
    doc = msgspec.json.decode(msgspec.json.encode(intervals(state)))
    assert [(m["list"], m["exited"]) for m in doc] == [("court_debtor", None)]  # able but refuses: no fixed term


# ----------------------------------------------------------------------------------- properties


def _view_lists(state, day):
    """The rules' own answer at ``day``, derived from scratch from the inputs (domain.history)."""
    view = derive(state, day, RULES, CAL).view["lists"]
    return {name: (v["since"], v["until"], v["suspended"]) for name, v in view.items()}


def _standing_lists(state, day):
    return {s.list: (s.since, s.until, s.suspended) for s in memberships_at(state, day).lists}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(list_inputs(), st.lists(st.sampled_from(DATES), min_size=1, max_size=3))
def test_any_instant_agrees_with_the_rules_derivation(inputs, extra):
    state = run(inputs)
    days = set(extra) | {state["as_of"]}
    for m in intervals(state):  # every boundary, and the day before it
        for d in [m.entered, m.exited, *(s.since for s in m.suspensions), *(s.until for s in m.suspensions)]:
            if d is not None:
                days |= {d, (dt.date.fromisoformat(d) - dt.timedelta(days=1)).isoformat()}
    for day in sorted(days):
        assert _standing_lists(state, day) == _view_lists(state, day), day
    # on the subject's clock: the evaluation the state keeps
    kept = {name: (v["since"], v["until"], v["suspended"]) for name, v in state["evaluation"]["lists"].items()}
    assert _standing_lists(state, state["as_of"]) == kept


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(list_inputs())
def test_a_membership_rests_on_the_records_the_rules_assembled_it_from(inputs):
    """A blacklist's or court debtors' membership, read back, rests on every record of its stay:
    the records the rules' own derivation assembled it from (removals, deletions and upheld
    objections included), though its list changes name only the records that decide them."""
    from domain.history import timeline

    state = run(inputs)
    _, parts = timeline(state, RULES, CAL)
    derived = {(m["name"], m["since"].isoformat()): tuple(sorted({c.key for c in m["parts"]}))
               for m in parts["memberships"]}
    read = {(m.list, m.entered): m.causes for m in intervals(state) if m.kind in ("blacklist", "court_debtor")}
    assert read == derived


def test_an_older_version_arriving_late_moves_the_correction_of_an_upheld_objection():
    """Found by the property above: a listing decision first seen dated 2020-06-01, an objection
    upheld (corrected) on 2019-03-04, then a version of the same decision dated 2019-03-04 sent
    earlier but arriving last. That stale version changes no content, but it changes which
    version came first, so the 2020-06-01 one is now the correction that puts the listing back in
    force (domain/facts.py ``_gap``). The state kept must say what the rules say from scratch."""
    import datetime as _dt

    from domain.events import ObjectionEvent, RecordEvent

    sid = "91310110666007217T"

    def listing(n: int, decided: str, h: str) -> RecordEvent:
        ms = int(_dt.datetime.fromisoformat(decided + "T10:00:00+08:00").timestamp() * 1000)
        return RecordEvent(origin=f"creditstream.penalty/0/{n}", subject=sid, event_ms=ms, hash=h, id_kind="uscc",
                           record={"kind": "listing_decision", "action_kind": None, "source_unit": "某单位",
                                   "source_unit_code": "11410100005200036R", "doc_no": "黑B",
                                   "subject_name": "某公司", "subject_category": "legal_entity",
                                   "ids": {"uscc": sid}, "id_flags": [], "decision_date": decided,
                                   "severity": None, "domain": None, "revoked": False, "legal_rep": None,
                                   "simplified_procedure": False,
                                   "fields": {"list_domain": "taxation", "action": "list"}, "event_id": None})

    upheld = ObjectionEvent(origin="creditstream.penalty/0/2", subject=sid, event_ms=1551664800000,
                            objection_id="OB0", record_key="listing_decision|11410100005200036R|黑B",
                            status="upheld", filed="2019-03-04", resolved="2019-03-04",
                            provider_verification=False, outcome="corrected", id_kind="uscc", record=None, hash=None)
    state = run([listing(0, "2020-06-01", "a" * 32), upheld, listing(3, "2019-03-04", "b" * 32)])
    for day in ("2019-03-04", "2020-05-31", "2020-06-01", state["as_of"]):
        assert _standing_lists(state, day) == _view_lists(state, day), day
    assert "blacklist:taxation" in _standing_lists(state, "2020-06-01")


# ---------------------------------------------------------------------------- as known at a past instant


def _known_by(inputs, day):
    """The inputs as they stood at ``day``: the decisions dated on or before it (records by their
    decision date, repairs by their approval, objections filed by then, those resolved after it still
    pending), a revocation kept (what it withdrew is withdrawn from the past too: RULES.md 5)."""
    out = []
    for e in inputs:
        if isinstance(e, ev.TickEvent):
            continue
        if isinstance(e, ev.RecordEvent):
            if e.record["decision_date"] <= day or e.record.get("revoked"):
                out.append(e)
        elif isinstance(e, ev.RepairEvent):
            if e.decision_date <= day:
                out.append(e)
        elif isinstance(e, ev.ObjectionEvent):
            if e.filed > day:
                continue
            if e.resolved is not None and e.resolved > day and not (e.status == "upheld" and e.outcome == "revoked"):
                e = msgspec.structs.replace(e, status="filed", resolved=None, outcome=None)
            out.append(e)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(list_inputs(), st.sampled_from(DATES[1:]))
def test_a_past_instants_list_ends_are_those_the_decisions_of_then_gave(inputs, day):
    """``memberships_at(state, day, rules)`` at an instant before the subject's clock: each list's
    ``until`` is the one the same inputs, cut to what was decided by ``day``, give (RULES.md 3a); the
    lists held then are the same as without the cut."""
    dates: dict[str, set[bool]] = {}
    for e in inputs:  # (a correction that moves its decision across the instant: which version was known?)
        if isinstance(e, ev.RecordEvent):  # (by kind and number: a unit's name and code are one unit)
            dates.setdefault(f'{e.record["kind"]}|{e.record["doc_no"]}', set()).add(e.record["decision_date"] <= day)
    assume(all(len(sides) == 1 for sides in dates.values()))
    # (one code for the unit: a name-only decision is the decision of the code its name stands for, which
    # any input teaches whatever its date, so cutting the inputs could change which decisions are one)
    assume(len({e.record.get("source_unit_code") for e in inputs if isinstance(e, ev.RecordEvent)}) <= 1
           and all(e.record.get("source_unit_code") for e in inputs if isinstance(e, ev.RecordEvent)))
    state = run(inputs)
    if not state or day >= state["as_of"]:
        return
    then = run(_known_by(inputs, day))
    now = {s.list: s.until for s in memberships_at(state, day, RULES).lists}
    assert set(now) == {s.list for s in memberships_at(state, day).lists}
    expected = {s.list: s.until for s in memberships_at(then, day).lists} if then else {}
    assert now == {name: expected.get(name, until) for name, until in now.items()}, day


def test_a_list_end_decided_after_an_instant_is_not_shown_at_it():
    """An audit saw a report of 2024-04-02 give the environment blacklist's end as 2025-01-10, the date
    of a repair decided nine months later, and a court listing with no fixed term end on its later
    deletion's date."""
    pen = record("penalty", "环罚〔2024〕305号", "2024-03-05", severity="severe", domain="environment")
    state = run([record_event(pen, "2024-03-06"), repair(decision_key(pen), "2025-01-10", arrived="2025-01-11")])
    (then,) = memberships_at(state, "2024-04-02", RULES).lists
    assert (then.until, then.until_projected) == ("2027-03-05", True)
    assert memberships_at(state, "2024-04-02").lists[0].until == "2025-01-10"  # what happened
    assert memberships_at(state, "2025-01-10", RULES).lists == ()
    listing = record("court_listing", "(2025)豫01执5号", "2025-06-02", listing_reason="refuse_with_ability")
    deletion = record("court_deletion", "(2025)豫01执5号", "2025-09-01", deletion_reason="performed")
    state = run([record_event(listing, "2025-06-03"), record_event(deletion, "2025-09-02")])
    (then,) = memberships_at(state, "2025-08-31", RULES).lists
    assert (then.list, then.until, then.until_projected) == ("court_debtor", None, False)
