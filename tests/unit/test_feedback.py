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


def test_the_feedback_deadline_runs_from_the_push_not_from_a_late_decision_date():
    """RULES.md 4 (trigger - push - feedback) and 3a (arrival time is for timeliness): a listing
    decided on 2024-01-10 that reaches the platform on 2024-06-03 is pushed then, and the implementing
    units have their working days from the push (it was overdue on arrival: counted from the
    decision date)."""
    from domain.engine import step
    from domain.rulebook import load_rulebook
    from tests.builders import record, record_event

    rules, cal = load_rulebook(), WorkingCalendar()
    late = record("listing_decision", "税黑〔2024〕1号", "2024-01-10", list_domain="taxation", action="list")
    s = step(None, record_event(late, "2024-06-03"), rules, cal)
    (entered,) = [c for c in s.changes if c["transition"] == "entered"]
    assert entered["effective_date"] == "2024-01-10"  # the list history keeps the decision's date
    assert s.state["awaiting_feedback"] == {entered["change_id"]: "2024-06-03"}
    # 10 working days after Mon 2024-06-03 (06-10 is the Dragon Boat Festival): 06-18
    assert overdue_feedback(s.state, "2024-06-03", 10, cal) == []
    assert overdue_feedback(s.state, "2024-06-18", 10, cal) == []
    assert overdue_feedback(s.state, "2024-06-19", 10, cal) == [(entered["change_id"], "2024-06-03")]
    # a decision that arrives on its date: the push is that date
    on_time = record("listing_decision", "税黑〔2024〕2号", "2024-06-03", list_domain="taxation", action="list")
    s = step(None, record_event(on_time, "2024-06-03"), rules, cal)
    assert list(s.state["awaiting_feedback"].values()) == ["2024-06-03"]
