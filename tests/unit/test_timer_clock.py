"""agents/timer.py: what is due is what is due by Redis's clock (``TIME``), which every worker shares.
An audit saw a lease holder 50 s ahead (within ``clock_tolerance_s``) put four changes of the next
day on the list-changes topic at 23:59:10 China time, and one a day behind fire nothing due while it
held the lease."""

from __future__ import annotations

import asyncio

from agents.timer import TimerAgent
from sinks.keys import Keys
from streams.topics import Topics

REDIS_MS = 1_796_659_200_000  # Redis's clock (2026-12-08 00:00 China time, a midnight)


class Redis:
    def __init__(self):
        self.asked: list[float] = []

    async def time(self):
        return REDIS_MS // 1000, (REDIS_MS % 1000) * 1000

    def register_script(self, _script):
        async def run(keys=None, args=None):
            return 1  # the lease taken; nothing to remove
        return run

    async def zrangebyscore(self, _key, _low, high, start=0, num=None, withscores=False):
        self.asked.append(float(high))
        return []

    async def zcount(self, _key, _low, high):
        return 0


def due_by(own_ms: int) -> float:
    redis = Redis()
    timer = TimerAgent(topics=Topics("t."), redis=redis, keys=Keys("t"), producer=None, clock_tolerance_s=60.0,
                       now_ms=lambda: own_ms)
    asyncio.run(timer.fire_due())
    return redis.asked[-1]


def test_a_timer_fires_what_is_due_by_redis_clock_whatever_its_own():
    assert due_by(REDIS_MS + 50_000) == REDIS_MS  # 50 s ahead, within the tolerance: not early
    assert due_by(REDIS_MS - 86_400_000) == REDIS_MS  # a day behind: not late
    assert due_by(REDIS_MS) == REDIS_MS
