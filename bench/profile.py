"""Where a worker spends its time under load: py-spy samples of the worker process during a
pipeline run, summed by what the sampled code is (``make bench-profile``).

Each sample is the worker's Python stack at that instant (idle time in the event loop's select is
not sampled). It is charged to the first frame, from the leaf up, that belongs to one of the areas
below, so "rules core" is the pure domain code and everything else is plumbing around it.

``python -m bench.profile FILE`` prints the summary of a raw py-spy file (``--format raw``).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# (area, pattern on the path of a frame's file), first match from the leaf wins. py-spy names files
# relative to their sys.path entry: "domain/history.py", "aiokafka/conn.py", "asyncio/events.py".
AREAS: list[tuple[str, str]] = [
    ("rules core: validate and normalise",
     r"domain/(validate|fields|vocabulary|identity|department|credit_office|normalise|identifiers)\.py"),
    ("rules core: attach", r"domain/attach\.py"),
    ("rules core: step and history", r"domain/(engine|history|state|rulebook|calendar|clock)\.py"),
    ("subject events: encode / decode", r"domain/events\.py|msgspec/"),
    ("Avro: decode / encode", r"streams/codec\.py|fastavro/"),
    ("state: load / dump / Redis transaction", r"sinks/redis_state\.py"),
    ("Redis client", r"redis/"),
    ("Kafka client", r"aiokafka/"),
    ("sinks (Kafka, dead letters, index)", r"sinks/"),
    ("metrics", r"prometheus_client/|creditstream/metrics\.py"),
    ("logging", r"structlog/|logging/"),
    ("agents", r"agents/"),
    ("runner", r"streams/runner\.py"),
    ("Faust / mode", r"(faust|mode)/"),
    ("event loop", r"asyncio/|selectors\.py|uvloop/"),
]
_COMPILED = [(area, re.compile(r"\((?:[^()]*/)?(?:" + pattern + ")")) for area, pattern in AREAS]
FRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")


def area_of(frames: list[str]) -> str:
    for frame in reversed(frames):  # leaf last in py-spy's raw format
        for area, pattern in _COMPILED:
            if pattern.search(frame):
                return area
    return "other"


def summarize(raw: str) -> dict:
    """``{"samples": n, "areas": {area: share}, "functions": [(function, share), ...]}`` (self time)."""
    areas: Counter = Counter()
    leaves: Counter = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        areas[area_of(frames)] += n
        m = FRAME.match(frames[-1])
        leaves[f"{m.group(1)} ({Path(m.group(2)).name})" if m else frames[-1]] += n
    if not total:
        return {"samples": 0, "areas": {}, "functions": []}
    return {"samples": total,
            "areas": {a: round(n / total, 4) for a, n in areas.most_common()},
            "functions": [(f, round(n / total, 4)) for f, n in leaves.most_common(25)]}


def render(summary: dict) -> str:
    lines = [f"worker profile: {summary['samples']:,} samples (py-spy, self time by area)"]
    lines += [f"  {share:6.1%}  {area}" for area, share in summary["areas"].items()]
    lines.append("  top functions:")
    lines += [f"  {share:6.1%}  {fn}" for fn, share in summary["functions"][:15]]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.profile PY_SPY_RAW_FILE")
    print(render(summarize(Path(sys.argv[1]).read_text())))
