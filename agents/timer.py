"""The timer agent: turns due instants into tick events on the subject-event log.

Deadlines (a listing period ends, publicity ends, repair becomes possible, an objection is overdue)
fall due at event-time instants that the rules compute (``evaluate(...)["next_due"]``); the subject
agent records each subject's next due instant in a Redis sorted set. This agent wakes every
``interval_s`` seconds, and for every subject whose instant wall-clock time has passed it writes a
``tick`` event into the subject-event log, keyed by subject, then removes the entry (only if it was
not moved meanwhile). The subject agent applies the tick like any input.

Writing the firings into the log is what makes time replayable: a replay reads the same ticks at
the same places and so produces the same list changes, with the same ids, in the same order.
A tick's id is ``tick:<subject>:<date>``; a duplicate (after a crash between produce and removal)
is recognised by the subject agent and changes nothing.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from creditstream import metrics
from domain import clock, events
from sinks.kafka import KafkaSink
from sinks.keys import Keys
from streams.topics import Topics

log = structlog.get_logger("creditstream.timer")

_REMOVE_IF_UNCHANGED = """
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return 1
"""


def due_ms(date_str: str) -> int:
    """The instant a date falls due: its start (00:00) in China Standard Time, in ms."""
    d = dt.date.fromisoformat(date_str)
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=CHINA).timestamp() * 1000)


def date_of_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, CHINA).date().isoformat()


def tick_event(subject_id: str, due: str) -> dict:
    return {"type": "tick", "origin": f"tick:{subject_id}:{due}", "subject": subject_id, "due": due,
            "event_ms": due_ms(due)}


class TimerAgent:
    name = "timer"

    def __init__(self, *, topics: Topics, redis, keys: Keys, producer, interval_s: float = 1.0,
                 batch: int = 5000, clock=time.time):
        self.topics = topics
        self.redis = redis
        self.keys = keys
        self.producer = producer
        self.interval_s = interval_s
        self.batch = batch
        self.clock = clock
        self.fired = 0
        self.started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._remove = redis.register_script(_REMOVE_IF_UNCHANGED)

    def stop(self) -> None:
        self._stopping.set()

    async def fire_due(self) -> int:
        """Write a tick for every subject due by now; return how many."""
        now_ms = int(self.clock() * 1000)
        due = await self.redis.zrangebyscore(self.keys.due, "-inf", now_ms, start=0, num=self.batch,
                                             withscores=True)
        backlog = await self.redis.zcount(self.keys.due, "-inf", now_ms)
        metrics.TIMER_BACKLOG.set(backlog)
        if not due:
            return 0
        kafka = KafkaSink(self.producer)
        args = []
        for member, score in due:
            sid = member.decode() if isinstance(member, bytes) else member
            event = events.tick(sid, clock.date_of_ms(int(score)))
            kafka.add(self.topics.subject_events, events.encode(event), key=sid.encode(), timestamp_ms=event.event_ms)
            args += [sid, int(score)]
        await kafka.flush()
        await self._remove(keys=[self.keys.due], args=args)
        self.fired += len(due)
        return len(due)

    async def run(self) -> None:
        self.started.set()
        log.info("timer started", interval_s=self.interval_s)
        while not self._stopping.is_set():
            try:
                n = await self.fire_due()
                if n:
                    log.info("ticks written", count=n)
                    if n >= self.batch:
                        continue  # more are due: no pause
            except Exception as exc:  # noqa: BLE001 - a Redis/broker outage: try again next round
                log.warning("timer round failed", error=str(exc)[:300])
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_s)
            except asyncio.TimeoutError:
                pass
        log.info("timer stopped", fired=self.fired)
