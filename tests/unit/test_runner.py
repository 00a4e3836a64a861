"""The batch runner's view of the log, when a rebalance moves partitions in the middle of a batch."""

import pytest
from aiokafka import TopicPartition

from creditstream.settings import Settings
from streams.runner import AgentRunner


class Consumer:
    """An aiokafka consumer holding some partitions: highwater() asserts on any other, as aiokafka's."""

    def __init__(self, held: dict[TopicPartition, int], stable: dict[TopicPartition, int] | None = None):
        self.held = held
        self.stable = stable or {}

    def assignment(self):
        return set(self.held)

    def highwater(self, tp):
        assert tp in self.held, "Partition is not assigned"
        return self.held[tp]

    def last_stable_offset(self, tp):
        assert tp in self.held, "Partition is not assigned"
        return self.stable.get(tp, -1)  # -1: read_uncommitted


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
    assert runner.health(stall_after_s=0.05) == {"state": "ok", "waiting": 0}
    task = asyncio.ensure_future(runner._process_with_retry(["record"]))
    await asyncio.sleep(0.15)
    health = runner.health(stall_after_s=0.05)
    assert health["state"] == "stalled" and "ConnectionError" in health["reason"] and "retrying" in health["reason"]
    await task  # Redis back: the batch completes
    assert runner.health(stall_after_s=0.05) == {"state": "ok", "waiting": 0}


def test_events_waiting_with_no_batch_done_is_stalled():
    import time

    runner = AgentRunner(Agent(), Settings())
    runner.lag = 0
    runner.done_at = time.monotonic() - 120
    assert runner.health(stall_after_s=60) == {"state": "ok", "waiting": 0}  # caught up: idle is fine
    runner.lag = 42
    health = runner.health(stall_after_s=60)
    assert health["state"] == "stalled" and health["reason"].startswith("42 event(s) waiting")
    assert health["waiting"] == 42
    runner.done_at = time.monotonic()
    assert runner.health(stall_after_s=60) == {"state": "ok", "waiting": 42}


def subject_agent(log_end: int):
    from agents.subject import SubjectAgent
    from streams.topics import Topics

    agent = SubjectAgent(topics=Topics("cs"), state=None, producer=object(), codec=None, rules=None, calendar=None)
    agent.highwater = lambda p: log_end
    return agent


def test_a_log_end_behind_the_recorded_position_is_fetched_again_with_a_wait_not_a_stop(monkeypatch):
    """After a Kafka leader failover the new leader may report a log end behind the old one's for a
    moment (KIP-207); five quick re-fetches counted as "not this log" and stopped the worker. It
    fetches again, waiting longer each time, and stops only when the position stays past the end for
    AHEAD_PATIENCE_S."""
    import pytest

    from agents import subject
    from streams.runner import PositionAhead, Rewind

    now = [1000.0]
    monkeypatch.setattr(subject.time, "monotonic", lambda: now[0])
    agent = subject_agent(log_end=40)
    delays = []
    for _ in range(subject.AHEAD_LIMIT * 3):  # many batches, all within the patience
        with pytest.raises(Rewind) as caught:
            agent._check_positions({0: 50, 1: 30}, {0: 35, 1: 30})
        assert caught.value.reason == "log-end-behind"
        assert {tp.partition: o for tp, o in caught.value.offsets.items()} == {0: 35, 1: 30}  # the batch again
        delays.append(caught.value.delay_s)
        now[0] += 1.0
    assert delays[0] == subject.AHEAD_RETRY_S[0] and delays[1] == 2 * delays[0]
    assert max(delays) == delays[-1] == subject.AHEAD_RETRY_S[1]
    now[0] += subject.AHEAD_PATIENCE_S
    with pytest.raises(PositionAhead, match=r"position 50 .* log ends at 40"):
        agent._check_positions({0: 50}, {0: 35})


