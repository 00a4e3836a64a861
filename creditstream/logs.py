"""Logging: structlog for our code, the stdlib loggers (aiokafka, faust, mode) routed through the
same processors, one line per event on stderr.

- JSON lines when stderr is not a terminal (or ``fmt="json"``), the console renderer on a
  terminal (or ``fmt="console"``); timestamps ISO 8601 UTC.
- Natural persons' ID numbers are masked everywhere (RULES.md section 7): in every string of the
  event dict (keys and values, nested dicts/lists included), in stdlib messages after their
  ``%`` arguments are applied, in exception text, and finally in the rendered line itself (which
  also catches IDs hidden in ints, reprs and tracebacks). :func:`mask_text` says which: 18-char
  resident ID numbers (``domain.identifiers.mask_ids_in_text``), 15-digit legacy ID numbers
  (first-generation cards), and both written in groups with spaces or dashes.

Usage::

    from creditstream.logs import configure, get_logger
    configure(settings.log_level, settings.log_format, libraries=settings.libraries_log_level)
    log = get_logger(__name__)
    log.info("decision.applied", subject=code, offset=42)
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from domain.identifiers import GROUPED_VIEW, grouped_id_spans, looks_like_legacy_id, mask_ids_in_text, mask_spans

__all__ = ["configure", "get_logger", "mask_personal_data", "mask_text", "mask_value", "NOISY_LOGGERS"]

NOISY_LOGGERS = ("aiokafka", "faust", "mode", "kafka")
"""Third-party loggers: at WARNING (or the level, if higher) unless ``configure``'s ``libraries`` says
otherwise (setting ``libraries_log_level``), whatever creditstream's own level: at DEBUG, aiokafka
writes a few lines for every fetch and produce (36,000 in 20 s at 1,000 inputs/s), which took a
worker from 53% to 91% busy and its latency p99 from 88 to 317 ms (docs/performance.md)."""

TRANSIENT_CLIENT_ERRORS = (
    "NotLeaderForPartitionError",      # a leader moved or is being elected (new topic, broker restart)
    "not found in cluster metadata",   # a topic just created, its metadata not yet everywhere
    "Unable connect to",               # a broker restarting; the client reconnects
    "Heartbeat session expired",       # the group rebalances; the consumer re-joins
    "Marking the coordinator dead",
    "Unable to update metadata",
    "Failed fetch offsets",
    "GroupCoordinatorNotAvailableError",  # __consumer_offsets being created or moved
    "NotCoordinatorForGroupError",
    "GroupLoadInProgressError",
    "CoordinatorLoadInProgressError",
    "NodeNotReadyError",               # a broker restarting (fetch, heartbeat, coordinator look-up)
    "will rejoin",                     # OffsetCommit failed after a rebalance (IllegalGeneration, UnknownMemberId)
    "Error sending HeartbeatRequest",  # the coordinator moved or restarts: marked dead, looked up again
    "RequestTimedOutError",            # a fetch of a consumer paused (GC, a frozen VM) or of a slow broker
)
"""aiokafka logs these at ERROR although it retries them itself and they heal in seconds; the
worker's own counters, /health (``stall_after_s``) and alerts say when one does not."""

REFUSED_BY_THE_BROKER = (
    "SaslAuthenticationFailed",        # the credentials (a password rotated on the broker, not here)
    "AuthenticationFailedError",
    "UnsupportedSaslMechanismError",
    "IllegalSaslStateError",
    "CERTIFICATE_VERIFY_FAILED",       # the broker's certificate is not trusted (renewed by another CA)
)
"""Why a connect failed that no retry heals, although the line starts "Unable connect to": these stay
at ERROR."""


LEAKED_CLIENT_CONNECTION = "Unclosed AIOKafkaConnection"
"""What aiokafka's connection says (through the event loop's exception handler, on the ``asyncio``
logger, at ERROR) when it is collected while still open: a connection that a client dropped during a
start or a stop racing a metadata refresh (aio-libs/aiokafka#715). The connection closes its socket
itself as it says so; nothing is lost or left open. Seen once at a worker's start on Apache Kafka (CI,
two workers creating the same topics at once), not reproduced in 14 runs after."""


