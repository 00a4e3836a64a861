"""A hung Redis (a real redis-server frozen with SIGSTOP) and the query API: every request that reads
Redis answers 503 ``unavailable`` within ``api_redis_timeout_s`` (plus a little), not after the
worker client's patient wait (10 s, then the batch runner's retries); once Redis is resumed (SIGCONT) the same requests
answer as before. The redis-server is the test's own, so the session's stack is never frozen."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from creditstream.api import create_api
from streams import samples
from tests.conftest import eventually
from tests.integration.test_api import free_port

pytestmark = pytest.mark.integration

MARGIN_S = 1.5
"""What a request may take beyond the deadline (the event loop, the test client)."""
PATHS = [f"/check?subject={samples.COMPANY_USCC}&matter=bidding",
         f"/subjects/{samples.COMPANY_USCC}",
         f"/subjects/{samples.COMPANY_USCC}/lists",
         f"/subjects/{samples.COMPANY_USCC}/report?format=json",
         "/lists",
         "/disclosure?format=json",
         f"/disclosure/subjects/{samples.COMPANY_USCC}?format=json"]


@pytest.fixture
async def own_redis(tmp_path):
    """A redis-server of this test's own on a free port (no persistence): its URL and process."""
    from ops.stack import find_redis_server

    port = free_port()
    proc = subprocess.Popen([find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    client = aioredis.from_url(url)

    async def ready():
        try:
            return await client.ping()
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    try:
        await eventually(ready, timeout=10, interval=0.05)
        await client.aclose()
        yield url, proc
    finally:
        try:
            os.kill(proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def timed_get(client: TestClient, path: str, limit: float) -> tuple[int, dict, float]:
    t0 = time.monotonic()
    try:
        resp = await asyncio.wait_for(client.get(path), limit)
        body = await asyncio.wait_for(resp.json(), limit)
    except TimeoutError:
        pytest.fail(f"GET {path}: no answer within {limit:.1f} s while Redis is hung")
    return resp.status, body, time.monotonic() - t0


async def test_a_hung_redis_gives_503_within_the_api_deadline(settings, own_redis):
    url, proc = own_redis
    s = settings.replace(redis_url=url)
    assert s.api_redis_timeout_s <= 3.0  # the default: well under the nginx example's 30 s
    async with TestClient(TestServer(create_api(s))) as client:
        before = {}
        for path in PATHS:  # Redis answering: the answers to compare with
            resp = await client.get(path)
            before[path] = resp.status
            assert resp.status in (200, 404), (path, resp.status, await resp.text())

        os.kill(proc.pid, signal.SIGSTOP)
        try:
            # every path at once (each on a connection of its own), every one within the deadline: one
            # after the other they took 7 deadlines to say the same
            t0 = time.monotonic()
            answers = await asyncio.gather(*(timed_get(client, p, s.api_redis_timeout_s + MARGIN_S) for p in PATHS))
            for path, (status, body, seconds) in zip(PATHS, answers):
                assert status == 503, (path, status, body)
                assert body == {"error": "unavailable", "message": "Redis did not answer; try again later"}, body
                assert seconds < s.api_redis_timeout_s + MARGIN_S, (path, seconds)
            assert time.monotonic() - t0 < s.api_redis_timeout_s + MARGIN_S
            # and once more, one path alone (a connection the first round left behind is not reused hung)
            status, body, seconds = await timed_get(client, PATHS[0], s.api_redis_timeout_s + MARGIN_S)
            assert status == 503 and seconds < s.api_redis_timeout_s + MARGIN_S, (status, body, seconds)
        finally:
            os.kill(proc.pid, signal.SIGCONT)

        # resumed: the same answers as before the freeze (the dropped connections are replaced)
        for path in PATHS:
            resp = await client.get(path)
            assert resp.status == before[path], (path, resp.status, await resp.text())


async def test_a_shorter_deadline_is_kept(settings, own_redis):
    url, proc = own_redis
    s = settings.replace(redis_url=url, api_redis_timeout_s=0.5)
    async with TestClient(TestServer(create_api(s))) as client:
        assert (await client.get(PATHS[1])).status == 404
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            status, body, seconds = await timed_get(client, PATHS[0], 0.5 + MARGIN_S)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
    assert status == 503 and body["error"] == "unavailable"
    assert seconds < 0.5 + 1.0
