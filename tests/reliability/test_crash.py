"""Crash: the worker is killed with SIGKILL at random (seeded) moments while events stream in; after
each restart the Redis state and the list-change topic (deduplicated by change id: ids and order per
subject) equal the oracle, and no department message is lost."""

from __future__ import annotations

import asyncio
import random

import pytest

from streams.samples import SCHEMA_OF_KIND
from streams.synthetic import EventGenerator, uscc
from tests.reliability import harness
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


async def test_kill_minus_nine_at_random_points(settings, department, redis, tmp_path):
    # a state cache of 1 MB: the hot subject outgrows a quarter of it (then read from Redis for
    # every batch) and the others fill it (evictions, admissions): the cache's every path under kills
    s = settings.replace(timer_interval_s=0.5, max_batch=500, state_cache_mb=1)
    rng = random.Random(20261123)
    gen = EventGenerator(seed=7, subjects=max(50, harness.EVENTS // 20), legacy_rate=0.01, hot_share=0.05)
    chunk = max(1, harness.EVENTS // harness.KILLS)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    sent = kills = 0
    diverged: list[str] = []
    lost: list[str] = []
    try:
        for k in range(harness.KILLS):
            n = chunk if k < harness.KILLS - 1 else harness.EVENTS - sent
            for _ in range(n):
                kind, rec = next(gen)
                topic = department.topics.for_kind(kind)
                await department.producer.send(topic, department.codec.encode(SCHEMA_OF_KIND[kind], rec, topic=topic))
            await department.producer.flush()
            sent += n
            await asyncio.sleep(rng.uniform(0.0, 2.0))  # somewhere in start-up, mid-batch, or idle
            assert worker.alive(), worker.log_tail()
            worker.kill()
            kills += 1
            worker.start()
            await harness.quiescent(s, redis)
            diverged = await harness.divergence(s, redis)
            lost = await harness.lost_inputs(s, redis)
            assert not diverged, f"after kill {kills}: {diverged[:10]}"
            assert not lost, f"after kill {kills}: {lost[:10]}"
        # the hot subject (5% of the inputs) is stored split, and was through every kill
        from sinks.keys import Keys
        from sinks.state_codec import SPLIT_RECORDS, decode_state, is_split

        hot = (await harness.redis_states(redis, s)).get(uscc(0))
        assert hot is not None and len(hot["records"]) > SPLIT_RECORDS
        assert is_split(decode_state(await redis.get(Keys(s.namespace, pseudonym_key=s.pseudonym_key).subject(uscc(0)))))
    finally:
        worker.stop()
        log = worker.log_tail(10 ** 9)
        leaks = harness.pii_leaks(log)
        harness.record(crash_runs=kills, kills=kills, events=sent, lost=len(lost), diverged=len(diverged),
                       pii_leaks=len(leaks), crashes=harness.crashes("crash", log))
    assert not leaks, leaks[:5]
