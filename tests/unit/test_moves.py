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
from tests.builders import record, record_event
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


def _same(state, reference):
    got, want = essence(state), essence(reference)
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


@st.composite
def moves(draw):
    """Versions of two decisions attached through one number, the number moved between A and B
    one to three times (each move: a notice to every subject the versions were on, and copies to
    the new one), and some copies sent again."""
    versions = []
    for i in range(draw(st.integers(1, 3))):
        doc = draw(st.sampled_from(["罚7", "罚8"]))
        fields = {"fine_amount": draw(st.sampled_from(["1.000000", "2.000000", "3.000000"]))}
        rec = _by_number(doc, draw(st.sampled_from(["2025-03-03", "2025-09-01", "2026-02-02"])),
                         severity=draw(st.sampled_from(["severe", "general"])), **fields)
        versions.append(record_event(rec, draw(st.sampled_from(["2026-03-02", "2026-04-01", "2026-05-06"])),
                                     subject=A, at=f"p/0/{i}"))
    owners = [A]
    for _ in range(draw(st.integers(1, 3))):
        owners.append(B if owners[-1] == A else A)
    events = []
    for gen, owner in enumerate(owners):
        for v in versions:
            events.append(_copy(v, owner, gen))
            if draw(st.booleans()):
                events.append(_copy(v, owner, gen))  # sent again (a retried batch)
        if gen:
            for v in versions:
                events += [_detach(v, s, gen, owner) for s in set(owners[:gen]) if s != owner]
    return versions, owners[-1], events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves(), st.randoms(use_true_random=False))
def test_whatever_order_the_copies_and_notices_arrive_in_the_last_owner_holds_the_versions(case, rnd):
    versions, owner, events = case
    other = B if owner == A else A
    reference_owner, _, _ = _final([_copy(v, owner, 0) for v in versions], owner)
    for _ in range(4):
        order = list(events)
        rnd.shuffle(order)
        files = _history(order, (A, B))
        state, announced, _ = files[owner]
        _same(state, reference_owner)
        assert told(fold_changes(announced)) == told(history_of(state))
        state_other, announced_other, _ = files[other]
        assert state_other["records"] == {} and state_other["evaluation"]["lists"] == {}
        assert told(fold_changes(announced_other)) == told(history_of(state_other))


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


def test_moved_copies_are_not_counted_again_as_inputs():
    from domain.engine import report_counts

    first = record_event(_by_number("罚9", "2026-02-02"), "2026-02-03", subject=A)
    copy = _copy(first, B, 1)
    result = step(None, copy, RULES, CAL)
    assert "inputs" not in report_counts(copy, result)
    assert report_counts(first, step(None, first, RULES, CAL))["inputs"] == 1
