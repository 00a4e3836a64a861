"""Messages near the broker's ``message.max.bytes``: what the sinks send is checked against each
topic's limit before it is sent; a dead letter of a department message at the limit keeps its
original bytes; a broker that refuses a message as too large lowers the limit, so the retried batch
dead-letters it instead of retrying it forever (the Kafka side: tests/integration/test_message_limits.py)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from creditstream.settings import Settings
from sinks.deadletter import DeadLetterSink, dead_letter_info
from sinks.kafka import KafkaSink, MessageTooLarge, message_size
from streams.topics import DEAD_LETTER_HEADROOM, MessageLimits, Topics, message_limits

LIMIT = 1_048_588  # Apache Kafka's default message.max.bytes


def batch_bytes(key, value, headers) -> int:
    """What the broker measures: the size of the one-record v2 batch aiokafka builds."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    assert builder.append(0, timestamp=1_700_000_000_000, key=key, value=value, headers=headers) is not None
    return len(builder.build())


@pytest.mark.parametrize("value_len", [0, 1, 127, 128, 16_383, 16_384, 1_000_000, LIMIT])
@pytest.mark.parametrize("headers", [[], [("change_id", b"x" * 40)],
                                     [(f"dlq.h{i}", b"y" * 300) for i in range(9)]])
def test_message_size_is_a_tight_upper_bound_of_the_batch_the_broker_measures(value_len, headers):
    key = b"91310110666007217T"
    value = b"v" * value_len
    real = batch_bytes(key, value, headers)
    estimate = message_size(key, value, headers)
    assert real <= estimate <= real + 40 + 10 * len(headers)


class Producer:
    """Enough of a producer for KafkaSink.add: the limits (send nothing)."""

    def __init__(self, limits: MessageLimits):
        self.limits = limits


def test_a_message_over_its_topics_limit_is_refused_when_added_and_nothing_is_buffered():
    sink = KafkaSink(Producer(MessageLimits(10_000)))
    sink.add("p.subject-events", b"v" * (10_000 - 200), key=b"k")
    with pytest.raises(MessageTooLarge) as err:
        sink.add("p.subject-events", b"v" * 10_000, key=b"k")
    assert err.value.limit == 10_000 and err.value.size > 10_000
    assert len(sink) == 1


def test_the_dead_letter_topic_takes_64_kib_more_than_the_others():
    settings = Settings(topic_prefix="p.", max_message_bytes=LIMIT)
    limits = message_limits(settings)
    topics = Topics(settings)
    assert limits.of(topics.subject_events) == LIMIT
    assert limits.of(topics.penalty) == LIMIT
    assert limits.of(topics.dead_letters) == LIMIT + DEAD_LETTER_HEADROOM


def department_message(size: int) -> ConsumerRecord:
    """A department message that the broker took: at most ``size`` bytes as a batch."""
    headers = [("traceparent", b"00-" + b"a" * 50)]
    value = b"\x00" + b"z" * (size - message_size(None, b"", headers) - 1)
    assert batch_bytes(None, value, headers) <= size
    return ConsumerRecord(topic="p.penalty", partition=2, offset=41, timestamp=1_700_000_000_000, timestamp_type=0,
                          key=None, value=value, checksum=None, serialized_key_size=-1,
                          serialized_value_size=len(value), headers=headers)


def test_a_department_message_at_the_limit_is_dead_lettered_whole_with_its_reason():
    limits = message_limits(Settings(topic_prefix="p."))
    sink = KafkaSink(Producer(limits))
    dead = DeadLetterSink(sink, "p.dead-letters", "ingest")
    msg = department_message(LIMIT)
    dead.add(msg, "field-too-long", "facts: 1048000 chars (limit 4000) " + "x" * 2000)
    [letter] = sink.pending()
    assert letter.value == msg.value  # the original bytes, untouched
    info = dead_letter_info(letter.headers)
    assert info["reason"] == "field-too-long" and "value-omitted" not in info
    assert ("traceparent", msg.headers[0][1]) in letter.headers
    assert message_size(letter.key, letter.value, letter.headers) <= limits.of("p.dead-letters")


