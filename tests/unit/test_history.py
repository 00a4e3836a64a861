"""The list history as a pure function of a subject's inputs (RULES.md 3a, issue: time and order).

Scenario tests name the cases seen with stock producers (arrival time = sending time, unkeyed);
the property tests check that every arrival order of the same inputs gives the same state and
history, and that a subscriber folding the announced changes holds exactly that history."""

from __future__ import annotations

import itertools
import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import events as ev
from domain.calendar import WorkingCalendar
from domain.engine import fold_changes, step
from domain.history import derive, history_of
from domain.rulebook import load_rulebook
from domain.validate import decision_key
from tests.builders import ORG, arrival, objection, record, record_event, repair, tick
from tests.unit.list_inputs import OTHER_UNIT, list_inputs

RULES = load_rulebook()
CAL = WorkingCalendar()
TODAY = "2026-11-30"


def run(inputs, state=None):
    announced = []
    outcomes = []
    for event in inputs:
        result = step(state, event, RULES, CAL)
        state = result.state
        announced += result.changes
        outcomes.append(result.outcome)
    return state, announced, outcomes


def summary(changes):
    return [(c["list"], c["transition"], c["effective_date"], c["cause_kind"]) for c in changes]


# ----------------------------------------------------------------------------------- scenarios


def test_court_deletion_sent_late_exits_on_its_own_date():
    listing = record("court_listing", "(2026)豫01执9号", "2026-03-02")
    deletion = record("court_deletion", "(2026)豫01执9号", "2026-03-20", deletion_reason="performed")
    state, announced, _ = run([record_event(listing, TODAY), record_event(deletion, TODAY)])
    folded = fold_changes(announced)
    assert sorted(summary(folded.values())) == [
        ("court_debtor", "entered", "2026-03-02", "listing"),
        ("court_debtor", "exited", "2026-03-20", "deletion"),
    ]
    assert "court_debtor" not in state["evaluation"]["lists"]


def test_deletion_before_its_listing_does_not_reactivate_it():
    listing = record("court_listing", "(2026)豫01执8号", "2026-03-02")
    deletion = record("court_deletion", "(2026)豫01执8号", "2026-03-20", deletion_reason="performed")
    state, announced, outcomes = run([record_event(deletion, TODAY), record_event(listing, TODAY)])
    assert outcomes == ["deletion", "new"]
    assert state["records"][decision_key(listing)]["status"] == "deleted"
    assert sorted(summary(announced)) == [("court_debtor", "entered", "2026-03-02", "listing"),
                                          ("court_debtor", "exited", "2026-03-20", "deletion")]


def test_objection_filed_and_resolved_long_ago_sent_today():
    pen = record("penalty", "环罚〔2026〕1号", "2026-02-02", severity="severe", domain="environment")
    key = decision_key(pen)
    state, announced, _ = run([
        record_event(pen, "2026-02-03"),
        objection("OB-1", key, "filed", "2026-03-02", arrived=TODAY),
        objection("OB-1", key, "rejected", "2026-03-02", "2026-03-04", arrived=TODAY),
    ])
    got = summary(c for c in announced if c["list"] == "blacklist:environment")
    assert ("blacklist:environment", "suspended", "2026-03-02", "objection_filed") in got
    assert ("blacklist:environment", "resumed", "2026-03-04", "objection_resolved") in got
    # the filing alone, seen today, is overdue as far as anyone knows; its resolution withdraws that
    assert not [c for c in fold_changes(announced).values() if c["transition"] == "objection_overdue"]
    assert state["evaluation"]["overdue_objections"] == []
    _, announced, _ = run([record_event(pen, "2026-02-03"),
                           objection("OB-1", key, "rejected", "2026-03-02", "2026-03-04", arrived=TODAY)])
    assert not [c for c in announced if c["transition"] in ("objection_overdue", "withdrawn")]


def test_objection_resolved_after_its_deadline_is_overdue_on_the_day_after_it():
    pen = record("penalty", "环罚〔2026〕2号", "2026-02-02", severity="severe", domain="environment")
    key = decision_key(pen)
    _, announced, _ = run([
        record_event(pen, "2026-02-03"),
        objection("OB-2", key, "rejected", "2026-03-02", "2026-04-30", arrived=TODAY),
    ])
    overdue = [c for c in announced if c["transition"] == "objection_overdue"]
    assert [c["effective_date"] for c in overdue] == ["2026-03-06"]  # 3 working days: Mon 2 .. Thu 5


def test_upheld_objection_with_revocation_before_its_record_withdraws_everything():
    pen = record("penalty", "环罚〔2026〕3号", "2026-02-02", severity="severe", domain="environment")
    other = record("listing_decision", "税黑〔2026〕1号", "2026-02-10", list_domain="taxation", action="list")
    key = decision_key(pen)
    state, announced, _ = run([
        objection("OB-3", key, "upheld", "2026-03-02", "2026-03-04", outcome="revoked", arrived=TODAY),
        record_event(other, TODAY),
        record_event(pen, TODAY),
    ])
    assert "blacklist:environment" not in state["evaluation"]["lists"]
    assert "escalated" not in state["evaluation"]["lists"]
    assert not [c for c in fold_changes(announced).values() if c["list"] in ("blacklist:environment", "escalated")]


def test_upheld_objection_arriving_after_the_listing_withdraws_what_was_announced():
    pen = record("penalty", "环罚〔2026〕4号", "2026-02-02", severity="severe", domain="environment")
    key = decision_key(pen)
    state, announced, _ = run([
        record_event(pen, "2026-02-03"),
        objection("OB-4", key, "upheld", "2026-03-02", "2026-03-04", outcome="revoked", arrived=TODAY),
    ])
    withdrawn = [c for c in announced if c["transition"] == "withdrawn"]
    assert withdrawn and all(c["withdraws"] for c in withdrawn)
    assert not [c for c in fold_changes(announced).values() if c["list"] == "blacklist:environment"]


def test_repair_sent_before_its_penalty_applies_when_the_penalty_arrives():
    pen = record("penalty", "市监罚〔2025〕7号", "2025-01-06", severity="general", domain="market")
    key = decision_key(pen)
    state, announced, outcomes = run([repair(key, "2025-05-06", arrived=TODAY), record_event(pen, TODAY)])
    assert outcomes == ["repair-waiting", "new"]
    assert state["evaluation"]["repairs"][key]["applied"]
    assert state["evaluation"]["publicity"][key]["repaired"]
    assert ("publicity:" + key, "publicity_expired", "2025-05-06", "repair") in summary(announced)


def test_a_repairs_changes_name_the_repair_decision_and_the_record_they_end():
    """The exit from the blacklist and the end of the penalty's publicity a repair causes name the
    repair decision in ``cause_decision`` (as a deletion's, a removal's and an objection's name
    theirs), and the repaired record in ``causes``; in either arrival order."""
    pen = record("penalty", "郑人社罚〔2024〕200号", "2024-01-10", severity="severe", domain="wage_arrears")
    key = decision_key(pen)
    fix = repair(key, "2024-09-02", arrived="2024-09-03", doc_no="XF-200")
    for inputs in ([record_event(pen, "2024-01-11"), fix], [fix, record_event(pen, "2024-01-11")]):
        _state, announced, _ = run(inputs)
        by_list = {(c["list"], c["transition"]): c for c in fold_changes(announced).values()}
        for name, transition in (("blacklist:wage_arrears", "exited"), ("publicity:" + key, "publicity_expired")):
            change = by_list[(name, transition)]
            assert (change["effective_date"], change["cause_kind"], change["cause_decision"]) == (
                "2024-09-02", "repair", "XF-200"), change
            assert change["causes"] == [key], change


def test_original_after_its_correction_changes_nothing():
    original = record("penalty", "环罚〔2026〕5号", "2026-02-02", severity="severe", domain="environment")
    corrected = dict(original, severity="general")
    first = record_event(original, TODAY, at="creditstream.penalty/1/10")
    second = record_event(corrected, TODAY, at="creditstream.penalty/1/11")  # same ms, later offset
    assert first.event_ms == second.event_ms
    state, announced, outcomes = run([second, first])
    assert outcomes == ["new", "stale"]
    entry = state["records"][decision_key(original)]
    assert entry["content"]["severity"] == "general" and entry["version"] == 2
    in_order, _, _ = run([first, second])
    assert essence(in_order) == essence(state)


def test_two_year_listing_of_2024_sent_today_is_entered_and_exited():
    listing = record("court_listing", "(2024)豫01执1号", "2024-03-01")
    _, announced, _ = run([record_event(listing, TODAY)])
    assert summary(c for c in announced if c["list"] == "court_debtor") == [
        ("court_debtor", "entered", "2024-03-01", "listing"),
        ("court_debtor", "exited", "2026-03-01", "expiry"),
    ]


def test_escalation_that_began_and_ended_in_the_past_is_announced_whole():
    a = record("listing_decision", "税黑〔2020〕1号", "2020-01-06", list_domain="taxation", action="list",
               period_years=2)
    b = record("listing_decision", "安黑〔2020〕1号", "2020-06-01", list_domain="work_safety", action="list",
               period_years=1)
    _, announced, _ = run([record_event(a, TODAY), record_event(b, TODAY)])
    assert [c for c in summary(announced) if c[0] == "escalated"] == [
        ("escalated", "escalated", "2020-06-01", "listing"),
        ("escalated", "de-escalated", "2021-06-01", "expiry"),
    ]


def test_clock_never_passes_the_dates_inputs_name():
    pen = record("penalty", "环罚〔2026〕6号", "2026-02-02", severity="severe", domain="environment")
    state, _, _ = run([record_event(pen, TODAY)])
    assert state["as_of"] == TODAY


def test_list_changes_say_why():
    listing = record("listing_decision", "税黑〔2024〕2号", "2024-01-08", list_domain="taxation", action="list")
    removal = record("listing_decision", "税移〔2024〕1号", "2024-05-06", list_domain="taxation", action="remove")
    _, announced, _ = run([record_event(listing, TODAY), record_event(removal, TODAY)])
    exits = [c for c in fold_changes(announced).values() if c["transition"] == "exited"]
    assert [(c["effective_date"], c["cause_kind"], c["cause_decision"]) for c in exits] == [
        ("2024-05-06", "removal", decision_key(removal))]


