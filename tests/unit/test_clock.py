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


def test_a_clock_off_the_reference_by_more_than_the_tolerance_follows_it():
    """Two workers whose clocks differed: one behind refused correctly stamped inputs as dated in the
    future and fired deadlines late, one ahead accepted inputs from the future (an audit). Beyond the
    tolerance either way, the clock follows the reference (Redis's TIME); within it, the host's."""
    import time

    from domain import clock

    host = int(time.time() * 1000)
    try:
        for off in (-3_600_000, 3_600_000, -86_400_000):
            assert clock.follow_reference(host - off, 60_000, host_ms=host) == off
            assert clock.correction_ms() == off
            assert abs(clock.now_ms() - (host - off)) < 5_000  # the reference's time, not the host's
        assert clock.follow_reference(host - 30_000, 60_000, host_ms=host) == 30_000  # within the tolerance
        assert clock.correction_ms() == 0 and abs(clock.now_ms() - host) < 5_000
    finally:
        clock.follow_reference(int(time.time() * 1000), 60_000)
    assert clock.correction_ms() == 0


def test_a_worker_follows_redis_clock_and_says_so(monkeypatch):
    """creditstream/app.py: the clock compared with Redis's at start and with each heartbeat."""
    import asyncio
    import time

    from structlog.testing import capture_logs

    from creditstream.app import Pipeline
    from creditstream.settings import Settings
    from domain import clock

    class Redis:
        def __init__(self, ms):
            self.ms = ms

        async def time(self):
            return self.ms // 1000, (self.ms % 1000) * 1000

    pipeline = Pipeline.__new__(Pipeline)
    pipeline.settings = Settings(clock_tolerance_s=60)
    host = int(time.time() * 1000)
    try:
        with capture_logs() as logs:
            pipeline.redis = Redis(host + 7_200_000)  # Redis's clock two hours later: this host is behind
            asyncio.run(pipeline._follow_redis_clock())
            assert abs(clock.now_ms() - (host + 7_200_000)) < 5_000
            pipeline.redis = Redis(int(time.time() * 1000))
            asyncio.run(pipeline._follow_redis_clock())
            assert clock.correction_ms() == 0
        assert [e["event"].split(":")[0] for e in logs] == ["this process's clock is off Redis's",
                                                            "this process's clock is back within the tolerance of Redis's"]
    finally:
        clock.follow_reference(int(time.time() * 1000), 60_000)


def test_the_standalone_api_follows_redis_clock_and_a_workers_api_leaves_it_to_the_worker():
    """creditstream/api.py: ``creditstream api`` runs a clock task (its instants' default and a check's
    time by Redis's clock, as the workers'); the API a worker serves (``--web``) shares the worker's."""
    from aiohttp import web

    from creditstream.api import API_KEY, create_api, mount
    from creditstream.settings import Settings

    assert create_api(Settings())[API_KEY].follows_clock is True
    assert mount(web.Application(), Settings()).follows_clock is False
