"""The report's counters of an applied input come from the rules core (domain/engine.py), not from
the agent: outcome, department input, list changes, the unit's timeliness, records per domain."""

from domain.calendar import WorkingCalendar
from domain.engine import report_counts, step
from domain.rulebook import load_rulebook
from tests.builders import record, record_event

RULES, CAL = load_rulebook(), WorkingCalendar()


def counts_in_every_order(inputs, prefix: str) -> set[tuple]:
    """The counters starting with ``prefix`` that ``inputs`` add up to, for every arrival order."""
    import itertools

    totals = set()
    for order in itertools.permutations(inputs):
        state, counts = None, {}
        for event in order:
            result = step(state, event, RULES, CAL)
            state = result.state
            for field, n in report_counts(event, result).items():
                if field.startswith(prefix):
                    counts[field] = counts.get(field, 0) + n
        totals.add(tuple(sorted((k, v) for k, v in counts.items() if v)))
    return totals


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


def test_a_units_timeliness_is_the_same_in_every_arrival_order():
    # RULES.md 2 and 3a: a decision counts once, from its decision date to its earliest sighting,
    # whichever version arrives first (a correction sent weeks later, on another partition, first)
    orig = record("penalty", "市监罚〔2025〕8号", "2025-09-01")
    corrected = dict(orig, fields={"fine_amount": "2.000000"})
    other_unit = dict(orig, fields={"fine_amount": "3.000000"}, source_unit="开封市市场监督管理局")
    inputs = [record_event(orig, "2025-09-02", at="t/0/1"), record_event(corrected, "2025-10-20", at="t/1/1"),
              record_event(other_unit, "2025-11-03", at="t/2/1"), record_event(orig, "2025-11-10", at="t/0/9")]
    totals = counts_in_every_order(inputs, "unit:")
    assert len(totals) == 1, totals
    (only,) = totals
    # the winning version (the newest stamp) is the other unit's; its earliest sighting is the first
    assert dict(only) == {"unit:开封市市场监督管理局:records": 1, "unit:开封市市场监督管理局:on_time": 1,
                          "unit:开封市市场监督管理局:late_workdays_total": 1}


def test_records_per_domain_are_the_same_in_every_arrival_order():
    """Seen: a record whose revocation came first was counted under no domain, and a correction
    that moved a record from taxation to market left it counted under taxation when the original
    came first. A record counts once, under its winning version's domain, in every order."""
    orig = record("penalty", "税罚〔2025〕3号", "2025-09-01", severity="general", domain="taxation")
    moved = dict(orig, domain="market", fields={"fine_amount": "2.000000"})
    revoked = record("penalty", "环罚〔2025〕4号", "2025-09-01", severity="general", domain="environment")
    revocation = dict(revoked, revoked=True)
    inputs = [record_event(orig, "2025-09-02", at="t/0/1"), record_event(moved, "2025-10-20", at="t/1/1"),
              record_event(revoked, "2025-09-03", at="t/0/2"), record_event(revocation, "2025-09-20", at="t/2/1"),
              record_event(orig, "2025-11-10", at="t/0/9")]  # a re-export of the original, stamped later
    totals = counts_in_every_order(inputs, "domain:")
    assert totals == {(("domain:environment:records", 1), ("domain:market:records", 1))}, totals
