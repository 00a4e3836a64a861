"""The batch runner's view of the log, when a rebalance moves partitions in the middle of a batch."""

from aiokafka import TopicPartition

from creditstream.settings import Settings
from streams.runner import AgentRunner


class Consumer:
    """An aiokafka consumer holding some partitions: highwater() asserts on any other, as aiokafka's."""

    def __init__(self, held: dict[TopicPartition, int]):
        self.held = held

    def assignment(self):
        return set(self.held)

    def highwater(self, tp):
        assert tp in self.held, "Partition is not assigned"
        return self.held[tp]


class Agent:
    name = "subject"


def test_the_log_end_of_a_partition_taken_away_mid_batch_is_unknown_not_a_crash():
    """Seen on Apache Kafka: a paused worker's partitions were reassigned while it checked its batch's
    positions; consumer.highwater() raised AssertionError and the worker crashed."""
    runner = AgentRunner(Agent(), Settings())
    kept, taken = TopicPartition("cs.subject-events", 0), TopicPartition("cs.subject-events", 2)
    runner.consumer = Consumer({kept: 120})
    assert runner._highwater(kept) == 120
    assert runner._highwater(taken) is None
