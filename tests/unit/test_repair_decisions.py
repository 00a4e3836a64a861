"""Several credit-repair decisions (信用修复决定) on one record: each is a decision of its own (RULES.md 2:
a decision is identified by its unit and document number). A later decision refusing another application
leaves an earlier grant standing (RULES.md 3: an approved repair ends publication and lifts joint
punishment); a decision sent again corrected to a refusal no longer grants; of two grants, the first the
record's rules accept applies. Seen (an audit): the refusal XF-B of 2024-07-10 withdrew the grant XF-A of
2024-06-10 back to its own date, and the check of 2024-06-20 answered `restricted`."""

from __future__ import annotations

import itertools

from domain.checks import check
from domain.memberships import Cause, intervals
from domain.report import credit_report
from domain.validate import decision_key
from tests.builders import record, record_event, repair
from tests.unit.list_inputs import RULES, run

PEN = record("penalty", "环罚〔2024〕11号", "2024-01-10", severity="severe", domain="environment")
KEY = decision_key(PEN)


def _state(*repairs):
    return run([record_event(PEN, "2024-01-12"), *repairs])


def _ended(state):
    """(the blacklist's exit and what caused it, the publicity's end and its kind)."""
    (m,) = [m for m in intervals(state) if m.list == "blacklist:environment"]
    pub = state["facts"][KEY]["pub"]
    return (m.exited, m.exited_by), (pub[1], pub[2])


def test_a_refusal_of_another_application_leaves_an_earlier_grant_in_every_order():
    granted = repair(KEY, "2024-06-10", arrived="2024-06-10", doc_no="XF-A")
    refused = repair(KEY, "2024-07-10", arrived="2024-07-10", doc_no="XF-B", granted=False)
    for inputs in itertools.permutations([granted, refused]):
        state = _state(*inputs)
        assert _ended(state) == (("2024-06-10", Cause("repair", "XF-A")), ("2024-06-10", "repair")), inputs
        assert check(state, "bidding", "2024-06-20", RULES).outcome == "clear"
        assert check(state, "bidding", "2024-06-09", RULES).outcome == "restricted"
        assert state["evaluation"]["repairs"][KEY]["applied"] is True
        report = credit_report(state, "2024-08-01", rules_version=RULES.version,
                               generated_at="2024-08-01T10:00:00+08:00", rules=RULES)
        assert report["repairs"] == [{"record_key": KEY, "approved": "2024-06-10", "granted": True, "doc_no": "XF-A",
                                      "applied": True, "reason": None},
                                     {"record_key": KEY, "approved": "2024-07-10", "granted": False, "doc_no": "XF-B",
                                      "applied": False, "reason": "not-granted"}]


def test_a_grant_corrected_to_a_refusal_grants_nothing():
    """The same decision (its document number) sent again with another content: its newest version counts."""
    granted = repair(KEY, "2024-06-10", arrived="2024-06-10", doc_no="XF-A")
    corrected = repair(KEY, "2024-06-10", arrived="2024-06-20", doc_no="XF-A", granted=False)
    for inputs in itertools.permutations([granted, corrected]):
        state = _state(*inputs)
        (m,) = [m for m in intervals(state) if m.list == "blacklist:environment"]
        assert m.exited_by.kind == "expiry", inputs
        assert state["facts"][KEY]["pub"][2] == "expiry"
        assert check(state, "bidding", "2024-06-20", RULES).outcome == "restricted"
        assert state["evaluation"]["repairs"][KEY]["reason"] == "not-granted"


def test_of_two_grants_the_first_the_rules_accept_applies():
    """A grant approved before the record's earliest repair date (the publicity minimum) ends nothing; a
    later grant of another application does, on its own date, in every order."""
    early = repair(KEY, "2024-02-01", arrived="2024-02-01", doc_no="XF-1")
    later = repair(KEY, "2024-09-02", arrived="2024-09-02", doc_no="XF-2")
    latest = repair(KEY, "2024-10-08", arrived="2024-10-08", doc_no="XF-3")
    for inputs in itertools.permutations([early, later, latest]):
        state = _state(*inputs)
        assert _ended(state) == (("2024-09-02", Cause("repair", "XF-2")), ("2024-09-02", "repair")), inputs
        verdict = state["evaluation"]["repairs"][KEY]
        assert (verdict["approved"], verdict["doc_no"], verdict["applied"]) == ("2024-09-02", "XF-2", True)
    alone = _state(early)
    assert alone["evaluation"]["repairs"][KEY]["reason"] == "before-earliest"
    assert _ended(alone)[1][1] == "expiry"


def test_the_report_names_every_repair_decision_known_at_its_instant():
    """The credit report holds the repair decisions known then (docs/disclosure.md), each with whether it
    is the one that applied: an early grant the rules refused stays in it after a later grant applies,
    and a report between the two names the early one (an audit found one decision per record)."""
    early = repair(KEY, "2024-02-01", arrived="2024-02-01", doc_no="XF-1")
    later = repair(KEY, "2024-09-02", arrived="2024-09-02", doc_no="XF-2")
    latest = repair(KEY, "2024-10-08", arrived="2024-10-08", doc_no="XF-3")
    for inputs in itertools.permutations([early, later, latest]):
        state = _state(*inputs)

        def repairs(at, state=state):
            report = credit_report(state, at, rules_version=RULES.version, generated_at=f"{at}T10:00:00+08:00",
                                   rules=RULES)
            return [(r["doc_no"], r["granted"], r["applied"], r["reason"]) for r in report["repairs"]]

        assert repairs("2024-01-31") == []
        assert repairs("2024-02-02") == [("XF-1", True, False, "before-earliest")], inputs
        assert repairs("2024-12-01") == [("XF-1", True, False, "before-earliest"), ("XF-2", True, True, None),
                                         ("XF-3", True, False, "repaired-earlier")], inputs
