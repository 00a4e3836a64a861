"""The timer agent: turns due instants into tick events on the subject-event log.

Deadlines (a listing period ends, publicity ends, repair becomes possible, an objection is overdue)
fall due at dates the rules compute (``evaluation["next_due"]``); the subject agent records each
subject's next due instant in a Redis sorted set. Every ``interval_s`` seconds this agent writes a
``tick`` into the subject-event log (keyed by subject) for every subject whose instant the wall
clock has passed, then removes the entry if it was not moved meanwhile. The subject agent applies
the tick like any input; writing firings into the log is what makes time replayable.
The sorted set holds storage ids (sinks/keys.py: a natural person's ID number only as its
pseudonym); a person's tick names the clear id read from the subject's state, and is keyed, like
every subject event, by the storage id.

Guards, so that the timer never amplifies a fault:

* one firing worker: a lease in Redis (``timer_lease_s``, renewed by its holder every round)
  decides which worker fires; the others stand by and take over when the lease runs out;
* once per due instant: a tick this worker produced is remembered until its entry is removed, so
  a Redis that refuses writes (read-only, out of memory, no replicas) sees each tick once, not
  once a round; a lease that cannot be renewed fires nothing;
* the clock: a worker follows Redis's clock (``TIME``) when its own is off by more than
  ``clock_tolerance_s`` (creditstream/app.py, domain/clock.py ``follow_reference``); and every round
  compares this worker's clock with Redis's again, and fires what is due by Redis's clock (never a
  tick before the instant it is due, nor after it waiting for a slow clock); one still ahead by more
  than the tolerance fires nothing and says so in the log.

A tick's id is ``tick:<subject>:<date>``; a duplicate (a crash between produce and removal, a
lease handed over mid-round) is recognised by the subject agent and changes nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket

import structlog

from creditstream import metrics
from creditstream.connections import error_text, redis_now_ms
from creditstream.logs import Repeats
from domain import clock, events
from sinks.kafka import KafkaSink
from sinks.keys import Keys, is_pseudonym
from sinks.state_codec import decode_state
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

_TAKE_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class TimerAgent:
    name = "timer"

    def __init__(self, *, topics: Topics, redis, keys: Keys, producer, interval_s: float = 1.0,
                 batch: int = 5000, lease_s: float = 10.0, clock_tolerance_s: float = 60.0, now_ms=None):
        self.topics = topics
        self.redis = redis
        self.keys = keys
        self.producer = producer
        self.interval_s = interval_s
        self.batch = batch
        self.lease_ms = int(lease_s * 1000)
        self.tolerance_ms = int(clock_tolerance_s * 1000)
        self.now_ms = now_ms or clock.now_ms
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.fired = 0
        self.held = False  # the last round stood down (clock ahead, no lease)
        self.reference_ms = 0  # Redis's clock at the last round
        self._produced: dict[str, int] = {}  # member -> due score already produced, not yet removed
        self.started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._failures = Repeats()  # "timer round failed" during an outage: once a minute, not every round
        self._remove = redis.register_script(_REMOVE_IF_UNCHANGED)
        self._lease = redis.register_script(_TAKE_LEASE)

    def stop(self) -> None:
        self._stopping.set()

    async def clock_ahead_ms(self) -> int:
        """This worker's clock minus Redis's, in ms (positive: ahead); Redis's, in :attr:`reference_ms`."""
        self.reference_ms = await redis_now_ms(self.redis)
        return self.now_ms() - self.reference_ms

    async def fire_due(self) -> int:
        """Write a tick for every subject due by now (if this worker may); return how many."""
        skew = await self.clock_ahead_ms()
        if skew > self.tolerance_ms:
            metrics.TICKS_HELD.inc()
            if not self.held:
                log.error("clock ahead of the reference: firing nothing", skew_s=round(skew / 1000, 1),
                          tolerance_s=self.tolerance_ms / 1000)
            self.held = True
            return 0
        if not await self._lease(keys=[self.keys.timer_lease], args=[self.identity, self.lease_ms]):
            self.held = True
            return 0  # another worker fires
        self.held = False
        # due is what is due by Redis's clock, which every worker shares: a clock behind it would fire
        # nothing due until it caught up, while holding the lease, and one ahead within the tolerance
        # fired changes of the next day up to a minute before midnight (an audit, both)
        now_ms = self.reference_ms
        due = await self.redis.zrangebyscore(self.keys.due, "-inf", now_ms, start=0, num=self.batch,
                                             withscores=True)
        metrics.TIMER_BACKLOG.set(await self.redis.zcount(self.keys.due, "-inf", now_ms))
        if not due:
            self._produced.clear()
            return 0
        kafka = KafkaSink(self.producer)
        args = []
        subjects = await self._subject_ids([m.decode() if isinstance(m, bytes) else m for m, _ in due])
        for member, score in due:
            stored = member.decode() if isinstance(member, bytes) else member
            args += [stored, int(score)]
            if self._produced.get(stored) == int(score):
                continue  # produced already; its removal did not go through yet
            sid = subjects.get(stored)
            if sid is None:  # no state under this storage id: nothing to tick (the entry goes)
                log.warning("due entry without a subject state removed", stored_id=stored)
                continue
            event = events.tick(sid, clock.date_of_ms(int(score)))
            kafka.add(self.topics.subject_events, events.encode(event), key=stored.encode(),
                      timestamp_ms=event.event_ms)
        n = await kafka.flush()
        for member, score in due:
            self._produced[member.decode() if isinstance(member, bytes) else member] = int(score)
        self.fired += n
        await self._remove(keys=[self.keys.due], args=args)
        for member, _ in due:
            self._produced.pop(member.decode() if isinstance(member, bytes) else member, None)
        return n

    async def _subject_ids(self, stored: list[str]) -> dict[str, str]:
        """Storage id -> subject id of due entries. The due set holds storage ids (sinks/keys.py):
        an organisation's is its USCC; a person's pseudonym is resolved through its state, which
        keeps the clear id (the tick names its subject in clear, like every subject event)."""
        out = {s: s for s in stored if not is_pseudonym(s)}
        pseudonyms = [s for s in stored if is_pseudonym(s)]
        if pseudonyms:
            for s, raw in zip(pseudonyms, await self.redis.mget([self.keys.subject(p) for p in pseudonyms])):
                if raw is not None:
                    out[s] = decode_state(raw)["id"]  # the head is enough (a split state's too)
        return out

    async def run(self) -> None:
        self.started.set()
        log.info("timer started", interval_s=self.interval_s, identity=self.identity)
        while not self._stopping.is_set():
            try:
                n = await self.fire_due()
                if failures := self._failures.ended():
                    log.info("timer rounds succeed again", failed_rounds=failures)
                if n:
                    log.info("ticks written", count=n)
                    if n >= self.batch:
                        continue  # more are due: no pause
            except Exception as exc:  # noqa: BLE001 - a Redis/broker outage: try again next round
                if (fields := self._failures.due()) is not None:
                    log.warning("timer round failed", error=error_text(exc), **fields)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass
        log.info("timer stopped", fired=self.fired)
