"""Subject state in Redis, fenced: one batch is read and written as one optimistic transaction.

:class:`SubjectStateSink` holds one batch of the subject agent (numbered as in docs/operations.md):

1. ``begin()``: WATCH the position keys of the batch's partitions, then read (one MGET) the
   sentinel, the positions, the outboxes and every subject the batch touches (each state decoded
   only when the agent takes it: :class:`StatesRead`);
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

The sink takes subject ids; Redis gets storage ids (``Keys.storage_id``: a natural person's ID
number only as its pseudonym) in key names and as the members of ``subjects``, ``list:*`` and
``due``.

The state cache: a worker owns its partitions, so the states it wrote last are the states in Redis
for as long as nobody else writes those partitions. The sink keeps the states of its hot subjects in
memory, those stored split (more than ``SPLIT_RECORDS`` records: sinks/state_codec.py), as Python
objects with their per-record maps persistent (domain/record_maps.py), least recently used first
out, ``cache_mb`` of estimated memory; it reads from Redis only the subjects it does not hold.
Writes still go to Redis in every commit (write-through). A state stored whole is not held:

* held as its stored bytes (up to the fortieth session), it saved only its share of the batch's one
  MGET, which reads the sentinel, the positions and the outboxes anyway; it was decompressed and
  parsed on every use all the same. Without it, the worker's CPU per event was the same within the
  machine's noise and its memory a third lower (``make bench-scale``, Tansu, three rounds each,
  medians: 211 and 242 us per event at 10,000 and 100,000 subjects holding them, 225 and 248
  without, the rounds spread over 205-285 us; peak RSS 327-330 MiB against 243-246 at 100,000; at
  1,000,000 subjects, one run each, 260 us and 501 MiB against 251 us and 346 MiB);
* held as Python objects, every new state was walked once by the worker's collector rounds
  (creditstream/heap.py), which cost more than decoding it again (measured: 3,435-3,650 ev/s held as
  objects, 3,959-4,096 with no cache, 100,000 events over 50,000 subjects).

A state larger than a quarter of the budget comes in on the subject's second batch in a row (a hot
subject: the others go first); read from Redis it is decoded whole, every record part, on every
batch (measured: a subject of ~24,000 records took the pipeline from 3,952 to 2,537 ev/s). A state
larger than the whole budget is never held: counted (``creditstream_state_too_large_total``) and
logged, at most every 10 minutes per subject, with the budget that would hold it. An entry is used
only while it is provably current:

* it belongs to the partition the batch brings the subject on;
* that partition's position in Redis, read under WATCH in ``begin()``, is the one this sink's last
  successful commit wrote there. Every state write of a partition goes with a position write in the
  same MULTI/EXEC (and an applied event always moves the position), so an unchanged position means
  nobody wrote those subjects since. Otherwise (another worker took the partition and wrote it,
  Redis lost data or was restored, a first batch) the partition's entries are dropped and read again;
* a commit that fails for any reason (fenced, connection lost with the outcome unknown) drops the
  entries of the batch's partitions.

States are stored in the form sinks/state_codec.py owns (``state_format``: compact by default, JSON
with ``"json"``; both are read). The cache's size estimate counts a state's JSON size either way.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from typing import Any, NamedTuple, NoReturn

import msgspec
import orjson
import structlog
from redis.exceptions import RedisError

from creditstream import holdings, metrics
from domain.record_maps import persistent
from sinks.kafka import OutMessage
from sinks.keys import Keys
from sinks.state_codec import (
    STATE_FORMATS,
    StateFormatError,
    Stored,
    decode_state,
    encode_stored,
    is_split,
    join,
    may_be_split,
    split_due,
    state_json,
)

log = structlog.get_logger("creditstream.sinks.redis_state")

# a subject whose state is too large to hold is logged at most this often
TOO_LARGE_LOG_EVERY_S = 600.0

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


class ReplicaAnswered(RedisError):
    """A read found state or positions missing, and the server that answered is not a primary that
    lacks them: a failover in progress (a connection that stayed with the old primary, now a replica,
    answers with that replica's data, not the primary's). Transient: the batch or the check is tried
    again, on connections made again (:func:`confirm_primary`)."""


async def confirm_primary(redis) -> None:
    """Before a read that found data missing is believed (the worker stops, or reads a partition
    again from its start): drop the pool's connections, so that the next one reaches whatever the
    endpoint names now, and ask that server its role (INFO, in the creditstream user's ACL).
    :class:`ReplicaAnswered` unless it is a primary."""
    await redis.connection_pool.disconnect()
    role = (await redis.info("replication")).get("role")
    if role != "master":
        raise ReplicaAnswered(f"Redis answered a read with data missing as a {role or 'server of unknown role'} "
                              f"(a failover in progress?): asked again later")


class Fenced(RuntimeError):
    """Another worker wrote these partitions since this batch read them: the batch is dropped."""


class StatesRead(Mapping[str, "dict | None"]):
    """The states a batch read (``SubjectStateSink.begin``), each decoded only when it is asked for.

    :meth:`take` hands one over and keeps nothing of it, so that the agent decodes a subject's
    state, steps its inputs, stores the result and lets it go before the next subject: a state's
    objects are used and freed while they are in the CPU's caches. Decoded all at once before the
    batch's steps, stored all at once after them and freed at the batch's end, a state of a batch
    of 500 subjects had left the caches each time (in process over the benchmark's inputs: the
    states' load, step, store and free 119-124 us per input stage by stage, 92-94 subject by subject;
    docs/performance.md, thirty-eighth session).

    ``[]`` and ``get`` decode too, and keep what they decoded (for callers that read a state more
    than once)."""

    def __init__(self, decoded: dict[str, dict | None], pending: dict[str, bytes],
                 decode: Callable[[str, bytes], dict]):
        self._decoded = decoded  # states decoded in begin() (held as objects, stored split), None if absent
        self._pending = pending  # subject -> its state's JSON text, not decoded yet
        self._decode = decode

    def take(self, subject_id: str) -> dict | None:
        """The subject's state as read (None: it has none), not kept here (KeyError if not read)."""
        text = self._pending.pop(subject_id, None)
        if text is not None:
            return self._decode(subject_id, text)
        return self._decoded.pop(subject_id)

    def __getitem__(self, subject_id: str) -> dict | None:
        text = self._pending.pop(subject_id, None)
        if text is not None:
            self._decoded[subject_id] = self._decode(subject_id, text)
        return self._decoded[subject_id]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._decoded, *self._pending])

    def __len__(self) -> int:
        return len(self._decoded) + len(self._pending)

    def __contains__(self, subject_id: object) -> bool:
        return subject_id in self._decoded or subject_id in self._pending


