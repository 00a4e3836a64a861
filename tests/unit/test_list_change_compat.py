"""schemas/list_change.avsc (id 14) evolves compatibly with the previous versions
(schemas/list_change_v1.avsc, id 10, and schemas/list_change_v2.avsc, id 13, retired: list-changes
keeps what was framed with them for ever).

Backward: a reader using the new schema reads data written with the old one (the added fields take
their defaults). Forward: a reader still on the old schema reads data written with the new one
(Avro schema resolution skips the writer fields the reader does not know). Checked with fastavro
and with avro-python3 (1.10: no logical types, so dates are int days and timestamps int ms).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import avro.io
import avro.schema
import fastavro
import pytest

from schemas import SCHEMA_DIR, load_schema, local_ids
from streams.codec import AvroCodec, DecodeError, LocalRegistry, frame

FULL_NAME = "creditstream.ListChange"
NEW_PATH = SCHEMA_DIR / "list_change.avsc"
OLD_PATH = SCHEMA_DIR / "list_change_v1.avsc"
V2_PATH = SCHEMA_DIR / "list_change_v2.avsc"  # id 13: the body workers framed with 10 for a while
OLD_ID, NEW_ID = 10, 14
UTC = dt.UTC
EPOCH = dt.date(1970, 1, 1)

# The fields this evolution added, with the defaults old data decodes to.
ADDED_DEFAULTS = {"cause_kind": "", "cause_decision": None, "withdraws": None, "arrival_time": None, "sequence": 0}

# A record valid under the old schema (every field of v1, nothing more).
OLD_RECORD = {
    "change_id": "lc-91310110666007217T-blacklist:environment-entered-2024-07-15",
    "subject_id": "91310110666007217T",
    "subject_kind": "uscc",
    "list": "blacklist:environment",
    "list_kind": "blacklist",
    "domain": "environment",
    "transition": "entered",
    "effective_date": dt.date(2024, 7, 15),
    "cause_record_ids": ["listing_decision|11410100MB1P372890|郑环失信〔2024〕006号"],
    "event_time": dt.datetime(2024, 7, 15, 2, 0, tzinfo=UTC),
    "rules_version": "henan-2024.1",
}

# A record that uses every new field: a withdrawal of the change above.
NEW_RECORD = {
    **OLD_RECORD,
    "change_id": "lc-91310110666007217T-blacklist:environment-withdrawn-2024-07-15",
    "transition": "withdrawn",
    "cause_kind": "withdrawal",
    "cause_decision": "court_deletion|12410100416012347J|（2024）豫01执恢123号",
    "withdraws": OLD_RECORD["change_id"],
    "arrival_time": dt.datetime(2024, 8, 3, 9, 30, 15, 250000, tzinfo=UTC),
    "sequence": 1_722_677_415_250_000,
}


def _raw(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _fields(schema: dict) -> dict[str, dict]:
    return {f["name"]: f for f in schema["fields"]}


def _fastavro_write(schema: dict, record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


def _fastavro_read(data: bytes, writer: dict, reader: dict) -> dict:
    body = io.BytesIO(data)
    got = fastavro.schemaless_reader(body, fastavro.parse_schema(writer), fastavro.parse_schema(reader))
    assert body.tell() == len(data), "the reader did not consume the whole body"
    return got


def _to_avro_python3(value):
    if isinstance(value, dt.datetime):  # timestamp-millis (before date: a datetime is a date)
        return (value - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(milliseconds=1)
    if isinstance(value, dt.date):
        return (value - EPOCH).days
    return value


# --------------------------------------------------------------------------------------------
# (a) both versions parse with both libraries


@pytest.mark.parametrize("path", [OLD_PATH, NEW_PATH], ids=["v1", "current"])
def test_parses_with_fastavro_and_avro_python3(path):
    text = path.read_text(encoding="utf-8")
    parsed = fastavro.parse_schema(json.loads(text))
    assert parsed["name"] == FULL_NAME
    schema = avro.schema.parse(text)
    assert schema.fullname == parsed["name"]


def test_v1_is_the_previous_version():
    """The retired file is a different, older version of the same record (not a copy of the current)."""
    old, new = _raw(OLD_PATH), _raw(NEW_PATH)
    assert old["name"] == new["name"] and old["namespace"] == new["namespace"]
    assert old != new
    assert set(_fields(old)) < set(_fields(new))


# --------------------------------------------------------------------------------------------
# (b) backward: written with the old schema, read with the new one


def test_old_data_read_with_new_schema_gets_defaults():
    old, new = _raw(OLD_PATH), _raw(NEW_PATH)
    got = _fastavro_read(_fastavro_write(old, OLD_RECORD), writer=old, reader=new)
    assert got == {**OLD_RECORD, **ADDED_DEFAULTS}
    assert got["cause_kind"] == ""
    assert got["cause_decision"] is None and got["withdraws"] is None and got["arrival_time"] is None


def test_old_data_read_with_new_schema_avro_python3():
    old, new = _raw(OLD_PATH), _raw(NEW_PATH)
    data = _fastavro_write(old, OLD_RECORD)
    reader = avro.io.DatumReader(avro.schema.parse(json.dumps(old)), avro.schema.parse(json.dumps(new)))
    got = reader.read(avro.io.BinaryDecoder(io.BytesIO(data)))
    assert got == {**{k: _to_avro_python3(v) for k, v in OLD_RECORD.items()}, **ADDED_DEFAULTS}


# --------------------------------------------------------------------------------------------
# (c) forward: written with the new schema, read with the old one


def test_new_data_read_with_old_schema_keeps_old_fields():
    old, new = _raw(OLD_PATH), _raw(NEW_PATH)
    data = _fastavro_write(new, NEW_RECORD)
    got = _fastavro_read(data, writer=new, reader=old)
    assert set(got) == set(_fields(old))
    assert got == {k: NEW_RECORD[k] for k in _fields(old)}
    # the new fields were really on the wire (and skipped), not dropped by the writer
    assert _fastavro_read(data, writer=new, reader=new) == NEW_RECORD


def test_new_data_read_with_old_schema_avro_python3():
    old, new = _raw(OLD_PATH), _raw(NEW_PATH)
    data = _fastavro_write(new, NEW_RECORD)
    reader = avro.io.DatumReader(avro.schema.parse(json.dumps(new)), avro.schema.parse(json.dumps(old)))
    got = reader.read(avro.io.BinaryDecoder(io.BytesIO(data)))
    assert got == {k: _to_avro_python3(NEW_RECORD[k]) for k in _fields(old)}


def test_new_schema_with_only_old_fields_set_writes_defaults():
    """A producer that does not set the new fields yet still writes valid new-schema data."""
    new = _raw(NEW_PATH)
    assert _fastavro_read(_fastavro_write(new, OLD_RECORD), writer=new, reader=new) == {
        **OLD_RECORD,
        **ADDED_DEFAULTS,
    }


# --------------------------------------------------------------------------------------------
# (d) the evolution rules: every added field has a default; nothing removed or retyped


def test_every_added_field_has_a_default():
    old, new = _fields(_raw(OLD_PATH)), _fields(_raw(NEW_PATH))
    added = [name for name in new if name not in old]
    assert added, "the current schema adds no field to the fixture"
    missing = [name for name in added if "default" not in new[name]]
    assert not missing, f"fields added without a default (old data cannot be read): {missing}"
    for name in added:
        ftype, default = new[name]["type"], new[name]["default"]
        if isinstance(ftype, list):  # a union's default must match its first branch
            assert ftype[0] == "null" and default is None, name
    assert {name: new[name]["default"] for name in added} == ADDED_DEFAULTS


def test_no_field_removed_or_retyped():
    old, new = _fields(_raw(OLD_PATH)), _fields(_raw(NEW_PATH))
    assert set(old) <= set(new), f"fields removed: {sorted(set(old) - set(new))}"
    for name, field in old.items():
        assert new[name]["type"] == field["type"], f"{name} changed type"
        assert ("default" in new[name]) == ("default" in field) and new[name].get("default") == field.get("default"), name


def test_docs_of_changed_fields():
    new = _fields(_raw(NEW_PATH))
    assert "withdrawn" in new["transition"]["doc"] and "withdraws" in new["transition"]["doc"]
    assert "never the arrival date" in new["effective_date"]["doc"]
    assert new["event_time"]["doc"] == _fields(_raw(OLD_PATH))["event_time"]["doc"]
    for kind in (
        "listing", "record", "expiry", "deletion", "repair", "removal", "revocation", "correction",
        "objection_filed", "objection_resolved", "objection_upheld", "adverse_record", "clean_period",
        "withdrawal",
    ):
        assert f"{kind} (" in new["cause_kind"]["doc"], kind


# --------------------------------------------------------------------------------------------
# (e) the local registry: the current version under its own id, the previous one still under 10


def test_registry_names_each_version_by_its_own_id():
    registry_file = json.loads((SCHEMA_DIR / "registry.json").read_text(encoding="utf-8"))
    assert registry_file[FULL_NAME] == NEW_ID  # a changed schema gets a new id; 10 keeps v1
    assert local_ids()[FULL_NAME] == NEW_ID
    reg = LocalRegistry()
    assert reg.id_for(FULL_NAME) == reg.id_for("list_change") == NEW_ID
    assert reg.name_of(NEW_ID) == reg.name_of(OLD_ID) == FULL_NAME
    served = {f["name"] for f in reg.schema(NEW_ID)["fields"]}
    assert served == set(_fields(load_schema("list_change"))) >= set(ADDED_DEFAULTS)
    assert {f["name"] for f in reg.schema(OLD_ID)["fields"]} == set(_fields(_raw(OLD_PATH)))
    assert AvroCodec().encode(FULL_NAME, NEW_RECORD)[:5] == frame(NEW_ID, b"")  # encoding: the new id


def _v1_message() -> bytes:
    """A list change written before the upgrade: the v1 body framed with id 10, as list-changes keeps it."""
    return frame(OLD_ID, _fastavro_write(_raw(OLD_PATH), OLD_RECORD))


def test_a_v1_change_framed_with_id_10_decodes_with_the_new_fields_defaults():
    """It was decoded with the current schema under id 10 and failed (truncated)."""
    assert AvroCodec().decode(_v1_message()) == (FULL_NAME, {**OLD_RECORD, **ADDED_DEFAULTS})
    assert AvroCodec().decode(frame(NEW_ID, _fastavro_write(_raw(NEW_PATH), NEW_RECORD))) == (FULL_NAME, NEW_RECORD)


def test_a_change_of_the_versions_that_framed_the_current_schema_with_id_10_still_decodes():
    """From bb90798 until ListChange had id 13, workers framed the then current body (now
    list_change_v2.avsc) with id 10: read with v1 it leaves bytes, so it is read with 13's schema
    (never mistaken: v1 is a prefix of it), and given the current schema's defaults."""
    v2_record = {k: v for k, v in NEW_RECORD.items() if k != "sequence"}
    misframed = frame(OLD_ID, _fastavro_write(_raw(V2_PATH), v2_record))
    assert AvroCodec().decode(misframed) == (FULL_NAME, {**v2_record, "sequence": 0})
    with pytest.raises(DecodeError) as e:  # anything else left over is still trailing bytes
        AvroCodec().decode(_v1_message() + b"\x00")
    assert e.value.reason == "trailing-bytes"


