"""The benchmark's inputs: realistic department events (streams/synthetic.py), Avro-encoded as a
department system sends them. Shared by the benchmark runs (bench/bench.py) and the in-process
measures (bench/core.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from creditstream.settings import Settings


def generator(subjects: int, seed: int = 42, hot_share: float = 0.0) -> Iterator[tuple[str, bytes]]:
    """(kind, Avro bytes) of realistic events without end, decided within the last two years: 5%
    duplicates, 2% corrections, 1% malformed, a few legacy-coded, over ``subjects`` subjects;
    ``hot_share`` of the new decisions about one subject."""
    from creditstream.connections import make_codec
    from streams.samples import SCHEMA_OF_KIND
    from streams.synthetic import EventGenerator

    codec = make_codec(Settings())
    gen = EventGenerator(seed, subjects=subjects, duplicate_rate=0.05, correction_rate=0.02, malformed_rate=0.01,
                         legacy_rate=0.002, start=dt.date.today() - dt.timedelta(days=720), hot_share=hot_share)
    for kind, rec in gen:
        yield kind, codec.encode(SCHEMA_OF_KIND[kind], rec)


def generate(size: int, subjects: int, seed: int = 42, hot_share: float = 0.0) -> list[tuple[str, bytes]]:
    """``size`` of :func:`generator`'s events."""
    events = generator(subjects, seed, hot_share)
    return [next(events) for _ in range(size)]