class Loaded(NamedTuple):
    states: StatesRead
    positions: dict[int, int | None]     # partition -> next offset to apply (None: never written)
    outboxes: dict[int, list[OutMessage]]  # partition -> messages its last batch may not have produced


_outbox_encoder = msgspec.msgpack.Encoder()
_outbox_decoder = msgspec.msgpack.Decoder(list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]], int | None]])


def encode_outbox(messages: list[OutMessage]) -> bytes:
    return _outbox_encoder.encode([(m.topic, m.value, m.key, list(m.headers), m.timestamp_ms) for m in messages])


def decode_outbox(raw: bytes) -> list[OutMessage]:
    return [OutMessage(t, v, k, list(h), None, ts) for t, v, k, h, ts in _outbox_decoder.decode(raw)]


# a state as Python objects takes about this many times its JSON size in memory
_OBJECTS_PER_JSON_BYTE = 4
# what holding one entry costs besides the state (the entry's tuple, the LRU's node, the id)
_ENTRY_OVERHEAD = 200


def memory_of(json_size: int) -> int:
    """Estimated memory of a state held as Python objects: about :data:`_OBJECTS_PER_JSON_BYTE`
    times its JSON size."""
    return json_size * _OBJECTS_PER_JSON_BYTE + _ENTRY_OVERHEAD


class _Recent:
    """The subject ids last declined by a full cache, about ``size`` to ``2 * size`` of them (two
    sets, the older dropped when the newer fills): a subject touched again while it is remembered
    is taken in. Without this, a full cache took in every state it read, evicting one it held, for
    subjects touched once or twice in a long while: measured at 100,000 subjects (2 inputs each),
    the cache made the worker 15% slower than no cache at all (each taken-in state is walked by the
    garbage collector, evicted states are freed, and nearly none was used again)."""

    def __init__(self, size: int):
        self.size = size
        self._new: set[str] = set()
        self._old: set[str] = set()

    def seen(self, sid: str) -> bool:
        return sid in self._new or sid in self._old

    def add(self, sid: str) -> None:
        if len(self._new) >= self.size:
            self._old, self._new = self._new, set()
        self._new.add(sid)


