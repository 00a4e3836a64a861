"""The clock: China time, dates of instants, due instants, and the bound on event time.

The one module that knows the time zone of the rules and the one place the wall clock is read
(``now_ms``). Dates in the rules are calendar dates in China Standard Time (UTC+8, no daylight
saving); an instant falls on the date it has in China, and a date falls due at its 00:00 there.

Event time is the decision's own date (RULES.md 3a). Arrival time (the Kafka message timestamp)
is for timeliness and audit only, and nothing may lie in the future of the wall clock: a message
stamped, or a decision dated, later than ``now + FUTURE_TOLERANCE_MS`` is refused at ingest.
"""

from __future__ import annotations

import datetime as dt
import time
from functools import lru_cache
from typing import Final

CHINA: Final = dt.timezone(dt.timedelta(hours=8), "CST")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_CHINA_OFFSET_MS: Final = int(CHINA.utcoffset(None).total_seconds() * 1000)
# How far a producer's clock may run ahead of ours before its stamps count as "in the future".
FUTURE_TOLERANCE_MS: Final = 5 * 60 * 1000


_offset_ms = 0
_correction_ms = 0


def set_offset(seconds: float) -> None:
    """Shift this process's clock (the ``clock_offset_s`` setting: tests of a skewed clock)."""
    global _offset_ms
    _offset_ms = int(seconds * 1000)


def follow_reference(reference_ms: int, tolerance_ms: int, host_ms: int | None = None) -> int:
    """Compare the host's clock with the reference (Redis's ``TIME``, which every worker shares) and
    return how far the host's runs ahead of it (ms; negative: behind). Beyond ``tolerance_ms`` either
    way, :func:`now_ms` follows the reference from now on: a worker whose clock is off would refuse
    correct inputs as dated in the future, accept some that are, and fire deadlines early or late
    (an audit of two workers whose clocks differed); within it, the host's own clock is kept. The
    test shift (:func:`set_offset`) is not corrected."""
    global _correction_ms
    host = int(time.time() * 1000) if host_ms is None else host_ms
    skew = host - reference_ms
    _correction_ms = skew if abs(skew) > tolerance_ms else 0
    return skew


def correction_ms() -> int:
    """How far :func:`now_ms` is set back from the host's clock to follow the reference (0: not)."""
    return _correction_ms


def now_ms() -> int:
    """The wall clock, in ms since the epoch (the only read of it in the rules' code path): the host's,
    or the reference's when the host's is off by more than the tolerance (:func:`follow_reference`)."""
    return int(time.time() * 1000) - _correction_ms + _offset_ms


def china_date(value: dt.datetime) -> dt.date:
    """The China date of a date-time: an aware one converted to China time, a naive one taken to
    be China time already (``2026-12-03T20:00:00Z`` is 2026-12-04 in China)."""
    if value.tzinfo is not None:
        try:
            value = value.astimezone(CHINA)
        except OverflowError:  # 9999-12-31T23:00-12:00 is past the last date a datetime holds
            raise ValueError(f"{value.isoformat()} in China time is outside the years 1-9999") from None
    return value.date()


def date_of_text(text: str) -> dt.date:
    """The date a field's text names: ``YYYY-MM-DD``, or a date-time in ISO form, whose date is
    its China date (:func:`china_date`). A date-time that is not ISO after its date (a Java
    ``2026-12-03 00:00:00.0`` is) counts by its first ten characters, as written."""
    if len(text) > 10 and text[10] in "T ":
        try:
            return china_date(dt.datetime.fromisoformat(text))
        except ValueError:
            text = text[:10]
    return dt.date.fromisoformat(text)


@lru_cache(maxsize=4096)
def _date_of_day(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def date_of_ms(ms: int) -> str:
    """The China date of an instant, "YYYY-MM-DD"; out-of-range instants clamp to 0001/9999."""
    try:
        return _date_of_day((int(ms) + _CHINA_OFFSET_MS) // 86_400_000)
    except (OverflowError, ValueError):
        return "0001-01-01" if ms < 0 else "9999-12-31"


@lru_cache(maxsize=65536)
def due_ms(date: str | dt.date) -> int:
    """The instant a date falls due: its start (00:00) in China Standard Time, in ms. (China has
    kept UTC+8 all year since 1991; cached: the dates a worker meets are a few thousand.)"""
    d = date if isinstance(date, dt.date) else dt.date.fromisoformat(date)
    return (d.toordinal() - _EPOCH_ORDINAL) * 86_400_000 - _CHINA_OFFSET_MS


def today(at_ms: int | None = None) -> str:
    """Today's date in China (or the date of ``at_ms``)."""
    return date_of_ms(now_ms() if at_ms is None else at_ms)


def latest_acceptable_date(at_ms: int | None = None) -> dt.date:
    """The last date an event may name: today in China, with the clock tolerance."""
    return dt.date.fromisoformat(date_of_ms((now_ms() if at_ms is None else at_ms) + FUTURE_TOLERANCE_MS))


def is_future_ms(ms: int, at_ms: int | None = None) -> bool:
    """A message stamp later than the wall clock plus the tolerance."""
    return ms > (now_ms() if at_ms is None else at_ms) + FUTURE_TOLERANCE_MS
