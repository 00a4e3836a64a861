"""Logging: structlog for our code, the stdlib loggers (aiokafka, faust, mode) routed through the
same processors, one line per event on stderr.

- JSON lines when stderr is not a terminal (or ``fmt="json"``), the console renderer on a
  terminal (or ``fmt="console"``); timestamps ISO 8601 UTC.
- Natural persons' ID numbers are masked everywhere (RULES.md section 7): in every string of the
  event dict (keys and values, nested dicts/lists included), in stdlib messages after their
  ``%`` arguments are applied, in exception text, and finally in the rendered line itself (which
  also catches IDs hidden in ints, reprs and tracebacks).

Usage::

    from creditstream.logs import configure, get_logger
    configure(settings.log_level, settings.log_format)
    log = get_logger(__name__)
    log.info("decision.applied", subject=code, offset=42)
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from domain.identifiers import mask_ids_in_text

__all__ = ["configure", "get_logger", "mask_personal_data", "mask_value", "NOISY_LOGGERS"]

NOISY_LOGGERS = ("aiokafka", "faust", "mode", "kafka")
"""Third-party loggers kept at WARNING (or above) unless the level is DEBUG."""

_HANDLER_MARK = "_creditstream_handler"
_configured = False


# ------------------------------------------------------------------------------------------
# masking


def mask_value(value: Any) -> Any:
    """``value`` with ID numbers masked in every string (and in ints that read as one), recursing
    into dicts, lists, tuples and sets; other objects are returned as they are (the rendered line
    is masked too, where they end up as strings)."""
    if isinstance(value, str):
        return mask_ids_in_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**16:
        # an all-digit ID number logged as an int: becomes the masked string
        text = str(value)
        masked = mask_ids_in_text(text)
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
        return mask_ids_in_text(rendered)
    if isinstance(rendered, (bytes, bytearray)):
        return mask_ids_in_text(bytes(rendered).decode("utf-8", "replace"))
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


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    name = str(level).strip().upper()
    name = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(name, name)
    number = logging.getLevelName(name)
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure(level: str | int = "INFO", fmt: str = "auto", *, stream: TextIO | None = None) -> None:
    """Set up structlog and the stdlib root logger. Safe to call again (replaces its handler).

    ``fmt``: ``auto`` (console on a terminal, JSON otherwise), ``console`` or ``json``.
    ``stream``: where lines go (default: the current ``sys.stderr``).
    """
    global _configured
    if fmt not in ("auto", "console", "json"):
        raise ValueError(f"log format {fmt!r}: auto, console or json")
    lvl = _level_number(level)
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
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(lvl)
    third_party = lvl if lvl <= logging.DEBUG else max(lvl, logging.WARNING)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(third_party)

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
