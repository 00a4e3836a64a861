"""domain/clock.py: dates and instants in China Standard Time."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from domain.clock import CHINA, date_of_ms, due_ms

dates = st.dates(min_value=dt.date(1992, 1, 1), max_value=dt.date(2199, 12, 31))


@given(dates)
def test_a_date_falls_due_at_its_midnight_in_china(d):
    midnight = int(dt.datetime(d.year, d.month, d.day, tzinfo=CHINA).timestamp() * 1000)
    assert due_ms(d) == midnight
    assert due_ms(d.isoformat()) == midnight
    assert date_of_ms(midnight) == d.isoformat()
    assert date_of_ms(midnight - 1) == (d - dt.timedelta(days=1)).isoformat()


def test_midnight_in_china_is_four_in_the_afternoon_utc_the_day_before():
    assert dt.datetime.fromtimestamp(due_ms("2026-04-01") / 1000, dt.UTC) == dt.datetime(2026, 3, 31, 16, tzinfo=dt.UTC)
