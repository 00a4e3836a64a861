"""Subject state in Redis: read a batch of subjects in one round trip, write them back in one.

:class:`SubjectStateSink` buffers state writes in ``add()`` and writes them in ``flush()`` as one
MULTI/EXEC transaction: each subject's JSON, the subject set, list memberships and counters move
together, so a reader never sees half a batch and a crash leaves either all of it or none.
"""

from __future__ import annotations

import time

import orjson

from creditstream import metrics
from sinks.keys import Keys


class StateLost(RuntimeError):
    """Redis has no state for a log the agent has already consumed: it restarted empty, or was
    flushed. Serving on would build half a state; the operator rebuilds with ``creditstream replay``."""


class SubjectStateSink:
    def __init__(self, redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._states: dict[str, bytes] = {}
        self._new_subjects: list[str] = []
        self._memberships: dict[tuple[str, str], bool] = {}  # the last change in a batch wins
        self._counters: dict[str, int] = {}
        self._schedule: dict[str, int] = {}
        self._unschedule: set[str] = set()

    async def load(self, subject_ids, *, resumed: bool = False) -> dict[str, dict | None]:
        """The states of these subjects (None: unknown), in one round trip.

        ``resumed``: the batch does not start at the beginning of the log, so state must exist;
        if the sentinel is missing, Redis lost its data and :class:`StateLost` is raised."""
        ids = list(dict.fromkeys(subject_ids))
        raw = await self.redis.mget([self.keys.sentinel] + [self.keys.subject(s) for s in ids])
        if resumed and raw[0] is None:
            raise StateLost(f"Redis has no state under {self.keys.gen_prefix} but the subject log was already "
                            f"consumed: Redis restarted empty or was flushed. Rebuild it with "
                            f"`creditstream replay --switch` (workers stopped), then restart the workers.")
        return {s: (orjson.loads(v) if v is not None else None) for s, v in zip(ids, raw[1:])}

    def add(self, subject_id: str, state: dict, *, new: bool = False) -> None:
        self._states[subject_id] = orjson.dumps(state)
        if new:
            self._new_subjects.append(subject_id)

    def add_to_list(self, list_name: str, subject_id: str) -> None:
        self._memberships[(list_name, subject_id)] = True

    def remove_from_list(self, list_name: str, subject_id: str) -> None:
        self._memberships[(list_name, subject_id)] = False

    def schedule(self, subject_id: str, due_ms: int) -> None:
        """Record the subject's next due instant (the timer agent fires it)."""
        self._schedule[subject_id] = due_ms
        self._unschedule.discard(subject_id)

    def unschedule(self, subject_id: str) -> None:
        self._unschedule.add(subject_id)
        self._schedule.pop(subject_id, None)

    def count(self, field: str, n: int = 1) -> None:
        self._counters[field] = self._counters.get(field, 0) + n

    async def flush(self) -> int:
        if not (self._states or self._counters or self._memberships or self._schedule
                or self._unschedule):
            return 0
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.sentinel, b"1")
        if self._states:
            pipe.mset({self.keys.subject(s): v for s, v in self._states.items()})
        if self._new_subjects:
            pipe.sadd(self.keys.subjects, *self._new_subjects)
        for (list_name, subject_id), member in self._memberships.items():
            if member:
                pipe.sadd(self.keys.list_members(list_name), subject_id)
            else:
                pipe.srem(self.keys.list_members(list_name), subject_id)
        for field, n in self._counters.items():
            pipe.hincrby(self.keys.stats, field, n)
        if self._schedule:
            pipe.zadd(self.keys.due, self._schedule)
        if self._unschedule:
            pipe.zrem(self.keys.due, *self._unschedule)
        t0 = time.perf_counter()
        await pipe.execute()
        metrics.REDIS_WRITE_SECONDS.observe(time.perf_counter() - t0)
        n = len(self._states)
        self._states.clear()
        self._new_subjects.clear()
        self._memberships.clear()
        self._counters.clear()
        self._schedule.clear()
        self._unschedule.clear()
        return n
