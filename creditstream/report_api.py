"""The credit report (信用报告): ``GET /subjects/{code}/report[?at=<instant>][&format=html|json]``.

The report of one subject at an instant (default: now): identity, the penalties and licences under
publicity then and those withdrawn (终止公示), the lists held then and the list history up to then,
objections and repairs, the red list, the rules versions, the report's time, and the content hash
(domain/report.py). Printable HTML by default (or for ``Accept: text/html``); JSON with
``format=json`` or an ``Accept`` that names application/json and not text/html. The JSON is
``{"content": ..., "content_hash": "sha256:<hex>"}``; the HTML shows the hash and carries the same
JSON in ``<script type="application/json" id="credit-report">``, so ``creditstream report-verify``
checks either form.

Access (creditstream/api.py, docs/operations.md): a token of the ``public`` role at least; the
subject is found exactly as ``GET /subjects/{code}`` finds it (the API's ``_state``: a natural
person's report needs the ``personal`` role, and a public-role request naming a resident ID number
is refused with 403 before any look-up). An organisation's report for the public role has natural
persons' names and ID numbers masked (domain/privacy.py), before the hash is taken: the hash covers
what was served.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from creditstream.pages import Html, definition_list, el, esc, html_response, join, json_block, page, table
from creditstream.settings import Settings
from domain import clock
from domain.memberships import day_of
from domain.privacy import is_natural_person, redact_personal
from domain.report import credit_report, seal
from domain.rulebook import Rulebook, load_rulebook

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REPORT_ELEMENT = "credit-report"

KIND_LABELS = {"penalty": "行政处罚 Penalty", "license": "行政许可 Licence",
               "court_listing": "失信被执行人 Court listing",
               "listing_decision": "列入名单决定 Listing decision", "linked": "关联记录 Linked record",
               "action": "行政行为 Action"}
WITHDRAWN_LABELS = {"expiry": "公示期满 period ended", "repair": "信用修复 credit repair",
                    "revoked": "撤销 revoked", "objection": "异议成立撤销 revoked on objection"}
DETAIL_LABELS = {"violation_type": "违法行为", "penalty_category": "处罚类别", "penalty_content": "处罚内容",
                 "legal_basis": "依据", "fine_amount": "罚款（万元）", "confiscated_amount": "没收（万元）",
                 "deciding_authority": "决定机关", "doc_name": "文书", "certificate_name": "证书",
                 "license_no": "许可编号", "license_category": "许可类别", "content": "许可内容",
                 "valid_from": "有效期自", "valid_to": "有效期至", "licensing_authority": "许可机关",
                 "action_kind": "行为类别", "action_content": "行为内容", "result": "结果", "adverse": "不利结论"}
ACTION_LABELS = {"enforcement": "行政强制 enforcement", "confirmation": "行政确认 confirmation",
                 "levy": "行政征收 levy", "payment": "行政给付 payment", "adjudication": "行政裁决 adjudication",
                 "compensation": "行政补偿 compensation", "reward": "行政奖励 reward",
                 "inspection": "行政检查 inspection"}
"""The actions the Henan rules publicise besides penalties and licences (十公示), as the pages name them."""
STATE_LABELS = {"published": "公示中 published", "repair_eligible": "公示中（可申请修复）published, repairable",
                "withdrawn": "终止公示 withdrawn"}


def wants_json(request: web.Request) -> bool:
    """``format=json`` / ``format=html``, else the Accept header (HTML unless only JSON is asked for)."""
    fmt = request.query.get("format", "").lower()
    if fmt in ("json", "html"):
        return fmt == "json"
    if fmt:
        raise web.HTTPBadRequest(reason="format: json or html")
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def negotiated(handler: Handler) -> Handler:
    """A handler whose form follows the Accept header (:func:`wants_json`): its answers say so
    (``Vary: Accept``), so that a cache between keeps the HTML and the JSON apart."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        response.headers["Vary"] = "Accept"
        return response

    return wrapper


def at_problem(raw: str, exc: Exception) -> str:
    """The 400's sentence for an ``at`` that is no instant; where a '+' of its offset reached the
    service as a space (a query string's '+' means a space), it says how to write it."""
    said = f"at: {exc}"
    if re.search(r"T\d\d:\d\d(:\d\d(\.\d+)?)? \d\d:?\d\d$", raw.strip()):
        said += " (the '+' of an offset must be written %2B in a URL: at=2026-03-02T10:00:00%2B08:00)"
    return said


