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


async def ingest_committed(settings, topic: str) -> None:
    """Wait until the ingest group's commit for ``topic``'s partition 1 is past its one input (offset 0)."""
    from ops import positions

    async def committed():
        row = next(r for r in await positions.show(settings, ("ingest",)) if (r.topic, r.partition) == (topic, 1))
        return row.committed == 1

    await eventually(committed, timeout=15, interval=0.5)


async def recreate(settings, topic: str) -> None:
    """``topic`` deleted and created again as ``creditstream topics`` makes it (its offsets from 0)."""
    admin = kafka.admin(settings)
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
                return
        except Exception:  # noqa: BLE001 - the deletion still under way
            pass
        await asyncio.sleep(1)
    raise AssertionError(f"{topic} not created again")


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
        await ingest_committed(settings, department.topics.penalty)  # the batch committed (not a 2 s sleep)
    finally:
        await worker.stop()

    await recreate(settings, topic)  # the workers stopped
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


async def test_two_records_parked_at_one_origin_are_both_kept(department, redis, settings):
    """Records naming only a legacy number wait, parked under it, for its registration; each was
    parked under its origin, so a record parked at a reused origin replaced the one parked there
    before, which was never applied (sinks/registry_index.py ``park_field``)."""
    from creditstream.app import Pipeline
    from sinks.keys import Keys
    from sinks.registry_index import RegistryIndex

    topic = department.topics.penalty
    await department.codec.ensure_writer(PENALTY, topic)

    def legacy(doc_no: str) -> bytes:
        return department.codec.encode(PENALTY, sample_event("penalty", uscc=None, org_code=None,
                                                             reg_no=samples.COMPANY_REG_NO, decision_doc_no=doc_no),
                                       topic=topic)

    index = RegistryIndex(redis, Keys(settings.namespace))
    worker = Pipeline(settings)
    await worker.start()
    try:
        assert await send_to_partition_1(settings, topic, legacy("郑市监罚〔2024〕900号")) == (1, 0)
        await eventually(index.parked_count, timeout=30)
        await ingest_committed(settings, topic)  # the batch committed (not a 2 s sleep)
    finally:
        await worker.stop()
    await recreate(settings, topic)
    assert await send_to_partition_1(settings, topic, legacy("郑市监罚〔2024〕901号")) == (1, 0)
    worker = Pipeline(settings)
    await worker.start()
    try:
        async def both_parked():
            return await index.parked_count() == 2

        await eventually(both_parked, timeout=30)
        await department.send(schema_of("registration"), sample_event("registration"))

        async def both_applied():
            from sinks.keys import resolve_keys
            from sinks.redis_state import read_states

            keys = await resolve_keys(redis, settings.namespace)
            [state] = await read_states(redis, keys, [samples.COMPANY_USCC])
            return {r["doc_no"] for r in (state or {}).get("records", {}).values()} == {
                "郑市监罚〔2024〕900号", "郑市监罚〔2024〕901号"}

        await eventually(both_applied, timeout=30)
        assert await index.parked_count() == 0
    finally:
        await worker.stop()
