"""Where the ingest and registry agents' batches stand in Redis, so that a Redis that lost its
last writes loses no input (the subject agent has its own: sinks/redis_state.py).

Their effects in Redis (the identifier index, parked records) are written by one script per batch
with the position each input partition reached, "last record + 1" (sinks/registry_index.py
``apply_batch``). Redis has lost writes when it records a position behind one that was written:

* behind the position this worker's own last batch of the partition wrote (kept in memory), or
* for a partition this worker has not written yet, behind the group's committed offset (a batch is
  committed only after its script wrote its position).

Not behind the batch's first offset, nor the consumer's position: a log has offsets that hold no
record a consumer sees (a transaction's commit marker, records compacted away or deleted by
retention), so the next batch may begin past the recorded position with nothing lost.

A partition with no recorded position at all is either new to Redis (never written: its first
position is the group's commit) or lost with Redis's tail, its first write included. The runner
tells them apart by the metadata of the group's commit: every commit after a batch carries the
agent's :meth:`commit_marker` (streams/runner.py), which names where its positions are kept in
Redis. A partition whose commit carries it had a position written there; none now means Redis lost
more than its last writes, and the partition is read again from its start, as for a position this
worker wrote. A commit without it (an earlier version, ``positions move``, a broker that drops the
metadata: Tansu, docs/broker.md 11) leaves the first position at the commit, as before.

Before each batch, the positions Redis records are read: one behind means Redis lost the writes of
the inputs from there (restarted from an older AOF, a replica promoted), and the batch is dropped
and those partitions read again from the recorded position (``Rewind``). The script refuses to write
if a position went back while the batch ran, for the same reason. The runner also asks, every
``POSITION_CHECK_S`` (streams/runner.py), about all the agent's partitions (:meth:`InputPositions.
behind`), so a partition with no new input is read again too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

import structlog
from aiokafka import ConsumerRecord, TopicPartition

from creditstream import metrics
from sinks.keys import Keys
from sinks.redis_state import confirm_primary
from sinks.registry_index import PositionsBehind, RegistryIndex
from streams.kafka import Committed, record_mark
from streams.runner import Recorded, Rewind

log = structlog.get_logger("creditstream.positions")
K = TypeVar("K")


async def no_commit(tp: TopicPartition) -> Committed:
    """The committed offset when no runner says (an agent driven by a test): none known."""
    return Committed(None)


def commit_marker(keys: Keys, agent: str) -> str:
    """The metadata of ``agent``'s commits: its positions are recorded in Redis there (the subject
    agent's generation's keys, or the ingest or registry agent's hash), so the batches before the
    commit wrote one there (module doc)."""
    where = keys.positions_pattern if agent == "subject" else keys.input_positions(agent)
    return f"creditstream positions in redis: {where}"


def field_of(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


class BatchPositions:
    """A batch's input partitions: where it starts and ends in each, and the floor of each (the
    position Redis must record at least: ``InputPositions``)."""

    def __init__(self, records: list[ConsumerRecord]):
        self.first: dict[TopicPartition, int] = {}
        self.next: dict[TopicPartition, int] = {}
        self.last: dict[TopicPartition, ConsumerRecord] = {}
        for msg in records:
            tp = TopicPartition(msg.topic, msg.partition)
            self.first.setdefault(tp, msg.offset)
            self.next[tp] = msg.offset + 1
            self.last[tp] = msg
        self.floor: dict[TopicPartition, int] = {}
        self.mine: set[TopicPartition] = set()

    def spec(self, agent: str) -> tuple[str, list[tuple[str, int, int, bool]]]:
        """What ``RegistryIndex.apply_batch`` checks and records."""
        return agent, [(field_of(tp), self.floor[tp], self.next[tp], tp in self.mine) for tp in self.first]


class WrittenPositions(Generic[K]):
    """What a worker wrote on each input partition, and when Redis is behind it: a recorded position
    below this worker's own last write or, for a partition it has not written since it was assigned,
    below the group's committed offset. ``key`` names a partition as the agent's store does: the
    ingest and registry agents' hash by ``"topic/partition"`` (:class:`InputPositions`), the subject
    agent's per-generation keys by partition number (agents/subject.py)."""

    def __init__(self, agent: str, key: Callable[[TopicPartition], K],
                 committed: Callable[[TopicPartition], Awaitable[Committed]],
                 marker: Callable[[], str] | None = None):
        self.agent = agent
        self.key = key
        self.wrote: dict[K, int] = {}  # what this worker last wrote (or re-read from)
        # partitions whose position was written in Redis: by a batch of this worker, or before the
        # group's commit (its metadata says so: module doc)
        self.mine: set[K] = set()
        self.committed = committed  # the group's commit of a partition, and its metadata
        self.marker = marker  # what this agent's commits carry (commit_marker), or None

    async def floor(self, tp: TopicPartition) -> int:
        """The position Redis must record at least for ``tp``: what this worker wrote, or the
        group's commit (none: 0), asked once per ownership. A commit carrying this agent's marker
        makes the partition one whose position was written (:attr:`mine`)."""
        k = self.key(tp)
        floor = self.wrote.get(k)
        if floor is None:
            commit = await self.committed(tp)
            floor = self.wrote[k] = commit.offset or 0
            if commit.metadata and self.marker is not None and commit.metadata == self.marker():
                self.mine.add(k)
        return floor

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Partitions this worker lost (streams/runner.py): if they come back, another worker may
        have written them meanwhile, so their floor is the group's commit again."""
        for tp in revoked:
            k = self.key(tp)
            self.wrote.pop(k, None)
            self.mine.discard(k)

    def written(self, reached: Mapping[K, int]) -> None:
        """A batch wrote these positions."""
        self.wrote.update(reached)
        self.mine.update(reached)

    def behind(self, recorded: Mapping[K, int | None], floors: Mapping[K, int]) -> dict[K, int]:
        """The partitions Redis records behind their floor, and where to read them again from. A
        position this worker wrote that is gone altogether (Redis lost more than its last writes):
        from the partition's start. One never written (and not by this worker): not behind."""
        behind: dict[K, int] = {}
        for k, pos in recorded.items():
            if pos is None:
                if k in self.mine:
                    log.error("the recorded position of a partition is gone: Redis lost more than its last writes; "
                              "reading the partition again from its start (see docs/operations.md, Backups and "
                              "losing Redis)", agent=self.agent, partition=str(k), written=floors.get(k))
                    behind[k] = 0
                continue
            if pos < floors[k]:
                behind[k] = pos
        return behind

    async def check(self, partitions: list[TopicPartition],
                    read: Callable[[list[K]], Awaitable[Mapping[K, int | None]]],
                    first: Callable[[dict[K, int]], Awaitable[None]],
                    confirm: Callable[[], Awaitable[None]] | None = None) -> dict[K, int]:
        """Every ``POSITION_CHECK_S`` (streams/runner.py), for all the agent's partitions: those
        Redis records behind what was written (:meth:`behind`). A partition with no recorded position
        that this worker has not written gets its floor as its first (a worker of an earlier
        version, or a partition with no batch yet: what came before the commit is applied).
        ``confirm`` (sinks/redis_state.py ``confirm_primary``) is awaited before a position this
        worker wrote is taken for gone: a replica that answered during a failover raises there, and
        the check is skipped, where the partition was read again from its start."""
        floors = {self.key(tp): await self.floor(tp) for tp in partitions}
        recorded = dict(await read(list(floors)))
        if confirm is not None and any(pos is None and k in self.mine for k, pos in recorded.items()):
            await confirm()
        unset = {k: floors[k] for k, pos in recorded.items() if pos is None and k not in self.mine}
        if unset:
            await first(unset)
            recorded.update(unset)
        return self.behind(recorded, floors)

    def rewound(self, behind: Mapping[K, int]) -> None:
        """These partitions are read again from these positions: from there on, Redis is expected
        where it is now (a position that was gone is written again by the next batch)."""
        metrics.REWINDS.labels(self.agent).inc(len(behind))
        for k, pos in behind.items():
            self.wrote[k] = pos
            self.mine.discard(k)


