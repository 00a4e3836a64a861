"""Partitions added to creditstream's topics while its workers run (Apache Kafka only: Tansu offers
no CreatePartitions).

The partition count is what an operator raises to run more workers than partitions, and Kafka lets
it be raised at any time. A keyed message's partition is its key's hash modulo the count, so every
producer that learns the new count places a subject elsewhere than one that has not: a worker
started after the change (or one restarted, or any after its metadata's next refresh) would put a
subject's next events on another partition than the one its earlier events wait on, owned by
another worker, and two workers would apply one subject at once, each fenced only by its own
partition's position.

After the change, one more worker starts (the reason to add partitions) and the inputs go on: the
state equals the oracle, nothing is lost, and every subject's events stay on one partition."""

from __future__ import annotations

import asyncio
import collections

import pytest

from streams.synthetic import EventGenerator
from tests.reliability import harness
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.kafka_only]


async def grow(settings, topics: list[str], count: int) -> None:
    """``kafka-topics.sh --alter --partitions count`` for each of ``topics``."""
    from aiokafka.admin import NewPartitions

    from streams import kafka

    client = kafka.admin(settings)
    await client.start()
    try:
        await client.create_partitions({t: NewPartitions(total_count=count) for t in topics})
    finally:
        await client.close()


async def partitions_per_key(settings, topic: str) -> dict[bytes, set[int]]:
    from streams import kafka

    seen: dict[bytes, set[int]] = collections.defaultdict(set)
    async for batch in kafka.read_to_end(settings, topic):
        for msg in batch:
            seen[msg.key].add(msg.partition)
    return seen


async def test_partitions_added_while_workers_run(settings, department, redis, tmp_path):
    from streams import kafka
    from streams.topics import Topics

    s = settings.replace(max_batch=200)
    topics = Topics(s)
    await kafka.ensure_topics(s)  # `creditstream topics`, as before a deployment's first start
    # few subjects, many inputs each: most subjects have inputs before and after the change
    gen = EventGenerator(seed=31, subjects=max(40, harness.EVENTS // 40), legacy_rate=0.0, hot_share=0.05)
    a = WorkerProcess(s, tmp_path / "a.log").start()
    b = WorkerProcess(s, tmp_path / "b.log").start()
    workers = [a, b]
    chunk = harness.EVENTS // 3
    try:
        from sinks.keys import Keys
        from tests.conftest import eventually

        async def placed():  # the workers started and recorded the count they place subjects over
            return await redis.hget(Keys(s.namespace).placement, topics.subject_events)

        await eventually(placed, timeout=90)
        await harness.produce(department, gen, chunk)
        await asyncio.sleep(0.5)  # mid-stream
        await grow(s, [topics.subject_events, topics.list_changes], s.partitions * 2)
        c = WorkerProcess(s, tmp_path / "c.log").start()
        workers.append(c)
        await harness.produce(department, gen, chunk)
        await asyncio.sleep(1.0)
        await harness.produce(department, gen, chunk)
        await harness.quiescent(s, redis, timeout=180)
        split = {k: sorted(p) for k, p in (await partitions_per_key(s, topics.subject_events)).items() if len(p) > 1}
        diverged = await harness.divergence(s, redis)
        lost = await harness.lost_inputs(s, redis)
        logs = "".join(w.log_tail(10 ** 9) for w in workers)
        harness.record(events=3 * chunk, lost=len(lost), diverged=len(diverged),
                       pii_leaks=len(harness.pii_leaks(logs)), crashes=harness.crashes("partitions", logs))
        assert all(w.alive() for w in workers), "a worker is down: " + "".join(w.log_tail() for w in workers)
        assert not split, f"{len(split)} subjects' events on more than one partition, e.g. {list(split.items())[:3]}"
        assert not diverged, f"{diverged[:10]} ({len(diverged)} in all; lost {len(lost)}): " + \
            await harness.difference(s, redis, diverged)
        assert not lost, lost[:10]
        assert "partitions beyond" in c.log_tail(10 ** 9), c.log_tail()
    finally:
        for w in workers:
            w.stop()
