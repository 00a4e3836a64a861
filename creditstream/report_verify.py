"""``creditstream report-verify FILE|URL``: recompute a credit report's content hash.

The report is read from a file (``-``: standard input) or fetched from a URL (``GET``, with
``Authorization: Bearer <token>`` when a token is given). Either form of the report works: the JSON
(``{"content": ..., "content_hash": ...}``) or the HTML page, from which the same JSON is taken out
of its ``<script type="application/json" id="credit-report">`` element. The hash is recomputed from
the content (domain/report.py: SHA-256 of the canonical JSON) and compared with the one claimed; and
an HTML copy's visible text is compared with what that content renders to, so that an edited table
does not pass as verified (:func:`shown_as_rendered`).

Exit codes: 0 the hash matches; 1 it does not, or the document is no sealed credit report; 2 usage
(no such file, a URL that answers 4xx: wrong address or token); 3 the service did not answer (a
connection error, a timeout, 5xx).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from html.parser import HTMLParser

from domain.report import BadReport, verify

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
ELEMENT_ID = "credit-report"
TIMEOUT_S = 30.0
MAX_BYTES = 32 * 1024 * 1024


class _ReportScript(HTMLParser):
    """Collects the text of ``<script type="application/json" id="credit-report">``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.inside = False
        self.found: list[str] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("id") == ELEMENT_ID and (a.get("type") or "").lower() == "application/json":
            self.inside, self.chunks = True, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self.inside:
            self.inside = False
            self.found.append("".join(self.chunks))

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.chunks.append(data)


class _VisibleText(HTMLParser):
    """The text a reader sees on a page: outside ``<script>``, ``<style>`` and ``<title>``, with
    character references resolved, whitespace runs as one space."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "title"):
            self.hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "title") and self.hidden:
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.chunks.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        parser.close()
        return " ".join("".join(parser.chunks).split())


def shown_as_rendered(text: str, document: object) -> str | None:
    """For an HTML copy: None if the text it shows is what its sealed content renders to
    (creditstream/report_api.py ``render_report``), else where the two first differ. The hash covers
    the embedded JSON only, so a page whose printed table was edited still verified (an audit)."""
    from creditstream.report_api import render_report

    shown, rendered = _VisibleText.of(text), _VisibleText.of(str(render_report(document)))  # type: ignore[arg-type]
    if shown == rendered:
        return None
    at = next((i for i, (a, b) in enumerate(zip(shown, rendered)) if a != b), min(len(shown), len(rendered)))
    window = slice(max(0, at - 20), at + 40)
    return f"the page shows {shown[window]!r} where its content renders {rendered[window]!r}"


def document_of(text: str) -> object:
    """The sealed report in ``text`` (JSON, or HTML carrying it). Raises BadReport."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("{"):
        raw = stripped
    else:
        parser = _ReportScript()
        parser.feed(text)
        parser.close()
        if len(parser.found) != 1:
            raise BadReport(f"neither JSON nor an HTML page with one <script type=\"application/json\" "
                            f"id=\"{ELEMENT_ID}\"> element ({len(parser.found)} found)")
        raw = parser.found[0]
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadReport(f"the report's JSON does not parse: {exc}") from None


def fetch(source: str, token: str | None) -> tuple[int, str]:
    """(0, text) of the report at ``source`` (a URL or a file), or (exit code, message)."""
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(source, headers={"Accept": "application/json"})
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:  # noqa: S310 - http(s) only
                body = resp.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            code = EXIT_UNREACHABLE if exc.code >= 500 else EXIT_USAGE
            hint = " (a token: --token-file or CREDITSTREAM_API_TOKEN)" if exc.code in (401, 403) else ""
            return code, f"{source} answered {exc.code} {exc.reason}{hint}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return EXIT_UNREACHABLE, f"{source} did not answer: {reason}"
    else:
        try:
            body = sys.stdin.buffer.read(MAX_BYTES + 1) if source == "-" else open(source, "rb").read(MAX_BYTES + 1)
        except OSError as exc:
            return EXIT_USAGE, f"cannot read {source}: {exc.strerror or exc}"
    if len(body) > MAX_BYTES:
        return EXIT_FAILED, f"{source}: larger than {MAX_BYTES // (1024 * 1024)} MiB: no credit report"
    try:
        return EXIT_OK, body.decode("utf-8")
    except UnicodeDecodeError:
        return EXIT_FAILED, f"{source}: not UTF-8 text: no credit report"


def run(source: str, token: str | None = None) -> tuple[int, str]:
    """(exit code, the line to print) of verifying the report at ``source``."""
    code, text = fetch(source, token)
    if code != EXIT_OK:
        return code, f"creditstream: {text}"
    try:
        document = document_of(text)
        ok, detail = verify(document)
    except BadReport as exc:
        return EXIT_FAILED, f"creditstream: {source}: {exc}"
    if not ok:
        return EXIT_FAILED, f"FAILED: {detail}"
    if not text.lstrip("\ufeff \t\r\n").startswith("{"):  # an HTML copy: what it shows, too
        differs = shown_as_rendered(text, document)
        if differs is not None:
            return EXIT_FAILED, f"FAILED: the content hashes to {detail} as claimed, but {differs}"
    return EXIT_OK, f"OK {detail}"
