"""The counters the alerts take ``increase()`` of are exported at 0 from an agent's start
(creditstream/metrics.py ``export_zero``): a series that first appears at 1 has no increase, so the
first processing error (a page), rewind or batch held past the poll interval raised no alert. The
dead-letter reasons exported are every reason the code gives."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest

from creditstream import metrics

ROOT = Path(__file__).resolve().parents[2]


def given_reasons() -> set[str]:
    found = set()
    for path in [*ROOT.glob("agents/*.py"), *ROOT.glob("sinks/*.py"), *ROOT.glob("streams/*.py")]:
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r'dead\.add\(\w+, "([a-z-]+)"', text))
        found |= set(re.findall(r'DecodeError\("([a-z-]+)"', text))
    return found


def test_every_reason_the_code_gives_is_exported_at_zero():
    reasons = given_reasons()
    assert {"processing-error", "bad-magic", "unexpected-schema"} <= reasons  # the search finds them
    assert reasons <= set(metrics.dead_letter_reasons()), reasons - set(metrics.dead_letter_reasons())


def test_an_agents_alerted_counters_start_at_zero():
    metrics.export_zero("ingest")
    text = generate_latest(metrics.REGISTRY).decode()
    for line in ('creditstream_dead_letters_total{reason="processing-error"} 0.0',
                 'creditstream_rewinds_total{agent="ingest"} 0.0',
                 'creditstream_batches_held_past_poll_interval_total{agent="ingest"} 0.0'):
        assert line in text, line
