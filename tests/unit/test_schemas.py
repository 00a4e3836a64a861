"""The .avsc files: parse with fastavro and avro-python3, interoperate both ways, fixed local ids."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from decimal import Decimal

import avro.io
import avro.schema
import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas import SCHEMA_DIR, all_schemas, load_schema, local_ids, retired_schemas, reused_ids
from streams.codec import LocalRegistry
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
    "creditstream.ListChange": 14,  # 10 until it gained four fields, 13 until it gained sequence: retired
    "creditstream.JointPunishmentFeedback": 11,
    "creditstream.CheckAudit": 12,
}

# Previous versions of a schema keep their ids, read-only (schemas/retired.json).
RETIRED_IDS = {10: ("creditstream.ListChange", "list_change_v1.avsc"),
               13: ("creditstream.ListChange", "list_change_v2.avsc")}

# Each id's schema as first committed, pinned: (SHA-256 of its Parsing Canonical Form, what the
# bytes are; SHA-256 of the schema without its docs, logical types and defaults included, what a
# reader makes of them). An .avsc may change its docs; anything else is a new schema with a new id
# (schemas/__init__.py). Ids 1-9, 11, 12: the files' first commits; 10: the ListChange of 552248c
# (schemas/list_change_v1.avsc); 13: the ListChange that added cause_kind, cause_decision,
# withdraws and arrival_time (bb90798, framed with id 10 by mistake until the id was given;
# schemas/list_change_v2.avsc); 14: the ListChange that added sequence.
FINGERPRINTS = {
    1: ("526c86061bf4ee2852fa15fef3929eb6d9e114c8c7973abf566c909dd97efe8a",
        "dbf3b4d421f29e6133589dc4e3cdc7e7bf3e22e9c530d5f1108befdd5dd42fe5"),
    2: ("9ae00c274cb6b3cc3f3abb147edc302fd6910763218ca0b18029b82236c20510",
        "888f5f15c762cf14d45d952837e332c3f079750c47b0052709f46233fa83579f"),
    3: ("a4d3d234579c5b46073ffa64286d41c1ef2b601679b11659122dc195355b409e",
        "0e19fbf14863825b2db84bb654fd982a41a845e99f4b84243caf8dc2f94e4d99"),
    4: ("995eb9c3fff5a3db4af12c007021efd91af6502f3d5390a8768095792ebae21c",
        "efeacb277299f0530d5d2e9b97f1b3a3b79f7018780cd11c5f7380ab41f2f2a3"),
    5: ("16d58238f016552124c1b36c79e86e86f5b347bedfe7b8037e9fbb6956e0e8e7",
        "02f17b989a92cad4ea58bd9b274084834c8019c81d3a7168ac33e48596ad7071"),
    6: ("d7635f706b9cd6ff660d7613130929012ae76d6dafa8acd45b4847c0ce93c2ed",
        "b1f96653ef376b9ae3903f1be01ae9d18cb031b53189f9fb8e912f6b09f91a10"),
    7: ("6803e3b6bc786c7a6cf265eb238da04e49afc91ec853b2f10ef0db1ee57bc22f",
        "988b8a46f6af1ce18bf6da230ab96cf4c374d9ef151b05e45ecc872b71ceca22"),
    8: ("72ed5ef529868dc8c3c656bf62cfbf4536dbcd5b25a2d7342882d7b7eb95152e",
        "b807b60ffc8b0e921a726b7ae35ddae1cfe2d697504ad7231eb4e4c2353080d4"),
    9: ("881695b35c37d5bcabeb24f265deaa66d51fbcf19d1bd722bfc28883b6044d3a",
        "b4b06ecc0f179c4bd36b25a0c42d1818afefd8cd5846bb681b67a8e46acbebe8"),
    10: ("0e54e3bb4a441bfcba2e0221b332479ffc30905766813b7be8dfe91b597c8cc1",
         "8a677c8127da2d151708df3289edc0c9a1be2801b17d67003d9f3f3be3019aa2"),
    11: ("2be59016634afb3e2a8daff8c078fd2a4fc0236cb8a4865c71a64aa79a01d127",
         "d4947b303e93b5d6a0bbabddc8cc2a0dbbf316fd0a8ebb528d7e7a3d4c13a97c"),
    12: ("9d708dea10da4f74f1fd62fe5b2120ea3b6ed4433156bd258c5b1dc1316964e8",
         "7eaee6e39ef296dd4d72f7eac0126614497550499258479eb74a2b12fb4349ab"),
    13: ("33d1994d6ed7f4373324b2f38d99a116b4cc62096e8858d27c03ee82f137f107",
         "3322b344777927ae417ba0f78f3e77bc3a67f802c0758b32731d1e7ba2b8fc75"),
    14: ("806e3b359c096b31f090bea53bee0883f933b0cce9e8dc1f1922d20ab1a9380a",
         "6f25006ad4e8c234c7565c9683d98d36715b9f330754171f742e0d8d463a06d1"),
}


def _without_docs(value):
    if isinstance(value, dict):
        return {k: _without_docs(v) for k, v in value.items() if k != "doc"}
    if isinstance(value, list):
        return [_without_docs(v) for v in value]
    return value


def _fingerprints(schema: dict) -> tuple[str, str]:
    meaning = json.dumps(_without_docs(schema), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (fingerprint(to_parsing_canonical_form(schema), "SHA-256"),
            hashlib.sha256(meaning.encode("utf-8")).hexdigest())


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
        "list_change_v1",
        "list_change_v2",
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
    retired = json.loads((SCHEMA_DIR / "retired.json").read_text(encoding="utf-8"))
    assert {int(sid): e["file"] for sid, e in retired.items()} == {sid: f for sid, (_, f) in RETIRED_IDS.items()}
    assert reused_ids() == {10: 13}  # ListChange's second version was framed with 10 until it had 13
    assert not set(RETIRED_IDS) & set(EXPECTED_IDS.values())


def test_each_id_keeps_the_schema_it_was_first_committed_with():
    """A schema id never changes meaning: what the local registry serves under each id (current and
    retired) has the fingerprints of the schema first committed under it. ListChange had changed
    under id 10 (bb90798); a change of anything but docs under an id fails here."""
    served = {sid: all_schemas()[name] for name, sid in local_ids().items()}
    served.update(retired_schemas())
    changed = {sid: _fingerprints(schema) for sid, schema in served.items()
               if sid in FINGERPRINTS and _fingerprints(schema) != FINGERPRINTS[sid]}
    assert not changed, f"schemas changed under their ids (give them new ids): {changed}"
    assert set(served) == set(FINGERPRINTS), "a new id needs its fingerprints in FINGERPRINTS"
    registry = LocalRegistry()
    for sid, (name, _file) in RETIRED_IDS.items():
        assert registry.name_of(sid) == name and registry.id_for(name) == EXPECTED_IDS[name] != sid


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
