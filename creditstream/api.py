"""The HTTP query API: subjects, lists, list changes, health and Prometheus metrics, as JSON.

Endpoints (documented in docs/openapi.yaml):

==============================  ===================================================================
``GET /subjects/{code}``        a subject's live state; ``code`` is a USCC, a resident ID number or a
                                legacy number the registry knows (organisation code, registration no.)
``GET /subjects/{code}/lists``  its current list memberships (from its last evaluation)
``GET /lists``                  every list with members, and its size
``GET /lists/{name}``           one page of a list's members: ``?cursor=&limit=``
``GET /changes``                list changes from the list-change topic: ``?since=<cursor>&limit=``
``GET|POST /check``             credit checks (应查必查): creditstream/check_api.py, docs/checks.md
``GET /subjects/{code}/report`` the credit report (信用报告), HTML or JSON, sealed with a content hash:
                                creditstream/report_api.py
``GET /disclosure[/...]``       the public disclosure (信用信息公示), HTML or JSON, open without a token:
                                creditstream/disclosure.py, docs/disclosure.md
``GET /health``                 which dependency is down: ``{"status": "ok"|"degraded", "redis": "ok"|"down:
                                ...", "kafka": "ok"|"down: ..."}``, 200 when both answer, else 503 (with
                                ``error`` and ``message`` too, as every error answer)
``GET /metrics``                Prometheus text format (creditstream.metrics.REGISTRY)
==============================  ===================================================================

Errors are JSON ``{"error": <code>, "message": <sentence>}``: ``bad_request`` (400), ``not_found``
(404), ``method_not_allowed`` (405), ``unavailable`` (503: Redis, the broker or the schema registry
did not answer; the message names which), ``internal`` (500; the details go to the log, never to
the client). Redis is read with the API's own client (:func:`creditstream.connections.api_redis_client`):
a command Redis does not answer within ``api_redis_timeout_s`` is not repeated, so a hung Redis
answers 503 within that deadline.

``/health`` checks both dependencies at once, each within :data:`HEALTH_TIMEOUT_S`: Redis answers
a read of ``<namespace>:generation`` (so an ACL user refused the namespace's keys is down, with the
refusal), and the Kafka broker answers a metadata request (a fresh bootstrap, so it is the broker's
state now, not what a long-lived client remembers). Concurrent requests share one check.

``/changes`` cursors are opaque to clients: base64url (unpadded) of the JSON object
``{"<partition>": <next offset>}`` of the list-change topic. No cursor means the beginning of the
topic; a partition the cursor does not name is read from its beginning. The end of a partition is
the high watermark of the fetch response, never ``ListOffsets`` (which under-reports it on Tansu,
docs/broker.md). Changes are in order within a partition, i.e. per subject.

Served two ways: ``creditstream api`` (:func:`serve`, a standalone server), and by the worker's web
server (``creditstream worker --web``): :func:`mount` adds the same routes to Faust's aiohttp
application (``creditstream.app.create_faust_app``).

Request logs name the route template (``/subjects/{code}``), never the path, so no identifier of a
natural person reaches the log through the API; they name the client (its token's ``client``), never
the token.

Access (creditstream/access.py, docs/operations.md): with ``api_tokens_file`` set, every request
but ``GET /health`` needs ``Authorization: Bearer <token>``: without one, or with one the file does
not hold, 401 ``unauthorized`` with ``WWW-Authenticate: Bearer``. ``/health`` is open (load
balancers); ``/metrics``, the API and unknown paths need a token (a 404 only after it). Roles:
``public`` answers have natural persons' ID numbers and names masked (:func:`domain.privacy.
redact_personal`, applied to every JSON answer at :func:`Api.answer`), and looking a natural person
up is refused (403 ``forbidden``: the lookup itself would tie the ID number to the records);
``personal`` sees everything. Without a token file (loopback only) every request gets
``api_anonymous_role``. Both serving modes install the same middlewares (:func:`middlewares`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import functools
import gc
import hashlib
import os
import signal
import time
from collections.abc import Awaitable, Callable

import orjson
import redis.exceptions as rexc
import structlog
from aiohttp import web, web_protocol
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NoBrokersAvailable, RequestTimedOutError
from prometheus_client import generate_latest

from creditstream import eventloop, metrics
from creditstream.access import (
    ANONYMOUS,
    Access,
    AccessConfigError,
    Client,
    is_open_path,
    server_ssl_context,
    serving_problem,
)
from creditstream.check_api import CheckApi
from creditstream.connections import access_refused, api_redis_client, follow_redis_clock, redis_memory, redis_now_ms
from creditstream.disclosure import DisclosureApi
from creditstream.probes import KafkaSecurityError, kafka_connect_refusal, mask_url
from creditstream.report_api import ReportApi
from creditstream.settings import Settings
from domain.identifiers import IdKind, classify, looks_like_legacy_id, normalise_code
from domain.privacy import conceal_digests, is_natural_person, redact_personal
from ops.inspect import BadCursor, HeartbeatWatch, Reader, consumption, lists_view, running_workers, timer_and_waiting
from sinks.keys import Keys
from sinks.registry_index import RegistryIndex
from streams.codec import RegistryError

log = structlog.get_logger("creditstream.api")

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_PAGE = 100
MAX_PAGE = 1000
CHANGES_WAIT_S = 3.0
"""How long one ``/changes`` request waits for fetches before answering with what it has."""
KAFKA_TIMEOUT_S = 15.0
MAX_CONCURRENT_CHANGE_READS = 4
"""Each ``/changes`` request runs its own group-less consumer; this caps how many at once."""
HEALTH_TIMEOUT_S = 2.0
"""How long ``/health`` waits for each dependency (Redis PING, Kafka metadata)."""
CLOCK_EVERY_S = 5.0
"""How often the standalone API compares its clock with Redis's (as a worker's heartbeat does)."""

API_KEY = web.AppKey("creditstream_api", object)
CLIENT = web.RequestKey("creditstream_client", Client) if hasattr(web, "RequestKey") else "creditstream_client"
"""The request key of the :class:`creditstream.access.Client` the auth middleware identified."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def error_response(status: int, error: str, message: str) -> web.Response:
    return json_response({"error": error, "message": message}, status=status)


