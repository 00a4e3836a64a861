"""The schema-registry client (streams/codec.py ``ConfluentRegistry``) against a faithful HTTP fake:
an aiohttp server answering with the Confluent Schema Registry's recorded JSON shapes, content type
and error codes (40403 schema not found, 40401 subject not found, 401 Unauthorized, 50001 backend
store, 42201 invalid schema), over plain HTTP and TLS (a CA and certificates made here with the
openssl command line). No mocks: real sockets, real TLS handshakes.

What is checked: the basic-auth and bearer headers are sent; a refused credential is one request
and a RegistryError naming the credentials; a registry that accepts connections and never answers
fails after the configured timeout while the event loop keeps running other tasks; a transient 503
is retried, a 4xx never; an unknown id is the message's fault (DecodeError, dead-lettered), an
unreachable registry is not (RegistryError); TLS needs the CA setting, and a client certificate
when the registry asks for one; the ingest agent (with a real redis-server) dead-letters a message
whose schema id cannot be used and passes the good ones of its batch. Starts no broker.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import ssl
import subprocess
import time

import pytest
from aiohttp import web

from creditstream.connections import make_codec, registry_client
from creditstream.settings import Settings
from streams.codec import AvroCodec, ConfluentRegistry, DecodeError, RegistryError, UnknownSchemaId, frame
from streams.samples import sample_event, schema_of

pytestmark = pytest.mark.integration

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
PENALTY = schema_of("penalty")
TOPIC = "cs.penalty"


class FakeRegistry:
    """The REST API's subset creditstream uses, answering as Confluent Schema Registry 7.x does.

    ``auth``: None (open), ``("basic", user, password)`` or ``("bearer", token)``; ``fail_next``:
    (status, body) answers given to the next requests before the real one; ``hang``: every request
    is accepted and never answered."""

    def __init__(self, *, auth=None):
        self.auth = auth
        self.schemas: dict[int, str] = {}
        self.by_text: dict[str, int] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization header
        self.fail_next: list[tuple[int, dict]] = []
        self.refused: set[int] = set()  # schema ids answered with a 400
        self.hang = False
        self.url = ""
        self._runner: web.AppRunner | None = None

    # -- recorded answers
    @staticmethod
    def answer(status: int, body) -> web.Response:
        return web.Response(status=status, body=json.dumps(body).encode(), content_type=CONTENT_TYPE)

    def _authorised(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization")
        if self.auth is None:
            return True
        if self.auth[0] == "basic":
            expected = "Basic " + base64.b64encode(f"{self.auth[1]}:{self.auth[2]}".encode()).decode()
        else:
            expected = f"Bearer {self.auth[1]}"
        return given == expected

    @web.middleware
    async def _front(self, request: web.Request, handler):
        self.requests.append((request.method, request.path, request.headers.get("Authorization")))
        if self.hang:
            await asyncio.Event().wait()  # never answers
        if not self._authorised(request):
            return self.answer(401, {"error_code": 401, "message": "Unauthorized"})
        if self.fail_next:
            return self.answer(*self.fail_next.pop(0))
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    async def get_schema(self, request: web.Request) -> web.Response:
        sid = int(request.match_info["id"])
        if sid > 0x7FFFFFFF:  # the resource takes a Java int: no route matches, a bare 404
            return self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
        if sid in self.refused:
            return self.answer(400, {"error_code": 400, "message": "HTTP 400 Bad Request"})
        if sid not in self.schemas:
            return self.answer(404, {"error_code": 40403, "message": f"Schema {sid} not found"})
        return self.answer(200, {"schema": self.schemas[sid]})

    async def list_subjects(self, request: web.Request) -> web.Response:
        return self.answer(200, sorted(self.subjects))

    async def subject_versions(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        if subject not in self.subjects:
            return self.answer(404, {"error_code": 40401, "message": f"Subject '{subject}' not found."})
        return self.answer(200, list(range(1, len(self.subjects[subject]) + 1)))

    async def register(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        if request.content_type != CONTENT_TYPE:
            return self.answer(415, {"error_code": 415, "message": "HTTP 415 Unsupported Media Type"})
        try:
            text = (await request.json())["schema"]
            canon = json.dumps(json.loads(text), sort_keys=True)
        except (ValueError, KeyError, TypeError):
            return self.answer(422, {"error_code": 42201, "message": "Either the input schema or one of its "
                                                                     "references is invalid"})
        sid = self.by_text.setdefault(canon, 1 + len(self.by_text))
        self.schemas[sid] = text
        self.subjects.setdefault(subject, []).append(sid)
        return self.answer(200, {"id": sid})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._front])
        app.add_routes([web.get("/schemas/ids/{id:\\d+}", self.get_schema),
                        web.get("/subjects", self.list_subjects),
                        web.get("/subjects/{subject}/versions", self.subject_versions),
                        web.post("/subjects/{subject}/versions", self.register)])
        return app

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> FakeRegistry:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the port picked for 0
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def requests_to(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p == path)


@pytest.fixture
async def fake():
    registry = await FakeRegistry().start()
    yield registry
    await registry.stop()


async def registered(fake: FakeRegistry) -> tuple[int, bytes]:
    """A penalty encoded by a department client: its schema id and the framed value."""
    department = AvroCodec(ConfluentRegistry(fake.url))
    await department.ensure_writer(PENALTY, TOPIC)
    value = department.encode(PENALTY, sample_event("penalty"), topic=TOPIC)
    return int.from_bytes(value[1:5], "big"), value


# --------------------------------------------------------------------------------------------
# the round trip, and what the hot path may not do


async def test_register_then_a_fresh_client_decodes_by_id_after_one_awaited_fetch(fake):
    sid, value = await registered(fake)
    assert fake.subjects == {f"{TOPIC}-value": [sid]}
    assert ("POST", f"/subjects/{TOPIC}-value/versions", None) in fake.requests

    worker = AvroCodec(ConfluentRegistry(fake.url))
    with pytest.raises(RegistryError) as not_loaded:  # in an event loop: never a blocking fetch
        worker.decode(value)
    assert not_loaded.value.kind == "not-loaded" and fake.requests_to(f"/schemas/ids/{sid}") == 0
    await worker.ensure_for([value, value, None, b"", b"\x01junk"])
    assert fake.requests_to(f"/schemas/ids/{sid}") == 1
    name, record = worker.decode(value)
    assert name == PENALTY and record["subject_name"] == sample_event("penalty")["subject_name"]
    await worker.ensure_for([value])  # cached: nothing asked
    assert fake.requests_to(f"/schemas/ids/{sid}") == 1


async def test_an_unknown_id_is_the_messages_fault_asked_once(fake):
    worker = AvroCodec(ConfluentRegistry(fake.url))
    bad = frame(4242, b"\x00")
    await worker.ensure_for([bad, bad])
    with pytest.raises(DecodeError) as e:
        worker.decode(bad)
    assert e.value.reason == "unknown-schema-id" and "Schema 4242 not found" in str(e.value)
    await worker.ensure_for([bad])  # remembered as unknown for a while: not asked again per batch
    assert fake.requests_to("/schemas/ids/4242") == 1


async def test_a_404_that_is_not_40403_is_the_registrys_failure_not_the_messages(fake):
    """A wrong URL (a path the registry does not serve) must not dead-letter every message."""
    worker = AvroCodec(ConfluentRegistry(fake.url + "/wrong-prefix", retries=0))
    with pytest.raises(RegistryError) as e:
        await worker.ensure_for([frame(1, b"\x00")])
    assert e.value.status == 404 and e.value.error_code == 404 and not e.value.outage


async def test_an_invalid_schema_is_refused_with_the_registrys_code_and_not_retried(fake):
    fake.fail_next = [(422, {"error_code": 42201, "message": "Either the input schema or one of its references "
                                                             "is invalid"})]
    with pytest.raises(RegistryError) as e:
        await ConfluentRegistry(fake.url).register(PENALTY, TOPIC)
    assert (e.value.status, e.value.error_code, e.value.outage) == (422, 42201, False)
    assert fake.requests_to(f"/subjects/{TOPIC}-value/versions") == 1


async def test_an_unusable_schema_id_is_dead_lettered_and_the_rest_of_the_batch_goes_on(fake, redis, settings):
    """The ingest agent's batch: a good penalty, one framed with an id whose registered schema does
    not parse, one with an id the registry refuses with a 4xx, one with an id over 2^31-1. The batch
    goes through (it was retried for ever: a RegistryError); the three are dead-lettered."""
    from aiokafka import ConsumerRecord

    from agents.ingest import IngestAgent
    from domain import events
    from schemas import load_schema
    from sinks.deadletter import dead_letter_info
    from sinks.keys import Keys
    from sinks.registry_index import RegistryIndex
    from streams.topics import Topics

    sid, good = await registered(fake)
    broken = load_schema(PENALTY)
    for f in broken["fields"]:
        if f["name"] == "fine_amount":  # a scale over the precision: Java Avro ignores it, fastavro refuses
            f["type"] = ["null", {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 6}]
    fake.schemas[sid + 1] = json.dumps(broken)
    topics = Topics(settings.topic_prefix)
    body = good[5:]
    values = [good, frame(sid + 1, body), frame(sid + 2, body), bytes([0, 0xFF, 0, 0, 1]) + body]
    fake.refused.add(sid + 2)
    now = int(time.time() * 1000) - 60_000
    records = [ConsumerRecord(topic=topics.for_kind("penalty"), partition=0, offset=i, timestamp=now, timestamp_type=0,
                              key=None, value=v, checksum=None, serialized_key_size=0, serialized_value_size=len(v),
                              headers=()) for i, v in enumerate(values)]
    agent = IngestAgent(topics=topics, codec=AvroCodec(ConfluentRegistry(fake.url, retries=0)),
                        index=RegistryIndex(redis, Keys(settings.namespace)), producer=None)
    checkpoint = agent.checkpoint()
    await asyncio.wait_for(agent.process(records, checkpoint), 10)
    await checkpoint.complete()
    dead = {int(dead_letter_info(m.headers)["source.offset"]): dead_letter_info(m.headers)["reason"]
            for m in checkpoint.collected if m.topic == topics.dead_letters}
    assert dead == {1: "unusable-schema", 2: "unknown-schema-id", 3: "unknown-schema-id"}
    [event] = [events.decode(m.value) for m in checkpoint.collected if m.topic == topics.subject_events]
    assert event.record["doc_no"] == sample_event("penalty")["decision_doc_no"]


async def test_list_changes_register_the_current_version_beside_v1_and_both_decode(fake):
    """A remote registry: list-changes-value holds the v1 ListChange a worker registered before the
    upgrade (messages framed with its id stay on the topic); the subject agent's codec registers
    the current version as the subject's next one, under a new id, and encodes with it; a reader
    decodes both, the v1 change with the new fields' defaults."""
    import datetime as dt

    from domain.kinds import LIST_CHANGE_SCHEMA
    from schemas import retired_schemas

    topic = "cs.list-changes"
    v1 = retired_schemas()[10]
    before = AvroCodec(ConfluentRegistry(fake.url, schemas={LIST_CHANGE_SCHEMA: v1}))  # a pre-upgrade worker
    old = {"change_id": "c1", "subject_id": "91310110666007217T", "subject_kind": "uscc",
           "list": "blacklist:environment", "list_kind": "blacklist", "domain": "environment",
           "transition": "entered", "effective_date": dt.date(2024, 7, 15), "cause_record_ids": ["r"],
           "event_time": dt.datetime(2024, 7, 15, 2, tzinfo=dt.UTC), "rules_version": "henan-2024.1"}
    await before.ensure_writer(LIST_CHANGE_SCHEMA, topic)
    old_value = before.encode(LIST_CHANGE_SCHEMA, old, topic=topic)

    after = AvroCodec(ConfluentRegistry(fake.url))
    await after.ensure_writer(LIST_CHANGE_SCHEMA, topic)
    new = {**old, "change_id": "c2", "cause_kind": "listing", "cause_decision": "d", "withdraws": None,
           "arrival_time": dt.datetime(2024, 7, 16, tzinfo=dt.UTC), "sequence": 1_721_088_000_000_000}
    new_value = after.encode(LIST_CHANGE_SCHEMA, new, topic=topic)
    old_id, new_id = (int.from_bytes(v[1:5], "big") for v in (old_value, new_value))
    assert old_id != new_id and fake.subjects == {f"{topic}-value": [old_id, new_id]}

    reader = AvroCodec(ConfluentRegistry(fake.url))
    await reader.ensure_for([old_value, new_value])
    assert reader.decode(old_value) == (LIST_CHANGE_SCHEMA, {**old, "cause_kind": "", "cause_decision": None,
                                                             "withdraws": None, "arrival_time": None,
                                                             "sequence": 0})
    assert reader.decode(new_value) == (LIST_CHANGE_SCHEMA, new)


