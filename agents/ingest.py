"""The ingest agent: department decisions in, validated records attached to their subject out.

Per batch: decode (Avro, Confluent framing) -> validate and normalise (domain/validate.py) ->
attach (domain/attach.py; legacy identifiers through the registry index, parking what cannot be
attached yet) -> one subject event per record on the subject-event log, keyed by subject id so that
each subject's inputs are handled in order by one worker. Bad input goes to the dead-letter topic.
Nothing is awaited per event: one Redis script call for the look-ups, one for what the batch
teaches the index, one produce flush.
"""

from __future__ import annotations

import time

import orjson
import structlog
from aiokafka import ConsumerRecord

from creditstream import metrics
from domain.attach import Attached, learned_pairs, plan
from domain.validate import Rejection, content_hash, normalise_event
from sinks.deadletter import DeadLetterSink
from sinks.kafka import KafkaSink
from sinks.registry_index import RegistryIndex, Released
from streams.codec import AvroCodec, DecodeError
from streams.topics import Topics

log = structlog.get_logger("creditstream.ingest")

DECISION_SCHEMAS = frozenset({
    "creditstream.AdministrativePenalty",
    "creditstream.AdministrativeLicense",
    "creditstream.CourtDebtorListing",
    "creditstream.CourtDebtorDeletion",
    "creditstream.ActionRecord",
    # from the credit office (信用办):
    "creditstream.ListingDecision",
    "creditstream.Objection",
    "creditstream.RepairDecision",
    # from implementing units:
    "creditstream.JointPunishmentFeedback",
})


def origin_of(msg: ConsumerRecord) -> str:
    """The id of a department message: where it is in the log. Stable across redelivery and replay."""
    return f"{msg.topic}/{msg.partition}/{msg.offset}"


def subject_event(subject_id: str, id_kind: str, origin: str, record: dict, event_ms: int) -> dict:
    """The subject-event of a canonical record: ``record`` for decisions, ``objection`` and
    ``repair`` for the credit office's objection handling and repair decisions."""
    event = {
        "type": "record",
        "origin": origin,
        "subject": subject_id,
        "id_kind": id_kind,
        "record": record,
        "hash": content_hash(record),
        "event_ms": event_ms,
    }
    kind = record["kind"]
    if kind == "objection":
        event.update(type="objection", objection_id=record["objection_id"], record_key=record["target_key"],
                     status=record["status"], filed=record["filed"], resolved=record.get("resolved"),
                     provider_verification=bool(record.get("provider_verification")),
                     outcome=record.get("outcome"))
    elif kind == "feedback":
        event.update(type="feedback", change_id=record["change_id"], feedback_id=record.get("feedback_id"),
                     unit=record.get("source_unit"), measure=(record.get("fields") or {}).get("measure"),
                     measure_date=record.get("decision_date"))
    elif kind == "repair":
        event.update(type="repair", record_key=record["target_key"], approved=bool(record.get("approved")),
                     decision_date=record["decision_date"], doc_no=record.get("doc_no"))
    return event


class SubjectEventWriter:
    """Adds subject events to a Kafka sink: key = subject id, timestamp = event time."""

    def __init__(self, kafka: KafkaSink, topic: str):
        self.kafka = kafka
        self.topic = topic

    def add(self, event: dict) -> None:
        self.kafka.add(self.topic, orjson.dumps(event), key=event["subject"].encode(), timestamp_ms=event["event_ms"])

    def add_released(self, released: list[Released]) -> None:
        for r in released:
            event = dict(r.parked["event"])
            event["subject"] = r.subject_id
            event["id_kind"] = "uscc"
            self.add(event)
        if released:
            metrics.RELEASED.inc(len(released))


class IngestAgent:
    name = "ingest"

    TAUGHT_KEPT = 500_000

    def __init__(self, *, topics: Topics, codec: AvroCodec, index: RegistryIndex, producer):
        self.topics = topics
        self.codec = codec
        self.index = index
        self.producer = producer
        # index entries this worker has already stored: most records name a known USCC, and
        # re-teaching it on every record would cost a Redis write and a Lua loop each time
        self._taught: dict[str, str] = {}

    def source_topics(self) -> list[str]:
        return [self.topics.penalty, self.topics.license, self.topics.court, self.topics.action,
                self.topics.credit_office, self.topics.feedback]

    async def process(self, records: list[ConsumerRecord]) -> None:
        kafka = KafkaSink(self.producer)
        dead = DeadLetterSink(kafka, self.topics.dead_letters, self.name)
        out = SubjectEventWriter(kafka, self.topics.subject_events)

        attached: list[dict] = []
        waiting: list[tuple[tuple[str, ...], str, dict]] = []
        teach: dict[str, str] = {}
        for msg in records:
            rec = self.decode(msg, dead)
            if rec is None:
                continue
            try:
                target = plan(rec)
                if isinstance(target, Attached):
                    attached.append(subject_event(target.subject_id, target.id_kind, origin_of(msg), rec, msg.timestamp))
                    for key, uscc in learned_pairs(rec.get("ids") or {}):
                        if self._taught.get(key) != uscc:
                            teach.setdefault(key, uscc)
                elif not target.lookup_keys:
                    dead.add(msg, "no-identifier", "no identifier that could name the subject")
                else:
                    event = subject_event("", "", origin_of(msg), rec, msg.timestamp)
                    waiting.append((target.lookup_keys, event["origin"],
                                    {"lookup_keys": list(target.lookup_keys), "event": event}))
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the batch
                dead.add(msg, "processing-error", f"{type(exc).__name__}: {exc}")
                log.exception("record failed", topic=msg.topic, partition=msg.partition, offset=msg.offset)

        # What this batch teaches the index first, so records in the same batch attach directly.
        released = await self.index.learn(list(teach.items()))
        resolved = await self.index.lookup_or_park(waiting)
        if len(self._taught) > self.TAUGHT_KEPT:
            self._taught.clear()
        self._taught.update(teach)

        for event in attached:
            out.add(event)
        parked = 0
        for (keys, origin, payload), uscc in zip(waiting, resolved):
            if uscc is None:
                parked += 1
                continue
            event = payload["event"]
            event["subject"] = uscc
            event["id_kind"] = "uscc"
            out.add(event)
        out.add_released(released)
        await kafka.flush()
        await self.index.unpark(released)

        if parked:
            metrics.PARKED.inc(parked)
        for reason, n in dead.counts.items():
            metrics.DEAD_LETTERS.labels(reason).inc(n)

    def decode(self, msg: ConsumerRecord, dead: DeadLetterSink) -> dict | None:
        """The canonical record of a department message, or None once it is dead-lettered."""
        try:
            schema_name, raw = self.codec.decode(msg.value if msg.value is not None else b"")
        except DecodeError as exc:
            dead.add(msg, exc.reason, str(exc))
            return None
        if schema_name not in DECISION_SCHEMAS:
            dead.add(msg, "unexpected-schema", f"{schema_name} is not a decision schema (topic {msg.topic})")
            return None
        try:
            rec = normalise_event(schema_name, raw, event_time_ms=msg.timestamp or int(time.time() * 1000))
        except Exception as exc:  # noqa: BLE001
            dead.add(msg, "processing-error", f"{type(exc).__name__}: {exc}")
            log.exception("validation failed unexpectedly", topic=msg.topic, offset=msg.offset)
            return None
        if isinstance(rec, Rejection):
            dead.add(msg, rec.reason, rec.detail)
            return None
        return rec
