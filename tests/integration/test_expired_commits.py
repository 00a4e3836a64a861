"""A consumer group without commits over a Redis that recorded where each partition stands: Apache
Kafka deletes a group's commits ``offsets.retention.minutes`` (7 days) after its last member left
(the workers stopped for a week), and a renamed ``consumer_group`` starts without any. Before: every
department input was processed again from the log start and every subject event written again
(30 inputs: the subject-event log went from 30 to 60 messages). Now each partition starts at the
position Redis records (streams/runner.py ``_start_where_recorded``)."""

from __future__ import annotations

import asyncio

import pytest

from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.reliability import harness

pytestmark = pytest.mark.integration

PENALTY = schema_of("penalty")


async def stats(redis, settings) -> dict[bytes, bytes]:
    from sinks.keys import resolve_keys

    return await redis.hgetall((await resolve_keys(redis, settings.namespace)).stats)


async def test_a_group_without_commits_starts_where_redis_records_its_partitions(settings, department, redis):
    from creditstream.app import Pipeline
    from streams.topics import Topics

    subject_events = Topics(settings).subject_events

    async def logged(n: int):
        return await harness.log_size(settings, subject_events) >= n and \
            int((await stats(redis, settings)).get(b"inputs", 0)) >= n

    pipeline = Pipeline(settings)
    await pipeline.start()
    try:
        for i in range(30):
            await department.send(PENALTY, sample_event("penalty", decision_doc_no=f"郑罚〔2026〕{i + 1}号"))
        await eventually(lambda: logged(30), timeout=60)
    finally:
        await pipeline.stop()
    before, counted = await harness.log_size(settings, subject_events), await stats(redis, settings)
    assert before == 30

    renamed = settings.replace(consumer_group=settings.consumer_group + "-renamed")  # no commits at all
    pipeline = Pipeline(renamed)
    await pipeline.start()
    try:
        await asyncio.sleep(4)  # time to read the whole log again, as it did
        assert await harness.log_size(settings, subject_events) == before  # no subject event written again
        assert await stats(redis, settings) == counted
        await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕31号"))
        await eventually(lambda: logged(31), timeout=60)  # and the next input is applied
    finally:
        await pipeline.stop()
    assert await harness.log_size(settings, subject_events) == 31


async def test_a_position_written_before_its_subject_events_were_delivered_is_not_started_from(
        settings, department, redis):
    """The ingest agent writes its batch's positions with the batch's index effects, before the
    batch's subject events are produced; only the positions written after their acknowledgement say
    where a partition without a commit may start. Without those (as after a worker died between its
    script and the broker's acknowledgement), the partition is read again from its start: nothing
    skipped, the subject events written again (idempotent downstream)."""
    from creditstream.app import Pipeline
    from sinks.keys import Keys
    from streams.topics import Topics

    subject_events = Topics(settings).subject_events
    pipeline = Pipeline(settings)
    await pipeline.start()
    try:
        for i in range(10):
            await department.send(PENALTY, sample_event("penalty", decision_doc_no=f"郑罚〔2026〕{i + 1}号"))

        async def logged():
            return await harness.log_size(settings, subject_events) >= 10
        await eventually(logged, timeout=60)
        await asyncio.sleep(1)
    finally:
        await pipeline.stop()
    keys = Keys(settings.namespace)
    assert await redis.hlen(keys.input_positions("ingest"))  # written with the batches' effects
    await redis.delete(keys.acknowledged_positions("ingest"))  # but no acknowledgement recorded
    renamed = settings.replace(consumer_group=settings.consumer_group + "-renamed")
    pipeline = Pipeline(renamed)
    await pipeline.start()
    try:
        async def again():
            return await harness.log_size(settings, subject_events) >= 20
        await eventually(again, timeout=60)
    finally:
        await pipeline.stop()
