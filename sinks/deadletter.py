"""Dead letters (死信): bad input kept whole, with the reason, for an operator to inspect and re-drive.

A dead letter is the original message (key, value bytes, headers) on the dead-letter topic, with
headers added that say why and where it came from (a tombstone stays a tombstone: its value null,
so a re-drive sends a tombstone again):

``dlq.reason`` (a short code: ``bad-magic``, ``unknown-schema-id``, ``missing-field``, ...),
``dlq.detail`` (a readable sentence, never personal data), ``dlq.agent``,
``dlq.source.topic``, ``dlq.source.partition``, ``dlq.source.offset``, ``dlq.source.timestamp``,
``dlq.at`` (when it was dead-lettered, ms). Original headers are kept after these.

Size: the dead-letter topic takes 64 KiB more than the others (streams/topics.py), so a department
message at the broker's limit fits with these headers. Where it still would not (a dead-letter
topic created by hand with the broker's default limit), the dead letter is written without the
value and says ``dlq.value-omitted`` (the original's size and the limit), its ``dlq.*`` headers
then the original's (those too are left out, ``dlq.headers-omitted``, only where they alone are
over the limit): the original stays at ``dlq.source.*`` for as long as that topic retains it,
``creditstream dlq redrive`` reads it back from there (ops/dlq.py), and the error log says so.
"""

from __future__ import annotations

import time

import structlog
from aiokafka import ConsumerRecord

from domain.privacy import safe_detail
from sinks.kafka import KafkaSink, MessageTooLarge

log = structlog.get_logger("creditstream.deadletter")

HEADER_PREFIX = "dlq."


DEAD_LETTERS_NAMED = 5
"""How many of a batch's dead letters its log line names by source (the rest are counted)."""


class DeadLetterSink:
    def __init__(self, kafka: KafkaSink, topic: str, agent: str):
        self.kafka = kafka
        self.topic = topic
        self.agent = agent
        self.counts: dict[str, int] = {}
        self.sources: list[str] = []  # the first few sources (topic[partition]@offset), for the batch's log line

    def add(self, msg: ConsumerRecord, reason: str, detail: str = "") -> None:
        # stamped when dead-lettered, not with the source's time (kept in dlq.source.timestamp): the
        # topic's retention counts from the message timestamp, so an old message dead-lettered today
        # must not be deleted at once
        now_ms = int(time.time() * 1000)
        headers = [
            ("dlq.reason", reason.encode()),
            ("dlq.detail", safe_detail(detail)[:1000].encode()),
            ("dlq.agent", self.agent.encode()),
            ("dlq.source.topic", msg.topic.encode()),
            ("dlq.source.partition", str(msg.partition).encode()),
            ("dlq.source.offset", str(msg.offset).encode()),
            ("dlq.source.timestamp", str(msg.timestamp).encode()),
            ("dlq.at", str(now_ms).encode()),
        ]
        headers += [(k, v) for k, v in (msg.headers or ()) if not k.startswith(HEADER_PREFIX)]
        value = msg.value
        try:
            self.kafka.add(self.topic, value, key=msg.key, headers=headers, timestamp_ms=now_ms)
        except MessageTooLarge as exc:
            headers.insert(1, ("dlq.value-omitted", f"{len(value or b'')} bytes: over {exc.limit}".encode()))
            own = sum(1 for k, _ in headers if k.startswith(HEADER_PREFIX))  # the dlq.* ones, first
            try:  # the original's headers kept, after the dlq.* ones, as in a whole dead letter
                self.kafka.add(self.topic, b"", key=msg.key, headers=headers, timestamp_ms=now_ms)
                headers_omitted = 0
            except MessageTooLarge:  # they alone are over the limit: left out too (they are at dlq.source.*)
                headers_omitted = len(headers) - own
                headers = headers[:own] + [("dlq.headers-omitted", f"{headers_omitted} headers".encode())]
                self.kafka.add(self.topic, b"", key=msg.key, headers=headers, timestamp_ms=now_ms)
            log.error("dead letter over the dead-letter topic's limit: sent without the original bytes, "
                      "which stay on the source topic (`creditstream dlq redrive` reads them from there)",
                      reason=reason, source_topic=msg.topic, source_partition=msg.partition,
                      source_offset=msg.offset, size=exc.size, limit=exc.limit, headers_omitted=headers_omitted)
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.sources) < DEAD_LETTERS_NAMED:
            self.sources.append(f"{msg.topic}[{msg.partition}]@{msg.offset}")


def dead_letter_info(headers) -> dict[str, str]:
    """The ``dlq.*`` headers of a dead letter as a dict of strings (without the prefix)."""
    out = {}
    for k, v in headers or ():
        if k.startswith(HEADER_PREFIX):
            out[k[len(HEADER_PREFIX):]] = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return out
