"""A Kafka sink: buffer messages with ``add()``, send them all and wait for every ack in ``flush()``.

An agent adds everything one batch of input produces, then flushes once: the producer packs the
messages into per-partition batches, and the agent commits its input offsets only after every
delivery is acknowledged (at-least-once; the consumers downstream are idempotent).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

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
        send = self.producer.send
        futures = [
            await send(m.topic, m.value, key=m.key, headers=m.headers or None,
                       partition=m.partition, timestamp_ms=m.timestamp_ms)
            for m in self._buffer
        ]
        await asyncio.gather(*futures)
        n = len(self._buffer)
        self._buffer.clear()
        self.sent += n
        return n

    def clear(self) -> None:
        self._buffer.clear()