def json_response(obj, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json", charset="utf-8")


_HTTP_ERRORS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed"}


def client_of(request: web.Request) -> Client:
    return request.get(CLIENT) or ANONYMOUS


def role_error(request: web.Request, status: int, error: str, message: str) -> web.Response:
    """An error answer; its message redacted for a client without the personal role (it may echo input)."""
    if not client_of(request).may("personal"):
        message = redact_personal(message)
    return error_response(status, error, message)


def _route_of(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else "(no route)"


def _unavailable(exc: BaseException) -> ApiError | None:
    """An ApiError(503) if ``exc`` means Redis or the broker did not answer, else None."""
    if isinstance(exc, rexc.ConnectionError) and "No connection available" in str(exc):
        # the pool's wait for a free connection ran out (api_redis_connections all in use): the API is
        # busy, Redis may be answering (seen: said "Redis did not answer" on a host short of CPU)
        return ApiError(503, "unavailable", "the API is busy: every one of its connections to Redis stayed in "
                                            "use; try again later")
    if isinstance(exc, (rexc.ConnectionError, rexc.TimeoutError)):  # BusyLoadingError (LOADING) included
        return ApiError(503, "unavailable", "Redis did not answer; try again later")
    if isinstance(exc, (KafkaConnectionError, KafkaTimeoutError, NoBrokersAvailable, RequestTimedOutError)):
        return ApiError(503, "unavailable", "the Kafka broker did not answer; try again later")
    if isinstance(exc, RegistryError) and (exc.status is None and "unreachable" in str(exc)
                                           or (exc.status or 0) >= 500):
        return ApiError(503, "unavailable", "the schema registry did not answer; try again later")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return ApiError(503, "unavailable", "a backing service did not answer in time; try again later")
    return None




def _reason(exc: BaseException) -> str:
    """A short, one-line reason for a health answer: the exception's type and first line, with
    any password in a URL masked."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not text.startswith(type(exc).__name__):
        text = f"{type(exc).__name__}: {text}"
    text = mask_url(text)
    return text if len(text) <= 200 else text[:197] + "..."


def guarded(handler: Handler) -> Handler:
    """JSON errors for everything the handler raises; a log line per request (route template only)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        try:
            response = await handler(request)
        except ApiError as exc:
            response = role_error(request, exc.status, exc.error, exc.message)
        except web.HTTPException as exc:
            response = role_error(request, exc.status, _HTTP_ERRORS.get(exc.status, "error"), exc.reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - never a stack trace to the client
            mapped = _unavailable(exc)
            if mapped is not None:
                log.warning("api backend unavailable", route=_route_of(request), error=type(exc).__name__)
                response = error_response(mapped.status, mapped.error, mapped.message)
            else:
                log.exception("api request failed", route=_route_of(request), method=request.method)
                response = error_response(500, "internal", "internal error; the details are in the server log")
        log.debug("api request", method=request.method, route=_route_of(request), status=response.status,
                  client=client_of(request).name, ms=round(1000 * (time.monotonic() - started), 1))
        return response

    return wrapper


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths and methods answer JSON too (the routes themselves are :func:`guarded`)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, _HTTP_ERRORS.get(exc.status, "error"),
                                  "no such endpoint (see docs/openapi.yaml)" if exc.status == 404 else exc.reason)
        if "Allow" in exc.headers:  # 405: the methods the path has (RFC 9110 15.5.6)
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def unauthorized(message: str, *, invalid: bool) -> web.Response:
    """401 with ``WWW-Authenticate: Bearer`` (RFC 6750; ``error="invalid_token"`` for a bad token)."""
    response = error_response(401, "unauthorized", message)
    challenge = 'Bearer realm="creditstream"'
    response.headers["WWW-Authenticate"] = challenge + (', error="invalid_token"' if invalid else "")
    return response


def authentication(access: Access):
    """The middleware that identifies the client (a bearer token, or anonymous) and refuses a
    request without a valid token where one is needed (module docstring); the token is never logged."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        client = access.client_of(request.headers.get("Authorization"))
        if client is None:
            log.info("api request refused: token not valid", method=request.method, route=_route_of(request))
            return unauthorized("the bearer token is not valid", invalid=True)
        if not client.may("public") and not is_open_path(request.path):  # /health, /disclosure: access.py
            log.info("api request refused: no token", method=request.method, route=_route_of(request))
            return unauthorized("this API needs a bearer token: Authorization: Bearer <token>", invalid=False)
        request[CLIENT] = client
        response = await handler(request)
        if not response.prepared and not is_open_path(request.path) and "Cache-Control" not in response.headers:
            # answers about subjects, checks and metrics are for the client that asked (personal data,
            # a state that changes by the second): no shared cache, no copy kept (seen: no header at
            # all, a reverse proxy's cache free to keep a personal answer and serve it to others)
            response.headers["Cache-Control"] = "no-store"
        return response

    return authenticate


_AIOHTTP_HANDLE_ERROR = web_protocol.RequestHandler.handle_error
MALFORMED_REQUEST = ("the request could not be read: a malformed request line or header, or one longer than "
                     "8190 bytes (send long lists of subjects with POST /check)")


def _protocol_error(self: web_protocol.RequestHandler, request: web.BaseRequest, status: int = 500,
                    exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
    """A request aiohttp cannot parse (a request line or header over 8190 bytes, bad HTTP) is answered
    by aiohttp itself, before any route or middleware: in plain text that quotes the bytes it read (an
    ID number in a URL included), with an error-level traceback in the log. Here it is JSON ``Error``
    like every other answer, quotes nothing, and is logged as one line at INFO (anyone can send one:
    not an error of the service's own). Server errors (5xx) keep aiohttp's own handling."""
    if not 400 <= status < 500:
        return _AIOHTTP_HANDLE_ERROR(self, request, status, exc, message)
    log.info("api request refused: unreadable HTTP", status=status, problem=type(exc).__name__ if exc else None,
             remote=request.remote)
    if request.writer.output_size > 0:  # as aiohttp: the connection is broken
        raise ConnectionError("Response is sent already, cannot send another response with the error message")
    response = error_response(status, _HTTP_ERRORS.get(status, "bad_request"), MALFORMED_REQUEST)
    response.force_close()
    return response


def install_protocol_errors() -> None:
    """Answer unreadable requests with :func:`_protocol_error`, in this process's aiohttp servers
    (``creditstream api`` and the worker's web server, which Faust builds: aiohttp offers no
    per-server hook for it)."""
    web_protocol.RequestHandler.handle_error = _protocol_error  # type: ignore[method-assign]


def middlewares(settings: Settings, access: Access | None = None) -> list:
    """The middlewares of both serving modes: JSON errors (outermost), then authentication. Requests
    aiohttp cannot read answer JSON too (:func:`install_protocol_errors`)."""
    install_protocol_errors()
    return [json_errors, authentication(access or Access.from_settings(settings))]


def check_serving(settings: Settings, host: str) -> None:
    """Raise AccessConfigError if the API must not start on ``host`` with these settings (a
    non-loopback address without tokens; a token file or TLS files that do not load)."""
    problem = serving_problem(host, settings)
    if problem:
        raise AccessConfigError(problem)
    if not 1 <= settings.web_port <= 65535:  # the socket layer took 99999 as 34463 without a word
        raise AccessConfigError(f"web_port: {settings.web_port} is not a TCP port (1 to 65535)")
    Access.from_settings(settings)
    server_ssl_context(settings)


def check_port_free(host: str, port: int, setting: str = "web_port") -> None:
    """Raise AccessConfigError if ``port`` on ``host`` cannot be bound now (another worker or API
    holds it): a worker started on a taken port exited 1 with Faust's traceback (seen). Bound and
    released at once, with the address reuse the server sets, so a port in TIME_WAIT is free."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                how = "--port" if setting == "--port" else "--web-port or CREDITSTREAM_WEB_PORT"
                raise AccessConfigError(f"{setting}: port {port} on {host} is in use (another creditstream worker "
                                        f"or API on this machine?): choose another ({how})") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise AccessConfigError(f"web_bind: {host} is not an address of this machine") from None
            raise


def _names_a_person(code: str) -> bool:
    """True if a looked-up code is (or may be) a resident ID number: 18 characters passing the ID
    check, or 15 digits the masking reads as a first-generation ID number
    (:func:`domain.identifiers.looks_like_legacy_id`), whether or not they also pass the
    registration-number check (about 1 in 10 ID numbers do). The public role is refused on this
    test alone, before any look-up, so its answer never tells whether a number is known; an
    organisation's 15-digit registration number of that shape is refused too (organisations are
    found by their USCC or name; docs/operations.md, "API access")."""
    code = normalise_code(code)
    if classify(code)[0] is IdKind.RESIDENT_ID:
        return True
    return looks_like_legacy_id(code)


# --------------------------------------------------------------------------------------------
# query parameters


def _int_param(request: web.Request, name: str, default: int, *, low: int, high: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(400, "bad_request", f"{name} must be {bound}")
    return value


def encode_cursor(offsets: dict[int, int]) -> str:
    raw = orjson.dumps({str(p): o for p, o in sorted(offsets.items())})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> dict[int, int]:
    """Partition -> next offset; ApiError(400) for anything that is not a cursor this API gave out."""
    if not cursor:
        return {}
    bad = ApiError(400, "bad_request", "since is not a cursor from this API (use the next_cursor of an answer, "
                                        "or leave it out to start from the beginning)")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(data, dict):
        raise bad
    out = {}
    for key, value in data.items():
        if not (isinstance(key, str) and key.isdigit()) or type(value) is not int or value < 0:
            raise bad
        out[int(key)] = value
    return out


def change_json(record: dict, partition: int, offset: int) -> dict:
    """A decoded ListChange as JSON: dates ISO 8601, timestamps in ms since the epoch."""
    out = {}
    for name, value in record.items():
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            value = int(value.timestamp() * 1000)
        elif isinstance(value, dt.date):
            value = value.isoformat()
        out[name] = value
    out["partition"] = partition
    out["offset"] = offset
    return out


# --------------------------------------------------------------------------------------------
# the API


class Api:
    """The handlers, bound to the settings and a Redis client.

    ``redis``: a client the caller owns; None: the API opens its own on startup and closes it on
    cleanup (the worker's web server and ``creditstream api``).
    """

    def __init__(self, settings: Settings, redis=None, access: Access | None = None):
        self.settings = settings
        # what the digests of personal data are keyed with for a reader without the personal role
        # (domain/privacy.py conceal_digests): from the pseudonym key, so that every API process
        # answers the same; without one (it reads no person's state then), this process's own
        self._digest_key = hashlib.blake2b(settings.pseudonym_key.encode() or os.urandom(32),
                                           person=b"api-digests", digest_size=32).digest()
        self.access = access or Access.from_settings(settings)
        self.redis = redis
        self._owns_redis = redis is None
        self.reader = Reader(settings, redis) if redis is not None else None
        self._readers = asyncio.Semaphore(MAX_CONCURRENT_CHANGE_READS)
        self._health_check: asyncio.Future | None = None
        self._heartbeats = HeartbeatWatch()  # workers whose heartbeats stopped coming (a paused worker)
        self.follows_clock = False  # the standalone API's clock task (create_api), not a worker's (mount)
        self._clock: asyncio.Task | None = None
        self.checks = CheckApi(settings, self._reader, client_of=client_of)  # GET/POST /check: check_api.py
        self.reports = ReportApi(settings, state_of=self._state, client_of=client_of)  # report_api.py
        self.disclosure = DisclosureApi(settings, self._reader, names_a_person=_names_a_person,
                                        rules=self.reports.rules)  # disclosure.py

    # --- lifecycle ---------------------------------------------------------------------------
    async def on_startup(self, _app: web.Application) -> None:
        if self.redis is None:
            self.redis = api_redis_client(self.settings)
            self.reader = Reader(self.settings, self.redis)
        await self.checks.start(self.redis)
        if self.follows_clock:
            self._clock = asyncio.create_task(self._follow_clock(), name="clock")

    async def _follow_clock(self) -> None:
        """The standalone API (``creditstream api``) follows Redis's clock as the workers do (its
        instants' default, a check's time: creditstream/connections.py ``follow_redis_clock``); in a
        worker (``worker --web``) the worker's heartbeat does it for the process."""
        while True:
            try:
                await follow_redis_clock(self.redis, self.settings.clock_tolerance_s)
            except Exception as exc:  # noqa: BLE001 - Redis down: /health says so; the clock as it was
                log.debug("redis clock not read", error=str(exc))
            await asyncio.sleep(CLOCK_EVERY_S)

    async def on_cleanup(self, _app: web.Application) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None
        await self.checks.stop()
        if self._owns_redis and self.redis is not None:
            redis, self.redis, self.reader = self.redis, None, None
            await redis.aclose()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/subjects/{code}", guarded(self.subject), allow_head=False),
            web.get("/subjects/{code}/lists", guarded(self.subject_lists), allow_head=False),
            web.get("/lists", guarded(self.lists), allow_head=False),
            web.get("/lists/{name}", guarded(self.list_members), allow_head=False),
            web.get("/changes", guarded(self.changes), allow_head=False),
            web.get("/health", guarded(self.health), allow_head=False),
            web.get("/metrics", guarded(self.metrics), allow_head=False),
            *self.checks.routes(guarded),
            *self.reports.routes(guarded),
            *self.disclosure.routes(guarded),
        ]

    # --- Redis reads (ops/inspect.py) --------------------------------------------------------
    def _reader(self) -> Reader:
        if self.reader is None:
            raise ApiError(503, "unavailable", "the API is not started")
        return self.reader

    def answer(self, request: web.Request, doc, *, natural_person: bool = False) -> web.Response:
        """A JSON answer; for a client without the personal role, natural persons' ID numbers and
        names masked (domain/privacy.py): the one place personal data leaves the API."""
        if client_of(request).may("personal"):
            return json_response(doc)
        return json_response(conceal_digests(redact_personal(doc, natural_person=natural_person), self._digest_key))

    async def _state(self, request: web.Request) -> dict:
        personal = client_of(request).may("personal")
        forbidden = ApiError(403, "forbidden", "a natural person's record is personal information: looking one "
                                               "up needs a token with the personal role")
        code = request.match_info["code"]
        if not personal and _names_a_person(code):
            raise forbidden  # before the lookup: the answer must not tell whether the number is known
        state = await self._reader().subject(code)
        if state is None:
            raise ApiError(404, "not_found", "no subject has that code (looked up as a USCC, a resident ID "
                                             "number and a legacy number the registry knows)")
        if not personal and is_natural_person(state):
            raise forbidden
        return state

    async def subject(self, request: web.Request) -> web.Response:
        state = await self._state(request)
        return self.answer(request, state, natural_person=bool(is_natural_person(state)))

    async def subject_lists(self, request: web.Request) -> web.Response:
        state = await self._state(request)
        return self.answer(request, lists_view(state), natural_person=bool(is_natural_person(state)))

    async def lists(self, request: web.Request) -> web.Response:
        return self.answer(request, {"lists": await self._reader().lists()})

    async def list_members(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        cursor = _int_param(request, "cursor", 0, low=0, high=2**64 - 1)
        limit = _int_param(request, "limit", DEFAULT_PAGE, low=1, high=MAX_PAGE)
        reader = self._reader()
        if cursor == 0 and not await reader.list_exists(name):
            raise ApiError(404, "not_found", "no list of that name has members (GET /lists names them)")
        try:
            members, next_cursor = await reader.members(name, cursor=cursor, count=limit)
        except BadCursor:
            raise ApiError(400, "bad_request", "cursor is not a cursor from this API") from None
        return self.answer(request, {"list": name, "members": members, "next_cursor": next_cursor or None})

    async def health(self, request: web.Request) -> web.Response:
        """``{"status": "ok"|"degraded", "redis": ..., "kafka": ...[, "schema_registry": ...]}``: 200
        when all answer, else 503 (and then ``error: unavailable`` and a ``message`` naming what is
        down, as every error). The schema registry is checked only when a remote one is configured."""
        if self._health_check is None or self._health_check.done():
            self._health_check = asyncio.ensure_future(self._check_health())
        # shielded: a client that goes away does not cancel the check the others wait for
        redis_state, kafka_state, registry_state, workers, to_follow = await asyncio.shield(self._health_check)
        body = {"status": "ok", "redis": redis_state, "kafka": kafka_state}
        if to_follow is not None:  # an operator's task, not an outage: still 200
            body["numbers_to_follow"] = to_follow
        checked = [("Redis", redis_state), ("the Kafka broker", kafka_state)]
        if registry_state is not None:
            body["schema_registry"] = registry_state
            checked.append(("the schema registry", registry_state))
        if workers is not None:  # the workers' heartbeats (Redis up): is consumption moving?
            state, stalled = consumption(workers, self._heartbeats.late(workers))
            body.update(workers=len(workers), consumption=state)
            if workers:
                # seen (an audit): workers started without the timer, a listing period that had ended
                # stayed on the lists with /health ok; and the inputs waiting, as the check API says
                timer, waiting = timer_and_waiting(workers)
                body["timer"] = "running" if timer else "not running"
                if waiting is not None:
                    body["inputs_waiting"] = waiting
                if not timer:
                    # and with a due instant passed, nothing fires it: degraded (seen: 200 "ok")
                    late = await self._due_backlog()
                    if late:
                        body["timer"] = f"not running: {late} subject(s) past their due instant"
                        checked.append(("timer", body["timer"]))
            if stalled:
                body["stalled"] = stalled
                checked.append(("consumption", "stalled"))
        down = [name for name, state in checked if state != "ok"]
        if not down:
            return json_response(body)
        log.warning("health check: degraded", redis=redis_state, kafka=kafka_state, schema_registry=registry_state,
                    consumption=body.get("consumption"))
        # an error answer like every other (error, message), with which dependency is down
        parts = []
        states = dict(checked)
        # a dependency that answered but refuses these settings (credentials, TLS): waiting does not help
        refusing = [name for name in down if "with these settings" in states[name]]
        full = [name for name in down if states[name].startswith("full")]
        gone = [name for name in down if name not in ("consumption", "timer") and name not in refusing
                and name not in full]
        if gone:
            parts.append(f"{' and '.join(gone)} {'is' if len(gone) == 1 else 'are'} down; try again later")
        for name in full:
            parts.append(f"{name} is {states[name]}")
        for name in refusing:
            parts.append(f"{name} refuses this process's settings (credentials or TLS): fix them, "
                         "waiting will not help")
        if "consumption" in down:
            parts.append("consumption is stalled: " + "; ".join(body["stalled"][:5]))
        if "timer" in down:
            parts.append("no worker runs the timer (start one with the timer agent): " + body["timer"])
        body.update(status="degraded", error="unavailable", message="; ".join(parts))
        return json_response(body, status=503)

    async def _check_health(self) -> tuple[str, str, str | None, list[dict] | None, str | None]:
        redis_state, kafka_state, registry_state = await asyncio.gather(
            self._redis_health(), self._kafka_health(), self._registry_health())
        workers = to_follow = None
        if redis_state == "ok":
            keys = Keys(self.settings.namespace)
            try:
                workers = await asyncio.wait_for(running_workers(self.redis, keys), timeout=HEALTH_TIMEOUT_S)
                # Redis lost the identifier index's writes: the operator's command to run (RegistryIndex)
                noted = await asyncio.wait_for(RegistryIndex(self.redis, keys).numbers_to_follow(),
                                               timeout=HEALTH_TIMEOUT_S)
                to_follow = noted.advice() if noted is not None else None
            except Exception:  # noqa: BLE001 - Redis went away meanwhile: its state says so next time
                pass
        return redis_state, kafka_state, registry_state, workers, to_follow

    async def _due_backlog(self) -> int:
        """The subjects past their due instant by Redis's clock (none read: 0)."""
        try:
            keys = await self._reader().keys()
            return int(await self.redis.zcount(keys.due, "-inf", await redis_now_ms(self.redis)))
        except Exception:  # noqa: BLE001 - Redis went away meanwhile: its state says so next time
            return 0

    async def _registry_health(self) -> str | None:
        """None with the local registry; else whether the remote one answers ``GET /subjects`` with
        the configured credentials and TLS within the timeout (refused credentials: down too)."""
        if self.settings.schema_registry == "local":
            return None
        from creditstream.connections import registry_client

        try:
            await registry_client(self.settings).check(timeout=HEALTH_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - RegistryError (its message has no credentials)
            return "down: " + _reason(exc)
        return "ok"

    async def _redis_health(self) -> str:
        if self.redis is None:
            return "down: the API has no Redis client (not started)"
        try:
            # a read of the key every reader reads first, not PING: an ACL user refused the namespace's
            # keys answers PING, and every other request failed (500) while /health said ok
            await asyncio.wait_for(self.redis.get(Keys(self.settings.namespace).current_generation),
                                   timeout=HEALTH_TIMEOUT_S)
        except TimeoutError:
            return f"down: no answer within {HEALTH_TIMEOUT_S:g} s"
        except rexc.NoPermissionError as exc:
            return "down: " + access_refused(exc, self.settings.namespace)
        except Exception as exc:  # noqa: BLE001 - whatever it is, Redis is not usable
            return "down: " + _reason(exc)
        try:
            used, maxmemory = await asyncio.wait_for(redis_memory(self.redis), timeout=HEALTH_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - INFO not allowed or not answered: the read above said enough
            return "ok"
        if maxmemory and used >= maxmemory:
            # seen (an audit): Redis full, every worker stalled, and /health answered 200 "no worker
            # running" (their heartbeats could not be written either)
            return (f"full: used_memory {used:,} bytes of maxmemory {maxmemory:,}: Redis refuses every write, "
                    f"the workers wait (raise maxmemory, docs/operations.md)")
        return "ok"

    async def _kafka_health(self) -> str:
        try:
            client = AIOKafkaClient(request_timeout_ms=int(HEALTH_TIMEOUT_S * 1000),
                                    **self.settings.kafka_client_kwargs())
        except Exception as exc:  # noqa: BLE001 - e.g. TLS files that do not load
            return "down: " + _reason(exc)
        try:
            await asyncio.wait_for(client.bootstrap(), timeout=HEALTH_TIMEOUT_S)
        except TimeoutError:
            return f"down: no metadata within {HEALTH_TIMEOUT_S:g} s"
        except Exception as exc:  # noqa: BLE001
            # the client says only "Unable to bootstrap": a broker that refuses the credentials, the SASL
            # mechanism or whose certificate is not trusted is named as such (one more connect)
            refused = await kafka_connect_refusal(self.settings, HEALTH_TIMEOUT_S)
            if refused:
                return "down: " + str(KafkaSecurityError(mask_url(self.settings.broker_url), refused))
            return "down: " + _reason(exc)
        finally:
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - closing what did not open
                pass
        return "ok"

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": METRICS_CONTENT_TYPE})

    # --- list changes (Kafka, through ops/inspect.py) -----------------------------------------
    async def changes(self, request: web.Request) -> web.Response:
        start = decode_cursor(request.query.get("since"))
        limit = _int_param(request, "limit", DEFAULT_PAGE, low=1, high=MAX_PAGE)
        reader = self._reader()
        async with self._readers:
            try:
                page = await asyncio.wait_for(
                    reader.changes(start, limit, wait_s=CHANGES_WAIT_S, timeout_s=KAFKA_TIMEOUT_S),
                    timeout=KAFKA_TIMEOUT_S + CHANGES_WAIT_S)
            except BadCursor as exc:
                raise ApiError(400, "bad_request", str(exc)) from None

        def decode_all() -> list[dict]:
            return [change_json(rec, msg.partition, msg.offset) for msg, rec in reader.decode_changes(page.records)]

        # the page's schemas were fetched (awaited) by reader.changes: decoding needs no I/O
        changes = decode_all()
        return self.answer(request, {"changes": changes, "next_cursor": encode_cursor(page.offsets),
                                     "caught_up": page.caught_up})


# --------------------------------------------------------------------------------------------
# serving


def create_api(settings: Settings, redis=None) -> web.Application:
    """The API as an aiohttp application. With ``redis`` given, the caller owns (and closes) it."""
    api = Api(settings, redis)
    api.follows_clock = True
    app = web.Application(middlewares=middlewares(settings, api.access))
    app.add_routes(api.routes())
    app.on_startup.append(api.on_startup)
    app.on_cleanup.append(api.on_cleanup)
    app[API_KEY] = api
    return app


def mount(web_app: web.Application, settings: Settings) -> Api:
    """Add the API's routes and middlewares (JSON errors, authentication: they then cover the
    application's own routes too) to an existing aiohttp application (Faust's web server, before it
    starts); it opens its own Redis client when that application starts and closes it on cleanup."""
    api = Api(settings)
    web_app.middlewares.extend(middlewares(settings, api.access))
    web_app.add_routes(api.routes())
    web_app.on_startup.append(api.on_startup)
    web_app.on_cleanup.append(api.on_cleanup)
    return api


async def serve(settings: Settings, host: str | None = None, port: int | None = None,
                *, stop: asyncio.Event | None = None) -> None:
    """Serve the API on ``host:port`` (default ``settings.web_bind`` and ``settings.web_port``), over
    HTTPS when ``api_tls_certfile`` is set, until ``stop`` is set, SIGINT or SIGTERM arrives, or the
    task is cancelled. Raises AccessConfigError before listening if it must not start
    (:func:`check_serving`)."""
    host = settings.web_bind if host is None else host
    port = settings.web_port if port is None else port
    check_serving(settings, host)
    ssl_context = server_ssl_context(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass
    runner = web.AppRunner(create_api(settings), access_log=None)  # request logs: see guarded()
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        log.info("api serving", host=host, port=port, tls=ssl_context is not None, event_loop=eventloop.running(),
                 auth="tokens" if settings.api_tokens_file else f"none (anonymous: {settings.api_anonymous_role})")
        # what start-up allocated (modules, rules, schemas) never becomes garbage: keep the collector
        # off it, so its full passes stay short (they showed in the check API's p99)
        gc.collect()
        gc.freeze()
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("api stopped")
