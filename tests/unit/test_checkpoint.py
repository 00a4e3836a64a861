"""sinks/checkpoint.py: the steps of one batch's completion."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError

from sinks.checkpoint import Checkpoint


class ReadAgain(Exception):
    """Stands in for streams.runner.Rewind: a step beside the flush says the batch must be read again."""


async def test_a_step_beside_the_flush_that_failed_is_raised_before_the_flushs_error():
    """The ingest agent's positions step raises Rewind (Redis lost the positions' writes) while the
    produce fails: the Rewind is what the runner must see (it re-reads from the recorded position), not
    the produce error (the batch retried over the floor the rewind lowered: the lost range never read)."""
    checkpoint = Checkpoint(None, "dead-letters", "ingest")
    checkpoint.kafka.add("subject-events", b"v", key=b"k")

    async def refused():
        raise KafkaConnectionError("broker down")

    async def behind():
        raise ReadAgain("positions behind")

    checkpoint.kafka.flush = refused
    checkpoint.with_flush(behind)
    with pytest.raises(ReadAgain):
        await checkpoint.complete()


async def test_the_flushs_error_is_raised_when_the_steps_succeed():
    checkpoint = Checkpoint(None, "dead-letters", "ingest")

    async def refused():
        raise KafkaConnectionError("broker down")

    async def fine():
        return None

    checkpoint.kafka.flush = refused
    checkpoint.with_flush(fine)
    with pytest.raises(KafkaConnectionError):
        await checkpoint.complete()