def test_where_the_dead_letter_topic_has_no_headroom_the_letter_keeps_its_reason_without_the_bytes():
    sink = KafkaSink(Producer(MessageLimits(LIMIT)))  # e.g. a dead-letter topic created by hand
    dead = DeadLetterSink(sink, "p.dead-letters", "ingest")
    msg = department_message(LIMIT)
    dead.add(msg, "field-too-long", "facts: too long")
    [letter] = sink.pending()
    info = dead_letter_info(letter.headers)
    assert letter.value == b""
    assert info["reason"] == "field-too-long"
    assert info["value-omitted"].startswith(f"{len(msg.value)} bytes")
    assert (info["source.topic"], info["source.partition"], info["source.offset"]) == ("p.penalty", "2", "41")
    assert dead.counts == {"field-too-long": 1}
    # the original's own headers follow the dlq.* ones, as in a whole dead letter (seen: only the first
    # 9 headers were kept, the original's dropped)
    assert letter.headers[-1] == msg.headers[0] and "headers-omitted" not in info
    assert [k for k, _ in letter.headers[:-1]] == [k for k, _ in letter.headers if k.startswith("dlq.")]


def test_where_the_originals_headers_alone_are_over_the_limit_they_are_left_out_and_counted():
    sink = KafkaSink(Producer(MessageLimits(LIMIT)))
    dead = DeadLetterSink(sink, "p.dead-letters", "ingest")
    msg = department_message(LIMIT)
    msg = dataclasses.replace(msg, headers=[("big", b"h" * LIMIT)] * 2, value=b"\x00" + b"z" * 1000)
    dead.add(msg, "field-too-long", "facts: too long")
    [letter] = sink.pending()
    info = dead_letter_info(letter.headers)
    assert letter.value == b"" and info["value-omitted"].startswith("1001 bytes")
    assert info["headers-omitted"] == "2 headers"
    assert all(k.startswith("dlq.") for k, _ in letter.headers)


def test_a_tombstone_is_dead_lettered_as_a_tombstone():
    """Seen: the ingest agent dead-lettered a null value (`empty`) as b'', so a re-drive sent an
    empty message instead of the tombstone that came."""
    from agents.ingest import IngestAgent
    from streams.codec import AvroCodec

    sink = KafkaSink(Producer(message_limits(Settings(topic_prefix="p."))))
    dead = DeadLetterSink(sink, "p.dead-letters", "ingest")
    agent = IngestAgent(topics=Topics("p."), codec=AvroCodec(), index=None, producer=None)
    msg = ConsumerRecord(topic="p.penalty", partition=2, offset=41, timestamp=1_700_000_000_000, timestamp_type=0,
                         key=b"91310110666007217T", value=None, checksum=None, serialized_key_size=18,
                         serialized_value_size=-1, headers=())
    assert agent.decode(msg, dead, 1_700_000_000_000) is None
    [letter] = sink.pending()
    assert letter.value is None and letter.key == msg.key
    assert dead_letter_info(letter.headers)["reason"] == "empty"


class RefusingProducer(Producer):
    """A broker whose real limit is lower than configured: batches with a message over it fail."""

    def __init__(self, limits: MessageLimits, real_limit: int):
        super().__init__(limits)
        self.real_limit = real_limit
        self.batches: list[list[int]] = []

    @staticmethod
    def _partitioner(key, all_partitions, available):
        return 0

    async def partitions_for(self, topic):
        return {0}

    def create_batch(self):

        class Batch:
            sizes: list[int] = []

            def append(self, *, timestamp, key, value, headers):
                if len(self.sizes) == 2:
                    return None
                self.sizes = self.sizes + [message_size(key, value, headers)]
                return object()

        self._batch = Batch
        return Batch()

    async def send_batch(self, batch, topic, partition):
        self.batches.append(batch.sizes)
        fut = asyncio.get_running_loop().create_future()
        if max(batch.sizes) > self.real_limit:
            fut.set_exception(MessageSizeTooLargeError())
        else:
            fut.set_result(None)
        return fut