# --------------------------------------------------------------------------------------------
# credentials


async def test_basic_auth_header_sent_from_the_settings_and_from_the_url():
    fake = await FakeRegistry(auth=("basic", "svc-creditstream", "p@ss:w/rd")).start()
    try:
        s = Settings(schema_registry=fake.url, schema_registry_username="svc-creditstream",
                     schema_registry_password="p@ss:w/rd")
        assert s.validate() == [] or all("schema_registry" not in p for p in s.validate())
        codec = make_codec(s)
        await codec.ensure_writer(PENALTY, TOPIC)
        # user:password@ in the URL (percent-encoded as URLs need): the same header
        in_url = fake.url.replace("http://", "http://svc-creditstream:p%40ss%3Aw%2Frd@")
        sid = await ConfluentRegistry(in_url).register(PENALTY, "cs.other")
        expected = "Basic " + base64.b64encode(b"svc-creditstream:p@ss:w/rd").decode()
        assert [auth for _, _, auth in fake.requests] == [expected, expected]
        assert sid >= 1
    finally:
        await fake.stop()


async def test_bearer_token_header_sent():
    fake = await FakeRegistry(auth=("bearer", "tok-123.abc")).start()
    try:
        codec = make_codec(Settings(schema_registry=fake.url, schema_registry_token="tok-123.abc"))
        await codec.ensure_writer(PENALTY, TOPIC)
        await registry_client(Settings(schema_registry=fake.url, schema_registry_token="tok-123.abc")).check()
        assert [auth for _, _, auth in fake.requests] == ["Bearer tok-123.abc"] * 2
    finally:
        await fake.stop()