def test_a_log_end_that_catches_up_resets_the_patience(monkeypatch):
    import pytest

    from agents import subject
    from streams.runner import PositionAhead, Rewind

    now = [0.0]
    monkeypatch.setattr(subject.time, "monotonic", lambda: now[0])
    agent = subject_agent(log_end=40)
    for _ in range(subject.AHEAD_LIMIT):
        with pytest.raises(Rewind):
            agent._check_positions({0: 50}, {0: 35})
    agent.highwater = lambda p: 60  # the new leader caught up: the batch is applied past the position
    assert agent._check_positions({0: 50}, {0: 35}) == {0: 50}
    agent.highwater = lambda p: 40
    now[0] += subject.AHEAD_PATIENCE_S + 1
    with pytest.raises(Rewind):  # a new episode: its patience starts now
        agent._check_positions({0: 50}, {0: 35})
    now[0] += subject.AHEAD_PATIENCE_S
    for _ in range(subject.AHEAD_LIMIT - 2):
        with pytest.raises(Rewind):
            agent._check_positions({0: 50}, {0: 35})
    with pytest.raises(PositionAhead):
        agent._check_positions({0: 50}, {0: 35})


async def test_a_partition_taken_away_while_the_lag_is_measured_leaves_the_agent_running():
    """The lag gauges walk the assignment and await each partition's position: a rebalance in between
    took partitions away, and aiokafka's position() raises IllegalStateError (a KafkaError) for them;
    that escaped the runner's loop and stopped the agent."""
    from aiokafka.errors import IllegalStateError

    a, b = TopicPartition("cs.subject-events", 0), TopicPartition("cs.subject-events", 1)

    class Moving(Consumer):
        async def position(self, tp):
            if tp == b:  # the rebalance took it away after the assignment was read
                raise IllegalStateError(f"Partition {tp} is not assigned")
            return 100

    runner = AgentRunner(Agent(), Settings())
    runner.consumer = Moving({a: 150, b: 90})
    runner.lag = 7
    await runner._update_lag()  # raised IllegalStateError before
    assert runner.lag == 7  # left as it was until the next update
    runner.consumer = Moving({a: 150})
    await runner._update_lag()
    assert runner.lag == 50


async def test_inputs_held_by_an_open_transaction_are_not_lag():
    """Read ``read_committed`` (Apache Kafka), a partition's records from the first one of an open
    transaction wait on its producer (up to the last stable offset): they are counted apart, so that a
    department's transaction left open does not make the agent look stalled on /health."""
    from creditstream import metrics

    a, b = TopicPartition("cs.penalty", 0), TopicPartition("cs.penalty", 1)
    taken = TopicPartition("cs.penalty", 2)

    class Positioned(Consumer):
        async def position(self, tp):
            if tp == taken:  # a rebalance took it between the assignment and its last stable offset
                del self.held[tp]
            return {a: 100, b: 40, taken: 0}[tp]

    def gauges():
        return (metrics.CONSUMER_LAG.labels("ingest", "cs.penalty")._value.get(),
                metrics.IN_OPEN_TRANSACTIONS.labels("ingest", "cs.penalty")._value.get())

    class Ingest:
        name = "ingest"

    runner = AgentRunner(Ingest(), Settings())
    # a: 150 written, stable to 120 (a transaction open from 120); b: uncommitted reading (-1)
    runner.consumer = Positioned({a: 150, b: 90}, stable={a: 120})
    await runner._update_lag()
    assert runner.lag == (120 - 100) + (90 - 40)
    assert gauges() == (70, 30)
    runner.consumer = Positioned({a: 150}, stable={a: 100})  # the agent reached the open transaction
    await runner._update_lag()
    assert runner.lag == 0 and gauges() == (0, 50)
    assert runner.health(60.0)["state"] == "ok"
    runner.consumer = Positioned({a: 150, taken: 10}, stable={a: 150, taken: 5})
    await runner._update_lag()  # no AssertionError from the partition taken away
    assert runner.lag == 50 + 10 and gauges() == (60, 0)


