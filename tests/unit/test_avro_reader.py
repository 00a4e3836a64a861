"""streams/avro_reader.py against fastavro: the same records for every schema of schemas/, and, for
damaged bodies, the same record or the same DecodeError reason through AvroCodec.decode."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import BytesIO

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import load_schema, local_ids
from streams import avro_reader
from streams.codec import HEADER_SIZE, AvroCodec, DecodeError, LocalRegistry

CODEC = AvroCodec(LocalRegistry())
NAMES = sorted(local_ids())
UTC = dt.UTC


def _value(ftype) -> st.SearchStrategy:
    """Any value fastavro can write for a field type of the project's schemas (written out here
    from the Avro specification, not from avro_reader's own table)."""
    if isinstance(ftype, list):
        return st.one_of(*[_value(t) for t in ftype])
    if isinstance(ftype, dict):
        logical = ftype.get("logicalType")
        if logical == "date":
            return st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31))
        if logical == "timestamp-millis":
            return st.integers(-62_135_596_800_000, 253_402_300_799_999).map(
                lambda ms: dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=ms))
        if logical == "decimal":
            precision, scale = ftype["precision"], ftype.get("scale", 0)
            return st.integers(-(10 ** precision) + 1, 10 ** precision - 1).map(
                lambda n: Decimal(n).scaleb(-scale))
        if ftype["type"] == "array":
            return st.lists(_value(ftype["items"]), max_size=5)
        return _value(ftype["type"])
    return {"null": st.none(), "string": st.text(max_size=40), "boolean": st.booleans(),
            "int": st.integers(-(2 ** 31), 2 ** 31 - 1), "long": st.integers(-(2 ** 63), 2 ** 63 - 1),
            "bytes": st.binary(max_size=20)}[ftype]


def records(name: str) -> st.SearchStrategy:
    schema = load_schema(name)
    return st.fixed_dictionaries({f["name"]: _value(f["type"]) for f in schema["fields"]})


def fastavro_decode(data: bytes):
    """What AvroCodec.decode gave before avro_reader: fastavro's record, or the DecodeError reason."""
    schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
    name, schema, _, _ = CODEC._reader(schema_id)
    bio = BytesIO(data)
    bio.seek(HEADER_SIZE)
    try:
        record = fastavro.schemaless_reader(bio, schema, None)
    except EOFError:
        return "truncated"
    except Exception:  # noqa: BLE001 - any other failure is the codec's avro-decode-error
        return "avro-decode-error"
    return "trailing-bytes" if bio.tell() != len(data) else (name, record)


def codec_decode(data: bytes):
    try:
        return CODEC.decode(data)
    except DecodeError as exc:
        return exc.reason


def typed(value):
    """A record with each value's type beside it (a date is not equal to a datetime, but 1 == True)."""
    if isinstance(value, tuple):
        return tuple(typed(v) for v in value)
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, dt.datetime):
        return ("datetime", value, value.utcoffset())
    return (type(value).__name__, value)


@pytest.mark.parametrize("name", NAMES)
def test_every_project_schema_is_read_by_the_fast_reader(name):
    _, schema, fields, _ = CODEC._reader(local_ids()[name])
    assert fields == avro_reader.compile_record(schema)
    assert fields is not None
    assert [f.name for f in fields] == [f["name"] for f in load_schema(name)["fields"]]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_same_record_as_fastavro(name, data):
    record = data.draw(records(name))
    message = CODEC.encode(name, record)
    fields = avro_reader.compile_record(CODEC._reader(local_ids()[name])[1])
    fast, end = avro_reader.read(fields, message, HEADER_SIZE)
    assert end == len(message)
    assert typed(fast) == typed(fastavro_decode(message)[1])
    assert typed(CODEC.decode(message)) == typed(fastavro_decode(message))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_bodies_decode_or_fail_as_with_fastavro(name, data):
    message = bytearray(CODEC.encode(name, data.draw(records(name))))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(HEADER_SIZE, len(message) - 1))
        message[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(HEADER_SIZE, len(message)))
    damaged = bytes(message[:cut]) + data.draw(st.binary(max_size=4))
    assert typed(codec_decode(damaged)) == typed(fastavro_decode(damaged))


@pytest.mark.parametrize("body, why", [
    (b"\x02a\x02b\x06", "a union branch that does not exist (its third field is [null, string])"),
    (b"\xff" * 10 + b"\x01", "a varint longer than 10 bytes"),
    (b"\x04\xff\xfe", "invalid UTF-8"),
    (b"\x80", "ends inside a varint"),
    (b"\x01", "a negative length"),
])
def test_unusual_bodies_are_left_to_fastavro(body, why):
    name = "creditstream.AdministrativePenalty"
    fields = avro_reader.compile_record(CODEC._reader(local_ids()[name])[1])
    message = b"\x00" + local_ids()[name].to_bytes(4, "big") + body
    with pytest.raises(avro_reader.NotFast):
        avro_reader.read(fields, message, HEADER_SIZE)
    assert codec_decode(message) == fastavro_decode(message)
    assert isinstance(codec_decode(message), str), why


def test_an_array_written_in_blocks_with_sizes_is_decoded_by_fastavro():
    """A negative block count (the block's byte size follows) is valid Avro the fast reader leaves to fastavro."""
    schema = fastavro.parse_schema({"type": "record", "name": "T", "fields": [
        {"name": "tags", "type": {"type": "array", "items": "string"}}]})
    fields = avro_reader.compile_record(schema)
    body = b"\x01" + b"\x04" + b"\x02a" + b"\x00"  # a block of -1 item (its size, 2 bytes, follows): "a"
    with pytest.raises(avro_reader.NotFast):
        avro_reader.read(fields, body, 0)
    assert fastavro.schemaless_reader(BytesIO(body), schema, None) == {"tags": ["a"]}
    plain = BytesIO()
    fastavro.schemaless_writer(plain, schema, {"tags": ["a", "bc", ""]})
    assert avro_reader.read(fields, plain.getvalue(), 0) == ({"tags": ["a", "bc", ""]}, len(plain.getvalue()))


@pytest.mark.parametrize("schema", [
    {"type": "record", "name": "E", "fields": [{"name": "e", "type": {"type": "enum", "name": "X", "symbols": ["A"]}}]},
    {"type": "record", "name": "N", "fields": [{"name": "n", "type": {"type": "record", "name": "I", "fields": []}}]},
    {"type": "record", "name": "U", "fields": [{"name": "u", "type": ["null", "string", "long"]}]},
    {"type": "record", "name": "R", "fields": [{"name": "u", "type": ["string", "null"]}]},
    {"type": "record", "name": "M", "fields": [{"name": "m", "type": {"type": "map", "values": "string"}}]},
    {"type": "record", "name": "F", "fields": [{"name": "f", "type": "float"}]},
    {"type": "string"},
])
def test_schemas_outside_the_subset_are_left_to_fastavro(schema):
    assert avro_reader.compile_record(fastavro.parse_schema(schema)) is None


@pytest.mark.parametrize("byte", [0, 1, 2, 255])
def test_a_boolean_byte_other_than_0_or_1_is_left_to_fastavro(byte):
    schema = fastavro.parse_schema({"type": "record", "name": "B", "fields": [{"name": "b", "type": "boolean"}]})
    fields = avro_reader.compile_record(schema)
    if byte > 1:
        with pytest.raises(avro_reader.NotFast):
            avro_reader.read(fields, bytes([byte]), 0)
    else:
        assert avro_reader.read(fields, bytes([byte]), 0) == ({"b": byte == 1}, 1)