async def test_a_broker_refusing_a_message_as_too_large_lowers_the_limit_so_the_retry_refuses_it_first():
    limits = MessageLimits(LIMIT)
    producer = RefusingProducer(limits, real_limit=50_000)
    sink = KafkaSink(producer)
    for n in (1_000, 80_000, 2_000, 3_000):
        sink.add("p.subject-events", b"v" * n, key=b"k")
    with pytest.raises(MessageSizeTooLargeError):
        await sink.flush()
    assert limits.of("p.subject-events") < message_size(b"k", b"v" * 80_000, [])
    assert limits.of("p.dead-letters") == LIMIT  # only the refusing topic
    # the agent's retry builds the batch again: the large message is refused before it is sent
    retry = KafkaSink(producer)
    with pytest.raises(MessageTooLarge):
        retry.add("p.subject-events", b"v" * 80_000, key=b"k")
    for n in (1_000, 2_000, 3_000):
        retry.add("p.subject-events", b"v" * n, key=b"k")
    assert await retry.flush() == 3


# --- a producer left unusable by a broker failure is replaced ----------------------------------------
class SequencedProducer(Producer):
    """A producer whose batches fail with OutOfOrderSequenceNumber until it is renewed."""

    def __init__(self):
        super().__init__(MessageLimits(LIMIT))
        self.generation = 0
        self.renewals: list[tuple[int, str]] = []
        self.broken = False

    @staticmethod
    def _partitioner(key, all_partitions, available):
        return 0

    async def partitions_for(self, topic):
        return {0, 1}

    def create_batch(self):
        class Batch:
            def append(self, **_kw):
                return object()

        return Batch()

    async def send_batch(self, batch, topic, partition):
        from aiokafka.errors import OutOfOrderSequenceNumber

        fut = asyncio.get_running_loop().create_future()
        if self.generation == 0:
            fut.set_exception(OutOfOrderSequenceNumber())
        else:
            fut.set_result(None)
        return fut

    async def renew(self, generation, cause):
        self.renewals.append((generation, type(cause).__name__))
        if generation == self.generation:
            self.generation += 1


async def test_a_producer_out_of_sequence_after_a_leader_died_is_renewed_and_the_retry_goes_through():
    from aiokafka.errors import OutOfOrderSequenceNumber

    producer = SequencedProducer()
    sink = KafkaSink(producer)
    sink.add("p.list-changes", b"change", key=b"k")
    with pytest.raises(OutOfOrderSequenceNumber):  # a KafkaError: the runner retries the batch
        await sink.flush()
    assert producer.renewals == [(0, "OutOfOrderSequenceNumber")]
    assert await sink.flush() == 1  # the buffer was kept; the new producer takes it
    assert producer.renewals == [(0, "OutOfOrderSequenceNumber")]


def test_topic_configuration_by_topic():
    from creditstream.settings import Settings
    from streams import topics

    s = Settings(dead_letter_retention_days=14, replication_factor=3)
    dlq = topics.topic_config(s, topics.DEAD_LETTERS)
    assert dlq == {"retention.ms": str(14 * 86_400_000), "min.insync.replicas": "2",
                   "max.message.bytes": str(s.max_message_bytes + topics.DEAD_LETTER_HEADROOM)}
    assert topics.topic_config(Settings(dead_letter_retention_days=0), topics.DEAD_LETTERS)["retention.ms"] == "-1"
    assert topics.topic_config(s, topics.SUBJECT_EVENTS)["retention.ms"] == "-1"  # the log replay reads
    assert topics.topic_config(s, topics.REGISTRATION)["cleanup.policy"] == "compact"
    assert "retention.ms" not in topics.topic_config(s, topics.REGISTRATION)
    assert "dead_letter_retention_days: 0 (keep forever) or more" in Settings(dead_letter_retention_days=-1).validate()
    # the check-audit topic grows with the checks answered: kept check_audit_retention_days (default 5 years)
    assert topics.topic_config(Settings(), topics.CHECK_AUDIT)["retention.ms"] == str(1826 * 86_400_000)
    assert topics.topic_config(Settings(check_audit_retention_days=0), topics.CHECK_AUDIT)["retention.ms"] == "-1"
    assert "check_audit_retention_days: 0 (keep forever) or more" in Settings(check_audit_retention_days=-1).validate()
    assert not [p for p in Settings().validate() if p.startswith("dead_letter")]
