"""A Kafka sink: buffer messages with ``add()``, send them all and wait for every ack in ``flush()``.

An agent adds everything one batch of input produces, then flushes once: the messages are packed
into one record batch per partition (``create_batch`` / ``send_batch``: no per-message call into
the producer), and the agent commits its input offsets only after every delivery is acknowledged
(at-least-once; the consumers downstream are idempotent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from creditstream import metrics
from streams.kafka import PRODUCER_FATAL
from streams.murmur2 import murmur2

log = structlog.get_logger("creditstream.sinks.kafka")

Headers = list[tuple[str, bytes]]

# What a one-record batch costs beyond its key, value and headers (v2 format: the 61-byte batch
# header, the record's attributes, varint lengths and deltas), rounded up; and per header.
BATCH_OVERHEAD = 61 + 40
HEADER_OVERHEAD = 10

TOO_LARGE_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError)


def message_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """An upper bound of the bytes the broker counts against ``max.message.bytes`` for this message
    sent alone (uncompressed)."""
    size = BATCH_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
    for k, v in headers:
        size += HEADER_OVERHEAD + len(k.encode()) + (len(v) if v else 0)
    return size


class MessageTooLarge(ValueError):
    """A message over its topic's limit: an input error (dead-letter the input), never retried."""

    def __init__(self, topic: str, size: int, limit: int):
        super().__init__(f"{size} bytes for {topic}, over its limit of {limit} bytes (max.message.bytes)")
        self.topic = topic
        self.size = size
        self.limit = limit


@dataclass(slots=True)
class OutMessage:
    topic: str
    value: bytes | None  # None: a tombstone (a dead-lettered one kept as it came)
    key: bytes | None = None
    headers: Headers = field(default_factory=list)
    partition: int | None = None
    timestamp_ms: int | None = None


