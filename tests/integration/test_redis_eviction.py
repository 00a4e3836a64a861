"""A Redis that evicts keys when full loses creditstream's data without a trace; a Redis Cluster cannot hold it.

creditstream's keys are its data: an evicted subject state is not re-created (the subject's next
input starts a new one, without the records and lists before it, and the check API answers "nothing
known"), and nothing notices, since the positions and the sentinel are still there. Managed Redis
services often ship ``allkeys-lru`` or ``volatile-lru`` with ``maxmemory`` set. So a worker and a
replay refuse to start on a Redis that may evict any key (``allkeys-*``), and warn of one that may
evict keys with a time to live (creditstream/connections.py ``check_redis``).

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
    from creditstream.connections import RedisUnsuitable, check_redis

    async with eviction(redis, maxmemory, policy):
        if outcome == "refused":
            with pytest.raises(RedisUnsuitable, match=f"maxmemory-policy {policy}.*noeviction"):
                await check_redis(redis)
        elif outcome == "warned":
            warning = await check_redis(redis)
            assert warning and policy in warning and "heartbeats" in warning
        else:
            assert await check_redis(redis) is None


async def test_a_worker_refuses_a_redis_that_evicts_any_key(redis, settings):
    async with eviction(redis, "1gb", "allkeys-lru"):
        rc, _out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "worker"],
                                         env=worker_env(settings), timeout=90)
    text = err.decode()
    assert rc == 2, text[-2000:]
    assert "maxmemory-policy allkeys-lru" in text and "noeviction" in text and "Traceback" not in text, text[-2000:]


async def test_a_replay_refuses_a_redis_that_evicts_any_key(redis, settings):
    from creditstream.connections import RedisUnsuitable
    from ops.replay import replay

    async with eviction(redis, "1gb", "allkeys-lfu"):
        with pytest.raises(RedisUnsuitable):
            await replay(settings, generation="evicting", jobs=1, progress=False)
    assert not await redis.keys(f"{settings.namespace}:evicting:*")


async def test_a_redis_cluster_node_is_refused(tmp_path):
    """A node of a Redis Cluster (here one started with ``--cluster-enabled yes``, no slots needed for
    INFO to say so) is refused with a reason: every batch would fail across hash slots."""
    import asyncio
    import socket

    import redis.asyncio as aioredis

    from creditstream.connections import RedisUnsuitable, check_redis
    from ops.stack import find_redis_server

    port = 0
    while not 1024 < port <= 55535:  # a cluster node also listens on its port + 10,000
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
        "--cluster-config-file", str(tmp_path / "nodes.conf"), "--save", "", "--appendonly", "no",
        "--dir", str(tmp_path), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, retry_on_error=[])
    try:
        for _ in range(100):
            assert proc.returncode is None, "the cluster node did not start"
            try:
                await client.ping()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                await asyncio.sleep(0.05)
        with pytest.raises(RedisUnsuitable, match="Redis Cluster is not supported"):
            await check_redis(client)
    finally:
        await client.aclose()
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
