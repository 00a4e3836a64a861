"""The check API (应查必查): ``GET /check`` and ``POST /check``, served with the query API
(creditstream/api.py adds :meth:`CheckApi.routes` to its own, behind the same authentication).

``GET /check?subject=<code>&matter=<matter>[&at=<instant>]`` answers, for one subject, whether the
measures of a matter apply at the instant (default: now), on which lists and records they rest,
whether an objection suspends them, and any incentive: the :class:`domain.checks.CheckResult` of
the rules core (docs/checks.md), with the ``check_id`` and ``checked_at`` of this check. ``code``
is any identifier the subject is known by, normalised and resolved as the query API does (a legacy
number through the registry index: :class:`ops.inspect.Reader`). A code no subject has is answered
``outcome: no_record`` (200), never an error.

``POST /check`` with ``{"matter": ..., "at": ... (optional), "subjects": [...]}`` checks up to
``check_batch_max`` subjects at once (every bidder of a tender) in a few Redis round trips; the
answer lists one result per subject, in the order asked, under one ``batch_id``. More subjects: 413
``too_large``; none, or a malformed body: 400.

Access: any client with the ``public`` role may check. The answer goes through the same redaction
as every other answer for a client without the ``personal`` role (:func:`domain.privacy.
redact_personal`): a natural person's ID number and names are masked wherever they appear (the
subject, record keys, messages). Unlike ``/subjects/{code}``, checking a natural person is not
refused: the unit asking already holds the number, and the check answers only what the measures
need (outcome, measures, the lists and the decisions they rest on; no names).

Every check is recorded on the check-audit topic (sinks/check_audit.py: client, instant, subject
as its storage id, matter, outcome) without ever delaying or failing the answer.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from creditstream import metrics
from creditstream.report_api import at_problem
from creditstream.settings import Settings
from domain import clock
from domain.checks import CheckResult, check, to_builtins
from domain.identifiers import mask_id_numbers_in_text, normalise_code
from domain.memberships import day_of
from domain.privacy import is_natural_person, redact_personal
from domain.rulebook import Rulebook, load_rulebook
from ops.inspect import HeartbeatWatch, Reader
from sinks.check_audit import CheckAuditSink, CheckRecord

MAX_CODE_CHARS = 64
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_DIGIT = "[0-9\uff10-\uff19]"
_DIGIT_RUN = re.compile(f"{_DIGIT}{{15,}}[Xx\uff38\uff58]?")
"""A run of 15 digits or more (full-width ones too) and a check character: every ID number written
without separators that :func:`redact_personal` masks in text lies inside one (15 digits for a
first-generation number, 17 and a digit or X for an 18-character one)."""
_NOT_DIGITS = "[^0-9\uff10-\uff19]{1,4}"
_GROUPED_RUN = re.compile(f"(?=({_DIGIT}{{6}}){_NOT_DIGITS}({_DIGIT}{{6,8}}){_NOT_DIGITS}"
                          f"({_DIGIT}{{3}}[0-9Xx\uff10-\uff19\uff38\uff58]?))")
"""Every place (overlapping ones too) where the answer's JSON text may hold an ID number written in
groups (:data:`domain.identifiers.GROUPED_ID`, ``GROUPED_LEGACY_ID``): 6, 6 to 8 and 3 or 4 digits
(the groups captured) parted by 1 to 4 other characters. Looser than those patterns on purpose (no
boundaries; any separator, as a tab is ``\\t`` in JSON), so that it finds every one of them, and
more."""


def _holds_id_number(m: re.Match[str]) -> bool:
    """Whether the groups of a :data:`_GROUPED_RUN` match, put together, are an ID number the
    redaction masks."""
    compact = normalise_code(m.group(1) + m.group(2) + m.group(3))
    return mask_id_numbers_in_text(compact) != compact


def public_view(doc: dict, *, natural_person: bool) -> dict:
    """A check answer as a client without the personal role may see it: :func:`redact_personal`,
    skipped when it cannot change anything (it costs most of an answer's time). It cannot when the
    answer is not about a natural person (whose id and names it would mask; a check answer has no
    other name or ID fields) and the very searches it applies to each string
    (:func:`mask_id_numbers_in_text`) find nothing in the answer's JSON text: an ID inside a string
    is inside the text too, with the same neighbours. They are run only around the digit runs
    (:data:`_DIGIT_RUN`, one character of context each side), where alone an ID number written
    without separators can be. One written in groups (``410700 19710813 2424``,
    ``410700-19710813-2424``) is looked for apart (:data:`_GROUPED_RUN`, its digits put together):
    where its digits make an ID number, the redaction runs."""
    if not natural_person:
        text = orjson.dumps(doc).decode()
        for m in _DIGIT_RUN.finditer(text):
            snippet = text[max(0, m.start() - 1):m.end() + 1]
            if mask_id_numbers_in_text(snippet) != snippet:
                break
        else:
            if not any(_holds_id_number(m) for m in _GROUPED_RUN.finditer(text)):
                return doc
    return redact_personal(doc, natural_person=natural_person)


class Refused(Exception):
    """A request this API answers with an error (status, code, message)."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json", charset="utf-8")


