"""Joint-punishment feedback (联合惩戒反馈): a list change that starts a measure awaits feedback;
a feedback naming its change id records the measure and ends the wait; changes still waiting after
the configured working days are reported."""

from __future__ import annotations

from domain import events
from domain.calendar import WorkingCalendar
from domain.engine import overdue_feedback
from domain.state import apply_feedback, new_state


def feedback(origin: str, change_id: str = "c1", **kw) -> events.FeedbackEvent:
    event = {"type": "feedback", "change_id": change_id, "feedback_id": "F-1", "unit": "郑州市财政局",
             "measure": "限制参与政府采购", "measure_date": "2024-07-22", "origin": origin, "event_ms": 0,
             "subject": "S"}
    event.update(kw)
    return events.from_dict(event)


def test_feedback_is_recorded_and_ends_the_wait():
    state = dict(new_state("S", "uscc"), awaiting_feedback={"c1": "2024-07-15", "c2": "2024-07-15"})
    new, outcome = apply_feedback(state, feedback("f/0/1"))
    assert outcome == "feedback"
    assert new["awaiting_feedback"] == {"c2": "2024-07-15"}
    assert new["feedback"]["c1"][0]["measure"] == "限制参与政府采购"
    assert state["awaiting_feedback"] == {"c1": "2024-07-15", "c2": "2024-07-15"}  # input untouched


def test_redelivered_and_duplicate_feedback_change_nothing():
    state = new_state("S", "uscc")
    once, _ = apply_feedback(state, feedback("f/0/1"))
    assert apply_feedback(once, feedback("f/0/1")) == (once, "redelivered")
    again, outcome = apply_feedback(once, feedback("f/0/2"))
    assert outcome == "duplicate" and len(again["feedback"]["c1"]) == 1
    other_unit, outcome = apply_feedback(once, feedback("f/0/3", unit="郑州市自然资源局", feedback_id="F-2"))
    assert outcome == "feedback" and len(other_unit["feedback"]["c1"]) == 2


def test_overdue_counts_working_days_across_national_day():
    cal = WorkingCalendar()
    state = {"awaiting_feedback": {"c1": "2024-09-27", "c2": "2024-10-14"}}
    # after Fri 2024-09-27, the working days are 9-29 (make-up Sunday), 9-30, 10-8 .. 10-12 (10-12 a
    # make-up Saturday), 10-14, 10-15, 10-16: the 10th is 10-16, so the change is overdue from 10-17
    assert overdue_feedback(state, "2024-10-16", 10, cal) == []
    assert overdue_feedback(state, "2024-10-17", 10, cal) == [("c1", "2024-09-27")]
    assert overdue_feedback({}, "2024-10-17", 10, cal) == []
