"""The metadata an agent's commits carry (streams/runner.py ``_commit``) and how it is read back
(streams/kafka.py ``committed``): the integration tests (test_index_tail_loss.py, test_input_positions.py)
check what it does on both brokers; these check the pieces without one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalOperation
from aiokafka.structs import OffsetAndMetadata

from agents.input_positions import commit_marker
from sinks.keys import Keys
from streams import kafka
from streams.runner import AgentRunner

TP = TopicPartition("cs.penalty", 0)


class _Consumer:
    def __init__(self):
        self.commits: list[dict] = []

    async def commit(self, offsets):
        self.commits.append(offsets)


def _runner(agent) -> AgentRunner:
    runner = AgentRunner.__new__(AgentRunner)  # only what _commit reads
    runner.agent, runner.consumer = agent, _Consumer()
    runner._stopping = asyncio.Event()  # noqa: SLF001
    return runner


async def test_an_agent_with_a_marker_commits_it_as_every_partitions_metadata():
    marker = commit_marker(Keys("cs"), "ingest")
    runner = _runner(SimpleNamespace(name="ingest", commit_marker=lambda: marker))
    await runner._commit({TP: 10, TopicPartition("cs.penalty", 1): 4})  # noqa: SLF001
    assert runner.consumer.commits == [{TP: OffsetAndMetadata(10, marker),
                                        TopicPartition("cs.penalty", 1): OffsetAndMetadata(4, marker)}]
    assert marker == "creditstream positions in redis: cs:positions:ingest"


async def test_an_agent_without_one_commits_bare_offsets():
    runner = _runner(SimpleNamespace(name="timer"))
    await runner._commit({TP: 10})  # noqa: SLF001
    assert runner.consumer.commits == [{TP: 10}]


def test_the_subject_agents_marker_names_its_generations_positions():
    keys = Keys("cs", "g7")
    assert commit_marker(keys, "subject") == "creditstream positions in redis: " + keys.position(3)[:-1] + "*"


async def test_commits_are_read_back_only_with_a_consumer_of_the_group():
    c = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")  # not started, no group
    with pytest.raises(IllegalOperation):
        await kafka.committed(c, TP)
