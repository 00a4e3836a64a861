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


class FailingAgent:
    """An agent whose store is down: every attempt fails like a Redis outage."""

    name = "subject"

    def __init__(self, failures: int):
        self.failures = failures

    def checkpoint(self):
        class Done:
            async def complete(self):
                return None

        return Done()

    async def process(self, records, checkpoint):
        if self.failures:
            self.failures -= 1
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


async def test_a_batch_retrying_past_the_stall_limit_is_reported_stalled_with_its_cause(monkeypatch):
    import asyncio

    from streams import runner as runner_module

    monkeypatch.setattr(runner_module, "BACKOFF_START_S", 0.01)
    monkeypatch.setattr(runner_module, "BACKOFF_MAX_S", 0.01)
    runner = AgentRunner(FailingAgent(failures=30), Settings())
    assert runner.health(stall_after_s=0.05) == {"state": "ok"}
    task = asyncio.ensure_future(runner._process_with_retry(["record"]))
    await asyncio.sleep(0.15)
    health = runner.health(stall_after_s=0.05)
    assert health["state"] == "stalled" and "ConnectionError" in health["reason"] and "retrying" in health["reason"]
    await task  # Redis back: the batch completes
    assert runner.health(stall_after_s=0.05) == {"state": "ok"}


def test_events_waiting_with_no_batch_done_is_stalled():
    import time

    runner = AgentRunner(Agent(), Settings())
    runner.lag = 0
    runner.done_at = time.monotonic() - 120
    assert runner.health(stall_after_s=60) == {"state": "ok"}  # caught up: idle is fine
    runner.lag = 42
    health = runner.health(stall_after_s=60)
    assert health["state"] == "stalled" and health["reason"].startswith("42 event(s) waiting")
    runner.done_at = time.monotonic()
    assert runner.health(stall_after_s=60) == {"state": "ok"}
