"""Outages: Redis stopped mid-stream and started again; Redis restarted empty; the broker frozen
(SIGSTOP) and resumed. Nothing is lost, state equals the oracle, and an empty Redis is never
served silently."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.synthetic import EventGenerator
from tests.conftest import eventually
from tests.reliability import harness
from tests.workers import WorkerProcess, wait_for_log

pytestmark = [pytest.mark.integration, pytest.mark.reliability]




async def settled(s, redis, worker, what):
    await harness.quiescent(s, redis)
    diverged = await harness.divergence(s, redis)
    lost = await harness.lost_inputs(s, redis)
    log = worker.log_tail(10 ** 9)
    harness.record(events=0, lost=len(lost), diverged=len(diverged), pii_leaks=len(harness.pii_leaks(log)))
    assert not diverged, f"{what}: {diverged[:10]}"
    assert not lost, f"{what}: {lost[:10]}"
    assert not harness.pii_leaks(log)


async def test_redis_stopped_mid_stream_then_back(settings, department, redis, stack, tmp_path):
    s = settings.replace(max_batch=200)
    gen = EventGenerator(seed=11, subjects=200)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    try:
        # started first: under load (make test-redis's four lanes) a worker still starting when Redis
        # stopped exited with "cannot reach Redis", the start-up's check, not the outage under test
        await wait_for_log(worker, "pipeline started", timeout=90)
        await harness.produce(department, gen, harness.EVENTS // 4)
        await asyncio.sleep(1.0)
        stack.stop_redis()
        await harness.produce(department, gen, harness.EVENTS // 4)  # keeps arriving while Redis is down
        await asyncio.sleep(harness.OUTAGE_S)
        assert worker.alive(), "the worker must wait for Redis, not die: " + worker.log_tail()
        stack.start_redis()
        await settled(s, redis, worker, "after the Redis outage")
        harness.record(events=2 * (harness.EVENTS // 4))
    finally:
        if not stack.status()["redis"]["alive"]:
            stack.start_redis()
        worker.stop()


async def test_redis_down_longer_than_the_poll_interval_then_back(settings, department, redis, stack, tmp_path):
    """Redis down for longer than ``max_poll_interval_ms`` (production's: 5 minutes; 3 s here) while
    each of two workers holds a batch it retries: their consumers leave the groups. Once Redis is
    back, they rejoin, the batches they held are applied (once: fenced, idempotent) and nothing is
    lost or diverges."""
    s = settings.replace(max_batch=200, max_poll_interval_ms=3_000)
    gen = EventGenerator(seed=16, subjects=200)
    a = WorkerProcess(s, tmp_path / "a.log").start()
    b = WorkerProcess(s, tmp_path / "b.log").start()
    try:
        for w in (a, b):  # started (a slow CI host took 14 s): Redis stops under running agents
            await wait_for_log(w, "pipeline started", timeout=90)
        await harness.produce(department, gen, harness.EVENTS // 4)
        await harness.quiescent(s, redis)
        stack.stop_redis()
        await harness.produce(department, gen, harness.EVENTS // 4)  # fetched, and held while Redis is down
        await asyncio.sleep(3 * 3.0 + harness.OUTAGE_S)  # well past the poll interval
        assert a.alive() and b.alive(), "the workers must wait for Redis, not die: " + a.log_tail() + b.log_tail()
        stack.start_redis()
        await harness.produce(department, gen, harness.EVENTS // 4)  # and after: the groups work again
        await settled(s, redis, a, "after Redis was down longer than the poll interval")
        harness.record(events=3 * (harness.EVENTS // 4))
        said = a.log_tail(10 ** 9) + b.log_tail(10 ** 9)
        assert "held longer than max_poll_interval_ms" in said, said[-3000:]
    finally:
        if not stack.status()["redis"]["alive"]:
            stack.start_redis()
        a.stop()
        b.stop()


async def test_redis_restarted_empty_is_reported_loudly_and_rebuilt_by_replay(settings, department, redis, stack,
                                                                               tmp_path):
    from ops.replay import replay

    gen = EventGenerator(seed=12, subjects=100)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await harness.produce(department, gen, 300)
        await harness.quiescent(settings, redis)
        stack.stop_redis()
        stack.flush_redis_files()
        stack.start_redis()
        await harness.produce(department, gen, 50)

        async def worker_exited():
            return not worker.alive()

        await eventually(worker_exited, timeout=60)
        assert worker.proc.returncode != 0
        assert "Redis has no state" in worker.log_tail(10 ** 9)
        # never half a state served: the subject log is intact, a replay rebuilds everything
        result = await replay(settings, switch=True, progress=False)
        assert result.events > 0
        worker = WorkerProcess(settings, tmp_path / "worker2.log").start()
        await eventually(lambda: asyncio.sleep(0, worker.alive()), timeout=5)
        from tests.reliability.oracle import fold

        # the new worker applies what came after the rebuild (it waited a fixed 3 s: a slow start missed
        # it), and the oracle is folded once it has: folded before, it lacked the subject events (the
        # 50 inputs' and their links) this worker had not produced yet, and no state could equal it
        await harness.quiescent(settings, redis, timeout=60)
        states, _, _ = await fold(settings)
        live = await harness.redis_states(redis, settings)
        assert live == states
        harness.record(events=350)
    finally:
        if not stack.status()["redis"]["alive"]:
            stack.start_redis()
        worker.stop()


async def emptied_then_stopped(settings, redis, worker) -> None:
    """Empty this test's namespace in one DEL (the session's other tests share the redis-server), as
    FLUSHALL or a restart empties it; the worker stops within 30 s, saying Redis has no state."""
    keys = [key async for key in redis.scan_iter(match=f"{settings.namespace}:*", count=1000)]
    await redis.delete(*keys)

    async def worker_exited():
        return not worker.alive()

    await eventually(worker_exited, timeout=30)
    assert worker.proc.returncode != 0
    assert "Redis has no state" in worker.log_tail(10 ** 9)


async def test_redis_emptied_under_an_idle_worker_stops_it_loudly(settings, department, redis, tmp_path):
    """Redis emptied while no input comes: the periodic position check sees the positions
    this worker wrote gone and, with the sentinel gone too, stops the worker as a batch would ("Redis
    has no state"); it neither waits for the next input to notice nor re-feeds the whole log into
    the empty Redis by itself."""
    gen = EventGenerator(seed=13, subjects=50)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await harness.produce(department, gen, 100)
        await harness.quiescent(settings, redis)
        # in one DEL: deleted one key at a time, a position check between two deletions saw the
        # positions gone but not yet the sentinel, and rightly re-fed the log into Redis as one that
        # lost more than its tail (a CI run)
        await emptied_then_stopped(settings, redis, worker)
        harness.record(events=100)
    finally:
        worker.stop()


async def test_redis_that_lost_its_positions_then_everything_still_stops_the_worker(settings, department, redis,
                                                                                     tmp_path):
    """Redis loses the positions but not the sentinel (more than its tail): the idle worker re-feeds
    the log into it, as designed. If Redis then loses everything, the position check after that
    re-feed still sees it and stops the worker loudly: the re-feed does not disarm the check (a CI
    run once saw a worker stay idle after a key-by-key emptying; that emptying, not the worker,
    made the half-state it could not tell from a real one)."""
    from sinks.keys import Keys

    keys = Keys(settings.namespace)
    gen = EventGenerator(seed=17, subjects=50)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await harness.produce(department, gen, 100)
        await harness.quiescent(settings, redis)
        positions = [key async for key in redis.scan_iter(match=keys.positions_pattern, count=1000)]
        assert positions
        await redis.delete(*positions)
        await wait_for_log(worker, "re-feeding from the recorded positions", timeout=30)

        async def rewritten():  # the re-feed applied the log again, and wrote positions: all of them, not one
            return await redis.exists(*positions) == len(positions)

        await eventually(rewritten, timeout=30)
        assert await redis.exists(keys.sentinel)
        await emptied_then_stopped(settings, redis, worker)
        harness.record(events=100)
    finally:
        worker.stop()


async def test_broker_frozen_then_resumed(settings, department, redis, stack, tmp_path):
    s = settings.replace(max_batch=200)
    gen = EventGenerator(seed=13, subjects=200)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    try:
        # started first, as in test_redis_stopped_mid_stream_then_back: the freeze meets running agents
        await wait_for_log(worker, "pipeline started", timeout=90)
        await harness.produce(department, gen, harness.EVENTS // 4)
        await asyncio.sleep(1.0)
        stack.pause_broker()
        t0 = time.monotonic()
        await asyncio.sleep(harness.OUTAGE_S)
        stack.resume_broker()
        assert time.monotonic() - t0 >= harness.OUTAGE_S
        await harness.produce(department, gen, harness.EVENTS // 4)
        assert worker.alive(), worker.log_tail()
        await settled(s, redis, worker, "after the broker pause")
        harness.record(events=2 * (harness.EVENTS // 4))
    finally:
        if stack.status()["broker"].get("paused"):
            stack.resume_broker()
        worker.stop()


async def test_redis_full_mid_stream_then_given_memory(settings, department, redis, tmp_path):
    """Redis reaches ``maxmemory`` under ``noeviction`` (deploy/redis.conf): every write is refused
    with OOM. The worker keeps its batch and retries, says why in its log, and once memory is added
    goes on: nothing lost, the state equals the oracle."""
    s = settings.replace(max_batch=200)
    gen = EventGenerator(seed=13, subjects=300)
    before = await redis.config_get("maxmemory*")
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    try:
        await redis.config_set("maxmemory-policy", "noeviction")
        await harness.produce(department, gen, harness.EVENTS // 4)
        await harness.quiescent(s, redis)
        used = (await redis.info("memory"))["used_memory"]
        await redis.config_set("maxmemory", used + 64 * 1024)  # full a few batches on
        await harness.produce(department, gen, harness.EVENTS // 2)

        async def refused():
            return "Redis is full: maxmemory reached" in worker.log_tail(10 ** 6)

        await eventually(refused, timeout=60)
        await asyncio.sleep(harness.OUTAGE_S)
        assert worker.alive(), "the worker must wait for memory, not die: " + worker.log_tail()
        await redis.config_set("maxmemory", before["maxmemory"])
        await settled(s, redis, worker, "after Redis was full")
        harness.record(events=harness.EVENTS // 4 + harness.EVENTS // 2)
    finally:
        await redis.config_set("maxmemory", before["maxmemory"])
        await redis.config_set("maxmemory-policy", before["maxmemory-policy"])
        worker.stop()
    log = worker.log_tail(10 ** 9)
    # the failing command's arguments (state bytes, key names) are never quoted
    assert "of pipeline caused error" not in log and "OOM command" not in log, log[-3000:]