@pytest.mark.parametrize("given, advice", [
    ({"schema_registry_username": "svc", "schema_registry_password": "wrong-pw-987"}, "schema_registry_password"),
    ({"schema_registry_token": "stale-token-654"}, "schema_registry_token"),
    ({}, "no credentials are configured"),
])
async def test_refused_credentials_are_one_request_and_a_clear_auth_error(given, advice):
    fake = await FakeRegistry(auth=("basic", "svc", "right-pw")).start()
    try:
        worker = make_codec(Settings(schema_registry=fake.url, **given))
        t0 = time.monotonic()
        with pytest.raises(RegistryError) as e:
            await worker.ensure_for([frame(1, b"\x00")])
        assert time.monotonic() - t0 < 1.0  # no retries, no backoff
        assert len(fake.requests) == 1  # a 4xx is never retried
        err = e.value
        assert (err.kind, err.status, err.error_code, err.outage) == ("auth", 401, 401, False)
        assert "refused the credentials" in str(err) and "Unauthorized" in str(err) and advice in str(err)
        assert "wrong-pw-987" not in str(err) and "stale-token-654" not in str(err)
        with pytest.raises(RegistryError, match="refused the credentials"):  # the probe and /health say so too
            await registry_client(Settings(schema_registry=fake.url, **given)).check()
    finally:
        await fake.stop()


