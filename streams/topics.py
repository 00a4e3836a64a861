"""Every Kafka topic creditstream reads or writes: this module owns the names.

Department topics carry Avro in the Confluent wire format (docs/events.md). The internal
subject-event log is keyed by subject id, so every subject's inputs are handled in order by one
worker; it is the log that replay rebuilds state from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from creditstream.settings import Settings
from domain.kinds import KINDS


@dataclass(frozen=True)
class TopicSpec:
    suffix: str
    doc: str
    compacted: bool = False
    retention_ms: int = -1  # -1: keep forever (the log is the source of truth for replay)


# Department side: what department systems, courts and the credit office produce.
PENALTY = TopicSpec("penalty", "administrative penalty decisions (行政处罚)")
LICENSE = TopicSpec("license", "administrative license decisions (行政许可)")
COURT = TopicSpec("court-debtor", "court dishonest-judgment-debtor listings and deletions (失信被执行人)")
ACTION = TopicSpec("action-record",
                   "the other eight publicised action kinds (十公示: 强制, 确认, 征收, 给付, 裁决, 补偿, 奖励, 检查)")
REGISTRATION = TopicSpec("registration", "subject registrations mapping legacy numbers to the USCC (存量代码转换)",
                         compacted=True)
CREDIT_OFFICE = TopicSpec("credit-office",
                          "objections (异议), repair decisions (信用修复) and listing decisions from the credit office")
FEEDBACK = TopicSpec("feedback", "joint-punishment feedback from implementing units (联合惩戒反馈)")

# Internal and downstream.
SUBJECT_EVENTS = TopicSpec("subject-events", "internal: validated, attached inputs keyed by subject id, in order")
LIST_CHANGES = TopicSpec("list-changes", "list changes for downstream systems (Avro, keyed by subject)")
DEAD_LETTERS = TopicSpec("dead-letters", "bad input with the original bytes and the reason in headers")
CHECK_AUDIT = TopicSpec("check-audit", "credit checks answered by the check API (client, instant, subject as its "
                        "storage id, matter, outcome): the record of 应查必查 / 奖惩到位 (Avro, keyed by subject)")

# Topics by their role key in the catalogue of event kinds (domain/kinds.py), and so which topic
# each kind is produced to (ops/produce.py, tests, benchmark).
SPEC_OF_TOPIC = {"penalty": PENALTY, "license": LICENSE, "court": COURT, "action": ACTION,
                 "registration": REGISTRATION, "credit_office": CREDIT_OFFICE, "feedback": FEEDBACK,
                 "subject_events": SUBJECT_EVENTS, "list_changes": LIST_CHANGES, "dead_letters": DEAD_LETTERS,
                 "check_audit": CHECK_AUDIT}
SPEC_OF_KIND = {k.name: SPEC_OF_TOPIC[k.topic] for k in KINDS if k.role != "output"}

INGEST_SOURCES = (PENALTY, LICENSE, COURT, ACTION, CREDIT_OFFICE, FEEDBACK)
ALL = (PENALTY, LICENSE, COURT, ACTION, REGISTRATION, CREDIT_OFFICE, FEEDBACK,
       SUBJECT_EVENTS, LIST_CHANGES, DEAD_LETTERS, CHECK_AUDIT)


# Room the dead-letter topic has beyond the others: a department message at the broker's limit
# must still fit with the ``dlq.*`` headers (at most about 1.2 KiB) added.
DEAD_LETTER_HEADROOM = 64 * 1024


@dataclass
class MessageLimits:
    """The largest message (bytes, as the broker counts a one-record batch) each topic takes.

    Set from ``Settings.max_message_bytes`` (the broker's ``message.max.bytes``), the dead-letter
    topic with :data:`DEAD_LETTER_HEADROOM` more. If the broker still refuses a message as too
    large, its real limit is lower than configured: :meth:`lower` records that, so the retry of the
    batch dead-letters the message instead of sending it again (a MessageSizeTooLarge is an input
    error, never retried as it was)."""

    default: int
    per_topic: dict[str, int] = field(default_factory=dict)

    def of(self, topic: str) -> int:
        return self.per_topic.get(topic, self.default)

    def lower(self, topic: str, below: int) -> int:
        self.per_topic[topic] = min(self.of(topic), max(below, 1))
        return self.per_topic[topic]


def topic_config(settings: Settings, spec: TopicSpec) -> dict[str, str]:
    """The configuration creditstream gives a topic it creates (``creditstream topics`` compares
    existing topics with it and ``topics --apply`` sets it)."""
    config: dict[str, str] = {}
    if spec.compacted:
        config["cleanup.policy"] = "compact"
    elif spec is DEAD_LETTERS or spec is CHECK_AUDIT:
        days = settings.dead_letter_retention_days if spec is DEAD_LETTERS else settings.check_audit_retention_days
        config["retention.ms"] = str(round(days * 86_400_000)) if days > 0 else "-1"
    else:
        config["retention.ms"] = str(spec.retention_ms)
    if settings.replication_factor >= 3:
        config["min.insync.replicas"] = "2"  # acks=all then survives one broker down
    if spec is DEAD_LETTERS:
        # a department message at the limit still fits with the reason headers
        config["max.message.bytes"] = str(settings.max_message_bytes + DEAD_LETTER_HEADROOM)
    return config


def message_limits(settings: Settings) -> MessageLimits:
    dead_letters = Topics(settings).dead_letters
    return MessageLimits(settings.max_message_bytes,
                         {dead_letters: settings.max_message_bytes + DEAD_LETTER_HEADROOM})


class Topics:
    """Topic names under one prefix (``Settings.topic_prefix``)."""

    def __init__(self, settings: Settings | str):
        self.prefix = settings if isinstance(settings, str) else settings.topic_prefix

    def name(self, spec: TopicSpec) -> str:
        return self.prefix + spec.suffix

    def for_kind(self, kind: str) -> str:
        """The topic an input of ``kind`` (penalty, license, ..., see SPEC_OF_KIND) is produced to."""
        return self.name(SPEC_OF_KIND[kind])

    def schemas_on(self) -> dict[str, frozenset[str]]:
        """The input schemas each input topic carries (domain/kinds.py): a decision of one kind sent
        to another kind's topic is refused (``unexpected-schema``), so that who may write a topic
        (the brokers' ACLs) decides who may send its kind: a department's penalty topic carries no
        repair decisions of the credit office."""
        out: dict[str, set[str]] = {}
        for k in KINDS:
            if k.role != "output":
                out.setdefault(self.for_kind(k.name), set()).add(k.schema)
        return {topic: frozenset(schemas) for topic, schemas in out.items()}

    def spec_of(self, name: str) -> TopicSpec | None:
        for spec in ALL:
            if self.name(spec) == name:
                return spec
        return None

    @property
    def penalty(self) -> str:
        return self.name(PENALTY)

    @property
    def license(self) -> str:
        return self.name(LICENSE)

    @property
    def court(self) -> str:
        return self.name(COURT)

    @property
    def action(self) -> str:
        return self.name(ACTION)

    @property
    def registration(self) -> str:
        return self.name(REGISTRATION)

    @property
    def credit_office(self) -> str:
        return self.name(CREDIT_OFFICE)

    @property
    def feedback(self) -> str:
        return self.name(FEEDBACK)

    @property
    def subject_events(self) -> str:
        return self.name(SUBJECT_EVENTS)

    @property
    def list_changes(self) -> str:
        return self.name(LIST_CHANGES)

    @property
    def dead_letters(self) -> str:
        return self.name(DEAD_LETTERS)

    @property
    def check_audit(self) -> str:
        return self.name(CHECK_AUDIT)

    @property
    def ingest_sources(self) -> list[str]:
        return [self.name(s) for s in INGEST_SOURCES]

    def all(self) -> list[str]:
        return [self.name(s) for s in ALL]
