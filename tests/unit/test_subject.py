"""domain.subject.apply_record: the pure core of subject state.

Table-driven transitions (new, duplicate, correction, revocation, court deletion, redelivery,
stale re-sends, registrations), then hypothesis properties over small pools of canonical records:

(a) redelivery: re-applying any subsequence of the applied events (same origins) changes nothing;
(b) duplicates: re-sends (same content, new origins) never change the records;
(c) apply_record never mutates the state (or the event) it is given.

Records are built the way the ingest agent builds them: ``normalise_event`` on a sample Avro
record, wrapped by ``agents.ingest.subject_event``.

The tests under "defects found" pinned defects of domain/subject.py, fixed since;
each keeps the failing case it was found with.
"""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agents.ingest import subject_event
from domain.subject import SEEN_ORIGINS_KEPT, active_records, apply_record
from domain.validate import decision_key, normalise_event
from streams import samples
from streams.samples import sample_event, schema_of

CST = dt.timezone(dt.timedelta(hours=8))
NOW_MS = int(dt.datetime(2024, 10, 1, 12, 0, tzinfo=CST).timestamp() * 1000)
SUBJECT = samples.COMPANY_USCC


def canonical(kind: str, **overrides) -> dict:
    rec = normalise_event(schema_of(kind), sample_event(kind, **overrides), event_time_ms=NOW_MS)
    assert isinstance(rec, dict), rec
    return rec


def event(record: dict, origin: str, event_ms: int = NOW_MS) -> dict:
    return subject_event(SUBJECT, "uscc", origin, record, event_ms)


def run(events, state=None):
    """Apply events in order; (final state, outcomes)."""
    outcomes = []
    for ev in events:
        state, outcome = apply_record(state, ev)
        outcomes.append(outcome)
    return state, outcomes


# The records every test draws from.
R = {
    "penalty": canonical("penalty"),
    "penalty_new_event_id": canonical("penalty", event_id="samr-zz-penalty-000123-resend"),
    "penalty_corrected": canonical("penalty", penalty_content="罚款6万元",
                                   fine_amount=samples.Decimal("6")),
    "penalty_revoked": canonical("penalty", record_status="revoked"),
    "penalty_other_doc": canonical("penalty", decision_doc_no="郑市监罚〔2024〕124号"),
    "license": canonical("license"),
    "license_corrected": canonical("license", content="预包装食品销售（不含冷藏冷冻食品）"),
    # same document number and unit as the penalty: a different decision all the same
    "license_same_doc_no": canonical("license", license_doc_no="郑市监罚〔2024〕123号"),
    "action": canonical("action"),
    "court_listing": canonical("court_listing"),
    "court_listing_corrected": canonical("court_listing", obligation="支付货款人民币400000元及利息"),
    "court_deletion": canonical("court_deletion"),
    "registration": canonical("registration"),
    "registration_new_tax_no": canonical("registration", tax_no="914101056660072170"),
    "registration_new_name": canonical("registration", subject_name="郑州恒达商贸集团有限公司"),
    "registration_other_a": canonical("registration", other_ids=["豫民证字第000111号"]),
    "registration_other_b": canonical("registration", other_ids=["豫民证字第000222号"]),
}
PENALTY_KEY = decision_key(R["penalty"])
LISTING_KEY = decision_key(R["court_listing"])


def test_sample_records_are_what_the_tests_assume():
    assert R["penalty_revoked"]["revoked"] is True
    assert decision_key(R["court_deletion"]) == LISTING_KEY
    assert decision_key(R["penalty_corrected"]) == PENALTY_KEY
    assert decision_key(R["license_same_doc_no"]) != PENALTY_KEY
    assert R["penalty_new_event_id"]["event_id"] != R["penalty"]["event_id"]
    assert R["registration_other_a"]["ids"]["other"] != R["registration_other_b"]["ids"]["other"]


# --------------------------------------------------------------------------------------------
# table-driven transitions
#
# (case id, [(record name, origin)], expected outcomes, {decision key: expected entry fields})

