"""The check API (creditstream/check_api.py, ``GET``/``POST /check``) against the embedded stack: the
state is built by the real pipeline from department inputs; every answer is validated against
docs/openapi.yaml; every check leaves a ``CheckAudit`` record on the check-audit topic (a natural
person only as a pseudonym) and ``creditstream report`` counts them per matter and outcome."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import aiohttp
import orjson
import pytest

from streams import samples
from streams.samples import sample_event, schema_of
from tests import builders
from tests.conftest import eventually
from tests.integration.test_api import SPEC, free_port, wait_http

pytestmark = pytest.mark.integration

CST = dt.timezone(dt.timedelta(hours=8))
PUBLIC_TOKEN = "public-" + "c3" * 20
PERSONAL_TOKEN = "personal-" + "d4" * 20
COMPANY = samples.COMPANY_USCC                    # blacklisted (environment), then an objection
HONEST = "91350100M000100Y43"                     # one licence four years ago: red list
UNKNOWN = "91310115591693856A"                    # valid, but no subject has it
REP_ID = samples.LEGAL_REP_ID                     # COMPANY's legal representative: follows it onto the list
DOC_NO = "郑环罚〔2026〕301号"
OBJECTION = "ZZXY-YY-2026-0301"


def token_file(tmp_path) -> str:
    return builders.token_file(tmp_path, PUBLIC_TOKEN, PERSONAL_TOKEN, public_client="zz-public-resource-trading")


class Checks:
    """GET/POST /check with a token, each answer checked against the spec (status, JSON, schema)."""

    def __init__(self, session: aiohttp.ClientSession, base: str):
        self.session, self.base = session, base
        self.bodies: list[bytes] = []

    async def _answer(self, resp, method: str, expect: int):
        body = await resp.read()
        self.bodies.append(body)
        assert resp.status == expect, (method, resp.status, body[:500])
        assert resp.headers["Content-Type"].startswith("application/json")
        data = orjson.loads(body)
        response = SPEC.response("/check", resp.status, method)
        SPEC.validate(response["content"]["application/json"]["schema"], data)
        return data

    async def get(self, token: str | None = PUBLIC_TOKEN, *, expect: int = 200, **params):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(self.base + "/check", params=params, headers=headers) as resp:
            return await self._answer(resp, "get", expect)

    async def post(self, body, token: str | None = PUBLIC_TOKEN, *, expect: int = 200):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        async with self.session.post(self.base + "/check", data=data, headers=headers) as resp:
            return await self._answer(resp, "post", expect)


async def seed(settings, department) -> dt.date:
    """Through the real pipeline: a severe environment penalty on COMPANY 30 days ago (blacklist;
    its legal representative follows), an objection to it filed 2 days ago, the company's
    registration (its legacy registration number), and HONEST's licence four years ago."""
    from ops.inspect import reader

    today = dt.datetime.now(CST).date()
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    penalty = sample_event("penalty", severity="严重", domain="environment", source_unit=samples.ECO_ZZ,
                           source_unit_uscc=samples.ECO_ZZ_USCC, deciding_authority=samples.ECO_ZZ,
                           deciding_authority_uscc=samples.ECO_ZZ_USCC, decision_doc_no=DOC_NO,
                           decision_date=today - dt.timedelta(days=30), valid_until=None, publicity_end_date=None,
                           event_id="eco-zz-301")
    licence = sample_event("license", uscc=HONEST, subject_name="福州市守信商贸有限公司", legal_rep_name="王守信",
                           license_doc_no="闽榕许〔2022〕0001号", decision_date=today - dt.timedelta(days=4 * 366),
                           valid_from=today - dt.timedelta(days=4 * 366), valid_to=today + dt.timedelta(days=365),
                           event_id="fz-license-0001")
    await department.send(schema_of("registration"), sample_event("registration"), timestamp_ms=now_ms)
    await department.send(schema_of("penalty"), penalty, timestamp_ms=now_ms)
    await department.send(schema_of("license"), licence, timestamp_ms=now_ms)

    async with reader(settings) as r:
        async def listed():
            company, rep, honest, legacy = await r.subjects([COMPANY, REP_ID, HONEST, samples.COMPANY_REG_NO])
            return (company and "blacklist:environment" in company["evaluation"]["lists"] and rep
                    and "blacklist:environment" in rep["evaluation"]["lists"] and honest and legacy)

        await eventually(listed, timeout=60)
        objection = sample_event("objection", objection_id=OBJECTION, target_source_unit=samples.ECO_ZZ,
                                 target_source_unit_uscc=samples.ECO_ZZ_USCC, target_doc_no=DOC_NO,
                                 filed_date=today - dt.timedelta(days=2), event_id="credit-zz-objection-0301")
        await department.send(schema_of("objection"), objection, timestamp_ms=now_ms)

        async def disputed():
            [company] = await r.subjects([COMPANY])
            return OBJECTION in (company.get("objections") or {})

        await eventually(disputed, timeout=60)
    return today


