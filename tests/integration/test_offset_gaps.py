"""Input positions (agents/input_positions.py) and offsets that hold no record.

Apache Kafka has offsets no consumer ever sees: a transaction's commit marker (control batch),
records removed by compaction (the registration topic is compacted), records before the log start
(retention, DeleteRecords). aiokafka skips them and moves its position past them, so the next batch
of a partition may begin past the position its last batch recorded with nothing lost: that is not
Redis behind the log (a first version took it for that and re-read the partition for ever)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from creditstream import metrics
from streams.samples import sample_event, schema_of
from tests.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]
PENALTY = schema_of("penalty")


def rewinds(agent: str) -> float:
    return metrics.REWINDS.labels(agent)._value.get()


async def positions(redis, settings, agent: str) -> dict[str, int]:
    from sinks.keys import Keys

    raw = await redis.hgetall(Keys(settings.namespace).input_positions(agent))
    return {k.decode(): int(v) for k, v in raw.items()}


async def encoded(department, doc_no: str) -> tuple[str, bytes]:
    topic = department.topics.for_kind("penalty")
    await department.codec.ensure_writer(PENALTY, topic)
    return topic, department.codec.encode(PENALTY, sample_event("penalty", decision_doc_no=doc_no), topic=topic)


async def wait_position(redis, settings, field: str, at_least: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    pos = None
    while time.monotonic() < deadline:
        pos = (await positions(redis, settings, "ingest")).get(field)
        if pos is not None and pos >= at_least:
            return pos
        await asyncio.sleep(0.2)
    return pos


async def test_a_transactional_department_producer(pipeline, department, redis, settings):
    """Each transaction ends with a commit marker: the record after it starts one offset past the
    position the ingest agent recorded."""
    topic, v1 = await encoded(department, "沪罚〔2024〕801号")
    _, v2 = await encoded(department, "沪罚〔2024〕802号")
    prod = AIOKafkaProducer(**settings.kafka_client_kwargs(), transactional_id=f"{settings.namespace}-tx",
                            enable_idempotence=True, acks="all")
    await prod.start()
    try:
        async with prod.transaction():
            md1 = await prod.send_and_wait(topic, v1, key=b"k", partition=0)
        field = f"{topic}/0"
        assert await wait_position(redis, settings, field, md1.offset + 1, 30) == md1.offset + 1
        r0 = rewinds("ingest")
        await asyncio.sleep(5)  # idle: the consumer's position is past the marker
        assert rewinds("ingest") == r0, "the commit marker's offset was taken for writes Redis lost"
        async with prod.transaction():
            md2 = await prod.send_and_wait(topic, v2, key=b"k", partition=0)
        r1 = rewinds("ingest")
        got = await wait_position(redis, settings, field, md2.offset + 1, 20)
        assert got == md2.offset + 1, f"record 2 (offset {md2.offset}) never applied: position stays {got}"
        assert rewinds("ingest") == r1
    finally:
        await prod.stop()


async def test_records_deleted_before_the_ingest_agent_read_them(department, redis, settings):
    """A worker down while the log start moved past its position (retention, DeleteRecords): no
    Redis loss at all, yet the recorded position is before the log start."""
    from creditstream.app import Pipeline

    topic, a = await encoded(department, "沪罚〔2024〕811号")
    _, b = await encoded(department, "沪罚〔2024〕812号")
    _, c = await encoded(department, "沪罚〔2024〕813号")
    field = f"{topic}/0"
    p = Pipeline(settings, agents=("ingest",))
    await p.start()
    try:
        await (await department.producer.send(topic, a, partition=0))
        assert await wait_position(redis, settings, field, 1, 30) == 1
    finally:
        await p.stop()
    await (await department.producer.send(topic, b, partition=0))  # offset 1: deleted unread
    await (await department.producer.send(topic, c, partition=0))  # offset 2
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(before_offset=2)})
    finally:
        await admin.close()
    r0 = rewinds("ingest")
    p = Pipeline(settings, agents=("ingest",))
    await p.start()
    try:
        got = await wait_position(redis, settings, field, 3, 20)
        assert got == 3, f"offset 2 never applied: position stays {got}"
        assert rewinds("ingest") == r0
    finally:
        await p.stop()


async def test_subject_events_deleted_before_the_subject_agent_read_them(department, redis, settings):
    """The subject agent's positions follow the same rule: its log's start moved past the position
    Redis records (DeleteRecords, or a retention an operator set) while it was down. It used to take
    the next batch, starting past that position, for Redis behind and re-read the partition for
    ever."""
    from creditstream.app import Pipeline
    from sinks.keys import resolve_keys

    events_topic = f"{settings.topic_prefix}subject-events"
    topic, a = await encoded(department, "沪罚〔2024〕821号")
    _, b = await encoded(department, "沪罚〔2024〕822号")
    _, c = await encoded(department, "沪罚〔2024〕823号")

    async def subject_positions() -> dict[int, int]:
        keys = await resolve_keys(redis, settings.namespace)
        values = await redis.mget([keys.position(p) for p in range(4)])
        return {p: int(v) for p, v in enumerate(values) if v is not None and int(v) > 0}

    p = Pipeline(settings)
    await p.start()
    try:
        await (await department.producer.send(topic, a, partition=0))
        await eventually(subject_positions, timeout=30)
    finally:
        await p.stop()
    [(part, at)] = (await subject_positions()).items()
    # the subject agent down: the same subject's next two inputs reach its log (the same partition)
    p = Pipeline(settings, agents=("ingest",))
    await p.start()
    try:
        await (await department.producer.send(topic, b, partition=0))
        await (await department.producer.send(topic, c, partition=0))

        async def logged():
            from streams import kafka

            return (await kafka.log_ends(settings, events_topic)).get(part, 0) >= at + 2

        await eventually(logged, timeout=30)
    finally:
        await p.stop()
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:  # the first of the two deleted unread
        await admin.delete_records({TopicPartition(events_topic, part): RecordsToDelete(before_offset=at + 1)})
    finally:
        await admin.close()
    r0 = rewinds("subject")
    p = Pipeline(settings)
    await p.start()
    try:
        async def applied():
            return (await subject_positions()).get(part, 0) >= at + 2

        await eventually(applied, timeout=20)
        assert rewinds("subject") == r0
    finally:
        await p.stop()