CASES = [
    ("new", [("penalty", "p/0/1")], ["new"],
     {PENALTY_KEY: {"status": "active", "version": 1, "seen": ["p/0/1"]}}),
    ("identical re-send is a duplicate", [("penalty", "p/0/1"), ("penalty", "p/0/2")], ["new", "duplicate"],
     {PENALTY_KEY: {"status": "active", "version": 1, "seen": ["p/0/1", "p/0/2"]}}),
    ("re-send with a new event_id is a duplicate (event_id is not content)",
     [("penalty", "p/0/1"), ("penalty_new_event_id", "p/0/2")], ["new", "duplicate"],
     {PENALTY_KEY: {"status": "active", "version": 1}}),
    ("changed content is a correction", [("penalty", "p/0/1"), ("penalty_corrected", "p/0/2")], ["new", "correction"],
     {PENALTY_KEY: {"status": "active", "version": 2, "penalty_content": "罚款6万元"}}),
    ("revoked status withdraws the record", [("penalty", "p/0/1"), ("penalty_revoked", "p/0/2")],
     ["new", "revocation"], {PENALTY_KEY: {"status": "revoked", "version": 2}}),
    ("revocation re-sent is a duplicate",
     [("penalty", "p/0/1"), ("penalty_revoked", "p/0/2"), ("penalty_revoked", "p/0/3")],
     ["new", "revocation", "duplicate"], {PENALTY_KEY: {"status": "revoked", "version": 2}}),
    ("revocation as the first word", [("penalty_revoked", "p/0/1")], ["revocation"],
     {PENALTY_KEY: {"status": "revoked", "version": 1}}),
    ("court deletion withdraws the listing", [("court_listing", "c/0/1"), ("court_deletion", "c/0/2")],
     ["new", "deletion"], {LISTING_KEY: {"status": "deleted", "version": 2, "kind": "court_listing",
                                         "deletion_reason": "performed", "deletion_date": "2024-09-10"}}),
    ("court deletion re-sent is a duplicate",
     [("court_listing", "c/0/1"), ("court_deletion", "c/0/2"), ("court_deletion", "c/0/3")],
     ["new", "deletion", "duplicate"], {LISTING_KEY: {"status": "deleted", "version": 2}}),
    ("court deletion before its listing", [("court_deletion", "c/0/1")], ["deletion"],
     {LISTING_KEY: {"status": "deleted", "version": 1, "kind": "court_deletion"}}),
    ("listing re-sent after its deletion stays deleted",
     [("court_listing", "c/0/1"), ("court_deletion", "c/0/2"), ("court_listing", "c/0/3")],
     ["new", "deletion", "duplicate"], {LISTING_KEY: {"status": "deleted", "version": 2}}),
    ("redelivery of the same origin changes nothing",
     [("penalty", "p/0/1"), ("penalty_corrected", "p/0/2"), ("penalty", "p/0/1")],
     ["new", "correction", "redelivered"],
     {PENALTY_KEY: {"status": "active", "version": 2, "seen": ["p/0/1", "p/0/2"],
                    "penalty_content": "罚款6万元"}}),
    ("redelivery of the correction changes nothing",
     [("penalty", "p/0/1"), ("penalty_corrected", "p/0/2"), ("penalty_corrected", "p/0/2")],
     ["new", "correction", "redelivered"], {PENALTY_KEY: {"status": "active", "version": 2}}),
    ("stale re-send of the old version after a correction is a duplicate, not a flip back",
     [("penalty", "p/0/1"), ("penalty_corrected", "p/0/2"), ("penalty", "p/0/3")],
     ["new", "correction", "duplicate"],
     {PENALTY_KEY: {"status": "active", "version": 2, "penalty_content": "罚款6万元"}}),
    ("stale re-send of the active version after a revocation does not revive it",
     [("penalty", "p/0/1"), ("penalty_revoked", "p/0/2"), ("penalty", "p/0/3")],
     ["new", "revocation", "duplicate"], {PENALTY_KEY: {"status": "revoked", "version": 2}}),
    ("a corrected re-publication after a revocation is active again",
     [("penalty", "p/0/1"), ("penalty_revoked", "p/0/2"), ("penalty_corrected", "p/0/3")],
     ["new", "revocation", "correction"], {PENALTY_KEY: {"status": "active", "version": 3}}),
    ("another document number is another record",
     [("penalty", "p/0/1"), ("penalty_other_doc", "p/0/2")], ["new", "new"],
     {PENALTY_KEY: {"version": 1}, decision_key(R["penalty_other_doc"]): {"version": 1}}),
    ("a licence with the penalty's document number is another record",
     [("penalty", "p/0/1"), ("license_same_doc_no", "l/0/1")], ["new", "new"],
     {PENALTY_KEY: {"version": 1}, decision_key(R["license_same_doc_no"]): {"version": 1, "kind": "license"}}),
]


