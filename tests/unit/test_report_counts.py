"""The report's counters of an applied input come from the rules core (domain/engine.py), not from
the agent: outcome, department input, list changes, the unit's timeliness, records per domain."""

from domain.calendar import WorkingCalendar
from domain.engine import report_counts, step
from domain.rulebook import load_rulebook
from tests.builders import record, record_event

RULES, CAL = load_rulebook(), WorkingCalendar()


def test_a_new_severe_penalty_counts_its_outcome_unit_domain_and_list_entry():
    rec = record("penalty", "罚〔2026〕1号", "2026-03-02", severity="severe", domain="environment")
    event = record_event(rec, "2026-03-03")
    result = step(None, event, RULES, CAL)
    counts = report_counts(event, result)
    unit = rec["source_unit"]
    assert counts["outcome:new"] == 1 and counts["inputs"] == 1
    assert counts["domain:environment:records"] == 1
    assert counts[f"unit:{unit}:records"] == 1 and counts[f"unit:{unit}:on_time"] == 1
    assert counts[f"unit:{unit}:late_workdays_total"] == 1
    entered = [k for k in counts if k.startswith("change:") and k.endswith(":entered")]
    assert entered, counts  # a severe environmental penalty puts the subject on a blacklist


def test_a_duplicate_counts_only_its_outcome():
    rec = record("penalty", "罚〔2026〕2号", "2026-03-02")
    first = step(None, record_event(rec, "2026-03-03"), RULES, CAL)
    again = record_event(rec, "2026-03-03")
    result = step(first.state, again, RULES, CAL)
    assert result.outcome == "duplicate"
    assert report_counts(again, result) == {"outcome:duplicate": 1, "inputs": 1}
