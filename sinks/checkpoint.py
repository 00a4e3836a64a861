"""One batch's effects, made durable in one place before the runner commits its offsets.

An agent handles a batch by adding what it causes to a :class:`Checkpoint`: messages to produce
(``kafka``), rejected inputs (``reject``: dead letters, counted by reason), steps that may only run
once everything is acknowledged (``after_flush``). The runner (streams/runner.py) then completes it,
in this order (an agent with its own durable state, the subject agent, has written it in its
fenced transaction before returning, its outbox included):

1. produce every message and wait for every acknowledgement (``KafkaSink.flush``), and meanwhile
   run the steps that only write beside it (``with_flush``: the ingest agent's positions when its
   batch has nothing else for Redis);
2. run the after-flush steps in the order added (the subject agent empties its outbox, the ingest
   agent drops the parked records it released);
3. count: dead letters by reason (and name them in one log line), and the counters the steps above
   record;

and only then commits the batch's offsets. A failure in 1 or 2 raises: the runner retries the whole
batch with a new checkpoint (the messages carry deterministic ids: a duplicate is harmless), and
nothing of a failed attempt is counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aiokafka import ConsumerRecord

from creditstream import metrics
from sinks.deadletter import DeadLetterSink
from sinks.kafka import KafkaSink

log = structlog.get_logger(__name__)

AfterFlush = Callable[[], Awaitable[object] | None]


class Checkpoint:
    def __init__(self, producer, dead_letter_topic: str, agent: str):
        self.kafka = KafkaSink(producer)
        self.dead = DeadLetterSink(self.kafka, dead_letter_topic, agent)
        self._after: list[AfterFlush] = []
        self._beside: list[Callable[[], Awaitable[object]]] = []

    def reject(self, msg: ConsumerRecord, reason: str, detail: str = "") -> None:
        """A bad input: kept whole on the dead-letter topic with its reason."""
        self.dead.add(msg, reason, detail)

    def after_flush(self, step: AfterFlush) -> None:
        """Run ``step`` (a function, or one returning an awaitable) once every message is acknowledged."""
        self._after.append(step)

    def with_flush(self, step: Callable[[], Awaitable[object]]) -> None:
        """Run ``step`` while the messages are produced (step 1): it must succeed too before the
        runner commits, and a failure of either raises."""
        self._beside.append(step)

    @property
    def collected(self):
        """With no producer (a replay): the messages the batch would have produced."""
        return self.kafka.collected

    async def complete(self) -> int:
        """Steps 1-3; returns how many messages were produced."""
        if self._beside:
            done = await asyncio.gather(self.kafka.flush(), *(step() for step in self._beside), return_exceptions=True)
            # a step's failure first: one that says the batch must be read again (streams/runner.py
            # Rewind: Redis lost the positions' writes) is not hidden behind a produce error; the batch
            # retried instead was applied over the floor the rewind had lowered, and what Redis lost
            # before it was never read again (review)
            failed = [r for r in (*done[1:], done[0]) if isinstance(r, BaseException)]
            if failed:
                raise failed[0]
            n = done[0]
        else:
            n = await self.kafka.flush()
        for step in self._after:
            result = step()
            if result is not None:
                await result
        for reason, count in self.dead.counts.items():
            metrics.DEAD_LETTERS.labels(reason).inc(count)
        if self.dead.counts:  # (an operator sees them in the log too, not only in /metrics and `dlq list`)
            log.info("inputs dead-lettered", agent=self.dead.agent, reasons=dict(sorted(self.dead.counts.items())),
                     sources=self.dead.sources, more=sum(self.dead.counts.values()) - len(self.dead.sources))
        return n
