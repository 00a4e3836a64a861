"""The Apache Kafka side of the broker_kind switches, on a real Kafka (``--broker kafka``): the
registration topic really compacted, ``replay --from-timestamp`` through offsets_for_times, log ends
by ListOffsets equal to what was written."""

from __future__ import annotations

import time

import pytest

from streams import kafka
from streams.samples import sample_event, schema_of

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]


async def test_registration_topic_is_compacted_and_logs_are_replicated_as_configured(settings):
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    await kafka.ensure_topics(settings)
    client = kafka.admin(settings)
    await client.start()
    try:
        topic = f"{settings.topic_prefix}registration"
        [desc] = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        configs = {c[0]: c[1] for c in desc.resources[0][4]}
        assert configs["cleanup.policy"] == "compact"
        [events] = await client.describe_topics([f"{settings.topic_prefix}subject-events"])
        assert {len(p["replicas"]) for p in events["partitions"]} == {settings.replication_factor}
    finally:
        await client.close()


async def test_log_ends_by_listoffsets_and_start_offsets_by_time(settings, department):
    topic = department.topics.penalty
    await kafka.ensure_topics(settings)
    before = int(time.time() * 1000) - 60_000
    for i in range(30):
        await department.send(schema_of("penalty"), sample_event("penalty", decision_doc_no=f"郑罚〔2026〕{i}号"),
                              timestamp_ms=before + i * 1000)
    ends = await kafka.log_ends(settings, topic)
    assert sum(ends.values()) == 30
    start = await kafka.offsets_at(settings, topic, before + 20 * 1000)
    assert start is not None
    after = [m async for batch in kafka.read_to_end(settings, topic, start=start) for m in batch]
    assert len(after) == 10 and min(m.timestamp for m in after) == before + 20 * 1000
    assert await kafka.offsets_at(settings, topic, int(time.time() * 1000) + 3_600_000) == ends  # past the end


async def test_replay_from_a_timestamp_uses_offsets_for_times(pipeline, settings, department):
    from ops.replay import replay
    from ops.report import progress
    from tests.conftest import eventually

    t0 = int(time.time() * 1000) - 120_000
    for i in range(10):
        await department.send(schema_of("penalty"), sample_event("penalty", decision_doc_no=f"郑罚〔2026〕{100 + i}号"),
                              timestamp_ms=t0 + i * 10_000)

    async def applied():
        return await progress(settings) >= 10

    await eventually(applied, timeout=60)
    await pipeline.stop()
    result = await replay(settings, from_timestamp_ms=t0 + 50_000, progress=False)
    assert result.events == 5


async def test_a_renewed_producer_has_a_new_producer_id_and_delivers(settings):
    """After a fatal sequence error (a leader died with batches in flight) the sinks renew the
    producer: the new one registers a new producer id, so its sequence numbers start afresh."""
    from aiokafka.errors import OutOfOrderSequenceNumber

    topic = f"{settings.topic_prefix}renewal"
    await kafka.ensure_topics(settings, [topic])
    producer = kafka.producer(settings)
    await producer.start()
    try:
        await (await producer.send(topic, b"before"))
        first_id = producer._txn_manager.producer_id  # noqa: SLF001
        await producer.renew(0, OutOfOrderSequenceNumber())
        await producer.renew(0, OutOfOrderSequenceNumber())  # a second agent asking: renewed once
        assert producer.generation == 1 and not producer.broken
        await (await producer.send(topic, b"after"))
        assert producer._txn_manager.producer_id not in (first_id, -1)  # noqa: SLF001
    finally:
        await producer.stop()
    ends = await kafka.log_ends(settings, topic)
    assert sum(ends.values()) == 2


async def test_dead_letter_retention_is_set_reported_and_applied(settings):
    """Dead letters hold names and ID numbers: the dead-letter topic is created with the configured
    retention; a changed setting shows as drift, and applying it keeps the other managed keys."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    settings = settings.replace(dead_letter_retention_days=30)
    await kafka.ensure_topics(settings)
    dlq = f"{settings.topic_prefix}dead-letters"

    async def configs() -> dict[str, str]:
        client = kafka.admin(settings)
        await client.start()
        try:
            [desc] = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, dlq)])
            return {c[0]: c[1] for c in desc.resources[0][4]}
        finally:
            await client.close()

    assert (await configs())["retention.ms"] == str(30 * 86_400_000)
    assert await kafka.topic_config_drift(settings) == []
    shorter = settings.replace(dead_letter_retention_days=7)
    drift = await kafka.topic_config_drift(shorter)
    assert [(d.topic, d.name, d.current, d.wanted) for d in drift] == [
        (dlq, "retention.ms", str(30 * 86_400_000), str(7 * 86_400_000))]
    await kafka.apply_topic_config(shorter, [dlq])
    from tests.conftest import eventually

    async def applied():  # the brokers take the controller's metadata update a moment later
        now = await configs()
        return now if now["retention.ms"] == str(7 * 86_400_000) else None

    after = await eventually(applied, timeout=15)
    assert after["max.message.bytes"] == str(settings.max_message_bytes + 64 * 1024)
    assert await kafka.topic_config_drift(shorter) == []


async def test_a_worker_warns_of_a_topic_the_broker_created_with_its_defaults(settings):
    """A department's first send before `creditstream topics` auto-creates its topic with the
    broker's 7-day retention (it deleted 2020-stamped inputs under a test): a worker says so at start."""
    from structlog.testing import capture_logs

    from creditstream.app import Pipeline
    from tests.conftest import create_topic_with_broker_defaults

    topic = f"{settings.topic_prefix}penalty"
    await create_topic_with_broker_defaults(settings, topic)
    with capture_logs() as logs:
        await Pipeline(settings)._warn_of_topic_drift()
    warned = [e for e in logs if e.get("topic") == topic and e["log_level"] == "warning"]
    assert {e["config"] for e in warned} >= {"retention.ms"}, logs
    assert "creditstream topics --apply" in warned[0]["event"]