def test_a_late_record_that_decides_a_change_instead_is_announced_again_under_its_id():
    """A red-list exit on a day with two adverse records names one of them (domain/history.py
    ``_cause_at``). Whichever arrives last, a subscriber's copy names the one the inputs give: the
    exit is withdrawn and announced again under the same id with the new cause."""
    old = record("court_listing", "执A", "2019-03-04")
    listing = record("listing_decision", "黑A", "2024-07-01", list_domain="taxation", action="list")
    penalty = record("penalty", "A", "2024-07-01", severity="severe", domain="environment")
    results = []
    for order in itertools.permutations([old, listing, penalty]):
        state, announced, _ = run([record_event(r, TODAY) for r in order])
        held = fold_changes(announced)
        assert told(held) == told(history_of(state)), order
        [exit_] = [c for c in held.values() if c["transition"] == "red_list_exited"]
        results.append((exit_["change_id"], exit_["cause_kind"], exit_["cause_decision"]))
    assert len(set(results)) == 1, results


def test_2025_regime_from_2025_06_22():
    pen = record("penalty", "市监罚〔2025〕9号", "2025-12-01", severity="general", domain="market")
    state, _, _ = run([record_event(pen, TODAY)])
    assert state["evaluation"]["publicity"][decision_key(pen)]["publicity_end"] == "2026-12-01"


def test_tick_moves_the_clock_and_announces_what_fell_due():
    listing = record("court_listing", "(2024)豫01执2号", "2024-12-02")
    state, announced, _ = run([record_event(listing, "2026-11-30")])
    assert state["evaluation"]["next_due"] == "2026-12-02"
    state, announced, outcomes = run([tick("2026-12-02")], state)
    assert outcomes == ["tick"]
    assert summary(announced) == [("court_debtor", "exited", "2026-12-02", "expiry")]
    _, again, outcomes = run([tick("2026-12-02")], state)
    assert outcomes == ["stale-tick"] and again == []


def test_bad_subject_events_are_refused_by_type():
    for raw in (b"{}", b"[1,2,3]", b'{"subject":["a"]}', b'{"type":"record","subject":null}', b"not json"):
        with pytest.raises(ev.BadEvent):
            ev.decode(raw)
    good = record_event(record("license", "许可1", "2026-01-05"), TODAY)
    assert ev.decode(ev.encode(good)) == good


@pytest.mark.pure_python
def test_an_input_re_derives_only_the_records_it_touches(monkeypatch):
    """Cost (issue: time and order, 7): an input re-derives its own record's facts, not the whole
    history; the lists are assembled from the kept facts (timings: bench/bench.py's hot subject)."""
    import domain.history as history

    state = None
    for i in range(300):
        rec = record("penalty", f"罚{i}", f"20{20 + i % 6}-0{1 + i % 9}-1{i % 10}", severity="general",
                     domain="market")
        state = step(state, record_event(rec, TODAY), RULES, CAL).state
    calls = []
    real = history.record_facts
    monkeypatch.setattr(history, "record_facts", lambda key, *a: calls.append(key) or real(key, *a))
    rec = record("penalty", "罚-last", "2026-11-02", severity="severe", domain="environment")
    result = step(state, record_event(rec, TODAY), RULES, CAL)
    assert calls == [decision_key(rec)]
    assert "blacklist:environment" in result.state["evaluation"]["lists"]
    scratch = derive(result.state, result.state["as_of"], RULES, CAL)
    assert scratch.history.keys() == history_of(result.state).keys()
    assert scratch.view == result.state["evaluation"]


def test_the_next_date_and_the_red_list_are_found_without_scanning_the_history(monkeypatch):
    """Issue 13, the hot subject: the basis keeps its dates sorted, so an input finds the first
    date, the next date after the clock and the adverse blocks by bisection; it never sorts or
    takes the minimum of a subject's whole history of dates (timings: `make bench-core`)."""
    import builtins
    import datetime as dt

    state = None
    for i in range(300):
        decided = dt.date(2020, 1, 2) + dt.timedelta(days=7 * i)
        rec = record("penalty", f"罚{i}", decided.isoformat(), severity="general", domain="market")
        state = step(state, record_event(rec, TODAY), RULES, CAL).state
    assert len(state["basis"]["dates"]) == len(state["basis"]["adverse"]) == 300
    seen: list[int] = []
    real_min, real_sorted = builtins.min, builtins.sorted

    def counting(real):
        def call(*args, **kw):
            if len(args) == 1 and hasattr(args[0], "__len__"):
                seen.append(len(args[0]))
            return real(*args, **kw)
        return call

    monkeypatch.setattr(builtins, "min", counting(real_min))
    monkeypatch.setattr(builtins, "sorted", counting(real_sorted))
    rec = record("penalty", "罚-last", "2026-11-02", severity="general", domain="market")
    result = step(state, record_event(rec, TODAY), RULES, CAL)
    monkeypatch.undo()
    assert max(seen, default=0) < 100, f"a min() or sorted() over {max(seen)} items: the whole history again"
    scratch = derive(result.state, result.state["as_of"], RULES, CAL)
    assert scratch.history.keys() == history_of(result.state).keys()
    assert scratch.view == result.state["evaluation"]


@pytest.mark.pure_python
def test_lists_an_input_does_not_touch_keep_their_suspensions_and_exits():
    """An input assembles only the membership lists of the records it touches; the others are read
    back from their tracks (domain/history.py ``memberships_of``), suspensions and exits included:
    after each input the state equals the derivation from scratch."""
    import domain.history as history

    env = record("penalty", "环罚〔2026〕7号", "2026-02-02", severity="severe", domain="environment")
    tax = record("penalty", "税罚〔2026〕7号", "2026-03-02", severity="severe", domain="taxation")
    old = record("penalty", "环罚〔2023〕1号", "2023-01-09", severity="severe", domain="environment")
    inputs = [
        record_event(old, "2026-02-03"),  # a past listing that has exited
        record_event(env, "2026-02-03"),
        objection("OB-7", decision_key(env), "filed", "2026-02-20", arrived="2026-02-21"),
        record_event(tax, "2026-03-03"),  # another list: the environment blacklist is kept, suspended
        record_event(record("license", "许可〔2026〕7号", "2026-03-05"), "2026-03-06"),  # no list at all
        tick("2026-03-20"),
    ]
    state, assembled = None, []
    real = history.list_tracks
    for event in inputs:
        def spy(*args, kept=None, **kw):
            assembled.append(None if kept is None else sorted(kept[1]))
            return real(*args, kept=kept, **kw)
        history.list_tracks = spy
        try:
            state = step(state, event, RULES, CAL).state
        finally:
            history.list_tracks = real
        scratch = derive(state, state["as_of"], RULES, CAL)
        assert scratch.view == state["evaluation"], event
        assert scratch.history.keys() == history_of(state).keys(), event
    lists = state["evaluation"]["lists"]
    assert lists["blacklist:environment"]["suspended"] is True and "blacklist:taxation" in lists
    assert assembled[3] == ["blacklist:taxation"] and assembled[4] == [] and assembled[5] == []


def test_a_state_whose_basis_has_the_earlier_form_is_derived_again_once():
    """States stored by a version whose basis kept its dates in dicts (no ``"v"``) are read as they
    are: the next input derives the subject again from its records, and the state gets the current
    basis, the same as a state that always had it."""
    from domain.facts import BASIS_VERSION

    state = None
    for i in range(40):
        rec = record("penalty", f"罚{i}", f"202{i % 5}-0{1 + i % 9}-1{i % 10}",
                     severity="severe" if i % 7 == 0 else "general", domain="environment")
        state = step(state, record_event(rec, TODAY), RULES, CAL).state
    basis = state["basis"]
    earlier = dict(state, basis={"dates": dict(basis["dates"]), "adverse": dict(basis["adverse"]),
                                 "listed": list(basis["listed"]), "pub_dates": dict(basis["pub_dates"])})
    rec = record("penalty", "罚-next", "2026-10-02", severity="severe", domain="environment")
    event = record_event(rec, TODAY)
    now = step(state, event, RULES, CAL)
    upgraded = step(earlier, event, RULES, CAL)
    assert upgraded.state["basis"]["v"] == BASIS_VERSION
    assert upgraded.state == now.state
    assert upgraded.changes == now.changes


def _severe(doc, date, domain="environment"):
    return record("penalty", doc, date, severity="severe", domain=domain)


def test_a_severe_decision_that_extends_a_membership_changes_none_of_its_announced_changes():
    """A blacklist membership's entry names the records it begins with, its exit those it ends
    with (docs/events.md): a later severe decision that only extends the stay moves the projected
    exit, and announces nothing. Before, the entry named every record of the stay, so each such
    decision withdrew the entry and announced it again, naming one more record (issue 13)."""
    first, second = _severe("环罚〔2025〕1号", "2025-01-10"), _severe("环罚〔2025〕2号", "2025-06-10")
    state, announced, _ = run([record_event(first, TODAY)])
    assert [(c["transition"], c["causes"]) for c in announced if c["list"] == "blacklist:environment"] == [
        ("entered", [decision_key(first)])]
    result = step(state, record_event(second, TODAY), RULES, CAL)
    assert [c for c in result.changes if c["list"] == "blacklist:environment"] == []
    track = result.state["timeline"]["lists"]["blacklist:environment"]
    assert [(c["transition"], c["effective_date"], c["causes"]) for c in track] == [
        ("entered", "2025-01-10", [decision_key(first)]),
        ("exited", "2028-06-10", [decision_key(second)]),
    ]
    # the membership still rests on both, for the checks, reports and disclosure
    from domain.memberships import intervals, memberships_at

    (m,) = [m for m in intervals(result.state) if m.list == "blacklist:environment"]
    assert m.causes == tuple(sorted((decision_key(first), decision_key(second))))
    assert memberships_at(result.state, "2026-01-01").get("blacklist:environment").causes == m.causes


def test_a_hot_subjects_list_changes_stay_the_same_size_as_its_history_grows():
    """Severe decisions, one a month for five years, all in one blacklist membership: after the
    fortieth and after the sixtieth (on the list both times), every list change names at most the records that decide it, and
    the state's lists and view are the same size (they grew by a record key per decision before)."""
    state, sizes = None, {}
    for i in range(60):
        rec = _severe(f"环罚〔{2021 + i // 12}〕{i:03d}号", f"{2021 + i // 12}-{1 + i % 12:02d}-05")
        state = step(state, record_event(rec, TODAY), RULES, CAL).state
        if i + 1 in (40, 60):
            lists = state["timeline"]["lists"]
            assert max(len(c["causes"]) for track in lists.values() for c in track) == 1
            sizes[i + 1] = (len(orjson.dumps(lists)), len(orjson.dumps(state["evaluation"]["lists"])))
    assert sizes[40] == sizes[60]