def test_a_subject_batch_past_the_recorded_position_is_not_a_loss_behind_it_is():
    """Behind means behind what was written (this worker's last write, or the group's commit), not
    behind the batch's first offset: records deleted from the log (retention, DeleteRecords) or a
    transaction's marker leave offsets no consumer sees, and re-reading from the recorded position
    would get the same batch again, for ever."""
    import pytest

    from streams.runner import Rewind

    agent = subject_agent(log_end=100)
    agent.written.written({0: 40, 1: 40})
    # partition 0: Redis at 40 as written, the batch starts at 45 (40..44 deleted unread): applied
    assert agent._check_positions({0: 40}, {0: 45}, {0: 40}) == {}
    # partition 1: Redis at 30, this worker wrote 40: Redis lost 30..39, re-fed from 30
    with pytest.raises(Rewind) as caught:
        agent._check_positions({0: 40, 1: 30}, {0: 45, 1: 45}, {0: 40, 1: 40})
    assert {tp.partition: o for tp, o in caught.value.offsets.items()} == {0: 45, 1: 30}
    assert caught.value.reason == "redis-behind"
    assert agent.written.wrote[1] == 30  # from there on, Redis is expected where it is now
    # a position this worker wrote, gone altogether: the partition again from its start
    agent.written.written({2: 40})
    with pytest.raises(Rewind) as caught:
        agent._check_positions({2: None}, {2: 40}, {2: 40})
    assert {tp.partition: o for tp, o in caught.value.offsets.items()} == {2: 0}
    # one never written (and not by this worker): the consumer's offset is the start
    assert agent._check_positions({3: None}, {3: 7}, {3: 0}) == {}


async def test_a_batch_in_hand_while_its_store_fails_is_lag(monkeypatch):
    """Seen: with Redis stopped, the ingest agent retried one batch for minutes while 6,000 inputs
    waited, and creditstream_consumer_lag_messages said 0 (the consumer's position is past the batch
    in hand, and no fetch came to move the log end): the stall alert, which needs lag > 0, was quiet.
    Each retry counts the batch in hand."""
    import asyncio
    from types import SimpleNamespace

    from creditstream import metrics
    from streams import runner as runner_module

    class Positioned(Consumer):
        async def position(self, tp):
            return self.held[tp]  # at the log end: everything fetched

    monkeypatch.setattr(runner_module, "BACKOFF_START_S", 0.01)
    monkeypatch.setattr(runner_module, "BACKOFF_MAX_S", 0.01)
    runner = AgentRunner(FailingAgent(failures=5), Settings())
    runner.consumer = Positioned({TopicPartition("cs.subject-events", 0): 500})
    in_hand = [SimpleNamespace(topic="cs.subject-events", partition=0, offset=n) for n in range(400, 500)]
    task = asyncio.ensure_future(runner._process_with_retry(in_hand))
    await asyncio.sleep(0.03)
    assert runner.lag == 100
    assert metrics.CONSUMER_LAG.labels("subject", "cs.subject-events")._value.get() == 100
    await task


def test_a_state_derived_by_a_newer_version_stops_the_worker_not_the_input():
    """Seen in a rollback: the earlier version's worker derived a state the newer one wrote again
    under its own rules, and withdrew what the newer one had announced, without a word. A state whose
    derivation is newer than this code's stops the worker (no dead letter: the input is fine)."""
    from agents.subject import StateFromNewerVersion
    from domain.facts import BASIS_VERSION
    from tests.builders import ORG, record, record_event

    agent = subject_agent(0)
    event = record_event(record("penalty", "罚〔2026〕9号", "2026-03-02"), "2026-03-03")
    states = {ORG: {"id": ORG, "id_kind": "uscc", "records": {}, "basis": {"v": BASIS_VERSION + 1}}}
    with pytest.raises(StateFromNewerVersion, match="derived by a newer creditstream"):
        agent._step(object(), event, states)
    assert str(BASIS_VERSION) in str(StateFromNewerVersion(BASIS_VERSION + 1)) and ORG not in str(
        StateFromNewerVersion(BASIS_VERSION + 1))


async def test_a_batch_in_hand_of_a_topic_whose_high_watermark_is_not_known_leaves_the_agent_running():
    """CI saw a worker die during a Redis outage on Apache Kafka (KeyError in the lag gauges): the batch
    in hand counts in the lag of its topic, and a topic none of whose partitions had a high watermark
    yet (no fetch answered since the assignment) had no entry among those held by open transactions."""
    from types import SimpleNamespace

    tp = TopicPartition("cs.penalty", 0)

    class Unfetched(Consumer):
        def highwater(self, tp):
            return None  # aiokafka: no fetch response for the partition yet

    runner = AgentRunner(SimpleNamespace(name="ingest"), Settings())
    runner.consumer = Unfetched({tp: 0})
    await runner._update_lag(in_hand=[SimpleNamespace(topic="cs.penalty")] * 3)
    assert runner.lag == 3