class TransientClientErrors(logging.Filter):
    """Logs aiokafka's self-healing errors (:data:`TRANSIENT_CLIENT_ERRORS`, and
    :data:`LEAKED_CLIENT_CONNECTION` from the event loop) at WARNING, so that ERROR in a worker's log
    means something an operator must look at."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR:
            if record.name.startswith("aiokafka"):
                text = record.getMessage()
                if (any(marker in text for marker in TRANSIENT_CLIENT_ERRORS)
                        and not any(marker in text for marker in REFUSED_BY_THE_BROKER)):
                    record.levelno, record.levelname = logging.WARNING, "WARNING"
            elif record.name == "asyncio" and record.getMessage().startswith(LEAKED_CLIENT_CONNECTION):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


REPEAT_WINDOW_S = 10.0
"""How often one line the Kafka client repeats word for word is logged (:class:`RepeatedClientLines`)."""


class RepeatedClientLines(logging.Filter):
    """The Kafka client logs the same failure at every retry, dozens of times a second: a worker whose
    credentials the broker refuses (a password rotated there, an ACL revoked) or whose broker is down
    wrote 3,500 lines in 20 s ("Unable connect to node ... SaslAuthenticationFailed", "Failed fetch
    messages ... NodeNotReadyError", "Unable to update metadata", ...). Its warnings and errors are
    logged at most once per :data:`REPEAT_WINDOW_S` for each text, word for word: the first at once,
    the next after the window with how many like it were left out meanwhile."""

    MAX_KEYS = 1000

    def __init__(self, window_s: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window_s, self.clock = window_s, clock
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # -> [logged at, left out since]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith("aiokafka"):
            return True
        text = record.getMessage()
        key = (record.name, record.levelno, text)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg, record.args = (f"{text} (and {int(seen[1])} more like it in the last {now - seen[0]:.0f} s, "
                                       "not logged)"), None
        if len(self._seen) >= self.MAX_KEYS:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
        self._seen[key] = [now, 0]
        return True


SAID_IN_ONE_LINE = "_creditstream_said_in_one_line"
"""The mark (an attribute) of an exception that stops a worker and that its own log line has said whole:
:func:`said_in_one_line`."""


class Repeats:
    """One of creditstream's own lines that repeats while a condition lasts (a Redis outage: the timer's
    round every second, each agent's position check every 2 s): logged the first time, then at most
    once every ``every_s`` with how many were not, and :meth:`ended` says once that it is over. Seen
    (an audit): ~6,000 lines an hour per worker during an outage, where the Kafka client's own lines
    are collapsed (:class:`RepeatedClientLines`)."""

    def __init__(self, every_s: float = 60.0):
        self.every_s = every_s
        self.count = 0        # occurrences since the condition began
        self.unlogged = 0     # of them, not logged since the last line
        self._last = 0.0

    def due(self) -> dict[str, int] | None:
        """Count one occurrence; the fields to log it with (``repeated``: occurrences not logged since
        the last line) when it is to be logged, else None."""
        now = time.monotonic()
        self.count += 1
        if self.count > 1 and now - self._last < self.every_s:
            self.unlogged += 1
            return None
        fields = {"repeated": self.unlogged} if self.count > 1 else {}
        self._last, self.unlogged = now, 0
        return fields

    def ended(self) -> int:
        """The condition is over: how many times it occurred (0: it had not begun); the count restarts."""
        count, self.count, self.unlogged = self.count, 0, 0
        return count


def said_in_one_line(exc: BaseException) -> BaseException:
    """Marks ``exc`` as said whole in one line (a refusal, a state not from this log): the records that
    carry it with its traceback are left out (:class:`TracebacksOfWhatWasSaid`). Returns ``exc``."""
    setattr(exc, SAID_IN_ONE_LINE, True)
    return exc


class TracebacksOfWhatWasSaid(logging.Filter):
    """Faust logs the exception a worker stops on once more, with its traceback ("Crashed
    reason=..."), after the worker's own line has said what happened and what to do: a reader of the
    log took the traceback for a bug. A record whose exception is marked by :func:`said_in_one_line`
    is left out; every other traceback stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if isinstance(record.exc_info, tuple) else None
        return not (exc is not None and getattr(exc, SAID_IN_ONE_LINE, False))


_SASL_PAYLOAD = re.compile(r"(sasl_auth_bytes=).*?(?=(?:, session_lifetime_ms=-?\d+)?\)$)", re.DOTALL)


class WithheldSaslPayloads(logging.Filter):
    """The Kafka client, at DEBUG (``libraries_log_level``), logs every request it sends and every
    response, the SASL authentication's among them: with ``sasl_mechanism = PLAIN`` the request's
    ``sasl_auth_bytes`` are the user name and the password in the clear (with SCRAM, the proofs).
    The payload is replaced by ``<withheld>`` before any handler sees the record (a filter of the
    client's connection logger, where those lines come from)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "sasl_auth_bytes=" in text:
            record.msg, record.args = _SASL_PAYLOAD.sub(r"\1<withheld>", text), None
        return True


_HANDLER_MARK = "_creditstream_handler"
_configured = False


# ------------------------------------------------------------------------------------------
# masking

# A 15-digit legacy ID number written without separators (the forms written in groups are the pure
# core's: domain.identifiers.GROUPED_ID, GROUPED_LEGACY_ID), searched in the view of the text
# (``GROUPED_VIEW``: full-width digits, X and dashes one char for one, so positions in the view are
# positions in the text).
_LEGACY_ID = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{6})(\d{3})(?![0-9A-Za-z])", re.ASCII)


def mask_text(text: str) -> str:
    """``text`` with every personal ID number masked as ``mask_id`` does (first 3 and last char
    kept; in grouped forms the separators are kept too):

    * 18-char resident ID numbers (``mask_ids_in_text``: every 18-char window, glued or not);
    * 15-digit legacy ID numbers: exactly 15 digits, not touching another ASCII letter or digit
      (so never inside a USCC or a longer number), a division prefix 11-65 and a valid 19YYMMDD
      birth date in positions 7-12. Business registration numbers (15 digits too; not personal
      data) whose middle happens to read as such a date are masked as well: accepted, erring on
      the side of masking;
    * both written in groups with spaces or dashes: ``110105 19491231 002X``,
      ``110105-19491231-002X``, ``110105 491231 002`` (the 18-char form masked when
      ``mask_ids_in_text`` would mask it written without separators): the pure core's
      ``domain.identifiers.grouped_id_spans``, the very search the API's redaction uses.
    """
    text = mask_ids_in_text(text)
    view = text.translate(GROUPED_VIEW)
    # (start, end) spans whose digits go, but the first 3 and last
    hidden = [m.span() for m in _LEGACY_ID.finditer(view) if looks_like_legacy_id(m.group(0))]
    hidden += grouped_id_spans(view)
    return mask_spans(text, view, hidden)


def mask_value(value: Any) -> Any:
    """``value`` with ID numbers masked in every string (and in ints that read as one), recursing
    into dicts, lists, tuples and sets; other objects are returned as they are (the rendered line
    is masked too, where they end up as strings)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**14:
        # an all-digit ID number (18 or 15 digits) logged as an int: becomes the masked string
        text = str(value)
        masked = mask_text(text)
        return value if masked == text else masked
    if isinstance(value, Mapping):
        return {mask_value(k): mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(mask_value(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(mask_value(v) for v in value)
    return value


def mask_personal_data(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask ID numbers in every key and value of the event dict."""
    out: dict[str, Any] = {}
    for key, value in event_dict.items():
        if key == "_record" or key == "exc_info":
            out[key] = value  # the stdlib record / exception object: masked once rendered
        else:
            out[mask_value(key) if isinstance(key, str) else key] = mask_value(value)
    return out


def _mask_rendered(_logger: WrappedLogger, _method: str, rendered: Any) -> Any:
    """Last step after the renderer: mask whatever survived into the line itself."""
    if isinstance(rendered, str):
        return mask_text(rendered)
    if isinstance(rendered, (bytes, bytearray)):
        return mask_text(bytes(rendered).decode("utf-8", "replace"))
    return rendered


# ------------------------------------------------------------------------------------------
# rendering


def _json_serializer(obj: Any, **kw: Any) -> str:
    try:
        import orjson

        return orjson.dumps(obj, default=kw.get("default", str),
                            option=orjson.OPT_NON_STR_KEYS).decode()
    except ImportError:
        pass
    except TypeError:  # e.g. an int beyond 64 bits: let the stdlib do it
        pass
    return json.dumps(obj, default=kw.get("default", str), ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the *current* ``sys.stderr`` (so pytest's capture and redirections work) unless
    a stream was given."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        self._fixed = stream

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL")
"""The level names ``configure`` takes (any case; WARN and FATAL as WARNING and CRITICAL)."""


def level_problem(level: str | int) -> str | None:
    """Why ``level`` is not a level ``configure`` takes (None: it is): for ``Settings.validate``."""
    try:
        _level_number(level)
    except ValueError:
        return f"{level!r} is not one of {', '.join(LOG_LEVELS)}"
    return None


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    name = str(level).strip().upper()
    name = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(name, name)
    number = logging.getLevelName(name)
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure(level: str | int = "INFO", fmt: str = "auto", *, stream: TextIO | None = None,
              libraries: str | int | None = None) -> None:
    """Set up structlog and the stdlib root logger. Safe to call again (replaces its handler).

    ``fmt``: ``auto`` (console on a terminal, JSON otherwise), ``console`` or ``json``.
    ``stream``: where lines go (default: the current ``sys.stderr``).
    ``libraries``: the level of the :data:`NOISY_LOGGERS` (default WARNING); ``level`` if higher.
    """
    global _configured
    if fmt not in ("auto", "console", "json"):
        raise ValueError(f"log format {fmt!r}: auto, console or json")
    lvl = _level_number(level)
    third_party = max(lvl, logging.WARNING if libraries is None else _level_number(libraries))
    out = stream if stream is not None else sys.stderr
    try:
        is_tty = bool(out.isatty())
    except (AttributeError, ValueError):
        is_tty = False
    as_json = fmt == "json" or (fmt == "auto" and not is_tty)

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    renderer: Processor
    final: list[Processor]
    if as_json:
        renderer = structlog.processors.JSONRenderer(serializer=_json_serializer)
        final = [structlog.processors.StackInfoRenderer(), structlog.processors.format_exc_info,
                 structlog.processors.UnicodeDecoder()]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=is_tty)
        final = [structlog.processors.StackInfoRenderer()]

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *final,
            mask_personal_data,
            renderer,
            _mask_rendered,
        ],
    )

    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_MARK, False):
            root.removeHandler(h)
            h.close()
    handler = _StderrHandler(stream)
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(RepeatedClientLines())
    handler.addFilter(TransientClientErrors())
    handler.addFilter(TracebacksOfWhatWasSaid())
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(lvl)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(third_party)
    conn = logging.getLogger("aiokafka.conn")
    if not any(isinstance(f, WithheldSaslPayloads) for f in conn.filters):
        conn.addFilter(WithheldSaslPayloads())

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            # masked before the record leaves structlog, so other stdlib handlers (pytest's
            # caplog, a handler someone adds) never see a clear ID from our own code either
            mask_personal_data,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(name: str | None = None, **initial: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger named ``name``. Configures logging with the defaults first if nobody
    has configured structlog yet, so ID masking is never skipped by accident."""
    if not _configured and not structlog.is_configured():
        configure()
    return structlog.get_logger(name, **initial)