def test_a_state_derived_when_changes_named_every_record_is_derived_again_once():
    """A state of a version whose membership changes named every record of the stay (basis
    version 2) is derived again on its next input, even one about another list: the entry it
    announced under the earlier id is withdrawn and announced under the current one, once."""
    from domain.facts import change_id

    first, second = _severe("环罚〔2025〕1号", "2025-01-10"), _severe("环罚〔2025〕2号", "2025-06-10")
    state, _, _ = run([record_event(first, TODAY), record_event(second, TODAY)])
    keys = sorted((decision_key(first), decision_key(second)))
    earlier_track = [dict(c, causes=keys, change_id=change_id(ORG, c["list"], c["transition"], c["effective_date"], keys))
                     for c in state["timeline"]["lists"]["blacklist:environment"]]
    earlier = dict(state, basis=dict(state["basis"], v=2),
                   timeline=dict(state["timeline"], lists=dict(state["timeline"]["lists"],
                                                               **{"blacklist:environment": earlier_track})))
    other = record_event(record("penalty", "税罚〔2026〕1号", "2026-03-02", severity="general", domain="taxation"),
                         TODAY)
    now = step(state, other, RULES, CAL)
    upgraded = step(earlier, other, RULES, CAL)
    assert upgraded.state == now.state
    withdrawn = [c for c in upgraded.changes if c["transition"] == "withdrawn"]
    assert [c["withdraws"] for c in withdrawn] == [earlier_track[0]["change_id"]]
    again = {c["change_id"] for c in upgraded.changes} - {c["change_id"] for c in withdrawn + now.changes}
    assert again == {state["timeline"]["lists"]["blacklist:environment"][0]["change_id"]}


@pytest.mark.parametrize(
    "filed, provider, overdue_from",
    [
        # Fri 2024-09-27, National Day: Sun 09-29 is a make-up working day, Oct 1-7 off
        ("2024-09-27", False, "2024-10-09"),  # 09-29, 09-30, 10-08
        ("2024-09-27", True, "2024-10-13"),  # ... 10-09, 10-10, 10-11, Sat 10-12 (make-up day)
        ("2024-09-28", False, "2024-10-09"),  # filed on a Saturday: count from the next days
        # Spring Festival 2025: Jan 28 - Feb 4 off, Sun Jan 26 a make-up working day
        ("2025-01-24", False, "2025-02-06"),  # 01-26, 01-27, 02-05
        ("2024-03-04", False, "2024-03-08"),  # an ordinary week
        ("2024-03-07", False, "2024-03-13"),  # across a weekend
    ],
)
def test_objection_overdue_counts_working_days(filed, provider, overdue_from):
    pen = record("penalty", "P1", "2024-01-10", severity="severe", domain="environment")
    key = decision_key(pen)
    state, announced, _ = run([record_event(pen, "2024-01-10"),
                               objection("OB1", key, "filed", filed, pv=provider, arrived=filed)])
    assert state["evaluation"]["next_due"] == overdue_from
    state, announced, _ = run([tick(overdue_from)], state)
    assert summary(announced) == [("objection:OB1", "objection_overdue", overdue_from, "objection_filed")]
    assert state["evaluation"]["overdue_objections"] == ["OB1"]


@pytest.mark.parametrize(
    "decided, severity, domain, repair_from, publicity_end",
    [
        ("2023-04-30", "general", "market", "2023-07-30", "2024-04-30"),  # 2019 regime
        ("2023-04-30", "severe", "market", "2023-10-30", "2026-04-30"),
        ("2023-05-01", "general", "market", "2023-08-01", "2026-05-01"),  # 2023 regime (order 58)
        ("2023-06-15", "general", "fire", "2024-06-15", "2026-06-15"),
        ("2025-03-31", "severe", "market", "2025-06-30", "2028-03-31"),  # month end clamped
        ("2025-06-22", "severe", "market", "2026-06-22", "2028-06-22"),  # 2025 regime (国办发〔2025〕22号)
        ("2026-04-01", "general", "market", "2026-07-01", "2027-04-01"),
        ("2026-05-10", "minor", "market", "2026-05-10", "2026-08-10"),
        ("2024-02-29", "general", "market", "2024-05-29", "2027-02-28"),  # leap day
        ("2024-03-01", "severe", "food_drug", "2027-03-01", "2027-03-01"),  # non-repairable
    ],
)
def test_publicity_periods(decided, severity, domain, repair_from, publicity_end):
    fields = {"penalty_category": "责令停产停业"} if domain == "food_drug" else {}
    pen = record("penalty", "P1", decided, severity=severity, domain=domain, **fields)
    state, announced, _ = run([record_event(pen, decided)])
    pub = state["evaluation"]["publicity"][decision_key(pen)]
    assert (pub["repair_from"], pub["publicity_end"]) == (repair_from, publicity_end)


# ----------------------------------------------------------------------------------- properties

DOCS = ["A", "B", "C"]
DATES = ["2019-03-04", "2020-06-01", "2021-09-01", "2023-02-06", "2024-07-01", "2025-08-04", "2026-05-06"]


def _coded(draw, rec):
    """``rec`` with the builders' unit code or, now and then, ``OTHER_UNIT``."""
    return dict(rec, source_unit_code=OTHER_UNIT) if draw(st.integers(0, 5)) == 0 else rec


def _named(draw, rec):
    """``rec`` naming its unit with its code (as the builders do; now and then another code of the
    same name) or, now and then, by its name only: one decision either way (domain/state.py
    ``resolve_key``)."""
    return _coded(draw, rec) if draw(st.integers(0, 2)) else dict(rec, source_unit_code=None)


def _office_aim(draw, rec):
    """The key an objection or a repair names ``rec`` by, and the unit's (name, code) its audit
    record gives: by the code, by the code with the name, or by the name only."""
    how = draw(st.integers(0, 3))
    if how == 3:
        return decision_key(dict(rec, source_unit_code=None)), None
    rec = _coded(draw, rec)
    return decision_key(rec), ((rec["source_unit"], rec["source_unit_code"]) if how == 2 else None)


@st.composite
def subject_inputs(draw):
    """A random set of one subject's inputs: records, corrections, revocations, listings, deletions,
    removals, objections, repairs, ticks; each with its own arrival time and origin. Each names its
    decision's unit by its code or by its name only."""
    inputs = []
    n = draw(st.integers(1, 9))
    for i in range(n):
        kind = draw(st.sampled_from(["penalty", "penalty", "court_listing", "court_deletion", "listing",
                                     "removal", "license", "objection", "repair", "tick"]))
        doc = draw(st.sampled_from(DOCS))
        date = draw(st.sampled_from(DATES))
        arrived = max(date, draw(st.sampled_from(DATES + ["2026-11-30"])))
        at = f"creditstream.penalty/{draw(st.integers(0, 3))}/{i}"
        if kind == "penalty":
            rec = record("penalty", doc, date, severity=draw(st.sampled_from(["severe", "general", "minor"])),
                         domain=draw(st.sampled_from(["environment", "taxation", "market"])),
                         revoked=draw(st.booleans()) and draw(st.booleans()))
            inputs.append(record_event(_named(draw, rec), arrived, at=at))
        elif kind in ("court_listing", "court_deletion"):
            fields = {"deletion_reason": draw(st.sampled_from(["performed", "revoked"]))} \
                if kind == "court_deletion" else {}
            inputs.append(record_event(_named(draw, record(kind, "执" + doc, date, **fields)), arrived, at=at))
        elif kind in ("listing", "removal"):
            rec = record("listing_decision", "黑" + doc, date, list_domain=draw(st.sampled_from(["taxation", "wage_arrears"])),
                         action="list" if kind == "listing" else "remove")
            inputs.append(record_event(_named(draw, rec), arrived, at=at))
        elif kind == "license":
            inputs.append(record_event(_named(draw, record("license", "许" + doc, date)), arrived, at=at))
        elif kind == "objection":
            target, unit = _office_aim(draw, record(draw(st.sampled_from(["penalty", "court_listing"])),
                                                    doc if draw(st.booleans()) else "执" + doc, date))
            status = draw(st.sampled_from(["filed", "upheld", "rejected"]))
            resolved = None if status == "filed" else max(date, draw(st.sampled_from(DATES)))
            inputs.append(objection(f"OB{draw(st.integers(0, 2))}", target, status, date, resolved, arrived=arrived,
                                    outcome=draw(st.sampled_from(["revoked", "corrected"])) if status == "upheld"
                                    else None, at=at, target_unit=unit))
        elif kind == "repair":
            target, unit = _office_aim(draw, record("penalty", doc, date))
            inputs.append(repair(target, date, arrived=arrived, granted=draw(st.booleans()), at=at, target_unit=unit,
                                 doc_no=draw(st.sampled_from([None, "XF-1", "XF-2"]))))
        else:
            inputs.append(tick(date))
    return inputs


def told(changes):
    """What a subscriber is told of each change: everything but the announcement's own stamps
    (subject, event_ms, rules_version). Folding the announced changes must give the history's
    content, not only its ids: a late input that changes only why a change happened is announced."""
    return {cid: (c["list"], c["transition"], c["effective_date"], tuple(c["causes"]), c["cause_kind"], c["cause_decision"])
            for cid, c in changes.items()}


def essence(state):
    """The state without what only records arrival (origins seen, a revision counter)."""
    def strip(d):
        out = {k: v for k, v in d.items() if k not in ("seen",)}
        if isinstance(out.get("deletion"), dict):
            out["deletion"] = strip(out["deletion"])
        return out
    return {
        "records": {k: strip(v) for k, v in state["records"].items()},
        "objections": {k: strip(v) for k, v in (state.get("objections") or {}).items()},
        "repairs": {k: strip(v) for k, v in (state.get("repairs") or {}).items()},
        "history": history_of(state),
        "evaluation": state.get("evaluation"),
        "as_of": state.get("as_of"),
        "units": state.get("units"),  # (what a name stands for decides where later inputs go)
    }


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject_inputs(), st.randoms(use_true_random=False))
def test_every_arrival_order_gives_the_same_state_and_history(inputs, rnd):
    first, announced, _ = run(inputs)
    assert told(fold_changes(announced)) == told(history_of(first))
    scratch = derive(first, first["as_of"], RULES, CAL)  # the incremental derivation equals a fresh one
    assert scratch.history.keys() == history_of(first).keys() and scratch.view == first["evaluation"]
    assert_other_orders_agree(inputs, first, rnd)


