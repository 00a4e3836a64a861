"""The ingest agent against a real redis-server (the broker left out: a checkpoint without a
producer collects what a batch would produce), for what a retried batch must not lose."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord

from agents.ingest import IngestAgent
from domain import events
from sinks.keys import Keys
from sinks.registry_index import RegistryIndex
from streams import samples
from streams.codec import AvroCodec
from streams.samples import sample_event, schema_of
from streams.topics import Topics

pytestmark = pytest.mark.integration


def _message(codec, topics, offset, record, ts):
    value = codec.encode(schema_of("penalty"), record)
    return ConsumerRecord(topic=topics.for_kind("penalty"), partition=0, offset=offset, timestamp=ts,
                          timestamp_type=0, key=None, value=value, checksum=None, serialized_key_size=0,
                          serialized_value_size=len(value), headers=())


async def test_a_batch_retried_after_a_failed_flush_releases_the_records_it_parked_again(redis, settings):
    # RULES.md 1: parked, not dropped, and attached when the subject is learned. The agent
    # remembered what it had taught before the batch was through: the retry of a batch whose flush
    # failed taught nothing, released nothing, and the record its first attempt released stayed parked
    codec, topics = AvroCodec(), Topics(settings.topic_prefix)
    index = RegistryIndex(redis, Keys(settings.namespace))
    agent = IngestAgent(topics=topics, codec=codec, index=index, producer=None)
    legacy = sample_event("penalty", uscc=None, org_code=None, reg_no=samples.COMPANY_REG_NO,
                          decision_doc_no="郑市监罚〔2024〕31号")
    first = agent.checkpoint()
    await agent.process([_message(codec, topics, 0, legacy, 1717200000000)], first)
    await first.complete()
    assert await index.parked_count() == 1

    # a record naming the USCC beside the same number teaches it; its batch's flush fails
    teacher = _message(codec, topics, 1, sample_event("penalty", reg_no=samples.COMPANY_REG_NO,
                                                      decision_doc_no="郑市监罚〔2024〕32号"), 1717200100000)
    failed = agent.checkpoint()
    await agent.process([teacher], failed)  # (its complete() never runs: the broker refused)
    retried = agent.checkpoint()
    await agent.process([teacher], retried)
    await retried.complete()
    produced = [events.decode(m.value) for m in retried.collected if m.topic == topics.subject_events]
    assert sorted(e.record["doc_no"] for e in produced) == ["郑市监罚〔2024〕31号", "郑市监罚〔2024〕32号"]
    assert {e.subject for e in produced} == {samples.COMPANY_USCC}
    assert await index.parked_count() == 0
