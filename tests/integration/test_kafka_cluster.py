"""The embedded Apache Kafka cluster (ops/kafka_cluster.py): a real KRaft broker started and
stopped by the project, driven with aiokafka.

Needs Java 17+ and, the first time only, Maven (the jars are then cached outside the work tree:
``$CREDITSTREAM_CACHE`` or ``~/.cache/creditstream``). Select with ``-m kafka``; the 3-node test
is also ``slow``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path

import pytest

from ops.kafka_cluster import KafkaCluster, cache_dir, probe_kafka


def _skip_reason() -> str | None:
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        return "the embedded Kafka needs Java 17+: no 'java' on PATH and no $JAVA_HOME"
    if not (cache_dir() / "lib" / ".resolved").is_file() and not shutil.which("mvn"):
        return f"the embedded Kafka's jars are not cached in {cache_dir()} and there is no 'mvn' to resolve them"
    return None


with warnings.catch_warnings():
    # 'kafka' may not be registered in pyproject's markers: no PytestUnknownMarkWarning for it
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    _kafka_mark = pytest.mark.kafka

pytestmark = [
    pytest.mark.integration,
    _kafka_mark,
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
]


def _gone(pid: int, cmd: list[str]) -> bool:
    """No process with this PID, or one that is not our java process any more."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    if stat[stat.rfind(")") + 2:].split()[0] in ("Z", "X"):
        return True
    return [p.decode() for p in raw.split(b"\0")[:-1]] != cmd