@pytest.mark.parametrize("steps,outcomes,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_transition(steps, outcomes, expected):
    state, got = run(event(R[name], origin, NOW_MS + i) for i, (name, origin) in enumerate(steps))
    assert got == outcomes
    assert set(state["records"]) == set(expected)
    for key, fields in expected.items():
        entry = state["records"][key]
        for field, value in fields.items():
            if field in ("status", "version", "seen", "kind"):
                assert entry[field] == value, (key, field)
            elif field.startswith("deletion_"):
                assert entry["deletion"][field.removeprefix("deletion_")] == value
            else:
                assert entry["content"]["fields"][field] == value, (key, field)
    assert state["id"] == SUBJECT and state["id_kind"] == "uscc"
    # the state version counts applied transitions, nothing else
    assert state["version"] == sum(o in ("new", "correction", "revocation", "deletion") for o in outcomes)


def test_redelivered_returns_the_very_same_state():
    state, _ = run([event(R["penalty"], "p/0/1")])
    again, outcome = apply_record(state, event(R["penalty"], "p/0/1"))
    assert outcome == "redelivered" and again is state


def test_duplicate_changes_only_the_origins_seen():
    state, _ = run([event(R["penalty"], "p/0/1", 100)])
    dup, outcome = apply_record(state, event(R["penalty"], "p/0/2", 200))
    assert outcome == "duplicate"
    before, after = state["records"][PENALTY_KEY], dup["records"][PENALTY_KEY]
    assert {k: v for k, v in after.items() if k != "seen"} == {k: v for k, v in before.items() if k != "seen"}
    assert dup["version"] == state["version"] and dup["updated_ms"] == state["updated_ms"]


def test_correction_keeps_first_seen_time_and_moves_updated_time():
    state, _ = run([event(R["penalty"], "p/0/1", 100), event(R["penalty_corrected"], "p/0/2", 200)])
    entry = state["records"][PENALTY_KEY]
    assert entry["first_ms"] == 100 and entry["updated_ms"] == 200 and state["updated_ms"] == 200
    assert len(entry["hashes"]) == 2 and entry["hash"] == entry["hashes"][-1]


def test_registration_teaches_names_and_ids():
    state, outcomes = run([event(R["registration"], "r/0/1")])
    assert outcomes == ["registration"]
    assert state["names"] == [samples.COMPANY]
    assert state["ids"] == {"uscc": SUBJECT, "org_code": samples.COMPANY_ORG_CODE,
                            "reg_no": samples.COMPANY_REG_NO, "tax_no": "410105666007217"}
    assert state["records"] == {} and state["version"] == 1


def test_registration_merges_idempotently():
    state, outcomes = run([event(R["penalty"], "p/0/1"), event(R["registration"], "r/0/1")])
    assert outcomes == ["new", "registration"]
    assert state["names"] == [samples.COMPANY]  # the penalty's name, not repeated
    assert state["ids"]["reg_no"] == samples.COMPANY_REG_NO and state["ids"]["uscc"] == SUBJECT
    # the same registration again (a new origin: a re-send) teaches nothing; only its origin is kept
    again, outcome = apply_record(state, event(R["registration"], "r/0/2"))
    assert outcome == "duplicate"
    assert {k: v for k, v in again.items() if k != "registrations_seen"} == \
        {k: v for k, v in state.items() if k != "registrations_seen"}
    assert apply_record(again, event(R["registration"], "r/0/2"))[1] == "redelivered"
    # a new name is added once, the old one kept
    renamed, outcome = apply_record(state, event(R["registration_new_name"], "r/0/3"))
    assert outcome == "registration"
    assert renamed["names"] == [samples.COMPANY, "郑州恒达商贸集团有限公司"]
    twice, outcome = apply_record(renamed, event(R["registration_new_name"], "r/0/4"))
    assert outcome == "duplicate" and twice["names"] == renamed["names"]


def test_registration_other_ids_merge_into_a_set():
    state, _ = run([event(R["registration_other_a"], "r/0/1"), event(R["registration_other_b"], "r/0/2"),
                    event(R["registration_other_a"], "r/0/3")])
    assert state["ids"]["other"] == ["豫民证字第000111号", "豫民证字第000222号"]


def test_active_records():
    state, _ = run([event(R["penalty"], "p/0/1"), event(R["license"], "l/0/1"),
                    event(R["penalty_revoked"], "p/0/2")])
    assert [r["kind"] for r in active_records(state)] == ["license"]


# --------------------------------------------------------------------------------------------
# defects found (were strict xfails until fixed)


def test_stale_court_deletion_after_a_relisting_is_a_duplicate():
    state, outcomes = run([event(R["court_listing"], "c/0/1"), event(R["court_deletion"], "c/0/2"),
                           event(R["court_listing_corrected"], "c/0/3"), event(R["court_deletion"], "c/0/4")])
    assert outcomes[:3] == ["new", "deletion", "correction"]
    assert outcomes[3] == "duplicate"
    assert state["records"][LISTING_KEY]["status"] == "active"


def test_new_other_id_does_not_mutate_the_old_state():
    state, _ = run([event(R["registration_other_a"], "r/0/1")])
    before = copy.deepcopy(state)
    new, outcome = apply_record(state, event(R["registration_other_b"], "r/0/2"))
    assert state == before
    assert outcome == "registration"
    assert new["ids"]["other"] == ["豫民证字第000111号", "豫民证字第000222号"]


def test_redelivered_registrations_change_nothing():
    events = [event(R["registration"], "r/0/1"), event(R["registration_new_tax_no"], "r/0/2")]
    state, _ = run(events)
    again, _ = run(events, state)  # the same batch, redelivered in order
    assert again == state


# --------------------------------------------------------------------------------------------
# properties
#
# Each property runs over pools of records; a pool that hits a known defect runs in its own test,
# strict-xfail, with the defect's failing case as an explicit @example so that it fails every time
# (not only when hypothesis happens to find it).

POOLS = {
    "decisions": ["penalty", "penalty_new_event_id", "penalty_corrected", "penalty_revoked",
                  "penalty_other_doc", "license", "license_corrected", "license_same_doc_no", "action"],
    "court": ["court_listing", "court_listing_corrected", "court_deletion"],
    "decisions_and_registrations": ["penalty", "penalty_corrected", "penalty_revoked", "license",
                                    "registration", "registration_new_name"],
    "registrations_with_changing_ids": ["registration", "registration_new_tax_no", "penalty",
                                        "registration_other_a", "registration_other_b"],
}

# fewer events per record than the origins it remembers, so redelivery is always recognised
MAX_EVENTS = SEEN_ORIGINS_KEPT - 2

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                             database=None)


