"""Print the reliability suite's one-line summary from its results file; exit 1 if anything was
lost, diverged, crashed or leaked personal data. ``python -m tests.reliability.summary``."""

from __future__ import annotations

import json
import os
import sys

from tests.reliability.harness import RESULTS

KEYS = ("crash_runs", "kills", "broker_kills", "events", "lost", "diverged", "fuzz_cases", "pauses", "stale_restores", "poison_cases",
        "redeliveries", "ticks_due", "ticks_written", "clock_ahead_runs", "clock_behind_runs", "crashes", "pii_leaks")


def main() -> int:
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    broker = os.environ.get("CREDITSTREAM_TEST_BROKER") or "tansu"
    print(f"reliability: broker={broker} " + " ".join(f"{k}={data.get(k, 0)}" for k in KEYS))
    if data.get("crashes"):
        for kept in sorted(RESULTS.parent.glob("reliability-*-crashes.log")):
            print(f"reliability: a worker crashed; its log around the crash: {kept}")
    bad = any(data.get(k, 0) for k in ("lost", "diverged", "crashes", "pii_leaks"))
    return 1 if bad or not data else 0


if __name__ == "__main__":
    sys.exit(main())
