"""A hypothesis strategy of one subject's list-relevant inputs (for test_memberships / test_checks):
severe penalties and listing decisions in several domains, court listings (with and without the
'able but refuses' reason) and deletions, removals, licences, objections and repairs that name
those records, ticks; each with its own arrival date and origin. And ``run``: fold them with the
real rules core (domain/engine.py)."""

from __future__ import annotations

from hypothesis import strategies as st

from domain.calendar import WorkingCalendar
from domain.engine import step
from domain.rulebook import load_rulebook
from domain.validate import decision_key
from tests.builders import objection, record, record_event, repair, tick

RULES = load_rulebook()
CAL = WorkingCalendar()
TODAY = "2026-11-30"
DATES = ["2019-03-04", "2020-06-01", "2021-09-01", "2022-03-07", "2023-02-06", "2024-07-01", "2025-08-04",
         "2026-05-06"]
DOCS = ["A", "B"]


def run(inputs, state=None):
    for event in inputs:
        state = step(state, event, RULES, CAL).state
    return state


def _target(draw, doc, date):
    """A record key an objection or repair names (one the inputs may hold): its unit by the code, or
    now and then by the name only (one decision either way: domain/state.py ``resolve_key``)."""
    kind = draw(st.sampled_from(["penalty", "court_listing", "listing_decision"]))
    name = {"penalty": doc, "court_listing": "执" + doc, "listing_decision": "黑" + doc}[kind]
    return decision_key(_unit_named(draw, record(kind, name, date)))


OTHER_UNIT = "11410100005200010A"
"""A second code given with the builders' unit name, less than theirs (a decision named by the name
only is kept under the least)."""


def _unit_named(draw, rec):
    """``rec`` naming its unit by the code (the builders', one time in six ``OTHER_UNIT``), or one time
    in four by its name only."""
    how = draw(st.integers(0, 11))
    return dict(rec, source_unit_code=None) if how < 3 else dict(rec, source_unit_code=OTHER_UNIT) if how < 5 else rec


@st.composite
def list_inputs(draw, max_inputs=8):
    inputs = []
    for i in range(draw(st.integers(1, max_inputs))):
        kind = draw(st.sampled_from(["penalty", "penalty", "court_listing", "court_deletion", "listing", "removal",
                                     "license", "objection", "objection", "repair", "tick"]))
        doc = draw(st.sampled_from(DOCS))
        date = draw(st.sampled_from(DATES))
        arrived = max(date, draw(st.sampled_from(DATES + [TODAY])))
        at = f"creditstream.penalty/{draw(st.integers(0, 3))}/{i}"
        if kind == "penalty":
            rec = record("penalty", doc, date, severity=draw(st.sampled_from(["severe", "severe", "general"])),
                         domain=draw(st.sampled_from(["environment", "taxation", "market"])))
            inputs.append(record_event(_unit_named(draw, rec), arrived, at=at))
        elif kind == "court_listing":
            reason = draw(st.sampled_from(["refuse_with_ability", "other"]))
            inputs.append(record_event(_unit_named(draw, record(kind, "执" + doc, date, listing_reason=reason)), arrived,
                                       at=at))
        elif kind == "court_deletion":
            reason = draw(st.sampled_from(["performed", "listing_revoked"]))
            inputs.append(record_event(_unit_named(draw, record(kind, "执" + doc, date, deletion_reason=reason)), arrived,
                                       at=at))
        elif kind in ("listing", "removal"):
            rec = record("listing_decision", "黑" + doc, date,
                         list_domain=draw(st.sampled_from(["taxation", "wage_arrears"])),
                         action="list" if kind == "listing" else "remove")
            inputs.append(record_event(_unit_named(draw, rec), arrived, at=at))
        elif kind == "license":
            inputs.append(record_event(record("license", "许" + doc, date), arrived, at=at))
        elif kind == "objection":
            status = draw(st.sampled_from(["filed", "upheld", "rejected"]))
            resolved = None if status == "filed" else max(date, draw(st.sampled_from(DATES)))
            outcome = draw(st.sampled_from(["revoked", "corrected"])) if status == "upheld" else None
            inputs.append(objection(f"OB{draw(st.integers(0, 1))}", _target(draw, doc, date), status, date, resolved,
                                    arrived=max(arrived, resolved or date), outcome=outcome, at=at))
        elif kind == "repair":
            # several repair decisions on one record now and then (a refusal of another application
            # leaves a grant: domain/state.py repair_grants), or one decision sent again
            inputs.append(repair(_target(draw, doc, date), date, arrived=arrived, granted=draw(st.booleans()),
                                 at=at, doc_no=draw(st.sampled_from([None, "XF-1", "XF-2"]))))
        else:
            inputs.append(tick(date))
    return inputs
