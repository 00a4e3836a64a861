"""Which subject a legacy number names (存量代码转换) against a real redis-server: the newest
registration by its own date, whatever order the registrations and the departments' records arrive
in (RULES.md 3a). The agents run with a checkpoint that has no producer (the broker left out)."""

from __future__ import annotations

import itertools

import pytest
from aiokafka import ConsumerRecord

from agents.ingest import IngestAgent
from agents.registry import RegistryAgent
from domain.attach import mapping_version
from sinks.keys import Keys
from sinks.registry_index import RegistryIndex
from streams import samples
from streams.codec import AvroCodec
from streams.samples import sample_event, schema_of
from streams.topics import Topics

pytestmark = pytest.mark.integration

OLD_HOLDER = "91310110666007217T"  # registered with the number in 2007
NEW_HOLDER = "91310115591693856A"  # registered with it in 2020
NUMBER = samples.COMPANY_REG_NO


def _message(codec, topics, kind, partition, record, ts):
    value = codec.encode(schema_of(kind), record)
    return ConsumerRecord(topic=topics.for_kind(kind), partition=partition, offset=ts % 1000, timestamp=ts,
                          timestamp_type=0, key=None, value=value, checksum=None, serialized_key_size=0,
                          serialized_value_size=len(value), headers=())


async def test_the_newest_registration_of_a_number_wins_in_any_arrival_order(redis, settings):
    codec = AvroCodec()
    held = set()
    for n, order in enumerate(itertools.permutations(["old", "new", "department"])):
        keys = Keys(f"{settings.namespace}-o{n}")
        topics = Topics(settings.topic_prefix)
        index = RegistryIndex(redis, keys)
        registry = RegistryAgent(topics=topics, codec=codec, index=index, producer=None)
        ingest = IngestAgent(topics=topics, codec=codec, index=index, producer=None)
        inputs = {
            "old": (registry, _message(codec, topics, "registration", 0, sample_event(
                "registration", uscc=OLD_HOLDER, reg_no=NUMBER, registered_at="2007-05-09"), 1717200000000)),
            "new": (registry, _message(codec, topics, "registration", 1, sample_event(
                "registration", uscc=NEW_HOLDER, reg_no=NUMBER, registered_at="2020-03-02"), 1717100000000)),
            # a department's record naming the old holder beside the number, decided later still:
            # what a department's record teaches never outranks a registration
            "department": (ingest, _message(codec, topics, "penalty", 0, sample_event(
                "penalty", uscc=OLD_HOLDER, reg_no=NUMBER, decision_date="2024-05-20"), 1717300000000)),
        }
        for name in order:
            agent, message = inputs[name]
            checkpoint = agent.checkpoint()
            await agent.process([message], checkpoint)
            await checkpoint.complete()
        held.add((await redis.hget(keys.id_index, f"reg_no:{NUMBER}")).decode())
    assert held == {NEW_HOLDER}


async def test_a_mapping_is_replaced_only_by_a_newer_version(redis, settings):
    index = RegistryIndex(redis, Keys(f"{settings.namespace}-v"))
    newer = mapping_version(registration=True, dated="2020-03-02", stamp_ms=2, origin="r/1/5")
    older = mapping_version(registration=True, dated="2007-05-09", stamp_ms=9, origin="r/0/9")
    department = mapping_version(registration=False, dated="2026-01-05", stamp_ms=99, origin="p/0/1")
    await index.apply_batch([("reg_no:X", "B", newer)], [])
    await index.apply_batch([("reg_no:X", "A", older)], [])
    await index.apply_batch([("reg_no:X", "A", department)], [])
    assert await redis.hget(index.keys.id_index, "reg_no:X") == b"B"
    assert older < newer and department < older
