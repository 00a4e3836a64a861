"""Records attached through a legacy number that moved to another subject (存量代码转换, RULES.md 1, 3a).

The registry index re-attaches the versions a number attached once the number names another
organisation (sinks/registry_index.py): the subject that had them is told ``detached``, the one that
gets them is sent their copies at the move's generation. These tests hold the rules core to what
that needs: whatever order a subject's copies and notices arrive in, it ends as if only the copies
addressed to it by the last move had come, lists and history included; the legal representatives'
files follow; a notice or a copy that arrives again changes nothing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import events as ev
from domain.engine import fold_changes, step
from domain.history import history_of
from domain.validate import decision_key
from tests.builders import arrival, record, record_event
from tests.unit.test_history import CAL, RULES, essence, run, told

A = "91310110666007217T"
B = "91310115591693856A"
PERSON_ID = "11010519491231002X"
TODAY = "2026-11-30"


def _by_number(doc, date, *, severity="severe", domain="environment", **fields):
    """A penalty naming its organisation by a registration number only (as a department's old
    system sends it): the ingest agent attaches it through the index."""
    rec = record("penalty", doc, date, severity=severity, domain=domain, **fields)
    return dict(rec, ids={"reg_no": "310230001716146"})


def _copy(event, subject, gen):
    return ev.with_subject(event, subject, "uscc", gen)


def _detach(event, subject, gen, to):
    return ev.detached(subject, event.record, event.hash, gen, event.event_ms, to)


def _final(events, subject):
    """``subject``'s file from ``events`` and a tick to TODAY (so that every order ends on one clock)."""
    state, announced, outcomes = run([*events, ev.tick(subject, TODAY)])
    return state, announced, outcomes


def _same(state, reference, *, units=True):
    """``state`` is ``reference``'s (the records, objections, repairs, history, situation and clock;
    without ``units``: what the deciding units' names and codes a file learned, which a decision
    that moved away leaves learned: docs/operations.md, "Legacy numbers that move")."""
    got, want = essence(state), essence(reference)
    if not units:
        got.pop("units"), want.pop("units")
    assert got == want