def instant_of(request: web.Request) -> str:
    """``?at=`` as a China date (ISO date or date-time; default today). 400 for anything else."""
    raw = request.query.get("at", "")
    if not raw:
        return clock.today()
    try:
        return day_of(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(reason=at_problem(raw, exc)) from None


def now_iso() -> str:
    return dt.datetime.fromtimestamp(clock.now_ms() / 1000, clock.CHINA).isoformat(timespec="seconds")


class ReportApi:
    """``state_of(request)``: the subject's state, or the API's 403/404 error (api.py ``Api._state``);
    ``client_of(request)``: the request's client (``may(role)``)."""

    def __init__(self, settings: Settings, *, state_of: Callable[[web.Request], Awaitable[dict]],
                 client_of: Callable[[web.Request], Any], rules: Rulebook | None = None):
        self.settings = settings
        self.state_of = state_of
        self.client_of = client_of
        self.rules = rules or load_rulebook(settings.rules_file or None)

    def routes(self, guard: Callable[[Handler], Handler]) -> list[web.RouteDef]:
        return [web.get("/subjects/{code}/report", negotiated(guard(self.report)), allow_head=False)]

    async def report(self, request: web.Request) -> web.Response:
        as_json = wants_json(request)
        at = instant_of(request)
        state = await self.state_of(request)
        content = credit_report(state, at, rules_version=self.rules.version, generated_at=now_iso(),
                                rules=self.rules)
        if not self.client_of(request).may("personal"):
            content = redact_personal(content, natural_person=bool(is_natural_person(state)), sources=[state])
        sealed = seal(content)
        if as_json:
            return web.Response(body=orjson.dumps(sealed), content_type="application/json", charset="utf-8")
        return html_response(render_report(sealed))


# ------------------------------------------------------------------------------------ HTML


def _public_rows(records: list[dict], *, withdrawn: bool) -> list[list[object]]:
    rows = []
    for r in records:
        details = join((el("div", f"{DETAIL_LABELS.get(k, k)}：", ACTION_LABELS.get(v, v) if k == "action_kind" else v)
                        for k, v in (r.get("details") or {}).items()))
        state = el("span", STATE_LABELS.get(r["state"], r["state"]),
                   class_="badge " + ("withdrawn" if withdrawn else "published"))
        if withdrawn:
            state = Html(state + el("div", r.get("withdrawn_on"), " · ",
                                    WITHDRAWN_LABELS.get(r.get("withdrawn_by") or "", r.get("withdrawn_by"))))
        elif r.get("disputed_by"):
            state = Html(state + el("div", "异议中 disputed: ", r["disputed_by"], class_="badge suspended"))
        rows.append([KIND_LABELS.get(r["kind"], r["kind"]), r.get("doc_no"), r.get("source_unit"),
                     r.get("decision_date"), r.get("severity") or "", details,
                     r.get("published_until") or "—", state])
    return rows


PUBLIC_HEADERS = ["类别 Kind", "文号 Document", "单位 Unit", "决定日期 Decided", "程度 Severity", "内容 Details",
                  "公示截止 Until", "状态 State"]


def render_report(sealed: dict) -> Html:
    c = sealed["content"]
    subject = c["subject"]
    title = f"信用报告 Credit report · {subject.get('name') or subject.get('id')}"
    ident = definition_list({
        "名称 Name": subject.get("name"), "代码 Code": subject.get("id"),
        "主体类别 Category": subject.get("category"),
        "曾用名 Names": "、".join(subject.get("names") or []) if len(subject.get("names") or []) > 1 else None,
        "报告时点 At": c["at"] + ("（预计 projected）" if c.get("projected") else ""),
        "数据截至 State as of": c.get("as_of"), "生成时间 Generated": c["generated_at"],
        "规则版本 Rules version": c["rules_version"], "名单规则版本 Lists rules": c.get("lists_rules_version"),
    })
    lists = table(["名单 List", "起 Since", "止 Until", "中止 Suspended", "依据 Records"],
                  [[s["list"], s["since"], (s.get("until") or "—") + (" (预计 expected)" if s.get("until_projected")
                                                                     and s.get("until") else ""),
                    el("span", "异议中止 suspended", class_="badge suspended") if s["suspended"] else "否 no",
                    join(s.get("causes") or [], "; ")] for s in c["lists"]],
                  empty="不在任何名单上 On no list at this instant", class_="cards")
    history = table(["名单 List", "列入 Entered", "移出 Exited", "原因 Cause"],
                    [[m["list"], m["entered"], m.get("exited") or "—",
                      (m.get("exited_by") or {}).get("kind") if m.get("exited") else ""]
                     for m in c["list_history"]], empty="无名单记录 No list history", class_="cards")
    red = c["red_list"]
    objections = table(["异议 Objection", "记录 Record", "提出 Filed", "状态 Status", "办结 Resolved", "结果 Outcome"],
                       [[o["objection_id"], o.get("record_key"), o["filed"], o["status"], o.get("resolved") or "—",
                         o.get("outcome") or ""] for o in c["objections"]], empty="无异议 No objections",
                       class_="cards")
    repairs = table(["记录 Record", "批准日期 Approved", "准予 Granted", "生效 Applied", "说明 Reason"],
                    [[r["record_key"], r["approved"], "是 yes" if r["granted"] else "否 no",
                      "是 yes" if r.get("applied") else "否 no", r.get("reason") or ""] for r in c["repairs"]],
                    empty="无信用修复 No credit repairs", class_="cards")
    body = join([
        el("h1", "信用报告 Credit report"),
        ident,
        el("h2", "公示中的记录 Records under publicity"),
        table(PUBLIC_HEADERS, _public_rows(c["publicity"]["published"], withdrawn=False),
              empty="无公示中的行政处罚、行政许可 No penalty or licence under publicity", class_="cards"),
        el("h2", "终止公示 Withdrawn from publicity"),
        table(PUBLIC_HEADERS, _public_rows(c["publicity"]["withdrawn"], withdrawn=True),
              empty="无 None", class_="cards"),
        el("h2", "名单 Lists at this instant"), lists,
        el("h2", "名单历史 List history"), history,
        el("h2", "红名单 Red list"),
        el("p", f"在红名单上 On the red list since {red['since']}" if red["listed"]
           else "不在红名单上 Not on the red list"),
        el("h2", "异议 Objections"), objections,
        el("h2", "信用修复 Credit repairs"), repairs,
        el("h2", "校验 Verification"),
        el("p", "内容哈希 Content hash (SHA-256 of the canonical JSON of the report's content): ",
           el("span", sealed["content_hash"], class_="hash", id="content-hash")),
        el("p", "核验 Verify: ", el("code", "creditstream report-verify <this page's URL or a saved copy>"),
           class_="note"),
        json_block(REPORT_ELEMENT, sealed),
    ])
    return page(title, body)


__all__ = ["ReportApi", "render_report", "wants_json", "negotiated", "at_problem",
           "instant_of", "REPORT_ELEMENT", "esc"]