def assert_other_orders_agree(inputs, first, rnd, orders=3):
    """The same inputs in ``orders`` shuffled orders give ``first``'s state, and announce its history."""
    for _ in range(orders):
        order = list(inputs)
        rnd.shuffle(order)
        other, announced, _ = run(order)
        assert essence(other) == essence(first)
        assert told(fold_changes(announced)) == told(history_of(first))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject_inputs())
def test_redelivery_changes_nothing(inputs):
    state, _, _ = run(inputs)
    again, announced, outcomes = run(inputs, state)
    assert announced == [] and essence(again) == essence(state)
    assert all(o in ("redelivered", "stale-tick") for o in outcomes)


@settings(max_examples=100, deadline=None)
@given(subject_inputs())
def test_effective_dates_are_never_after_the_clock(inputs):
    state, announced, _ = run(inputs)
    assert all(c["effective_date"] <= state["as_of"] for c in announced if c["transition"] != "withdrawn")
    assert state["as_of"] <= "2026-11-30"
    _ = arrival  # builders in use


def test_the_2099_stamp_is_refused_at_ingest():
    from agents.ingest import future_stamp

    class Msg:
        timestamp = arrival("2099-01-01")

    assert "after the wall clock" in future_stamp(Msg, int(time.time() * 1000))
    Msg.timestamp = int(time.time() * 1000)
    assert future_stamp(Msg, int(time.time() * 1000)) is None


def test_a_stamp_minutes_ahead_on_tomorrows_date_is_refused_at_ingest():
    # RULES.md 3a: the 5-minute tolerance let a stamp of 00:01 tomorrow through at 23:57, and with it a
    # decision dated tomorrow and a subject's clock (and announced changes) dated tomorrow
    import datetime as dt

    from agents.ingest import future_stamp

    cst = dt.timezone(dt.timedelta(hours=8))
    now = int(dt.datetime(2026, 5, 5, 23, 57, tzinfo=cst).timestamp() * 1000)

    class Msg:
        timestamp = int(dt.datetime(2026, 5, 6, 0, 1, tzinfo=cst).timestamp() * 1000)

    assert "after the wall clock's date 2026-05-05" in future_stamp(Msg, now)
    Msg.timestamp = int(dt.datetime(2026, 5, 5, 23, 59, tzinfo=cst).timestamp() * 1000)  # ahead, same day
    assert future_stamp(Msg, now) is None


def test_subject_ids_of_these_tests():
    assert ORG.startswith("9131")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(list_inputs(max_inputs=10))
def test_after_every_input_the_list_tracks_equal_a_derivation_from_scratch(inputs):
    """The incremental step keeps the tracks of the lists an input did not touch, the escalation's
    included when no membership list changed (domain/history.py ``escalations_of``): after every
    input, every list's changes (past and projected) and the view equal those derived afresh."""
    from domain.history import timeline

    state = None
    for event in inputs:
        state = step(state, event, RULES, CAL).state
        changes, _ = timeline(state, RULES, CAL)
        fresh: dict[str, list] = {}
        for c in changes:
            if not c["list"].startswith("publicity:"):
                fresh.setdefault(c["list"], []).append(c)
        kept = state["timeline"]["lists"]
        assert {k: sorted(c["change_id"] for c in t) for k, t in kept.items() if t} == \
            {k: sorted(c["change_id"] for c in t) for k, t in fresh.items()}, event
        assert derive(state, state["as_of"], RULES, CAL).view == state["evaluation"], event


def test_the_escalation_read_back_from_its_track_is_the_one_derived():
    from domain.facts import basis_of
    from domain.history import escalations_of, list_tracks, objection_index

    env = record("penalty", "环罚〔2026〕7号", "2026-02-02", severity="severe", domain="environment")
    tax = record("penalty", "税罚〔2026〕7号", "2026-03-02", severity="severe", domain="taxation")
    inputs = [record_event(env, "2026-02-03"), record_event(tax, "2026-03-03"),
              objection("OB-7", decision_key(env), "filed", "2026-03-20", arrived="2026-03-21"),
              objection("OB-7", decision_key(env), "rejected", "2026-03-20", "2026-04-10", arrived="2026-04-11")]
    state = None
    for event in inputs:
        state = step(state, event, RULES, CAL).state
    facts = dict(state["facts"])
    basis = basis_of(facts, dict(state["timeline"]["publicity"]))
    tracks, parts = list_tracks(state, facts, basis, objection_index(state), RULES, CAL)
    assert parts["escalations"] and parts["escalations"][0]["flips"]  # suspended, then resumed
    got = escalations_of(tracks["escalated"])
    assert [{k: e[k] for k in ("since", "until", "causes", "flips", "suspended")} for e in got] == \
        [{k: e[k] for k in ("since", "until", "causes", "flips", "suspended")} for e in parts["escalations"]]


# ------------------------------------------------------------- an organisation's records on a person's file

PERSON_ID = "11010519491231002X"


def _linked(rec, origin, ms):
    return ev.linked(PERSON_ID, "张三", ORG, origin, dict(rec, legal_rep={"name": "张三", "id_no": PERSON_ID}), ms)


def test_the_newest_version_of_a_linked_record_is_its_own_content_in_every_order():
    # the revoked version (stamped 03-01) is the newest once the first version's earliest sighting
    # (02-20) is known; the person's file held the first version's content under the revoked one's
    # hash in one order (on the blacklist), and was on no list in the other
    x = record("penalty", "环罚1", "2025-02-03", severity="severe", domain="environment")
    y = dict(x, revoked=True)
    at = lambda d: arrival(d)  # noqa: E731
    inputs = [_linked(x, "t/0/1", at("2025-03-05")), _linked(y, "t/0/2", at("2025-03-01")),
              _linked(x, "t/1/9", at("2025-02-20"))]
    for order in (inputs, inputs[::-1], [inputs[1], inputs[0], inputs[2]]):
        state, announced, _ = run(order)
        (entry,) = state["records"].values()
        assert entry["kind"] == "linked" and entry["content"]["revoked"] is True, [e.origin for e in order]
        assert state["evaluation"]["lists"] == {} and told(fold_changes(announced)) == told(history_of(state))


@st.composite
def linked_inputs(draw):
    """Versions of two organisation records linked onto one person (severe or not, revoked, another
    fine), sent with their own stamps, and re-sent with earlier or later ones; a court's listing of
    the organisation and its deletions; ticks."""
    inputs = []
    for i in range(draw(st.integers(1, 8))):
        if inputs and draw(st.integers(0, 3)) == 0:  # a re-send of an earlier one, stamped otherwise
            src = draw(st.sampled_from(inputs))
            if not isinstance(src, ev.TickEvent):
                stamp = arrival(draw(st.sampled_from(DATES[2:] + ["2026-11-30"])), draw(st.integers(0, 23)))
                inputs.append(_linked(src.record, f"r/{i}", stamp))
                continue
        if draw(st.integers(0, 5)) == 0:
            inputs.append(tick(draw(st.sampled_from(DATES)), subject=PERSON_ID))
            continue
        if draw(st.integers(0, 4)) == 0:  # a court's listing of the organisation, or its deletion
            date = draw(st.sampled_from(DATES[:4]))
            rec = record("court_listing", "执OA", date) if draw(st.booleans()) else record(
                "court_deletion", "执OA", date, deletion_reason=draw(st.sampled_from(["performed", "listing_revoked"])))
            inputs.append(_linked(rec, f"c/{i}", arrival(max(date, draw(st.sampled_from(DATES))))))
            continue
        date = draw(st.sampled_from(DATES[:4]))
        rec = record("penalty", draw(st.sampled_from(["OA", "OB"])), date,
                     severity=draw(st.sampled_from(["severe", "severe", "general"])),
                     domain=draw(st.sampled_from(["environment", "taxation"])), revoked=draw(st.integers(0, 4)) == 0,
                     **({"fine_amount": draw(st.sampled_from(["1.000000", "2.000000"]))} if draw(st.booleans()) else {}))
        stamp = arrival(max(date, draw(st.sampled_from(DATES + ["2026-11-30"]))), draw(st.integers(0, 23)))
        inputs.append(_linked(rec, f"t/{draw(st.integers(0, 3))}/{i}", stamp))
    return inputs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linked_inputs(), st.randoms(use_true_random=False))
def test_a_persons_linked_records_are_the_same_in_every_arrival_order(inputs, rnd):
    first, announced, _ = run(inputs)
    assert told(fold_changes(announced)) == told(history_of(first))
    for entry in first["records"].values():
        assert entry["kind"] == "linked"  # never the person's own penalty
    assert_other_orders_agree(inputs, first, rnd)


def _org_and_person(inputs):
    """Run an organisation's inputs and, after them, every link they caused onto the person's file."""
    org, links = None, []
    for event in inputs:
        result = step(org, event, RULES, CAL)
        org = result.state
        links += result.links
    person, _, _ = run(links)
    return org, person


@pytest.mark.parametrize("order", ["original first", "correction first"])
def test_a_severe_record_corrected_to_general_leaves_the_legal_representatives_file_too(order):
    rep = {"name": "张三", "id_no": PERSON_ID}
    original = dict(record("penalty", "环罚2", "2026-02-02", severity="severe", domain="environment"), legal_rep=rep)
    corrected = dict(original, severity="general")
    inputs = [record_event(original, "2026-02-03"), record_event(corrected, "2026-02-10")]
    org, person = _org_and_person(inputs if order == "original first" else inputs[::-1])
    assert org["evaluation"]["lists"] == {}
    assert person is not None and person["evaluation"]["lists"] == {}, person["evaluation"]["lists"]
    (entry,) = person["records"].values()
    assert entry["kind"] == "linked" and entry["content"]["severity"] == "general"


OTHER_PERSON_ID = "110105198001010016"


