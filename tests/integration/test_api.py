"""The HTTP query API (creditstream/api.py) against the embedded stack: every answer is validated
against docs/openapi.yaml (the response schema of its path and status, OpenAPI 3.0 converted to JSON
Schema draft 4); 404 and 400 answers; /changes paging returns every change exactly once; /metrics;
and the worker's own web server (``creditstream worker --web``) serves the same routes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime as dt
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT4

from streams import samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually

pytestmark = pytest.mark.integration

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
SPEC_URI = "urn:creditstream:openapi"
CST = dt.timezone(dt.timedelta(hours=8))


# --------------------------------------------------------------------------------------------
# OpenAPI 3.0 -> JSON Schema draft 4


def to_json_schema(node):
    """OpenAPI 3.0 schema objects as draft-4 JSON Schema: ``nullable`` becomes a ``null`` type (and
    ``None`` in an enum), local ``$ref``s point into the spec resource, OpenAPI-only keywords go."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("nullable", "example", "discriminator", "xml", "externalDocs", "deprecated"):
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith("#/"):
            out[key] = SPEC_URI + value
            continue
        out[key] = to_json_schema(value)
    if node.get("nullable") is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = types + ["null"]
        if "enum" in out:
            out["enum"] = out["enum"] + [None]
    return out


class OpenApi:
    def __init__(self, path: Path = SPEC_PATH):
        self.doc = yaml.safe_load(path.read_text())
        self.converted = to_json_schema(copy.deepcopy(self.doc))
        self.registry = Registry().with_resource(SPEC_URI, DRAFT4.create_resource(self.converted))

    def _follow(self, node: dict) -> dict:
        while "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def response(self, path: str, status: int, method: str = "get") -> dict:
        assert path in self.doc["paths"], f"{path} is not documented"
        responses = self.doc["paths"][path][method]["responses"]
        assert str(status) in responses, f"{method.upper()} {path}: status {status} is not documented"
        return self._follow(responses[str(status)])

    def validate(self, schema: dict, instance) -> None:
        validator = Draft4Validator(to_json_schema(schema), registry=self.registry, format_checker=FormatChecker())
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])

    def component(self, name: str) -> dict:
        return self.doc["components"]["schemas"][name]


SPEC = OpenApi()


class Client:
    """GETs an endpoint and checks the answer against the spec (status, media type, schema)."""

    def __init__(self, session: aiohttp.ClientSession, base: str):
        self.session = session
        self.base = base

    async def get(self, url: str, template: str | None, *, expect: int = 200, params=None):
        async with self.session.get(self.base + url, params=params) as resp:
            body = await resp.read()
            ctype = resp.headers.get("Content-Type", "")
        assert resp.status == expect, (url, resp.status, body[:500])
        assert b"Traceback" not in body
        if template is None:  # not a documented path: an Error all the same
            assert ctype.startswith("application/json"), ctype
            data = orjson.loads(body)
            SPEC.validate(SPEC.component("Error"), data)
            return data
        response = SPEC.response(template, resp.status)
        media = response["content"]
        if ctype.startswith("application/json"):
            assert "application/json" in media, (template, resp.status, ctype)
            data = orjson.loads(body)
            SPEC.validate(media["application/json"]["schema"], data)
            return data
        declared = [m for m in media if m.startswith(("text/plain", "text/html"))]
        assert any(ctype.replace(" ", "").startswith(m.replace(" ", "")) for m in declared), (ctype, list(media))
        return body.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_http(url: str, timeout: float = 30.0):
    async def up():
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                return resp.status
        except aiohttp.ClientError:
            return None

    return await eventually(up, timeout=timeout, interval=0.2)


async def all_changes(settings) -> list[tuple[int, int, str]]:
    """(partition, offset, change_id) of every list change, read straight from the topic."""
    from streams import kafka
    from streams.topics import Topics

    out = []
    async for batch in kafka.read_to_end(settings, Topics(settings).list_changes):
        out += [(m.partition, m.offset, dict(m.headers)["change_id"].decode()) for m in batch]
    return sorted(out)


def cursor_of(obj) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()


# --------------------------------------------------------------------------------------------


