"""Broker faults on a real cluster: a 3-node Apache Kafka (replication 3, min.insync.replicas 2),
one node killed with SIGKILL mid-stream and restarted, again and again: the leader of the
subject-event partitions' first partition, and once the node the cluster names as controller.
The state equals the pure oracle, nothing is lost, no duplicate list change after dedupe by id.

Runs with ``make reliability BROKER=kafka`` (``--broker kafka --broker-nodes 3``)."""

from __future__ import annotations

import asyncio
import os

import pytest

from streams.synthetic import EventGenerator
from tests.reliability import harness
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.kafka_only]

BROKER_KILLS = int(os.environ.get("RELIABILITY_BROKER_KILLS", "5"))


async def leader_of(settings, topic: str, partition: int) -> int | None:
    from streams import kafka

    client = kafka.admin(settings)
    await client.start()
    try:
        [desc] = await client.describe_topics([topic])
        for p in desc["partitions"]:
            if p["partition"] == partition:
                return int(p["leader"])
        return None
    finally:
        await client.close()


async def controller_of(settings) -> int | None:
    from streams import kafka

    client = kafka.admin(settings)
    await client.start()
    try:
        return int((await client.describe_cluster())["controller_id"])
    finally:
        await client.close()


async def test_broker_nodes_killed_mid_stream(settings, department, redis, stack, tmp_path):
    from ops.kafka_cluster import KafkaCluster

    if settings.replication_factor < 3:
        pytest.skip("needs a 3-node cluster: --broker kafka --broker-nodes 3 (make reliability BROKER=kafka)")
    cluster = KafkaCluster(stack.run_dir)
    s = settings.replace(max_batch=300)
    gen = EventGenerator(seed=31, subjects=max(100, harness.EVENTS // 20), legacy_rate=0.0)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    kills = restarts = 0
    chunk = max(300, harness.EVENTS // (2 * BROKER_KILLS))
    try:
        await harness.produce(department, gen, 50)  # the worker up and consuming before the first fault
        await harness.quiescent(s, redis, timeout=180)
        for k in range(BROKER_KILLS):
            await harness.produce(department, gen, chunk)
            await asyncio.sleep(0.5)  # mid-stream
            victim = await controller_of(s) if k == 1 else await leader_of(s, department.topics.subject_events, 0)
            victim = 0 if victim is None else victim
            cluster.kill_node(victim)
            await harness.produce(department, gen, chunk)  # inputs keep coming while a node is down
            await asyncio.sleep(2.0)
            cluster.start_node(victim, timeout=120)
            kills += 1
            if not worker.alive():  # as its supervisor (compose: restart unless-stopped) would
                restarts += 1
                worker.start()
        await harness.quiescent(s, redis, timeout=300)
        diverged = await harness.divergence(s, redis)
        lost = await harness.lost_inputs(s, redis)
        log = worker.log_tail(10 ** 9)
        harness.record(broker_kills=kills, worker_restarts=restarts, events=50 + 2 * chunk * kills, lost=len(lost), diverged=len(diverged),
                       pii_leaks=len(harness.pii_leaks(log)), crashes=harness.crashes("broker-kills", log))
        assert worker.alive() or worker.start(), worker.log_tail()
        assert not diverged, diverged[:10]
        assert not lost, lost[:10]
    finally:
        worker.stop()