# --------------------------------------------------------------------------------------------
# outages: timeouts, transient answers


@pytest.fixture
async def hung_url():
    """A registry that accepts connections and never answers a byte."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_hung_registry_fails_after_the_timeout_and_the_loop_keeps_ticking(hung_url):
    timeout, retries = 0.4, 1
    worker = make_codec(Settings(schema_registry=hung_url, schema_registry_timeout_s=timeout,
                                 schema_registry_retries=retries))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    ticking = asyncio.create_task(ticker())
    t0 = time.monotonic()
    try:
        with pytest.raises(RegistryError) as e:
            await worker.ensure_for([frame(7, b"\x00")])
    finally:
        ticking.cancel()
    elapsed = time.monotonic() - t0
    assert e.value.outage and e.value.kind == "unreachable"
    assert f"no answer within {timeout:g} s" in str(e.value) and hung_url in str(e.value)
    # both attempts waited their full timeout (plus one backoff), and not much longer
    assert (retries + 1) * timeout <= elapsed < (retries + 1) * timeout + 1.5, elapsed
    # the event loop ran the ticker all along: no gap of more than a few ticks
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) >= elapsed / 0.05 * 0.6 and max(gaps) < 0.25, (len(ticks), max(gaps))


async def test_a_transient_503_is_retried_and_then_succeeds(fake):
    sid, value = await registered(fake)
    fake.fail_next = [(503, {"error_code": 50003, "message": "Error while forwarding the request to the primary"})]
    worker = AvroCodec(ConfluentRegistry(fake.url, retries=2))
    await worker.ensure_for([value])
    assert fake.requests_to(f"/schemas/ids/{sid}") == 2
    assert worker.decode(value)[0] == PENALTY


async def test_a_lasting_500_fails_after_the_retries_as_an_outage(fake):
    sid, value = await registered(fake)
    fake.fail_next = [(500, {"error_code": 50001, "message": "Error in the backend data store"})] * 5
    worker = AvroCodec(ConfluentRegistry(fake.url, retries=2))
    with pytest.raises(RegistryError) as e:
        await worker.ensure_for([value])
    assert (e.value.status, e.value.error_code, e.value.outage) == (500, 50001, True)
    assert "backend data store" in str(e.value)
    assert fake.requests_to(f"/schemas/ids/{sid}") == 3  # the first try and 2 retries


async def test_an_unreachable_registry_is_an_outage_with_no_credentials_in_the_message(unused_tcp_port):
    url = f"http://svc:secret-pw-321@127.0.0.1:{unused_tcp_port}"
    worker = make_codec(Settings(schema_registry=url, schema_registry_retries=0))
    with pytest.raises(RegistryError) as e:
        await worker.ensure_for([frame(1, b"\x00")])
    assert e.value.outage and "unreachable" in str(e.value)
    assert "secret-pw-321" not in str(e.value) + repr(worker.registry)
    assert f"http://127.0.0.1:{unused_tcp_port}" in str(e.value)


@pytest.fixture
def unused_tcp_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the block ends: nothing listens there


# --------------------------------------------------------------------------------------------
# TLS


def openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA made here, a server certificate for 127.0.0.1 and a client certificate it signed."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command line is needed to make the test certificates")
    d = tmp_path_factory.mktemp("pki")
    (d / "min.cnf").write_text("[req]\ndistinguished_name=dn\n[dn]\n")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2")
    openssl("req", "-config", "min.cnf", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", cwd=d)
    for name, usage, extra in (("server", "serverAuth", ("-addext", "subjectAltName=IP:127.0.0.1")),
                               ("client", "clientAuth", ())):
        openssl("req", "-config", "min.cnf", "-x509", "-CA", "ca.pem", "-CAkey", "ca.key", *ec,
                "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}",
                "-addext", "basicConstraints=critical,CA:FALSE", "-addext", f"extendedKeyUsage={usage}", *extra, cwd=d)
    return d


async def test_tls_needs_the_ca_setting_and_a_client_certificate_when_asked(pki):
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki / "server.pem", pki / "server.key")
    server.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: the registry asks for a client certificate
    server.load_verify_locations(pki / "ca.pem")
    fake = await FakeRegistry().start(server)
    try:
        # the system's CAs do not know ours: a TLS failure naming the setting, not retried as an outage
        with pytest.raises(RegistryError) as e:
            await registry_client(Settings(schema_registry=fake.url)).register(PENALTY, TOPIC)
        assert e.value.kind == "tls" and not e.value.outage
        assert "schema_registry_ca_file" in str(e.value)

        # the CA, but no client certificate: the registry refuses the handshake
        with pytest.raises(RegistryError):
            await registry_client(Settings(schema_registry=fake.url, schema_registry_ca_file=str(pki / "ca.pem"),
                                           schema_registry_retries=0)).register(PENALTY, TOPIC)
        assert fake.requests == []  # nothing reached HTTP

        s = Settings(schema_registry=fake.url, schema_registry_ca_file=str(pki / "ca.pem"),
                     schema_registry_certfile=str(pki / "client.pem"), schema_registry_keyfile=str(pki / "client.key"))
        assert [p for p in s.validate() if "schema_registry" in p] == []
        codec = make_codec(s)
        await codec.ensure_writer(PENALTY, TOPIC)
        value = codec.encode(PENALTY, sample_event("penalty"), topic=TOPIC)
        fresh = make_codec(s)
        await fresh.ensure_for([value])
        assert fresh.decode(value)[0] == PENALTY
        assert [(m, p) for m, p, _ in fake.requests] == [("POST", f"/subjects/{TOPIC}-value/versions"),
                                                         ("GET", f"/schemas/ids/{int.from_bytes(value[1:5], 'big')}")]
    finally:
        await fake.stop()


def test_tls_files_that_do_not_load_are_a_clear_settings_error(tmp_path):
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("hello")
    with pytest.raises(RegistryError) as e:
        registry_client(Settings(schema_registry="https://registry:8081", schema_registry_ca_file=str(bad)))
    assert e.value.kind == "config" and "schema_registry_ca_file" in str(e.value)


# --------------------------------------------------------------------------------------------
# without an event loop (a command line): the same client, fetching on a miss


def test_without_an_event_loop_the_sync_calls_fetch_what_they_miss():
    async def setup():
        fake = await FakeRegistry().start()
        sid, value = await registered(fake)
        return fake, sid, value

    loop = asyncio.new_event_loop()
    try:
        fake, sid, value = loop.run_until_complete(setup())
        import threading

        thread = threading.Thread(target=loop.run_forever, daemon=True)  # the fake keeps serving
        thread.start()
        try:
            reg = ConfluentRegistry(fake.url)
            assert AvroCodec(reg).decode(value)[0] == PENALTY  # no running loop here: fetched on the miss
            assert reg.id_for(PENALTY, TOPIC) == sid
            with pytest.raises(UnknownSchemaId):
                reg.schema(999)
        finally:
            asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
    finally:
        loop.close()
