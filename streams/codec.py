"""Avro in the Confluent wire format, with pluggable schema registries.

Wire format: magic byte ``0``, the schema id as 4 bytes big-endian, then the Avro binary body
(no container header; fastavro *schemaless*). Two registries:

- ``LocalRegistry``: ids fixed in ``schemas/registry.json``; no network. The embedded default.
- ``ConfluentRegistry``: the Confluent Schema Registry REST API over urllib (``GET
  /schemas/ids/{id}``; ``POST /subjects/{topic}-value/versions`` to register, TopicNameStrategy).

``AvroCodec.decode`` raises only ``DecodeError`` for bad bytes (its ``reason`` is a short code for
the dead-letter headers). A registry that cannot be reached raises ``RegistryError`` instead: that
is not the message's fault, so the caller retries rather than dead-lettering.

``from_json`` / ``to_json`` convert between JSON objects (ISO dates, decimal strings) and the
Avro records fastavro expects (``datetime.date``, ``decimal.Decimal``) for the department-side CLI.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import struct
import threading
import urllib.error
import urllib.parse
import urllib.request
from io import BytesIO
from typing import Any, Protocol

import fastavro

from schemas import all_schemas, full_name_of, local_ids

__all__ = [
    "DecodeError",
    "EncodeError",
    "RegistryError",
    "UnknownSchemaId",
    "SchemaRegistry",
    "LocalRegistry",
    "ConfluentRegistry",
    "AvroCodec",
    "frame",
    "unframe",
    "from_json",
    "to_json",
    "MAGIC",
    "HEADER_SIZE",
]

MAGIC = 0
HEADER_SIZE = 5
_HEADER = struct.Struct(">bI")
_SIX_PLACES = decimal.Decimal("0.000001")


class DecodeError(Exception):
    """Bytes that are not a decodable message. ``reason`` is a short machine code:
    ``empty``, ``bad-magic``, ``truncated``, ``unknown-schema-id``, ``avro-decode-error``,
    ``trailing-bytes``."""

    def __init__(self, reason: str, message: str, schema_id: int | None = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.schema_id = schema_id


class EncodeError(ValueError):
    """A record that does not fit its schema (missing required field, wrong type, ...)."""


class RegistryError(Exception):
    """The schema registry failed (unreachable, HTTP error, bad answer). Retry; not the message's fault."""

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class UnknownSchemaId(LookupError):
    """The registry does not know this schema id (the message's fault: dead-letter it)."""


class SchemaRegistry(Protocol):
    def id_for(self, full_name: str, topic: str | None = None) -> int: ...

    def schema(self, schema_id: int) -> dict: ...

    def name_of(self, schema_id: int) -> str: ...


# --------------------------------------------------------------------------------------------
# framing


def frame(schema_id: int, body: bytes) -> bytes:
    """Magic byte + 4-byte big-endian schema id + body."""
    if not 0 <= schema_id <= 0xFFFFFFFF:
        raise ValueError(f"schema id out of range: {schema_id}")
    return _HEADER.pack(MAGIC, schema_id) + bytes(body)


def unframe(data: bytes) -> tuple[int, bytes]:
    """Split a framed message into (schema id, body); DecodeError on a bad header."""
    schema_id = _check_header(data)
    return schema_id, bytes(data[HEADER_SIZE:])


def _check_header(data) -> int:
    if not data:
        raise DecodeError("empty", "empty message")
    if data[0] != MAGIC:
        raise DecodeError("bad-magic", f"first byte is {data[0]:#04x}, expected 0x00 (Confluent wire format)")
    if len(data) < HEADER_SIZE:
        raise DecodeError("truncated", f"{len(data)} bytes, shorter than the 5-byte header")
    return int.from_bytes(data[1:HEADER_SIZE], "big")


# --------------------------------------------------------------------------------------------
# registries


def _parse(schema: dict) -> dict:
    return fastavro.parse_schema(schema)


def _full_name(parsed: dict) -> str:
    return parsed.get("name", "") if isinstance(parsed, dict) else ""


class LocalRegistry:
    """Fixed ids from ``schemas/registry.json``; schemas from ``schemas/*.avsc``."""

    def __init__(self, ids: dict[str, int] | None = None, schemas: dict[str, dict] | None = None):
        self._ids = dict(ids if ids is not None else local_ids())
        raw = schemas if schemas is not None else all_schemas()
        self._names = {sid: name for name, sid in self._ids.items()}
        self._parsed: dict[int, dict] = {}
        for name, sid in self._ids.items():
            if name not in raw:
                raise ValueError(f"registry.json names {name!r} but there is no such schema")
            self._parsed[sid] = _parse(raw[name])

    def id_for(self, full_name: str, topic: str | None = None) -> int:
        try:
            return self._ids[full_name]
        except KeyError:
            try:
                return self._ids[full_name_of(full_name)]
            except KeyError:
                raise KeyError(f"no local schema id for {full_name!r}") from None

    def schema(self, schema_id: int) -> dict:
        try:
            return self._parsed[schema_id]
        except KeyError:
            raise UnknownSchemaId(f"unknown schema id {schema_id}") from None

    def name_of(self, schema_id: int) -> str:
        try:
            return self._names[schema_id]
        except KeyError:
            raise UnknownSchemaId(f"unknown schema id {schema_id}") from None


