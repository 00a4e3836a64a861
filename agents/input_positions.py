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

Before each batch, the positions Redis records are read: one behind means Redis lost the writes of
the inputs from there (restarted from an older AOF, a replica promoted), and the batch is dropped
and those partitions read again from the recorded position (``Rewind``). The script refuses to write
if a position went back while the batch ran, for the same reason. The runner also asks, every
``POSITION_CHECK_S`` (streams/runner.py), about all the agent's partitions (:meth:`InputPositions.
behind`), so a partition with no new input is read again too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiokafka import ConsumerRecord, TopicPartition

from creditstream import metrics
from sinks.registry_index import PositionsBehind, RegistryIndex
from streams.runner import Rewind

log = structlog.get_logger("creditstream.positions")


async def no_commit(tp: TopicPartition) -> int | None:
    """The committed offset when no runner says (an agent driven by a test): none known."""
    return None


def field_of(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


class BatchPositions:
    """A batch's input partitions: where it starts and ends in each, and the floor of each (the
    position Redis must record at least: ``InputPositions``)."""

    def __init__(self, records: list[ConsumerRecord]):
        self.first: dict[TopicPartition, int] = {}
        self.next: dict[TopicPartition, int] = {}
        for msg in records:
            tp = TopicPartition(msg.topic, msg.partition)
            self.first.setdefault(tp, msg.offset)
            self.next[tp] = msg.offset + 1
        self.floor: dict[TopicPartition, int] = {}
        self.mine: set[TopicPartition] = set()

    def spec(self, agent: str) -> tuple[str, list[tuple[str, int, int, bool]]]:
        """What ``RegistryIndex.apply_batch`` checks and records."""
        return agent, [(field_of(tp), self.floor[tp], self.next[tp], tp in self.mine) for tp in self.first]


class InputPositions:
    """An agent's memory of the positions it wrote, and the checks against it."""

    def __init__(self, index: RegistryIndex, agent: str,
                 committed: Callable[[TopicPartition], Awaitable[int | None]]):
        self.index = index
        self.agent = agent
        self.wrote: dict[TopicPartition, int] = {}  # what this worker last wrote (or re-read from)
        self.mine: set[TopicPartition] = set()  # partitions whose position a batch of this worker wrote
        self.committed = committed  # the group's committed offset of a partition (None: none known)

    async def _floor(self, tp: TopicPartition) -> int:
        """The position Redis must record at least for ``tp``: what this worker wrote, or the
        group's commit (none: 0), asked once per ownership."""
        floor = self.wrote.get(tp)
        if floor is None:
            floor = self.wrote[tp] = await self.committed(tp) or 0
        return floor

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Partitions this worker lost (streams/runner.py): if they come back, another worker may
        have written them meanwhile, so their floor is the group's commit again."""
        for tp in revoked:
            self.wrote.pop(tp, None)
            self.mine.discard(tp)

    async def floors(self, bounds: BatchPositions) -> None:
        """Before a batch: each partition's floor (the group's commit asked once per ownership),
        which the batch's script checks (sinks/registry_index.py ``apply_batch``: no Redis round
        trip of its own)."""
        for tp in bounds.first:
            bounds.floor[tp] = await self._floor(tp)
        bounds.mine = self.mine & set(bounds.first)

    async def record(self, bounds: BatchPositions) -> None:
        """A batch with nothing else for Redis: only its positions, checked and written (run beside
        the batch's produce: sinks/checkpoint.py ``with_flush``)."""
        try:
            await self.index.apply_batch([], [], bounds.spec(self.agent))
        except PositionsBehind as exc:
            raise self.rewind_for(exc, bounds) from exc
        self.written(bounds)

    def written(self, bounds: BatchPositions) -> None:
        """The batch's script wrote its positions."""
        for tp, reached in bounds.next.items():
            self.wrote[tp] = max(reached, bounds.floor.get(tp, 0))
            self.mine.add(tp)

    def rewind_for(self, exc: PositionsBehind, bounds: BatchPositions) -> Rewind:
        """A position went back while the batch ran: re-read from there (gone: the batch again)."""
        behind = {}
        for tp, first in bounds.first.items():
            pos = exc.positions.get(field_of(tp))
            if pos is not None and pos >= 0:
                behind[tp] = min(first, pos)
            elif pos is not None:  # gone altogether: as _behind says
                behind[tp] = 0 if tp in self.mine else first
        return self._rewind(behind, bounds.first)

    async def behind(self, partitions: list[TopicPartition]) -> Rewind | None:
        """Every ``POSITION_CHECK_S``, for all the agent's partitions: those Redis records behind what
        was written, to be read again. A partition with no recorded position gets its floor as its
        first (a worker of an earlier version: what it read before is in Redis, as its commit says)."""
        if not partitions:
            return None
        fields = {field_of(tp): tp for tp in partitions}
        read = await self.index.positions(self.agent, list(fields))
        recorded = {fields[f]: pos for f, pos in read.items()}
        unset = {field_of(tp): await self._floor(tp) for tp, pos in recorded.items()
                 if pos is None and tp not in self.mine}
        if unset:
            await self.index.first_positions(self.agent, unset)
            recorded.update({fields[f]: floor for f, floor in unset.items()})
        behind = await self._behind(recorded)
        if not behind:
            return None
        return self._rewind(behind, {})

    async def _behind(self, recorded: dict[TopicPartition, int | None]) -> dict[TopicPartition, int]:
        behind = {}
        for tp, pos in recorded.items():
            floor = await self._floor(tp)
            if pos is None:
                if tp in self.mine:  # a position this worker wrote is gone: read the partition again whole
                    log.error("the recorded position of a partition is gone: Redis lost more than its last writes; "
                              "reading the partition again from its start (see docs/operations.md, Backups and "
                              "losing Redis)", agent=self.agent, partition=field_of(tp), written=floor)
                    behind[tp] = 0
                continue
            if pos < floor:
                behind[tp] = pos
        return behind

    def _rewind(self, behind: dict[TopicPartition, int], first: dict[TopicPartition, int]) -> Rewind:
        metrics.REWINDS.labels(self.agent).inc(len(behind))
        log.warning("Redis is behind the log: re-reading from the positions it records", agent=self.agent,
                    positions={field_of(tp): pos for tp, pos in behind.items()},
                    written={field_of(tp): self.wrote.get(tp) for tp in behind})
        for tp, pos in behind.items():
            self.wrote[tp] = pos  # from there on, Redis is expected where it is now
            self.mine.discard(tp)  # (a position that is gone is written again by the next batch)
        return Rewind({**first, **behind}, reason="redis-behind")
