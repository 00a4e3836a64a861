"""streams/avro_writer.py against fastavro: the same bytes for every schema of schemas/ it compiles,
and, for values a schema does not take, the same bytes or an error through AvroCodec.encode (run
compiled in the main test leg and as pure Python in the pure leg: ops/build_core.py)."""

from __future__ import annotations

import datetime as dt
from io import BytesIO

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.kinds import CHECK_AUDIT_SCHEMA, LIST_CHANGE_SCHEMA
from schemas import load_schema, local_ids
from sinks.list_changes import list_change_record
from streams import avro_writer
from streams.codec import AvroCodec, EncodeError, LocalRegistry

CODEC = AvroCodec(LocalRegistry())
NAMES = sorted(local_ids())
COMPILED = [n for n in NAMES if avro_writer.compile_record(load_schema(n)) is not None]
UTC = dt.UTC


def _value(ftype, objects: bool) -> st.SearchStrategy:
    """A value fastavro writes for a field type of the project's schemas (from the Avro
    specification); ``objects``: dates and timestamps as date and datetime objects too."""
    if isinstance(ftype, list):
        return st.one_of(*[_value(t, objects) for t in ftype])
    if isinstance(ftype, dict):
        logical = ftype.get("logicalType")
        if logical == "date":
            days = st.integers(-719_162, 2_932_896)  # 0001-01-01 .. 9999-12-31
            return st.one_of(days, st.dates()) if objects else days
        if logical == "timestamp-millis":
            ms = st.integers(-62_135_596_800_000, 253_402_300_799_999)
            return st.one_of(ms, ms.map(lambda m: dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=m))) \
                if objects else ms
        if ftype["type"] == "array":
            return st.lists(_value(ftype["items"], objects), max_size=5)
        return _value(ftype["type"], objects)
    return {"null": st.none(), "string": st.text(max_size=40), "boolean": st.booleans(),
            "int": st.integers(-(2 ** 31), 2 ** 31 - 1), "long": st.integers(-(2 ** 63), 2 ** 63 - 1),
            "bytes": st.binary(max_size=20)}[ftype]


def records(name: str, objects: bool = False) -> st.SearchStrategy:
    """Records of the schema; a field with a default is sometimes left out (fastavro writes the default)."""
    fields = load_schema(name)["fields"]
    required = {f["name"]: _value(f["type"], objects) for f in fields if "default" not in f}
    optional = {f["name"]: _value(f["type"], objects) for f in fields if "default" in f}
    return st.fixed_dictionaries(required, optional=optional)


def fastavro_encode(name: str, record: dict) -> bytes | type:
    """What AvroCodec.encode gave before avro_writer: the framed bytes, or the exception's type."""
    header, schema, _ = CODEC._writer(name, None)
    bio = BytesIO()
    try:
        fastavro.schemaless_writer(bio, schema, record)
    except Exception as exc:  # noqa: BLE001
        return type(exc)
    return header + bio.getvalue()


def codec_encode(name: str, record: dict) -> bytes | type:
    try:
        return CODEC.encode(name, record)
    except EncodeError:
        return EncodeError


def test_the_schemas_it_writes():
    """Every schema but the penalty's (decimals: fastavro writes those) is compiled, the list
    changes and the check audit among them: the worker and the API take the fast path."""
    assert LIST_CHANGE_SCHEMA in COMPILED and CHECK_AUDIT_SCHEMA in COMPILED
    assert set(NAMES) - set(COMPILED) == {"creditstream.AdministrativePenalty"}


@pytest.mark.parametrize("name", COMPILED)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_same_bytes_as_fastavro(name, data):
    record = data.draw(records(name))
    header, _, fields = CODEC._writer(name, None)
    out = bytearray(header)
    avro_writer.write(fields, record, out)  # never NotFast for values of the schema's own types
    assert bytes(out) == fastavro_encode(name, record)
    # dates and timestamps as objects: fastavro writes a timestamp, the same bytes either way
    record = data.draw(records(name, objects=True))
    assert CODEC.encode(name, record) == fastavro_encode(name, record)


_ODD = [None, True, False, 0, -1, 200, 2 ** 31, 2 ** 63, -(2 ** 63) - 1, 1.5, "", "x", "名单", "\ud800", b"x",
        [], ["a"], ["a", 1], ["\ud800"], {}, {"a": 1}, dt.date(2025, 1, 2), dt.datetime(2025, 1, 2, tzinfo=UTC)]


@pytest.mark.parametrize("name", COMPILED)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_values_a_schema_does_not_take_give_what_fastavro_gives(name, data):
    record = dict(data.draw(records(name)))
    fields = [f["name"] for f in load_schema(name)["fields"]]
    for field in data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True)):
        if data.draw(st.booleans()):
            record[field] = data.draw(st.sampled_from(_ODD))
        else:
            record.pop(field, None)
    assert codec_encode(name, record) == (fastavro_encode(name, record) if isinstance(
        fastavro_encode(name, record), bytes) else EncodeError)


def test_a_list_change_as_the_subject_agent_writes_it():
    change = {"change_id": "8f944fd0cc56d38b103b2b2c2c7fd210", "subject": "91410700M00001XE88",
              "list": "publicity:penalty|11410100005200036R|豫合罚〔2025〕93号", "kind": "publicity", "domain": None,
              "transition": "repair_eligible", "effective_date": "2025-06-17",
              "causes": ["penalty|11410100005200036R|豫合罚〔2025〕93号"], "cause_kind": "expiry",
              "cause_decision": "penalty|11410100005200036R|豫合罚〔2025〕93号", "event_ms": 1796414226006,
              "rules_version": "2026.1"}
    record = list_change_record(change, "uscc", 1796414226006)
    header, _, fields = CODEC._writer(LIST_CHANGE_SCHEMA, None)
    out = bytearray(header)
    avro_writer.write(fields, record, out)
    assert bytes(out) == fastavro_encode(LIST_CHANGE_SCHEMA, record)
    decoded = CODEC.decode(bytes(out))[1]
    assert decoded["effective_date"] == dt.date(2025, 6, 17) and decoded["cause_record_ids"] == change["causes"]


def test_a_schema_it_does_not_compile():
    assert avro_writer.compile_record({"type": "record", "name": "X", "fields": [
        {"name": "a", "type": ["null", "string", "long"]}]}) is None
    assert avro_writer.compile_record({"type": "record", "name": "X", "fields": [
        {"name": "a", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4}}]}) is None
    assert avro_writer.compile_record({"type": "enum", "name": "E", "symbols": ["A"]}) is None
