"""What the benchmark measures with (bench/bench.py): each measured run starts on a compacted Redis
append-only file (``redis_compacted``), and a topic's size is followed by one consumer for the whole
run (``TopicEnd``), on both brokers."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.bench import TopicEnd, redis_compacted, redis_forks
from streams import kafka

pytestmark = pytest.mark.integration


@pytest.mark.redis_admin  # BGREWRITEAOF
async def test_the_append_only_file_is_rewritten_and_the_rewrite_waited_for(settings, redis):
    await redis.set(f"{settings.namespace}:filler", b"x" * 100_000)
    before = await redis_forks(settings)
    await redis_compacted(settings)
    assert await redis_forks(settings) >= before + 1  # the rewrite is a forked child
    info = await redis.info("persistence")
    assert info["aof_enabled"] == 1
    assert not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]
    assert info["aof_last_bgrewrite_status"] == "ok"


async def _until(count: TopicEnd, n: int, timeout_s: float = 20.0) -> int:
    deadline = asyncio.get_running_loop().time() + timeout_s
    seen = await count()
    while seen < n and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        seen = await count()
    return seen


async def test_a_topic_end_follows_what_is_produced_with_one_consumer(settings):
    topic = f"{settings.topic_prefix}counted"
    await kafka.ensure_topics(settings, [topic])
    count = TopicEnd(settings, topic)
    try:
        assert await _until(count, 1, timeout_s=1.0) == 0  # empty partitions count 0
        producer = kafka.producer(settings)
        await producer.start()
        try:
            for i in range(300):  # keyed by i: spread over every partition, 200 bytes each
                await producer.send(topic, b"v" * 200, key=str(i).encode())
            await producer.flush()
            assert await _until(count, 300) == 300
            consumer = count._consumer  # noqa: SLF001
            for i in range(300, 500):
                await producer.send(topic, b"v" * 200, key=str(i).encode())
            await producer.flush()
            assert await _until(count, 500) == 500
            assert count._consumer is consumer  # noqa: SLF001 - the same client all along
        finally:
            await producer.stop()
    finally:
        await count.close()


async def test_the_latency_runs_consumer_adds_little_to_what_it_measures(settings):
    """The latency run's measuring consumer (``collect_changes``) is answered as soon as a message is
    there: on Apache Kafka it once took the workers' ``fetch_min_bytes`` (16 KiB) and every sample
    carried its wait for 16 KiB or 200 ms. Thirty small messages 20 ms apart: each is measured within
    a few ms of its sending (the broker's own produce-to-consume time), not after 100-200 ms."""
    from bench.bench import collect_changes

    topic = f"{settings.topic_prefix}measured"
    await kafka.ensure_topics(settings, [topic])
    loop = asyncio.get_running_loop()
    since_ms = int(time.time() * 1000)
    latencies: list[float] = []
    reader = asyncio.create_task(collect_changes(settings, topic, since_ms, latencies))
    producer = kafka.producer(settings, linger_ms=0)
    await producer.start()
    try:
        await asyncio.sleep(1.0)  # the reader has its partitions
        for i in range(30):
            await producer.send_and_wait(topic, b"change %d" % i, key=b"k%d" % i, timestamp_ms=int(time.time() * 1000))
            await asyncio.sleep(0.02)
        deadline = loop.time() + 10
        while len(latencies) < 30 and loop.time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await producer.stop()
    assert len(latencies) == 30
    latencies.sort()
    assert latencies[15] < 50, f"median {latencies[15]:.0f} ms: the measuring consumer waits for more than one message"