async def audit_records(settings) -> list[tuple[bytes, bytes, dict]]:
    """(key, value, decoded CheckAudit) of every record on the check-audit topic."""
    from creditstream.connections import make_codec
    from streams import kafka
    from streams.topics import Topics

    codec = make_codec(settings)
    out = []
    async for batch in kafka.read_to_end(settings, Topics(settings).check_audit):
        for m in batch:
            name, rec = codec.decode(m.value)
            assert name == "creditstream.CheckAudit"
            out.append((m.key, m.value, rec))
    return out


async def test_check_api(settings, pipeline, department, tmp_path):
    from creditstream.api import serve
    from ops.report import operator_report, render_operator_report
    from sinks.keys import storage_id

    today = await seed(settings, department)
    iso = today.isoformat
    port = free_port()
    stop = asyncio.Event()
    s = settings.replace(api_tokens_file=token_file(tmp_path), check_batch_max=4, check_audit_flush_ms=50)
    server = asyncio.create_task(serve(s, "127.0.0.1", port, stop=stop))
    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        async with aiohttp.ClientSession() as session:
            api = Checks(session, f"http://127.0.0.1:{port}")

            # --- authentication: like the rest of the API ------------------------------------
            err = await api.get(None, expect=401, subject=COMPANY, matter="government_procurement")
            assert err["error"] == "unauthorized"
            err = await api.post({"matter": "bidding", "subjects": [COMPANY]}, None, expect=401)
            assert err["error"] == "unauthorized"

            # --- a listed subject: before entry, while listed, then under an objection -------
            before = await api.get(subject=COMPANY, matter="government_procurement",
                                   at=(today - dt.timedelta(days=31)).isoformat())
            assert before["outcome"] == "clear" and before["measures"] == [] and before["basis"] == []
            listed = await api.get(subject=COMPANY, matter="government_procurement",
                                   at=f"{(today - dt.timedelta(days=15)).isoformat()}T10:00:00+08:00")
            assert listed["outcome"] == "restricted" and listed["subject"] == COMPANY
            assert "procurement.exclude" in {m["id"] for m in listed["measures"]}
            [basis] = listed["basis"]
            assert basis["list"] == "blacklist:environment" and basis["suspended"] is False
            assert basis["since"] == (today - dt.timedelta(days=30)).isoformat()
            [record] = basis["records"]
            assert record["doc_no"] == DOC_NO and record["source_unit_code"] == samples.ECO_ZZ_USCC
            assert record["disputed_by"] is None
            now = await api.get(subject=COMPANY, matter="government_procurement")  # at: now
            assert now["at"] == iso() and now["outcome"] == "suspended" and now["measures"] == []
            assert "procurement.exclude" in {m["id"] for m in now["suspended"]}
            assert now["basis"][0]["suspended"] is True and now["basis"][0]["objection"] == OBJECTION
            assert now["basis"][0]["records"][0]["disputed_by"] == OBJECTION

            # --- identifiers: a printed variant and a legacy number resolve ------------------
            legacy = await api.get(subject=samples.COMPANY_REG_NO, matter="government_procurement")
            assert legacy["subject"] == COMPANY and legacy["outcome"] == "suspended"
            variant = await api.get(subject="91310110-666007217t", matter="bidding")
            assert variant["subject"] == COMPANY

            # --- the red list: incentives -----------------------------------------------------
            green = await api.get(subject=HONEST, matter="administrative_licensing")
            assert green["outcome"] == "incentive" and green["basis"][0]["list"] == "red_list"
            assert green["incentives"] and green["measures"] == []

            # --- an unknown subject: a clear "no record", not an error -----------------------
            unknown = await api.get(subject=UNKNOWN, matter="bidding")
            assert unknown["outcome"] == "no_record" and unknown["subject"] == UNKNOWN and unknown["as_of"] is None

            # --- a natural person: answered, masked for the public role, clear for personal --
            masked = await api.get(subject=REP_ID, matter="government_procurement",
                                   at=(today - dt.timedelta(days=15)).isoformat())
            assert masked["outcome"] == "restricted" and masked["subject"] != REP_ID
            assert masked["subject"].startswith(REP_ID[:3]) and REP_ID.encode() not in api.bodies[-1]
            clear = await api.get(PERSONAL_TOKEN, subject=REP_ID, matter="government_procurement",
                                  at=(today - dt.timedelta(days=15)).isoformat())
            assert clear["subject"] == REP_ID and clear["outcome"] == "restricted"

            # --- bad requests ---------------------------------------------------------------
            for params in ({"matter": "bidding"}, {"subject": COMPANY}, {"subject": COMPANY, "matter": "no_such"},
                           {"subject": COMPANY, "matter": "bidding", "at": "yesterday"},
                           {"subject": "9" * 65, "matter": "bidding"}):
                err = await api.get(expect=400, **params)
                assert err["error"] == "bad_request" and err["message"], params
            # a message echoing a person's number is masked for the public role
            err = await api.get(expect=400, subject=REP_ID, matter="bidding", at="not " + REP_ID)
            assert REP_ID not in err["message"]

            # --- the batch form ---------------------------------------------------------------
            batch = await api.post({"matter": "bidding", "subjects": [COMPANY, UNKNOWN, samples.COMPANY_REG_NO,
                                                                       HONEST]})
            assert batch["matter"] == "bidding" and batch["at"] == iso()
            assert [r["outcome"] for r in batch["results"]] == ["suspended", "no_record", "suspended", "incentive"]
            assert [r["subject"] for r in batch["results"]] == [COMPANY, UNKNOWN, COMPANY, HONEST]
            assert len({r["check_id"] for r in batch["results"]}) == 4
            past = await api.post({"matter": "bidding", "at": (today - dt.timedelta(days=15)).isoformat(),
                                   "subjects": [COMPANY, REP_ID]})
            assert [r["outcome"] for r in past["results"]] == ["restricted", "restricted"]
            assert past["results"][1]["subject"] != REP_ID and REP_ID.encode() not in api.bodies[-1]
            err = await api.post({"matter": "bidding", "subjects": [COMPANY] * 5}, expect=413)
            assert err["error"] == "too_large" and "4" in err["message"]
            for body in ({"matter": "bidding", "subjects": []}, {"matter": "bidding"}, {"subjects": [COMPANY]},
                         {"matter": "bidding", "subjects": [COMPANY, 7]}, [COMPANY], b"{not json"):
                err = await api.post(body, expect=400)
                assert err["error"] == "bad_request", body

            # --- metrics ------------------------------------------------------------------------
            async with session.get(api.base + "/metrics", headers={"Authorization": f"Bearer {PUBLIC_TOKEN}"}) as r:
                text = await r.text()
            assert re.search(r'creditstream_checks_total\{matter="bidding",outcome="no_record"\} [1-9]', text), text
            assert "creditstream_check_duration_seconds_bucket" in text

        # --- the audit: one record per check answered, persons only as pseudonyms ---------------
        answered = 9 + 4 + 2  # the single checks answered (200), and the two batches' subjects
        records = await eventually(lambda: _at_least(settings, answered), timeout=30)
        assert len(records) == answered, [r[2] for r in records]
        by_id = {rec["check_id"]: (key, rec) for key, _, rec in records}
        key, rec = by_id[listed["check_id"]]
        assert rec["client"] == "zz-public-resource-trading" and rec["subject"] == COMPANY and key == COMPANY.encode()
        assert (rec["matter"], rec["outcome"], rec["subject_kind"]) == ("government_procurement", "restricted", "uscc")
        assert rec["at"] == today - dt.timedelta(days=15) and "procurement.exclude" in rec["measures"]
        assert abs(rec["checked_at"] - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
        assert rec["batch_id"] is None
        _, rec = by_id[clear["check_id"]]
        pseudonym = storage_id(REP_ID, settings.pseudonym_key)
        assert rec["client"] == "joint-punishment" and rec["subject"] == pseudonym and rec["subject_kind"] == "resident_id"
        _, rec = by_id[unknown["check_id"]]
        assert (rec["outcome"], rec["subject_kind"], rec["subject"]) == ("no_record", "unknown", UNKNOWN)
        batch_ids = {by_id[r["check_id"]][1]["batch_id"] for r in batch["results"]}
        assert batch_ids == {batch["batch_id"]}
        for key, value, _ in records:  # no ID number in clear on the topic, key or value
            assert REP_ID.encode() not in key and REP_ID.encode() not in value

        # --- creditstream report: checks per matter and outcome -----------------------------------
        async def reported():
            report = await operator_report(settings)
            return report if sum(sum(o.values()) for o in report["checks"]["by_matter"].values()) == answered else None

        report = await eventually(reported, timeout=15)
        bidding = report["checks"]["by_matter"]["bidding"]
        assert bidding == {"suspended": 3, "no_record": 2, "incentive": 1, "restricted": 2}, bidding
        assert report["checks"]["by_matter"]["government_procurement"] == {
            "clear": 1, "restricted": 3, "suspended": 2}
        assert report["checks"]["dropped"] == 0
        text = render_operator_report(report)
        assert f"credit checks (应查必查) recorded on the check-audit topic: {answered}" in text
        assert "government_procurement" in text
    finally:
        stop.set()
        await asyncio.wait_for(server, 20)


async def _at_least(settings, n: int):
    records = await audit_records(settings)
    return records if len(records) >= n else None


async def test_checks_are_answered_while_the_broker_is_unreachable(settings, redis, pipeline, department):
    """The audit never delays or fails an answer: with the broker unreachable the check is answered
    at once, its record waits in the buffer, and beyond the buffer records are dropped and counted."""
    from aiohttp import web

    from creditstream import metrics
    from creditstream.api import create_api

    await department.send(schema_of("penalty"), sample_event("penalty"))
    from ops.inspect import reader

    async with reader(settings) as r:
        await eventually(lambda: r.subject(COMPANY), timeout=60)
    dead = free_port()
    s = settings.replace(broker_url=f"127.0.0.1:{dead}", check_audit_buffer=2, check_audit_flush_ms=50,
                         api_anonymous_role="public")
    app = create_api(s, redis)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    dropped_before = metrics.CHECK_AUDIT_DROPPED.labels("buffer_full")._value.get()
    try:
        async with aiohttp.ClientSession() as session:
            api = Checks(session, f"http://127.0.0.1:{port}")
            for _ in range(5):
                started = asyncio.get_running_loop().time()
                answer = await api.get(None, subject=COMPANY, matter="administrative_licensing")
                assert answer["outcome"] == "clear"
                assert asyncio.get_running_loop().time() - started < 1.0
    finally:
        await runner.cleanup()
    assert metrics.CHECK_AUDIT_DROPPED.labels("buffer_full")._value.get() - dropped_before == 3
    from sinks.check_audit import check_counts

    counts = await check_counts(redis, s.namespace)
    assert counts["dropped"] == 5 and counts["by_matter"] == {}  # 3 over the buffer, 2 unsent at shutdown


async def _serve(settings, redis):
    from aiohttp import web

    from creditstream.api import create_api

    runner = web.AppRunner(create_api(settings.replace(api_anonymous_role="public"), redis), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def test_an_answer_says_how_current_the_states_it_read_are(settings, redis, department):
    """Seen (an audit from a checking unit's side): with the worker stopped and a severe penalty
    waiting, a check answered `no_record`, nothing telling it from a current answer (and /health
    answered 200). Each answer carries `pipeline`: no worker running, then ok with the inputs waiting
    as the workers last counted them; a worker without the timer says so."""
    from creditstream.app import Pipeline

    await department.send(schema_of("penalty"), sample_event("penalty"))  # waits: no worker runs
    runner, base = await _serve(settings, redis)
    try:
        async with aiohttp.ClientSession() as session:
            api = Checks(session, base)
            answer = await api.get(None, subject=COMPANY, matter="administrative_licensing")
            assert answer["outcome"] == "no_record"
            assert answer["pipeline"] == {"state": "no worker running", "inputs_waiting": None}
            batch = await api.post({"matter": "bidding", "subjects": [COMPANY]}, None)
            assert batch["pipeline"] == answer["pipeline"]

            for agents, state in ((("ingest", "registry", "subject", "timer"), "ok"),
                                  (("ingest", "registry", "subject"), "no timer running")):
                pipeline = Pipeline(settings, agents=agents)
                await pipeline.start()
                try:
                    async def current(state=state):
                        got = await api.get(None, subject=COMPANY, matter="administrative_licensing")
                        return got if got["outcome"] != "no_record" and got["pipeline"]["state"] == state \
                            and got["pipeline"]["inputs_waiting"] == 0 else None
                    await eventually(current, timeout=60, interval=0.5)
                finally:
                    await pipeline.stop()
    finally:
        await runner.cleanup()


async def test_a_code_whose_records_wait_for_the_registry_is_not_answered_as_clean(settings, redis, pipeline,
                                                                                  department):
    """Seen (an audit from a checking unit's side): a severe penalty naming only the bidder's
    organisation code, parked until a registration names it, was answered `no_record` with nothing to
    tell it from a clean bidder. The answer says how many records wait (`parked`), single and batch."""
    from sinks.keys import Keys
    from sinks.registry_index import RegistryIndex

    org_code = "BB0000094"
    penalty = sample_event("penalty", uscc=None, org_code=org_code, reg_no=None, severity="严重",
                           domain="environment", decision_doc_no="郑环罚〔2026〕941号", legal_rep_name=None,
                           legal_rep_id_type=None, legal_rep_id_no=None)
    await department.send(schema_of("penalty"), penalty)
    index = RegistryIndex(redis, Keys(settings.namespace))
    await eventually(lambda: index.parked_count(), timeout=60)
    runner, base = await _serve(settings, redis)
    try:
        async with aiohttp.ClientSession() as session:
            api = Checks(session, base)
            answer = await api.get(None, subject="BB000009-4", matter="government_procurement")
            assert (answer["outcome"], answer["parked"]) == ("no_record", 1), answer
            batch = await api.post({"matter": "bidding", "subjects": [org_code, UNKNOWN]}, None)
            assert [r.get("parked") for r in batch["results"]] == [1, None]
    finally:
        await runner.cleanup()


async def test_a_burst_of_more_concurrent_checks_than_redis_connections_is_answered(settings, redis, department):
    """Seen (an audit): 150 concurrent checks against a healthy Redis, and every request past the
    100th answered 503 "Redis did not answer" within 50 ms: redis-py's pool refused a 101st connection
    (MaxConnectionsError). The API's pool waits for a free connection (``api_redis_connections``)."""
    from aiohttp import web

    from creditstream.api import create_api

    for concurrent, connections in ((150, 100), (60, 4)):
        app = create_api(settings.replace(api_anonymous_role="public", api_redis_connections=connections))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                async def one(url):
                    params = {"subject": UNKNOWN, "matter": "bidding"}
                    async with session.get(url, params=params) as resp:
                        return resp.status, await resp.read()

                url = f"http://127.0.0.1:{port}/check"
                answers = await asyncio.gather(*(one(url) for _ in range(concurrent)))
        finally:
            await runner.cleanup()
        refused = [body[:200] for status, body in answers if status != 200]
        assert not refused, (concurrent, connections, len(refused), refused[:2])


async def test_a_counts_write_whose_answer_was_lost_is_counted_once(settings, redis):
    """Seen (an audit): Redis stalled (SIGSTOP) while the API wrote its check counters; the write
    timed out and was kept, then sent again, and Redis applied both once it went on (`creditstream
    report` 787 checks, the topic 711). A write whose answer is lost (applied, the reply never read)
    is sent again with its id, and Redis skips it."""
    from redis import exceptions as rexc

    from sinks.check_audit import CheckAuditSink, check_counts

    sink = CheckAuditSink(settings, redis)
    applied = sink._add_counts  # noqa: SLF001 - the script, against the real Redis
    sent: list[str] = []

    async def answer_lost_once(**call):
        sent.append(call["args"][0])
        await applied(**call)
        if len(sent) == 1:
            raise rexc.TimeoutError("Timeout reading from socket")  # applied; its reply never came

    sink._add_counts = answer_lost_once  # noqa: SLF001
    sink._counts["honours:restricted"] += 3  # noqa: SLF001 - three checks delivered
    await sink._write_counts_quietly()  # noqa: SLF001 - times out: kept for the next round
    sink._counts["honours:restricted"] += 2  # noqa: SLF001 - two more, delivered meanwhile
    await sink._write_counts_quietly()  # noqa: SLF001
    assert sent[0] == sent[1] and len(sent) == 3, sent  # the same write again, then the next
    counts = await check_counts(redis, settings.namespace)
    assert counts["by_matter"] == {"honours": {"restricted": 5}}, counts


async def test_a_paused_worker_is_not_reported_ok(settings, redis, tmp_path):
    """Seen (an audit): a worker paused with SIGSTOP, severe penalties waiting, and the check API
    answered `pipeline: ok, inputs_waiting 0` for 13-15 s (its last heartbeat said so) until the
    heartbeat expired. A heartbeat that stops coming (6 s) makes it `stalled`, in /health too."""
    import signal
    import time

    from tests.workers import WorkerProcess

    runner, base = await _serve(settings, redis)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Checks(session, base)

            async def pipeline(state):
                got = (await api.get(None, subject=UNKNOWN, matter="bidding"))["pipeline"]
                return got if got["state"] == state else None

            async def health():
                async with session.get(base + "/health") as resp:
                    return resp.status, await resp.json()

            await eventually(lambda: pipeline("ok"), timeout=60, interval=0.5)
            assert (await health())[0] == 200  # /health's reader sees the heartbeat come
            worker.proc.send_signal(signal.SIGSTOP)
            paused = time.monotonic()
            try:
                await eventually(lambda: pipeline("stalled"), timeout=12, interval=0.5)
                assert time.monotonic() - paused < 12

                async def degraded():
                    status, body = await health()
                    return body if status == 503 and any("no heartbeat for" in s for s in body["stalled"]) else None

                await eventually(degraded, timeout=12 - (time.monotonic() - paused), interval=0.5)
            finally:
                worker.proc.send_signal(signal.SIGCONT)
            await eventually(lambda: pipeline("ok"), timeout=30, interval=0.5)
    finally:
        worker.stop()
        await runner.cleanup()


async def test_answers_for_a_client_are_not_kept_by_caches(settings, redis):
    """An audit saw no Cache-Control on personal answers: a shared cache (a reverse proxy) was free to
    keep one and serve it to another client. Answers behind the token are `no-store`; the open
    disclosure pages are public and say nothing."""
    runner, base = await _serve(settings, redis)
    try:
        async with aiohttp.ClientSession() as session:
            for path, params in (("/check", {"subject": UNKNOWN, "matter": "bidding"}), (f"/subjects/{UNKNOWN}", {}),
                                 ("/metrics", {})):
                async with session.get(base + path, params=params) as resp:
                    assert resp.headers.get("Cache-Control") == "no-store", (path, resp.status, dict(resp.headers))
            async with session.get(base + "/disclosure", params={"format": "json"}) as resp:
                assert resp.status == 200 and "Cache-Control" not in resp.headers
    finally:
        await runner.cleanup()