@pytest.mark.parametrize("order", ["original first", "correction first"])
@pytest.mark.parametrize("kind", ["penalty", "court_listing"])
def test_a_correction_naming_another_legal_representative_takes_the_first_off_their_list(order, kind):
    # RULES.md 3a, 4: the newest version names the organisation's legal representative; the person
    # only a superseded version named (a wrong ID, corrected) stayed on the blacklist, or the court
    # debtors' list, on a record whose every version in force names someone else (in the order
    # correction first, by the older version arriving late)
    first, second = {"name": "张三", "id_no": PERSON_ID}, {"name": "李四", "id_no": OTHER_PERSON_ID}
    original = dict(record(kind, "罚5", "2026-02-02", **({"severity": "severe", "domain": "environment"}
                                                         if kind == "penalty" else {})), legal_rep=first)
    corrected = dict(original, legal_rep=second)
    inputs = [record_event(original, "2026-02-03"), record_event(corrected, "2026-02-10")]
    files = _files_of(inputs if order == "original first" else inputs[::-1])
    listed = "blacklist:environment" if kind == "penalty" else "court_debtor"
    assert set(files[ORG]["evaluation"]["lists"]) == {listed}
    assert set(files[OTHER_PERSON_ID]["evaluation"]["lists"]) == {listed}
    person = step(files[PERSON_ID], tick("2026-11-30", subject=PERSON_ID), RULES, CAL).state
    assert person["evaluation"]["lists"] == {} and history_of(person) == {}
    (entry,) = person["records"].values()  # every version is kept there, the newest winning
    assert entry["kind"] == "linked" and entry["content"]["legal_rep"] == second


def test_a_record_never_severe_is_not_linked():
    rep = {"name": "张三", "id_no": PERSON_ID}
    general = dict(record("penalty", "环罚4", "2026-02-02", severity="general", domain="environment"), legal_rep=rep)
    _, person = _org_and_person([record_event(general, "2026-02-03"),
                                 record_event(dict(general, fields={"fine_amount": "1.000000"}), "2026-02-10")])
    assert person is None


@pytest.mark.parametrize("sent,back", [("2026-03-05", None), ("2026-03-20", "2026-03-20")])
def test_a_correction_the_provider_sends_while_the_objection_is_verified_counts(sent, back):
    # RULES.md 5: the provider answers within its days, before the platform resolves; its correction
    # was ignored, and the record stayed out of force for good although corrected
    pen = record("penalty", "环罚3", "2026-02-02", severity="severe", domain="environment", fine_amount="5.000000")
    fixed = dict(pen, fields={"fine_amount": "3.000000"})
    state, announced, _ = run([record_event(pen, "2026-02-03"), record_event(fixed, sent),
                               objection("OB", decision_key(pen), "upheld", "2026-03-02", "2026-03-10",
                                         outcome="corrected", arrived="2026-03-10"), tick("2026-11-30")])
    lists = summary(sorted(fold_changes(announced).values(), key=lambda c: (c["effective_date"], c["transition"])))
    blacklist = [(t, d) for name, t, d, _ in lists if name == "blacklist:environment"]
    if back is None:  # corrected before the resolution: suspended while verified, then in force again
        assert blacklist == [("entered", "2026-02-02"), ("suspended", "2026-03-02"), ("resumed", "2026-03-10")]
    else:  # out of force from the resolution until the correction
        assert blacklist == [("entered", "2026-02-02"), ("suspended", "2026-03-02"), ("exited", "2026-03-10"),
                             ("entered", back)]
    assert "blacklist:environment" in state["evaluation"]["lists"]


@pytest.mark.parametrize("order", ["listing first", "deletion first"])
def test_a_court_listing_found_wrong_is_void_on_the_legal_representatives_file_too(order):
    # the court revokes the organisation's listing (listed wrongly): void with everything derived from
    # it (RULES.md 5); the person's linked copy stayed an adverse record, which kept them off the red list
    rep = {"name": "张三", "id_no": PERSON_ID}
    listing = dict(record("court_listing", "执2019-1", "2019-03-04"), legal_rep=rep)
    deletion = record("court_deletion", "执2019-1", "2019-06-03", deletion_reason="listing_revoked")
    inputs = [record_event(listing, "2019-03-05"), record_event(deletion, "2019-06-04")]
    org, person = _org_and_person(inputs if order == "listing first" else inputs[::-1])
    person = step(person, tick("2026-11-30", subject=PERSON_ID), RULES, CAL).state
    assert org["evaluation"]["lists"] == {}
    (entry,) = person["records"].values()
    assert entry["kind"] == "linked" and entry["deletion"]["reason"] == "listing_revoked"
    assert set(person["evaluation"]["lists"]) == {"red_list"}  # nothing adverse on the person's file


def test_a_court_listing_deleted_as_performed_stays_adverse_on_the_legal_representatives_file():
    rep = {"name": "张三", "id_no": PERSON_ID}
    listing = dict(record("court_listing", "执2025-2", "2025-03-04"), legal_rep=rep)
    deletion = record("court_deletion", "执2025-2", "2025-06-03", deletion_reason="performed")
    org, person = _org_and_person([record_event(listing, "2025-03-05"), record_event(deletion, "2025-06-04")])
    person = step(person, tick("2026-11-30", subject=PERSON_ID), RULES, CAL).state
    assert "red_list" not in person["evaluation"]["lists"]  # an adverse record of 2025
    (entry,) = person["records"].values()
    assert entry["kind"] == "linked" and entry["deletion"]["reason"] == "performed"


def test_every_version_of_a_court_deletion_reaches_the_legal_representatives_file_in_any_order():
    # a deletion's version that does not win, or an earlier sighting of a known one, changed only
    # the organisation's deletion: the person's file kept other versions and stamps in some orders
    import itertools

    rep = {"name": "张三", "id_no": PERSON_ID}
    listing = dict(record("court_listing", "(2024)豫01执5号", "2024-02-05"), legal_rep=rep)
    later = record("court_deletion", "(2024)豫01执5号", "2024-08-05", deletion_reason="performed")
    earlier = record("court_deletion", "(2024)豫01执5号", "2024-08-01", deletion_reason="performed")
    inputs = [record_event(later, "2024-09-02", at="t/0/2"),  # a re-export, stamped late
              record_event(later, "2024-08-06", at="t/1/7"),  # its first sending
              record_event(earlier, "2024-08-05", at="t/2/3")]  # another version, older
    seen = set()
    for order in itertools.permutations(inputs):
        org, person = _org_and_person([record_event(listing, "2024-02-06", at="t/0/1"), *order])
        ((_, org_entry),) = [(k, v) for k, v in org["records"].items() if "执" in k]
        ((_, entry),) = [(k, v) for k, v in person["records"].items() if "执" in k]
        assert [v[1] for v in entry["deletion"]["versions"]] == [v[1] for v in org_entry["deletion"]["versions"]]
        seen.add(repr(entry["deletion"]))
    assert len(seen) == 1, seen


def _blacklist_history(state) -> list[tuple[str, str]]:
    """(transition, effective date) of a subject's environment blacklist history, in order."""
    changes = sorted((c for c in history_of(state).values() if c["list"] == "blacklist:environment"),
                     key=lambda c: (c["effective_date"], c["transition"]))
    return [(c["transition"], c["effective_date"]) for c in changes]


def _list_history(state, name) -> list[tuple[str, str]]:
    """(transition, effective date) of one of a subject's lists, in order."""
    changes = sorted((c for c in history_of(state).values() if c["list"] == name),
                     key=lambda c: (c["effective_date"], c["transition"]))
    return [(c["transition"], c["effective_date"]) for c in changes]


@pytest.mark.parametrize("deleted", [None, "performed"])
def test_a_court_listing_puts_the_organisations_legal_representative_on_the_list_too(deleted):
    # RULES.md 4 (measures reach the legal representative) and 法释〔2015〕17号 第三条: a refusing
    # organisation's legal representative may not high-consume. The person's file held the linked
    # listing without any list: clear for every check, and on the red list three years later while
    # the organisation was still listed
    import itertools

    from domain.checks import check
    from domain.disclosure import list_member

    rep = {"name": "张三", "id_no": PERSON_ID}
    listing = dict(record("court_listing", "(2025)豫01执9号", "2025-03-03", listing_reason="refuse_with_ability"),
                   legal_rep=rep)
    inputs = [record_event(listing, "2025-03-05")]
    if deleted:
        inputs.append(record_event(record("court_deletion", "(2025)豫01执9号", "2026-01-05",
                                          deletion_reason=deleted), "2026-01-06"))
    for order in itertools.permutations(inputs):
        org, person = _org_and_person(list(order))
        person = step(person, tick("2028-06-01", subject=PERSON_ID), RULES, CAL).state
        org = step(org, tick("2028-06-01"), RULES, CAL).state
        expected = [("entered", "2025-03-03")] + ([("exited", "2026-01-05")] if deleted else [])
        assert _list_history(org, "court_debtor") == expected
        assert _list_history(person, "court_debtor") == expected, order
        during = check(person, "high_consumption", "2025-06-02", RULES)
        assert during.outcome == "restricted" and [m.id for m in during.measures] == ["high_consumption.restrict"]
        assert during.basis[0].records[0].via == ORG
        # the public list shows whose decision it is (domain/disclosure.py)
        assert [r["via"] for r in list_member(person, "court_debtor", "2025-06-02")["records"]] == [ORG]
        later = check(person, "administrative_licensing", "2028-06-01", RULES)
        if deleted:
            assert check(person, "high_consumption", "2026-02-02", RULES).outcome == "clear"
        else:  # still listed, as the organisation is: no green channel
            assert later.outcome == "review" and not later.incentives