class InputPositions(WrittenPositions[TopicPartition]):
    """The ingest and registry agents' positions (one hash per agent, by ``"topic/partition"``),
    checked by each batch's own script."""

    def __init__(self, index: RegistryIndex, agent: str,
                 committed: Callable[[TopicPartition], Awaitable[Committed]]):
        super().__init__(agent, lambda tp: tp, committed, lambda: self.commit_marker())
        self.index = index
        self.lost = 0  # partitions read again since the last note of it in Redis (:meth:`note_lost`)
        self.catching_up: dict[TopicPartition, int] = {}  # re-read partitions -> where they were written to
        self.caught_up = False  # the re-read reached them all since the last note

    async def note_lost(self) -> None:
        """Partitions read again because Redis lost this agent's writes, and the re-read reaching where
        they were written to: noted in Redis for the operator (``RegistryIndex.note_lost_writes``: the
        index's memory of decisions by number may be gone; `creditstream follow-numbers` clears the note
        only if it began after both). Written right after the rewind, else before the next batch or
        check; a note Redis loses too is written again at the next loss found."""
        if self.lost or self.caught_up:
            await self.index.note_lost_writes(self.agent, self.lost, self.caught_up)
            self.lost, self.caught_up = 0, False

    async def _noted(self, rewind: Rewind) -> Rewind:
        """``rewind``, its loss noted if Redis takes the note now (if not, at the next batch or check:
        a failure here must not hide the rewind, which says what to read again)."""
        await self._note_quietly()
        return rewind

    async def _note_quietly(self) -> None:
        try:
            await self.note_lost()
        except Exception as exc:  # noqa: BLE001 - Redis failing: written later
            log.debug("the loss of writes not noted yet", agent=self.agent, error=str(exc)[:200])

    def written(self, reached: Mapping[TopicPartition, int]) -> None:
        super().written(reached)
        if self.catching_up:
            for tp, n in reached.items():
                if n >= self.catching_up.get(tp, n + 1):
                    del self.catching_up[tp]
            if not self.catching_up:
                self.caught_up = True

    def commit_marker(self) -> str:
        """What the agent's commits carry (streams/runner.py): its positions are in this hash."""
        return commit_marker(self.index.keys, self.agent)

    async def floors(self, bounds: BatchPositions) -> None:
        """Before a batch: each partition's floor (the group's commit asked once per ownership),
        which the batch's script checks (sinks/registry_index.py ``apply_batch``: no Redis round
        trip of its own)."""
        await self.note_lost()
        for tp in bounds.first:
            bounds.floor[tp] = await self.floor(tp)
        bounds.mine = self.mine & set(bounds.first)

    async def record(self, bounds: BatchPositions) -> None:
        """A batch with nothing else for Redis: only its positions, checked and written (run beside
        the batch's produce: sinks/checkpoint.py ``with_flush``)."""
        try:
            await self.index.apply_batch([], [], bounds.spec(self.agent))
        except PositionsBehind as exc:
            raise await self.rewind_for(exc, bounds) from exc
        await self.written_batch(bounds)

    async def written_batch(self, bounds: BatchPositions) -> None:
        """The batch's script wrote its positions (a re-read that reached where it had been: noted)."""
        self.written({tp: max(reached, bounds.floor.get(tp, 0)) for tp, reached in bounds.next.items()})
        if self.caught_up:
            await self._note_quietly()

    async def rewind_for(self, exc: PositionsBehind, bounds: BatchPositions) -> Rewind:
        """A position went back while the batch ran: re-read from there (gone: the batch again)."""
        behind = {}
        for tp, first in bounds.first.items():
            pos = exc.positions.get(field_of(tp))
            if pos is not None and pos >= 0:
                behind[tp] = min(first, pos)
            elif pos is not None:  # gone altogether: as behind() says
                behind[tp] = 0 if tp in self.mine else first
        return await self._noted(self._rewind(behind, bounds.first))

    async def recorded(self, partitions: list[TopicPartition]) -> dict[TopicPartition, Recorded | None]:
        """Where each of ``partitions`` goes on after the batches whose messages the broker
        acknowledged, with the mark of the record before it (None: none recorded, or one without a
        mark: ``positions move``): where a partition the group has no commit for starts, once the
        mark matches the log (streams/runner.py ``_start_where_recorded``). Not the positions the
        batch scripts write: those are written before the produce (a batch whose subject events
        were never delivered has one)."""
        got = await self.index.acknowledged_positions(self.agent, [field_of(tp) for tp in partitions])
        out: dict[TopicPartition, Recorded | None] = {}
        for tp in partitions:
            offset, _, mark = (got.get(field_of(tp)) or "").partition("@")
            out[tp] = Recorded(int(offset), mark) if offset.isdigit() and mark else None
        return out

    async def acknowledged(self, bounds: BatchPositions) -> None:
        """After a batch's messages are acknowledged (sinks/checkpoint.py ``after_flush``): where its
        partitions go on, ``next@mark`` (the mark of the batch's last record: kafka.record_mark), for
        :meth:`recorded`. A write lost with Redis's tail only makes a start without a commit read a
        little again."""
        await self.index.acknowledge_positions(
            self.agent, {field_of(tp): f"{n}@{record_mark(bounds.last[tp])}" for tp, n in bounds.next.items()})

    async def positions_behind(self, partitions: list[TopicPartition]) -> Rewind | None:
        """The periodic check (:meth:`WrittenPositions.check`) over this agent's hash."""
        await self.note_lost()
        if not partitions:
            return None
        fields = {field_of(tp): tp for tp in partitions}

        async def read(tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
            got = await self.index.positions(self.agent, [field_of(tp) for tp in tps])
            return {fields[f]: pos for f, pos in got.items()}

        async def first(unset: dict[TopicPartition, int]) -> None:
            await self.index.first_positions(self.agent, {field_of(tp): pos for tp, pos in unset.items()})

        behind = await self.check(partitions, read, first, lambda: confirm_primary(self.index.redis))
        return await self._noted(self._rewind(behind, {})) if behind else None

    def _rewind(self, behind: dict[TopicPartition, int], first: dict[TopicPartition, int]) -> Rewind:
        log.warning("Redis is behind the log: re-reading from the positions it records; once the workers have "
                    "caught up, run `creditstream follow-numbers` (decisions sent by a legacy number: "
                    "docs/operations.md, Backups and losing Redis)", agent=self.agent,
                    positions={field_of(tp): pos for tp, pos in behind.items()},
                    written={field_of(tp): self.wrote.get(tp) for tp in behind})
        for tp in behind:  # caught up once read again to where it was written (or where it is read from)
            self.catching_up[tp] = max(self.catching_up.get(tp, 0), self.wrote.get(tp, 0), behind[tp])
        self.rewound(behind)
        self.lost += len(behind)
        return Rewind({**first, **behind}, reason="redis-behind")
