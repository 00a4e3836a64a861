"""The .avsc files: parse with fastavro and avro-python3, interoperate both ways, fixed local ids."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import avro.io
import avro.schema
import fastavro
import pytest

from schemas import SCHEMA_DIR, all_schemas, load_schema, local_ids
from streams.samples import ALL_KINDS, KINDS, SCHEMA_OF_KIND, sample_event, schema_of

AVSC_FILES = sorted(SCHEMA_DIR.glob("*.avsc"))
EPOCH = dt.date(1970, 1, 1)

# The ids are part of the wire format: framed messages carry them. Never renumber.
EXPECTED_IDS = {
    "creditstream.AdministrativePenalty": 1,
    "creditstream.AdministrativeLicense": 2,
    "creditstream.CourtDebtorListing": 3,
    "creditstream.CourtDebtorDeletion": 4,
    "creditstream.ActionRecord": 5,
    "creditstream.SubjectRegistration": 6,
    "creditstream.Objection": 7,
    "creditstream.RepairDecision": 8,
    "creditstream.ListingDecision": 9,
    "creditstream.ListChange": 10,
    "creditstream.JointPunishmentFeedback": 11,
    "creditstream.CheckAudit": 12,
}


def test_all_expected_files_exist():
    assert {p.stem for p in AVSC_FILES} == {
        "administrative_penalty",
        "administrative_license",
        "court_debtor_listing",
        "court_debtor_deletion",
        "action_record",
        "subject_registration",
        "objection",
        "repair_decision",
        "listing_decision",
        "list_change",
        "feedback",
        "check_audit",
    }


def test_every_schema_has_a_sample_and_every_input_kind_is_one():
    assert set(SCHEMA_OF_KIND.values()) == set(EXPECTED_IDS)
    assert set(KINDS) < set(ALL_KINDS) == set(SCHEMA_OF_KIND)
    assert set(ALL_KINDS) - set(KINDS) == {"list_change", "check_audit"}


@pytest.mark.parametrize("path", AVSC_FILES, ids=lambda p: p.stem)
def test_parses_with_fastavro_and_avro_python3(path):
    text = path.read_text(encoding="utf-8")
    parsed = fastavro.parse_schema(json.loads(text))
    assert parsed["name"].startswith("creditstream.")
    schema = avro.schema.parse(text)
    assert schema.fullname == parsed["name"]


@pytest.mark.parametrize("path", AVSC_FILES, ids=lambda p: p.stem)
def test_fields_are_documented_and_optionals_default_to_null(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["namespace"] == "creditstream"
    names = [f["name"] for f in schema["fields"]]
    assert len(names) == len(set(names))
    for field in schema["fields"]:
        assert field.get("doc"), f"{field['name']} has no doc"
        assert field["name"].isascii() and field["name"].islower()
        if isinstance(field["type"], list):
            assert field["type"][0] == "null" and len(field["type"]) == 2
            assert "default" in field and field["default"] is None


def test_registry_ids_are_fixed_and_cover_every_schema():
    assert local_ids() == EXPECTED_IDS
    assert set(all_schemas()) == set(EXPECTED_IDS)


def test_load_schema_by_stem_short_and_full_name():
    a = load_schema("administrative_penalty")
    assert a == load_schema("AdministrativePenalty") == load_schema("creditstream.AdministrativePenalty")
    a["fields"].clear()  # a copy: the cache is not changed
    assert load_schema("administrative_penalty")["fields"]
    with pytest.raises(KeyError):
        load_schema("NoSuchSchema")


def test_list_change_types():
    fields = {f["name"]: f["type"] for f in load_schema("list_change")["fields"]}
    assert fields["event_time"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert fields["cause_record_ids"] == {"type": "array", "items": "string"}
    assert fields["effective_date"] == {"type": "int", "logicalType": "date"}
    assert fields["domain"] == ["null", "string"]
    objection = {f["name"]: f for f in load_schema("Objection")["fields"]}
    assert objection["provider_verification"]["type"] == "boolean" and objection["provider_verification"]["default"] is False
    assert objection["resolved_date"]["type"][1]["logicalType"] == "date"
    listing = {f["name"]: f["type"] for f in load_schema("ListingDecision")["fields"]}
    assert listing["period_years"] == ["null", "int"]


def test_decimal_and_date_fields():
    fields = {f["name"]: f["type"] for f in load_schema("administrative_penalty")["fields"]}
    assert fields["fine_amount"][1] == {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 6}
    assert fields["decision_date"] == {"type": "int", "logicalType": "date"}
    lic = {f["name"]: f for f in load_schema("administrative_license")["fields"]}
    assert lic["valid_to"]["type"][1]["logicalType"] == "date"


# --------------------------------------------------------------------------------------------
# interop: avro-python3 1.10 has no logical types: dates are int days, timestamps int ms, decimals
# raw bytes


def _decimal_bytes(value: Decimal, scale: int = 6) -> bytes:
    unscaled = int(value.scaleb(scale))
    size = max(1, (unscaled.bit_length() + 8) // 8)
    return unscaled.to_bytes(size, "big", signed=True)


def _to_avro_python3(value):
    if isinstance(value, dt.datetime):  # timestamp-millis (before date: a datetime is a date)
        return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
    if isinstance(value, dt.date):
        return (value - EPOCH).days
    if isinstance(value, Decimal):
        return _decimal_bytes(value)
    return value


def _from_avro_python3(field_type, value):
    branch = field_type[1] if isinstance(field_type, list) else field_type
    if value is None or not isinstance(branch, dict):
        return value
    if branch.get("logicalType") == "date":
        return EPOCH + dt.timedelta(days=value)
    if branch.get("logicalType") == "timestamp-millis":
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=value)
    if branch.get("logicalType") == "decimal":
        return Decimal(int.from_bytes(value, "big", signed=True)).scaleb(-branch["scale"])
    return value


def _full_record(schema: dict, rec: dict) -> dict:
    return {f["name"]: rec.get(f["name"], f.get("default")) for f in schema["fields"]}


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_fastavro_writes_avro_python3_reads(kind):
    raw = load_schema(schema_of(kind))
    rec = sample_event(kind)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(raw), rec)
    reader = avro.io.DatumReader(avro.schema.parse(json.dumps(raw)))
    got = reader.read(avro.io.BinaryDecoder(io.BytesIO(buf.getvalue())))
    types = {f["name"]: f["type"] for f in raw["fields"]}
    got = {k: _from_avro_python3(types[k], v) for k, v in got.items()}
    assert got == _full_record(raw, rec)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_avro_python3_writes_fastavro_reads(kind):
    raw = load_schema(schema_of(kind))
    rec = _full_record(raw, sample_event(kind))
    datum = {k: _to_avro_python3(v) for k, v in rec.items()}
    buf = io.BytesIO()
    avro.io.DatumWriter(avro.schema.parse(json.dumps(raw))).write(datum, avro.io.BinaryEncoder(buf))
    body = io.BytesIO(buf.getvalue())
    got = fastavro.schemaless_reader(body, fastavro.parse_schema(raw), None)
    assert body.tell() == len(buf.getvalue())
    assert got == rec


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_minimal_record_with_nulls_interoperates(kind):
    """Only the required fields set: optional ones take their defaults in both libraries."""
    raw = load_schema(schema_of(kind))
    full = sample_event(kind)
    required = {f["name"]: full[f["name"]] for f in raw["fields"] if "default" not in f}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(raw), required)
    got = avro.io.DatumReader(avro.schema.parse(json.dumps(raw))).read(
        avro.io.BinaryDecoder(io.BytesIO(buf.getvalue()))
    )
    for f in raw["fields"]:
        if "default" in f:
            assert got[f["name"]] == f["default"]
