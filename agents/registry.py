"""The registry agent: subject registrations (主体登记) teach the identifier index, release parked records.

A registration maps a subject's USCC to its legacy numbers (registration no., organisation code,
tax no., others). For each batch: store every mapping (one Redis script call), emit the records
that were parked waiting for those numbers, the decisions attached through a number that now names
another organisation (a ``detached`` notice to the one they were on, their copies to the other), and
a ``registration`` subject event so the subject's state knows its names and identifiers; only after
the broker acknowledged them are the released records removed from the parking area and the moves
no longer waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiokafka import ConsumerRecord, TopicPartition

from agents.arrival import future_stamp, origin_of
from agents.input_positions import BatchPositions, InputPositions, no_commit
from creditstream import metrics
from domain import clock, events
from domain.attach import learned_pairs, mapping_version
from domain.identifiers import normalise_code
from domain.kinds import REGISTRATION_SCHEMA
from domain.validate import Rejection, normalise_event
from sinks.checkpoint import Checkpoint
from sinks.registry_index import PositionsBehind, RegistryIndex
from sinks.subject_events import SubjectEventWriter, acknowledge_moved
from streams.codec import AvroCodec, DecodeError
from streams.kafka import Committed
from streams.runner import Recorded, Rewind
from streams.topics import Topics

log = structlog.get_logger("creditstream.registry")


def _key_text(key: bytes | None) -> str | None:
    """A message key as a USCC would be written (normalised), None for none or one that is no text."""
    if key is None:
        return None
    try:
        return normalise_code(key.decode())
    except UnicodeDecodeError:
        return None


class RegistryAgent:
    name = "registry"

    def __init__(self, *, topics: Topics, codec: AvroCodec, index: RegistryIndex, producer):
        self.topics = topics
        self.codec = codec
        self.index = index
        self.producer = producer
        # the group's committed offset of a partition: streams/runner.py sets it
        self.committed_offset: Callable[[TopicPartition], Awaitable[Committed]] = no_commit
        self.positions = InputPositions(index, self.name, lambda tp: self.committed_offset(tp))
        self.commit_marker = self.positions.commit_marker  # what the runner's commits carry

    def source_topics(self) -> list[str]:
        return [self.topics.registration]

    def forget(self, revoked: set[TopicPartition]) -> None:
        """streams/runner.py, in a rebalance: partitions this worker lost."""
        self.positions.forget(revoked)

    async def recorded_positions(self, partitions: list[TopicPartition]) -> dict[TopicPartition, Recorded | None]:
        """streams/runner.py, for partitions the group has no commit for: where Redis records them."""
        return await self.positions.recorded(partitions)

    async def positions_behind(self, partitions: list[TopicPartition]) -> Rewind | None:
        """streams/runner.py, every few seconds: partitions whose writes Redis lost."""
        return await self.positions.positions_behind(partitions)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.producer, self.topics.dead_letters, self.name)

    async def process(self, records: list[ConsumerRecord], checkpoint: Checkpoint) -> None:
        bounds = BatchPositions(records)
        await self.positions.floors(bounds)  # what the batch's script checks: Redis lost no writes
        await self.codec.ensure_for(msg.value for msg in records)  # a remote registry: ids not seen yet
        dead = checkpoint.dead
        out = SubjectEventWriter(checkpoint.kafka, self.topics.subject_events, dead, self.index.keys)
        pairs: dict[str, tuple[str, str]] = {}  # lookup key -> (USCC, mapping version): the newest
        miskeyed: list[ConsumerRecord] = []
        now_ms = clock.now_ms()
        for msg in records:
            if msg.value is None:  # a tombstone on the compacted topic: nothing to learn
                continue
            why = future_stamp(msg, now_ms)
            if why is not None:
                dead.add(msg, "future-timestamp", why)
                continue
            try:
                schema_name, raw = self.codec.decode(msg.value)
            except DecodeError as exc:
                dead.add(msg, exc.reason, str(exc))
                continue
            if schema_name != REGISTRATION_SCHEMA:
                dead.add(msg, "unexpected-schema", f"{schema_name} on the registration topic")
                continue
            rec = normalise_event(schema_name, raw, event_time_ms=msg.timestamp)
            if isinstance(rec, Rejection):
                dead.add(msg, rec.reason, rec.detail)
                continue
            learned = learned_pairs(rec.get("ids") or {}, registration=True)
            if not learned:
                dead.add(msg, "bad-identifier", "a registration needs a USCC (of the right shape)")
                continue
            # the newest registration of a number wins, by its own date, then stamp and origin,
            # not by the order registrations arrive in (domain/attach.py mapping_version)
            version = mapping_version(registration=True, dated=rec.get("decision_date"), stamp_ms=msg.timestamp,
                                      origin=origin_of(msg))
            for key, uscc in learned:
                if key not in pairs or pairs[key][1] < version:
                    pairs[key] = (uscc, version)
            out.add(events.of_record(rec["ids"]["uscc"], "uscc", origin_of(msg), rec, msg.timestamp), msg)
            if _key_text(msg.key) != rec["ids"]["uscc"]:
                miskeyed.append(msg)
        if miskeyed:
            # learnt all the same; but the topic is compacted by key: a registration that shares its
            # key with another (unkeyed on Tansu, one key for all, a name) may be deleted by compaction
            # and gone from a registry read again from the log (seen accepted without a word)
            metrics.REGISTRATIONS_MISKEYED.inc(len(miskeyed))
            first = miskeyed[0]
            log.warning("registrations keyed otherwise than by their USCC: the compacted topic keeps one "
                        "registration per key, so compaction may delete one for another; key each by its USCC",
                        count=len(miskeyed), example=f"{first.topic}/{first.partition}/{first.offset}")

        try:
            applied = await self.index.apply_batch([(key, uscc, version) for key, (uscc, version) in pairs.items()],
                                                   [], bounds.spec(self.name))
        except PositionsBehind as exc:
            raise await self.positions.rewind_for(exc, bounds) from exc
        await self.positions.written_batch(bounds)
        released, moved = applied.released, applied.moved
        out.add_released(released)
        # decisions attached through a number that now names another organisation follow it
        out.add_moved(moved)
        checkpoint.after_flush(lambda: self.index.unpark(released))
        if moved:
            checkpoint.after_flush(lambda: acknowledge_moved(self.index, moved))
        checkpoint.after_flush(lambda: self.positions.acknowledged(bounds))  # where a start without a commit goes on
