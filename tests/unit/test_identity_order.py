"""The subject's identity (its names, category and identifiers) is the newest record's by the
records' own dates, in any arrival order (RULES.md 3a: an older decision sent late never undoes a
newer one). The current name is what the public pages and the credit report show."""

from __future__ import annotations

import itertools

from domain.disclosure import subject_name
from tests.builders import ORG, record, record_event
from tests.unit.list_inputs import run


def _named(doc, date, name, category, ids, flags=()):
    return dict(record("penalty", doc, date, severity="general", domain="market"), subject_name=name,
                subject_category=category, ids=ids, id_flags=list(flags))


RECORDS = [
    # a 2019 decision under the old name and a legacy number, published late by a stock client
    (_named("旧罚1", "2019-03-04", "郑州旧名有限公司", "individual_business",
            {"uscc": ORG, "reg_no": "310230001716146", "other": ["B-2"]}, ["org-code-mismatch"]), "2025-09-01"),
    (_named("中罚1", "2022-06-01", "郑州中名有限公司", "legal_entity", {"uscc": ORG, "other": ["A-1"]}), "2025-08-20"),
    (_named("新罚1", "2025-08-04", "郑州新名有限公司", "legal_entity", {"uscc": ORG}, ["uscc-check-failed"]),
     "2025-08-05"),
]


def _identity(state):
    return (subject_name(state), state["names"], state["category"], state["ids"], state["flags"])


def test_the_identity_is_the_newest_records_in_every_arrival_order():
    seen = set()
    for order in itertools.permutations(RECORDS):
        state = run([record_event(rec, arrived) for rec, arrived in order])
        identity = _identity(state)
        assert identity[0] == "郑州新名有限公司", order
        assert identity[1] == ["郑州旧名有限公司", "郑州中名有限公司", "郑州新名有限公司"]
        assert identity[2] == "legal_entity"
        assert identity[3] == {"uscc": ORG, "reg_no": "310230001716146", "other": ["A-1", "B-2"]}
        seen.add(repr(identity))
    assert len(seen) == 1


def test_a_state_stored_before_the_dates_were_kept_takes_the_next_record_as_newer():
    # names stored without identity_at (an earlier version) are taken as older than any record
    state = run([record_event(RECORDS[2][0], "2025-08-05")])
    state = dict(state, names=["郑州很早名有限公司"], category="individual_business")
    state.pop("identity_at")
    later = run([record_event(RECORDS[1][0], "2025-08-20")], state=state)
    assert later["names"][-1] == "郑州中名有限公司" and later["category"] == "legal_entity"
