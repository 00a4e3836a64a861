"""A production-sized state in minutes, without running the pipeline: subject states written straight
into Redis, dead letters straight onto the dead-letter topic (``python -m bench.seed``).

For measuring the operator commands (``creditstream report``, ``list``, ``dlq list``, ...) against a
million subjects and tens of thousands of dead letters, where ``bench/bench.py --scale`` (the real
pipeline) takes many minutes. What is written is made by the project's own code: ``templates``
subject states folded by the rules core (domain/engine.py ``step``) from the synthetic department
events (streams/synthetic.py), the inputs the benchmark sends; subject ``n`` is template
``n % templates`` under its own USCC (streams/synthetic.py ``uscc``), encoded by sinks/state_codec.py
and stored in the layout of sinks/keys.py, with its lists, its due instant and the index sets; the
dead letters are written by sinks/deadletter.py as a worker writes them.

Not a replacement for the pipeline: the counters (``stats``) and the positions are not written.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time

from creditstream.settings import Settings, load

WRITE_CHUNK = 2000
CST = dt.timezone(dt.timedelta(hours=8))  # subjects per pipeline of writes


def template_states(templates: int = 2000, seed: int = 42, today: dt.date | None = None) -> list[dict]:
    """``templates`` subject states (about 3 inputs each), decided within the two years before
    ``today``, through validation, attachment and the rules core as the worker runs them."""
    from domain import clock, events
    from domain.attach import Attached, plan
    from domain.calendar import WorkingCalendar
    from domain.engine import step
    from domain.rulebook import load_rulebook
    from domain.validate import Rejection, normalise_event
    from streams.samples import SCHEMA_OF_KIND
    from streams.synthetic import EventGenerator

    today = today or dt.date.today()
    rules, cal = load_rulebook(), WorkingCalendar()
    now = clock.now_ms()
    gen = EventGenerator(seed, subjects=templates, duplicate_rate=0.05, correction_rate=0.02, malformed_rate=0.0,
                         legacy_rate=0.0, start=today - dt.timedelta(days=720))
    states: dict[str, dict] = {}
    for i in range(templates * 3):
        kind, rec = next(gen)
        normal = normalise_event(SCHEMA_OF_KIND[kind], rec, event_time_ms=now)
        if isinstance(normal, Rejection) or not isinstance(target := plan(normal), Attached):
            continue
        # arrived the day after its decision: what was pushed then is overdue now, as in production
        arrived = dt.datetime.combine(rec["decision_date"] + dt.timedelta(days=1), dt.time(10), CST)
        event = events.of_record(target.subject_id, target.id_kind, f"seed/0/{i}", normal,
                                 min(now, int(arrived.timestamp() * 1000)))
        states[event.subject] = step(states.get(event.subject), event, rules, cal).state
    return list(states.values())


def subject_id(n: int) -> str:
    from streams.synthetic import uscc

    return uscc(1_000_000_000 + n)  # apart from the synthetic subjects of the tests and the benchmark


async def write_subjects(redis, keys, count: int, templates: list[dict], *, progress: bool = False) -> None:
    """Subjects 0 .. ``count - 1`` (:func:`subject_id`) written into ``keys``' generation."""
    from sinks.keys import INDEX_COMPLETE
    from sinks.state_codec import encode_state

    t0 = time.monotonic()
    names: set[str] = set()
    for first in range(0, count, WRITE_CHUNK):
        values: dict[str, bytes] = {}
        members: dict[str, list[str]] = {}
        due: dict[str, int] = {}
        ids = []
        for n in range(first, min(first + WRITE_CHUNK, count)):
            template = templates[n % len(templates)]
            sid = subject_id(n)
            ids.append(sid)
            values[keys.subject(sid)] = encode_state(dict(template, id=sid))
            for name in (template.get("evaluation") or {}).get("lists") or {}:
                members.setdefault(name, []).append(sid)
            next_due = (template.get("evaluation") or {}).get("next_due")
            if next_due:
                due[sid] = int(dt.datetime.fromisoformat(next_due).timestamp() * 1000)
        pipe = redis.pipeline(transaction=False)
        pipe.mset(values)
        pipe.sadd(keys.subjects, *ids)
        for name, sids in members.items():
            pipe.sadd(keys.list_members(name), *sids)
        if due:
            pipe.zadd(keys.due, due)
        await pipe.execute()
        names |= set(members)
        if progress:
            done = min(first + WRITE_CHUNK, count)
            sys.stderr.write(f"\rseed: {done:,}/{count:,} subjects, {time.monotonic() - t0:.0f} s ")
    await redis.sadd(keys.list_names, INDEX_COMPLETE, *sorted(names))
    if progress:
        sys.stderr.write("\n")


async def write_dead_letters(settings: Settings, count: int, *, value_bytes: int = 1000) -> None:
    """``count`` dead letters on the dead-letter topic, as the ingest agent writes them (values of
    ``value_bytes`` bytes: a department message that did not decode)."""
    from aiokafka.structs import ConsumerRecord

    from sinks.deadletter import DeadLetterSink
    from sinks.kafka import KafkaSink
    from streams import kafka
    from streams.topics import Topics

    topics = Topics(settings)
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    await producer.start()
    try:
        sink = KafkaSink(producer)
        letters = DeadLetterSink(sink, topics.dead_letters, "ingest")
        reasons = ("bad-magic", "negative-amount", "bad-identifier", "future-date", "unknown-enum")
        for n in range(count):
            value = bytes([1]) + bytes(n % 251 for _ in range(value_bytes - 1))
            msg = ConsumerRecord(topics.penalty, n % 4, n // 4, 0, 0, subject_id(n).encode(), value,
                                 None, 18, value_bytes, [])
            letters.add(msg, reasons[n % len(reasons)], "seeded")
            if len(sink) >= 2000:
                await sink.flush()
        await sink.flush()
    finally:
        await producer.stop()


async def seed(settings: Settings, subjects: int, dead_letters: int, templates: int, *, progress: bool) -> None:
    from creditstream.connections import redis_client
    from sinks.keys import resolve_keys

    if subjects:
        t0 = time.monotonic()
        made = template_states(min(templates, subjects))
        if progress:
            sys.stderr.write(f"seed: {len(made)} template states in {time.monotonic() - t0:.1f} s\n")
        redis = redis_client(settings)
        try:
            keys = await resolve_keys(redis, settings.namespace, settings.pseudonym_key)
            await write_subjects(redis, keys, subjects, made, progress=progress)
        finally:
            await redis.aclose()
    if dead_letters:
        await write_dead_letters(settings, dead_letters)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.seed", description=__doc__.split("\n\n")[0])
    p.add_argument("--subjects", type=int, default=100_000)
    p.add_argument("--dead-letters", type=int, default=0)
    p.add_argument("--templates", type=int, default=2000, help="distinct states folded by the rules core")
    args = p.parse_args(argv)
    asyncio.run(seed(load(), args.subjects, args.dead_letters, args.templates, progress=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
