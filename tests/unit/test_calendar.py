from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.calendar import WorkingCalendar, add_months, add_years


@pytest.fixture(scope="module")
def cal():
    return WorkingCalendar()


@pytest.mark.parametrize(
    "d, workday",
    [
        (date(2024, 10, 1), False),  # National Day
        (date(2024, 10, 7), False),
        (date(2024, 10, 8), True),
        (date(2024, 9, 29), True),  # Sunday make-up working day (调休)
        (date(2024, 10, 12), True),  # Saturday make-up working day
        (date(2024, 9, 28), False),  # ordinary Saturday
        (date(2024, 2, 29), True),  # leap day, a Thursday
        (date(2025, 1, 28), False),  # Spring Festival eve holiday
        (date(2025, 1, 26), True),  # Sunday make-up working day
        (datetime(2024, 10, 1, 9, 30), False),  # datetimes are taken by their date
    ],
)
def test_is_workday(cal, d, workday):
    assert cal.is_workday(d) is workday


@pytest.mark.parametrize(
    "start, n, expected",
    [
        (date(2024, 9, 27), 0, date(2024, 9, 27)),
        (date(2024, 9, 28), 0, date(2024, 9, 29)),  # Sat -> Sun make-up day
        (date(2024, 10, 1), 0, date(2024, 10, 8)),
        (date(2024, 9, 27), 1, date(2024, 9, 29)),
        (date(2024, 9, 30), 1, date(2024, 10, 8)),
        # 2025 Spring Festival: holidays Jan 28 - Feb 4, make-up days Jan 26 and Feb 8
        (date(2025, 1, 24), 1, date(2025, 1, 26)),
        (date(2025, 1, 27), 1, date(2025, 2, 5)),
        (date(2025, 1, 27), 4, date(2025, 2, 8)),
        (date(2025, 1, 24), 7, date(2025, 2, 10)),  # Jan 26, 27, Feb 5, 6, 7, 8, 10
        (date(2024, 2, 28), 1, date(2024, 2, 29)),
        (date(2024, 2, 29), 1, date(2024, 3, 1)),
    ],
)
def test_add_workdays(cal, start, n, expected):
    assert cal.add_workdays(start, n) == expected


def test_add_workdays_rejects_negative(cal):
    with pytest.raises(ValueError):
        cal.add_workdays(date(2024, 1, 2), -1)


@pytest.mark.parametrize(
    "start, end, count",
    [
        (date(2025, 1, 24), date(2025, 2, 7), 5),  # Jan 26, 27, Feb 5, 6, 7
        (date(2025, 1, 24), date(2025, 1, 24), 0),
        (date(2025, 2, 7), date(2025, 1, 24), 0),
        (date(2024, 9, 27), date(2024, 10, 8), 3),  # Sep 29 (调休), Sep 30, Oct 8
    ],
)
def test_workdays_between(cal, start, end, count):
    assert cal.workdays_between(start, end) == count


@pytest.mark.parametrize("start", [date(2024, 9, 27), date(2025, 1, 24), date(2030, 12, 27)])
@pytest.mark.parametrize("n", [1, 3, 7, 20])
def test_add_workdays_and_workdays_between_agree(cal, start, n):
    assert cal.workdays_between(start, cal.add_workdays(start, n)) == n


def test_covered_years(cal):
    assert set(range(2004, 2027)) <= cal.covered_years
    assert 2030 not in cal.covered_years


@pytest.mark.parametrize(
    "d, workday",
    [
        (date(2030, 1, 1), False),  # fixed-date holiday
        (date(2030, 1, 2), True),
        (date(2030, 5, 1), False),
        (date(2030, 10, 3), False),
        (date(2030, 10, 4), True),  # a Friday: lunar/调休 rules unknown in fallback
        (date(2030, 6, 1), False),  # Saturday
        (date(2030, 6, 3), True),
    ],
)
def test_fallback_year(cal, d, workday):
    assert cal.is_fallback(d)
    assert cal.is_workday(d) is workday


def test_fallback_never_raises(cal):
    assert cal.add_workdays(date(2030, 9, 30), 1) == date(2030, 10, 4)
    assert cal.workdays_between(date(2026, 12, 25), date(2031, 1, 10)) > 0
    assert not cal.is_fallback(date(2024, 1, 1))


def test_extra_data_from_file_overrides_fallback(tmp_path):
    path = tmp_path / "holidays.toml"
    path.write_text(
        "[holidays]\n"
        '2027 = ["2027-01-01", "2027-02-05", 2027-02-08, "2027-05-01", "2027-05-02", "2027-10-01", "2027-10-02",'
        ' "2027-10-03"]\n'  # quoted or TOML dates
        "[workdays]\n"
        '2027 = ["2027-02-07"]\n',
        encoding="utf-8",
    )
    cal = WorkingCalendar.from_file(path)
    assert 2027 in cal.covered_years
    assert not cal.is_fallback(date(2027, 3, 1))
    assert cal.is_workday(date(2027, 2, 5)) is False  # Friday holiday
    assert cal.is_workday(date(2027, 2, 7)) is True  # Sunday make-up day
    assert cal.is_workday(date(2027, 2, 8)) is False
    assert cal.add_workdays(date(2027, 2, 4), 1) == date(2027, 2, 7)
    # the built-in table still applies
    assert cal.is_workday(date(2024, 10, 1)) is False
    assert WorkingCalendar().is_workday(date(2027, 2, 5)) is True  # fallback without the file


