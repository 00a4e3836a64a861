"""Inputs the broker deleted before the workers read them (streams/deleted_inputs.py).

A department topic with a finite retention (auto-created with the broker's defaults, or configured
by its department) deletes its oldest inputs whether or not they were read. With the workers
stopped, or behind, for longer than that, the consumer's position falls below the log start and
the client moves it there without a word an operator sees: the inputs in between were never
applied, and nothing said so. Now ``creditstream positions`` shows them before a worker starts
(DELETED), and the worker that skips them logs them at error level and counts them
(``creditstream_inputs_deleted_unread_total``, alerted).

Apache Kafka only: DeleteRecords stands in for the retention (the same log start moved); Tansu
neither deletes by retention nor offers DeleteRecords (it answers a log start of 0).
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete
from structlog.testing import capture_logs

from creditstream import metrics
from streams import kafka, samples
from streams.deleted_inputs import CHECK_EVERY_S
from streams.samples import sample_event, schema_of
from tests.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]
PENALTY = schema_of("penalty")


async def doc_nos(redis, settings) -> set[str]:
    from sinks.keys import resolve_keys
    from sinks.redis_state import read_states

    [state] = await read_states(redis, await resolve_keys(redis, settings.namespace), [samples.COMPANY_USCC])
    return {r["doc_no"] for r in (state or {}).get("records", {}).values()}


async def delete_before(settings, tp: TopicPartition, offset: int) -> None:
    """What a topic's retention does to its oldest inputs: the log start moved to ``offset``."""
    admin = kafka.admin(settings)
    await admin.start()
    try:
        assert await admin.delete_records({tp: RecordsToDelete(offset)}) == {tp: offset}
    finally:
        await admin.close()


async def test_inputs_deleted_while_the_workers_were_stopped_are_shown_logged_and_counted(department, redis,
                                                                                          settings):
    from creditstream.app import Pipeline
    from ops import positions

    topic = department.topics.penalty
    await department.codec.ensure_writer(PENALTY, topic)
    tp = TopicPartition(topic, 1)

    async def send(doc_no: str) -> int:
        value = department.codec.encode(PENALTY, sample_event("penalty", decision_doc_no=doc_no), topic=topic)
        sent = await (await department.producer.send(topic, value, key=b"department-key", partition=1))
        return sent.offset

    worker = Pipeline(settings)
    await worker.start()
    try:
        assert await send("沪罚〔2024〕701号") == 0

        async def first_applied():
            return "沪罚〔2024〕701号" in await doc_nos(redis, settings)

        await eventually(first_applied, timeout=30)

        async def committed():
            row = next(r for r in await positions.show(settings, ("ingest",)) if (r.topic, r.partition) == (topic, 1))
            return row.committed == 1

        await eventually(committed, timeout=15, interval=0.5)
    finally:
        await worker.stop()

    # the workers stopped; two inputs arrive, and the retention deletes them before anyone reads them
    assert [await send("沪罚〔2024〕702号"), await send("沪罚〔2024〕703号")] == [1, 2]
    await delete_before(settings, tp, 3)
    assert await send("沪罚〔2024〕704号") == 3

    [row] = [r for r in await positions.show(settings, ("ingest",)) if (r.topic, r.partition) == (topic, 1)]
    assert (row.committed, row.start, row.end, row.deleted, row.behind) == (1, 3, 4, 2, 1), row
    others = [r for r in await positions.show(settings, ("ingest",)) if (r.topic, r.partition) != (topic, 1)]
    assert all(r.deleted in (0, None) for r in others), others

    counted = metrics.DELETED_UNREAD.labels("ingest", topic)
    before = counted._value.get()
    with capture_logs() as logs:
        worker = Pipeline(settings)
        await worker.start()
        try:
            async def last_applied():
                return "沪罚〔2024〕704号" in await doc_nos(redis, settings)

            await eventually(last_applied, timeout=30)

            async def reported():
                return counted._value.get() - before == 2

            await eventually(reported, timeout=15, interval=0.2)
        finally:
            await worker.stop()
    said = [e for e in logs if e["event"].startswith("inputs deleted by the broker before they were read")]
    assert [(e["log_level"], e["agent"], e["topic"], e["partition"], e["offsets"], e["count"]) for e in said] == [
        ("error", "ingest", topic, 1, "1-2", 2)], said
    assert await doc_nos(redis, settings) == {"沪罚〔2024〕701号", "沪罚〔2024〕704号"}