def test_the_change_feed_shows_a_v1_change():
    """The API's /changes (creditstream/api.py: Reader.decode_changes, then change_json) dropped it."""
    from aiokafka import ConsumerRecord

    from creditstream.api import change_json
    from creditstream.settings import Settings
    from ops.inspect import Reader

    value = _v1_message()
    v2_body = _fastavro_write(_raw(V2_PATH), {k: v for k, v in NEW_RECORD.items() if k != "sequence"})
    body = _fastavro_write(_raw(NEW_PATH), NEW_RECORD)
    msgs = [ConsumerRecord("creditstream.list-changes", 0, offset, 0, 0, b"91310110666007217T", v, None, 18, len(v),
                           [("change_id", b"x")])
            for offset, v in enumerate([value, frame(OLD_ID, v2_body), frame(13, v2_body), frame(NEW_ID, body)])]
    got = [change_json(rec, msg.partition, msg.offset) for msg, rec in Reader(Settings(), None).decode_changes(msgs)]
    assert [c["offset"] for c in got] == [0, 1, 2, 3]
    assert got[0]["change_id"] == OLD_RECORD["change_id"] and got[0]["effective_date"] == "2024-07-15"
    assert (got[0]["cause_kind"], got[0]["withdraws"], got[0]["arrival_time"]) == ("", None, None)
    assert got[1]["withdraws"] == got[2]["withdraws"] == got[3]["withdraws"] == OLD_RECORD["change_id"]
    assert [c["sequence"] for c in got] == [0, 0, 0, NEW_RECORD["sequence"]]


