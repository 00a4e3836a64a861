"""Working days (工作日) and calendar arithmetic (RULES.md section 6).

Deadlines count working days: weekends and public holidays are excluded, the
official make-up working days (调休, often a Saturday or Sunday) are included.
The holiday tables come from the ``chinesecalendar`` package (the years it ships)
plus extra data that operators add as the State Council publishes each year's
table. A date beyond all known tables never raises: it uses the fallback rule.

Pure module: the only I/O is ``WorkingCalendar.from_file`` reading a TOML file.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable
from os import PathLike
from typing import Final

import chinese_calendar

from domain.types import Doc

__all__ = ["WorkingCalendar", "FIXED_HOLIDAYS", "add_months", "add_years"]

# Statutory holidays on fixed Gregorian dates (no lunar calendar needed):
# New Year's Day (元旦), Labour Day (劳动节), National Day (国庆节) Oct 1-3.
FIXED_HOLIDAYS: Final = frozenset({(1, 1), (5, 1), (10, 1), (10, 2), (10, 3)})
# From 2025 (全国年节及纪念日放假办法, 2024 revision) Labour Day is two days: May 1 and 2.
FIXED_HOLIDAYS_FROM_2025: Final = FIXED_HOLIDAYS | {(5, 2)}


def _as_date(d: dt.date) -> dt.date:
    # A datetime is a date, but hashes differently: key caches by the plain date.
    return d.date() if isinstance(d, dt.datetime) else d


class WorkingCalendar:
    """Knows which days are working days.

    For a year covered by a table (chinesecalendar's or the extra data): a date
    listed as a holiday is not a working day, a date listed as a make-up working
    day (调休) is one, any other date is a working day if it is Monday-Friday.

    Fallback, for a year no table covers (``is_fallback``): Monday-Friday are
    working days, Saturday and Sunday are not, and the fixed-date statutory
    holidays ``FIXED_HOLIDAYS`` (Jan 1, May 1, Oct 1-3; May 2 too from 2025) are not. Lunar holidays
    (Spring Festival etc.) and 调休 are unknown there, so deadlines in such years
    are approximate until the year's table is added.

    Extra data overrides chinesecalendar for the same date. A year counts as
    covered when the extra data lists at least one date in it.
    """

    def __init__(
        self,
        extra_holidays: Iterable[dt.date] = (),
        extra_workdays: Iterable[dt.date] = (),
    ) -> None:
        extra_holidays = {_as_date(d) for d in extra_holidays}
        extra_workdays = {_as_date(d) for d in extra_workdays}
        both = extra_holidays & extra_workdays
        if both:
            raise ValueError("dates listed as both holiday and workday: "
                             + ", ".join(d.isoformat() for d in sorted(both)))
        self._holidays = (set(chinese_calendar.holidays) - extra_workdays) | extra_holidays
        self._workdays = (set(chinese_calendar.workdays) - extra_holidays) | extra_workdays
        self._covered_years = frozenset(d.year for d in self._holidays | self._workdays)
        self._cache: dict[dt.date, bool] = {}
        self._prefix_cache: dict[int, list[int]] = {}

    @classmethod
    def from_file(cls, path: str | PathLike[str]) -> WorkingCalendar:
        """Build a calendar from chinesecalendar plus a TOML file of extra dates.

        Format: one table per kind, one key per year, a list of dates (quoted
        ISO strings or TOML dates)::

            [holidays]   # the format; a year past the built-in tables is listed whole
            2027 = ["2027-01-01", "2027-02-06", "2027-02-07", "2027-05-01", "2027-05-02",
                    "2027-10-01", "2027-10-02", "2027-10-03"]

            [workdays]   # make-up working days (调休)
            2027 = ["2027-02-14"]

        Both tables are optional. A date whose year differs from its key raises
        ValueError (it is almost always a typo). So does a year past chinesecalendar's table whose
        holidays leave out a fixed-date holiday (``FIXED_HOLIDAYS``): a year the file lists counts
        as covered, and the fallback's fixed holidays no longer apply to it, so a table of part of
        a year (its first half, say) would make 1 October a working day.
        """
        with open(path, "rb") as f:
            data = tomllib.load(f)
        unknown = sorted(set(data) - {"holidays", "workdays"})
        if unknown:
            raise ValueError(f"{path}: unknown table(s) {', '.join(f'[{t}]' for t in unknown)}: "
                             "only [holidays] and [workdays]")
        holidays = _dates_by_year(data.get("holidays", {}), "holidays")
        workdays = _dates_by_year(data.get("workdays", {}), "workdays")
        builtin, listed = {d.year for d in chinese_calendar.holidays}, set(holidays)
        for year in sorted({d.year for d in holidays + workdays} - builtin):
            fixed = FIXED_HOLIDAYS_FROM_2025 if year >= 2025 else FIXED_HOLIDAYS
            missing = sorted(day for m, d in fixed if (day := dt.date(year, m, d)) not in listed)
            if missing:
                raise ValueError(f"{path}: [holidays] {year} leaves out {', '.join(d.isoformat() for d in missing)}: "
                                 f"{year} is past the built-in tables, so the file's table for it must be the "
                                 f"whole year (once listed, a year no longer gets the fallback's fixed holidays)")
        return cls(extra_holidays=holidays, extra_workdays=workdays)

    @property
    def covered_years(self) -> frozenset[int]:
        """Years with a holiday table (chinesecalendar's or the extra data)."""
        return self._covered_years

    def is_fallback(self, d: dt.date) -> bool:
        """True if ``d`` falls in a year no table covers, so the fallback rule applies."""
        return d.year not in self._covered_years

    def uncovered_years(self, today: dt.date) -> list[int]:
        """This year and the next, those without a holiday table: deadlines counted into them use
        the fallback (weekends and the fixed-date holidays; Spring Festival and the 调休 unknown)."""
        return [y for y in (today.year, today.year + 1) if y not in self._covered_years]

    def is_workday(self, d: dt.date) -> bool:
        """True if ``d`` is a working day. Cached per date."""
        d = _as_date(d)
        cached = self._cache.get(d)
        if cached is None:
            cached = self._cache[d] = self._compute_is_workday(d)
        return cached

    def _compute_is_workday(self, d: dt.date) -> bool:
        if d in self._workdays:
            return True
        if d in self._holidays:
            return False
        if self.is_fallback(d) and (d.month, d.day) in (FIXED_HOLIDAYS_FROM_2025 if d.year >= 2025 else FIXED_HOLIDAYS):
            return False
        return d.weekday() < 5

    def add_workdays(self, d: dt.date, n: int) -> dt.date:
        """The n-th working day after ``d`` (n >= 0).

        n == 0 gives ``d`` itself if it is a working day, else the next one.
        Example: a decision on Friday 2024-09-27 published within 7 working days
        must be out by ``add_workdays(date(2024, 9, 27), 7)``.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        d = _as_date(d)
        if n == 0:
            while not self.is_workday(d):
                d += _ONE_DAY
            return d
        while n:
            d += _ONE_DAY
            if self.is_workday(d):
                n -= 1
        return d

    def workdays_between(self, start: dt.date, end: dt.date) -> int:
        """Number of working days in (start, end]; 0 if end <= start. O(years), not O(days):
        per-year running counts are computed once per year and cached."""
        start, end = _as_date(start), _as_date(end)
        if end <= start:
            return 0
        if start.year == end.year:
            return self._upto(end) - self._upto(start)
        total = self._year_prefix(start.year)[-1] - self._upto(start)
        for year in range(start.year + 1, end.year):
            total += self._year_prefix(year)[-1]
        return total + self._upto(end)

    def _upto(self, d: dt.date) -> int:
        """Working days from 1 January of d's year to d, inclusive. (The day of the year from the
        ordinals: ``timetuple().tm_yday`` built a struct_time per call, a tenth of a rules step.)"""
        year = d.year
        return self._year_prefix(year)[d.toordinal() - _jan_1_ordinal(year) + 1]

    def _year_prefix(self, year: int) -> list[int]:
        """p[i] = working days among the first i days of ``year`` (p[0] = 0, p[-1] = the year's total)."""
        prefix = self._prefix_cache.get(year)
        if prefix is None:
            prefix = [0]
            d = dt.date(year, 1, 1)
            while d.year == year:
                prefix.append(prefix[-1] + self.is_workday(d))
                d += _ONE_DAY
            self._prefix_cache[year] = prefix
        return prefix


_ONE_DAY: Final = dt.timedelta(days=1)


def coverage_warning(cal: WorkingCalendar, today: dt.date) -> str | None:
    """What an operator must be told when this year or the next has no holiday table (a sentence),
    or None. ``creditstream config check`` prints it and a worker logs it when it starts."""
    years = cal.uncovered_years(today)
    if not years:
        return None
    named = " and ".join(str(y) for y in years)
    return (f"calendar: no working-day table for {named}; deadlines counted into {'it' if len(years) == 1 else 'them'} "
            f"(objections, feedback, 7-working-day timeliness) skip only weekends and the fixed-date holidays, not "
            f"Spring Festival or the make-up working days (调休): add the State Council's table in a calendar file "
            f"(CREDITSTREAM_CALENDAR_FILE, docs/operations.md \"Extend the calendar\") or upgrade chinesecalendar")


def _dates_by_year(table: Doc, kind: str) -> list[dt.date]:
    """The dates of a ``[holidays]`` or ``[workdays]`` table (``YEAR = [dates]``); ValueError names the
    table, the year and the value for anything else."""
    if not isinstance(table, dict):
        raise ValueError(f"[{kind}] must be a table of YEAR = [\"YYYY-MM-DD\", ...]")
    dates = []
    for year, values in table.items():
        if not isinstance(values, list):
            raise ValueError(f"[{kind}] {year}: a list of dates is expected, e.g. {year} = [\"{year}-01-01\"], "
                             f"not {values!r}")
        for value in values:
            try:
                d = _as_date(value) if isinstance(value, dt.date) else dt.date.fromisoformat(value)
            except (TypeError, ValueError):
                raise ValueError(f"[{kind}] {year}: {value!r} is not a date (YYYY-MM-DD)") from None
            if str(d.year) != str(year):
                raise ValueError(f"[{kind}] {year}: {d.isoformat()} is not in {year}")
            dates.append(d)
    return dates


def _jan_1_ordinal(year: int) -> int:
    """The proleptic Gregorian ordinal of 1 January of ``year`` (``date(year, 1, 1).toordinal()``)."""
    y = year - 1
    return y * 365 + y // 4 - y // 100 + y // 400 + 1


_MONTH_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month - 1]


def add_months(d: dt.date, n: int) -> dt.date:
    """``d`` plus n calendar months (n may be negative), clamped to the month end.

    Used for publicity periods (公示期): 2024-01-31 + 1 month = 2024-02-29,
    2024-03-31 + 1 month = 2024-04-30.

    Remembered (:data:`_ADDED`): the rules step adds the same few periods to the same decision dates
    over and over, and a date's fields and a new date cost ~2,000 instructions from compiled code."""
    if n == 0:
        return d
    by_date = _ADDED.get(n)
    if by_date is None:
        by_date = _ADDED[n] = {}
    out = by_date.get(d)
    if out is None:
        if len(by_date) >= DATES_KEPT:
            by_date.clear()
        months = d.year * 12 + (d.month - 1) + n
        year, month = divmod(months, 12)
        month += 1
        out = by_date[d] = dt.date(year, month, min(d.day, _days_in_month(year, month)))
    return out


DATES_KEPT: Final = 65536
"""The most dates :func:`iso` remembers, and :func:`add_months` for each number of months; each
table is emptied when full. Measured: 10,000 dates (27 years of decision dates) with ten periods
each held 7.4 MB (tracemalloc)."""
# months -> date -> that date plus the months. Plain dicts of dates, no tuple keys: nothing in them
# for the cyclic collector to walk (sinks/keys.py storage_id says why not lru_cache)
_ADDED: Final[dict[int, dict[dt.date, dt.date]]] = {}
_ISO: Final[dict[dt.date, str]] = {}


def iso(d: dt.date) -> str:
    """``d.isoformat()``, remembered: the rules step writes the same dates as text for every list
    change and publicity fact, and ``isoformat`` costs ~3,400 instructions from compiled code
    (CPython formats it with ``PyUnicode_FromFormat``)."""
    out = _ISO.get(d)
    if out is None:
        if len(_ISO) >= DATES_KEPT:
            _ISO.clear()
        out = _ISO[d] = d.isoformat()
    return out


def add_years(d: dt.date, n: int) -> dt.date:
    """``d`` plus n years; Feb 29 becomes Feb 28 in a non-leap target year."""
    return add_months(d, 12 * n)
