"""The registry path against a real Confluent-compatible schema registry: Apicurio Registry 2.4.2.Final
(its /apis/ccompat/v7 API), built from Maven Central and started by ops/registry_server.py.

Department events are framed with ids the registry hands out (their subjects ``<topic>-value``),
the workers decode them by looking the ids up, and encode list changes with an id they register;
a fresh client decodes those by id. An id the registry does not know is dead-lettered, not retried.

Slow (the first build takes minutes; a start ~10 s): ``make test-registry`` runs it (on Tansu, or
with BROKER=kafka on Apache Kafka).
"""

from __future__ import annotations

import json
import struct
import urllib.request

import pytest

from sinks.deadletter import dead_letter_info
from sinks.state_codec import decode_state
from streams import kafka, samples
from streams.codec import AvroCodec, ConfluentRegistry, RegistryError
from streams.samples import sample_event, schema_of
from tests.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.registry]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from ops.registry_server import RegistryServer

    server = RegistryServer(tmp_path_factory.mktemp("registry"))
    server.up()
    yield server
    server.down()


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


async def test_events_framed_with_registry_ids_reach_the_state_and_list_changes_carry_registry_ids(
        registry, settings, redis):
    from creditstream.app import Pipeline
    from creditstream.connections import make_codec
    from sinks.keys import resolve_keys

    s = settings.replace(schema_registry=registry.url)
    department_codec = make_codec(s)
    assert isinstance(department_codec.registry, ConfluentRegistry)
    producer = kafka.producer(s)
    await kafka.ensure_topics(s)
    await producer.start()
    pipeline = Pipeline(s)
    await pipeline.start()
    try:
        court = pipeline.topics.court
        await department_codec.ensure_writer(schema_of("court_listing"), court)  # registers, awaited
        value = department_codec.encode(schema_of("court_listing"), sample_event("court_listing"), topic=court)
        schema_id = struct.unpack(">I", value[1:5])[0]
        assert get(f"{registry.url}/schemas/ids/{schema_id}")["schema"]  # the registry knows it
        await (await producer.send(court, value, key=samples.COMPANY_USCC.encode()))
        unknown = b"\x00" + struct.pack(">I", 987654) + value[5:]
        await (await producer.send(court, unknown, key=samples.COMPANY_USCC.encode()))

        async def listed():
            keys = await resolve_keys(redis, s.namespace)
            raw = await redis.get(keys.subject(samples.COMPANY_USCC))
            return raw is not None and "court_debtor" in decode_state(raw).get("evaluation", {}).get("lists", {})

        await eventually(listed, timeout=60)

        async def changes():
            found = [m async for batch in kafka.read_to_end(s, pipeline.topics.list_changes)
                     for m in batch]
            return found or None

        found = await eventually(changes, timeout=60)
        fresh = AvroCodec(ConfluentRegistry(registry.url))  # knows nothing yet: looks the id up
        with pytest.raises(RegistryError) as not_loaded:  # inside an event loop: never a blocking fetch
            fresh.decode(found[0].value)
        assert not_loaded.value.kind == "not-loaded"
        await fresh.ensure_for([m.value for m in found])
        # the company's change and its legal representative's sit on different partitions (the
        # person's by a pseudonym of this run's key): either may be read first
        decoded = [fresh.decode(m.value) for m in found]
        assert {name for name, _ in decoded} == {"creditstream.ListChange"}
        assert samples.COMPANY_USCC in {record["subject_id"] for _, record in decoded}
        subjects = get(f"{registry.url}/subjects")
        assert f"{court}-value" in subjects and f"{pipeline.topics.list_changes}-value" in subjects

        async def dead():
            found = [m async for batch in kafka.read_to_end(s, pipeline.topics.dead_letters)
                     for m in batch]
            return found or None

        [letter] = await eventually(dead, timeout=60)
        assert dead_letter_info(letter.headers)["reason"] == "unknown-schema-id"
        assert letter.value == unknown
    finally:
        await pipeline.stop()
        await producer.stop()
