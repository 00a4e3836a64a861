"""Avro in the Confluent wire format, with pluggable schema registries.

Wire format: magic byte ``0``, the schema id as 4 bytes big-endian, then the Avro binary body
(no container header; fastavro *schemaless*). The flat record schemas department systems write are
read by streams/avro_reader.py (the same records, faster), anything else and any body it finds
unusual by fastavro, whose record or error stands. Two registries:

- ``LocalRegistry``: ids fixed in ``schemas/registry.json``; no network. The embedded default.
- ``ConfluentRegistry``: the Confluent Schema Registry REST API over aiohttp (``GET
  /schemas/ids/{id}``; ``POST /subjects/{topic}-value/versions`` to register, TopicNameStrategy),
  with basic-auth or bearer credentials, TLS settings, a timeout per request and retries of
  transient failures.

The hot path stays synchronous: ``AvroCodec.decode`` / ``encode`` only read caches. What a remote
registry must be asked is awaited before, once: ``await codec.ensure_for(values)`` (the schema ids
in a batch's headers that are not cached yet) before decoding a batch, ``await
codec.ensure_writer(full_name, topic)`` before encoding. So an event loop never waits on the
registry's HTTP; a command line without a running loop may still call decode / encode alone (they
then fetch what they miss).

``AvroCodec.decode`` raises only ``DecodeError`` for bad bytes (its ``reason`` is a short code for
the dead-letter headers; an id the registry answers 40403 or another 4xx for is
``unknown-schema-id``, an id whose registered schema cannot be used ``unusable-schema``). A registry
that cannot be reached raises ``RegistryError`` instead: that is not the message's fault, so the
caller retries rather than dead-lettering.

``from_json`` / ``to_json`` convert between JSON objects (ISO dates, decimal strings) and the
Avro records fastavro expects (``datetime.date``, ``decimal.Decimal``) for the department-side CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as _dt
import decimal
import json
import ssl
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any, Protocol

import fastavro

from domain.clock import china_date, date_of_text
from schemas import all_schemas, full_name_of, local_ids, retired_schemas, reused_ids
from streams import avro_reader, avro_writer

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
    "schema_ids",
    "split_credentials",
    "from_json",
    "to_json",
    "MAGIC",
    "HEADER_SIZE",
]

MAGIC = 0
HEADER_SIZE = 5
_HEADER = struct.Struct(">bI")
_SIX_PLACES = decimal.Decimal("0.000001")


DECODE_REASONS = ("empty", "bad-magic", "truncated", "unknown-schema-id", "unusable-schema", "avro-decode-error",
                  "trailing-bytes")
"""The ``reason`` of every :class:`DecodeError` (a dead letter's ``dlq.reason``)."""


class DecodeError(Exception):
    """Bytes that are not a decodable message. ``reason`` is a short machine code:
    ``empty``, ``bad-magic``, ``truncated``, ``unknown-schema-id``, ``unusable-schema``,
    ``avro-decode-error``, ``trailing-bytes``."""

    def __init__(self, reason: str, message: str, schema_id: int | None = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.schema_id = schema_id


class EncodeError(ValueError):
    """A record that does not fit its schema (missing required field, wrong type, ...)."""


class RegistryError(Exception):
    """The schema registry failed (unreachable, HTTP error, bad answer). Retry; not the message's fault.

    ``kind``: ``unreachable`` (no connection, or no answer in time), ``http`` (an error answer:
    ``status`` and the registry's ``error_code``), ``auth`` (401/403: the credentials were refused),
    ``tls`` (the TLS handshake failed), ``config`` (the TLS files or credentials given do not load),
    ``answer`` (an answer that is not what the API promises), ``not-loaded`` (a schema was asked for
    synchronously inside an event loop before it was fetched)."""

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None, *,
                 kind: str | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        if kind is None:
            kind = "http" if status is not None else ("unreachable" if "unreachable" in message else "answer")
        self.kind = kind

    @property
    def outage(self) -> bool:
        """The registry is down (unreachable, no answer in time, a 5xx / 408 / 429 answer), as opposed
        to refusing something (credentials, a schema): retrying later may help."""
        if self.status is None:
            return self.kind == "unreachable"
        return self.status >= 500 or self.status in (408, 429)


class UnknownSchemaId(LookupError):
    """The registry does not know this schema id, or what it holds under it cannot be used (the
    message's fault: dead-letter it). ``reason``: the dead-letter code, ``unknown-schema-id`` or
    ``unusable-schema`` (a schema that does not parse, or is not Avro)."""

    def __init__(self, message: str, reason: str = "unknown-schema-id"):
        super().__init__(message)
        self.reason = reason


MAX_REGISTRY_ID = 0x7FFFFFFF
"""The largest id a registry gives (Confluent's and Apicurio's ids are Java ints): a larger one in a
frame is refused without asking (Confluent answers it with a bare 404, as for a wrong path)."""


class SchemaRegistry(Protocol):
    remote: bool

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


def schema_ids(values: Iterable[bytes | None]) -> set[int]:
    """The schema ids in the Confluent headers of ``values`` (those that have one)."""
    return {int.from_bytes(v[1:HEADER_SIZE], "big") for v in values
            if v is not None and len(v) >= HEADER_SIZE and v[0] == MAGIC}


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
    """Fixed ids from ``schemas/registry.json``; schemas from ``schemas/*.avsc``. The retired
    versions (``schemas/retired.json``: a schema's previous version keeps its id) decode by their
    ids and are never encoded with; :attr:`reused_by` names the later version a retired id was
    also framed with by mistake (ListChange's, id 13, with 10)."""

    remote = False

    def __init__(self, ids: dict[str, int] | None = None, schemas: dict[str, dict] | None = None,
                 retired: dict[int, dict] | None = None, reused_by: dict[int, int] | None = None):
        self._ids = dict(ids if ids is not None else local_ids())
        raw = schemas if schemas is not None else all_schemas()
        self._names = {sid: name for name, sid in self._ids.items()}
        self._parsed: dict[int, dict] = {}
        for name, sid in self._ids.items():
            if name not in raw:
                raise ValueError(f"registry.json names {name!r} but there is no such schema")
            self._parsed[sid] = _parse(raw[name])
        for sid, schema in (retired if retired is not None else retired_schemas()).items():
            if sid in self._parsed:
                raise ValueError(f"schema id {sid} is both current and retired")
            self._parsed[sid] = parsed = _parse(schema)
            self._names[sid] = _full_name(parsed)
        self.reused_by = dict(reused_by if reused_by is not None else reused_ids() if retired is None else {})

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


def split_credentials(url: str) -> tuple[str, str, str]:
    """(the URL without ``user:password@``, user, password), both percent-decoded; a URL without
    credentials gives empty strings for them."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, "", ""
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return bare, urllib.parse.unquote(user), urllib.parse.unquote(password)


def _ssl_context(ca_file: str, certfile: str, keyfile: str) -> ssl.SSLContext | None:
    """The TLS context for the registry: the system's CAs unless ``ca_file`` names others, and a
    client certificate when given; None when nothing is set (aiohttp's default verification)."""
    if not (ca_file or certfile or keyfile):
        return None
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as e:
        raise RegistryError(f"schema registry: schema_registry_ca_file {ca_file} does not load: {e}",
                            kind="config") from None
    if certfile or keyfile:
        try:
            context.load_cert_chain(certfile or keyfile, keyfile or None)
        except (OSError, ssl.SSLError) as e:
            raise RegistryError(f"schema registry: schema_registry_certfile {certfile} / schema_registry_keyfile "
                                f"{keyfile or '(in the certfile)'} do not load: {e}", kind="config") from None
    return context


def _tls_failure(exc: BaseException) -> BaseException | None:
    """The ssl error behind an aiohttp client error, if the failure was TLS's."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 8:
        if isinstance(e, ssl.SSLError):
            return e
        inner = getattr(e, "os_error", None) or getattr(e, "certificate_error", None)
        e = inner if isinstance(inner, BaseException) and inner is not e else (e.__cause__ or e.__context__)
        seen += 1
    return None


def _transient(exc: BaseException) -> bool:
    """Worth asking again: the registry was unreachable, did not answer in time, or answered 5xx.
    Never a 4xx answer (refused credentials, an unknown id, an incompatible schema)."""
    return isinstance(exc, RegistryError) and (exc.kind == "unreachable" or (exc.status or 0) >= 500)


class ConfluentRegistry:
    """Client of the Confluent Schema Registry REST API (aiohttp; retries through tenacity).

    ``register(full_name, topic)`` (awaited) registers the local schema under subject
    ``{topic}-value`` (TopicNameStrategy; the record's full name when no topic is given) and caches
    the id; ``load_ids(ids)`` (awaited) fetches ``/schemas/ids/{id}`` of the ids not cached yet,
    at once. The synchronous ``id_for`` / ``schema`` / ``name_of`` the codec's hot path calls answer
    from those caches; on a miss they fetch only where no event loop runs in the calling thread (a
    command line, a worker thread), and raise ``RegistryError`` (kind ``not-loaded``) inside one: an
    event loop serving others never waits on the registry's HTTP.

    Credentials: ``username`` / ``password`` (HTTP basic; ``user:password@`` in the URL is accepted
    too) or ``token`` (``Authorization: Bearer``). TLS: ``ca_file`` (the CA bundle that signed the
    registry's certificate; default the system's), ``certfile`` / ``keyfile`` (a client
    certificate). Every request is bounded by ``timeout`` seconds; a connection error, a timeout or
    a 5xx answer is retried ``retries`` times with exponential backoff, a 4xx answer never. Error
    messages name the registry by its URL without credentials (:attr:`url`).

    An id the registry answers 40403 for is remembered as unknown for :attr:`UNKNOWN_KEPT_S`
    seconds (``UnknownSchemaId``: the message's fault, dead-lettered); so is an id it answers with
    another 4xx while it answers ``GET /subjects`` (a 4xx for every path is a wrong URL: retried),
    an id over 2^31-1 (not asked), and an id whose schema does not parse or is not Avro
    (``unusable-schema``). Only an outage (:attr:`RegistryError.outage`) or a refusal of the
    worker itself (credentials, TLS) stops a batch.
    """

    CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
    UNKNOWN_KEPT_S = 60.0
    MAX_CONNECTIONS = 8
    BACKOFF_S = 0.2
    BACKOFF_MAX_S = 2.0
    remote = True

    def __init__(
        self,
        url: str,
        timeout: float = 5,
        *,
        username: str = "",
        password: str = "",
        token: str = "",
        ca_file: str = "",
        certfile: str = "",
        keyfile: str = "",
        retries: int = 2,
        schemas: dict[str, dict] | None = None,
        headers: dict[str, str] | None = None,
    ):
        bare, url_user, url_password = split_credentials(url)
        self.url = bare.rstrip("/")
        """The registry's URL without credentials: what messages show."""
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        user, password = (username, password) if username else (url_user, url_password)
        if token and user:
            raise RegistryError("schema registry: give a bearer token or basic-auth credentials, not both",
                                kind="config")
        self._basic = (user, password) if user else None
        self._headers = {"Accept": self.CONTENT_TYPE, **(headers or {})}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.credentials = "token" if token else ("basic" if user else "")
        self._ssl = _ssl_context(ca_file, certfile, keyfile)
        self._local = schemas if schemas is not None else all_schemas()
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}
        self._parsed: dict[int, dict] = {}
        self._names: dict[int, str] = {}
        self._unknown: dict[int, tuple[float, str, str]] = {}  # id -> (forgotten at, monotonic; why; reason)

    def __repr__(self) -> str:
        return f"ConfluentRegistry({self.url!r}, credentials={self.credentials or 'none'})"

    # -- HTTP
    @contextlib.asynccontextmanager
    async def _http(self, timeout: float | None = None):
        import aiohttp

        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True,
                                         limit=self.MAX_CONNECTIONS)
        auth = aiohttp.BasicAuth(*self._basic) if self._basic else None
        async with aiohttp.ClientSession(connector=connector, headers=self._headers, auth=auth,
                                         timeout=aiohttp.ClientTimeout(total=timeout or self.timeout)) as http:
            yield http

    async def _request_once(self, http, method: str, path: str, body: dict | None, timeout: float) -> Any:
        import aiohttp

        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": self.CONTENT_TYPE} if data is not None else None
        try:
            async with http.request(method, self.url + path, data=data, headers=headers) as resp:
                status, reason, payload = resp.status, resp.reason, await resp.read()
        except TimeoutError:  # asyncio's too; aiohttp's ServerTimeoutError is one
            raise RegistryError(f"schema registry {self.url} unreachable: no answer within {timeout:g} s "
                                f"({method} {path})", kind="unreachable") from None
        except (aiohttp.ClientError, OSError) as e:
            tls = _tls_failure(e)
            if tls is not None:
                inner = getattr(tls, "certificate_error", None) or tls
                detail = getattr(inner, "verify_message", None) or getattr(inner, "reason", None) or str(inner)
                hint = ("; set schema_registry_ca_file to the CA that signed its certificate"
                        if isinstance(inner, ssl.SSLCertVerificationError) else "")
                raise RegistryError(f"schema registry {self.url}: TLS failed: {detail}{hint}", kind="tls") from None
            reason_text = " ".join(str(e).split()) or type(e).__name__
            raise RegistryError(f"schema registry {self.url} unreachable: {reason_text}", kind="unreachable") from None
        if status >= 400:
            code, message = None, reason or ""
            try:
                err = json.loads(payload or b"{}")
                if isinstance(err, dict):
                    code, message = err.get("error_code"), err.get("message", message)
            except ValueError:
                pass
            if status in (401, 403):
                given = {"basic": "the basic-auth credentials (schema_registry_username / schema_registry_password "
                                  "or user:password@ in the URL)",
                         "token": "the bearer token (schema_registry_token)"}.get(self.credentials)
                advice = f"check {given}" if given else "no credentials are configured: set schema_registry_username " \
                                                        "/ schema_registry_password or schema_registry_token"
                raise RegistryError(f"schema registry {self.url} refused the credentials: HTTP {status} "
                                    f"(error_code {code}): {message}; {advice}",
                                    status=status, error_code=code, kind="auth")
            if status == 404 and code == 40403 and path.startswith("/schemas/ids/"):
                raise UnknownSchemaId(f"schema registry: {message}")
            raise RegistryError(f"schema registry {self.url} {method} {path}: HTTP {status} (error_code {code}): "
                                f"{message}", status=status, error_code=code)
        try:
            return json.loads(payload)
        except ValueError:
            raise RegistryError(f"schema registry {self.url} {method} {path}: answer is not JSON",
                                status=status, kind="answer") from None

    async def _request(self, http, method: str, path: str, body: dict | None = None, *,
                       timeout: float | None = None, retries: int | None = None) -> Any:
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

        timeout = timeout or self.timeout
        attempts = AsyncRetrying(retry=retry_if_exception(_transient), reraise=True,
                                 stop=stop_after_attempt(1 + (self.retries if retries is None else retries)),
                                 wait=wait_exponential(multiplier=self.BACKOFF_S, max=self.BACKOFF_MAX_S))
        async for attempt in attempts:
            with attempt:
                answer = await self._request_once(http, method, path, body, timeout)
        return answer

    async def check(self, timeout: float | None = None) -> None:
        """Raise ``RegistryError`` unless the registry answers ``GET /subjects`` (once, within
        ``timeout`` seconds): the probe of the command line and the API's /health."""
        async with self._http(timeout) as http:
            await self._request(http, "GET", "/subjects", timeout=timeout, retries=0)

    # -- awaited: the network
    def _full_name(self, full_name: str) -> str:
        if full_name in self._local:
            return full_name
        try:
            name = full_name_of(full_name)
        except KeyError:
            raise KeyError(f"no local schema {full_name!r} to register") from None
        if name not in self._local:
            raise KeyError(f"no local schema {full_name!r} to register")
        return name

    async def register(self, full_name: str, topic: str | None = None) -> int:
        """The id of the local schema ``full_name`` under ``{topic}-value``, registering it once."""
        full_name = self._full_name(full_name)
        subject = f"{topic}-value" if topic else full_name
        key = (subject, full_name)
        sid = self._ids.get(key)
        if sid is not None:
            return sid
        schema = self._local[full_name]
        async with self._http() as http:
            answer = await self._request(http, "POST", f"/subjects/{urllib.parse.quote(subject, safe='')}/versions",
                                         {"schema": json.dumps(schema, ensure_ascii=False)})
        if not isinstance(answer, dict) or type(answer.get("id")) is not int:
            raise RegistryError(f"schema registry {self.url}: unexpected answer to register {subject}: {answer!r}",
                                kind="answer")
        sid = answer["id"]
        parsed = _parse(schema)
        with self._lock:
            self._ids[key] = sid
            self._parsed.setdefault(sid, parsed)
            self._names.setdefault(sid, _full_name(parsed))
        return sid

    def _is_unknown(self, schema_id: int) -> UnknownSchemaId | None:
        hit = self._unknown.get(schema_id)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            self._unknown.pop(schema_id, None)
            return None
        return UnknownSchemaId(hit[1], hit[2])

    def _remember_unknown(self, schema_id: int, e: UnknownSchemaId) -> None:
        self._unknown[schema_id] = (time.monotonic() + self.UNKNOWN_KEPT_S, str(e), e.reason)

    async def _answers(self, http) -> bool:
        """Whether the registry answers ``GET /subjects`` (so a 4xx for one id is that id's)."""
        try:
            await self._request(http, "GET", "/subjects", retries=0)
        except RegistryError:
            return False
        return True

    async def load_ids(self, ids: Iterable[int]) -> None:
        """Fetch the schemas of the ids not cached yet (concurrently, one session). Ids the registry
        does not know are remembered as unknown; ``RegistryError`` if it could not be asked."""
        missing = sorted({int(i) for i in ids if i not in self._parsed and self._is_unknown(i) is None})
        if not missing:
            return
        async with self._http() as http:
            results = await asyncio.gather(*(self._load_one(http, i) for i in missing), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _load_one(self, http, schema_id: int) -> None:
        try:
            if schema_id > MAX_REGISTRY_ID:
                raise UnknownSchemaId(f"schema id {schema_id} is over 2^31-1: no registry gives such an id")
            try:
                answer = await self._request(http, "GET", f"/schemas/ids/{schema_id}")
            except RegistryError as e:
                # a 4xx for this id (not the credentials, not "too many requests"): the message's
                # fault, provided the registry answers otherwise; a 4xx for every path is a wrong URL
                if (e.kind != "http" or e.outage or e.status is None or not 400 <= e.status < 500
                        or e.status == 407 or not await self._answers(http)):
                    raise
                raise UnknownSchemaId(f"schema registry: schema id {schema_id}: HTTP {e.status} "
                                      f"(error_code {e.error_code})") from None
            if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
                raise RegistryError(f"schema registry {self.url}: unexpected answer for schema id {schema_id}: "
                                    f"{answer!r}", kind="answer")
            if answer.get("schemaType", "AVRO") != "AVRO":
                raise UnknownSchemaId(f"schema id {schema_id} is {answer['schemaType']}, not AVRO",
                                      "unusable-schema")
            try:
                parsed = _parse(json.loads(answer["schema"]))
            except Exception as e:  # noqa: BLE001 - whatever the registry holds under the id
                raise UnknownSchemaId(f"schema id {schema_id}: its schema does not parse: "
                                      f"{type(e).__name__}: {e}"[:300], "unusable-schema") from None
        except UnknownSchemaId as e:
            self._remember_unknown(schema_id, e)
            return
        with self._lock:
            self._parsed[schema_id] = parsed
            self._names[schema_id] = _full_name(parsed)

    # -- synchronous: the caches (the network only where no event loop runs)
    def _blocking(self, what: str, make: Callable[[], Any]) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(make())
        raise RegistryError(f"schema registry: {what} is not loaded and an event loop runs in this thread: "
                            "await codec.ensure_ids(...) / codec.ensure_writer(...) first", kind="not-loaded")

    def id_for(self, full_name: str, topic: str | None = None) -> int:
        name = self._full_name(full_name)
        sid = self._ids.get((f"{topic}-value" if topic else name, name))
        if sid is not None:
            return sid
        return self._blocking(f"the id of {name} for topic {topic}", lambda: self.register(name, topic))

    def schema(self, schema_id: int) -> dict:
        parsed = self._parsed.get(schema_id)
        if parsed is not None:
            return parsed
        unknown = self._is_unknown(schema_id)
        if unknown is None:
            self._blocking(f"schema id {schema_id}", lambda: self.load_ids([schema_id]))
            parsed = self._parsed.get(schema_id)
            if parsed is not None:
                return parsed
            unknown = self._is_unknown(schema_id) or UnknownSchemaId(f"unknown schema id {schema_id}")
        raise unknown

    def name_of(self, schema_id: int) -> str:
        name = self._names.get(schema_id)
        if name is None:
            self.schema(schema_id)
            name = self._names[schema_id]
        return name


# --------------------------------------------------------------------------------------------
# codec


_LOCAL_FIELDS: dict[str, list[dict]] = {}


def _local_fields(full_name: str) -> list[dict] | None:
    """The fields of the local (current) schema ``full_name``; None for a name it does not have."""
    if not _LOCAL_FIELDS:
        _LOCAL_FIELDS.update((name, schema["fields"]) for name, schema in all_schemas().items()
                             if isinstance(schema.get("fields"), list))
    return _LOCAL_FIELDS.get(full_name)


_Fill = Callable[[dict], None]


def _defaults_of_missing(writer: Any, full_name: str) -> _Fill | None:
    """What Avro schema resolution against the local schema would add to a record written with
    ``writer``: the local fields with a default that ``writer`` lacks (an older or newer compatible
    writer schema, or a retired version of the local one), as a function that sets them on a
    decoded record; None when there are none (the writer is the local schema: the hot path). So an
    unchanged decision sent with an older writer schema has the same content, and content hash, as
    with the current one. The defaults are fastavro's reading of them (logical types converted)."""
    local = _local_fields(full_name)
    if local is None or not isinstance(writer, dict) or writer.get("type") != "record":
        return None
    have = {f.get("name") for f in writer.get("fields") or ()}
    missing = [f for f in local if f["name"] not in have and "default" in f]
    if not missing:
        return None
    short = full_name.rsplit(".", 1)[-1]
    reader = fastavro.parse_schema({"type": "record", "name": short, "fields": missing})
    nothing = fastavro.parse_schema({"type": "record", "name": short, "fields": []})
    defaults = fastavro.schemaless_reader(BytesIO(b""), nothing, reader)
    if any(isinstance(v, (list, dict)) for v in defaults.values()):  # a fresh copy for each record
        return lambda record: record.update(copy.deepcopy(defaults))
    return lambda record: record.update(defaults)


class AvroCodec:
    """Encode/decode Avro records in the Confluent wire format.

    With a remote registry, await :meth:`ensure_for` (the values about to be decoded) and
    :meth:`ensure_writer` (the schema and topic about to be encoded) first; with the local one they
    return at once.

    A record decoded with a writer schema that lacks fields the local schema of its name has with a
    default gets those defaults, as Avro schema resolution against the local schema would give
    (:func:`_defaults_of_missing`); fields the writer has and the local schema lacks are kept."""

    def __init__(self, registry: SchemaRegistry | None = None):
        self.registry = registry if registry is not None else LocalRegistry()
        self.remote = bool(getattr(self.registry, "remote", False))
        # (full name, topic) -> (header, writer schema, its avro_writer steps or None: fastavro writes it)
        self._enc: dict[tuple[str, str | None], tuple[bytes, dict, tuple[avro_writer.Field, ...] | None]] = {}
        # a retired id -> the header of the later version also framed with it (LocalRegistry.reused_by)
        self._reused = {old: _HEADER.pack(MAGIC, new)
                        for old, new in (getattr(self.registry, "reused_by", None) or {}).items()}
        # schema id -> (full name, writer schema, its avro_reader steps or None: fastavro reads it,
        # the local schema's defaults of the fields the writer lacks or None)
        self._dec: dict[int, tuple[str, dict, tuple[avro_reader.Field, ...] | None, _Fill | None]] = {}

    async def ensure_ids(self, ids: Iterable[int]) -> None:
        """Fetch the writer schemas of these ids that are not cached yet (one awaited round of
        requests), so that decoding them asks nothing. Ids the registry does not know then decode
        as ``DecodeError("unknown-schema-id")``, ids whose schema cannot be used as
        ``DecodeError("unusable-schema")``; ``RegistryError`` if the registry could not be asked."""
        if not self.remote:
            return
        missing = [i for i in ids if i not in self._dec]
        if missing:
            await self.registry.load_ids(missing)  # type: ignore[attr-defined]

    async def ensure_for(self, values: Iterable[bytes | None]) -> None:
        """:meth:`ensure_ids` of the schema ids in these framed values (a batch about to be decoded)."""
        if self.remote:
            await self.ensure_ids(schema_ids(values))

    async def ensure_writer(self, full_name: str, topic: str | None = None) -> None:
        """Register (or look up) the schema ``full_name`` is encoded with on ``topic``, once."""
        if not self.remote or (full_name, topic) in self._enc:
            return
        sid = await self.registry.register(full_name, topic)  # type: ignore[attr-defined]
        self._enc[(full_name, topic)] = self._writer_of(sid)

    async def ensure_writers(self, pairs: Iterable[tuple[str, str | None]]) -> None:
        """:meth:`ensure_writer` of each (full name, topic) pair, concurrently."""
        await asyncio.gather(*(self.ensure_writer(name, topic) for name, topic in set(pairs)))

    def _writer_of(self, schema_id: int) -> tuple[bytes, dict, tuple[avro_writer.Field, ...] | None]:
        schema = self.registry.schema(schema_id)
        return _HEADER.pack(MAGIC, schema_id), schema, avro_writer.compile_record(schema)

    def _writer(self, full_name: str, topic: str | None) -> tuple[bytes, dict, tuple[avro_writer.Field, ...] | None]:
        key = (full_name, topic)
        hit = self._enc.get(key)
        if hit is None:
            hit = self._enc[key] = self._writer_of(self.registry.id_for(full_name, topic))
        return hit

    def encode(self, full_name: str, record: dict, topic: str | None = None) -> bytes:
        header, schema, fields = self._writer(full_name, topic)
        if fields is not None:  # streams/avro_writer.py: fastavro's bytes, in about a fifth of its time
            out = bytearray(header)
            try:
                avro_writer.write(fields, record, out)
            except avro_writer.NotFast:
                pass  # fastavro writes it below, or says what is wrong with it
            else:
                return bytes(out)
        bio = BytesIO()
        bio.write(header)
        try:
            fastavro.schemaless_writer(bio, schema, record)
        except Exception as e:
            raise EncodeError(f"{full_name}: record does not fit the schema: {type(e).__name__}: {e}") from None
        return bio.getvalue()

    def _reader(self, schema_id: int) -> tuple[str, dict, tuple[avro_reader.Field, ...] | None, _Fill | None]:
        hit = self._dec.get(schema_id)
        if hit is None:
            try:
                schema = self.registry.schema(schema_id)
                name = self.registry.name_of(schema_id)
            except UnknownSchemaId as e:
                raise DecodeError(e.reason, str(e), schema_id) from None
            hit = (name, schema, avro_reader.compile_record(schema), _defaults_of_missing(schema, name))
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
        name, schema, fields, fill = self._reader(schema_id)
        if fields is not None:
            try:
                record, end = avro_reader.read(fields, data, HEADER_SIZE)
            except avro_reader.NotFast:
                pass  # fastavro decodes it below, and says what is wrong with it
            else:
                if end == len(data):
                    if fill is not None:
                        fill(record)
                    return name, record
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
            header = self._reused.get(schema_id)
            if header is not None:  # the later version, framed with this id by mistake: read with its schema
                with contextlib.suppress(DecodeError):
                    return self.decode(header + data[HEADER_SIZE:])
            raise DecodeError("trailing-bytes", f"{size - pos} bytes left after the {name} record", schema_id)
        if fill is not None and isinstance(record, dict):
            fill(record)
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
        return china_date(value)
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _dt.date(1970, 1, 1) + _dt.timedelta(days=value)
    if isinstance(value, str):
        return date_of_text(value.strip())
    raise TypeError(f"not a date: {value!r}")


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, bool):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, float):
        value = repr(value)
    try:
        d = decimal.Decimal(value.strip() if isinstance(value, str) else value)
    except decimal.InvalidOperation:  # its own text is "[<class 'decimal.ConversionSyntax'>]"
        raise ValueError(f"not a decimal number: {value!r}"[:120]) from None
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
            base = _branch(field["type"])
            # the Avro writer writes the truth of any value as a boolean ("false" would be true) and
            # a bool as an int: a value of the wrong JSON type is refused here, naming the field
            if base == "boolean" and value is not None and not isinstance(value, bool):
                raise ValueError(f"{full_name}.{name}: expected true or false, got {value!r}"[:200])
            if base in ("int", "long") and value is not None and (isinstance(value, bool)
                                                                  or not isinstance(value, int)):
                raise ValueError(f"{full_name}.{name}: expected a whole number, got {value!r}"[:200])
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