def test_a_record_that_moved_away_leaves_its_subject_as_if_it_never_came():
    own = record_event(dict(record("penalty", "罚1", "2026-01-05", severity="general", domain="taxation"),
                            ids={"uscc": A}), "2026-01-06", subject=A)
    moved = record_event(_by_number("罚2", "2026-02-02"), "2026-02-03", subject=A)
    state, announced, outcomes = _final([own, moved, _detach(moved, A, 1, B)], A)
    assert outcomes[-2] == "detached"
    assert set(state["evaluation"]["lists"]) == set()  # the severe penalty listed it; it moved away
    assert told(fold_changes(announced)) == told(history_of(state))  # its entry was announced and withdrawn
    assert any(c["transition"] == "withdrawn" for c in announced)
    reference, _, _ = _final([own], A)
    _same(state, reference)
    assert list(state["records"]) == [decision_key(own.record)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_notice_before_the_copy_it_follows_keeps_the_copy_out(order):
    # the ingest agent's copy addressed to A before the move, the registry agent's notice to A and
    # its copy to B: produced by two workers, they reach each file in any order
    first = record_event(_by_number("罚3", "2026-02-02"), "2026-02-03", subject=A)
    resent = record_event(_by_number("罚3", "2026-02-02"), "2026-02-09", subject=A)
    notice = _detach(first, A, 1, B)
    events = [first, resent, notice]
    state_a, announced, outcomes = _final([events[i] for i in order], A)
    assert state_a["records"] == {} and state_a["evaluation"]["lists"] == {}
    assert told(fold_changes(announced)) == told(history_of(state_a))
    state_b, _, _ = _final([_copy(first, B, 1), _copy(resent, B, 1)], B)
    direct, _, _ = _final([_copy(first, B, 0), _copy(resent, B, 0)], B)
    _same(state_b, direct)
    assert set(state_b["evaluation"]["lists"]) == {"blacklist:environment"}


def _history(events, subjects):
    """Each subject's file from the events addressed to it, in the given order."""
    return {s: _final([e for e in events if e.subject == s], s) for s in subjects}


def _routed(events, subjects):
    """Every subject's file from ``events`` (in the given order), the links each step sends routed
    to their subjects at once (as the worker routes them, each after what caused it), then a tick
    to TODAY for each."""
    files: dict = {}
    queue = list(events)
    while queue:
        event = queue.pop(0)
        result = step(files.get(event.subject), event, RULES, CAL)
        if result.outcome != "redelivered":
            files[event.subject] = result.state
        queue = result.links + queue
    return {sid: step(files.get(sid), ev.tick(sid, TODAY), RULES, CAL).state for sid in subjects}


REP = {"name": "张三", "id_no": PERSON_ID}


@st.composite
def moves(draw):
    """Versions of two decisions attached through one number, the number moved between A and B
    one to three times (each move: a notice to every subject the versions were on, and copies to
    the new one), and some copies sent again."""
    versions = []
    for i in range(draw(st.integers(1, 3))):
        arrived = draw(st.sampled_from(["2026-03-02", "2026-04-01", "2026-05-06"]))
        if draw(st.integers(0, 3)) == 0:  # a court's listing of the organisation, or its deletion, by number
            date = draw(st.sampled_from(["2025-03-03", "2026-02-02"]))
            rec = record("court_listing", "执7", date) if draw(st.booleans()) else record(
                "court_deletion", "执7", date, deletion_reason=draw(st.sampled_from(["performed", "listing_revoked"])))
            rec = dict(rec, ids={"reg_no": "310230001716146"}, legal_rep=REP)
        else:
            doc = draw(st.sampled_from(["罚7", "罚8"]))
            fields = {"fine_amount": draw(st.sampled_from(["1.000000", "2.000000", "3.000000"]))}
            rec = _by_number(doc, draw(st.sampled_from(["2025-03-03", "2025-09-01", "2026-02-02"])),
                             severity=draw(st.sampled_from(["severe", "general"])), **fields)
            if draw(st.booleans()):
                rec = dict(rec, legal_rep=REP)
        versions.append(record_event(rec, arrived, subject=A, at=f"p/0/{i}"))
    owners = [A]
    for _ in range(draw(st.integers(1, 3))):
        owners.append(B if owners[-1] == A else A)
    # versions of the same decisions sent with A's USCC: A's, wherever the number goes
    stays = []
    for i in range(draw(st.integers(0, 2))):
        arrived = draw(st.sampled_from(["2026-03-02", "2026-04-01", "2026-05-06"]))
        if draw(st.booleans()):  # (a deletion: most often the one a court also sent by number)
            rec = record("court_listing", "执7", "2025-03-03") if draw(st.booleans()) else record(
                "court_deletion", "执7", "2026-02-02", deletion_reason="performed")
            rec = dict(rec, legal_rep=REP)
        else:
            rec = record("penalty", draw(st.sampled_from(["罚7", "罚8"])),
                         draw(st.sampled_from(["2025-03-03", "2025-09-01", "2026-02-02"])), severity="severe",
                         domain="environment", fine_amount="4.000000")
        stays.append(record_event(dict(rec, ids={"uscc": A}), arrived, subject=A, at=f"q/0/{i}"))
    events = [e for v in stays for e in ([v, v] if draw(st.booleans()) else [v])]
    for gen, owner in enumerate(owners):
        for v in versions:
            events.append(_copy(v, owner, gen))
            if draw(st.booleans()):
                events.append(_copy(v, owner, gen))  # sent again (a retried batch)
        if gen:
            for v in versions:
                events += [_detach(v, s, gen, owner) for s in set(owners[:gen]) if s != owner]
    return versions, owners[-1], events, stays


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves(), st.randoms(use_true_random=False))
def test_whatever_order_the_copies_and_notices_arrive_in_the_last_owner_holds_the_versions(case, rnd):
    versions, owner, events, stays = case
    direct = [*stays, *(_copy(v, owner, 0) for v in versions)]
    reference_files = _history(direct, (A, B))
    reference = _routed(direct, (A, B, PERSON_ID))
    for _ in range(4):
        order = list(events)
        rnd.shuffle(order)
        files = _history(order, (A, B))
        for subject in (A, B):  # the owner holds the versions that moved, A those sent with its USCC
            state, announced, _ = files[subject]
            _same(state, reference_files[subject][0], units=subject == owner)
            assert told(fold_changes(announced)) == told(history_of(state))
        # the legal representative's file: as if every copy had gone where it ends first
        routed = _routed(order, (A, B, PERSON_ID))
        for subject in (A, B):
            _same(routed[subject], reference[subject], units=subject == owner)
        _same(routed[PERSON_ID], reference[PERSON_ID], units=False)


