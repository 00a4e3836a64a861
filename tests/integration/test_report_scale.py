"""`creditstream report` against a large state: what it holds and what it reads does not grow with the
dead letters and the subjects (states written straight into Redis by bench/seed.py, dead letters
onto the dead-letter topic by the dead-letter sink)."""

from __future__ import annotations

import datetime as dt
import tracemalloc

import pytest

from bench.seed import template_states, write_dead_letters, write_subjects
from ops.report import operator_report, progress

pytestmark = pytest.mark.integration


async def test_the_report_counts_dead_letters_without_holding_them(settings):
    letters, size = 2400, 20_000  # 48 MB of original messages on the dead-letter topic
    await write_dead_letters(settings, letters, value_bytes=size)
    tracemalloc.start()
    try:
        report = await operator_report(settings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(report["dead_letters"].values()) == letters
    assert report["dead_letters"]["bad-magic"] == letters // 5
    # what one fetch brings (1 MiB), not the topic: every letter was held, 48 MB and more
    assert peak < letters * size / 4, f"peak {peak / 1e6:.1f} MB"
    assert await progress(settings) == letters


async def test_the_feedback_scan_counts_every_overdue_change_and_shows_its_progress(settings, redis, capsys):
    """The overdue-feedback part reads every subject's state: on standard error it says how far it is
    (it read 1,000,000 states, 36 s, without a word), and it counts what a full decode of every state
    counts, though it parses only the states that wait for feedback."""
    from domain.calendar import WorkingCalendar
    from domain.engine import overdue_feedback
    from ops.report import overdue_feedback_report
    from sinks.keys import resolve_keys

    subjects, today = 5000, dt.date.today()
    made = template_states(400, today=today)
    await write_subjects(redis, await resolve_keys(redis, settings.namespace), subjects, made)
    want = sum(len(overdue_feedback(made[n % len(made)], today.isoformat(), settings.feedback_workdays,
                                    WorkingCalendar())) for n in range(subjects))
    assert want > 100 and sum(1 for s in made if s.get("awaiting_feedback")) < len(made) / 2
    capsys.readouterr()
    got = await overdue_feedback_report(settings, today.isoformat(), progress=True)
    assert got["count"] == want and len(got["sample"]) == 20
    err = capsys.readouterr().err
    assert f"{subjects}/{subjects}" in err and "report: feedback" in err, err[-300:]