@pytest.mark.parametrize("removal_names_rep", [False, True])
def test_a_listing_decision_reaches_the_legal_representative_and_the_removal_takes_them_off(removal_names_rep):
    # RULES.md 4: an organisation put on a blacklist by the competent unit's listing decision is a
    # severe dishonest act; it was not linked at all (the person stayed clear). The organisation's
    # removal decision (which may not name the legal representative) takes the person off that
    # listing, in every arrival order, and only that one: not the person's own listing in the
    # domain, and the person's own removal does not end the organisation's
    import itertools

    rep = {"name": "张三", "id_no": PERSON_ID}
    listing = dict(record("listing_decision", "税黑〔2024〕1号", "2024-01-08", list_domain="taxation", action="list"),
                   legal_rep=rep)
    removal = record("listing_decision", "税移〔2024〕1号", "2024-05-06", list_domain="taxation", action="remove")
    if removal_names_rep:
        removal["legal_rep"] = rep
    inputs = [record_event(listing, "2024-01-09"), record_event(removal, "2024-05-07")]
    for order in itertools.permutations(inputs):
        org, person = _org_and_person(list(order))
        assert _list_history(org, "blacklist:taxation") == [("entered", "2024-01-08"), ("exited", "2024-05-06")]
        assert _list_history(person, "blacklist:taxation") == [("entered", "2024-01-08"), ("exited", "2024-05-06")]
        assert len(person["records"]) == 2 and {e["via"] for e in person["records"].values()} == {ORG}

    own_listing = record("listing_decision", "税黑〔2024〕9号", "2024-03-04", list_domain="taxation", action="list",
                         category="natural_person")
    own_removal = record("listing_decision", "税移〔2024〕9号", "2024-04-01", list_domain="taxation", action="remove",
                         category="natural_person")
    # the person's own listing outlives the organisation's removal
    org_state, org_links = None, []
    for event in inputs:
        result = step(org_state, event, RULES, CAL)
        org_state, org_links = result.state, org_links + result.links
    own = [record_event(own_listing, "2024-03-05", subject=PERSON_ID)]
    person, _, _ = run(org_links + own)
    assert _list_history(person, "blacklist:taxation") == [("entered", "2024-01-08")]
    # the person's own removal ends their own listing, not the organisation's (linked from 2024-01-08
    # to the organisation's removal on 2024-05-06), in any order
    own.append(record_event(own_removal, "2024-04-02", subject=PERSON_ID))
    for order in itertools.permutations(org_links + own):
        person, _, _ = run(list(order))
        assert _list_history(person, "blacklist:taxation") == [("entered", "2024-01-08"), ("exited", "2024-05-06")]


def test_a_removal_reaches_the_person_whose_severe_record_listed_the_organisation():
    # a severe taxation penalty lists the organisation by the operator's rule; the organisation's
    # removal decision of that domain ends the person's linked membership too, but not one of
    # another domain
    import itertools

    rep = {"name": "张三", "id_no": PERSON_ID}
    pen = dict(record("penalty", "税罚〔2024〕2号", "2024-02-05", severity="severe", domain="taxation"), legal_rep=rep)
    env = dict(record("penalty", "环罚〔2024〕3号", "2024-02-06", severity="severe", domain="environment"),
               legal_rep=rep)
    removal = record("listing_decision", "税移〔2024〕2号", "2024-06-03", list_domain="taxation", action="remove")
    inputs = [record_event(pen, "2024-02-06"), record_event(env, "2024-02-07"), record_event(removal, "2024-06-04")]
    for order in itertools.permutations(inputs):
        org, person = _org_and_person(list(order))
        for subject in (org, person):
            assert _list_history(subject, "blacklist:taxation") == [("entered", "2024-02-05"), ("exited", "2024-06-03")]
            assert _list_history(subject, "blacklist:environment") == [("entered", "2024-02-06")]


def test_a_removal_that_names_another_legal_representative_still_reaches_the_listed_one_in_every_order():
    # a listing decision corrected into a removal of the taxation blacklist (same document number);
    # its versions name 李四, the severe taxation penalty that listed the organisation names 张三. The
    # removal reached 张三 only when the penalty came after it: sent with the removal, it went to the
    # legal representatives its own versions name and not to those of the records it ends
    import itertools

    pen = dict(record("penalty", "税罚〔2024〕5号", "2024-02-05", severity="severe", domain="taxation"),
               legal_rep={"name": "张三", "id_no": PERSON_ID})
    listing = dict(record("listing_decision", "黑〔2024〕5号", "2024-06-03", list_domain="work_safety", action="list"),
                   legal_rep={"name": "李四", "id_no": OTHER_PERSON_ID})
    removal = dict(listing, fields={"list_domain": "taxation", "action": "remove"})
    inputs = [record_event(pen, "2024-02-06"), record_event(listing, "2024-06-04"),
              record_event(removal, "2024-06-11")]
    for order in itertools.permutations(inputs):
        files = _files_of(list(order))
        assert _list_history(files[ORG], "blacklist:taxation") == [("entered", "2024-02-05"), ("exited", "2024-06-03")]
        person = step(files[PERSON_ID], tick("2024-06-11", subject=PERSON_ID), RULES, CAL).state
        assert _list_history(person, "blacklist:taxation") == [("entered", "2024-02-05"), ("exited", "2024-06-03")], \
            [e.origin for e in order]


@pytest.mark.parametrize("case,expected", [
    ("repaired", [("entered", "2024-02-05"), ("exited", "2025-03-03")]),
    ("disputed", [("entered", "2024-02-05"), ("suspended", "2024-03-04")]),
    ("disputed, then rejected", [("entered", "2024-02-05"), ("suspended", "2024-03-04"), ("resumed", "2024-03-08")]),
    ("revoked by an upheld objection", []),
])
def test_the_legal_representative_follows_the_credit_offices_decisions_on_the_organisations_record(case, expected):
    # RULES.md 3 and 5: a repair lifts joint punishment, an objection suspends the measures based on
    # the disputed record, an upheld one that revokes it undoes what was derived from it. They
    # reached the organisation's record only: its legal representative stayed on the blacklist
    # (and restricted) after the organisation left it, in every case and every arrival order
    import itertools

    rep = {"name": "张三", "id_no": PERSON_ID}
    pen = dict(record("penalty", "环罚〔2024〕1号", "2024-02-05", severity="severe", domain="environment"), legal_rep=rep)
    key = decision_key(pen)
    office = {"repaired": [repair(key, "2025-03-03", arrived="2025-03-04")],
              "disputed": [objection("OB-1", key, "filed", "2024-03-04", arrived="2024-03-04")],
              "disputed, then rejected": [objection("OB-1", key, "filed", "2024-03-04", arrived="2024-03-04"),
                                          objection("OB-1", key, "rejected", "2024-03-04", "2024-03-08",
                                                    arrived="2024-03-08")],
              "revoked by an upheld objection": [objection("OB-2", key, "upheld", "2024-03-04", "2024-03-06",
                                                           outcome="revoked", arrived="2024-03-06")]}[case]
    inputs = [record_event(pen, "2024-02-06"), *office]
    for order in itertools.permutations(inputs):
        org, person = _org_and_person(list(order) + [tick("2025-06-02")])
        person = step(person, tick("2025-06-02", subject=PERSON_ID), RULES, CAL).state
        assert _blacklist_history(org) == expected, (case, [e.origin for e in order])
        assert _blacklist_history(person) == expected, (case, [e.origin for e in order])
        assert person["evaluation"]["lists"].keys() - {"red_list"} == org["evaluation"]["lists"].keys() - {"red_list"}


def test_a_general_record_carries_no_credit_office_decision_to_anyone():
    rep = {"name": "张三", "id_no": PERSON_ID}
    pen = dict(record("penalty", "环罚〔2024〕2号", "2024-02-05", severity="general", domain="environment"), legal_rep=rep)
    key = decision_key(pen)
    _, person = _org_and_person([record_event(pen, "2024-02-06"), repair(key, "2025-03-03", arrived="2025-03-04"),
                                 objection("OB-1", key, "filed", "2024-03-04", arrived="2024-03-04")])
    assert person is None


ORG_B = "91350100M000100Y43"


def _files_of(inputs):
    """Every subject's file after ``inputs`` (of any subjects), each link routed to its subject's
    file as the worker routes it."""
    files, queue = {}, list(inputs)
    while queue:
        event = queue.pop(0)
        result = step(files.get(event.subject), event, RULES, CAL)
        files[event.subject] = result.state
        queue += result.links
    return files


def _for(subject, rec):
    return dict(rec, ids={"uscc": subject})


@pytest.mark.parametrize("case", ["one removal for both", "co-debtors of one court case"])
def test_one_decision_about_two_organisations_with_one_legal_representative(case):
    # a decision's key on the person's file named no organisation: two organisations' copies of one
    # decision (a batch removal, co-debtors listed under one case number) were one record there,
    # with one ``via``, so one organisation's removal or deletion decided for both
    import itertools

    rep = {"name": "张三", "id_no": PERSON_ID}
    if case == "one removal for both":
        inputs = [record_event(_for(ORG, dict(record("listing_decision", "税黑〔2024〕1号", "2024-01-08",
                                                     list_domain="taxation", action="list"), legal_rep=rep)),
                               "2024-01-09", subject=ORG),
                  record_event(_for(ORG_B, dict(record("listing_decision", "税黑〔2024〕2号", "2024-02-05",
                                                       list_domain="taxation", action="list"), legal_rep=rep)),
                               "2024-02-06", subject=ORG_B)]
        removal = record("listing_decision", "税移〔2024〕1号", "2024-05-06", list_domain="taxation", action="remove")
        inputs += [record_event(_for(ORG, removal), "2024-05-07", subject=ORG),
                   record_event(_for(ORG_B, removal), "2024-05-07", subject=ORG_B)]
        name, expected, kept = "blacklist:taxation", [("entered", "2024-01-08"), ("exited", "2024-05-06")], 4
    else:  # both listed under one case; the court deletes ORG's listing only: the person stays listed by ORG_B's
        listing = dict(record("court_listing", "(2024)豫01执5号", "2024-02-05", listing_reason="refuse_with_ability"),
                       legal_rep=rep)
        inputs = [record_event(_for(ORG, listing), "2024-02-06", subject=ORG),
                  record_event(_for(ORG_B, listing), "2024-02-06", subject=ORG_B),
                  record_event(_for(ORG, record("court_deletion", "(2024)豫01执5号", "2024-08-05",
                                                deletion_reason="performed")), "2024-08-06", subject=ORG)]
        name, expected, kept = "court_debtor", [("entered", "2024-02-05")], 2  # (a deletion: in its listing's entry)
    for order in itertools.permutations(inputs):
        files = _files_of(list(order))
        person = files[PERSON_ID]
        assert len(person["records"]) == kept
        assert {e["via"] for e in person["records"].values()} == {ORG, ORG_B}
        assert _list_history(person, name) == expected, [e.origin for e in order]


def test_an_objection_that_revokes_the_organisations_removal_reaches_the_legal_representative():
    # RULES.md 5: information found wrong is revoked "and anything derived from it undone": the
    # organisation is back on the blacklist; the person stayed off it
    import itertools

    rep = {"name": "张三", "id_no": PERSON_ID}
    listing = dict(record("listing_decision", "税黑〔2024〕1号", "2024-01-08", list_domain="taxation", action="list"),
                   legal_rep=rep)
    removal = record("listing_decision", "税移〔2024〕1号", "2024-05-06", list_domain="taxation", action="remove")
    inputs = [record_event(listing, "2024-01-09"), record_event(removal, "2024-05-07"),
              objection("OB-9", decision_key(removal), "upheld", "2024-05-08", "2024-05-10", outcome="revoked",
                        arrived="2024-05-10")]
    for order in itertools.permutations(inputs):
        org, person = _org_and_person(list(order))
        assert _list_history(org, "blacklist:taxation") == [("entered", "2024-01-08")]
        assert _list_history(person, "blacklist:taxation") == [("entered", "2024-01-08")], [e.origin for e in order]


