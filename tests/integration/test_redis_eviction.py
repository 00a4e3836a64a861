"""A Redis that evicts keys when full loses creditstream's data without a trace.

creditstream's keys are its data: an evicted subject state is not re-created (the subject's next
input starts a new one, without the records and lists before it, and the check API answers "nothing
known"), and nothing notices, since the positions and the sentinel are still there. Managed Redis
services often ship ``allkeys-lru`` or ``volatile-lru`` with ``maxmemory`` set. So a worker and a
replay refuse to start on a Redis that may evict any key (``allkeys-*``), and warn of one that may
evict keys with a time to live (creditstream/connections.py ``check_keeps_keys``).

The tests set the embedded redis-server's policy with CONFIG SET and put it back after each test.
"""

from __future__ import annotations

import contextlib
import sys

import pytest

from tests.workers import run_to_end, worker_env

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def eviction(redis, maxmemory: str, policy: str):
    before = {**await redis.config_get("maxmemory"), **await redis.config_get("maxmemory-policy")}  # (6.2: one each)
    await redis.config_set("maxmemory", maxmemory)
    await redis.config_set("maxmemory-policy", policy)
    try:
        yield
    finally:
        await redis.config_set("maxmemory", before["maxmemory"])
        await redis.config_set("maxmemory-policy", before["maxmemory-policy"])


@pytest.mark.parametrize(("maxmemory", "policy", "outcome"), [
    ("0", "noeviction", None),
    ("0", "allkeys-lru", None),  # no maxmemory: never evicts
    ("1gb", "noeviction", None),
    ("1gb", "allkeys-lru", "refused"),
    ("1gb", "allkeys-lfu", "refused"),
    ("1gb", "allkeys-random", "refused"),
    ("1gb", "volatile-lru", "warned"),
    ("1gb", "volatile-ttl", "warned"),
])
async def test_the_eviction_policies(redis, maxmemory, policy, outcome):
    from creditstream.connections import RedisEvictsKeys, check_keeps_keys

    async with eviction(redis, maxmemory, policy):
        if outcome == "refused":
            with pytest.raises(RedisEvictsKeys, match=f"maxmemory-policy {policy}.*noeviction"):
                await check_keeps_keys(redis)
        elif outcome == "warned":
            warning = await check_keeps_keys(redis)
            assert warning and policy in warning and "heartbeats" in warning
        else:
            assert await check_keeps_keys(redis) is None


async def test_a_worker_refuses_a_redis_that_evicts_any_key(redis, settings):
    async with eviction(redis, "1gb", "allkeys-lru"):
        rc, _out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "worker"],
                                         env=worker_env(settings), timeout=90)
    text = err.decode()
    assert rc == 2, text[-2000:]
    assert "maxmemory-policy allkeys-lru" in text and "noeviction" in text and "Traceback" not in text, text[-2000:]


async def test_a_replay_refuses_a_redis_that_evicts_any_key(redis, settings):
    from creditstream.connections import RedisEvictsKeys
    from ops.replay import replay

    async with eviction(redis, "1gb", "allkeys-lfu"):
        with pytest.raises(RedisEvictsKeys):
            await replay(settings, generation="evicting", jobs=1, progress=False)
    assert not await redis.keys(f"{settings.namespace}:evicting:*")
