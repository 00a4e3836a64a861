"""The subject agent: applies the subject-event log to each subject's live state in Redis.

The log is keyed by subject id, so one worker sees all of a subject's events, in order. Per batch:
load every subject the batch touches (one MGET), apply the pure core (domain/subject.py) event by
event, then write all changed states, memberships and counters in one MULTI/EXEC. Events carry the
id of the department message they came from, so redelivered events are recognised and skipped:
the worker can be killed at any moment and a restart re-applies nothing twice.
"""

from __future__ import annotations

import orjson
import structlog
from aiokafka import ConsumerRecord

from creditstream import metrics
from domain.subject import apply_record
from sinks.deadletter import DeadLetterSink
from sinks.kafka import KafkaSink
from sinks.redis_state import SubjectStateSink
from streams.topics import Topics

log = structlog.get_logger("creditstream.subject")


class SubjectAgent:
    name = "subject"

    def __init__(self, *, topics: Topics, state: SubjectStateSink, producer):
        self.topics = topics
        self.state = state
        self.producer = producer

    def source_topics(self) -> list[str]:
        return [self.topics.subject_events]

    async def process(self, records: list[ConsumerRecord]) -> None:
        kafka = KafkaSink(self.producer)
        dead = DeadLetterSink(kafka, self.topics.dead_letters, self.name)
        events = []
        for msg in records:
            try:
                events.append((msg, orjson.loads(msg.value)))
            except orjson.JSONDecodeError as exc:
                dead.add(msg, "bad-subject-event", str(exc))
        loaded = await self.state.load(e["subject"] for _, e in events)
        states = dict(loaded)
        changed: set[str] = set()
        outcomes: dict[str, int] = {}
        for msg, event in events:
            sid = event["subject"]
            try:
                new_state, outcome = apply_record(states[sid], event)
            except Exception as exc:  # noqa: BLE001 - a bug on one event must not stop the subject log
                log.exception("subject event failed", origin=event.get("origin"))
                outcome = "error"
                dead.add(msg, "processing-error", f"{type(exc).__name__}: {exc}")
            else:
                states[sid] = new_state
                if outcome != "redelivered":  # duplicates too: the state remembers their origin
                    changed.add(sid)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        await kafka.flush()  # list changes and dead letters before state: a crash re-emits, never loses
        for sid in changed:
            self.state.add(sid, states[sid], new=loaded.get(sid) is None)
        for outcome, n in outcomes.items():
            if outcome != "redelivered":
                self.state.count(f"outcome:{outcome}", n)
            metrics.OUTCOMES.labels(outcome).inc(n)
        await self.state.flush()

