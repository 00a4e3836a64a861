"""Confluent wire format codec: round trips, every DecodeError reason, fuzzing, registry clients."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import local_ids
from streams.codec import (
    AvroCodec,
    ConfluentRegistry,
    DecodeError,
    EncodeError,
    LocalRegistry,
    RegistryError,
    UnknownSchemaId,
    frame,
    from_json,
    to_json,
    unframe,
)
from streams.samples import KINDS, sample_event, schema_of

CODEC = AvroCodec(LocalRegistry())
PENALTY = "creditstream.AdministrativePenalty"
VALID_MESSAGES = [CODEC.encode(schema_of(k), sample_event(k)) for k in KINDS]


def _filled(kind: str) -> dict:
    """The sample as it comes back from decoding: every schema field present."""
    from schemas import load_schema

    rec = sample_event(kind)
    return {f["name"]: rec.get(f["name"], f.get("default")) for f in load_schema(schema_of(kind))["fields"]}


# --------------------------------------------------------------------------------------------
# round trips and framing


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(kind):
    data = CODEC.encode(schema_of(kind), sample_event(kind))
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == local_ids()[schema_of(kind)]
    name, rec = CODEC.decode(data)
    assert name == schema_of(kind)
    assert rec == _filled(kind)


def test_decode_accepts_bytearray_and_memoryview():
    data = VALID_MESSAGES[0]
    assert CODEC.decode(bytearray(data)) == CODEC.decode(memoryview(data)) == CODEC.decode(data)


def test_frame_unframe():
    assert frame(7, b"abc") == b"\x00\x00\x00\x00\x07abc"
    assert unframe(b"\x00\x00\x00\x01\x00xyz") == (256, b"xyz")
    assert unframe(frame(0xFFFFFFFF, b"")) == (0xFFFFFFFF, b"")
    with pytest.raises(ValueError):
        frame(-1, b"")
    with pytest.raises(DecodeError) as e:
        unframe(b"\x01\x00\x00\x00\x01")
    assert e.value.reason == "bad-magic"


def test_local_registry():
    reg = LocalRegistry()
    assert reg.id_for(PENALTY) == 1
    assert reg.id_for("AdministrativePenalty") == 1
    assert reg.name_of(1) == PENALTY
    assert reg.schema(1)["name"] == PENALTY
    with pytest.raises(UnknownSchemaId):
        reg.schema(999)
    with pytest.raises(KeyError):
        reg.id_for("creditstream.Nope")


def test_encode_error_for_a_record_that_does_not_fit():
    with pytest.raises(EncodeError):
        CODEC.encode(PENALTY, {"subject_name": "x"})  # required fields missing
    with pytest.raises(EncodeError):
        CODEC.encode(PENALTY, sample_event("penalty", fine_amount="lots"))


# --------------------------------------------------------------------------------------------
# every DecodeError reason


def _reason(data) -> str:
    with pytest.raises(DecodeError) as e:
        CODEC.decode(data)
    assert e.value.message and str(e.value).startswith(e.value.reason)
    return e.value.reason


def test_reason_empty():
    assert _reason(b"") == "empty"
    assert _reason(None) == "empty"


def test_reason_bad_magic():
    assert _reason(b"\x01" + VALID_MESSAGES[0][1:]) == "bad-magic"
    assert _reason(b"{\"json\": 1}") == "bad-magic"


def test_reason_truncated_header_and_body():
    assert _reason(b"\x00\x00\x00") == "truncated"
    assert _reason(b"\x00\x00\x00\x00\x01") == "truncated"  # header only, body missing
    assert _reason(VALID_MESSAGES[0][:-1]) == "truncated"


def test_reason_unknown_schema_id():
    with pytest.raises(DecodeError) as e:
        CODEC.decode(frame(4242, b"\x00"))
    assert e.value.reason == "unknown-schema-id" and e.value.schema_id == 4242


def test_reason_avro_decode_error():
    # SubjectRegistration starts with the uscc string: 2 bytes of invalid UTF-8.
    sid = local_ids()["creditstream.SubjectRegistration"]
    assert _reason(frame(sid, b"\x04\xff\xfe" + b"\x00" * 40)) == "avro-decode-error"
    # A union branch index out of range (subject_category is ["null", "string"]: index 5).
    good = CODEC.encode("creditstream.SubjectRegistration", {"uscc": "A", "subject_name": "B"})
    assert _reason(good[:9] + b"\x0a" + good[10:]) == "avro-decode-error"


def test_reason_trailing_bytes():
    assert _reason(VALID_MESSAGES[0] + b"\x00") == "trailing-bytes"


# --------------------------------------------------------------------------------------------
# fuzzing: nothing but DecodeError, ever


def _decode_or_decode_error(data: bytes) -> None:
    try:
        name, rec = CODEC.decode(data)
    except DecodeError as e:
        assert e.reason in {"empty", "bad-magic", "truncated", "unknown-schema-id", "avro-decode-error", "trailing-bytes"}
    else:
        assert isinstance(name, str) and isinstance(rec, dict)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_decode_error(data):
    _decode_or_decode_error(data)


@settings(max_examples=300)
@given(st.sampled_from(sorted(local_ids().values())), st.binary(max_size=400))
def test_random_bodies_with_valid_header_only_raise_decode_error(sid, body):
    _decode_or_decode_error(frame(sid, body))


@pytest.mark.parametrize("index", range(len(KINDS)), ids=KINDS)
def test_every_truncation_raises_decode_error(index):
    data = VALID_MESSAGES[index]
    for cut in range(len(data)):
        with pytest.raises(DecodeError) as e:
            CODEC.decode(data[:cut])
        assert e.value.reason in {"empty", "truncated", "avro-decode-error"}


@settings(max_examples=300)
@given(st.integers(0, len(KINDS) - 1), st.data())
def test_mutations_of_valid_messages_only_raise_decode_error(index, data):
    msg = bytearray(VALID_MESSAGES[index])
    pos = data.draw(st.integers(5, len(msg) - 1))
    msg[pos] = data.draw(st.integers(0, 255))
    extra = data.draw(st.binary(max_size=8))
    _decode_or_decode_error(bytes(msg) + extra)


# --------------------------------------------------------------------------------------------
# JSON <-> Avro


def test_a_date_time_with_a_zone_counts_by_its_china_date():
    """docs/events.md: a date may be sent as an ISO date-time; the rules' dates are China dates
    (domain/clock.py), so 20:00 UTC on the 3rd is the 4th."""
    base = {"subject_name": "郑州市某某有限公司", "subject_category": "法人及非法人组织", "uscc": "91310110666007217T",
            "decision_doc_no": "郑市监罚〔2024〕1号", "penalty_category": "罚款", "deciding_authority": "某局",
            "source_unit": "某局"}
    for sent, date in [("2026-12-03T20:00:00Z", dt.date(2026, 12, 4)), ("2026-12-03T16:30:00+00:00", dt.date(2026, 12, 4)),
                       ("2026-12-03T15:59:59+00:00", dt.date(2026, 12, 3)), ("2026-12-04T01:00:00+08:00", dt.date(2026, 12, 4)),
                       ("2026-12-03T23:00:00", dt.date(2026, 12, 3)), ("2026-12-03 00:00:00.0", dt.date(2026, 12, 3)),
                       (dt.datetime(2026, 12, 3, 17, tzinfo=dt.UTC), dt.date(2026, 12, 4))]:
        assert from_json(PENALTY, dict(base, decision_date=sent))["decision_date"] == date, sent


def test_from_json_converts_dates_and_decimals():
    obj = {
        "subject_name": "郑州市某某有限公司",
        "subject_category": "法人及非法人组织",
        "uscc": "91310110666007217T",
        "decision_doc_no": "郑市监罚〔2024〕1号",
        "penalty_category": "罚款",
        "fine_amount": "1.5",
        "confiscated_amount": 2,
        "decision_date": "2024-05-20",
        "valid_until": "2025-05-20T00:00:00+08:00",
        "publicity_end_date": None,
        "deciding_authority": "郑州市市场监督管理局",
        "source_unit": "郑州市市场监督管理局",
        "not_in_schema": "dropped",
    }
    rec = from_json(PENALTY, obj)
    assert rec["fine_amount"] == Decimal("1.500000") and str(rec["fine_amount"]) == "1.500000"
    assert rec["confiscated_amount"] == Decimal("2.000000")
    assert rec["decision_date"] == dt.date(2024, 5, 20)
    assert rec["valid_until"] == dt.date(2025, 5, 20)
    assert rec["publicity_end_date"] is None
    assert "not_in_schema" not in rec
    name, back = CODEC.decode(CODEC.encode(PENALTY, rec))
    assert back["fine_amount"] == Decimal("1.5")
    assert to_json(name, back)["decision_date"] == "2024-05-20"
    assert to_json(name, back)["fine_amount"] == "1.500000"
    json.dumps(to_json(name, back))


@pytest.mark.parametrize(
    "field,value", [("decision_date", "2024-13-01"), ("decision_date", "yesterday"), ("fine_amount", "lots"), ("fine_amount", "NaN")]
)
def test_from_json_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        from_json(PENALTY, {field: value})


def test_from_json_round_trips_every_sample():
    for kind in KINDS:
        rec = sample_event(kind)
        assert from_json(schema_of(kind), json.loads(json.dumps(to_json(schema_of(kind), rec), ensure_ascii=False))) == rec


# --------------------------------------------------------------------------------------------
# Confluent registry client, against an in-process fake of the REST API (test double)


class _FakeRegistry:
    def __init__(self):
        self.schemas: dict[int, str] = {}
        self.by_text: dict[str, int] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.fail_subjects: set[str] = set()
        self.refuse: dict[int, tuple[int, dict]] = {}  # schema id -> (status, body) answered for it
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                outer.requests.append(("GET", self.path, None))
                parts = self.path.strip("/").split("/")
                if parts == ["subjects"]:
                    return self._send(200, sorted(outer.subjects))
                if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
                    sid = int(parts[2])
                    if sid > 0x7FFFFFFF:  # Confluent's resource takes a Java int: no route, a bare 404
                        return self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
                    if sid in outer.refuse:
                        return self._send(*outer.refuse[sid])
                    if sid in outer.schemas:
                        return self._send(200, {"schema": outer.schemas[sid]})
                    return self._send(404, {"error_code": 40403, "message": f"Schema {sid} not found"})
                self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append(("POST", self.path, self.headers.get("Content-Type")))
                parts = self.path.strip("/").split("/")
                if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
                    subject = parts[1]
                    if subject in outer.fail_subjects:
                        return self._send(500, {"error_code": 50001, "message": "Error in the backend data store"})
                    try:
                        text = json.loads(body)["schema"]
                        json.loads(text)
                    except (ValueError, KeyError):
                        return self._send(422, {"error_code": 42201, "message": "Invalid schema"})
                    canon = json.dumps(json.loads(text), sort_keys=True)
                    sid = outer.by_text.setdefault(canon, 100 + len(outer.by_text))
                    outer.schemas[sid] = text
                    outer.subjects.setdefault(subject, []).append(sid)
                    return self._send(200, {"id": sid})
                self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_registry():
    fake = _FakeRegistry()
    yield fake
    fake.close()


def test_confluent_register_with_topic_name_strategy(fake_registry):
    reg = ConfluentRegistry(fake_registry.url, timeout=2)
    sid = reg.id_for(PENALTY, topic="cs.penalty")
    assert sid >= 100
    assert fake_registry.subjects == {"cs.penalty-value": [sid]}
    assert fake_registry.requests[0] == ("POST", "/subjects/cs.penalty-value/versions", "application/vnd.schemaregistry.v1+json")
    # cached: no second request
    assert reg.id_for(PENALTY, topic="cs.penalty") == sid
    assert len(fake_registry.requests) == 1
    # no topic: the record name is the subject
    assert reg.id_for(PENALTY) == sid
    assert f"{PENALTY}" in fake_registry.subjects


def test_confluent_codec_round_trip_across_clients(fake_registry):
    producer = AvroCodec(ConfluentRegistry(fake_registry.url))
    data = producer.encode(PENALTY, sample_event("penalty"), topic="cs.penalty")
    sid = int.from_bytes(data[1:5], "big")
    consumer = AvroCodec(ConfluentRegistry(fake_registry.url))  # fresh caches: fetches by id
    name, rec = consumer.decode(data)
    assert name == PENALTY and rec == _filled("penalty")
    assert ("GET", f"/schemas/ids/{sid}", None) in fake_registry.requests
    n = len(fake_registry.requests)
    consumer.decode(data)
    assert len(fake_registry.requests) == n  # schema cached


def test_confluent_unknown_id_is_a_decode_error(fake_registry):
    codec = AvroCodec(ConfluentRegistry(fake_registry.url))
    with pytest.raises(DecodeError) as e:
        codec.decode(frame(999, b"\x00"))
    assert e.value.reason == "unknown-schema-id"
    with pytest.raises(UnknownSchemaId):
        ConfluentRegistry(fake_registry.url).schema(999)


def test_confluent_server_error_is_a_registry_error(fake_registry):
    fake_registry.fail_subjects.add("cs.broken-value")
    reg = ConfluentRegistry(fake_registry.url)
    with pytest.raises(RegistryError) as e:
        reg.id_for(PENALTY, topic="cs.broken")
    assert e.value.status == 500 and e.value.error_code == 50001
    assert "backend data store" in str(e.value)


def test_confluent_unreachable_is_a_registry_error_not_a_decode_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    reg = ConfluentRegistry(f"http://127.0.0.1:{port}", timeout=1)
    with pytest.raises(RegistryError, match="unreachable"):
        reg.schema(1)
    with pytest.raises(RegistryError):
        AvroCodec(reg).decode(frame(1, b"\x00"))


# A schema a registry may hold that fastavro refuses (a decimal's scale over its precision: Java Avro
# ignores such a logical type, Apicurio stores anything by default).
def _unparseable_penalty() -> str:
    from schemas import load_schema

    schema = load_schema(PENALTY)
    for f in schema["fields"]:
        if f["name"] == "fine_amount":
            f["type"] = ["null", {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 6}]
    return json.dumps(schema)


def test_confluent_ids_that_cannot_be_used_are_the_messages_fault_not_an_outage(fake_registry):
    """docs/events.md: only an unreachable registry holds a batch back; an id whose schema does not
    parse, an id the registry refuses with a 4xx (while it answers otherwise) and an id over 2^31-1
    are dead-lettered, each asked once, and the good message beside them decodes."""
    producer = AvroCodec(ConfluentRegistry(fake_registry.url))
    good = producer.encode(PENALTY, sample_event("penalty"), topic="cs.penalty")
    body = good[5:]
    fake_registry.schemas[7] = _unparseable_penalty()
    fake_registry.refuse[8] = (400, {"error_code": 400, "message": "Bad Request"})
    fake_registry.refuse[9] = (404, {"error_code": 404, "message": "HTTP 404 Not Found"})
    unusable, refused, no_route = frame(7, body), frame(8, body), frame(9, body)
    too_large = bytes([0, 0x80, 1, 2, 3]) + b"junk"  # 0x80010203: not a Java int

    async def batch():
        worker = AvroCodec(ConfluentRegistry(fake_registry.url, timeout=2, retries=0))
        values = [good, unusable, refused, no_route, too_large]
        await worker.ensure_for(values)  # raised RegistryError (the batch retried for ever) before
        await worker.ensure_for(values)  # remembered: nothing asked again
        return worker

    import asyncio

    worker = asyncio.run(batch())
    assert worker.decode(good) == (PENALTY, _filled("penalty"))
    reasons = {}
    for value in (unusable, refused, no_route, too_large):
        with pytest.raises(DecodeError) as e:
            worker.decode(value)
        reasons[int.from_bytes(value[1:5], "big")] = e.value.reason
    assert reasons == {7: "unusable-schema", 8: "unknown-schema-id", 9: "unknown-schema-id",
                       0x80010203: "unknown-schema-id"}
    asked = [path for method, path, _ in fake_registry.requests if path.startswith("/schemas/ids/")]
    sid = int.from_bytes(good[1:5], "big")
    assert sorted(asked) == sorted(f"/schemas/ids/{i}" for i in (sid, 7, 8, 9)), asked


def test_confluent_refusals_of_the_worker_itself_stay_registry_errors(fake_registry):
    """A 4xx for every path (a wrong URL), refused credentials and 429 are not the message's fault."""
    import asyncio

    wrong = AvroCodec(ConfluentRegistry(fake_registry.url + "/wrong-prefix", retries=0))
    with pytest.raises(RegistryError) as e:
        asyncio.run(wrong.ensure_ids([1]))
    assert e.value.status == 404
    for status, code in ((401, 401), (403, 40301), (429, 429)):
        fake_registry.refuse[5] = (status, {"error_code": code, "message": "refused"})
        with pytest.raises(RegistryError) as e:
            asyncio.run(AvroCodec(ConfluentRegistry(fake_registry.url, retries=0)).ensure_ids([5]))
        assert e.value.status == status


