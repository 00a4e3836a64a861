"""The benchmark starts each measured run on a compacted Redis append-only file (bench/bench.py
``redis_compacted``): the rewrite the earlier phases made due must not fall into the next run."""

from __future__ import annotations

import pytest

from bench.bench import redis_compacted, redis_forks

pytestmark = pytest.mark.integration


async def test_the_append_only_file_is_rewritten_and_the_rewrite_waited_for(settings, redis):
    await redis.set(f"{settings.namespace}:filler", b"x" * 100_000)
    before = await redis_forks(settings)
    await redis_compacted(settings)
    assert await redis_forks(settings) >= before + 1  # the rewrite is a forked child
    info = await redis.info("persistence")
    assert info["aof_enabled"] == 1
    assert not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]
    assert info["aof_last_bgrewrite_status"] == "ok"
