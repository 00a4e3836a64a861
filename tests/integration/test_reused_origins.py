"""A department topic deleted and created again: its offsets start again at 0, so a correction can
arrive at the origin (``topic/partition/offset``) of the message it corrects. The subject agent
took it for a redelivery of that message and dropped it: the penalty stayed active, with no dead
letter, no log line and no counter (found by sending stock-client traffic to Apache Kafka). An
input is now a redelivery only when its origin was seen with its content (domain/state.py
``_sighted``; tests/unit/test_reused_origin_folds.py for every kind of input and arrival order).

Apache Kafka only: the operator's procedure (stop the workers, delete the topic, ``creditstream
topics``, start the workers) relies on DeleteTopics and a fresh log, which the embedded Tansu does
not offer the same way.
"""

from __future__ import annotations

import asyncio

import pytest

from streams import kafka, samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]
PENALTY = schema_of("penalty")
DOC_NO = "沪罚〔2024〕555号"


async def entry_of(redis, settings) -> dict | None:
    from sinks.keys import resolve_keys
    from sinks.redis_state import read_states

    [state] = await read_states(redis, await resolve_keys(redis, settings.namespace), [samples.COMPANY_USCC])
    return next((r for r in (state or {}).get("records", {}).values() if r.get("doc_no") == DOC_NO), None)


async def send_to_partition_1(settings, topic: str, value: bytes) -> tuple[int, int]:
    """Sent with a new producer (a recreated topic's metadata is new); (partition, offset)."""
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for attempt in range(30):
            try:
                sent = await (await producer.send(topic, value, key=samples.COMPANY_USCC.encode(), partition=1))
                return sent.partition, sent.offset
            except Exception:  # noqa: BLE001 - the new topic's leaders not known yet
                if attempt == 29:
                    raise
                await asyncio.sleep(1)
    finally:
        await producer.stop()
    raise AssertionError("unreachable")


async def test_a_correction_after_the_topic_was_recreated_is_applied(department, redis, settings):
    from creditstream.app import Pipeline

    topic = department.topics.penalty
    await department.codec.ensure_writer(PENALTY, topic)
    penalty = department.codec.encode(PENALTY, sample_event("penalty", decision_doc_no=DOC_NO), topic=topic)
    revocation = department.codec.encode(PENALTY, sample_event("penalty", decision_doc_no=DOC_NO,
                                                                record_status="revoked"), topic=topic)
    worker = Pipeline(settings)
    await worker.start()
    try:
        assert await send_to_partition_1(settings, topic, penalty) == (1, 0)

        async def active():
            entry = await entry_of(redis, settings)
            return entry if entry and entry["status"] == "active" else None

        await eventually(active, timeout=30)
        await asyncio.sleep(2)  # the batch committed
    finally:
        await worker.stop()

    admin = kafka.admin(settings)  # the workers stopped: the topic deleted and created again
    await admin.start()
    try:
        await admin.delete_topics([topic])

        async def gone():
            return topic not in await admin.list_topics()

        await eventually(gone, timeout=30, interval=0.5)
    finally:
        await admin.close()
    for _ in range(30):
        try:
            if await kafka.ensure_topics(settings, [topic]):
                break
        except Exception:  # noqa: BLE001 - the deletion still under way
            pass
        await asyncio.sleep(1)
    assert await send_to_partition_1(settings, topic, revocation) == (1, 0)  # the penalty's origin

    worker = Pipeline(settings)
    await worker.start()
    try:
        async def revoked():
            entry = await entry_of(redis, settings)
            return entry if entry and entry["status"] == "revoked" else None

        entry = await eventually(revoked, timeout=40, interval=0.5)
        assert len(entry["versions"]) == 2
    finally:
        await worker.stop()