def _as_kept_before_version_4(state):
    """``state`` as a version before BASIS_VERSION 5 kept it: linked records (and the objections
    and repairs aimed at them) keyed ``linked|<unit>|<document number>``, without the organisation."""
    def old(key):
        return "linked|" + key.split("|", 1)[1] if key.startswith("linked:") else key

    out = dict(state, basis=dict(state["basis"], v=3))
    out["records"] = {old(k): v for k, v in state["records"].items()}
    out["repairs"] = {old(k): v for k, v in (state.get("repairs") or {}).items()}
    out["objections"] = {oid: dict(o, record_key=old(o["record_key"]),
                                   versions=[[dict(v[0], record_key=old(v[0]["record_key"])), *v[1:]]
                                             for v in o["versions"]])
                         for oid, o in (state.get("objections") or {}).items()}
    return out


def test_files_kept_by_an_earlier_version_are_linked_as_now_on_their_next_input():
    # BASIS_VERSION 4 and 5 link more (listing and removal decisions) and key links with their
    # organisation. A legal representative's file kept before has its links keyed again; an
    # organisation's file kept before sends everything its records send now, once: the person left
    # the blacklist with the organisation only on a fresh run (the links of the earlier version
    # never carried the removal)
    rep = {"name": "张三", "id_no": PERSON_ID}
    pen = dict(record("penalty", "税罚〔2024〕2号", "2024-02-05", severity="severe", domain="taxation"), legal_rep=rep)
    removal = record("listing_decision", "税移〔2024〕2号", "2024-06-03", list_domain="taxation", action="remove")
    key = decision_key(pen)
    inputs = [record_event(pen, "2024-02-06"), objection("OB-1", key, "filed", "2024-03-04", arrived="2024-03-04"),
              objection("OB-1", key, "rejected", "2024-03-04", "2024-03-11", arrived="2024-03-11"),
              repair(key, "2025-03-03", granted=False, arrived="2025-03-04"), record_event(removal, "2024-06-04")]
    fresh = _files_of(inputs + [tick("2025-06-02")])
    fresh_person = step(fresh[PERSON_ID], tick("2025-06-02", subject=PERSON_ID), RULES, CAL).state
    assert _list_history(fresh_person, "blacklist:taxation") == [
        ("entered", "2024-02-05"), ("suspended", "2024-03-04"), ("resumed", "2024-03-11"), ("exited", "2024-06-03")]

    # as an earlier version left them: the person's file without the removal, keyed the earlier way
    files = _files_of(inputs[:4])
    person = _as_kept_before_version_4(files[PERSON_ID])
    org = step(files[ORG], inputs[4], RULES, CAL).state  # (its links: lost, as the earlier version sent none)
    org = dict(org, basis=dict(org["basis"], v=3))
    upgraded = step(org, tick("2025-06-02"), RULES, CAL)
    for link in upgraded.links:
        person = step(person, link, RULES, CAL).state
    person = step(person, tick("2025-06-02", subject=PERSON_ID), RULES, CAL).state
    assert not any(k.startswith("linked|") for k in person["records"])
    assert essence(person) == essence(fresh_person)
    # a linked objection the earlier version wrote to the log (aimed at the earlier key) is taken as now
    old_aim = objection("ORG:OB-1", "linked|" + key.split("|", 1)[1], "rejected", "2024-03-04", "2024-03-11",
                        arrived="2024-03-11", subject=PERSON_ID, at=f"link:{ORG}:creditstream.penalty/0/x")
    again = step(person, old_aim, RULES, CAL).state
    assert set(again["objections"]) == set(person["objections"]) | {"ORG:OB-1"}
    assert again["objections"]["ORG:OB-1"]["record_key"] == f"linked:{ORG}|" + key.split("|", 1)[1]


def test_an_earlier_record_of_two_organisations_is_parted_between_them_when_re_keyed():
    # co-debtors listed under one case number were one record on the person's file before
    # BASIS_VERSION 5; re-keyed under one organisation, the person was on no list although ORG_B
    # still is (ORG's listing was revoked as wrong)
    import msgspec

    rep = {"name": "张三", "id_no": PERSON_ID}
    listing = dict(record("court_listing", "(2024)豫01执5号", "2024-02-05", listing_reason="refuse_with_ability"),
                   legal_rep=rep)
    inputs = [record_event(_for(ORG, listing), "2024-02-06", subject=ORG),
              record_event(_for(ORG, record("court_deletion", "(2024)豫01执5号", "2024-03-04",
                                            deletion_reason="listing_revoked")), "2024-03-05", subject=ORG),
              record_event(_for(ORG_B, dict(listing, fields=dict(listing["fields"], amount="9.000000"))), "2024-04-01",
                           subject=ORG_B)]
    links, orgs = [], {}
    for event in inputs:
        result = step(orgs.get(event.subject), event, RULES, CAL)
        orgs[event.subject], links = result.state, links + result.links
    fresh, _, _ = run(links + [tick("2025-06-02", subject=PERSON_ID)])
    assert _list_history(fresh, "court_debtor") == [("entered", "2024-02-05")]
    # as the earlier version kept it: both organisations' versions in one entry
    merged, _, _ = run([msgspec.structs.replace(link, via=ORG_B) for link in links])
    (entry,) = merged["records"].values()
    assert {v[1].split(":")[1] for v in entry["versions"].values()} == {ORG, ORG_B}
    old = _as_kept_before_version_4(merged)
    upgraded = step(old, tick("2025-06-02", subject=PERSON_ID), RULES, CAL)
    assert upgraded.touched is None  # a re-keyed file is written whole
    assert essence(upgraded.state) == essence(fresh)


def test_an_input_that_changes_nothing_leaves_a_file_kept_by_an_earlier_version_as_it_was():
    # a re-delivery, an invalid input or a feedback returned the file re-keyed but not derived again:
    # the worker keeps such a result for the batch's next input without writing it whole, and the
    # file's parts were left keyed the earlier way
    rep = {"name": "张三", "id_no": PERSON_ID}
    pen = dict(record("penalty", "环罚〔2024〕4号", "2024-02-05", severity="severe", domain="environment"), legal_rep=rep)
    links = step(None, record_event(pen, "2024-02-06"), RULES, CAL).links
    person, _, _ = run(links)
    old = _as_kept_before_version_4(person)
    again = step(old, links[0], RULES, CAL)
    assert again.outcome == "redelivered" and again.state is old and again.touched == frozenset()
    feedback = ev.FeedbackEvent(origin="fb-1", subject=PERSON_ID, event_ms=arrival("2024-03-01"), change_id="c-1",
                                unit="某单位", id_kind="resident_id")
    assert all(k.startswith("linked|") for k in step(old, feedback, RULES, CAL).state["records"])
    upgraded = step(old, tick("2025-06-02", subject=PERSON_ID), RULES, CAL)
    assert upgraded.touched is None and not any(k.startswith("linked|") for k in upgraded.state["records"])


@st.composite
def listings_on_linked_inputs(draw):
    """An organisation's taxation listing decision naming its legal representative, and in any
    mix: its correction, a severe taxation penalty naming them, removal decisions of the domain (one
    revoked later), a court listing and its deletion."""
    rep = {"name": "张三", "id_no": PERSON_ID}
    listing = dict(record("listing_decision", "税黑〔2024〕5号", "2024-01-08", list_domain="taxation", action="list"),
                   legal_rep=rep)
    removal = record("listing_decision", "税移〔2024〕5号", "2024-05-06", list_domain="taxation", action="remove")
    court = dict(record("court_listing", "(2024)豫01执5号", "2024-02-05", listing_reason="refuse_with_ability"),
                 legal_rep=rep)
    inputs = [record_event(listing, "2024-01-09")]
    pool = [record_event(dict(listing, fields=dict(listing["fields"], period_years=2)), "2024-01-22"),
            record_event(dict(record("penalty", "税罚〔2024〕5号", "2024-03-04", severity="severe", domain="taxation"),
                              legal_rep=rep), "2024-03-05"),
            record_event(removal, "2024-05-07"),
            record_event(dict(removal, revoked=True), "2024-07-01"),
            record_event(record("listing_decision", "税移〔2024〕6号", "2024-09-02", list_domain="taxation",
                                action="remove"), "2024-09-03"),
            record_event(court, "2024-02-06"),
            record_event(record("court_deletion", "(2024)豫01执5号", "2024-08-05", deletion_reason="performed"),
                         "2024-08-06")]
    inputs += draw(st.lists(st.sampled_from(pool), min_size=1, max_size=6, unique_by=lambda e: e.origin))
    return inputs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(listings_on_linked_inputs(), st.randoms(use_true_random=False))
def test_an_organisations_listings_and_removals_reach_its_legal_representative_in_every_order(inputs, rnd):
    org, person = _files_in_shuffled_orders(inputs, rnd)
    for name in ("blacklist:taxation", "court_debtor"):
        assert _list_history(person, name) == _list_history(org, name), name


def _files_in_shuffled_orders(inputs, rnd, at="2025-06-02"):
    """The organisation's and the legal representative's files after ``inputs`` and a tick at
    ``at``; the same files (``essence``) after three shuffles of the inputs."""
    org, person = _org_and_person(inputs + [tick(at)])
    person = step(person, tick(at, subject=PERSON_ID), RULES, CAL).state
    for _ in range(3):
        order = list(inputs)
        rnd.shuffle(order)
        other_org, other = _org_and_person(order + [tick(at)])
        other = step(other, tick(at, subject=PERSON_ID), RULES, CAL).state
        assert essence(other_org) == essence(org)
        assert essence(other) == essence(person), [e.origin for e in order]
    return org, person


