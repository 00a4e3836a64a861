"""The sink to the internal subject-event log: each validated, attached input as a subject event keyed
by its subject's storage id (so one worker applies a subject's inputs in order; a natural person's ID
number is never a message key: sinks/keys.py), stamped with its arrival time."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from creditstream import metrics
from domain import events
from sinks.deadletter import DeadLetterSink
from sinks.kafka import KafkaSink, MessageTooLarge, message_size
from sinks.keys import Keys
from sinks.registry_index import Moved, RegistryIndex, Released


class SubjectEventWriter:
    """Adds subject events to a Kafka sink: key = the subject's storage id (``keys.storage_id``),
    timestamp = arrival time.

    A subject event over the subject-event log's message limit is an input error: the department
    message it came from is dead-lettered as ``too-large`` (never retried: the broker would refuse
    it every time)."""

    # room for the subject id a parked event gets once its subject is known
    SUBJECT_ROOM = 64

    def __init__(self, kafka: KafkaSink, topic: str, dead: DeadLetterSink, keys: Keys):
        self.kafka = kafka
        self.topic = topic
        self.dead = dead
        self.keys = keys

    def add(self, event: events.SubjectEvent, source: ConsumerRecord | None) -> None:
        """``source``: the department message the event came from; None for a released parked event
        (a stand-in is built, only if it must be dead-lettered)."""
        try:
            self.kafka.add(self.topic, events.encode(event), key=self.keys.storage_id(event.subject).encode(),
                           timestamp_ms=event.event_ms)
        except MessageTooLarge as exc:
            self.dead.add(source if source is not None else source_of(event, self.keys), "too-large",
                          f"its subject event would be {exc}")

    def fits(self, event: events.SubjectEvent) -> MessageTooLarge | None:
        """Why ``event`` would not fit on the log once attached (None: it fits)."""
        limits = self.kafka.limits
        if limits is None:
            return None
        size = message_size(b"x" * self.SUBJECT_ROOM, events.encode(event), [])
        limit = limits.of(self.topic)
        return MessageTooLarge(self.topic, size, limit) if size > limit else None

    def add_released(self, released: list[Released]) -> None:
        for r in released:
            for parked in r.events():  # once per sighting: each re-send with its own arrival and origin
                self.add(events.with_subject(events.from_dict(parked), r.subject_id, "uscc", r.gen), None)
        if released:
            metrics.RELEASED.inc(len(released))

    def add_moved(self, moved: list[Moved]) -> None:
        """Decisions that follow their legacy number to another organisation: a ``detached`` notice to
        each organisation they were on, and their copies (once per sighting) to the one they go to,
        all at the move's generation (domain/events.py)."""
        for m in moved:
            copies = [events.with_subject(events.from_dict(e), m.subject_id, "uscc", m.gen, moved=True)
                      for e in m.events()]
            first = copies[0]
            assert isinstance(first, events.RecordEvent)
            latest = max(c.event_ms for c in copies)
            for subject in m.left:
                self.add(events.detached(subject, first.record, first.hash, m.gen, latest, m.subject_id), None)
            for copy in copies:
                if (copy.event_ms, copy.origin) not in m.direct:  # (the ingest sent it there: Moved.direct)
                    self.add(copy, None)


async def acknowledge_moved(index: RegistryIndex, moved: list[Moved]) -> None:
    """Once the moves' notices and copies are on the log: acknowledged, not sent again, and counted
    (``creditstream_records_moved_total``: each move once, not at each attempt to produce it)."""
    metrics.MOVED.inc(await index.acknowledge_moves(moved))


PARKED_NOTE = b"the value is the parked subject event, not the original message"


def source_of(event: events.SubjectEvent, keys: Keys) -> ConsumerRecord:
    """A stand-in for the department message a parked event came from (its origin names where it
    is in the log): what a dead letter of the event refers to. Its value is the subject event, its
    key the subject's storage id (as on the subject-event log)."""
    try:
        topic, partition, offset = event.origin.rsplit("/", 2)
        int(partition), int(offset)
    except ValueError:  # a move's notice (``move:...``): no department message of its own
        topic, partition, offset = event.origin, "-1", "-1"
    value = events.encode(event)
    key = keys.storage_id(event.subject).encode()
    return ConsumerRecord(topic=topic, partition=int(partition), offset=int(offset), timestamp=event.event_ms,
                          timestamp_type=0, key=key, value=value, checksum=None,
                          serialized_key_size=len(key), serialized_value_size=len(value),
                          headers=(("creditstream.parked", PARKED_NOTE),))
