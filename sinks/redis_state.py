"""Subject state in Redis, fenced: one batch is read and written as one optimistic transaction.

:class:`SubjectStateSink` holds one batch of the subject agent (numbered as in docs/operations.md):

1. ``begin()``: WATCH the position keys of the batch's partitions, then read (one MGET) the
   sentinel, the positions, the outboxes and every subject the batch touches;
2. the agent computes, buffering with ``add()``, ``add_to_list()``, ``schedule()``, ``count()``,
   ``set_position()``, ``set_outbox()``;
3. ``commit()``: MULTI/EXEC of the states, memberships, due instants, counters, the position
   reached on every partition and the batch's outbox. If another worker moved a position since
   step 1 (this worker was paused, fenced out, its partitions reassigned), EXEC is refused and
   :class:`Fenced` is raised: nothing of the batch is written, and nothing is produced;
4. the agent produces the outbox, then ``clear_outbox()`` empties it only where the position is
   still the one this batch wrote (a Lua compare-and-set).

Every ``begin()`` starts from empty buffers, so a retried batch derives its effects (counters,
memberships, messages) once, never twice.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import msgspec
import orjson

from creditstream import metrics
from sinks.kafka import OutMessage
from sinks.keys import Keys

_CLEAR_OUTBOX_IF_OWNED = """
for i = 1, #KEYS, 2 do
  if redis.call('GET', KEYS[i]) == ARGV[(i + 1) / 2] then
    redis.call('SET', KEYS[i + 1], '')
  end
end
return 1
"""


class StateLost(RuntimeError):
    """Redis has no state for a log the agent has already consumed: it restarted empty, or was
    flushed. Serving on would build half a state; the operator rebuilds with ``creditstream replay``."""


class Fenced(RuntimeError):
    """Another worker wrote these partitions since this batch read them: the batch is dropped."""


class Loaded(NamedTuple):
    states: dict[str, dict | None]
    positions: dict[int, int | None]     # partition -> next offset to apply (None: never written)
    outboxes: dict[int, list[OutMessage]]  # partition -> messages its last batch may not have produced


_outbox_encoder = msgspec.msgpack.Encoder()
_outbox_decoder = msgspec.msgpack.Decoder(list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]], int | None]])


def encode_outbox(messages: list[OutMessage]) -> bytes:
    return _outbox_encoder.encode([(m.topic, m.value, m.key, list(m.headers), m.timestamp_ms) for m in messages])


def decode_outbox(raw: bytes) -> list[OutMessage]:
    return [OutMessage(t, v, k, list(h), None, ts) for t, v, k, h, ts in _outbox_decoder.decode(raw)]


class SubjectStateSink:
    def __init__(self, redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._clear = redis.register_script(_CLEAR_OUTBOX_IF_OWNED)
        self._pipe = None
        self._reset()

    def _reset(self) -> None:
        self._states: dict[str, bytes] = {}
        self._new_subjects: list[str] = []
        self._memberships: dict[tuple[str, str], bool] = {}  # the last change in a batch wins
        self._counters: dict[str, int] = {}
        self._schedule: dict[str, int] = {}
        self._unschedule: set[str] = set()
        self._positions: dict[int, int] = {}
        self._outboxes: dict[int, bytes | None] = {}

    async def begin(self, subject_ids, partitions, *, resumed: bool = False) -> Loaded:
        """Step 1: watch the partitions' positions and read everything the batch needs.

        ``resumed``: the batch does not start at the beginning of the log, so state must exist;
        if the sentinel is missing, Redis lost its data and :class:`StateLost` is raised."""
        await self.abort()
        self._reset()
        ids = list(dict.fromkeys(subject_ids))
        parts = sorted(set(partitions))
        self._pipe = pipe = self.redis.pipeline(transaction=True)
        pos_keys = [self.keys.position(p) for p in parts]
        if pos_keys:
            await pipe.watch(*pos_keys)
        keys = [self.keys.sentinel, *pos_keys, *(self.keys.outbox(p) for p in parts),
                *(self.keys.subject(s) for s in ids)]
        raw = await (pipe.mget(keys) if pos_keys else self.redis.mget(keys))
        n = len(parts)
        if resumed and raw[0] is None:
            await self.abort()
            raise StateLost(f"Redis has no state under {self.keys.gen_prefix} but the subject log was already "
                            f"consumed: Redis restarted empty or was flushed. Rebuild it with "
                            f"`creditstream replay --switch` (workers stopped), then restart the workers.")
        positions = {p: (int(v) if v is not None else None) for p, v in zip(parts, raw[1:1 + n])}
        outboxes = {p: decode_outbox(v) for p, v in zip(parts, raw[1 + n:1 + 2 * n]) if v}
        states = {s: (orjson.loads(v) if v is not None else None) for s, v in zip(ids, raw[1 + 2 * n:])}
        return Loaded(states, positions, outboxes)

    async def abort(self) -> None:
        if self._pipe is not None:
            pipe, self._pipe = self._pipe, None
            try:
                await pipe.reset()
            except Exception:  # noqa: BLE001 - a broken connection is released anyway
                pass

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

    def set_position(self, partition: int, next_offset: int) -> None:
        self._positions[partition] = next_offset

    def set_outbox(self, partition: int, messages: list[OutMessage]) -> None:
        self._outboxes[partition] = encode_outbox(messages) if messages else None

    async def commit(self) -> int:
        """Step 3: write the batch, fenced by the positions read in ``begin()``."""
        from redis.exceptions import WatchError

        pipe = self._pipe if self._pipe is not None else self.redis.pipeline(transaction=True)
        self._pipe = None
        try:
            pipe.multi()
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
            for p, offset in self._positions.items():
                pipe.set(self.keys.position(p), offset)
            for p, outbox in self._outboxes.items():
                pipe.set(self.keys.outbox(p), outbox or b"")  # empty: nothing to produce (no DEL in the ACL)
            t0 = time.perf_counter()
            try:
                await pipe.execute()
            except WatchError as exc:
                metrics.FENCED.inc()
                raise Fenced(f"partitions {sorted(self._positions)} were written by another worker since this "
                             f"batch read them") from exc
            metrics.REDIS_WRITE_SECONDS.observe(time.perf_counter() - t0)
            return len(self._states)
        finally:
            try:
                await pipe.reset()
            except Exception:  # noqa: BLE001
                pass

    async def clear_outbox(self, positions: dict[int, int]) -> None:
        """Step 4: the outboxes this batch wrote are produced; delete them where still ours."""
        if not positions:
            return
        keys, args = [], []
        for p, offset in positions.items():
            keys += [self.keys.position(p), self.keys.outbox(p)]
            args.append(str(offset))
        await self._clear(keys=keys, args=args)
