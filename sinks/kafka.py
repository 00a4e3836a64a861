"""A Kafka sink: buffer messages with ``add()``, send them all and wait for every ack in ``flush()``.

An agent adds everything one batch of input produces, then flushes once: the messages are packed
into one record batch per partition (``create_batch`` / ``send_batch``: no per-message call into
the producer), and the agent commits its input offsets only after every delivery is acknowledged
(at-least-once; the consumers downstream are idempotent).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from creditstream import metrics

Headers = list[tuple[str, bytes]]


@dataclass(slots=True)
class OutMessage:
    topic: str
    value: bytes
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

    def add(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers | None = None,
            partition: int | None = None, timestamp_ms: int | None = None) -> None:
        self._buffer.append(OutMessage(topic, value, key, headers or [], partition, timestamp_ms))

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
        futures = []
        per_topic: dict[str, int] = {}
        for (topic, partition), messages in (await self._by_partition()).items():
            per_topic[topic] = per_topic.get(topic, 0) + len(messages)
            batch = self.producer.create_batch()
            for m in messages:
                # milliseconds (an int), whatever BatchBuilder.append's docstring says about seconds
                ts = m.timestamp_ms
                if batch.append(timestamp=ts, key=m.key, value=m.value, headers=m.headers) is None:
                    futures.append(await self.producer.send_batch(batch, topic, partition=partition))
                    batch = self.producer.create_batch()
                    batch.append(timestamp=ts, key=m.key, value=m.value, headers=m.headers)
            futures.append(await self.producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
        # counted once acknowledged: a failed flush (kept for a retry) counts nothing
        for topic, count in per_topic.items():
            metrics.EVENTS_OUT.labels(topic).inc(count)
        n = len(self._buffer)
        self._buffer.clear()
        self.sent += n
        return n

    async def _by_partition(self) -> dict[tuple[str, int], list[OutMessage]]:
        """The buffer grouped by (topic, partition), order kept. Keyed messages go where the
        producer's partitioner (Kafka's murmur2, as every Kafka client) puts them."""
        groups: dict[tuple[str, int], list[OutMessage]] = {}
        partitions: dict[str, list[int]] = {}
        partitioner = self.producer._partitioner  # noqa: SLF001 - the producer's own, for equal placement
        for m in self._buffer:
            p = m.partition
            if p is None:
                parts = partitions.get(m.topic)
                if parts is None:
                    parts = partitions[m.topic] = sorted(await self.producer.partitions_for(m.topic))
                p = partitioner(m.key, parts, parts)
            groups.setdefault((m.topic, p), []).append(m)
        return groups

    def clear(self) -> None:
        self._buffer.clear()