@st.composite
def office_on_linked_inputs(draw):
    """An organisation's severe record naming its legal representative (versions: a correction, a
    re-send stamped otherwise), and what the credit office decides about it: objections filed,
    rejected or upheld (revoking or correcting it), repairs granted or refused."""
    rep = {"name": "张三", "id_no": PERSON_ID}
    pen = dict(record("penalty", "环罚〔2024〕7号", "2024-02-05", severity="severe", domain="environment"), legal_rep=rep)
    key, by_name = decision_key(pen), decision_key(dict(pen, source_unit_code=None))
    inputs = [record_event(pen, "2024-02-06")]
    pool = [record_event(dict(pen, severity="general"), "2024-05-06"),
            record_event(dict(pen, fields={"fine_amount": "2.000000"}), "2024-03-07"),
            record_event(pen, "2024-09-02"),
            objection("OB-1", key, "filed", "2024-03-04", arrived="2024-03-04"),
            objection("OB-1", key, "rejected", "2024-03-04", "2024-03-11", arrived="2024-03-11"),
            objection("OB-1", key, "upheld", "2024-03-04", "2024-03-12", outcome="corrected", arrived="2024-03-12"),
            objection("OB-2", key, "upheld", "2024-06-03", "2024-06-06", outcome="revoked", arrived="2024-06-06"),
            repair(key, "2025-03-03", arrived="2025-03-04"),
            repair(key, "2025-04-01", granted=False, arrived="2025-04-02"),
            # the unit named by its name only (domain/state.py resolve_key): one decision all the same
            record_event(dict(pen, source_unit_code=None, fields={"fine_amount": "3.000000"}), "2024-04-08"),
            objection("OB-3", by_name, "upheld", "2024-07-01", "2024-07-05", outcome="revoked", arrived="2024-07-05"),
            repair(by_name, "2025-02-03", arrived="2025-02-04"),
            # other repair decisions on the record: a refusal of another application, a later grant
            repair(key, "2025-05-06", granted=False, arrived="2025-05-06", doc_no="XF-9"),
            repair(key, "2025-03-20", arrived="2025-03-21", doc_no="XF-8")]
    inputs += draw(st.lists(st.sampled_from(pool), min_size=1, max_size=5, unique_by=lambda e: e.origin))
    return inputs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(office_on_linked_inputs(), st.randoms(use_true_random=False))
def test_the_legal_representatives_file_follows_the_organisations_in_every_arrival_order(inputs, rnd):
    org, person = _files_in_shuffled_orders(inputs, rnd)
    lists = org["evaluation"]["lists"].keys() - {"red_list"}
    assert person["evaluation"]["lists"].keys() - {"red_list"} == lists


def test_escalation_changes_name_what_caused_them():
    # docs/events.md: cause_kind says why, cause_decision names the decision behind it. Escalation
    # changes said ("listing", None) / ("expiry", None) / objection_filed with no objection whatever
    # happened: here a severe record, an objection filed and upheld, and the correction
    from domain.validate import decision_key
    from tests.builders import objection

    pen = record("penalty", "A", "2024-07-01", severity="severe", domain="environment")
    tax = record("penalty", "T", "2024-08-01", severity="severe", domain="taxation")
    key = decision_key(pen)
    inputs = [record_event(pen, "2024-07-02"), record_event(tax, "2024-08-02"),
              objection("OB1", key, "filed", "2024-09-02", arrived="2024-09-02"),
              objection("OB1", key, "upheld", "2024-09-02", "2024-09-05", outcome="corrected", arrived="2024-09-05"),
              record_event(dict(pen, fields={"fine_amount": "2"}), "2024-09-10")]
    state, announced, _ = run(inputs)
    causes = [(c["transition"], c["effective_date"], c["cause_kind"], c["cause_decision"])
              for c in announced if c["list"] == "escalated" and c["transition"] != "withdrawn"]
    assert causes == [("escalated", "2024-08-01", "record", decision_key(tax)),
                      ("suspended", "2024-09-02", "objection_filed", "OB1"),
                      ("de-escalated", "2024-09-05", "objection_upheld", "OB1"),
                      ("escalated", "2024-09-10", "correction", key)]


# ------------------------------------------------------------- announcements as state transitions

_ENTRIES = {"entered", "escalated", "red_list_entered"}
_EXITS = {"exited", "de-escalated", "red_list_exited"}


def assert_valid_transitions(changes, held=None):
    """Apply list changes one by one as state transitions, per list: an entry only while off the
    list, an exit only while on it, a suspension only while on it and not suspended, a resumption
    only while suspended. ``held``: list -> (on, suspended) before them (default: off every list)."""
    held = dict(held or {})
    for c in changes:
        name, t = c["list"], c["transition"]
        on, suspended = held.get(name, (False, False))
        if t in _ENTRIES:
            assert not on, (name, t, c["effective_date"], "entered while on the list")
            held[name] = (True, False)
        elif t in _EXITS:
            assert on, (name, t, c["effective_date"], "exited while off the list")
            held[name] = (False, False)
        elif t == "suspended":
            assert on and not suspended, (name, t, c["effective_date"], "suspended while off the list or suspended")
            held[name] = (True, True)
        elif t == "resumed":
            assert on and suspended, (name, t, c["effective_date"], "resumed while not suspended")
            held[name] = (True, False)
    return held


def test_an_entry_is_announced_before_its_suspension_on_the_same_day():
    # an objection filed on the decision date, sent before the decision: the decision's announcement
    # held the suspension of blacklist:environment (and of the escalation) before the entry into it,
    # a suspension of a list the subject was not on for a subscriber applying them in order
    pen = record("penalty", "环罚〔2026〕3号", "2026-03-02", severity="severe", domain="environment")
    key = decision_key(pen)
    listing = record("court_listing", "(2026)豫01执3号", "2026-03-02")
    for inputs in ([objection("OB-1", key, "filed", "2026-03-02", arrived="2026-03-05"),
                    record_event(listing, "2026-03-05"), record_event(pen, "2026-03-05")],
                   [record_event(listing, "2026-03-05"), record_event(pen, "2026-03-05"),
                    objection("OB-1", key, "filed", "2026-03-02", arrived="2026-03-05")]):
        state, announced, _ = run(inputs)
        env = [(c["effective_date"], c["transition"]) for c in announced if c["list"] == "blacklist:environment"]
        assert env == [("2026-03-02", "entered"), ("2026-03-02", "suspended")]
        assert_valid_transitions(c for c in announced if c["transition"] != "withdrawn")
        assert told(fold_changes(announced)) == told(history_of(state))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(list_inputs(max_inputs=10))
def test_a_whole_history_announced_at_once_is_a_valid_sequence_of_transitions(inputs):
    """After every input, the subject's whole list history announced at once (as when its inputs
    all arrive together) is in an order a subscriber can apply as state transitions. (Announcements
    one after the other are not checked so: a late input adds changes before ones already told.)"""
    from domain.engine import announce

    state = None
    for event in inputs:
        state = step(state, event, RULES, CAL).state
        assert_valid_transitions(announce([], list(history_of(state).values()), event))


@given(st.text(max_size=40), st.text(max_size=30), st.text(max_size=30), st.text(max_size=10),
       st.lists(st.text(max_size=60), max_size=4))
def test_a_change_id_is_the_blake2b_it_always_was(subject, list_name, transition, effective, causes):
    import hashlib

    from domain.facts import change_id

    blob = "|".join((subject, list_name, transition, effective, ",".join(causes)))
    try:
        data = blob.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not an id the rules core makes
        return
    assert change_id(subject, list_name, transition, effective, causes) == \
        hashlib.blake2b(data, digest_size=16).hexdigest()
    # and the same id twice (the copied hash starts afresh each time)
    assert change_id(subject, list_name, transition, effective, causes) == change_id(
        subject, list_name, transition, effective, causes)


def _ms(day: str, hour: int, minute: int = 0) -> int:
    return arrival(day, hour) + minute * 60_000


def test_more_versions_than_kept_give_the_same_winner_in_every_order():
    """Seen (two arrival orders of the same 18 inputs): 16 general versions of one decision and a
    severe 17th, sent twice, stamped before all of them and again a day later. Where the early copy
    came first it was evicted (16 versions kept) and the late copy was taken for a new version,
    first seen last: it won, and the subject went on the blacklist; in the other order it stayed off.
    The version first seen at the latest stamp wins (RULES.md 3a): the 16th."""
    base = record("penalty", "闽环罚〔2024〕9号", "2024-05-20", severity="general", domain="environment")
    versions = [record_event(dict(base, fields={"fine_amount": f"{i}.000000"}), "2024-06-01",
                             ms=_ms("2024-06-01", 9, i), at=f"t/0/{i}") for i in range(1, 17)]
    severe = dict(base, severity="severe", fields={"fine_amount": "17.000000"})
    early = record_event(severe, "2024-06-01", ms=_ms("2024-06-01", 8), at="t/1/1")
    late = record_event(severe, "2024-06-02", ms=_ms("2024-06-02", 9), at="t/1/2")
    finals = set()
    for order in ([early, *versions, late], [*versions, late, early], [late, *versions, early],
                  [*versions[:8], early, *versions[8:], late]):
        state, announced, _ = run(order)
        entry = state["records"][decision_key(base)]
        folded = fold_changes(announced)
        finals.add((entry["content"]["fields"]["fine_amount"], tuple(sorted(state["evaluation"]["lists"])),
                    tuple(sorted(summary(folded.values())))))
    assert len(finals) == 1, finals
    ((fine, lists, _),) = finals
    assert fine == "16.000000" and "blacklist:environment" not in lists


def test_more_deletion_versions_than_kept_give_the_same_exit_in_every_order():
    """Seen: 17 deletion versions of one court listing and the 17th sent twice (before all of them and
    a day later): the deletion date, and the court-debtor exit announced, followed arrival order."""
    listing = record("court_listing", "(2023)豫01执88号", "2023-03-01")
    listed = record_event(listing, "2023-03-02", at="t/0/0")
    deletions = [record_event(record("court_deletion", "(2023)豫01执88号", f"2024-01-{i:02d}",
                                     deletion_reason="performed"), "2024-02-01", ms=_ms("2024-02-01", 9, i),
                              at=f"t/0/{i}") for i in range(1, 18)]
    d17 = deletions.pop()
    early = record_event(d17.record, "2024-02-01", ms=_ms("2024-02-01", 8), at="t/1/1")
    late = record_event(d17.record, "2024-02-02", ms=_ms("2024-02-02", 9), at="t/1/2")
    finals = set()
    for order in ([listed, early, *deletions, late], [listed, *deletions, late, early]):
        state, announced, _ = run(order)
        folded = fold_changes(announced)
        finals.add((state["records"][decision_key(listing)]["deletion"]["date"],
                    tuple(sorted(summary(folded.values())))))
    assert len(finals) == 1, finals
    ((date, _),) = finals
    assert date == "2024-01-16"