def originals(names: list[str]) -> list[dict]:
    return [event(R[name], f"dept/0/{i}", NOW_MS + 10 * i) for i, name in enumerate(names)]


def without_seen(state: dict | None) -> dict:
    if state is None:
        return {}
    return {key: {k: v for k, v in entry.items() if k != "seen"} for key, entry in state["records"].items()}


@st.composite
def with_redeliveries(draw, pool: str):
    """(record names, positions of the events redelivered afterwards, in any order, repeats allowed)."""
    names = draw(st.lists(st.sampled_from(POOLS[pool]), min_size=1, max_size=MAX_EVENTS))
    again = draw(st.lists(st.integers(0, len(names) - 1), max_size=2 * len(names)))
    return names, again


@st.composite
def with_duplicates(draw, pool: str):
    """(record names, duplicates as (i, j): a copy of event i with a new origin, sent before event j
    (i < j <= len(names); j == len(names) means at the end))."""
    names = draw(st.lists(st.sampled_from(POOLS[pool]), min_size=1, max_size=MAX_EVENTS))
    n = len(names)
    picks = draw(st.lists(st.integers(0, n - 1).flatmap(lambda i: st.tuples(st.just(i), st.integers(i + 1, n))),
                          max_size=n))
    return names, picks


def check_redelivery(names: list[str], again: list[int]) -> None:
    events = originals(names)
    state, _ = run(events)
    replayed, _ = run([events[i] for i in again], state)
    assert replayed == state