def test_the_writer_gives_the_bytes_of_date_and_datetime_values():
    """sinks/list_changes.py passes logical types as Avro's ints (cheaper): the bytes are the ones a
    record with date and datetime objects gives, and readers get dates and datetimes back."""
    import datetime as dt

    from creditstream.connections import make_codec
    from creditstream.settings import Settings
    from sinks.list_changes import list_change_record

    codec = make_codec(Settings())
    change = {"change_id": "c" * 32, "subject": "91310110666007217T", "list": "blacklist:environment",
              "kind": "blacklist", "domain": "environment", "transition": "entered", "effective_date": "2024-07-15",
              "causes": ["listing_decision|u|d"], "event_ms": 1721001600000, "rules_version": "2026-11-30",
              "cause_kind": "listing", "cause_decision": "d", "withdraws": None}
    fast = list_change_record(change, "uscc", 1721001600123)
    objects = dict(fast, effective_date=dt.date(2024, 7, 15),
                   event_time=dt.datetime(2024, 7, 15, 0, 0, tzinfo=dt.UTC),
                   arrival_time=dt.datetime(2024, 7, 15, 0, 0, 0, 123000, tzinfo=dt.UTC))
    name = "creditstream.ListChange"
    assert codec.encode(name, fast) == codec.encode(name, objects)
    _, back = codec.decode(codec.encode(name, fast))
    assert back["effective_date"] == dt.date(2024, 7, 15)
    assert back["arrival_time"] == dt.datetime(2024, 7, 15, 0, 0, 0, 123000, tzinfo=dt.UTC)
