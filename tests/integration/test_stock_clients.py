"""Stock clients, as a department or a downstream system would use them, on the test's broker:

* (Apache Kafka only: Tansu cannot answer its ApiVersions request) kcat (Debian's package, librdkafka inside) produces a court listing framed as docs/events.md
  describes, straight from a file; the listing reaches the subject's state in Redis, and kcat reads
  the list change it caused back (``-f '%R%s'``: length-prefixed binary values);
* confluent-kafka (librdkafka) reads the same list change as a consumer group member.

``make test`` installs kcat with apt-get where it can (root or passwordless sudo); without it the kcat
test is skipped, and says how to get it.
"""

from __future__ import annotations

import asyncio
import shutil
import struct

import pytest

from sinks.keys import storage_id
from streams import samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.workers import run_to_end

pytestmark = pytest.mark.integration

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
needs_kcat = pytest.mark.skipif(KCAT is None, reason="kcat is not installed (apt-get install kcat; make test does it)")

LISTING = schema_of("court_listing")


async def kcat(*args: str, stdin: bytes | None = None, timeout: float = 60) -> bytes:
    code, out, err = await run_to_end([KCAT, *args], stdin=stdin or b"", timeout=timeout)
    assert code == 0, f"kcat {' '.join(args)} exited {code}: {err.decode()[-800:]}"
    return out


def frames(out: bytes) -> list[bytes]:
    """The values kcat printed with ``-f '%R%s'``: a 4-byte big-endian length, then the bytes."""
    values, i = [], 0
    while i < len(out):
        (n,) = struct.unpack(">i", out[i:i + 4])
        values.append(out[i + 4:i + 4 + n])
        i += 4 + n
    return values


async def subject_listed(redis, settings) -> dict:

    from sinks.keys import resolve_keys
    from sinks.state_codec import decode_state

    async def check():
        keys = await resolve_keys(redis, settings.namespace)
        raw = await redis.get(keys.subject(samples.COMPANY_USCC))
        state = decode_state(raw) if raw else None
        return state if state and state.get("records") else None

    return await eventually(check, timeout=60)


def decode_list_changes(settings, values: list[bytes]) -> list[dict]:
    from creditstream.connections import make_codec

    codec = make_codec(settings)
    out = []
    for value in values:
        name, record = codec.decode(value)
        assert name == "creditstream.ListChange"
        out.append(record)
    return out


@needs_kcat
@pytest.mark.kafka_only  # Tansu fails the ApiVersions request of Debian's kcat (librdkafka 2.0.2): docs/broker.md
async def test_kcat_produces_a_framed_listing_and_reads_the_list_change_it_caused(pipeline, settings, redis,
                                                                                 department, tmp_path):
    brokers = ",".join(settings.bootstrap_servers)
    value = department.codec.encode(LISTING, sample_event("court_listing"), topic=pipeline.topics.court)
    framed = tmp_path / "listing.avro"
    framed.write_bytes(value)  # one file, one message: kcat sends the bytes as they are
    await kcat("-P", "-b", brokers, "-t", pipeline.topics.court, "-k", samples.COMPANY_USCC, str(framed))

    state = await subject_listed(redis, settings)
    [record] = state["records"].values()
    assert record["doc_no"] == "〔2023〕豫01执1234号"  # normalised

    async def changes():
        out = await kcat("-C", "-b", brokers, "-t", pipeline.topics.list_changes, "-o", "beginning", "-e", "-q",
                         "-f", "%R%s")
        read = decode_list_changes(settings, frames(out))
        return read if {c["subject_id"] for c in read} >= subjects else None

    # the company's court listing puts its legal representative on the list too (RULES.md section 4: measures reach its legal representative)
    subjects = {samples.COMPANY_USCC, samples.LEGAL_REP_ID}
    read = await eventually(changes, timeout=60)
    assert {c["subject_id"] for c in read} == subjects
    for subject in subjects:
        assert any(c["subject_id"] == subject and c["transition"] == "entered" and c["list"] == "court_debtor"
                   for c in read), read


async def test_a_librdkafka_consumer_group_reads_the_list_changes(pipeline, settings, redis, department):
    from confluent_kafka import Consumer

    await department.send(LISTING, sample_event("court_listing"))
    await subject_listed(redis, settings)
    consumer = Consumer({"bootstrap.servers": ",".join(settings.bootstrap_servers),
                         "group.id": f"{settings.consumer_group}-downstream", "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 6000})  # Tansu answers JoinGroup after half of it
    consumer.subscribe([pipeline.topics.list_changes])
    # the listing also puts the company's legal representative on the list, and the two list changes
    # sit on whichever partitions their keys hash to: read until both have come, in any order
    seen: dict[str, tuple[bytes, dict, dict]] = {}
    try:
        async def polled():
            msg = await asyncio.to_thread(consumer.poll, 1.0)
            if msg is not None and not msg.error():
                [change] = decode_list_changes(settings, [msg.value()])
                seen[change["subject_id"]] = (msg.key(), dict(msg.headers() or []), change)
            return seen if len(seen) >= 2 else None

        await eventually(polled, timeout=60)
        assert set(seen) == {samples.COMPANY_USCC, samples.LEGAL_REP_ID}
        key, headers, change = seen[samples.COMPANY_USCC]
        assert key == samples.COMPANY_USCC.encode()
        assert headers["change_id"].decode() == change["change_id"]
        assert change["transition"] == "entered" and change["list"] == "court_debtor"
        key, headers, change = seen[samples.LEGAL_REP_ID]
        assert key == storage_id(samples.LEGAL_REP_ID, settings.pseudonym_key).encode()  # never the ID number in clear
        assert headers["change_id"].decode() == change["change_id"]
        assert change["transition"] == "entered" and change["list"] == "court_debtor"
    finally:
        await asyncio.to_thread(consumer.close)
