"""A replay stops before its new generation fills Redis (ops/replay.py ``redis_room``).

creditstream requires ``maxmemory-policy noeviction`` (test_redis_eviction.py): at ``maxmemory``
Redis refuses every write. A replay writes a second generation beside the live one, about as large.
Seen before: on a Redis without that room, a replay wrote until Redis was full, then died with a
traceback of ``OutOfMemoryError`` (its message quoting the keys of its MSET); the live workers' writes
were refused from then on, and the creditstream user may not delete keys, so the pipeline waited
until an administrator deleted the failed generation's. Now a replay checks ``INFO memory`` at its
start and before each batch, and stops while 5% of maxmemory (at least 64 MiB) is still free for
the live workers, with one line (exit 1) saying so.

The tests set the embedded redis-server's maxmemory with CONFIG SET and put it back after each test.
"""

from __future__ import annotations

import contextlib
import sys

import pytest

from sinks.keys import Keys
from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.workers import run_to_end, worker_env

pytestmark = pytest.mark.integration

PENALTY = schema_of("penalty")
MIB = 1 << 20


@contextlib.asynccontextmanager
async def maxmemory(redis, value: int):
    before = (await redis.config_get("maxmemory"))["maxmemory"]
    await redis.config_set("maxmemory", value)
    try:
        yield
    finally:
        await redis.config_set("maxmemory", before)


async def _used(redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def _a_log(pipeline, department, settings, subjects: int = 300, per_subject: int = 4) -> None:
    """A subject-event log of ``subjects * per_subject`` penalties, applied by the live pipeline,
    which then stops (the log is complete)."""
    from ops.report import progress
    from streams.synthetic import uscc

    for n in range(subjects * per_subject):
        await department.send(PENALTY, sample_event("penalty", decision_doc_no=f"郑市监罚〔2025〕{n}号",
                                                    uscc=uscc(30000 + n % subjects)))

    async def processed():
        return await progress(settings) >= subjects * per_subject

    await eventually(processed, timeout=90)
    await pipeline.stop()


async def _replay(settings, *argv: str, replay_batch: int = 100) -> tuple[int, str, str]:
    code, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "replay", *argv],
                                      env=worker_env(settings, CREDITSTREAM_REPLAY_BATCH=replay_batch), timeout=120)
    return code, out.decode(), err.decode()


async def test_a_replay_stops_before_its_generation_fills_redis(pipeline, department, settings, redis):
    await _a_log(pipeline, department, settings)
    used = await _used(redis)
    # room to start (more than the reserve free), not for the whole rebuild
    async with maxmemory(redis, used + 64 * MIB + 256 * 1024):
        code, out, err = await _replay(settings, "--jobs", "1", "--generation", "tight")
        assert code == 1, (code, out, err[-3000:])
        assert "Traceback" not in err and "OutOfMemoryError" not in err, err[-3000:]
        [line] = [x for x in err.splitlines() if x.startswith("creditstream: ")]
        assert "replay into generation 'tight' stopped: Redis uses" in line, line
        assert "within the 64 MiB a replay leaves to the live workers" in line, line
        assert f"its keys ({settings.namespace}:tight:*) can be deleted with the admin user" in line, line
        assert "Redis may not hold a second generation" in err  # warned at the start
        progress = await redis.hgetall(Keys(settings.namespace).replay_progress("tight"))
        assert progress[b"status"] == b"failed" and b"RedisNearlyFull" in progress[b"error"], progress
        assert 0 < int(progress.get(b"applied", 0)) < 1200  # it had begun
        # the live workers still have room: a write of theirs is not refused
        assert await _used(redis) < used + 64 * MIB
        # they take some (512 KiB): the replay stopped at the first batch that passed its limit, and
        # once its connection's buffers are freed Redis may be just under it again (seen on the Kafka
        # pass's Redis 7.0: the next replay started, then stopped at its first batch)
        await redis.set(Keys(settings.namespace).position(0) + ":probe", b"x" * (512 * 1024))
        # and it does not start again while that room is all there is
        code, out, err = await _replay(settings, "--jobs", "1", "--generation", "tight-again")
        assert code == 1 and "replay into generation 'tight-again' not started" in err, err[-3000:]
        assert "Nothing was written" in err, err[-3000:]
        assert [k async for k in redis.scan_iter(match=f"{settings.namespace}:tight-again:*")] == []
    # with the room given back, the same replay completes
    code, out, err = await _replay(settings, "--jobs", "2", "--generation", "roomy")
    assert code == 0 and "replayed 1200 subject events" in out, out + err[-3000:]


async def test_a_write_redis_refuses_as_full_is_said_so(pipeline, department, settings, redis, monkeypatch):
    """Redis full all the same (the live workers filled the reserve meanwhile): the write Redis
    refuses ends the replay with the same kind of line, not a traceback. The checks are left out
    here so that the replay reaches that write."""
    from ops import replay as replay_module

    async def unchecked(*_args, **_kwargs) -> tuple[int, int]:
        return 0, 0  # (used_memory, maxmemory) as if Redis had no maxmemory

    await _a_log(pipeline, department, settings, subjects=1000, per_subject=1)
    monkeypatch.setattr(replay_module, "redis_room", unchecked)
    used = await _used(redis)
    # room for the replay's first keys (a few KB), not for the states of its 1,000 subjects (~1.3 MB)
    async with maxmemory(redis, used + 200 * 1024):
        with pytest.raises(replay_module.RedisNearlyFull, match="stopped: Redis refused its writes, full") as raised:
            await replay_module.replay(settings.replace(replay_batch=100), generation="full", jobs=1, progress=False)
    assert "never switched to" in str(raised.value) and "marked failed" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_the_reserve_is_a_share_of_maxmemory_at_least_64_mib():
    from ops.replay import memory_reserve

    assert memory_reserve(100 * MIB) == 64 * MIB
    assert memory_reserve(10 * 1024 * MIB) == 512 * MIB
    line = str(__import__("ops.replay", fromlist=["RedisNearlyFull"]).RedisNearlyFull.of(
        "g", "cs", 900 * MIB, 1000 * MIB, started=False))
    assert line.startswith("replay into generation 'g' not started: Redis uses 900 MiB of its maxmemory 1,000 MiB")
    assert "Nothing was written" in line and "\n" not in line


async def test_a_worker_exports_redis_memory_against_its_maxmemory(pipeline, redis):
    """What the alert CreditstreamRedisNearlyFull reads: each worker's heartbeat (every 2 s) reads
    INFO memory into creditstream_redis_memory_used_bytes and creditstream_redis_maxmemory_bytes."""
    from creditstream import metrics

    def exported() -> tuple[float, float]:
        return (metrics.REGISTRY.get_sample_value("creditstream_redis_memory_used_bytes") or 0,
                metrics.REGISTRY.get_sample_value("creditstream_redis_maxmemory_bytes") or 0)

    async with maxmemory(redis, 900 * MIB):
        async def read():
            used, limit = exported()
            return limit == 900 * MIB and used > 0

        await eventually(read, timeout=20, interval=0.5)
        used, _ = exported()
        assert abs(used - await _used(redis)) < 64 * MIB  # the same server's figure, read moments apart
