"""The credit report (GET /subjects/{code}/report) and the public disclosure (/disclosure...) against
the embedded stack, through the real pipeline (issue 15, 4-5): every JSON answer validated against
docs/openapi.yaml, the HTML declared there too; access per route (the disclosure open, the report
behind a token, a natural person's report only for the personal role); nothing personal on the
disclosure; ``creditstream report-verify`` on both forms, a tampered copy, a URL; and an approved
credit repair withdrawing the penalty (终止公示) from the report and the disclosure."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from creditstream.report_verify import run as verify_report
from streams import samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.integration.test_api import Client, free_port, wait_http
from tests.integration.test_api_auth import PERSONAL_TOKEN, PUBLIC_TOKEN, token_file

pytestmark = pytest.mark.integration

CST = dt.timezone(dt.timedelta(hours=8))
COMPANY, COMPANY_NAME = samples.COMPANY_USCC, samples.COMPANY
PERSON, PERSON_ID = samples.PERSON, samples.PERSON_ID
PENALTY_DOC = "郑环罚〔2025〕088号"
SECRETS = (PERSON_ID, PERSON, samples.LEGAL_REP_ID, samples.LEGAL_REP)


def today() -> dt.date:
    return dt.datetime.now(CST).date()


async def produce_disclosure_inputs(department) -> None:
    """A company with a severe environment penalty decided 400 days ago (blacklist:environment for 3
    years; repairable: past the 1-year minimum of the 2025 tiers) and a licence; a natural person
    listed as a court debtor (a member the disclosure must mask)."""
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    penalty = sample_event("penalty", severity="严重", domain="environment", source_unit=samples.ECO_ZZ,
                           source_unit_uscc=samples.ECO_ZZ_USCC, deciding_authority=samples.ECO_ZZ,
                           deciding_authority_uscc=samples.ECO_ZZ_USCC, decision_doc_no=PENALTY_DOC,
                           violation_type=f"法定代表人{samples.LEGAL_REP}指使超标排放大气污染物", penalty_content="罚款20万元",
                           decision_date=today() - dt.timedelta(days=400), valid_until=None, publicity_end_date=None)
    licence = sample_event("license", decision_date=today() - dt.timedelta(days=100),
                           valid_from=today() - dt.timedelta(days=100), valid_to=today() + dt.timedelta(days=900))
    debtor = sample_event("court_listing", subject_name=PERSON, subject_category="自然人", uscc=None,
                          person_id_no=PERSON_ID, legal_rep_name=None, legal_rep_id_no=None,
                          case_no="(2026)豫01执777号", listing_reason="obstruct",
                          listing_date=today() - dt.timedelta(days=20), publish_date=today() - dt.timedelta(days=19))
    for kind, record in (("penalty", penalty), ("license", licence), ("court_listing", debtor)):
        await department.send(schema_of(kind), record, timestamp_ms=now_ms)


async def produce_repair(department) -> None:
    """The credit office approves the repair of the penalty (信用修复), yesterday."""
    repair = sample_event("repair", repair_id="郑信修〔2026〕101号", target_source_unit=samples.ECO_ZZ,
                          target_source_unit_uscc=samples.ECO_ZZ_USCC, target_doc_no=PENALTY_DOC,
                          decision_date=today() - dt.timedelta(days=1), event_id="credit-zz-repair-2026-101")
    await department.send(schema_of("repair"), repair, timestamp_ms=int(dt.datetime.now(dt.UTC).timestamp() * 1000))


async def wait_listed(settings) -> None:
    from ops.inspect import subject_lists

    async def listed():
        mine = await subject_lists(settings, COMPANY)
        theirs = await subject_lists(settings, PERSON_ID)
        return (mine and "blacklist:environment" in mine["lists"] and theirs and "court_debtor" in theirs["lists"]
                and len((await subject_state(settings)).get("records") or {}) >= 2)

    await eventually(listed, timeout=60)


async def subject_state(settings) -> dict:
    from ops.inspect import subject_state as read

    return await read(settings, COMPANY) or {}


async def wait_repaired(settings) -> None:
    async def repaired():
        state = await subject_state(settings)
        return "blacklist:environment" not in ((state.get("evaluation") or {}).get("lists") or {})

    await eventually(repaired, timeout=60)


class ServedApi:
    """``creditstream api`` on a free loopback port, with the test tokens."""

    def __init__(self, settings, tmp_path: Path):
        self.settings = settings.replace(api_tokens_file=token_file(tmp_path))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stop = asyncio.Event()

    async def __aenter__(self):
        from creditstream.api import serve

        self.task = asyncio.create_task(serve(self.settings, "127.0.0.1", self.port, stop=self.stop))
        await wait_http(self.base + "/health")
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        await asyncio.wait_for(self.task, timeout=30)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text or s in orjson.loads(orjson.dumps(text))]


async def test_report_and_disclosure(settings, pipeline, department, tmp_path):
    await produce_disclosure_inputs(department)
    await wait_listed(settings)
    async with ServedApi(settings, tmp_path) as served, \
            aiohttp.ClientSession() as anonymous, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {PUBLIC_TOKEN}"}) as public, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {PERSONAL_TOKEN}"}) as personal:
        anon, pub, pers = (Client(s, served.base) for s in (anonymous, public, personal))
        report_path = f"/subjects/{COMPANY}/report"

        # --- the report: behind a token; HTML by default, JSON on request ------------------------
        err = await anon.get(report_path, "/subjects/{code}/report", expect=401)
        assert err["error"] == "unauthorized"
        sealed = await pub.get(report_path, "/subjects/{code}/report", params={"format": "json"})
        content = sealed["content"]
        assert content["subject"]["id"] == COMPANY and content["subject"]["name"] == COMPANY_NAME
        assert content["at"] == today().isoformat() and content["rules_version"]
        (published,) = [r for r in content["publicity"]["published"] if r["kind"] == "penalty"]
        assert (published["doc_no"], published["state"]) == (PENALTY_DOC, "repair_eligible")
        assert any(r["kind"] == "license" for r in content["publicity"]["published"])
        assert [s["list"] for s in content["lists"]] == ["blacklist:environment"]
        assert content["lists"][0]["causes"] == [published["record_key"]]
        assert not leaks(orjson.dumps(sealed).decode())  # the public role: the legal representative masked
        # an instant before the penalty: nothing under publicity, no list (and still valid)
        before = (today() - dt.timedelta(days=500)).isoformat()
        early = await pub.get(report_path, "/subjects/{code}/report", params={"format": "json", "at": before})
        assert early["content"]["lists"] == [] and early["content"]["publicity"]["published"] == []
        for params in ({"at": "yesterday"}, {"format": "pdf"}):
            await pub.get(report_path, "/subjects/{code}/report", expect=400, params=params)
        await pub.get("/subjects/91350211MA0000000X/report", "/subjects/{code}/report", expect=404)
        # a natural person: refused for the public role before any look-up, served to the personal role
        err = await pub.get(f"/subjects/{PERSON_ID}/report", "/subjects/{code}/report", expect=403)
        assert err["error"] == "forbidden"
        theirs = await pers.get(f"/subjects/{PERSON_ID}/report", "/subjects/{code}/report",
                                params={"format": "json"})
        assert theirs["content"]["subject"]["id"] == PERSON_ID
        assert [s["list"] for s in theirs["content"]["lists"]] == ["court_debtor"]

        page = await pub.get(report_path, "/subjects/{code}/report")
        assert "<!DOCTYPE html>" in page and PENALTY_DOC in page and "blacklist:environment" in page
        assert re.search(r'<span class="hash" id="content-hash">sha256:[0-9a-f]{64}</span>', page)
        assert not leaks(page)

        # --- report-verify: both forms, a tampered copy, the URL -------------------------------
        json_copy, html_copy, bad_copy = (tmp_path / n for n in ("r.json", "r.html", "bad.json"))
        json_copy.write_text(orjson.dumps(sealed).decode(), encoding="utf-8")
        html_copy.write_text(page, encoding="utf-8")
        assert verify_report(str(json_copy))[0] == 0
        assert verify_report(str(html_copy))[0] == 0
        tampered = orjson.loads(json_copy.read_bytes())
        tampered["content"]["lists"] = []
        bad_copy.write_text(orjson.dumps(tampered).decode(), encoding="utf-8")
        code, line = verify_report(str(bad_copy))
        assert code == 1 and line.startswith("FAILED")
        assert verify_report(str(tmp_path / "missing.html"))[0] == 2
        # an HTML copy whose printed table was edited, its embedded JSON untouched (an audit: it verified)
        edited = tmp_path / "edited.html"
        edited.write_text(page.replace(PENALTY_DOC, PENALTY_DOC + "（已撤销）", 1), encoding="utf-8")
        code, line = verify_report(str(edited))
        assert code == 1 and line.startswith("FAILED") and "the page shows" in line, line
        url = served.base + report_path
        assert (await asyncio.to_thread(verify_report, url, PUBLIC_TOKEN))[0] == 0
        assert (await asyncio.to_thread(verify_report, url, None))[0] == 2  # 401: a usage error
        assert (await asyncio.to_thread(verify_report, f"http://127.0.0.1:{free_port()}/x", None))[0] == 3

        # --- the disclosure: open, public information only -----------------------------------
        index = await anon.get("/disclosure", "/disclosure", params={"format": "json"})
        # the company, and its legal representative (a severe act follows them: RULES.md 4)
        assert {"list": "blacklist:environment", "size": 2} in index["lists"]
        assert {"list": "court_debtor", "size": 1} in index["lists"]
        html = await anon.get("/disclosure", "/disclosure")
        assert "blacklist:environment" in html and "<form" in html
        members = await anon.get("/disclosure/lists/blacklist:environment", "/disclosure/lists/{name}",
                                 params={"format": "json"})
        by_kind = {m["id_kind"]: m for m in members["members"]}
        assert (by_kind["uscc"]["subject"], by_kind["uscc"]["name"]) == (COMPANY, COMPANY_NAME)
        rep = by_kind["resident_id"]
        assert rep["subject"] != samples.LEGAL_REP_ID and rep["name"] == samples.LEGAL_REP[0] + "**"
        debtors = await anon.get("/disclosure/lists/court_debtor", "/disclosure/lists/{name}",
                                 params={"format": "json"})
        (debtor,) = debtors["members"]
        assert debtor["subject"] != PERSON_ID and debtor["subject"].startswith(PERSON_ID[:3])
        assert debtor["name"] == PERSON[0] + "*" * (len(PERSON) - 1)
        # whoever asks: a personal token sees the disclosure masked too
        assert await pers.get("/disclosure/lists/court_debtor", "/disclosure/lists/{name}",
                              params={"format": "json"}) == debtors
        for path, template in (("/disclosure/lists/court_debtor", "/disclosure/lists/{name}"),
                               ("/disclosure/penalties", "/disclosure/penalties"),
                               ("/disclosure/licences", "/disclosure/licences")):
            for fmt in ("json", "html"):
                answer = await anon.get(path, template, params={"format": fmt})
                assert not leaks(answer if isinstance(answer, str) else orjson.dumps(answer).decode()), path
        await anon.get("/disclosure/lists/escalated", "/disclosure/lists/{name}", expect=404,
                       params={"format": "json"})
        penalties = await anon.get("/disclosure/penalties", "/disclosure/penalties", params={"format": "json"})
        assert [(r["subject"], r["doc_no"]) for r in penalties["records"]] == [(COMPANY, PENALTY_DOC)]
        licences = await anon.get("/disclosure/licences", "/disclosure/licences", params={"format": "json"})
        assert [r["subject"] for r in licences["records"]] == [COMPANY]
        by_name = await anon.get("/disclosure/penalties", "/disclosure/penalties",
                                 params={"format": "json", "q": "恒达 商贸"})
        assert len(by_name["records"]) == 1
        assert (await anon.get("/disclosure/penalties", "/disclosure/penalties",
                               params={"format": "json", "q": "没有这家"}))["records"] == []
        # seen: the search's echo was masked against the states the page walked, so a stored legal
        # representative's name came back masked and any other as typed: one unauthenticated request
        # told which of several names were stored. Echoed as typed now, ID numbers masked
        for which in ("penalties", "licences"):
            typed = f"张三{samples.LEGAL_REP}王五"
            echo = await anon.get(f"/disclosure/{which}", f"/disclosure/{which}", params={"format": "json", "q": typed})
            assert echo["q"] == typed, echo["q"]
            page = await anon.get(f"/disclosure/{which}", f"/disclosure/{which}", params={"q": typed})
            assert f'value="{typed}"' in page
        # search: by a printed code variant and a legacy code, by name; never by a person's ID number
        for q in ("91310110-666007217t", samples.COMPANY_ORG_CODE):
            found = await anon.get("/disclosure", "/disclosure", params={"format": "json", "q": q})
            assert found["search"]["subject"] == COMPANY, q
        found = await anon.get("/disclosure", "/disclosure", params={"format": "json", "q": "恒达"})
        assert [m["subject"] for m in found["search"]["matches"]] == [COMPANY]
        refused = await anon.get("/disclosure", "/disclosure", params={"format": "json", "q": PERSON_ID})
        assert refused["search"]["refused"] and refused["search"]["matches"] == []
        assert PERSON_ID not in orjson.dumps(refused).decode()
        # the HTML's search box holds the number as the JSON does: masked
        for path in ("/disclosure", "/disclosure/penalties", "/disclosure/licences"):
            assert not leaks(await anon.get(path, path, params={"q": PERSON_ID})), path
        # at a past instant, the sizes count who was on each list then, as the list pages show them
        for days in (500, 100, 10):
            then = (today() - dt.timedelta(days=days)).isoformat()
            sizes = {x["list"]: x["size"] for x in (await anon.get("/disclosure", "/disclosure",
                                                                  params={"format": "json", "at": then}))["lists"]}
            pages = {}
            for name in ("blacklist:environment", "court_debtor"):
                listed = await anon.get(f"/disclosure/lists/{name}", "/disclosure/lists/{name}",
                                        params={"format": "json", "at": then})
                if listed["members"]:
                    pages[name] = len(listed["members"])
            assert sizes == pages, (then, sizes, pages)
            assert sorted(sizes) == {500: [], 100: ["blacklist:environment"],
                                     10: ["blacklist:environment", "court_debtor"]}[days], (then, sizes)
        # the JSON form by the Accept header too, and the answers say they vary by it
        async with anonymous.get(served.base + "/disclosure/lists/court_debtor",
                                 headers={"Accept": "application/json"}) as resp:
            assert resp.content_type == "application/json" and resp.headers.get("Vary") == "Accept"
            assert await resp.json() == debtors
        await anon.get("/disclosure/lists/no-such-list", "/disclosure/lists/{name}", expect=404)  # HTML
        await anon.get(f"/disclosure/subjects/{PERSON_ID}", "/disclosure/subjects/{code}", expect=403,
                       params={"format": "json"})
        await anon.get(f"/disclosure/subjects/{quote('91350211MA0000000X')}", "/disclosure/subjects/{code}",
                       expect=404, params={"format": "json"})
        mine = await anon.get(f"/disclosure/subjects/{COMPANY}", "/disclosure/subjects/{code}",
                              params={"format": "json"})
        assert [r["doc_no"] for r in mine["published"] if r["kind"] == "penalty"] == [PENALTY_DOC]
        assert "withdrawn" not in mine and [m["list"] for m in mine["lists"]] == ["blacklist:environment"]
        async with anonymous.get(served.base + "/disclosure/style.css") as resp:
            assert resp.status == 200 and resp.content_type == "text/css" and "@media print" in await resp.text()
        async with anonymous.get(served.base + "/disclosure?q=" + quote(COMPANY), allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith(f"/disclosure/subjects/{COMPANY}")
        # an invalid token is refused on the open routes too
        async with anonymous.get(served.base + "/disclosure", headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 401

        # --- a credit repair: the penalty withdrawn (终止公示), the company off the blacklist ----
        await produce_repair(department)
        await wait_repaired(settings)
        after = await pub.get(report_path, "/subjects/{code}/report", params={"format": "json"})
        (withdrawn,) = after["content"]["publicity"]["withdrawn"]
        assert (withdrawn["doc_no"], withdrawn["withdrawn_by"], withdrawn["withdrawn_on"]) == (
            PENALTY_DOC, "repair", (today() - dt.timedelta(days=1)).isoformat())
        assert [r["kind"] for r in after["content"]["publicity"]["published"]] == ["license"]
        assert after["content"]["lists"] == []
        assert after["content"]["repairs"][0]["applied"] is True
        assert after["content_hash"] != sealed["content_hash"]
        # the open pages: nothing of the repaired penalty or the ended stay, now or at an earlier instant
        # (RULES.md 3: an approved repair ends publication; docs/disclosure.md)
        before = (today() - dt.timedelta(days=2)).isoformat()
        for at in (None, before):
            params = {"format": "json", **({"at": at} if at else {})}
            mine = await anon.get(f"/disclosure/subjects/{COMPANY}", "/disclosure/subjects/{code}", params=params)
            assert [r["kind"] for r in mine["published"]] == ["license"] and mine["lists"] == [], at
            assert (await anon.get("/disclosure/penalties", "/disclosure/penalties", params=params))["records"] == []
            html = await anon.get(f"/disclosure/subjects/{COMPANY}", "/disclosure/subjects/{code}",
                                  params={"at": at} if at else None)
            assert PENALTY_DOC not in html and "不再公示" in html, at
        await anon.get("/disclosure/lists/blacklist:environment", "/disclosure/lists/{name}", expect=404,
                       params={"format": "json", "at": before})
        # as it stood before the repair: the report at an earlier instant still shows it published
        then = await pub.get(report_path, "/subjects/{code}/report",
                             params={"format": "json", "at": (today() - dt.timedelta(days=2)).isoformat()})
        assert [r["doc_no"] for r in then["content"]["publicity"]["published"] if r["kind"] == "penalty"] == [
            PENALTY_DOC]


async def test_the_other_publicised_actions_are_on_the_open_pages_and_in_the_report(settings, pipeline, department,
                                                                                 tmp_path):
    """RULES.md 2: the Henan rules extend publicity to ten kinds of action (十公示). An audit saw an
    enforcement measure and a reward kept in the state and published nowhere. Sent as a stock producer
    sends (unkeyed, stamped at sending)."""
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    enforcement = sample_event("action", action_kind="强制", decision_doc_no="郑环强〔2026〕006号",
                               content="查封扣押排污设备", result="已执行", adverse=True,
                               decision_date=today() - dt.timedelta(days=30), event_id="eco-zz-enforcement-006")
    reward = sample_event("action", action_kind="奖励", decision_doc_no="郑环奖〔2026〕007号", content="环保先进单位",
                          result=None, adverse=False, domain=None, decision_date=today() - dt.timedelta(days=10),
                          event_id="eco-zz-reward-007")
    for record in (enforcement, reward):
        await department.send(schema_of("action"), record, timestamp_ms=now_ms, key=None)

    async def both_kept():
        return len((await subject_state(settings)).get("records") or {}) >= 2

    await eventually(both_kept, timeout=60)
    enforced = (today() - dt.timedelta(days=30))
    async with ServedApi(settings, tmp_path) as served, \
            aiohttp.ClientSession() as anonymous, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {PUBLIC_TOKEN}"}) as public:
        anon, pub = Client(anonymous, served.base), Client(public, served.base)
        feed = await anon.get("/disclosure/actions", "/disclosure/actions", params={"format": "json"})
        assert feed["kind"] == "action"
        got = {r["doc_no"]: r for r in feed["records"]}
        assert sorted(got) == ["郑环奖〔2026〕007号", "郑环强〔2026〕006号"]
        assert got["郑环强〔2026〕006号"]["details"]["action_kind"] == "enforcement"
        assert got["郑环强〔2026〕006号"]["details"]["adverse"] == "true"
        assert got["郑环强〔2026〕006号"]["published_until"] == enforced.replace(year=enforced.year + 5).isoformat()
        assert got["郑环奖〔2026〕007号"]["published_until"] is None
        html = await anon.get("/disclosure/actions", "/disclosure/actions")
        assert "郑环强〔2026〕006号" in html and "查封扣押排污设备" in html
        mine = await anon.get(f"/disclosure/subjects/{COMPANY}", "/disclosure/subjects/{code}",
                              params={"format": "json"})
        assert {r["doc_no"] for r in mine["published"] if r["kind"] == "action"} == set(got)
        report = await pub.get(f"/subjects/{COMPANY}/report", "/subjects/{code}/report", params={"format": "json"})
        assert {r["doc_no"] for r in report["content"]["publicity"]["published"] if r["kind"] == "action"} == set(got)
        page = await pub.get(f"/subjects/{COMPANY}/report", "/subjects/{code}/report")
        assert "行政强制 enforcement" in page and "行政奖励 reward" in page
        # the index links the feed
        assert "/disclosure/actions" in await anon.get("/disclosure", "/disclosure")
