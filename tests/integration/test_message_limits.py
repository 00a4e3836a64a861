"""Messages near the broker's message.max.bytes, on a real broker (Apache Kafka enforces the limit;
Tansu does not, so there the same flows show only that nothing is lost).

* a department message at Apache Kafka's default limit (1,048,588 bytes) is dead-lettered whole:
  the reason headers do not push it over (the dead-letter topic has 64 KiB more);
* a subject event over the subject-event log's limit is an input error (``too-large``), not a
  transient failure retried forever: the pipeline goes on with the next input;
* where the broker's real limit is lower than configured, its MessageSizeTooLarge lowers the limit
  and the retried batch dead-letters the message (Apache Kafka only).
"""

from __future__ import annotations

import pytest

from sinks.deadletter import dead_letter_info
from sinks.kafka import message_size
from streams import kafka
from streams.samples import sample_event, schema_of
from tests.conftest import eventually

pytestmark = pytest.mark.integration

PENALTY = schema_of("penalty")
KAFKA_DEFAULT_LIMIT = 1_048_588
UNIT_USCC = "91310110666007217T"


async def letters(settings, n):
    async def check():
        found = [m async for batch in kafka.read_to_end(settings, f"{settings.topic_prefix}dead-letters")
                 for m in batch]
        return found if len(found) >= n else None

    return await eventually(check, timeout=60)


async def applied(redis, settings, uscc, doc_no):
    from sinks.keys import resolve_keys
    from sinks.state_codec import state_json

    async def check():
        keys = await resolve_keys(redis, settings.namespace)
        raw = await redis.get(keys.subject(uscc))
        return raw is not None and doc_no.encode() in state_json(raw)

    return await eventually(check, timeout=60)


async def test_a_department_message_at_kafkas_default_limit_is_dead_lettered_whole(pipeline, settings, department,
                                                                                  redis):
    topic = department.topics.penalty
    small = department.codec.encode(PENALTY, sample_event("penalty", facts="x"), topic=topic)
    # the same event with `facts` grown until the message is 300 bytes short of the limit
    room = KAFKA_DEFAULT_LIMIT - 300 - message_size(None, small, [])
    value = department.codec.encode(PENALTY, sample_event("penalty", facts="x" * (1 + room)), topic=topic)
    assert KAFKA_DEFAULT_LIMIT - 400 < message_size(None, value, []) <= KAFKA_DEFAULT_LIMIT
    await department.send_raw(topic, value)  # Apache Kafka takes it: it is within its limit
    await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕1号"))

    [letter] = await letters(settings, 1)
    info = dead_letter_info(letter.headers)
    assert info["reason"] == "field-too-long"
    assert letter.value == value  # the original bytes, with the reason beside them
    await applied(redis, settings, UNIT_USCC, "郑罚〔2026〕1号")  # and the next input went on


@pytest.fixture
def small_limit_settings(settings):
    return settings.replace(max_message_bytes=4096)


async def test_a_subject_event_over_the_logs_limit_is_an_input_error_not_a_retry(small_limit_settings, department,
                                                                               redis):
    from creditstream.app import Pipeline

    settings = small_limit_settings
    pipeline = Pipeline(settings)
    await pipeline.start()
    try:
        big = sample_event("penalty", facts="当事人" * 1300, decision_doc_no="郑罚〔2026〕2号")  # ~11.7 KB of UTF-8
        await department.send(PENALTY, big)
        await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕3号"))
        [letter] = await letters(settings, 1)
        info = dead_letter_info(letter.headers)
        assert info["reason"] == "too-large"
        assert "over its limit of 4096 bytes" in info["detail"]
        assert letter.value[:1] == b"\x00"  # the department's own message, for a re-drive
        await applied(redis, settings, UNIT_USCC, "郑罚〔2026〕3号")
    finally:
        await pipeline.stop()


@pytest.mark.kafka_only
async def test_a_broker_limit_lower_than_configured_makes_the_message_a_dead_letter_not_an_endless_retry(
        settings, department, redis):
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from creditstream.app import Pipeline

    await kafka.ensure_topics(settings)
    client = kafka.admin(settings)
    await client.start()
    topic = f"{settings.topic_prefix}subject-events"
    try:  # an operator lowered the log's limit; the workers still believe the default
        await client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                   configs={"max.message.bytes": "4096"})])

        async def in_force():  # the answer may come before the broker applies it (seen on a busy machine)
            [desc] = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            return {c[0]: c[1] for c in desc.resources[0][4]}.get("max.message.bytes") == "4096"

        await eventually(in_force, timeout=30)
    finally:
        await client.close()
    pipeline = Pipeline(settings)
    await pipeline.start()
    try:
        await department.send(PENALTY, sample_event("penalty", facts="当事人" * 1300, decision_doc_no="郑罚〔2026〕4号"))
        await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕5号"))
        [letter] = await letters(settings, 1)
        assert dead_letter_info(letter.headers)["reason"] == "too-large"
        await applied(redis, settings, UNIT_USCC, "郑罚〔2026〕5号")
    finally:
        await pipeline.stop()
