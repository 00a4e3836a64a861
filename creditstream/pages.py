"""Server-rendered HTML for the public pages (the disclosure, creditstream/disclosure.py) and the
credit report (creditstream/report_api.py): a tiny renderer, the page shell and one small stylesheet.

Everything that goes into a page is escaped (:func:`esc`) unless it is :class:`Html` already, i.e.
built by :func:`el` / :func:`page` from escaped parts: no template can forget to escape. Data for
machines goes in ``<script type="application/json">`` (:func:`json_block`), with ``<`` written as
``\\u003c`` so the data can never end the element. The pages need no JavaScript: they are served with
a Content-Security-Policy that allows none (:data:`SECURITY_HEADERS`).

The stylesheet (:data:`STYLESHEET`, served at ``/disclosure/style.css``) reads on a phone (one
column, tables that scroll sideways inside their box, no fixed widths) and prints (no navigation,
black on white, links followed by nothing, no row split across pages).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlencode

import orjson
from aiohttp import web

STYLE_PATH = "/disclosure/style.css"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Html(str):
    """Markup that is already escaped (built by :func:`el`, :func:`join` or :func:`page`)."""


def esc(value: object) -> Html:
    """``value`` as HTML text: Html as it is, None as nothing, anything else escaped (quotes too)."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html("")
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Html:
    return Html(esc(sep).join(esc(p) for p in parts))


def el(tag: str, *children: object, **attrs: object) -> Html:
    """``<tag attrs>children</tag>``; attribute names: ``class_`` -> ``class``, ``_`` -> ``-``;
    an attribute None or False is left out, True is written bare."""
    parts = [tag]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        parts.append(name if value is True else f'{name}="{esc(value)}"')
    open_tag = "<" + " ".join(parts) + ">"
    if tag in ("meta", "link", "input", "br"):
        return Html(open_tag)
    return Html(open_tag + join(children) + f"</{tag}>")


def link(href: str, text: object, **attrs: object) -> Html:
    return el("a", text, href=href, **attrs)


def url(path: str, **params: object) -> str:
    """A path with its query (parameters None or "" left out); path segments are quoted by the caller."""
    query = urlencode({k: str(v) for k, v in params.items() if v is not None and v != ""})
    return path + ("?" + query if query else "")


def seg(value: str) -> str:
    """One path segment, quoted."""
    return quote(value, safe=":")


def table(headers: list[str], rows: list[list[object]], *, caption: str | None = None, empty: str = "无 None",
          class_: str | None = None) -> Html:
    if not rows:
        return el("p", empty, class_="empty")
    head = el("thead", el("tr", *(el("th", h, scope="col") for h in headers)))
    body = el("tbody", *(el("tr", *(el("td", c, data_label=h) for h, c in zip(headers, r))) for r in rows))
    return el("div", el("table", el("caption", caption) if caption else "", head, body, class_=class_),
              class_="scroll")


def definition_list(items: Mapping[str, object]) -> Html:
    return el("dl", *(Html(el("dt", k) + el("dd", v)) for k, v in items.items() if v not in (None, "")))


def json_block(element_id: str, data: object) -> Html:
    """Data for machines inside the page: ``<script type="application/json" id=...>``; every ``<``
    written ``\\u003c`` (still the same JSON), so nothing in the data can close the element."""
    text = orjson.dumps(data).decode("utf-8").replace("<", "\\u003c")
    return Html(f'<script type="application/json" id="{esc(element_id)}">{text}</script>')


def page(title: str, body: object, *, nav: object = "", lang: str = "zh-CN") -> Html:
    return Html("<!DOCTYPE html>\n" + el(
        "html",
        el("head", el("meta", charset="utf-8"),
           el("meta", name="viewport", content="width=device-width, initial-scale=1"),
           el("title", title), el("link", rel="stylesheet", href=STYLE_PATH)),
        el("body",
           el("header", el("nav", nav), class_="site") if nav else "",
           el("main", body),
           el("footer", "creditstream · 信用信息公示 Public credit information", class_="site")),
        lang=lang))


def html_response(body: Html, status: int = 200) -> web.Response:
    return web.Response(text=str(body), status=status, content_type="text/html", charset="utf-8",
                        headers=SECURITY_HEADERS)


def error_page(status: int, title: str, message: str) -> web.Response:
    # join, not +: Html + Html is a plain str, which el("main", ...) would escape again
    return html_response(page(title, join([el("h1", title), el("p", message, class_="error")])), status)


STYLESHEET = """\
:root { --ink: #1b1f23; --muted: #5b6470; --line: #d5d9de; --accent: #b3261e; --ok: #1e6b34; --bg: #fff; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei",
       sans-serif; color: var(--ink); background: var(--bg); }
main { max-width: 64rem; margin: 0 auto; padding: 1rem; }
header.site, footer.site { padding: .5rem 1rem; background: #f3f4f6; border-bottom: 1px solid var(--line); }
footer.site { border-top: 1px solid var(--line); border-bottom: 0; color: var(--muted); font-size: .85rem; }
header.site nav a { margin-right: 1rem; }
h1 { font-size: 1.4rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; border-bottom: 2px solid var(--line); padding-bottom: .25rem; }
a { color: #0b57d0; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
caption { text-align: left; color: var(--muted); padding: .25rem 0; }
th, td { border: 1px solid var(--line); padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f4f6; white-space: nowrap; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0 0 1rem; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
form.search { display: flex; flex-wrap: wrap; gap: .5rem; margin: 0 0 1rem; }
form.search input[type=search] { flex: 1 1 14rem; font-size: 1rem; padding: .45rem; }
form.search button { font-size: 1rem; padding: .45rem 1rem; }
.badge { display: inline-block; padding: 0 .4rem; border-radius: .25rem; font-size: .8rem; white-space: nowrap; }
.badge.published { background: #fdecea; color: var(--accent); }
.badge.withdrawn { background: #e8f3ec; color: var(--ok); }
.badge.suspended { background: #fff4d6; color: #7a5b00; }
.empty, .note { color: var(--muted); }
.error { color: var(--accent); }
.hash { font-family: ui-monospace, monospace; overflow-wrap: anywhere; font-size: .85rem; }
.pager { margin: 1rem 0; }
@media (max-width: 40rem) {
  main { padding: .5rem; }
  table.cards thead { display: none; }
  table.cards, table.cards tbody, table.cards tr, table.cards td { display: block; width: 100%; }
  table.cards tr { border: 1px solid var(--line); margin-bottom: .5rem; }
  table.cards td { border: 0; border-bottom: 1px solid #eceef1; }
  table.cards td::before { content: attr(data-label); display: block; color: var(--muted); font-size: .8rem; }
  dl { grid-template-columns: 1fr; }
}
@media print {
  header.site, form.search, .pager, .no-print { display: none; }
  body { font-size: 11pt; color: #000; }
  main { max-width: none; padding: 0; }
  a { color: #000; text-decoration: none; }
  tr, dl { break-inside: avoid; }
  .badge { border: 1px solid #000; background: none; color: #000; }
}
"""


async def stylesheet(_request: web.Request) -> web.Response:
    return web.Response(text=STYLESHEET, content_type="text/css", charset="utf-8",
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