def test_extra_data_overrides_builtin_table():
    cal = WorkingCalendar(extra_workdays=[date(2024, 10, 7)], extra_holidays=[date(2024, 10, 8)])
    assert cal.is_workday(date(2024, 10, 7))
    assert not cal.is_workday(date(2024, 10, 8))


def test_from_file_rejects_date_under_wrong_year(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[holidays]\n2027 = ["2028-01-01"]\n', encoding="utf-8")
    with pytest.raises(ValueError):
        WorkingCalendar.from_file(path)


def test_conflicting_extra_dates_rejected():
    with pytest.raises(ValueError):
        WorkingCalendar(extra_holidays=[date(2027, 1, 1)], extra_workdays=[date(2027, 1, 1)])


@pytest.mark.parametrize(
    "d, n, expected",
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 2, 29), 1, date(2024, 3, 29)),
        (date(2024, 3, 31), 1, date(2024, 4, 30)),
        (date(2024, 2, 29), 3, date(2024, 5, 29)),
        (date(2024, 11, 30), 3, date(2025, 2, 28)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2024, 5, 15), 0, date(2024, 5, 15)),
    ],
)
def test_add_months(d, n, expected):
    assert add_months(d, n) == expected


@pytest.mark.parametrize(
    "d, n, expected",
    [
        (date(2024, 2, 29), 1, date(2025, 2, 28)),
        (date(2024, 2, 29), 4, date(2028, 2, 29)),
        (date(2024, 2, 29), 3, date(2027, 2, 28)),
        (date(2023, 6, 15), 3, date(2026, 6, 15)),
    ],
)
def test_add_years(d, n, expected):
    assert add_years(d, n) == expected


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31)), st.integers(min_value=-30, max_value=2000))
def test_workdays_between_equals_counting_day_by_day(start, span):
    cal = WorkingCalendar()
    end = start + timedelta(days=span)
    naive = sum(cal.is_workday(start + timedelta(days=i)) for i in range(1, span + 1))
    assert cal.workdays_between(start, end) == naive


def _add_months_by_replace(d: date, n: int) -> date:
    """The reference: clamp to the target month's last day, found with the standard library."""
    import calendar as std

    months = d.year * 12 + (d.month - 1) + n
    year, month = divmod(months, 12)
    return d.replace(year=year, month=month + 1, day=min(d.day, std.monthrange(year, month + 1)[1]))


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)), st.integers(min_value=-240, max_value=240))
def test_add_months_equals_the_standard_librarys_month_ends(d, n):
    assert add_months(d, n) == _add_months_by_replace(d, n)


def test_the_day_arithmetic_agrees_with_the_standard_library():
    import calendar as std

    from domain.calendar import _days_in_month, _jan_1_ordinal

    for year in [*range(1, 30), *range(1890, 2110), 2400, 9999]:
        assert _jan_1_ordinal(year) == date(year, 1, 1).toordinal()
        for month in range(1, 13):
            assert _days_in_month(year, month) == std.monthrange(year, month)[1]


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31)))
def test_working_days_up_to_a_date_count_from_the_first_of_january(d):
    cal = WorkingCalendar()
    start = date(d.year, 1, 1)
    expected = sum(cal.is_workday(start + timedelta(days=i)) for i in range((d - start).days + 1))
    assert cal._upto(d) == expected


def test_fallback_labour_day_is_two_days_from_2025(cal):
    # 全国年节及纪念日放假办法 (2024 revision, in force 2025-01-01): 劳动节 May 1 and 2 (audit fix-3)
    assert cal.is_fallback(date(2028, 5, 2)) and cal.is_workday(date(2028, 5, 2)) is False
    assert cal.add_workdays(date(2028, 4, 28), 3) == date(2028, 5, 5)


