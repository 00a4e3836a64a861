"""A department system that writes in Kafka transactions (a stock client with ``transactional.id``:
librdkafka here; Kafka Connect's exactly-once sources, Flink's and Kafka Streams' sinks do the same).

Such a producer aborts transactions: on a failure, on a restart, on being fenced by a newer instance
of itself. The records of an aborted transaction stay in the log, marked aborted; a consumer that
reads ``read_uncommitted`` is given them as if they were decisions, and a record still inside an open
transaction is given to it before its producer has decided whether it counts. creditstream read its
department topics that way: a penalty its department had withdrawn by aborting reached the subject's
state, and could list the subject.

On Apache Kafka every agent now reads its topics ``read_committed`` (streams/runner.py, streams/kafka.py
``isolation_level``): an aborted record is never delivered, and a partition's records after an open
transaction wait for it to end (docs/operations.md, "Department producers
that use transactions"). On Tansu it changes nothing (docs/broker.md, defect 5: aborted records are
delivered to read_committed readers too), so these tests run on Apache Kafka only.
"""

from __future__ import annotations

import asyncio

import pytest

from streams import samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]
PENALTY = schema_of("penalty")


@pytest.fixture
def transactional(settings):
    """A factory of librdkafka producers with a ``transactional.id``, transactions initialised."""
    from confluent_kafka import Producer

    made = []

    async def make(name: str):
        producer = Producer({
            "bootstrap.servers": ",".join(settings.bootstrap_servers),
            "transactional.id": f"{settings.namespace}-{name}",
            "acks": "all",
            "linger.ms": 5,
        })
        made.append(producer)
        await asyncio.to_thread(producer.init_transactions, 30)
        return producer

    yield make
    for producer in made:
        producer.flush(5)


async def encoded(department, doc_no: str) -> tuple[str, bytes]:
    topic = department.topics.for_kind("penalty")
    await department.codec.ensure_writer(PENALTY, topic)
    return topic, department.codec.encode(PENALTY, sample_event("penalty", decision_doc_no=doc_no), topic=topic)


async def send(producer, topic: str, value: bytes) -> None:
    """One record, delivered to the broker (inside whatever transaction is open)."""
    delivered = []
    producer.produce(topic, value=value, key=b"department-key",
                     on_delivery=lambda err, msg: delivered.append((err, msg)))
    assert await asyncio.to_thread(producer.flush, 15) == 0
    [(err, _msg)] = delivered
    assert err is None, err


async def doc_nos(redis, settings) -> set[str]:
    from sinks.keys import resolve_keys
    from sinks.state_codec import decode_state

    keys = await resolve_keys(redis, settings.namespace)
    raw = await redis.get(keys.subject(samples.COMPANY_USCC))
    state = decode_state(raw) if raw else None
    return {r["doc_no"] for r in (state or {}).get("records", {}).values()}


async def test_an_aborted_transactions_penalty_never_reaches_the_subject(transactional, department, pipeline,
                                                                         redis, settings):
    producer = await transactional("aborts")
    topic, withdrawn = await encoded(department, "沪罚〔2024〕901号")
    _, kept = await encoded(department, "沪罚〔2024〕902号")

    producer.begin_transaction()
    await send(producer, topic, withdrawn)
    await asyncio.to_thread(producer.abort_transaction, 30)
    producer.begin_transaction()
    await send(producer, topic, kept)
    await asyncio.to_thread(producer.commit_transaction, 30)

    async def applied():
        return "沪罚〔2024〕902号" in await doc_nos(redis, settings)

    await eventually(applied, timeout=30)
    assert await doc_nos(redis, settings) == {"沪罚〔2024〕902号"}, "the aborted transaction's penalty was applied"


async def test_a_record_in_an_open_transaction_waits_for_its_commit(transactional, department, pipeline,
                                                                    redis, settings):
    producer = await transactional("slow-commit")
    topic, pending = await encoded(department, "沪罚〔2024〕903号")

    producer.begin_transaction()
    await send(producer, topic, pending)  # in the log, its transaction open
    await asyncio.sleep(4)  # the worker's fetches run several times a second
    assert await doc_nos(redis, settings) == set(), "a record was applied before its transaction ended"
    await asyncio.to_thread(producer.commit_transaction, 30)

    async def applied():
        return "沪罚〔2024〕903号" in await doc_nos(redis, settings)

    await eventually(applied, timeout=30)