def test_a_notice_again_or_an_older_one_changes_nothing():
    first = record_event(_by_number("罚4", "2026-02-02"), "2026-02-03", subject=A)
    state, _, _ = run([first, _detach(first, A, 1, B), _copy(first, A, 2)])
    assert set(state["records"]) == {decision_key(first.record)}
    for late in (_detach(first, A, 1, B), _detach(first, A, 2, B)):
        result = step(state, late, RULES, CAL)
        assert result.outcome == "redelivered" and result.changes == [] and result.state is state


def test_the_legal_representatives_file_follows_the_record():
    rep = {"name": "张三", "id_no": PERSON_ID}
    moved = record_event(dict(_by_number("罚5", "2026-02-02"), legal_rep=rep), "2026-02-03", subject=A)
    files: dict = {}
    queue = [moved, _detach(moved, A, 1, B), _copy(moved, B, 1)]
    while queue:
        event = queue.pop(0)
        result = step(files.get(event.subject), event, RULES, CAL)
        files[event.subject] = result.state
        queue += result.links
    person = step(files[PERSON_ID], ev.tick(PERSON_ID, TODAY), RULES, CAL).state
    # on the person's file only as B's record (the copy linked via A left with it)
    assert [e["via"] for e in person["records"].values()] == [B]
    assert set(person["evaluation"]["lists"]) == {"blacklist:environment"}
    assert files[A]["records"] == {}


def test_a_version_sent_with_the_organisations_code_stays_when_one_by_the_number_moves():
    by_code = record_event(dict(_by_number("罚6", "2026-02-02", fine_amount="1.000000"), ids={"uscc": A}),
                           "2026-02-03", subject=A)
    by_number = record_event(_by_number("罚6", "2026-02-02", fine_amount="2.000000"), "2026-02-05", subject=A)
    state, _, _ = _final([by_code, by_number, _detach(by_number, A, 1, B)], A)
    reference, _, _ = _final([by_code], A)
    _same(state, reference)
    (entry,) = state["records"].values()
    assert entry["content"]["fields"]["fine_amount"] == "1.000000"


def test_the_copies_a_move_sends_are_not_counted_again_as_inputs():
    # creditstream report's progress: every department message counted once (applied, parked or
    # dead-lettered); a re-send that arrives after the move, addressed at its generation, is one
    from domain.engine import report_counts

    first = record_event(_by_number("罚9", "2026-02-02"), "2026-02-03", subject=A)
    copy = ev.with_subject(first, B, "uscc", 1, moved=True)
    assert "inputs" not in report_counts(copy, step(None, copy, RULES, CAL))
    assert report_counts(first, step(None, first, RULES, CAL))["inputs"] == 1
    resent = _copy(record_event(_by_number("罚9", "2026-02-02"), "2026-02-09", subject=A), B, 1)
    assert report_counts(resent, step(None, resent, RULES, CAL))["inputs"] == 1


