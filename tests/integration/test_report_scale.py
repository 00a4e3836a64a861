"""`creditstream report` against a large state: what it holds and what it reads does not grow with the
dead letters and the subjects (states written straight into Redis by bench/seed.py, dead letters
onto the dead-letter topic by the dead-letter sink)."""

from __future__ import annotations

import tracemalloc

import pytest

from bench.seed import write_dead_letters
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