async def produce_listing_inputs(department) -> None:
    """A severe environment penalty (blacklist, and the legal representative follows) and a court
    listing (court debtor, escalation), decided recently so nothing falls due while the test runs."""
    today = dt.datetime.now(CST).date()
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    penalty = sample_event("penalty", severity="严重", domain="environment", source_unit=samples.ECO_ZZ,
                           source_unit_uscc=samples.ECO_ZZ_USCC, decision_doc_no="郑环罚〔2026〕101号",
                           decision_date=today - dt.timedelta(days=30), valid_until=None, publicity_end_date=None)
    listing = sample_event("court_listing", listing_reason="obstruct", case_no="(2026)豫01执101号",
                           listing_date=today - dt.timedelta(days=20), publish_date=today - dt.timedelta(days=19))
    await department.send(schema_of("penalty"), penalty, timestamp_ms=now_ms)
    await department.send(schema_of("court_listing"), listing, timestamp_ms=now_ms)


async def test_api_answers_match_the_openapi_document(settings, pipeline, department, redis):
    from creditstream.api import serve
    from ops.inspect import list_names, subject_lists

    company, person = samples.COMPANY_USCC, samples.LEGAL_REP_ID
    await produce_listing_inputs(department)

    # every list the two inputs put either subject on: the legal representative follows the company
    # onto all three (its links are applied in batches of their own, on its partition). Waiting for
    # the person's blacklist alone, the API's list sizes and members were compared with Redis while
    # the person's court-debtor and escalation entries could still come between the two reads
    wanted = {"blacklist:environment", "court_debtor", "escalated"}

    async def listed():
        mine = await subject_lists(settings, company)
        theirs = await subject_lists(settings, person)
        return mine and theirs and wanted <= set(mine["lists"]) and wanted <= set(theirs["lists"])

    await eventually(listed, timeout=60)

    # and each of those list changes on the topic (produced after the batch's state write): /changes
    # is compared with the topic read a moment before it
    from tests.integration.test_rules_scenario import read_changes

    announced = {(subject, name, "escalated" if name == "escalated" else "entered")
                 for subject in (company, person) for name in wanted}

    async def all_announced():
        return announced <= {(c["subject_id"], c["list"], c["transition"]) for c in await read_changes(settings)}

    await eventually(all_announced, timeout=60)

    port = free_port()
    stop = asyncio.Event()
    # no token file, on loopback: anonymous requests get api_anonymous_role; personal here, to compare
    # the answers with the stored state whole (the public role's masking: test_api_auth.py)
    personal = settings.replace(api_anonymous_role="personal")
    server = asyncio.create_task(serve(personal, "127.0.0.1", port, stop=stop))
    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        async with aiohttp.ClientSession() as session:
            api = Client(session, f"http://127.0.0.1:{port}")

            # --- subjects ---------------------------------------------------------------
            state = await api.get(f"/subjects/{company}", "/subjects/{code}")
            assert state["id"] == company and state["id_kind"] == "uscc"
            assert any(r["kind"] == "penalty" and r["status"] == "active" for r in state["records"].values())
            # any identifier it is known by: a printed variant, its organisation code
            assert (await api.get(f"/subjects/{quote('91310110-666007217t')}", "/subjects/{code}"))["id"] == company
            assert (await api.get(f"/subjects/{samples.COMPANY_ORG_CODE}", "/subjects/{code}"))["id"] == company
            their = await api.get(f"/subjects/{person}", "/subjects/{code}")
            assert their["id_kind"] == "resident_id"

            lists = await api.get(f"/subjects/{company}/lists", "/subjects/{code}/lists")
            assert lists == await subject_lists(settings, company)
            assert {"blacklist:environment", "court_debtor", "escalated"} <= set(lists["lists"])
            assert lists["lists"]["blacklist:environment"]["domain"] == "environment"

            for url in ("/subjects/91350211MA0000000X", "/subjects/91350211MA0000000X/lists", "/subjects/---"):
                template = "/subjects/{code}/lists" if url.endswith("/lists") else "/subjects/{code}"
                err = await api.get(url, template, expect=404)
                assert err["error"] == "not_found"

            # --- lists ------------------------------------------------------------------
            sizes = await api.get("/lists", "/lists")
            assert sizes["lists"] == await list_names(settings)
            assert sizes["lists"]["blacklist:environment"] == 2

            for name in sizes["lists"]:
                members, cursor, pages = [], None, 0
                while True:
                    params = {"limit": "1"} if cursor is None else {"limit": "1", "cursor": str(cursor)}
                    page = await api.get(f"/lists/{quote(name)}", "/lists/{name}", params=params)
                    assert page["list"] == name
                    members += page["members"]
                    pages += 1
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                    assert pages < 100
                from sinks.keys import resolve_keys

                keys = await resolve_keys(redis, settings.namespace)
                # the set holds storage ids (a person's as a pseudonym): as many as the pages gave
                assert len(set(members)) == await redis.scard(keys.list_members(name))
            page = await api.get("/lists/blacklist:environment", "/lists/{name}")
            assert sorted(page["members"]) == sorted([company, person]) and page["next_cursor"] is None

            err = await api.get("/lists/blacklist:no-such-domain", "/lists/{name}", expect=404)
            assert err["error"] == "not_found"
            for params in ({"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"limit": "1.5"},
                           {"cursor": "-1"}, {"cursor": "abc"}, {"cursor": str(2**64)}):
                err = await api.get("/lists/court_debtor", "/lists/{name}", expect=400, params=params)
                assert err["error"] == "bad_request" and err["message"], params

            # --- changes ----------------------------------------------------------------
            truth = await all_changes(settings)
            assert len(truth) >= 4, truth  # company: blacklist, court debtor, escalated; person: blacklist
            everything = await api.get("/changes", "/changes", params={"limit": "1000"})
            assert everything["caught_up"] is True
            got = sorted((c["partition"], c["offset"], c["change_id"]) for c in everything["changes"])
            assert got == truth
            mine = {(c["list"], c["transition"]) for c in everything["changes"] if c["subject_id"] == company}
            assert {("blacklist:environment", "entered"), ("court_debtor", "entered"),
                    ("escalated", "escalated")} <= mine
            one = next(c for c in everything["changes"] if c["list"] == "court_debtor")
            assert dt.date.fromisoformat(one["effective_date"]) and isinstance(one["event_time"], int)

            # limit 1, following next_cursor: every change exactly once, then an empty caught-up page
            seen, cursor = [], None
            for _ in range(len(truth) + 5):
                params = {"limit": "1"} if cursor is None else {"limit": "1", "since": cursor}
                page = await api.get("/changes", "/changes", params=params)
                assert len(page["changes"]) <= 1
                seen += [(c["partition"], c["offset"], c["change_id"]) for c in page["changes"]]
                cursor = page["next_cursor"]
                if not page["changes"]:
                    assert page["caught_up"] is True
                    break
            assert sorted(seen) == truth and len(seen) == len(set(seen))
            # the final cursor stays put: nothing new
            again = await api.get("/changes", "/changes", params={"since": cursor})
            assert again["changes"] == [] and again["next_cursor"] == cursor

            for params in ({"since": "not a cursor"}, {"since": cursor_of([1, 2])},
                           {"since": cursor_of({"0": -1})}, {"since": cursor_of({"x": 1})},
                           {"since": cursor_of({"999": 0})}, {"since": "%%%"},
                           {"limit": "0"}, {"limit": "1001"}, {"limit": "x"}):
                err = await api.get("/changes", "/changes", expect=400, params=params)
                assert err["error"] == "bad_request" and err["message"], params

            # --- health, metrics, unknown endpoints ---------------------------------------
            health = await api.get("/health", "/health")
            assert health.pop("inputs_waiting") >= 0  # (as of the worker's last heartbeat)
            assert health == {"status": "ok", "redis": "ok", "kafka": "ok", "workers": 1, "consumption": "ok",
                              "timer": "running"}
            text = await api.get("/metrics", "/metrics")
            assert any(line.startswith("creditstream_events_in_total{") for line in text.splitlines()), text[:2000]
            assert "creditstream_list_changes_total" in text

            err = await api.get("/no/such/endpoint", None, expect=404)
            assert err["error"] == "not_found"
            async with session.post(f"http://127.0.0.1:{port}/health") as resp:
                assert resp.status == 405 and resp.headers.get("Allow") == "GET"  # RFC 9110 15.5.6
                SPEC.validate(SPEC.component("Error"), await resp.json())
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


@contextlib.asynccontextmanager
async def served(settings):
    """The API app (create_api) on a free loopback port, in this process: its port."""
    from creditstream.api import create_api

    runner = web.AppRunner(create_api(settings), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def test_unreachable_backends_answer_503(settings):
    """Redis or the broker down: a JSON 503, no stack trace."""
    dead = free_port()
    bad = settings.replace(redis_url=f"redis://127.0.0.1:{dead}/0", broker_url=f"127.0.0.1:{dead}")
    async with served(bad) as port, aiohttp.ClientSession() as session:
        api = Client(session, f"http://127.0.0.1:{port}")
        for url, template in (("/health", "/health"), (f"/subjects/{samples.COMPANY_USCC}", "/subjects/{code}"),
                              ("/lists", "/lists"), ("/changes", "/changes")):
            err = await api.get(url, template, expect=503)
            assert err["error"] == "unavailable", (url, err)


async def test_an_unreadable_request_answers_json_and_quotes_nothing(settings):
    """A request line over aiohttp's 8190 bytes is refused before any route: as JSON ``Error``, not
    aiohttp's text quoting the bytes read (here an ID number in the URL)."""
    async with served(settings) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        target = f"/disclosure?q={samples.PERSON_ID}&pad=" + "A" * 9000
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split()[1] == b"400", head
        assert b"content-type: application/json" in head.lower(), head
        err = orjson.loads(body)
        SPEC.validate(SPEC.component("Error"), err)
        assert err["error"] == "bad_request" and "8190" in err["message"]
        assert samples.PERSON_ID.encode() not in raw


def test_openapi_documents_every_route():
    """The spec's paths are exactly the API's routes, and every $ref in it resolves."""
    from creditstream.api import create_api
    from creditstream.settings import Settings

    app = create_api(Settings())
    routes = {r.resource.canonical for r in app.router.routes() if r.method == "GET"}
    assert routes == set(SPEC.doc["paths"])

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    for ref in refs(SPEC.doc):
        assert SPEC._follow({"$ref": ref}), ref
    for _name, schema in SPEC.converted["components"]["schemas"].items():
        Draft4Validator.check_schema(schema)


async def test_worker_web_serves_the_api(settings, department, tmp_path):
    """``creditstream worker --web``: Faust's web server serves /health, /metrics and the API."""
    from tests.workers import stop_process, worker_env

    port = free_port()
    log_path = tmp_path / "worker.log"
    with open(log_path, "ab") as fh:
        worker = subprocess.Popen([sys.executable, "-m", "creditstream.cli", "worker", "--web", "--web-port", str(port)],
                                  env=worker_env(settings), stdout=fh, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        await produce_listing_inputs(department)
        base = f"http://127.0.0.1:{port}"

        async def applied():
            assert worker.poll() is None, f"worker exited: {log_path.read_text()[-3000:]}"
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.get(f"{base}/subjects/{samples.COMPANY_USCC}/lists") as resp:
                        return resp.status == 200 and "court_debtor" in (await resp.json())["lists"]
            except aiohttp.ClientError:
                return False

        await eventually(applied, timeout=90, interval=0.5)
        async with aiohttp.ClientSession() as session:
            api = Client(session, base)
            health = await api.get("/health", "/health")
            assert health.pop("inputs_waiting") >= 0  # (as of the worker's last heartbeat)
            assert health == {"status": "ok", "redis": "ok", "kafka": "ok", "workers": 1, "consumption": "ok",
                              "timer": "running"}
            text = await api.get("/metrics", "/metrics")
            assert any(line.startswith("creditstream_events_in_total{") for line in text.splitlines()), text[:2000]
            # the company, and its legal representative by the company's listing (docs/events.md).
            # The two are different subjects on different partitions: the person's listing may be
            # applied after the company's, so wait for both rather than read the count once.
            async def both_listed():
                return (await api.get("/lists", "/lists"))["lists"].get("court_debtor", 0) == 2

            await eventually(both_listed, timeout=60, interval=0.5)
            page = await api.get("/changes", "/changes", params={"limit": "1000"})
            assert page["changes"]
            await api.get("/subjects/91350211MA0000000X", "/subjects/{code}", expect=404)
    finally:
        stop_process(worker)
    log = log_path.read_text()
    assert samples.LEGAL_REP_ID not in log, "an ID number reached the worker log"


async def test_the_api_command_answers_checks_on_uvloop_and_stops_on_sigterm(settings, tmp_path):
    """``creditstream api``, the process the check API runs as: it serves on uvloop (the default
    event loop, creditstream/eventloop.py) and says so at start, answers a check, and stops cleanly
    on SIGTERM (its signal handlers are the loop's)."""
    import signal

    from tests.workers import worker_env

    port = free_port()
    log_path = tmp_path / "api.log"
    with open(log_path, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "creditstream.cli", "api", "--host", "127.0.0.1",
                                 "--port", str(port)], env=worker_env(settings), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        async def up():
            assert proc.poll() is None, f"api exited: {log_path.read_text()[-3000:]}"
            try:
                async with aiohttp.ClientSession() as session, session.get(f"{base}/health") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(up, timeout=60, interval=0.3)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/check", params={"subject": "91350211MA0000000X",
                                                            "matter": "government_procurement"}) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["outcome"] == "no_record"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    serving = [line for line in log_path.read_text().splitlines() if "api serving" in line]
    assert serving and '"event_loop":"uvloop"' in serving[0], log_path.read_text()[-3000:]
    assert "api stopped" in log_path.read_text()