async def test_a_transactions_markers_are_not_taken_for_deleted_inputs(department, pipeline, redis, settings):
    """A topic written in transactions has an offset no consumer sees after each one (its commit
    marker): a gap at nearly every batch, and nothing deleted."""
    from confluent_kafka import Producer

    topic = department.topics.penalty
    await department.codec.ensure_writer(PENALTY, topic)
    producer = Producer({"bootstrap.servers": ",".join(settings.bootstrap_servers),
                         "transactional.id": f"{settings.namespace}-markers", "acks": "all"})
    await asyncio.to_thread(producer.init_transactions, 30)
    docs = [f"沪罚〔2024〕{800 + i}号" for i in range(7)]
    for n, doc_no in enumerate(docs):  # one transaction each, applied before the next: a gap at every batch
        if n == len(docs) - 1:
            await asyncio.sleep(CHECK_EVERY_S + 0.5)  # the last batch's gap is checked with it
        producer.begin_transaction()
        producer.produce(topic, value=department.codec.encode(PENALTY, sample_event("penalty", decision_doc_no=doc_no),
                                                              topic=topic), key=b"department-key", partition=0)
        await asyncio.to_thread(producer.commit_transaction, 30)

        async def applied(doc_no=doc_no):
            return doc_no in await doc_nos(redis, settings)

        await eventually(applied, timeout=30)
    runner = next(r for r in pipeline.runners if getattr(r, "agent", None) and r.agent.name == "ingest")
    tp = TopicPartition(topic, 0)
    assert runner.gaps.expected[tp] == 2 * len(docs) - 1  # a record and a marker each, the last marker not passed
    assert tp not in runner.gaps.pending and runner.gaps.checked >= len(docs) - 1  # every gap checked
    assert metrics.DELETED_UNREAD.labels("ingest", topic)._value.get() == 0
    [row] = [r for r in await positions_of(settings, topic) if r.partition == 0]
    assert (row.start, row.deleted) == (0, 0), row


async def positions_of(settings, topic: str):
    from ops import positions

    return [r for r in await positions.show(settings, ("ingest",)) if r.topic == topic]


async def test_a_replay_refuses_a_subject_event_log_that_lost_its_first_inputs(pipeline, department, redis, settings):
    """Seen: with the subject-event log's first inputs deleted (a finite retention, DeleteRecords), a
    replay read from the earliest record left and completed: a generation without them, which
    `--switch` would have made the live state. It refuses, before writing anything, naming the
    partition and its log start; a partial replay (--from-offsets) of what is left still runs."""
    from ops.replay import replay
    from ops.report import progress
    from streams.topics import Topics

    for n in range(20):
        await department.send(PENALTY, sample_event("penalty", decision_doc_no=f"沪罚〔2024〕{800 + n}号"))

    async def applied():
        return await progress(settings) >= 20

    await eventually(applied, timeout=60)
    await pipeline.stop()  # the log is complete
    topic = Topics(settings).subject_events
    ends = await kafka.log_ends(settings, topic)
    part = next(p for p, end in sorted(ends.items()) if end >= 2)
    await delete_before(settings, TopicPartition(topic, part), 1)

    with pytest.raises(ValueError, match=rf"partition {part} starts at offset 1\): they were deleted"):
        await replay(settings, generation="cut", progress=False, jobs=1)
    assert [k async for k in redis.scan_iter(match=f"{settings.namespace}:cut:*")] == []
    partial = await replay(settings, generation="part", progress=False, jobs=1, start={part: 1})
    assert partial.events == sum(ends.values()) - 1
