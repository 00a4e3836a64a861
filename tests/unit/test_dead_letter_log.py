"""A batch's dead letters are named in the worker's log (seen: 318 dead letters at INFO gave no line;
only /metrics and `dlq list` told)."""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord
from structlog.testing import capture_logs

from sinks.checkpoint import Checkpoint
from sinks.deadletter import DEAD_LETTERS_NAMED


def _message(offset: int) -> ConsumerRecord:
    return ConsumerRecord(topic="creditstream.penalty", partition=2, offset=offset, timestamp=0, timestamp_type=0,
                          key=None, value=b"\x00bad", checksum=None, serialized_key_size=-1,
                          serialized_value_size=4, headers=[])


def test_a_batchs_dead_letters_are_named_in_one_log_line():
    checkpoint = Checkpoint(None, "creditstream.dead-letters", "ingest")  # (no producer: collected)
    for offset in range(7):
        checkpoint.reject(_message(offset), "bad-magic" if offset % 2 else "unknown-enum", "detail")
    with capture_logs() as logs:
        assert asyncio.run(checkpoint.complete()) == 7
    [line] = [e for e in logs if e["event"] == "inputs dead-lettered"]
    assert line["log_level"] == "info" and line["agent"] == "ingest"
    assert line["reasons"] == {"bad-magic": 3, "unknown-enum": 4}
    assert line["sources"] == [f"creditstream.penalty[2]@{o}" for o in range(DEAD_LETTERS_NAMED)]
    assert line["more"] == 7 - DEAD_LETTERS_NAMED


def test_a_batch_without_dead_letters_logs_nothing():
    checkpoint = Checkpoint(None, "creditstream.dead-letters", "ingest")
    with capture_logs() as logs:
        asyncio.run(checkpoint.complete())
    assert not [e for e in logs if e["event"] == "inputs dead-lettered"]
