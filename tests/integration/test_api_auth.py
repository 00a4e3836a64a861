"""Access to the query API (creditstream/access.py, creditstream/api.py) against the embedded stack:
bearer tokens (401 without or with a wrong one, JSON and ``WWW-Authenticate``), roles (403, and the
public role never sees a natural person's ID number or name, in any answer), HTTPS with a
self-signed certificate, the worker's web server (``worker --web``) behaving the same, and a
non-loopback address without tokens refused at start (exit 2)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from streams import samples
from streams.samples import sample_event, schema_of
from tests import builders
from tests.conftest import eventually
from tests.integration.test_api import SPEC, free_port, produce_listing_inputs
from tests.workers import stop_process, worker_env

pytestmark = pytest.mark.integration

CST = dt.timezone(dt.timedelta(hours=8))
PUBLIC_TOKEN = "public-" + "a1" * 20
PERSONAL_TOKEN = "personal-" + "b2" * 20
PERSON, PERSON_ID = samples.PERSON, samples.PERSON_ID          # a natural person with their own penalty
REP, REP_ID = samples.LEGAL_REP, samples.LEGAL_REP_ID          # the company's legal representative
COMPANY = samples.COMPANY_USCC
# the full numbers and names, however an answer escapes them (JSON keeps CJK as is or as \\uXXXX)
SECRETS = [re.compile(re.escape(s)) for s in (PERSON_ID, REP_ID, PERSON, REP)]
SECRETS += [re.compile(re.escape("".join(f"\\u{ord(c):04x}" for c in s)), re.IGNORECASE) for s in (PERSON, REP)]


def token_file(tmp_path: Path) -> str:
    return builders.token_file(tmp_path, PUBLIC_TOKEN, PERSONAL_TOKEN)


def self_signed(tmp_path: Path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return str(cert), str(key)


async def produce_person_inputs(department) -> None:
    """A severe environment penalty on a natural person (who is named, with their number, in the
    facts too), decided recently."""
    today = dt.datetime.now(CST).date()
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    penalty = sample_event("penalty", subject_name=PERSON, subject_category="自然人", uscc=None,
                           person_id_type="身份证", person_id_no=PERSON_ID, legal_rep_name=None,
                           legal_rep_id_type=None, legal_rep_id_no=None, severity="严重", domain="environment",
                           source_unit=samples.ECO_ZZ, source_unit_uscc=samples.ECO_ZZ_USCC,
                           decision_doc_no="郑环罚〔2026〕202号", decision_date=today - dt.timedelta(days=25),
                           facts=f"当事人{PERSON}（身份证号{PERSON_ID}）于2026年擅自倾倒危险废物。",
                           valid_until=None, publicity_end_date=None, event_id="eco-zz-202")
    await department.send(schema_of("penalty"), penalty, timestamp_ms=now_ms)


class Api:
    """GETs with a token (or none), checking every answer is JSON or metrics text as documented."""

    def __init__(self, session: aiohttp.ClientSession, base: str, ssl_context=None):
        self.session, self.base, self.ssl = session, base, ssl_context
        self.bodies: list[tuple[str, str]] = []

    async def get(self, path: str, token: str | None = None, *, expect: int = 200, params=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(self.base + path, headers=headers, params=params, ssl=self.ssl) as resp:
            body = await resp.read()
            assert resp.status == expect, (path, resp.status, body[:300])
            ctype = resp.headers.get("Content-Type", "")
            self.bodies.append((path, body.decode()))
            if expect == 401:
                assert resp.headers["WWW-Authenticate"].startswith("Bearer"), resp.headers
            if path == "/metrics" and expect == 200:
                return body.decode()
            assert ctype.startswith("application/json"), (path, ctype)
            data = orjson.loads(body)
            if expect >= 400:
                SPEC.validate(SPEC.component("Error"), data)
            return data


async def wait_for_lists(settings) -> None:
    from ops.inspect import subject_lists

    async def listed():
        company = await subject_lists(settings, COMPANY)
        person = await subject_lists(settings, PERSON_ID)
        rep = await subject_lists(settings, REP_ID)
        return company and person and rep and "blacklist:environment" in person["lists"] \
            and "blacklist:environment" in rep["lists"] and "court_debtor" in company["lists"]

    await eventually(listed, timeout=60)


async def test_tokens_roles_and_masking_over_https(settings, pipeline, department, tmp_path):
    from creditstream.api import serve

    await produce_listing_inputs(department)  # the company (legal representative REP), linked onto REP
    await produce_person_inputs(department)
    await wait_for_lists(settings)

    cert, key = self_signed(tmp_path)
    secured = settings.replace(api_tokens_file=token_file(tmp_path), api_tls_certfile=cert, api_tls_keyfile=key)
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(secured, "127.0.0.1", port, stop=stop))
    trust = ssl.create_default_context(cafile=cert)
    base = f"https://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, base, trust)

            async def up():
                try:
                    return await api.get("/health")
                except aiohttp.ClientError:
                    return None

            await eventually(up, timeout=20, interval=0.2)
            # HTTPS only, and only with a certificate the client trusts
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with session.get(base + "/health"):
                    pass
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                    await resp.read()

            # --- 401: no token, a wrong one, a malformed header; before 404 too -------------------
            everything = ["/lists", "/lists/blacklist:environment", "/changes", f"/subjects/{COMPANY}",
                          f"/subjects/{COMPANY}/lists", f"/subjects/{PERSON_ID}", "/metrics", "/no/such/path"]
            for path in everything:
                err = await api.get(path, expect=401)
                assert err["error"] == "unauthorized" and "bearer token" in err["message"]
                err = await api.get(path, "wrong-" + PUBLIC_TOKEN, expect=401)
                assert err["error"] == "unauthorized"
            async with session.get(base + "/lists", headers={"Authorization": f"Basic {PUBLIC_TOKEN}"},
                                   ssl=trust) as resp:
                assert resp.status == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
            # /health is open (load balancers), but a token sent must be valid
            assert (await api.get("/health"))["status"] == "ok"
            assert (await api.get("/health", PUBLIC_TOKEN))["status"] == "ok"
            await api.get("/health", "wrong", expect=401)

            # --- public: 200, everything personal masked; natural persons cannot be looked up ----
            api.bodies.clear()
            lists = await api.get("/lists", PUBLIC_TOKEN)
            assert lists["lists"]["blacklist:environment"] == 3  # the company, its representative, the person
            page = await api.get("/lists/blacklist:environment", PUBLIC_TOKEN)
            assert COMPANY in page["members"] and len(page["members"]) == 3
            assert sum(1 for m in page["members"] if m.startswith("410") and "*" in m) == 2, page
            changes = public_changes = await api.get("/changes", PUBLIC_TOKEN, params={"limit": "1000"})
            person_changes = [c for c in changes["changes"] if c["subject_kind"] == "resident_id"]
            assert len(person_changes) >= 2 and all("*" in c["subject_id"] for c in person_changes)
            state = public_company = await api.get(f"/subjects/{COMPANY}", PUBLIC_TOKEN)
            assert state["id"] == COMPANY and state["names"] == [samples.COMPANY]
            assert await api.get(f"/subjects/{COMPANY}", PUBLIC_TOKEN) == state  # the same digests each time
            reps = [r["content"].get("legal_rep") for r in state["records"].values() if r.get("content")]
            assert reps and all(r is None or r["name"] == REP[0] + "**" for r in reps), reps
            assert "blacklist:environment" in (await api.get(f"/subjects/{COMPANY}/lists", PUBLIC_TOKEN))["lists"]
            assert "creditstream_" in await api.get("/metrics", PUBLIC_TOKEN)
            for code in (PERSON_ID, REP_ID, quote(f" {PERSON_ID[:6]}-{PERSON_ID[6:]} ")):
                for suffix in ("", "/lists"):
                    err = await api.get(f"/subjects/{code}{suffix}", PUBLIC_TOKEN, expect=403)
                    assert err["error"] == "forbidden" and "personal role" in err["message"]
            # an unknown ID number: 403 too (a 404 would tell which numbers are known)
            await api.get("/subjects/11010519491231002X", PUBLIC_TOKEN, expect=403)
            await api.get("/subjects/91350211MA0000000X", PUBLIC_TOKEN, expect=404)
            err = await api.get("/no/such/path", PUBLIC_TOKEN, expect=404)
            assert err["error"] == "not_found"
            async with session.post(base + "/lists", headers={"Authorization": f"Bearer {PUBLIC_TOKEN}"},
                                    ssl=trust) as resp:
                assert resp.status == 405
                SPEC.validate(SPEC.component("Error"), await resp.json())
            leaks = [(path, rx.pattern) for path, body in api.bodies for rx in SECRETS if rx.search(body)]
            assert leaks == [], f"the public role saw personal data: {leaks}"
            assert len(api.bodies) >= 15

            # --- personal: everything ---------------------------------------------------------------
            api.bodies.clear()
            theirs = await api.get(f"/subjects/{PERSON_ID}", PERSONAL_TOKEN)
            assert theirs["id"] == PERSON_ID and PERSON in theirs["names"]
            assert any(PERSON in (r.get("content") or {}).get("fields", {}).get("facts", "")
                       for r in theirs["records"].values())
            view = await api.get(f"/subjects/{PERSON_ID}/lists", PERSONAL_TOKEN)
            assert view["subject"] == PERSON_ID and view["name"] == PERSON
            rep_view = await api.get(f"/subjects/{REP_ID}/lists", PERSONAL_TOKEN)
            assert rep_view["subject"] == REP_ID
            page = await api.get("/lists/blacklist:environment", PERSONAL_TOKEN)
            assert sorted(page["members"]) == sorted([COMPANY, PERSON_ID, REP_ID])
            changes = await api.get("/changes", PERSONAL_TOKEN, params={"limit": "1000"})
            assert {PERSON_ID, REP_ID} <= {c["subject_id"] for c in changes["changes"]}
            company = await api.get(f"/subjects/{COMPANY}", PERSONAL_TOKEN)
            assert any((r.get("content") or {}).get("legal_rep", {}) == {"name": REP, "id_no": REP_ID}
                       for r in company["records"].values())

            # --- the digests of personal data, keyed for the public role ---------------------------
            # seen: a person's change_id is an unkeyed digest of the clear ID number and of what the
            # public answer shows beside it, so it confirmed a guessed number (and an area's every
            # birth date and sequence number were tried in 73 s); a record's hash likewise, over its
            # legal representative's clear name and number
            from domain.facts import change_id
            from domain.validate import content_hash

            by_place = {(c["partition"], c["offset"]): c for c in changes["changes"]}
            kinds = set()
            for public in public_changes["changes"]:
                clear = by_place[(public["partition"], public["offset"])]
                kinds.add(clear["subject_kind"])
                if clear["subject_kind"] != "resident_id":  # an organisation's: the topic's own id
                    assert clear["change_id"] == public["change_id"]
                    continue
                assert clear["change_id"] != public["change_id"]
                if clear["transition"] != "withdrawn":
                    # the attack: the personal answer's id is the digest of the clear number
                    assert change_id(clear["subject_id"], clear["list"], clear["transition"], clear["effective_date"],
                                     clear["cause_record_ids"]) == clear["change_id"]
            assert kinds == {"uscc", "resident_id"}, kinds
            public_ids = {c["change_id"] for c in public_changes["changes"]}
            assert all(c["withdraws"] in public_ids for c in public_changes["changes"] if c.get("withdraws"))
            named = 0
            for key, record in company["records"].items():
                if record.get("content") and record["content"].get("legal_rep"):
                    named += 1
                    assert record["hash"] == content_hash(record["content"]) != public_company["records"][key]["hash"]
                    assert set(public_company["records"][key]["versions"]).isdisjoint(record["versions"])
                elif record.get("content"):  # no representative: nothing personal in its digest
                    assert record["hash"] == public_company["records"][key]["hash"]
            assert named
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


def test_a_non_loopback_address_without_tokens_is_refused(tmp_path, settings):
    """`creditstream api --host 0.0.0.0` and `worker --web` on web_bind 0.0.0.0, without a token file:
    one line, exit 2, nothing listening."""
    env = worker_env(settings)
    for args, extra in ((["api", "--host", "0.0.0.0", "--port", str(free_port())], {}),
                        (["worker", "--web", "--web-port", str(free_port())], {"CREDITSTREAM_WEB_BIND": "0.0.0.0"})):
        done = subprocess.run([sys.executable, "-m", "creditstream.cli", *args], env={**env, **extra},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (args, done.stderr[-2000:])
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "refusing to serve the API on 0.0.0.0" in lines[0], done.stderr
        assert "api_tokens_file" in lines[0] and "Traceback" not in done.stderr
    # a token file that does not load: exit 2 as well, naming the file
    bad = tmp_path / "bad.toml"
    bad.write_text("[[token]]\nclient = 'x'\nrole = 'admin'\ntoken = 'short'\n")
    done = subprocess.run([sys.executable, "-m", "creditstream.cli", "api", "--port", str(free_port())],
                          env={**env, "CREDITSTREAM_API_TOKENS_FILE": str(bad)}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and str(bad) in done.stderr and "Traceback" not in done.stderr, done.stderr
    # config check: a warning line, not a failure, when the API would be exposed
    done = subprocess.run([sys.executable, "-m", "creditstream.cli", "config", "check"],
                          env={**env, "CREDITSTREAM_WEB_BIND": "0.0.0.0"}, capture_output=True, text=True, timeout=60)
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert any("without authentication" in w for w in warnings) and any("without TLS" in w for w in warnings), \
        done.stderr


async def test_worker_web_needs_tokens_and_answers_json(settings, department, tmp_path):
    """`creditstream worker --web` with a token file: the same 401s (Faust's own pages included),
    JSON 404 and 405, /health open, and the public role masked."""
    port = free_port()
    log_path = tmp_path / "worker.log"
    env = worker_env(settings, CREDITSTREAM_API_TOKENS_FILE=token_file(tmp_path))
    with open(log_path, "ab") as fh:
        worker = subprocess.Popen([sys.executable, "-m", "creditstream.cli", "worker", "--web", "--web-port", str(port)],
                                  env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        await produce_listing_inputs(department)
        await produce_person_inputs(department)
        base = f"http://127.0.0.1:{port}"

        async def applied():
            assert worker.poll() is None, f"worker exited: {log_path.read_text()[-3000:]}"
            try:
                async with aiohttp.ClientSession() as session, session.get(
                        f"{base}/lists", headers={"Authorization": f"Bearer {PUBLIC_TOKEN}"}) as resp:
                    return resp.status == 200 and (await resp.json())["lists"].get("blacklist:environment") == 3
            except aiohttp.ClientError:
                return False

        await eventually(applied, timeout=90, interval=0.5)
        async with aiohttp.ClientSession() as session:
            api = Api(session, base)
            assert (await api.get("/health"))["status"] == "ok"
            # Faust's own pages ("/", "/router/") are behind the tokens too
            for path in ("/lists", f"/subjects/{COMPANY}", "/changes", "/metrics", "/", "/router/", "/no/such"):
                await api.get(path, expect=401)
                await api.get(path, "not-a-token", expect=401)
            err = await api.get("/no/such", PUBLIC_TOKEN, expect=404)
            assert err["error"] == "not_found"
            # Faust's table pages are not served (seen: /router/<a name>/ answered 500, and its traceback
            # quoted the name at ERROR in the worker's log)
            for path in (f"/router/{samples.LEGAL_REP}/", f"/table/{samples.LEGAL_REP}/"):
                assert (await api.get(path, PUBLIC_TOKEN, expect=404))["error"] == "not_found"
            async with session.delete(base + "/lists", headers={"Authorization": f"Bearer {PUBLIC_TOKEN}"}) as resp:
                assert resp.status == 405 and resp.content_type == "application/json"
                assert resp.headers.get("Allow") == "GET"
                SPEC.validate(SPEC.component("Error"), await resp.json())
            await api.get(f"/subjects/{PERSON_ID}", PUBLIC_TOKEN, expect=403)
            api.bodies.clear()
            await api.get("/lists/blacklist:environment", PUBLIC_TOKEN)
            await api.get("/changes", PUBLIC_TOKEN, params={"limit": "1000"})
            await api.get(f"/subjects/{COMPANY}", PUBLIC_TOKEN)
            leaks = [(path, rx.pattern) for path, body in api.bodies for rx in SECRETS if rx.search(body)]
            assert leaks == []
            assert (await api.get(f"/subjects/{PERSON_ID}", PERSONAL_TOKEN))["id"] == PERSON_ID
    finally:
        stop_process(worker)
    log = log_path.read_text()
    for secret in (PUBLIC_TOKEN, PERSONAL_TOKEN, PERSON_ID, REP_ID):
        assert secret not in log, "a token or an ID number reached the worker log"
