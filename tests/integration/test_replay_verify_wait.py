"""replay --verify against running workers (real redis-server): a worker merely behind the log is
waited for, not reported as a difference (docs/operations.md: "workers may keep running")."""

from __future__ import annotations

import asyncio

import pytest

from ops.replay import _await_live_positions
from sinks.keys import Keys

pytestmark = pytest.mark.integration


async def test_verify_waits_for_live_workers_behind_the_rebuild(redis, settings):
    live, rebuilt = Keys(settings.namespace, "live-w"), Keys(settings.namespace, "replay-w")
    await redis.mset({rebuilt.position(0): 120, rebuilt.position(1): 80, live.position(0): 100, live.position(1): 80})

    async def worker_catches_up():
        await asyncio.sleep(0.6)
        await redis.set(live.position(0), 120)

    catching_up = asyncio.ensure_future(worker_catches_up())
    assert await _await_live_positions(redis, live, rebuilt, [0, 1], wait_s=10) == {}
    await catching_up


async def test_verify_says_how_far_live_workers_are_from_the_rebuild(redis, settings):
    live, rebuilt = Keys(settings.namespace, "live-x"), Keys(settings.namespace, "replay-x")
    await redis.mset({rebuilt.position(0): 120, rebuilt.position(1): 80, live.position(0): 100, live.position(1): 90})
    assert await _await_live_positions(redis, live, rebuilt, [0, 1], wait_s=0.6) == {0: -20, 1: 10}