class ConfluentRegistry:
    """Client of the Confluent Schema Registry REST API (urllib, no extra dependency).

    ``id_for(full_name, topic)`` registers the local schema under subject ``{topic}-value``
    (TopicNameStrategy; the record's full name when no topic is given) and caches the id;
    ``schema(id)`` fetches ``/schemas/ids/{id}`` once and caches the parsed schema.
    """

    CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

    def __init__(
        self,
        url: str,
        timeout: float = 5,
        *,
        schemas: dict[str, dict] | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._local = schemas if schemas is not None else all_schemas()
        self._headers = dict(headers or {})
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}
        self._parsed: dict[int, dict] = {}
        self._names: dict[int, str] = {}

    # -- HTTP
    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": self.CONTENT_TYPE, **self._headers}
        if data is not None:
            headers["Content-Type"] = self.CONTENT_TYPE
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as e:
            status, code, message = e.code, None, e.reason
            try:
                err = json.loads(e.read() or b"{}")
                code, message = err.get("error_code"), err.get("message", message)
            except Exception:
                pass
            if status == 404 and code in (40403, None) and path.startswith("/schemas/ids/"):
                raise UnknownSchemaId(f"schema registry: {message}") from None
            raise RegistryError(
                f"schema registry {method} {path}: HTTP {status} (error_code {code}): {message}",
                status=status,
                error_code=code,
            ) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise RegistryError(f"schema registry {self.url} unreachable: {reason}") from None
        try:
            return json.loads(payload)
        except ValueError:
            raise RegistryError(f"schema registry {method} {path}: answer is not JSON") from None

    # -- registry interface
    def id_for(self, full_name: str, topic: str | None = None) -> int:
        if full_name not in self._local:
            try:
                full_name = full_name_of(full_name)
            except KeyError:
                raise KeyError(f"no local schema {full_name!r} to register") from None
            if full_name not in self._local:
                raise KeyError(f"no local schema {full_name!r} to register")
        subject = f"{topic}-value" if topic else full_name
        key = (subject, full_name)
        sid = self._ids.get(key)
        if sid is not None:
            return sid
        schema = self._local[full_name]
        answer = self._request(
            "POST",
            f"/subjects/{urllib.parse.quote(subject, safe='')}/versions",
            {"schema": json.dumps(schema, ensure_ascii=False)},
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), int):
            raise RegistryError(f"schema registry: unexpected answer to register {subject}: {answer!r}")
        sid = answer["id"]
        parsed = _parse(schema)
        with self._lock:
            self._ids[key] = sid
            self._parsed.setdefault(sid, parsed)
            self._names.setdefault(sid, _full_name(parsed))
        return sid

    def schema(self, schema_id: int) -> dict:
        parsed = self._parsed.get(schema_id)
        if parsed is not None:
            return parsed
        answer = self._request("GET", f"/schemas/ids/{int(schema_id)}")
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise RegistryError(f"schema registry: unexpected answer for schema id {schema_id}: {answer!r}")
        if answer.get("schemaType", "AVRO") != "AVRO":
            raise UnknownSchemaId(f"schema id {schema_id} is {answer['schemaType']}, not AVRO")
        try:
            parsed = _parse(json.loads(answer["schema"]))
        except Exception as e:
            raise RegistryError(f"schema registry: schema id {schema_id} does not parse: {e}") from None
        with self._lock:
            self._parsed[schema_id] = parsed
            self._names[schema_id] = _full_name(parsed)
        return parsed

    def name_of(self, schema_id: int) -> str:
        name = self._names.get(schema_id)
        if name is None:
            self.schema(schema_id)
            name = self._names[schema_id]
        return name


# --------------------------------------------------------------------------------------------
# codec