class StateCache:
    """Subject states this worker holds, per partition, valid while the partition's position in
    Redis is the one this worker wrote last (see the module's doc)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        # sid -> (partition, epoch, state, estimated memory)
        self._entries: OrderedDict[str, tuple[int, int, dict, int]] = OrderedDict()
        self._bytes = 0
        self._written: dict[int, int] = {}  # partition -> position of this worker's last successful commit
        self._epoch: dict[int, int] = {}    # partition -> current epoch; entries of older epochs are stale
        self._epochs = itertools.count(1)
        self.hits = 0
        self.misses = 0
        self.declined = 0  # states not taken in: the cache was full and the subject not seen lately
        self._recent = _Recent(1024)
        holdings.hold("subject_states", self, lambda c: holdings.Held(len(c._entries), None))
        holdings.hold("subject_state_bytes", self, lambda c: holdings.Held(c._bytes, c.max_bytes))

    def trusted(self, partition: int) -> bool:
        return partition in self._written

    def held(self, subject_id: str, partition: int) -> dict | None:
        """The subject's state as held, if current for ``partition``."""
        entry = self._entries.get(subject_id)
        if entry is None or entry[0] != partition or entry[1] != self._epoch.get(partition):
            return None
        self._entries.move_to_end(subject_id)
        return entry[2]

    def confirm(self, partition: int, position: int | None) -> bool:
        """True if ``position`` (read from Redis under WATCH) is the one this worker wrote last;
        otherwise the partition's entries are dropped."""
        if position is not None and self._written.get(partition) == position:
            return True
        self.drop(partition)
        return False

    def drop(self, partition: int) -> None:
        self._written.pop(partition, None)
        self._epoch[partition] = next(self._epochs)

    def written(self, positions: Mapping[int, int],
                states: Mapping[str, tuple[int, dict | None, int]]) -> list[tuple[str, int]]:
        """A commit succeeded: these partitions are at these positions and these states current.
        ``states``: subject -> (partition, the state to hold or None (a state stored whole: its
        subject's entry is dropped, not replaced), the state's JSON size).
        Returns the states too large to hold at all: (subject, estimated memory)."""
        for p, position in positions.items():
            self._written[p] = position
            self._epoch.setdefault(p, next(self._epochs))
        too_large: list[tuple[str, int]] = []
        if not self.max_bytes:
            return too_large
        for sid, (p, state, json_size) in states.items():
            # the subject's state held before is older than this one: never to be used again, even
            # when this one is not held (kept, it was served to the next batch, which then applied
            # its inputs to it and wrote the result over everything since: a subject grown past
            # a quarter of the budget lost its records of every batch but the last)
            old = self._entries.pop(sid, None)
            if old is not None:
                self._bytes -= old[3]
            if state is None or p not in positions:
                continue  # a state stored whole; or not of the partitions this commit fenced
            size = memory_of(json_size)
            if size > self.max_bytes:
                too_large.append((sid, size))
                continue  # read when needed
            if size > self.max_bytes // 4 and old is None and not self._recent.seen(sid):
                # a large state comes in when its subject is touched again soon: a hot subject,
                # whose re-reading costs its whole history on every batch
                self._recent.add(sid)
                self.declined += 1
                continue
            if old is None and self._bytes + size > self.max_bytes and not self._recent.seen(sid):
                self._recent.size = max(1024, len(self._entries) // 4)
                # full, and the subject was not touched lately: it comes in on its next touch
                self._recent.add(sid)
                self.declined += 1
                continue
            self._entries[sid] = (p, self._epoch[p], state, size)
            self._bytes += size
        while self._bytes > self.max_bytes and self._entries:
            _, old = self._entries.popitem(last=False)
            self._bytes -= old[3]
        return too_large

    def __len__(self) -> int:
        return len(self._entries)


async def read_split(redis, keys: Keys, subject_ids: list[str]) -> list[tuple[dict | None, int, bool]]:
    """The whole states of subjects whose head said they are stored split, their JSON sizes and
    whether they still are:
    head and parts read again together in one MULTI/EXEC, so that a writer committing between the
    head's read and the parts' cannot give a head of one batch with the parts of another (seen:
    "its head names 120 record parts, Redis holds 130" under a running worker)."""
    pipe = redis.pipeline(transaction=True)
    for sid in subject_ids:
        pipe.get(keys.subject(sid))
        pipe.hgetall(keys.subject_records(sid))
    answers = await pipe.execute()
    out: list[tuple[dict | None, int, bool]] = []
    for raw, parts in zip(answers[0::2], answers[1::2]):
        if raw is None:
            out.append((None, 0, False))
            continue
        text = state_json(raw)
        head = orjson.loads(text)
        if not is_split(head):  # written whole meanwhile
            out.append((head, len(text), False))
            continue
        state, parts_size = join(head, parts)
        out.append((state, len(text) + parts_size, True))
    return out


async def subject_chunks(redis: Any, keys: Keys, chunk: int) -> AsyncIterator[list[str]]:
    """The storage ids of every subject of ``keys``' generation (``SSCAN subjects``), ``chunk`` at a
    time: what the operators' commands that read every state (rederive, follow-numbers) walk."""
    batch: list[str] = []
    async for member in redis.sscan_iter(keys.subjects, count=chunk):
        batch.append(member.decode() if isinstance(member, bytes) else member)
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


async def read_states(redis, keys: Keys, subject_ids: list[str]) -> list[dict | None]:
    """The whole states of subjects (ids or storage ids), None where none is stored: one MGET, and
    for the subjects stored split one MULTI/EXEC reading head and parts together
    (sinks/state_codec.py). The one way to read whole states."""
    if not subject_ids:
        return []
    raws = await redis.mget([keys.subject(s) for s in subject_ids])
    states = [decode_state(raw) if raw is not None else None for raw in raws]
    split = [i for i, st in enumerate(states) if st is not None and is_split(st)]
    if split:
        for i, (state, _, _) in zip(split, await read_split(redis, keys, [subject_ids[i] for i in split])):
            states[i] = state
    return states


class SubjectStateSink:
    def __init__(self, redis, keys: Keys, *, cache_mb: int = 64, state_format: str = "compact",
                 watch_subjects: bool = False):
        """``watch_subjects``: WATCH the subjects' keys too, not only the partitions' positions, for
        writers that share subjects without sharing partitions (a replay in several processes, when
        a subject's events sit on two partitions): a subject written by another since ``begin()``
        fences the batch. Such a writer keeps no state cache (``cache_mb=0``): a held state could
        predate the other's write."""
        self.redis = redis
        self.watch_subjects = watch_subjects
        self.keys = keys
        if state_format not in STATE_FORMATS:
            raise ValueError(f"state_format: {state_format!r} is not one of {STATE_FORMATS}")
        self.compact = state_format == "compact"  # else JSON (sinks/state_codec.py)
        self._clear = redis.register_script(_CLEAR_OUTBOX_IF_OWNED)
        self._pipe = None
        self.cache = StateCache(cache_mb * 1024 * 1024)
        self._warned: dict[str, float] = {}  # subject -> when its state was last logged as too large to hold
        self._partition_of: Mapping[str, int] = {}
        self._read: dict[str, tuple[int, dict | None, int]] = {}  # states read, to hold (StateCache.written)
        self._base: dict[str, tuple[dict, bool]] = {}  # subject -> (state at begin(), stored split)
        self._reset()

    def _reset(self) -> None:
        self._states: dict[str, bytes] = {}
        self._parts: dict[str, Stored] = {}  # subjects stored split: their parts to write
        self._new_subjects: list[str] = []
        self._memberships: dict[tuple[str, str], bool] = {}  # the last change in a batch wins
        self._counters: dict[str, int] = {}
        self._schedule: dict[str, int] = {}
        self._unschedule: set[str] = set()
        self._positions: dict[int, int] = {}
        self._outboxes: dict[int, bytes | None] = {}
        self._added: dict[str, tuple[dict | None, int]] = {}  # subject -> (state to hold or None, JSON size)

    async def positions(self, partitions: list[int]) -> dict[int, int | None]:
        """The next offset of each subject-event partition Redis records as applied (None: none)."""
        if not partitions:
            return {}
        values = await self.redis.mget([self.keys.position(p) for p in partitions])
        return {p: (int(v) if v is not None else None) for p, v in zip(partitions, values)}

    def state_lost(self) -> StateLost:
        return StateLost(f"Redis has no state under {self.keys.gen_prefix} but the subject log was already "
                         f"consumed: Redis restarted empty or was flushed. Rebuild it with "
                         f"`creditstream replay --switch` (workers stopped), then restart the workers.")

    async def confirm_lost(self) -> NoReturn:
        """The sentinel was missing where a state must exist. Before the worker stops and tells the
        operator to rebuild everything, ask again (:func:`confirm_primary`): :class:`StateLost` only
        if a primary lacks the sentinel; otherwise :class:`ReplicaAnswered`, transient.

        Why: after a failover (tests/integration/test_redis_failover.py, Valkey 9.1, 1 run in 12
        under load) a worker stopped with "Redis has no state ... rebuild it with `creditstream
        replay --switch`". There the new primary itself turned out to lack the state (the test's
        set-up had lost it; the worker was right), but a worker may read on a connection still held
        by the demoted primary, and a replica's answer is no ground for a stop and a rebuild.
        tests/integration/test_redis_failover.py has a replica answer without the state."""
        await confirm_primary(self.redis)
        if await self.has_state():
            raise ReplicaAnswered(f"the state's sentinel {self.keys.sentinel} was missing from one answer and is "
                                  f"there on a new connection (a failover?): asked again")
        raise self.state_lost()

    async def has_state(self) -> bool:
        """Whether the generation's sentinel is there (written by every batch: gone, Redis lost it all)."""
        return bool(await self.redis.exists(self.keys.sentinel))

    async def first_positions(self, positions: Mapping[int, int]) -> None:
        """Record these positions where none is recorded yet (SET NX): a partition that had no batch
        in this generation starts where the consumer is."""
        pipe = self.redis.pipeline(transaction=False)
        for p, offset in positions.items():
            pipe.set(self.keys.position(p), offset, nx=True)
        await pipe.execute()

    async def begin(self, subject_ids, partitions, *, resumed: bool = False,
                    partition_of: Mapping[str, int] | None = None) -> Loaded:
        """Step 1: watch the partitions' positions and read everything the batch needs.

        ``resumed``: the batch does not start at the beginning of the log, so state must exist;
        if the sentinel is missing, Redis lost its data and :class:`StateLost` is raised.
        ``partition_of``: the partition each subject comes on; with it, states this sink holds for
        those partitions are taken from its cache (module doc) instead of Redis."""
        await self.abort()
        self._reset()
        ids = list(dict.fromkeys(subject_ids))
        parts = sorted(set(partitions))
        self._partition_of = partition_of or {}
        self._read = {}
        self._base = {}
        cache = self.cache
        held: dict[str, dict] = {}  # states held (stored split) as objects
        if partition_of:
            for s in ids:
                p = partition_of.get(s)
                if p is not None and cache.trusted(p) and (st := cache.held(s, p)) is not None:
                    held[s] = st
        missing = [s for s in ids if s not in held]
        self._pipe = pipe = self.redis.pipeline(transaction=True)
        pos_keys = [self.keys.position(p) for p in parts]
        if pos_keys:
            await pipe.watch(*pos_keys, *((self.keys.subject(s) for s in ids) if self.watch_subjects else ()))
        keys = [self.keys.sentinel, *pos_keys, *(self.keys.outbox(p) for p in parts),
                *(self.keys.subject(s) for s in missing)]
        raw = await (pipe.mget(keys) if pos_keys else self.redis.mget(keys))
        n = len(parts)
        if resumed and raw[0] is None:
            await self.abort()
            await self.confirm_lost()
        positions = {p: (int(v) if v is not None else None) for p, v in zip(parts, raw[1:1 + n])}
        outboxes = {p: decode_outbox(v) for p, v in zip(parts, raw[1 + n:1 + 2 * n]) if v}
        blobs = dict(zip(missing, raw[1 + 2 * n:]))
        stale = {p for p in parts if not cache.confirm(p, positions[p])}
        if stale and held:  # someone else wrote these partitions since this sink did: read them again
            again = [s for s in held if self._partition_of[s] in stale]
            for s in again:
                del held[s]
            if again:
                more = await (pipe.mget([self.keys.subject(s) for s in again]) if pos_keys
                              else self.redis.mget([self.keys.subject(s) for s in again]))
                blobs.update(zip(again, more))
        cache.hits += len(held)
        cache.misses += len(blobs)
        states: dict[str, dict | None] = {}
        pending: dict[str, bytes] = {}  # subject -> its state's JSON text, decoded when the agent takes it
        read: dict[str, tuple[dict | None, int, bool]] = {}  # subject -> (state, JSON size, stored split)
        for s in ids:
            h = held.get(s)
            if h is not None:
                states[s] = state = persistent(h)  # a held state that grew past PERSISTENT_FROM
                self._base[s] = (state, split_due(state))  # what this sink wrote, split by the rule
                continue
            v = blobs[s]
            if v is None:
                states[s] = None
                continue
            text = state_json(v)  # compact or JSON (sinks/state_codec.py)
            if not may_be_split(text):  # stored whole (a head stored split has its marker): decoded when taken
                pending[s] = text
                continue
            read[s] = (orjson.loads(text), len(text), False)
        # hot subjects: head and parts read again together, all of them in one MULTI/EXEC
        # (read_split); if another writer committed since the MGET above, the commit is fenced anyway
        split = [s for s, (head, _, _) in read.items() if is_split(head)]
        if split:
            read.update(zip(split, await read_split(self.redis, self.keys, split)))
        for s, (state, size, was_split) in read.items():
            # a large state's per-record maps persistent, so that each input costs what it changed
            # (domain/record_maps.py); held states are already
            state = persistent(state)
            states[s] = state
            if state is None:
                continue
            self._base[s] = (state, was_split)
            p = self._partition_of.get(s)
            # held afterwards if stored split as this sink would store it (a held state is taken to
            # be stored split exactly when it has more than SPLIT_RECORDS records; one an earlier
            # version wrote whole is read again until it is written split)
            if p is not None and was_split and split_due(state):
                self._read[s] = (p, state, size)
        return Loaded(StatesRead(states, pending, self._take), positions, outboxes)

    def _take(self, subject_id: str, text: bytes) -> dict:
        """A state stored whole, decoded when the agent takes it (:class:`StatesRead`); not held
        (module doc). It is no base for ``add()``: a state stored whole is written whole, or split
        with every part."""
        state = orjson.loads(text)
        if is_split(state):
            raise StateFormatError(f"the state of {self.keys.storage_id(subject_id)} was read as stored whole, "
                                   f"but it is the head of a state stored split")
        return persistent(state)

    async def abort(self) -> None:
        if self._pipe is not None:
            pipe, self._pipe = self._pipe, None
            try:
                await pipe.reset()
            except Exception:  # noqa: BLE001 - a broken connection is released anyway
                pass

    def add(self, subject_id: str, state: dict, *, new: bool = False,
            touched: Collection[str] | None = None) -> None:
        """Buffer a subject's new state. ``touched``: the record keys the batch's inputs may have
        changed (domain/engine.py ``Step.touched``; None: any), so that a state stored split writes
        only those parts."""
        base, base_split = self._base.get(subject_id) or (None, False)
        stored = encode_stored(state, base, base_split=base_split, changed=touched,
                               state_format="compact" if self.compact else "json")
        self._states[subject_id] = stored.head
        if stored.split or stored.removed:  # (a state stored whole again: its parts removed)
            self._parts[subject_id] = stored
        # held after the commit if stored split; a state stored whole drops what was held
        self._added[subject_id] = (state if stored.split else None, stored.json_bytes)
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
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import WatchError

        pipe = self._pipe if self._pipe is not None else self.redis.pipeline(transaction=True)
        self._pipe = None
        try:
            pipe.multi()
            # every plain value of the batch in one MSET: the sentinel, the states, the positions
            # reached and the outboxes (a command each cost the worker ~40 us of packing and parsing)
            values: dict[str, bytes | int] = {self.keys.sentinel: b"1"}
            for s, v in self._states.items():
                values[self.keys.subject(s)] = v
            for p, offset in self._positions.items():
                values[self.keys.position(p)] = offset
            for p, outbox in self._outboxes.items():
                values[self.keys.outbox(p)] = outbox or b""  # empty: nothing to produce (no DEL in the ACL)
            pipe.mset(values)
            for s, stored in self._parts.items():  # hot subjects: the record parts that changed
                if stored.parts:
                    pipe.hset(self.keys.subject_records(s), mapping=stored.parts)
                if stored.removed:
                    pipe.hdel(self.keys.subject_records(s), *stored.removed)
            # members are storage ids (sinks/keys.py): a natural person's ID number never in clear
            sid = self.keys.storage_id
            if self._new_subjects:
                pipe.sadd(self.keys.subjects, *(sid(s) for s in self._new_subjects))
            entered: dict[str, list[str]] = {}  # list name -> members added (one SADD per list)
            left: dict[str, list[str]] = {}
            for (list_name, subject_id), member in self._memberships.items():
                (entered if member else left).setdefault(list_name, []).append(sid(subject_id))
            for list_name, members in entered.items():
                pipe.sadd(self.keys.list_members(list_name), *members)
            if entered:  # the lists readers find without a scan (sinks/keys.py list_names)
                pipe.sadd(self.keys.list_names, *entered)
            for list_name, members in left.items():
                pipe.srem(self.keys.list_members(list_name), *members)
            for field, n in self._counters.items():
                pipe.hincrby(self.keys.stats, field, n)
            if self._schedule:
                pipe.zadd(self.keys.due, {sid(s): due for s, due in self._schedule.items()})
            if self._unschedule:
                pipe.zrem(self.keys.due, *(sid(s) for s in self._unschedule))
            t0 = time.perf_counter()
            try:
                await pipe.execute()
            except WatchError as exc:
                partitions = sorted(self._positions)  # (named before _forget clears them)
                self._forget()
                if "occurred while watching" in str(exc):
                    # redis-py: the connection dropped while the batch's keys were watched (Redis restarted,
                    # a network cut): written or not, unknown; not a fence (it was logged as one, "another
                    # worker owns these partitions now", with none there): Redis unreachable, retried as such
                    raise RedisConnectionError(str(exc)) from exc
                metrics.FENCED.inc()
                raise Fenced(f"partitions {partitions} were written by another worker since this "
                             f"batch read them") from exc
            except BaseException:
                self._forget()  # written or not: unknown
                raise
            metrics.REDIS_WRITE_SECONDS.observe(time.perf_counter() - t0)
            written = len(self._states)
            self._remember()
            return written
        finally:
            try:
                await pipe.reset()
            except Exception:  # noqa: BLE001
                pass

    def _remember(self) -> None:
        """After a successful commit: the states read and written are the ones in Redis."""
        states = self._read
        for sid, (state, size) in self._added.items():
            p = self._partition_of.get(sid)
            if p is not None:
                states[sid] = (p, state, size)
        too_large = self.cache.written(self._positions, states)
        if too_large:
            self._too_large(too_large)
        self._let_go()

    def _too_large(self, subjects: list[tuple[str, int]]) -> None:
        metrics.STATE_TOO_LARGE.inc(len(subjects))
        now = time.monotonic()
        for sid, size in subjects:
            if now - self._warned.get(sid, -TOO_LARGE_LOG_EVERY_S) < TOO_LARGE_LOG_EVERY_S:
                continue
            self._warned[sid] = now
            need_mb = size // (1024 * 1024) + 1
            log.warning("subject state too large for the state cache: read from Redis and decoded whole on every "
                        "batch about it", subject=self.keys.storage_id(sid), estimated_mb=need_mb,
                        state_cache_mb=self.cache.max_bytes // (1024 * 1024),
                        remedy=f"state_cache_mb of {need_mb} or more holds it")
        if len(self._warned) > 4096:
            self._warned = {s: t for s, t in self._warned.items() if now - t < TOO_LARGE_LOG_EVERY_S}

    def _forget(self) -> None:
        for p in self._positions:
            self.cache.drop(p)
        self._let_go()

    def _let_go(self) -> None:
        """The batch's states, read and written, encoded and not, are needed no more: only the
        cache keeps states between batches (what else lived on until the next batch was walked by
        the collector's next round: creditstream/heap.py)."""
        self._reset()
        self._read = {}
        self._base = {}

    async def clear_outbox(self, positions: dict[int, int]) -> None:
        """Step 4: the outboxes this batch wrote are produced; delete them where still ours."""
        if not positions:
            return
        keys, args = [], []
        for p, offset in positions.items():
            keys += [self.keys.position(p), self.keys.outbox(p)]
            args.append(str(offset))
        await self._clear(keys=keys, args=args)