async def _consume_all(bootstrap: str, topic: str, expected: int, *, group: str | None = None,
                       timeout: float = 60.0) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=False, session_timeout_ms=10000, heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(values) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                values.extend(r.value for r in records)
        if group:
            await consumer.commit()
        return values
    finally:
        await consumer.stop()


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """ListOffsets (latest) per partition, asked with AIOKafkaConsumer.end_offsets."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    # subscribed (no group): start() fetches the topic's metadata
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        assert parts, f"no partitions for {topic}"
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


def _producer(bootstrap: str, *, request_timeout_ms: int = 30000):
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                            request_timeout_ms=request_timeout_ms)


async def test_single_node_produce_consume_and_stop(tmp_path):
    cluster = KafkaCluster(tmp_path)
    info = await asyncio.to_thread(cluster.up, 1)
    nodes = [(n["pid"], list(n["cmd"])) for n in cluster._read()["nodes"]]  # noqa: SLF001
    try:
        assert cluster.alive()
        assert info["bootstrap"].startswith("127.0.0.1:")
        assert len(info["nodes"]) == 1 and info["version"]
        assert (tmp_path / "kafka" / "cluster.json").is_file()
        status = cluster.status()
        assert status["running"] and status["nodes"][0]["brokers"] == [0]

        bootstrap = info["bootstrap"]
        topic = f"cs-kafka-{uuid.uuid4().hex[:8]}"  # created on first use (auto.create.topics.enable)
        producer = _producer(bootstrap)
        await producer.start()
        try:
            futures = [await producer.send(topic, f"m{i}".encode(), key=f"k{i % 10}".encode())
                       for i in range(100)]
            metas = await asyncio.gather(*futures)
        finally:
            await producer.stop()
        assert len({m.partition for m in metas}) > 1  # num.partitions=4, ten keys

        values = await _consume_all(bootstrap, topic, 100, group=f"g-{topic}")
        assert sorted(values) == sorted(f"m{i}".encode() for i in range(100))

        ends = await _end_offsets(bootstrap, topic)
        assert len(ends) == 4
        assert sum(ends.values()) == 100
        # per partition: the last offset the producer was told, plus one
        for p, end in ends.items():
            offsets = [m.offset for m in metas if m.partition == p]
            assert end == (max(offsets) + 1 if offsets else 0)

        # up() on a running cluster returns it as it is
        assert (await asyncio.to_thread(cluster.up, 1))["bootstrap"] == bootstrap
    finally:
        stopped = await asyncio.to_thread(cluster.down)
    assert stopped
    assert all(_gone(pid, cmd) for pid, cmd in nodes)
    assert not cluster.alive()
    assert not (tmp_path / "kafka" / "cluster.json").exists()
    assert probe_kafka(int(info["bootstrap"].rsplit(":", 1)[1]), 0.5) is None
    assert not await asyncio.to_thread(cluster.down)  # nothing left to stop


@pytest.mark.slow
async def test_three_nodes_acks_all_while_one_node_is_paused(tmp_path):
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    cluster = KafkaCluster(tmp_path)
    info = await asyncio.to_thread(cluster.up, 3)
    nodes = [(n["pid"], list(n["cmd"])) for n in cluster._read()["nodes"]]  # noqa: SLF001
    bootstrap = info["bootstrap"]
    topic = f"cs-kafka3-{uuid.uuid4().hex[:8]}"
    try:
        assert [n["id"] for n in info["nodes"]] == [0, 1, 2]
        assert len(bootstrap.split(",")) == 3

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
        await admin.start()
        try:
            cluster_md = await admin.describe_cluster()
            assert sorted(b["node_id"] for b in cluster_md["brokers"]) == [0, 1, 2]
            created = await admin.create_topics([NewTopic(
                topic, num_partitions=3, replication_factor=3,
                topic_configs={"min.insync.replicas": "2"})])
            assert [e[1] for e in created.topic_errors] == [0], created
            # the brokers learn of the new topic from the metadata log a moment later
            for _ in range(100):
                described = await admin.describe_topics([topic])
                parts = described[0]["partitions"]
                if parts:
                    break
                await asyncio.sleep(0.1)
            assert len(parts) == 3 and all(len(p["replicas"]) == 3 for p in parts), described
            assert all(len(p["isr"]) == 3 for p in parts), described
        finally:
            await admin.close()

        # a request in flight to the paused node is given up after request_timeout_ms, then
        # retried (idempotent: no duplicates) on the new leader; 15 s > replica.lag.time.max.ms
        # (10 s), the longest an acks=all request waits for the ISR to drop the paused node
        producer = _producer(bootstrap, request_timeout_ms=15000)
        await producer.start()
        try:
            for i in range(30):
                await producer.send_and_wait(topic, f"before-{i}".encode(), key=f"k{i}".encode())

            # a hung node: SIGSTOP. The ISR drops it (replica.lag.time.max.ms), the controller
            # fences it (broker session timeout) and moves its leaderships; acks=all with
            # min.insync.replicas=2 goes on with the two nodes left.
            paused = 2
            await asyncio.to_thread(cluster.pause_node, paused)
            assert cluster.status()["nodes"][paused]["paused"]
            started = time.monotonic()
            futures = [await producer.send(topic, f"paused-{i}".encode(), key=f"k{i}".encode())
                       for i in range(30)]
            await asyncio.wait_for(asyncio.gather(*futures), timeout=90)
            paused_for = time.monotonic() - started

            await asyncio.to_thread(cluster.resume_node, paused)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = cluster.status()
                if status["running"] and all(n["brokers"] == [0, 1, 2] for n in status["nodes"]):
                    break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError(f"node {paused} did not come back: {cluster.status()}")

            for i in range(30):
                await producer.send_and_wait(topic, f"after-{i}".encode(), key=f"k{i}".encode())
        finally:
            await producer.stop()

        values = await _consume_all(bootstrap, topic, 90)
        assert sorted(values) == sorted(
            [f"{w}-{i}".encode() for w in ("before", "paused", "after") for i in range(30)])
        ends = await _end_offsets(bootstrap, topic)
        assert sum(ends.values()) == 90
        print(f"acks=all produce with node {paused} paused took {paused_for:.1f}s")
    finally:
        await asyncio.to_thread(cluster.down)
    assert all(_gone(pid, cmd) for pid, cmd in nodes)
    assert not cluster.alive()
