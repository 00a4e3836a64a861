"""The ingest agent: department decisions in, validated records attached to their subject out.

Per batch: decode (Avro, Confluent framing) -> validate and normalise (domain/validate.py) ->
attach (domain/attach.py; legacy identifiers through the registry index, parking what cannot be
attached yet) -> one subject event per record on the subject-event log, keyed by subject id so that
each subject's inputs are handled in order by one worker. Bad input goes to the dead-letter topic.
Nothing is awaited per event: one Redis script call per batch (what it teaches the index, the
look-ups and parks, the input positions reached: agents/input_positions.py; a batch with nothing
else for Redis writes only its positions, beside the produce), one produce flush.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiokafka import ConsumerRecord, TopicPartition

from agents.arrival import future_stamp, origin_of
from agents.input_positions import BatchPositions, InputPositions, no_commit
from creditstream import holdings, metrics
from domain import clock, events
from domain.attach import Attached, learned_pairs, plan, taught_version
from domain.kinds import INGEST_SCHEMAS
from domain.validate import Rejection, normalise_event
from sinks.checkpoint import Checkpoint
from sinks.deadletter import DeadLetterSink
from sinks.registry_index import BatchApplied, PositionsBehind, RegistryIndex
from sinks.subject_events import SubjectEventWriter, acknowledge_moved
from streams.codec import AvroCodec, DecodeError
from streams.kafka import Committed
from streams.runner import Recorded, Rewind
from streams.topics import Topics

log = structlog.get_logger("creditstream.ingest")



class IngestAgent:
    name = "ingest"

    TAUGHT_KEPT = 500_000

    def __init__(self, *, topics: Topics, codec: AvroCodec, index: RegistryIndex, producer):
        self.topics = topics
        self.codec = codec
        self.index = index
        self.producer = producer
        # index entries this worker has taught, (USCC, version): most records name a known USCC, and
        # re-teaching it on every record would cost a Redis write and a Lua loop each time. Only what
        # the index holds a version of at least as new is skipped (it remembered what it offered, and
        # skipped a newer version of a number another record had taught away meanwhile: the number
        # then ended with whichever organisation came first)
        # (an embedded organisation code's version is its USCC's: the USCC alone is kept for it)
        self._taught: dict[str, str | tuple[str, str]] = {}
        holdings.hold("ingest_taught_index", self, lambda a: holdings.Held(len(a._taught), a.TAUGHT_KEPT))
        self._schemas_on = topics.schemas_on()
        # the group's committed offset of a partition: streams/runner.py sets it
        self.committed_offset: Callable[[TopicPartition], Awaitable[Committed]] = no_commit
        self.positions = InputPositions(index, self.name, lambda tp: self.committed_offset(tp))
        self.commit_marker = self.positions.commit_marker  # what the runner's commits carry

    def source_topics(self) -> list[str]:
        return [self.topics.penalty, self.topics.license, self.topics.court, self.topics.action,
                self.topics.credit_office, self.topics.feedback]

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.producer, self.topics.dead_letters, self.name)

    async def process(self, records: list[ConsumerRecord], checkpoint: Checkpoint) -> None:
        bounds = BatchPositions(records)
        try:
            await self.positions.floors(bounds)  # what the batch's script checks: Redis lost no writes
            await self._process(records, checkpoint, bounds)
        except Rewind:
            self._taught.clear()  # what Redis lost must be taught again
            raise

    def forget(self, revoked: set[TopicPartition]) -> None:
        """streams/runner.py, in a rebalance: partitions this worker lost."""
        self.positions.forget(revoked)

    async def _record_positions(self, bounds: BatchPositions) -> None:
        try:
            await self.positions.record(bounds)
        except Rewind:
            self._taught.clear()
            raise

    async def recorded_positions(self, partitions: list[TopicPartition]) -> dict[TopicPartition, Recorded | None]:
        """streams/runner.py, for partitions the group has no commit for: where Redis records them."""
        return await self.positions.recorded(partitions)

    async def positions_behind(self, partitions: list[TopicPartition]) -> Rewind | None:
        """streams/runner.py, every few seconds: partitions whose writes Redis lost."""
        rewind = await self.positions.positions_behind(partitions)
        if rewind is not None:
            self._taught.clear()
        return rewind

    async def _process(self, records: list[ConsumerRecord], checkpoint: Checkpoint, bounds: BatchPositions) -> None:
        # the writer schemas of ids not seen yet, fetched once (a remote registry); decoding asks nothing
        await self.codec.ensure_for(msg.value for msg in records)
        dead = checkpoint.dead
        out = SubjectEventWriter(checkpoint.kafka, self.topics.subject_events, dead, self.index.keys)

        attached: list[tuple[events.SubjectEvent, ConsumerRecord]] = []
        waiting: list[tuple[tuple[str, ...], ConsumerRecord, dict]] = []
        teach: dict[str, tuple[str, str]] = {}  # lookup key -> (USCC, mapping version): the newest
        now_ms = clock.now_ms()
        # stage by stage over the whole batch, not message by message: each stage's code stays hot
        # in the CPU's caches (measured in process: 49 against 57 us per input for these four stages)
        bodies = [(msg, *body) for msg in records if (body := self.decode(msg, dead, now_ms)) is not None]
        valid = [(msg, rec) for msg, name, raw in bodies if (rec := self.validate(msg, name, raw, dead)) is not None]
        for msg, rec in valid:
            try:
                target = plan(rec)
                if isinstance(target, Attached):
                    attached.append((events.of_record(target.subject_id, target.id_kind, origin_of(msg), rec,
                                                      msg.timestamp), msg))
                    for key, uscc in learned_pairs(rec.get("ids") or {}):
                        version = taught_version(key, uscc, dated=rec.get("decision_date"), stamp_ms=msg.timestamp,
                                                 origin=origin_of(msg))
                        if self._knows(key, uscc, version):
                            continue  # the index holds this version or a newer one: teaching it changes nothing
                        if key not in teach or teach[key][1] < version:
                            teach[key] = (uscc, version)
                elif not target.lookup_keys:
                    dead.add(msg, "no-identifier", "a natural person is named by the resident ID number, and this "
                             "record gives none" if rec.get("subject_category") == "natural_person"
                             else "no identifier that could name the subject (a resident ID number given as a "
                             "tax or other number is never looked up: give the organisation's USCC)"
                             if (rec.get("ids") or {}).keys() - {"org_code", "reg_no"}
                             else "no identifier that could name the subject")
                else:
                    event = events.of_record("?", "uscc", origin_of(msg), rec, msg.timestamp)
                    too_large = out.fits(event)
                    if too_large is not None:  # parked, it would be released to a log that refuses it
                        dead.add(msg, "too-large", f"its subject event would be {too_large}")
                        continue
                    waiting.append((target.lookup_keys, msg,
                                    {"lookup_keys": list(target.lookup_keys), "event": events.to_dict(event)}))
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the batch
                dead.add(msg, "processing-error", f"{type(exc).__name__}: {exc}")
                log.exception("record failed", topic=msg.topic, partition=msg.partition, offset=msg.offset)

        # What this batch teaches the index first, so records in the same batch attach directly;
        # then look up or park the others; with the positions reached, all in one script
        applied = BatchApplied([], [], [])
        if teach or waiting:
            try:
                applied = await self.index.apply_batch(
                    [(key, uscc, version) for key, (uscc, version) in teach.items()],
                    [(keys, origin_of(msg), payload) for keys, msg, payload in waiting], bounds.spec(self.name))
            except PositionsBehind as exc:
                raise await self.positions.rewind_for(exc, bounds) from exc
            await self.positions.written_batch(bounds)
        else:  # only the positions: written while the batch's subject events are produced
            checkpoint.with_flush(lambda: self._record_positions(bounds))

        for event, msg in attached:
            out.add(event, msg)
        parked = 0
        for (_keys, msg, payload), target in zip(waiting, applied.resolved):
            if target is None:
                parked += 1
                continue
            out.add(events.with_subject(events.from_dict(payload["event"]), target.subject_id, "uscc", target.gen),
                    msg)
        released, moved = applied.released, applied.moved
        out.add_released(released)
        out.add_moved(moved)
        # once the released events are on the log, they are no longer parked; nor are the moves waiting
        checkpoint.after_flush(lambda: self.index.unpark(released))
        if moved:
            checkpoint.after_flush(lambda: acknowledge_moved(self.index, moved))
        checkpoint.after_flush(lambda: self.positions.acknowledged(bounds))  # where a start without a commit goes on
        # what was taught is remembered (not taught again) only once the batch is through: a batch
        # retried after a failed flush must learn again, or the records its first attempt released
        # (never produced) would stay parked under a number the index knows
        checkpoint.after_flush(lambda: self._remember_taught(teach))
        if parked:
            checkpoint.after_flush(lambda: metrics.PARKED.inc(parked))

    def _knows(self, key: str, uscc: str, version: str) -> bool:
        """Whether this worker taught the index ``key -> uscc`` at ``version`` or a newer version."""
        held = self._taught.get(key)
        if held is None:
            return False
        if isinstance(held, str):
            return held == uscc
        return held[0] == uscc and held[1] >= version

    def _remember_taught(self, teach: dict[str, tuple[str, str]]) -> None:
        if len(self._taught) > self.TAUGHT_KEPT:
            self._taught.clear()
        self._taught.update((key, uscc if key.startswith("org:") else (uscc, version))
                            for key, (uscc, version) in teach.items())

    def decode(self, msg: ConsumerRecord, dead: DeadLetterSink, now_ms: int) -> tuple[str, dict] | None:
        """The schema name and Avro body of a department message, or None once it is dead-lettered."""
        why = future_stamp(msg, now_ms)
        if why is not None:
            dead.add(msg, "future-timestamp", why)
            return None
        try:
            schema_name, raw = self.codec.decode(msg.value)  # a tombstone (None): "empty"
        except DecodeError as exc:
            dead.add(msg, exc.reason, str(exc))
            return None
        if schema_name not in INGEST_SCHEMAS:
            dead.add(msg, "unexpected-schema", f"{schema_name} is not a decision schema (topic {msg.topic})")
            return None
        if schema_name not in self._schemas_on.get(msg.topic, INGEST_SCHEMAS):
            belongs = sorted(t for t, schemas in self._schemas_on.items() if schema_name in schemas)
            dead.add(msg, "unexpected-schema", f"{schema_name} on {msg.topic}: it is sent to {', '.join(belongs)}")
            return None
        return schema_name, raw

    def validate(self, msg: ConsumerRecord, schema_name: str, raw: dict, dead: DeadLetterSink) -> dict | None:
        """The canonical record of a decoded message, or None once it is dead-lettered."""
        try:
            rec = normalise_event(schema_name, raw, event_time_ms=msg.timestamp)
        except Exception as exc:  # noqa: BLE001
            dead.add(msg, "processing-error", f"{type(exc).__name__}: {exc}")
            log.exception("validation failed unexpectedly", topic=msg.topic, offset=msg.offset)
            return None
        if isinstance(rec, Rejection):
            dead.add(msg, rec.reason, rec.detail)
            return None
        return rec
