"""Where the ingest and registry agents' batches stand in Redis, so that a Redis that lost its
last writes loses no input (the subject agent has its own: sinks/redis_state.py).

Their effects in Redis (the identifier index, parked records) are written by one script per batch
with the position each input partition reached (sinks/registry_index.py ``apply_batch``). Before a
batch, the positions Redis records are read: one behind the batch's first offset means Redis lost
the writes of the inputs between (restarted from an older AOF, a replica promoted), and the batch
is dropped and those partitions re-read from there (``Rewind``). The script refuses to write if a
position went back while the batch ran, for the same reason. A position ahead of the batch (another
worker went further, or the consumer's commit was lost) changes nothing: the batch's writes are
idempotent. Partitions that get no input are checked when the agent is idle (``idle_rewind``).
"""

from __future__ import annotations

import structlog
from aiokafka import ConsumerRecord, TopicPartition

from creditstream import metrics
from sinks.registry_index import PositionsBehind, RegistryIndex
from streams.runner import Rewind

log = structlog.get_logger("creditstream.positions")


def field_of(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


class BatchPositions:
    """A batch's input partitions: where it starts and ends in each, and where Redis said it was."""

    def __init__(self, records: list[ConsumerRecord]):
        self.first: dict[TopicPartition, int] = {}
        self.next: dict[TopicPartition, int] = {}
        for msg in records:
            tp = TopicPartition(msg.topic, msg.partition)
            self.first.setdefault(tp, msg.offset)
            self.next[tp] = msg.offset + 1
        self.recorded: dict[TopicPartition, int | None] = {}

    async def check(self, index: RegistryIndex, agent: str) -> None:
        """Read the recorded positions; raise ``Rewind`` for partitions Redis records behind the
        batch (it lost the writes of the inputs between)."""
        fields = {field_of(tp): tp for tp in self.first}
        read = await index.positions(agent, list(fields))
        self.recorded = {fields[f]: pos for f, pos in read.items()}
        behind = {tp: pos for tp, pos in self.recorded.items() if pos is not None and pos < self.first[tp]}
        if behind:
            raise self._rewind(behind, agent)

    def spec(self, agent: str) -> tuple[str, list[tuple[str, int | None, int]]]:
        """What ``RegistryIndex.apply_batch`` checks and records."""
        return agent, [(field_of(tp), self.recorded.get(tp), self.next[tp]) for tp in self.first]

    def rewind_for(self, exc: PositionsBehind, agent: str) -> Rewind:
        """A position went back while the batch ran: re-read from there (none recorded: the batch again)."""
        behind = {}
        for tp in self.first:
            pos = exc.positions.get(field_of(tp))
            if pos is not None:
                behind[tp] = min(self.first[tp], pos) if pos >= 0 else self.first[tp]
        return self._rewind(behind, agent)

    def _rewind(self, behind: dict[TopicPartition, int], agent: str) -> Rewind:
        _behind(agent, behind, self.first)
        return Rewind({tp: behind.get(tp, first) for tp, first in self.first.items()}, reason="redis-behind")


def _behind(agent: str, behind: dict[TopicPartition, int], reached: dict[TopicPartition, int]) -> None:
    metrics.REWINDS.labels(agent).inc(len(behind))
    log.warning("Redis is behind the log: re-reading from the positions it records", agent=agent,
                positions={field_of(tp): pos for tp, pos in behind.items()},
                reached={field_of(tp): reached[tp] for tp in behind})


async def idle_rewind(index: RegistryIndex, agent: str, consumer_positions: dict[TopicPartition, int]) -> Rewind | None:
    """For an agent with no input: the partitions whose position Redis records behind the
    consumer's (Redis lost the writes of their last inputs, and no new input would show it). A
    partition without a recorded position gets the consumer's as its first (a worker of an earlier
    version, or no batch yet): what was read before it is in Redis, as the consumer's commit says."""
    if not consumer_positions:
        return None
    fields = {field_of(tp): tp for tp in consumer_positions}
    read = await index.positions(agent, list(fields))
    behind = {fields[f]: pos for f, pos in read.items() if pos is not None and pos < consumer_positions[fields[f]]}
    unset = {f: consumer_positions[tp] for f, tp in fields.items() if read.get(f) is None}
    if unset:
        await index.first_positions(agent, unset)
    if not behind:
        return None
    _behind(agent, behind, consumer_positions)
    return Rewind(behind, reason="redis-behind")