class AvroCodec:
    """Encode/decode Avro records in the Confluent wire format."""

    def __init__(self, registry: SchemaRegistry | None = None):
        self.registry = registry if registry is not None else LocalRegistry()
        self._enc: dict[tuple[str, str | None], tuple[bytes, dict]] = {}
        self._dec: dict[int, tuple[str, dict]] = {}

    def _writer(self, full_name: str, topic: str | None) -> tuple[bytes, dict]:
        key = (full_name, topic)
        hit = self._enc.get(key)
        if hit is None:
            sid = self.registry.id_for(full_name, topic)
            hit = (_HEADER.pack(MAGIC, sid), self.registry.schema(sid))
            self._enc[key] = hit
        return hit

    def encode(self, full_name: str, record: dict, topic: str | None = None) -> bytes:
        header, schema = self._writer(full_name, topic)
        bio = BytesIO()
        bio.write(header)
        try:
            fastavro.schemaless_writer(bio, schema, record)
        except Exception as e:
            raise EncodeError(f"{full_name}: record does not fit the schema: {type(e).__name__}: {e}") from None
        return bio.getvalue()

    def _reader(self, schema_id: int) -> tuple[str, dict]:
        hit = self._dec.get(schema_id)
        if hit is None:
            try:
                schema = self.registry.schema(schema_id)
                name = self.registry.name_of(schema_id)
            except UnknownSchemaId as e:
                raise DecodeError("unknown-schema-id", str(e), schema_id) from None
            hit = (name, schema)
            self._dec[schema_id] = hit
        return hit

    def decode(self, data: bytes) -> tuple[str, dict]:
        """(full schema name, record). Raises DecodeError for any bad input (RegistryError if the
        registry is unreachable)."""
        if data is None:
            raise DecodeError("empty", "no message value (tombstone)")
        if not isinstance(data, bytes):
            data = bytes(data)
        schema_id = _check_header(data)
        name, schema = self._reader(schema_id)
        bio = BytesIO(data)
        bio.seek(HEADER_SIZE)
        try:
            record = fastavro.schemaless_reader(bio, schema, None)
        except EOFError as e:
            raise DecodeError("truncated", f"body ends early for {name}: {e}", schema_id) from None
        except Exception as e:
            raise DecodeError("avro-decode-error", f"{name}: {type(e).__name__}: {e}", schema_id) from None
        pos, size = bio.tell(), len(data)
        if pos != size:
            raise DecodeError("trailing-bytes", f"{size - pos} bytes left after the {name} record", schema_id)
        return name, record


# --------------------------------------------------------------------------------------------
# JSON <-> Avro record (department-side CLI)


def _branch(ftype: Any) -> Any:
    """The non-null branch of an optional union (or the type itself)."""
    if isinstance(ftype, list):
        rest = [t for t in ftype if t != "null"]
        return rest[0] if len(rest) == 1 else ftype
    return ftype


def _logical(ftype: Any) -> str | None:
    t = _branch(ftype)
    return t.get("logicalType") if isinstance(t, dict) else None


def _to_date(value: Any) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _dt.date(1970, 1, 1) + _dt.timedelta(days=value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 10 and text[10] in "T ":
            text = text[:10]
        return _dt.date.fromisoformat(text)
    raise TypeError(f"not a date: {value!r}")


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, bool):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, float):
        value = repr(value)
    d = decimal.Decimal(value.strip() if isinstance(value, str) else value)
    if not d.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return d.quantize(_SIX_PLACES, rounding=decimal.ROUND_HALF_UP)


_FIELDS: dict[str, list[dict]] = {}


def _schema_fields(full_name: str) -> list[dict]:
    fields = _FIELDS.get(full_name)
    if fields is None:
        fields = all_schemas()[full_name_of(full_name)]["fields"]
        _FIELDS[full_name] = fields
    return fields


def from_json(full_name: str, obj: dict) -> dict:
    """A JSON object -> an Avro record for ``full_name``: ISO date strings (or int days) become
    ``datetime.date``; numbers and numeric strings in decimal fields become ``Decimal`` quantised
    to 6 places. Keys the schema does not know are dropped. ValueError names the bad field."""
    if not isinstance(obj, dict):
        raise ValueError(f"{full_name}: expected a JSON object, got {type(obj).__name__}")
    out: dict = {}
    for field in _schema_fields(full_name):
        name = field["name"]
        if name not in obj:
            continue
        value = obj[name]
        logical = _logical(field["type"])
        if value is None or logical is None:
            out[name] = value
            continue
        try:
            if logical == "date":
                out[name] = _to_date(value)
            elif logical == "decimal":
                out[name] = _to_decimal(value)
            else:
                out[name] = value
        except (TypeError, ValueError, ArithmeticError) as e:
            raise ValueError(f"{full_name}.{name}: {e}") from None
    return out


def to_json(full_name: str, record: dict) -> dict:
    """An Avro record -> a JSON-serialisable object (dates ISO, decimals as strings)."""
    out: dict = {}
    for key, value in record.items():
        if isinstance(value, (_dt.date, _dt.datetime)):
            out[key] = value.isoformat()[:10]
        elif isinstance(value, decimal.Decimal):
            out[key] = format(value, "f")
        elif isinstance(value, bytes):
            out[key] = value.hex()
        else:
            out[key] = value
    return out
