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


class SubjectStateSink:
    def __init__(self, redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._states: dict[str, bytes] = {}
        self._new_subjects: list[str] = []
        self._list_adds: list[tuple[str, str]] = []
        self._list_removes: list[tuple[str, str]] = []
        self._counters: dict[str, int] = {}

    async def load(self, subject_ids) -> dict[str, dict | None]:
        ids = list(dict.fromkeys(subject_ids))
        if not ids:
            return {}
        raw = await self.redis.mget([self.keys.subject(s) for s in ids])
        return {s: (orjson.loads(v) if v is not None else None) for s, v in zip(ids, raw)}

    def add(self, subject_id: str, state: dict, *, new: bool = False) -> None:
        self._states[subject_id] = orjson.dumps(state)
        if new:
            self._new_subjects.append(subject_id)

    def add_to_list(self, list_name: str, subject_id: str) -> None:
        self._list_adds.append((list_name, subject_id))

    def remove_from_list(self, list_name: str, subject_id: str) -> None:
        self._list_removes.append((list_name, subject_id))

    def count(self, field: str, n: int = 1) -> None:
        self._counters[field] = self._counters.get(field, 0) + n

    async def flush(self) -> int:
        if not (self._states or self._counters or self._list_adds or self._list_removes):
            return 0
        pipe = self.redis.pipeline(transaction=True)
        if self._states:
            pipe.mset({self.keys.subject(s): v for s, v in self._states.items()})
        if self._new_subjects:
            pipe.sadd(self.keys.subjects, *self._new_subjects)
        for list_name, subject_id in self._list_removes:
            pipe.srem(self.keys.list_members(list_name), subject_id)
        for list_name, subject_id in self._list_adds:
            pipe.sadd(self.keys.list_members(list_name), subject_id)
        for field, n in self._counters.items():
            pipe.hincrby(self.keys.stats, field, n)
        t0 = time.perf_counter()
        await pipe.execute()
        metrics.REDIS_WRITE_SECONDS.observe(time.perf_counter() - t0)
        n = len(self._states)
        self._states.clear()
        self._new_subjects.clear()
        self._list_adds.clear()
        self._list_removes.clear()
        self._counters.clear()
        return n