@pytest.mark.parametrize("first", ["severe", "general"])
def test_a_milder_version_that_moves_after_the_severe_one_leaves_the_representative_too(first):
    # the severe version's notice first: the record left on the organisation linked no one any more,
    # and the general version's copy stayed on the person's file under the organisation it had left
    severe = record_event(dict(_by_number("罚11", "2026-02-02"), legal_rep=REP), "2026-02-03", subject=A)
    general = record_event(dict(_by_number("罚11", "2026-02-02", severity="general"), legal_rep=REP),
                           "2026-02-10", subject=A)
    notices = [_detach(severe, A, 1, B), _detach(general, A, 1, B)]
    files = _routed([severe, general, *(notices if first == "severe" else notices[::-1]),
                     _copy(severe, B, 1), _copy(general, B, 1)], (A, B, PERSON_ID))
    assert files[A]["records"] == {}
    assert [e["via"] for e in files[PERSON_ID]["records"].values()] == [B]


def test_a_notice_to_a_person_without_a_file_makes_none():
    copy = ev.detached(PERSON_ID, _by_number("罚12", "2026-02-02"), "0" * 32, 1, arrival("2026-02-03"), None, via=A)
    assert step(None, copy, RULES, CAL).outcome == "redelivered"


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_a_court_listing_and_its_deletion_by_number_move_together(order):
    listing = record_event(dict(record("court_listing", "执9", "2026-01-15"), ids={"reg_no": "310230001716146"},
                                legal_rep=REP), "2026-01-16", subject=A)
    deletion = record_event(dict(record("court_deletion", "执9", "2026-09-10", deletion_reason="performed"),
                                 ids={"reg_no": "310230001716146"}), "2026-09-11", subject=A)
    on_a = [listing, deletion, _detach(listing, A, 1, B), _detach(deletion, A, 1, B)]
    files = _routed([on_a[i] for i in order] + [_copy(deletion, B, 1), _copy(listing, B, 1)], (A, B, PERSON_ID))
    reference = _routed([_copy(listing, B, 0), _copy(deletion, B, 0)], (B, PERSON_ID))
    assert files[A]["records"] == {}
    _same(files[B], reference[B])
    _same(files[PERSON_ID], reference[PERSON_ID], units=False)
    assert "court_debtor" not in files[B]["evaluation"]["lists"]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_a_courts_deletion_sent_by_the_uscc_stays_when_its_copy_by_the_number_moves(order):
    # the court's systems sent one deletion twice: with the organisation's USCC and by its
    # registration number only. Both were one version of the listing's deletion: the copy by number
    # moving away took the other with it, and a copy by USCC arriving after the notice was turned
    # away (`moved-away`): the listing came back, A and its legal representative on the court list
    listing = record_event(dict(record("court_listing", "执10", "2026-01-15"), ids={"uscc": A}, legal_rep=REP),
                           "2026-01-16", subject=A)
    by_uscc = record_event(dict(record("court_deletion", "执10", "2026-09-10", deletion_reason="performed"),
                                ids={"uscc": A}), "2026-09-11", subject=A)
    by_number = record_event(dict(record("court_deletion", "执10", "2026-09-10", deletion_reason="performed"),
                                  ids={"reg_no": "310230001716146"}), "2026-09-12", subject=A)
    on_a = [by_uscc, by_number, _detach(by_number, A, 1, B), _detach(by_number, A, 1, B)]
    files = _routed([listing] + [on_a[i] for i in order] + [_copy(by_number, B, 1)], (A, B, PERSON_ID))
    reference = _routed([listing, by_uscc], (A, PERSON_ID))
    _same(files[A], reference[A])
    _same(files[PERSON_ID], reference[PERSON_ID])
    assert files[A]["evaluation"]["lists"] == {} and files[PERSON_ID]["evaluation"]["lists"] == {}
    assert "court_debtor" not in files[B]["evaluation"]["lists"]  # a deletion of a listing B never had