class CheckApi:
    """The check handlers. ``reader``: returns the query API's :class:`Reader` (it exists once the
    API started); ``client_of``: the request's client (creditstream/access.py ``Client``: ``name``,
    ``may(role)``) as the API's authentication identified it."""

    def __init__(self, settings: Settings, reader: Callable[[], Reader], *, client_of: Callable[[web.Request], Any],
                 rules: Rulebook | None = None):
        self.settings = settings
        self.reader = reader
        self.client_of = client_of
        self.rules = rules or load_rulebook(settings.rules_file or None)
        self.audit: CheckAuditSink | None = None
        self._pipeline_read: tuple[float, dict] | None = None
        self._heartbeats = HeartbeatWatch()  # workers whose heartbeats stopped coming (a paused worker)

    async def start(self, redis, *, producer=None) -> None:
        """Start the audit sink (its counters go to ``redis``; ``producer``: one the caller owns)."""
        if self.audit is None:
            self.audit = CheckAuditSink(self.settings, redis, producer=producer)
            await self.audit.start()

    async def stop(self) -> None:
        if self.audit is not None:
            audit, self.audit = self.audit, None
            await audit.stop()

    def routes(self, guard: Callable[[Handler], Handler]) -> list[web.RouteDef]:
        """The route definitions, each handler wrapped by ``guard`` (the API's JSON errors and logs)."""
        return [web.get("/check", guard(self.check_one), allow_head=False),
                web.post("/check", guard(self.check_batch))]

    # --- handlers -------------------------------------------------------------------------
    async def check_one(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            q = request.query
            code = self._code(q.get("subject"))
            matter = self._matter(q.get("matter"))
            at = self._instant(q.get("at"))
        except Refused as exc:
            return self._refused(request, exc)
        [state] = await self.reader().subjects([code])
        doc = self._checked(request, code, state, matter, at, None)
        if state is None:
            await self._with_parked([code], [doc])
        doc["pipeline"] = await self.pipeline()
        metrics.CHECK_SECONDS.labels("single").observe(time.perf_counter() - started)
        return _json(doc)

    async def check_batch(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = await self._body(request)
            matter = self._matter(body.get("matter"))
            at = self._instant(body.get("at"))
            subjects = body.get("subjects")
            if not isinstance(subjects, list) or not subjects:
                raise Refused(400, "bad_request", "subjects: a non-empty list of subject codes is required")
            limit = self.settings.check_batch_max
            if len(subjects) > limit:
                raise Refused(413, "too_large", f"{len(subjects)} subjects in one batch; at most {limit} "
                                                "(check_batch_max): split the batch")
            codes = [self._code(s, where=f"subjects[{i}]") for i, s in enumerate(subjects)]
        except Refused as exc:
            return self._refused(request, exc)
        states = await self.reader().subjects(codes)
        batch_id = uuid.uuid4().hex
        results = [self._checked(request, c, s, matter, at, batch_id) for c, s in zip(codes, states)]
        unknown = [(c, doc) for c, s, doc in zip(codes, states, results) if s is None]
        if unknown:
            await self._with_parked([c for c, _ in unknown], [doc for _, doc in unknown])
        pipeline = await self.pipeline()
        metrics.CHECK_SECONDS.labels("batch").observe(time.perf_counter() - started)
        return _json({"matter": matter, "at": day_of(at), "batch_id": batch_id, "pipeline": pipeline,
                      "results": results})

    async def _with_parked(self, codes: list[str], docs: list[dict]) -> None:
        """``parked`` on the answers for codes no subject has: the records that wait for the registry
        under them (docs/checks.md). ``no_record`` then means not yet, not nothing."""
        counts = await self.reader().parked_counts(codes)
        for code, doc in zip(codes, docs):
            if counts.get(code):
                doc["parked"] = counts[code]

    PIPELINE_TTL_S = 1.0
    """How long the pipeline's state read for the answers is reused (the workers' heartbeats come
    every few seconds)."""

    async def pipeline(self) -> dict:
        """How current the states the answers read are (docs/checks.md, ``pipeline``): ``state`` ok,
        stalled (an agent retries one batch, or events wait and none was processed, for
        ``stall_after_s``), no worker running, or no timer running (no worker fires the deadlines:
        a listing period that ended is not applied; the answer projects it, ``projected``); and
        ``inputs_waiting``, the inputs the workers had not processed at their last heartbeat (None
        when no worker runs or one does not say). Seen (an audit): with the worker stopped and a
        severe penalty waiting, the answer was ``no_record`` with nothing to tell it from a current
        one, and /health answered 200."""
        now = time.monotonic()
        if self._pipeline_read is not None and now - self._pipeline_read[0] < self.PIPELINE_TTL_S:
            return self._pipeline_read[1]
        from ops.inspect import consumption, running_workers, timer_and_waiting

        reader = self.reader()
        workers = await running_workers(reader.redis, await reader.keys())
        state, _ = consumption(workers, self._heartbeats.late(workers))
        timer, waiting = timer_and_waiting(workers)
        if state == "ok" and not timer:
            state = "no timer running"
        doc = {"state": state, "inputs_waiting": waiting}
        self._pipeline_read = (now, doc)
        return doc

    # --- the check, its audit record and its answer -----------------------------------------
    def _checked(self, request: web.Request, code: str, state: dict | None, matter: str, at: str,
                 batch_id: str | None) -> dict:
        client = self.client_of(request)
        now_ms = clock.now_ms()
        result: CheckResult = check(state, matter, at, self.rules, subject=normalise_code(code) or code)
        check_id = uuid.uuid4().hex
        metrics.CHECKS.labels(matter, result.outcome).inc()
        if self.audit is not None:
            self.audit.add(CheckRecord(
                check_id=check_id, client=client.name, checked_at_ms=now_ms,
                subject=str(state.get("id")) if state else (normalise_code(code) or code),
                subject_kind=str(state.get("id_kind") or "unknown") if state else "unknown",
                matter=matter, at=result.at, outcome=result.outcome,
                measures=tuple(m.id for m in result.measures) + tuple(m.id for m in result.incentives),
                rules_version=result.rules_version, batch_id=batch_id))
        doc = to_builtins(result)
        doc["check_id"] = check_id
        doc["checked_at"] = dt.datetime.fromtimestamp(now_ms / 1000, clock.CHINA).isoformat(timespec="milliseconds")
        if not client.may("personal"):
            doc = public_view(doc, natural_person=bool(state and is_natural_person(state)))
        return doc

    def _refused(self, request: web.Request, exc: Refused) -> web.Response:
        message = exc.message if self.client_of(request).may("personal") else redact_personal(exc.message)
        return _json({"error": exc.error, "message": message}, exc.status)

    # --- parameters -----------------------------------------------------------------------
    @staticmethod
    def _code(raw: Any, where: str = "subject") -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise Refused(400, "bad_request", f"{where}: a subject code is required (a USCC, a resident ID number "
                                              "or a legacy number)")
        if len(raw) > MAX_CODE_CHARS:
            raise Refused(400, "bad_request", f"{where}: at most {MAX_CODE_CHARS} characters")
        return raw.strip()

    def _matter(self, raw: Any) -> str:
        known = self.rules.matters
        if not isinstance(raw, str) or raw not in known:
            what = "matter is required" if raw in (None, "") else "unknown matter"
            names = ", ".join(sorted(known)) or "none (the rules file has no [matter.*])"
            raise Refused(400, "bad_request", f"{what}; one of: {names}")
        return raw

    @staticmethod
    def _instant(raw: Any) -> str:
        """The instant asked about (ISO date or date-time; default now), as the China date."""
        if raw is None or raw == "":
            return clock.today()
        if not isinstance(raw, str):
            raise Refused(400, "bad_request", "at: an ISO date or date-time (YYYY-MM-DD[THH:MM[:SS][+08:00]])")
        try:
            return day_of(raw)
        except ValueError as exc:
            raise Refused(400, "bad_request", at_problem(raw, exc)) from None

    @staticmethod
    async def _body(request: web.Request) -> dict:
        try:
            body = orjson.loads(await request.read())
        except web.HTTPRequestEntityTooLarge:
            raise Refused(413, "too_large", "the body is larger than the API takes (1 MiB)") from None
        except orjson.JSONDecodeError:
            raise Refused(400, "bad_request", "the body must be a JSON object: {\"matter\": ..., \"at\": ..., "
                                              "\"subjects\": [...]}") from None
        if not isinstance(body, dict):
            raise Refused(400, "bad_request", "the body must be a JSON object: {\"matter\": ..., \"subjects\": [...]}")
        return body