class KafkaSink:
    """``producer=None`` makes a collecting sink: ``flush()`` moves the messages to ``collected``
    instead of sending them (a replay rebuilds state without re-emitting what the log already caused)."""

    def __init__(self, producer: AIOKafkaProducer | None):
        self.producer = producer
        self._buffer: list[OutMessage] = []
        self.sent = 0
        self.collected: list[OutMessage] = []
        # the largest message each topic takes (streams.topics.MessageLimits), from the producer
        self.limits = getattr(producer, "limits", None)

    def add(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers | None = None,
            partition: int | None = None, timestamp_ms: int | None = None) -> None:
        """Buffer one message. Raises :class:`MessageTooLarge` (and buffers nothing) when it is over
        its topic's limit: the broker would refuse it on every try. ``value`` None: a tombstone."""
        headers = headers or []
        if self.limits is not None:
            limit = self.limits.of(topic)
            if (len(value) if value is not None else 0) + BATCH_OVERHEAD > limit - 4096 or headers:  # cheap test first
                size = message_size(key, value, headers)
                if size > limit:
                    raise MessageTooLarge(topic, size, limit)
        self._buffer.append(OutMessage(topic, value, key, headers, partition, timestamp_ms))

    def __len__(self) -> int:
        return len(self._buffer)

    def pending(self) -> list[OutMessage]:
        return list(self._buffer)

    async def flush(self) -> int:
        """Send everything buffered; return when the broker has acknowledged all of it.

        On error the buffer is kept, so the caller may retry the flush (duplicates are harmless:
        every message carries a deterministic id that consumers dedupe on).
        """
        if not self._buffer:
            return 0
        if self.producer is None:
            self.collected.extend(self._buffer)
            n = len(self._buffer)
            self._buffer.clear()
            return n
        generation = getattr(self.producer, "generation", None)
        try:
            results, sent, per_topic = await self._send_all()
        except PRODUCER_FATAL as exc:  # the producer died before it took the batch
            results, sent, per_topic = [exc], [], {}
        errors = [r for r in results if isinstance(r, BaseException)]
        fatal = next((e for e in errors if isinstance(e, PRODUCER_FATAL)), None)
        if fatal is None and errors and generation is not None and self.producer.broken:
            fatal = errors[0]
        if fatal is not None and generation is not None:
            # the producer cannot recover by itself: a new one, and the caller retries the batch
            await self.producer.renew(generation, fatal)
        if errors:
            for (topic, largest), result in zip(sent, results):
                if isinstance(result, TOO_LARGE_ERRORS) and self.limits is not None:
                    # the broker's limit is lower than configured: from now on, a message this
                    # large is an input error (the retried batch dead-letters it), not a retry
                    limit = self.limits.lower(topic, largest - 1)
                    log.error("broker refused a message as too large: its max.message.bytes is lower than "
                              "max_message_bytes; messages over the lowered limit are now dead-lettered",
                              topic=topic, largest=largest, limit=limit, error=type(result).__name__)
            raise errors[0]
        # counted once acknowledged: a failed flush (kept for a retry) counts nothing
        for topic, count in per_topic.items():
            metrics.EVENTS_OUT.labels(topic).inc(count)
        n = len(self._buffer)
        self._buffer.clear()
        self.sent += n
        return n

    async def _send_all(self) -> tuple[list, list[tuple[str, int]], dict[str, int]]:
        """Send the buffer, one record batch per partition; (each batch's result or exception,
        (topic, largest message) of each batch, messages per topic)."""
        futures = []
        sent: list[tuple[str, int]] = []  # (topic, largest message) of each batch, as ``futures``
        per_topic: dict[str, int] = {}
        for (topic, partition), messages in (await self._by_partition()).items():
            per_topic[topic] = per_topic.get(topic, 0) + len(messages)
            batch = self.producer.create_batch()
            largest = 0
            for m in messages:
                # milliseconds (an int), whatever BatchBuilder.append's docstring says about seconds
                ts = m.timestamp_ms
                if batch.append(timestamp=ts, key=m.key, value=m.value, headers=m.headers) is None:
                    futures.append(await self.producer.send_batch(batch, topic, partition=partition))
                    sent.append((topic, largest))
                    batch = self.producer.create_batch()
                    largest = 0
                    batch.append(timestamp=ts, key=m.key, value=m.value, headers=m.headers)
                largest = max(largest, message_size(m.key, m.value, m.headers))
            futures.append(await self.producer.send_batch(batch, topic, partition=partition))
            sent.append((topic, largest))
        # shielded: a cancellation of this wait (Ctrl-C on a command: asyncio.run's handler cancels at
        # once, between any two lines of the client) never cancels the client's own futures, which it
        # may be resolving at that moment (InvalidStateError in its sender: ops/produce.py)
        results = await asyncio.shield(asyncio.gather(*futures, return_exceptions=True))
        return results, sent, per_topic

    async def _by_partition(self) -> dict[tuple[str, int], list[OutMessage]]:
        """The buffer grouped by (topic, partition), order kept. Keyed messages go where the
        producer's partitioner (Kafka's murmur2, as every Kafka client) puts them, over the partition
        count recorded for the topic where there is one (streams/placement.py), else over the
        partitions the producer's metadata has."""
        groups: dict[tuple[str, int], list[OutMessage]] = {}
        partitions: dict[str, Sequence[int]] = {}
        partitioner = self.producer._partitioner  # noqa: SLF001 - the producer's own, for equal placement
        default = isinstance(partitioner, DefaultPartitioner)
        placement = getattr(self.producer, "placement", None)
        placement = placement if isinstance(placement, dict) else {}
        for m in self._buffer:
            p = m.partition
            if p is None:
                parts = partitions.get(m.topic)
                if parts is None:
                    placed = placement.get(m.topic)
                    parts = partitions[m.topic] = (range(placed) if placed
                                                   else sorted(await self.producer.partitions_for(m.topic)))
                if default and m.key is not None:
                    p = home_partition(m.key, parts)
                else:
                    p = partitioner(m.key, parts, parts)
            groups.setdefault((m.topic, p), []).append(m)
        return groups

    def clear(self) -> None:
        self._buffer.clear()


def home_partition(key: bytes, partitions: Sequence[int]) -> int:
    """The partition a keyed message goes to: what aiokafka's ``DefaultPartitioner`` (and the Java
    client) gives, of ``partitions`` in ascending order. Where the workers put every subject event,
    and what a replay checks them against (ops/replay.py)."""
    return partitions[key_hash(key) % len(partitions)]


def key_hash(key: bytes) -> int:
    """Kafka's murmur2 of a message key, made positive, as the Java client and aiokafka's
    ``DefaultPartitioner`` place keyed messages (partition = hash % partitions): streams/murmur2.py,
    compiled with the rules core (~0.1 us a key; aiokafka's pure-Python one took ~4 us, 0.7% of a
    worker's time with the last 65,536 keys' hashes remembered, and most keys new at a million
    subjects)."""
    return murmur2(key) & 0x7FFFFFFF