# --------------------------------------------------------------------------------------------
# a compatible writer schema that is not the local one: the local schema's defaults are filled in


class _OneSchemaRegistry:
    """A registry holding one writer schema under id 99 (the department's registered version)."""

    remote = False

    def __init__(self, schema: dict):
        import fastavro

        self.parsed = fastavro.parse_schema(schema)

    def schema(self, schema_id: int) -> dict:
        if schema_id != 99:
            raise UnknownSchemaId(f"unknown schema id {schema_id}")
        return self.parsed

    def name_of(self, schema_id: int) -> str:
        return self.schema(schema_id)["name"]

    def id_for(self, full_name: str, topic: str | None = None) -> int:
        return 99


def _with_defaults_dropped():
    from schemas import load_schema

    for kind in KINDS:
        for field in load_schema(schema_of(kind))["fields"]:
            if "default" in field:
                yield kind, field["name"]


@pytest.mark.parametrize(("kind", "dropped"), list(_with_defaults_dropped()), ids=lambda v: str(v))
@pytest.mark.parametrize("extra", [False, True], ids=["fast-reader", "fastavro"])
def test_an_older_writer_schema_decodes_as_the_current_one_resolves_it(kind, dropped, extra):
    """docs/events.md: a decision sent again unchanged is a duplicate. Sent with an older writer
    schema that lacks a field the current one has with a default (court_listing's `aggravated`,
    false), it decoded without the field, its content hash differed, and it became a new version.
    Now the record is what Avro resolution against the local schema gives, through either reader
    (a writer with an extra enum field is not one the fast reader compiles)."""
    import io

    import fastavro

    from domain.validate import Rejection, content_hash, normalise_event
    from schemas import load_schema

    current = load_schema(schema_of(kind))
    writer = dict(current, fields=[f for f in current["fields"] if f["name"] != dropped])
    record = {k: v for k, v in sample_event(kind).items() if k != dropped}
    if extra:  # a newer writer: a field the local schema does not have
        writer["fields"] = [*writer["fields"], {"name": "channel", "type": {"type": "enum", "name": "Channel",
                                                                         "symbols": ["WEB", "API"]},
                                                "default": "WEB", "doc": "x"}]
        record["channel"] = "API"
    parsed = fastavro.parse_schema(writer)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, record)
    name, got = AvroCodec(_OneSchemaRegistry(writer)).decode(frame(99, buf.getvalue()))
    resolved = fastavro.schemaless_reader(io.BytesIO(buf.getvalue()), parsed, fastavro.parse_schema(current))
    assert name == schema_of(kind)
    assert {k: v for k, v in got.items() if k != "channel"} == resolved
    assert got.get("channel") == ("API" if extra else None)
    ts = 1716256800000
    got.pop("channel", None)  # (content the current schema does not know: kept, so not the same)
    a, b = normalise_event(name, got, event_time_ms=ts), normalise_event(name, _filled(kind), event_time_ms=ts)
    if not isinstance(b, Rejection) and sample_event(kind).get(dropped, resolved[dropped]) == resolved[dropped]:
        assert not isinstance(a, Rejection) and content_hash(a) == content_hash(b)  # a duplicate


def test_the_local_schema_decodes_without_filling():
    """The hot path: a writer schema that is the local one has nothing to fill."""
    codec = AvroCodec(LocalRegistry())
    for kind in KINDS:
        sid = local_ids()[schema_of(kind)]
        codec.decode(codec.encode(schema_of(kind), sample_event(kind)))
        assert codec._dec[sid][3] is None


def test_from_json_names_a_bad_decimal_in_words():
    """Seen: `produce` refused a line with `fine_amount: [<class 'decimal.ConversionSyntax'>]`."""
    with pytest.raises(ValueError) as caught:
        from_json(PENALTY, {"fine_amount": "12万"})
    assert str(caught.value).endswith("fine_amount: not a decimal number: '12万'"), caught.value
