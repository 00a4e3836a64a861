"""Public disclosure (信用信息公示): server-rendered pages and their JSON form.

==========================================  ===============================================================
``GET /disclosure``                         the index: the blacklists with their sizes, links to the
                                            penalties, licences and other actions, and search (``?q=``
                                            a code or a name)
``GET /disclosure/lists/{name}``            one page of a blacklist's members (``blacklist:<domain>``,
                                            ``court_debtor``): who, since, until, suspended
``GET /disclosure/penalties``               organisations' penalties under publicity (``?q=`` name filter)
``GET /disclosure/licences``                organisations' licences under publicity (``?q=`` name filter)
``GET /disclosure/actions``                 organisations' other publicised actions (十公示: 强制, 确认, 征收,
                                            给付, 裁决, 补偿, 奖励, 检查) under publicity (``?q=`` name filter)
``GET /disclosure/subjects/{code}``         one organisation: its records under publicity, its blacklists
``GET /disclosure/style.css``               the stylesheet
==========================================  ===============================================================

Every page takes ``?at=`` (an instant; default now) and ``?format=json`` for its JSON form (the feed; or
``Accept: application/json`` without ``text/html``, as the credit report);
pages that page take ``?cursor=`` (the ``next_cursor`` of the previous page; the HTML has a "next"
link). Dates are China dates. Nothing whose publicity has ended by today shows at any instant (a record
withdrawn by expiry, credit repair or revocation; a list stay that ended): showing it at an earlier
instant would publish it again (RULES.md 3, 5; domain/disclosure.py).

Access: public information, by nature open (双公示; RULES.md 2): these routes need no token even
when the API has tokens (creditstream/access.py ``OPEN_PATH_PREFIXES``, an explicit decision), and
everything they show goes through the public role's redaction (domain/privacy.py
``redact_personal``) whoever asks, a personal token included: natural persons appear only as list
members (court debtors), ID number and name masked; they cannot be searched by ID number (no
enumeration: a search naming a resident ID number is refused before any look-up) and have no page.

Enumeration: a blacklist's members come from its Redis set (:meth:`ops.inspect.Reader.members`,
paged by SSCAN cursor); penalties, licences and actions from a bounded walk over the organisations
(:meth:`ops.inspect.Reader.organisations`: natural persons skipped by their storage id, without
reading their state), at most :data:`SCAN_STEP` subjects per page, so a page may hold fewer records
than others and the walk is resumed with the cursor. A name search walks the same way (a substring
of any name, after name normalisation). A search by code is one look-up (normalised; legacy codes
resolved through the registry index).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from creditstream.pages import (
    Html,
    definition_list,
    el,
    error_page,
    html_response,
    join,
    link,
    page,
    seg,
    stylesheet,
    table,
    url,
)
from creditstream.report_api import KIND_LABELS, STATE_LABELS, instant_of, negotiated, wants_json
from creditstream.settings import Settings
from domain import clock
from domain.disclosure import disclosed_records, is_organisation, list_member, name_matches, query_of, subject_name
from domain.memberships import memberships_at
from domain.privacy import redact_personal
from domain.rulebook import Rulebook, load_rulebook
from ops.inspect import BadCursor, Reader

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PREFIX = "/disclosure"
PAGE_SIZE = 50
SCAN_STEP = 500
"""Subjects read per page of the penalties / licences walk and of a name search."""
PAST_SIZE_LIMIT = 10_000
"""The most members of one list the index reads to count it at a past instant; a larger list's size
then is not counted (``size`` null: its pages show its members then)."""
DISCLOSED_LISTS = ("blacklist:", "court_debtor")
RECORD_PAGES = {"penalties": "penalty", "licences": "license", "actions": "action"}
PAGE_TITLES = {"penalty": "行政处罚公示 Penalties under publicity", "license": "行政许可公示 Licences under publicity",
               "action": "其他行政行为公示 Other actions under publicity"}


def is_disclosed_list(name: str) -> bool:
    return name.startswith(DISCLOSED_LISTS[0]) or name == DISCLOSED_LISTS[1]


def _cursor(request: web.Request) -> int:
    raw = request.query.get("cursor", "")
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) >= 2**64:
        raise web.HTTPBadRequest(reason="cursor is not a cursor from this page")
    return int(raw)


def _public(doc: Any, sources: Sequence[Any] = ()) -> Any:
    """What the disclosure serves: the public role's redaction, whoever asks. ``sources``: the states
    the page was made from (the names their records' legal representatives have are masked where
    the page quotes them: a penalty's facts naming its legal representative)."""
    return redact_personal(doc, sources=sources)


def _nav(at: str) -> Html:
    return join([link(url(PREFIX, at=at), "信用信息公示 Disclosure"),
                 link(url(f"{PREFIX}/penalties", at=at), "行政处罚 Penalties"),
                 link(url(f"{PREFIX}/licences", at=at), "行政许可 Licences"),
                 link(url(f"{PREFIX}/actions", at=at), "其他行政行为 Other actions")], " ")


def _search_form(q: str, at: str) -> Html:
    """The search box, holding ``q`` as the public sees it (an ID number in it masked, as in the JSON)."""
    return el("form", el("input", type="search", name="q", value=q, placeholder="统一社会信用代码或名称 Code or name",
                         aria_label="code or name"),
              el("input", type="hidden", name="at", value=at), el("button", "查询 Search", type="submit"),
              class_="search", action=PREFIX, method="get", role="search")


class DisclosureApi:
    """The disclosure handlers. ``reader()``: the API's :class:`Reader`; ``names_a_person(code)``:
    whether a code is (or may be) a resident ID number (the API's own test, api.py)."""

    def __init__(self, settings: Settings, reader: Callable[[], Reader], *, names_a_person: Callable[[str], bool],
                 rules: Rulebook | None = None):
        self.settings = settings
        self.reader = reader
        self.names_a_person = names_a_person
        self.rules = rules or load_rulebook(settings.rules_file or None)

    def routes(self, guard: Callable[[Handler], Handler]) -> list[web.RouteDef]:
        return [
            web.get(PREFIX, negotiated(guard(self.index)), allow_head=False),
            web.get(f"{PREFIX}/style.css", stylesheet, allow_head=False),
            web.get(f"{PREFIX}/lists/{{name}}", negotiated(guard(self.list_page)), allow_head=False),
            web.get(f"{PREFIX}/penalties", negotiated(guard(self.records_page)), allow_head=False),
            web.get(f"{PREFIX}/licences", negotiated(guard(self.records_page)), allow_head=False),
            web.get(f"{PREFIX}/actions", negotiated(guard(self.records_page)), allow_head=False),
            web.get(f"{PREFIX}/subjects/{{code}}", negotiated(guard(self.subject_page)), allow_head=False),
        ]

    # --- index and search ------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        as_json, at = wants_json(request), instant_of(request)
        q = request.query.get("q", "").strip()
        reader = self.reader()
        sizes = await self._sizes(reader, at)
        search = await self._search(q, at, _cursor(request)) if q else None
        if search is not None and search.get("subject") and not as_json:  # found by its code: its page
            return web.Response(status=303, headers={"Location": url(f"{PREFIX}/subjects/{seg(search['subject'])}",
                                                                     at=at)})
        doc = _public({"at": at, "lists": [{"list": n, "size": s} for n, s in sorted(sizes.items())],
                       "search": search})
        if as_json:
            return _json(doc)
        parts = [el("h1", "信用信息公示 Public credit information"), _search_form(_public(q), at)]
        if search is not None:
            parts.append(self._render_search(search, q, at))
        parts += [el("h2", "严重失信主体名单 Blacklists"),
                  table(["名单 List", "主体数 Members"],
                        [[link(url(f"{PREFIX}/lists/{seg(x['list'])}", at=at), x["list"]),
                          "—" if x["size"] is None else x["size"]]
                         for x in doc["lists"]], empty="当时没有名单成员 No list had members"
                        if at != clock.today() else "目前没有名单成员 No list has members"),
                  el("h2", "双公示 Double publicity"),
                  el("ul", el("li", link(url(f"{PREFIX}/penalties", at=at), PAGE_TITLES["penalty"])),
                     el("li", link(url(f"{PREFIX}/licences", at=at), PAGE_TITLES["license"])),
                     el("li", link(url(f"{PREFIX}/actions", at=at), PAGE_TITLES["action"]))),
                  el("p", "公示时点 At: ", at, " · ", link(url(PREFIX, at=at, format="json"), "JSON"), class_="note")]
        return html_response(page("信用信息公示 Public credit information", join(parts), nav=_nav(at)))

    @staticmethod
    async def _sizes(reader: Reader, at: str) -> dict[str, int | None]:
        """The disclosed lists' sizes at ``at``, by name. Today: the list sets' sizes. A past instant:
        the members now that were on the list then, counted as the list's pages show them
        (:func:`domain.disclosure.list_member`), lists without any left out; a list of more than
        :data:`PAST_SIZE_LIMIT` members now is not counted (None)."""
        now = {n: s for n, s in (await reader.lists()).items() if is_disclosed_list(n)}
        today = clock.today()
        if at == today:
            return dict(now)
        sizes: dict[str, int | None] = {}
        for name, size_now in now.items():
            if size_now > PAST_SIZE_LIMIT:
                sizes[name] = None
                continue
            count, cursor = 0, 0
            while True:
                ids, cursor = await reader.members(name, cursor=cursor, count=SCAN_STEP)
                states = await reader.subjects(ids)
                count += sum(1 for s in states if s is not None and list_member(s, name, at, now=today) is not None)
                if cursor == 0:
                    break
            if count:
                sizes[name] = count
        return sizes

    async def _search(self, q: str, at: str, cursor: int) -> dict:
        try:
            query = query_of(q)
        except ValueError as exc:
            raise web.HTTPBadRequest(reason=str(exc)) from None
        out: dict[str, Any] = {"q": q, "subject": None, "matches": [], "next_cursor": None, "refused": None}
        reader = self.reader()
        if query.code is not None:
            if self.names_a_person(query.code):
                out["refused"] = ("natural persons cannot be searched by ID number on the public disclosure "
                                  "(personal information, RULES.md 7)")
                return out
            state = await reader.subject(query.code)
            if state is not None and is_organisation(state):
                out["subject"] = state["id"]
                out["matches"] = [_match(state, at, self.rules)]
            return out
        step = cursor
        states, step = await self._walk(reader, step)
        out["matches"] = [_match(s, at, self.rules) for s in states if query.name and name_matches(s, query.name)]
        out["next_cursor"] = step or None
        return out

    @staticmethod
    async def _walk(reader: Reader, cursor: int) -> tuple[list[dict], int]:
        try:
            return await reader.organisations(cursor=cursor, count=SCAN_STEP)
        except BadCursor:
            raise web.HTTPBadRequest(reason="cursor is not a cursor from this page") from None

    def _render_search(self, search: dict, q: str, at: str) -> Html:
        if search["refused"]:
            return el("p", "不支持按身份证号码查询自然人 ", search["refused"], class_="error")
        rows = [[link(url(f"{PREFIX}/subjects/{seg(m['subject'])}", at=at), m["name"] or m["subject"]), m["subject"],
                 m["published"], join(m["lists"], ", ")] for m in search["matches"]]
        more = link(url(PREFIX, q=q, at=at, cursor=search["next_cursor"]), "继续查找 Search further") \
            if search["next_cursor"] else ""
        return join([el("h2", "查询结果 Results"),
                     table(["名称 Name", "代码 Code", "公示中 Published", "名单 Lists"], rows,
                           empty="本批未找到 Nothing found in this batch" if more else "未找到 Nothing found",
                           class_="cards"),
                     el("p", more, class_="pager")])

    # --- a blacklist ---------------------------------------------------------------------
    async def list_page(self, request: web.Request) -> web.StreamResponse:
        as_json, at = wants_json(request), instant_of(request)
        name = request.match_info["name"]
        cursor = _cursor(request)
        reader = self.reader()
        if not is_disclosed_list(name) or (cursor == 0 and not await reader.list_exists(name)):
            if as_json:
                raise web.HTTPNotFound(reason="no blacklist of that name has members")
            return error_page(404, "未找到 Not found",
                              "没有这个名单，或名单无成员 No blacklist of that name has members")
        try:
            ids, next_cursor = await reader.members(name, cursor=cursor, count=PAGE_SIZE)
        except BadCursor:
            raise web.HTTPBadRequest(reason="cursor is not a cursor from this page") from None
        states = await reader.subjects(ids)
        members = [m for s in states if s is not None
                   and (m := list_member(s, name, at, self.rules, now=clock.today())) is not None]
        doc = _public({"at": at, "list": name, "members": members, "next_cursor": next_cursor or None})
        if as_json:
            return _json(doc)
        rows = []
        for m in doc["members"]:
            who = link(url(f"{PREFIX}/subjects/{seg(m['subject'])}", at=at), m["name"] or m["subject"]) \
                if m["id_kind"] == "uscc" else m["name"]
            rows.append([who, m["subject"], m["since"], (m.get("until") or "—"),
                         el("span", "异议中止 suspended", class_="badge suspended") if m["suspended"] else "",
                         join((join([r.get("doc_no"), " ", r.get("source_unit"), _via(r)]) for r in m["records"]),
                              "; ")])
        body = join([el("h1", "名单 List: ", name),
                     el("p", "公示时点 At: ", at, class_="note"),
                     table(["名称 Name", "代码 Code", "列入 Since", "预计移出 Until", "状态 State", "依据 Basis"], rows,
                           class_="cards"),
                     el("p", link(url(f"{PREFIX}/lists/{seg(name)}", at=at, cursor=doc["next_cursor"]),
                                  "下一页 Next page") if doc["next_cursor"] else "", class_="pager")])
        return html_response(page(f"名单 {name}", body, nav=_nav(at)))

    # --- penalties / licences ------------------------------------------------------------
    async def records_page(self, request: web.Request) -> web.StreamResponse:
        as_json, at = wants_json(request), instant_of(request)
        which = request.path.rsplit("/", 1)[-1]
        kind = RECORD_PAGES[which]
        q = request.query.get("q", "").strip()
        try:
            query = query_of(q)
        except ValueError as exc:
            raise web.HTTPBadRequest(reason=str(exc)) from None
        reader = self.reader()
        if query.code is not None:  # one look-up (never a person's: no enumeration of ID numbers)
            found = None if self.names_a_person(query.code) else await reader.subject(query.code)
            states, next_cursor = ([found] if found is not None else []), 0
        else:
            states, next_cursor = await self._walk(reader, _cursor(request))
        records = []
        for s in states:
            if query.name is None or name_matches(s, query.name):
                records += disclosed_records(s, at, (kind,), rules=self.rules, now=clock.today())
        records.sort(key=lambda r: (r["decision_date"], r["subject"], r["record_key"]), reverse=True)
        doc = _public({"at": at, "kind": kind, "records": records, "next_cursor": next_cursor or None}, states)
        # the search echoed as typed, its ID numbers masked, never against the states walked: masked
        # by them, the echo told which of the names typed were stored legal representatives (seen:
        # one unauthenticated request tested several names at once)
        doc = {"at": at, "kind": kind, "q": _public({"q": q})["q"] or None, **doc}
        if as_json:
            return _json(doc)
        rows = [[link(url(f"{PREFIX}/subjects/{seg(r['subject'])}", at=at), r["name"] or r["subject"]),
                 r.get("doc_no"), r.get("source_unit"), r["decision_date"], _details(r),
                 r.get("published_until") or "—"]
                for r in doc["records"]]
        form = el("form", el("input", type="search", name="q", value=doc["q"] or "", placeholder="名称 Name",
                             aria_label="name"),
                  el("input", type="hidden", name="at", value=at), el("button", "筛选 Filter", type="submit"),
                  class_="search", action=f"{PREFIX}/{which}", method="get")
        pager = link(url(f"{PREFIX}/{which}", q=q, at=at, cursor=doc["next_cursor"]), "下一页 Next page") \
            if doc["next_cursor"] else ""
        body = join([el("h1", PAGE_TITLES[kind]), form, el("p", "公示时点 At: ", at, class_="note"),
                     table(["名称 Name", "文号 Document", "单位 Unit", "决定日期 Decided", "内容 Details",
                            "公示截止 Until"], rows,
                           empty="本页无记录 No record on this page" if pager else "无 None", class_="cards"),
                     el("p", pager, class_="pager")])
        return html_response(page(PAGE_TITLES[kind], body, nav=_nav(at)))

    # --- one organisation ----------------------------------------------------------------
    async def subject_page(self, request: web.Request) -> web.StreamResponse:
        as_json, at = wants_json(request), instant_of(request)
        code = request.match_info["code"]
        not_found = "没有这个代码的组织 No organisation has that code"
        if self.names_a_person(code):  # before any look-up: no enumeration of ID numbers
            if as_json:
                raise web.HTTPForbidden(reason="natural persons have no page on the public disclosure")
            return error_page(403, "不公开 Not public", "自然人信息不在此公示 Natural persons have no page here")
        state = await self.reader().subject(code)
        if state is None or not is_organisation(state):
            if as_json:
                raise web.HTTPNotFound(reason=not_found)
            return error_page(404, "未找到 Not found", not_found)
        today = clock.today()
        lists = [m for s in memberships_at(state, at).lists if is_disclosed_list(s.list)
                 and (m := list_member(state, s.list, at, self.rules, now=today)) is not None]
        doc = _public({"at": at, "subject": {"id": state["id"], "name": subject_name(state),
                                              "category": state.get("category")},
                       "published": disclosed_records(state, at, rules=self.rules, now=today),
                       "lists": lists}, [state])
        if as_json:
            return _json(doc)
        subject = doc["subject"]
        headers = ["类别 Kind", "文号 Document", "单位 Unit", "决定日期 Decided", "内容 Details", "公示截止 Until",
                   "状态 State"]

        def rows(items: list[dict]) -> list[list[object]]:
            return [[KIND_LABELS.get(r["kind"], r["kind"]), r.get("doc_no"), r.get("source_unit"), r["decision_date"],
                     _details(r), r.get("published_until") or "—",
                     el("span", STATE_LABELS.get(r["state"], r["state"]), class_="badge published")]
                    for r in items]

        body = join([
            el("h1", subject["name"] or subject["id"]),
            definition_list({"统一社会信用代码 USCC": subject["id"], "公示时点 At": at}),
            el("h2", "严重失信主体名单 Blacklists"),
            table(["名单 List", "列入 Since", "预计移出 Until", "状态 State"],
                  [[m["list"], m["since"], m.get("until") or "—",
                    el("span", "异议中止 suspended", class_="badge suspended") if m["suspended"] else ""]
                   for m in doc["lists"]], empty="不在严重失信主体名单上 On no blacklist", class_="cards"),
            el("h2", "公示中 Under publicity"),
            table(headers, rows(doc["published"]), empty="无公示中的记录 Nothing under publicity", class_="cards"),
            el("p", "公示期满、信用修复或撤销的记录不再公示 Records whose publicity has ended (expiry, credit repair, "
                    "revocation) are not published", class_="note"),
        ])
        return html_response(page(subject["name"] or subject["id"], body, nav=_nav(at)))


def _details(r: dict) -> Html:
    return join((el("div", v) for k, v in (r.get("details") or {}).items()
                 if k in ("violation_type", "penalty_content", "certificate_name", "license_no", "content",
                          "action_content", "result")))


def _via(r: dict) -> str:
    """A legal representative's list entry by the organisation's decision says whose it is."""
    return f" (法定代表人所在单位 as legal representative of {r['via']})" if r.get("via") else ""


def _match(state: dict, at: str, rules: Rulebook) -> dict:
    return {"subject": state["id"], "name": subject_name(state),
            "published": len(disclosed_records(state, at, rules=rules, now=clock.today())),
            "lists": [s.list for s in memberships_at(state, at).lists if is_disclosed_list(s.list)
                      and list_member(state, s.list, at, now=clock.today()) is not None]}


def _json(doc: Any) -> web.Response:
    return web.Response(body=orjson.dumps(doc), content_type="application/json", charset="utf-8")