def test_from_file_refuses_part_of_a_year_past_the_builtin_tables(tmp_path):
    # a year the file lists is covered: the fallback's fixed holidays stop applying to it, so a table
    # of the first half of 2027 made 1 October 2027 a working day
    path = tmp_path / "half.toml"
    path.write_text('[holidays]\n2027 = ["2027-01-01", "2027-02-05", "2027-05-01", "2027-05-02"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"2027-10-01, 2027-10-02, 2027-10-03"):
        WorkingCalendar.from_file(path)
    only_workdays = tmp_path / "workdays.toml"
    only_workdays.write_text('[workdays]\n2028 = ["2028-01-29"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[holidays\] 2028 leaves out 2028-01-01"):
        WorkingCalendar.from_file(only_workdays)
    # a year of the built-in tables may be corrected date by date
    fix = tmp_path / "fix.toml"
    fix.write_text('[workdays]\n2024 = ["2024-10-07"]\n', encoding="utf-8")
    assert WorkingCalendar.from_file(fix).is_workday(date(2024, 10, 7))


def test_the_calendar_file_example_in_the_operations_guide_loads(tmp_path):
    """docs/operations.md "Extend the calendar": its example is a file a worker accepts."""
    import re
    from pathlib import Path

    guide = (Path(__file__).parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    section = guide[guide.index("## Extend the calendar"):]
    example = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "calendar.toml"
    path.write_text(example, encoding="utf-8")
    cal = WorkingCalendar.from_file(path)
    assert 2027 in cal.covered_years and cal.is_workday(date(2027, 2, 14))


def test_a_year_without_a_table_is_reported_before_deadlines_run_into_it(tmp_path):
    from domain.calendar import coverage_warning

    cal = WorkingCalendar()
    last = max(cal.covered_years)
    assert coverage_warning(cal, date(last - 1, 6, 1)) is None
    warning = coverage_warning(cal, date(last, 12, 4))
    assert warning is not None and f"no working-day table for {last + 1};" in warning
    assert f"{last + 2} and {last + 3}" in coverage_warning(cal, date(last + 2, 1, 5))
    path = tmp_path / "calendar.toml"
    year = last + 1
    path.write_text(f'[holidays]\n{year} = ["{year}-01-01", "{year}-05-01", "{year}-05-02", "{year}-10-01", '
                    f'"{year}-10-02", "{year}-10-03"]\n', encoding="utf-8")
    assert coverage_warning(WorkingCalendar.from_file(path), date(last, 12, 4)) is None


def test_the_installed_holiday_tables_reach_the_years_the_tests_assume():
    """pyproject.toml's floor for chinesecalendar: 1.11 is the first with 2026's table (1.10 made
    Spring Festival 2026 a working day)."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    [floor] = [d for d in project["project"]["dependencies"] if d.startswith("chinesecalendar")]
    assert floor == "chinesecalendar>=1.11"
    assert WorkingCalendar().is_workday(date(2026, 2, 16)) is False and WorkingCalendar().is_workday(date(2026, 2, 14))


def _months_later(d: date, n: int) -> date:
    """add_months as it was written before it remembered its results: the reference."""
    months = d.year * 12 + (d.month - 1) + n
    year, month = divmod(months, 12)
    month += 1
    days = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31,
            30, 31][month - 1]
    return date(year, month, min(d.day, days))


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)), st.integers(-1200, 1200))
def test_add_months_remembered_gives_what_it_computes(d, n):
    # asked twice: the second answer comes from what it remembered
    assert add_months(d, n) == _months_later(d, n) == add_months(d, n)
    assert type(add_months(d, n)) is date


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)))
def test_iso_is_isoformat(d):
    from domain.calendar import iso

    assert iso(d) == d.isoformat() == iso(d)
    assert iso(datetime(d.year, d.month, d.day, 9, 30)) == datetime(d.year, d.month, d.day, 9, 30).isoformat()


def test_the_remembered_dates_are_bounded():
    import domain.calendar as calendar

    start = date(2000, 1, 1)
    for i in range(calendar.DATES_KEPT + 10):
        d = start + timedelta(days=i)
        assert calendar.iso(d) == d.isoformat()
        assert add_months(d, 7) == _months_later(d, 7)
    assert len(calendar._ISO) <= calendar.DATES_KEPT
    assert len(calendar._ADDED[7]) <= calendar.DATES_KEPT


@pytest.mark.parametrize("text, says", [
    ('[holiday]\n2030 = ["2030-01-01"]\n', r"unknown table\(s\) \[holiday\]: only \[holidays\] and \[workdays\]"),
    ('[holidays]\n2030 = ["2030-02-30"]\n', r"\[holidays\] 2030: '2030-02-30' is not a date"),
    ('[holidays]\n2030 = "2030-01-01"\n', r"\[holidays\] 2030: a list of dates is expected"),
    ('[holidays]\n2030 = [20300101]\n', r"\[holidays\] 2030: 20300101 is not a date"),
    ('[workdays]\n2026 = ["2026-01-01"]\n[holidays]\n2026 = ["2026-01-01"]\n',
     "dates listed as both holiday and workday: 2026-01-01$"),
])
def test_a_calendar_file_error_names_the_table_year_and_value(tmp_path, text, says):
    """A misspelt table was ignored without a word; a bad date said only "day is out of range for
    month" or "Invalid isoformat string: '2'" (a string iterated), naming no table, year or value."""
    path = tmp_path / "calendar.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=says):
        WorkingCalendar.from_file(path)
