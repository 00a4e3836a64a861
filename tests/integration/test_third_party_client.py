"""A department system that is not creditstream: librdkafka (confluent-kafka) produces, the event is
framed by hand exactly as docs/events.md documents (magic byte 0, 4-byte big-endian schema id from
schemas/registry.json, Avro binary body), and it reaches the subject's state in Redis.

Two Avro writers: the Apache reference implementation (avro-python3, which knows no logical types:
dates and decimals are converted by hand, as docs/events.md describes) and fastavro (the docs'
example). The producer settings are the ones docs/events.md gives for the local Tansu broker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import io
import json
import struct
from pathlib import Path

import pytest

from streams import samples
from streams.samples import sample_event
from tests.conftest import eventually

pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
PENALTY_AVSC = SCHEMAS / "administrative_penalty.avsc"
DOC_NO = "郑市监罚〔2024〕777号"


def schema_id(full_name: str) -> int:
    return json.loads((SCHEMAS / "registry.json").read_text(encoding="utf-8"))[full_name]


def header(full_name: str) -> bytes:
    return struct.pack(">bI", 0, schema_id(full_name))  # magic byte 0, schema id big-endian


def plain_avro(record: dict, scale: int = 6) -> dict:
    """Logical types by hand: date -> int days since 1970-01-01; decimal(18, 6) -> the unscaled
    integer as big-endian two's-complement bytes."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dt.date):
            value = (value - dt.date(1970, 1, 1)).days
        elif isinstance(value, decimal.Decimal):
            unscaled = int(value.scaleb(scale).to_integral_exact())
            value = unscaled.to_bytes(unscaled.bit_length() // 8 + 1, "big", signed=True)
        out[key] = value
    return out


def encode_with_avro_python3(record: dict) -> bytes:
    import avro.io
    import avro.schema

    schema = avro.schema.parse(PENALTY_AVSC.read_text(encoding="utf-8"))
    buf = io.BytesIO()
    buf.write(header("creditstream.AdministrativePenalty"))
    avro.io.DatumWriter(schema).write(plain_avro(record), avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def encode_with_fastavro(record: dict) -> bytes:
    import fastavro

    schema = fastavro.parse_schema(json.loads(PENALTY_AVSC.read_text(encoding="utf-8")))
    buf = io.BytesIO()
    buf.write(header("creditstream.AdministrativePenalty"))
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


WRITERS = {"avro-python3": encode_with_avro_python3, "fastavro": encode_with_fastavro}


@pytest.fixture
def librdkafka(settings):
    """A factory of librdkafka producers (configured as docs/events.md says), closed after the test."""
    from confluent_kafka import Producer

    made = []

    def make(**extra):
        conf = {
            "bootstrap.servers": ",".join(settings.bootstrap_servers),
            "enable.idempotence": False,
            "acks": "all",
            "linger.ms": 5,
        }
        conf.update(extra)
        made.append(Producer(conf))
        return made[-1]

    yield make
    for producer in made:
        producer.close()


async def produce(producer, topic: str, value: bytes, key: bytes) -> None:
    delivered = []
    producer.produce(topic, value=value, key=key, on_delivery=lambda err, msg: delivered.append((err, msg)))
    left = await asyncio.to_thread(producer.flush, 15)  # flush blocks: keep the pipeline's loop running
    assert left == 0, "librdkafka did not deliver within 15 s"
    [(err, msg)] = delivered
    assert err is None, err
    assert msg.topic() == topic and msg.offset() >= 0


async def state_of(redis, settings, subject_id):
    from sinks.keys import resolve_keys
    from sinks.state_codec import decode_state

    keys = await resolve_keys(redis, settings.namespace)
    raw = await redis.get(keys.subject(subject_id))
    return decode_state(raw) if raw else None


def the_event() -> dict:
    return sample_event("penalty", decision_doc_no=DOC_NO, fine_amount=decimal.Decimal("12.345678"),
                        event_id="third-party-000777")


@pytest.mark.parametrize("writer", list(WRITERS))
def test_hand_framed_bytes_decode_like_our_own(writer):
    """No broker needed: the bytes a third party frames by hand are what creditstream decodes."""
    from streams.codec import AvroCodec

    value = WRITERS[writer](the_event())
    assert value[0] == 0 and int.from_bytes(value[1:5], "big") == 1
    name, record = AvroCodec().decode(value)
    assert name == "creditstream.AdministrativePenalty"
    assert record == {**{k: None for k in record}, **the_event()}
    assert value == AvroCodec().encode(name, the_event())  # byte for byte


@pytest.mark.parametrize("writer", list(WRITERS))
async def test_librdkafka_event_reaches_subject_state(writer, librdkafka, pipeline, redis, settings):
    producer = librdkafka()
    await produce(producer, pipeline.topics.penalty, WRITERS[writer](the_event()), key=samples.COMPANY_USCC.encode())

    async def recorded():
        state = await state_of(redis, settings, samples.COMPANY_USCC)
        return state if state and state["records"] else None

    state = await eventually(recorded)
    [record] = state["records"].values()
    assert record["doc_no"] == DOC_NO
    assert record["status"] == "active" and record["version"] == 1
    assert record["content"]["fields"]["fine_amount"] == "12.345678"
    assert record["decision_date"] == "2024-05-20"
    assert record["content"]["event_id"] == "third-party-000777"
    assert state["names"] == [samples.COMPANY]


async def test_lz4_compressed_event_reaches_subject_state(librdkafka, pipeline, redis, settings):
    """lz4 (like snappy and zstd) needs the 'cramjam' package on the consumer: a dependency of
    creditstream, or the ingest consumer would fail on such a batch."""
    producer = librdkafka(**{"compression.type": "lz4"})
    await produce(producer, pipeline.topics.penalty, encode_with_fastavro(the_event()),
                  key=samples.COMPANY_USCC.encode())

    async def recorded():
        state = await state_of(redis, settings, samples.COMPANY_USCC)
        return state if state and state["records"] else None

    await eventually(recorded, timeout=8)
