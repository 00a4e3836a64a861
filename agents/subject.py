"""The subject agent: applies the subject-event log to each subject's live state and emits list changes.

The log is keyed by subject id, so one worker sees all of a subject's events, in order. Per batch:

1. load every subject the batch touches (one MGET);
2. run the pure step (domain/engine.py) event by event: new state, outcome, list changes, linked
   events for legal representatives, timeliness;
3. produce the list changes (Avro, keyed by subject), the linked events (to the subject-event log)
   and any dead letters, and wait for every ack;
4. then write all changed states, list memberships, due instants and counters in one MULTI/EXEC.

Events carry the id of the message they came from, so redelivered events are recognised and
skipped: a worker killed between 3 and 4 re-emits the same list changes with the same ids (a
consumer dedupes them by ``change_id``) and never loses one; killed after 4, it re-applies nothing.
"""

from __future__ import annotations

import structlog
from aiokafka import ConsumerRecord

from creditstream import metrics
from domain import events
from domain.calendar import WorkingCalendar
from domain.clock import due_ms
from domain.engine import is_late, step
from domain.rulebook import Rulebook
from sinks.deadletter import DeadLetterSink
from sinks.kafka import KafkaSink
from sinks.redis_state import SubjectStateSink
from streams.codec import AvroCodec
from streams.topics import Topics

log = structlog.get_logger("creditstream.subject")

LIST_CHANGE_SCHEMA = "creditstream.ListChange"


def list_change_record(change: dict, subject_kind: str, arrival_ms: int | None = None) -> dict:
    """A list change as a ListChange Avro record (schemas/list_change.avsc)."""
    import datetime as dt

    return {
        "change_id": change["change_id"],
        "subject_id": change["subject"],
        "subject_kind": subject_kind,
        "list": change["list"],
        "list_kind": change["kind"],
        "domain": change.get("domain"),
        "transition": change["transition"],
        "effective_date": dt.date.fromisoformat(change["effective_date"]),
        "cause_record_ids": list(change.get("causes") or ()),
        "event_time": dt.datetime.fromtimestamp(change["event_ms"] / 1000, dt.timezone.utc),
        "rules_version": change.get("rules_version") or "",
        "cause_kind": change.get("cause_kind") or "",
        "cause_decision": change.get("cause_decision"),
        "withdraws": change.get("withdraws"),
        "arrival_time": (dt.datetime.fromtimestamp(arrival_ms / 1000, dt.timezone.utc)
                         if arrival_ms is not None else None),
    }


class SubjectAgent:
    name = "subject"

    def __init__(self, *, topics: Topics, state: SubjectStateSink, producer, codec: AvroCodec,
                 rules: Rulebook, calendar: WorkingCalendar):
        self.topics = topics
        self.state = state
        self.producer = producer
        self.codec = codec
        self.rules = rules
        self.calendar = calendar
        self.collected: list = []  # with producer=None (replay): what would have been produced
        self.replaying = producer is None

    def source_topics(self) -> list[str]:
        return [self.topics.subject_events]

    async def process(self, records: list[ConsumerRecord]) -> None:
        kafka = KafkaSink(self.producer)
        dead = DeadLetterSink(kafka, self.topics.dead_letters, self.name)
        decoded = []
        for msg in records:
            try:
                decoded.append((msg, events.decode(msg.value if msg.value is not None else b"")))
            except events.BadEvent as exc:
                dead.add(msg, "bad-subject-event", str(exc))
        # a partition whose batch does not start at offset 0 resumes a log whose state must exist
        first: dict[int, int] = {}
        for msg in records:
            first.setdefault(msg.partition, msg.offset)
        resumed = not self.replaying and any(offset > 0 for offset in first.values())
        loaded = await self.state.load((e.subject for _, e in decoded), resumed=resumed)
        states = dict(loaded)
        changed: set[str] = set()
        counters: dict[str, int] = {}

        def count(field: str, n: int = 1) -> None:
            counters[field] = counters.get(field, 0) + n

        for msg, event in decoded:
            sid = event.subject
            try:
                result = step(states[sid], event, self.rules, self.calendar)
            except Exception as exc:  # noqa: BLE001 - a bug on one event must not stop the subject log
                log.exception("subject event failed", origin=event.origin, type=type(event).__name__)
                dead.add(msg, "processing-error", f"{type(exc).__name__}: {exc}")
                count("outcome:error")
                continue
            before = states[sid]
            states[sid] = result.state
            if result.outcome == "invalid":  # decoded and validated, but the rules cannot use it
                dead.add(msg, f"invalid-{msg_type(event)}", "the rules core could not apply it")
                count("outcome:invalid")
                continue
            if result.outcome == "redelivered":
                metrics.OUTCOMES.labels("redelivered").inc()
                continue
            changed.add(sid)  # duplicates too: the state remembers their origin
            count(f"outcome:{result.outcome}")
            if isinstance(event, events.DEPARTMENT_INPUTS):
                count("inputs")
            metrics.OUTCOMES.labels(result.outcome).inc()
            for change in result.changes:
                value = self.codec.encode(LIST_CHANGE_SCHEMA,
                                          list_change_record(change, result.state["id_kind"], event.event_ms),
                                          topic=self.topics.list_changes)
                kafka.add(self.topics.list_changes, value, key=sid.encode(), timestamp_ms=event.event_ms,
                          headers=[("change_id", change["change_id"].encode())])
                count(f"change:{change['kind']}:{change['transition']}")
                metrics.LIST_CHANGES.labels(change["kind"], change["transition"]).inc()
            if result.changes:
                self._memberships(before, result.state, sid)
            for link in result.links:
                kafka.add(self.topics.subject_events, events.encode(link), key=link.subject.encode(),
                          timestamp_ms=link.event_ms)
            if result.timeliness is not None:
                unit, workdays = result.timeliness
                count(f"unit:{unit}:records")
                count(f"unit:{unit}:{'late' if is_late(workdays) else 'on_time'}")
                count(f"unit:{unit}:late_workdays_total", workdays)
            record = getattr(event, "record", None) or {}
            if result.outcome == "new" and record.get("domain"):
                count(f"domain:{record['domain']}:records")

        await kafka.flush()  # changes, links, dead letters before state: a crash re-emits, never loses
        if self.producer is None:
            self.collected.extend(kafka.collected)
        for sid in changed:
            st = states[sid]
            self.state.add(sid, st, new=loaded.get(sid) is None)
            next_due = (st.get("evaluation") or {}).get("next_due")
            if next_due:
                self.state.schedule(sid, due_ms(next_due))
            else:
                self.state.unschedule(sid)
        for field, n in counters.items():
            self.state.count(field, n)
        for reason, n in dead.counts.items():
            metrics.DEAD_LETTERS.labels(reason).inc(n)
        await self.state.flush()

    def _memberships(self, before: dict | None, after: dict, sid: str) -> None:
        """The list member sets follow the subject's situation on its clock (a withdrawn entry
        takes the subject out of a list as an exit does)."""
        was = set(((before or {}).get("evaluation") or {}).get("lists") or ())
        now = set((after.get("evaluation") or {}).get("lists") or ())
        for name in now - was:
            self.state.add_to_list(name, sid)
        for name in was - now:
            self.state.remove_from_list(name, sid)


def msg_type(event) -> str:
    return type(event).__name__.removesuffix("Event").lower()
