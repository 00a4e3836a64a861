"""A rebalance's log line names the partitions a worker now reads (seen: only their counts)."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from structlog.testing import capture_logs

from streams.runner import _Revoked


def test_the_partitions_assigned_line_names_them_by_topic():
    listener = _Revoked(agent="ingest")
    assigned = {TopicPartition("creditstream.penalty", p) for p in (0, 1, 2, 5)} | {
        TopicPartition("creditstream.license", 3)}
    with capture_logs() as logs:
        asyncio.run(listener.on_partitions_assigned(assigned))
    [line] = [e for e in logs if e["event"] == "partitions assigned"]
    assert (line["partitions"], line["topics"]) == (5, 2)
    assert line["assigned"] == {"creditstream.license": "3", "creditstream.penalty": "0-2,5"}