def check_duplicates(names: list[str], picks: list[tuple[int, int]]) -> None:
    events = originals(names)
    n = len(events)
    before: dict[int, list[dict]] = {}
    for k, (i, j) in enumerate(picks):
        dup = dict(events[i], origin=f"dept/1/{k}", event_ms=events[i]["event_ms"] + 1)
        before.setdefault(j, []).append(dup)
    with_dups = []
    for j in range(n + 1):
        with_dups += before.get(j, [])
        if j < n:
            with_dups.append(events[j])
    plain, _ = run(events)
    duplicated, _ = run(with_dups)
    assert sorted(decision_key(r["content"]) for r in active_records(duplicated)) == \
        sorted(decision_key(r["content"]) for r in active_records(plain))
    assert without_seen(duplicated) == without_seen(plain)


def check_no_mutation(names: list[str], again: list[int]) -> None:
    events = originals(names)
    events += [events[i] for i in again]  # redeliveries mixed in: the same origins again
    state = None
    for ev in events:
        state_copy, event_copy = copy.deepcopy(state), copy.deepcopy(ev)
        new, _ = apply_record(state, ev)
        assert state == state_copy
        assert ev == event_copy
        state = new


# (a) redelivery: re-applying any subsequence of the applied events (same origins) changes nothing


@pytest.mark.parametrize("pool", ["decisions", "court", "decisions_and_registrations"])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_redelivering_any_subsequence_changes_nothing(pool, data):
    check_redelivery(*data.draw(with_redeliveries(pool)))


@PROPERTY_SETTINGS
@given(case=with_redeliveries("registrations_with_changing_ids"))
@example(case=(["registration", "registration_new_tax_no"], [0, 1]))
def test_redelivering_registrations_changes_nothing(case):
    check_redelivery(*case)


# (b) duplicates (same content, new origins) never change the records


@pytest.mark.parametrize("pool", ["decisions", "decisions_and_registrations", "registrations_with_changing_ids"])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_duplicates_never_change_the_records(pool, data):
    check_duplicates(*data.draw(with_duplicates(pool)))


@PROPERTY_SETTINGS
@given(case=with_duplicates("court"))
@example(case=(["court_listing", "court_deletion", "court_listing_corrected"], [(1, 3)]))
def test_duplicate_court_events_never_change_the_records(case):
    check_duplicates(*case)


# (c) apply_record never mutates the state (or the event) it is given


@pytest.mark.parametrize("pool", ["decisions", "court", "decisions_and_registrations"])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_apply_record_never_mutates_its_input(pool, data):
    check_no_mutation(*data.draw(with_redeliveries(pool)))


@PROPERTY_SETTINGS
@given(case=with_redeliveries("registrations_with_changing_ids"))
@example(case=(["registration_other_a", "registration_other_b"], []))
def test_apply_record_never_mutates_registrations(case):
    check_no_mutation(*case)
