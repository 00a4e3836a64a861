"""Dead letters written without their value (``dlq.value-omitted``: the message was over the
dead-letter topic's limit), on the embedded broker and redis-server.

Seen (a reviewer's reproduction): ``dlq redrive`` produced the letter's EMPTY value to the source
topic and recorded the letter as re-driven; the pipeline dead-lettered the empty copy as ``empty``
and the original bytes were never re-driven. The sink also kept only the first 9 headers, dropping
the original's own. Now a re-drive reads the original back from ``dlq.source.*`` and sends its
bytes, key and headers; a letter whose original the source no longer holds is refused (named, not
recorded, the others go on, the CLI exits 1); ``dlq show`` says where the original is.

The dead-letter topic is made small through the workers' producer's limit for it (what a
MessageSizeTooLarge from the broker sets, sinks/kafka.py): Tansu does not enforce
``max.message.bytes``, so a topic-level limit would not reach the sink there.
"""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord

from ops import dlq
from ops.dlq import REDRIVEN_FROM_HEADER, list_dead_letters, redrive, show
from sinks.checkpoint import Checkpoint
from streams import kafka, samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.integration.test_dlq import cli, letters_until

pytestmark = pytest.mark.integration

PENALTY = schema_of("penalty")
DOC_NO = "郑市监罚〔2024〕778号"
DEAD_LETTER_LIMIT = 2000  # bytes: the dead-letter topic "created by hand" with less room than the message
ORIGINAL_HEADERS = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                    ("dept-batch", b"2024-05-21/7")]


async def record_at(settings, topic, partition, offset):
    async for batch in kafka.read_to_end(settings, topic, start={partition: offset}, partitions=[partition]):
        for m in batch:
            if m.offset == offset:
                return m
    return None


async def dead_letter_pointing_at(settings, topic, partition, offset, value):
    """A value-omitted dead letter whose ``dlq.source.*`` names (topic, partition, offset), written as
    the workers write one (the sink, through a checkpoint, with the dead-letter topic's small limit)."""
    producer = kafka.producer(settings)
    await producer.start()
    try:
        producer.limits.per_topic[f"{settings.topic_prefix}dead-letters"] = DEAD_LETTER_LIMIT
        cp = Checkpoint(producer, f"{settings.topic_prefix}dead-letters", "ingest")
        cp.reject(ConsumerRecord(topic=topic, partition=partition, offset=offset, timestamp=1_716_256_800_000,
                                 timestamp_type=0, key=b"k", value=value, checksum=None, serialized_key_size=1,
                                 serialized_value_size=len(value), headers=()), "negative-amount", "made up")
        await cp.complete()
    finally:
        await producer.stop()


async def test_a_dead_letter_without_its_value_is_redriven_with_the_original_from_its_source(
        pipeline, department, redis, settings):
    topics = department.topics
    pipeline.producer.limits.per_topic[topics.dead_letters] = DEAD_LETTER_LIMIT
    bad = sample_event("penalty", decision_doc_no=DOC_NO, fine_amount=samples.Decimal("-1"), facts="x" * 3000)
    await department.codec.ensure_writer(PENALTY, topics.penalty)
    value = department.codec.encode(PENALTY, bad, topic=topics.penalty)
    assert len(value) > DEAD_LETTER_LIMIT
    meta = await (await department.producer.send(topics.penalty, value, key=b"dept-key-9", headers=ORIGINAL_HEADERS))
    [letter] = await letters_until(settings, 1)
    assert letter["reason"] == "negative-amount" and letter["size"] == 0  # written without the value
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        topics.penalty, meta.partition, meta.offset)
    ref = letter["ref"]

    # two letters whose original the source does not hold: an offset past its end (as after
    # retention or compaction, the record is not there), and an offset holding another message
    await dead_letter_pointing_at(settings, topics.penalty, meta.partition, meta.offset + 1000, value)
    small = await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕9号"))
    await dead_letter_pointing_at(settings, small.topic, small.partition, small.offset, value)
    letters = await letters_until(settings, 3)
    gone = next(d["ref"] for d in letters if d["source_offset"] == meta.offset + 1000)
    other = next(d["ref"] for d in letters if (d["source_partition"], d["source_offset"]) == (small.partition,
                                                                                              small.offset))

    report = await redrive(settings, [ref, gone, other], by="tester")
    items = {i.ref: i for i in report.items}
    assert items[ref].action == "redriven", report.render()
    target = items[ref].target

    # what was re-driven: the original's bytes, key and headers, never the letter's empty value
    got = await record_at(settings, target["topic"], target["partition"], target["offset"])
    assert len(got.value or b"") == len(value), "re-drive sent the dead letter's empty value"
    assert got.value == value and got.key == b"dept-key-9"
    assert got.timestamp == meta.timestamp
    assert list(got.headers) == ORIGINAL_HEADERS + [(REDRIVEN_FROM_HEADER, f"dead-letters/{ref.replace(':', '/')}".encode())]
    assert items[ref].original == f"{topics.penalty}/{meta.partition}/{meta.offset}"

    # the letters whose original is gone: refused by name, nothing sent or recorded for them
    assert items[gone].action == "original-gone" and gone in items[gone].note and "no longer" in items[gone].note
    assert items[other].action == "original-gone" and "not the original" in items[other].note
    assert report.failed and "refused 2" in report.render()
    audit = await dlq.redriven(settings)
    assert set(audit) == {ref}
    assert audit[ref]["original_from"] == items[ref].original

    # the pipeline judged the original afresh: rejected again for its own reason, not as `empty`
    async def redriven_letter():
        return [d for d in await list_dead_letters(settings, with_redrives=False)
                if d["redriven_from"] == f"dead-letters/{ref.replace(':', '/')}"]

    [again] = await eventually(redriven_letter, timeout=30)
    assert again["reason"] == "negative-amount"

    # show: the value was omitted, and where the original is; the original's headers were kept
    shown = await show(settings, ref)
    assert shown["value_omitted"].startswith(f"{len(value)} bytes")
    assert shown["original_at"] == f"{topics.penalty}/{meta.partition}/{meta.offset}"
    text = dlq.render_show(dlq.mask_personal(shown))
    assert "omitted" in text and f"original at     {topics.penalty}/{meta.partition}/{meta.offset}" in text
    assert [(k, v.encode()) for k, v in shown["headers"] if not k.startswith("dlq.")] == ORIGINAL_HEADERS

    # the CLI: the refused letter is named, and the command exits 1
    code, out, err = await cli(settings, "dlq", "redrive", gone)
    assert code == 1, (out, err)
    assert "original-gone" in out and gone in out
    assert set(await dlq.redriven(settings)) == {ref}
