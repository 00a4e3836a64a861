"""GET /health (creditstream/api.py) says which dependency is down: Redis (PING) and the Kafka broker
(metadata within 2 s), 200 when both answer, 503 otherwise, within a few seconds even when a
dependency accepts connections but never answers."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from creditstream.api import API_KEY, HEALTH_TIMEOUT_S, create_api

pytestmark = pytest.mark.integration

DOWN = "127.0.0.1:1"  # nothing listens on port 1


async def health(settings) -> tuple[int, dict, float]:
    async with TestClient(TestServer(create_api(settings))) as client:
        t0 = time.monotonic()
        resp = await client.get("/health")
        body = await resp.json()
        return resp.status, body, time.monotonic() - t0


async def test_both_up(settings):
    status, body, _ = await health(settings)
    assert (status, body) == (200, {"status": "ok", "redis": "ok", "kafka": "ok"})


async def test_redis_down(settings):
    status, body, seconds = await health(settings.replace(redis_url=f"redis://app:pw-secret@{DOWN}/0"))
    assert status == 503
    assert body["status"] == "degraded" and body["kafka"] == "ok"
    assert body["redis"].startswith("down: ") and "pw-secret" not in body["redis"]
    assert body["error"] == "unavailable" and body["message"] == "Redis is down; try again later"
    assert seconds < HEALTH_TIMEOUT_S + 1.5


async def test_kafka_down(settings):
    status, body, seconds = await health(settings.replace(broker_url=DOWN))
    assert status == 503
    assert body["status"] == "degraded" and body["redis"] == "ok"
    assert body["kafka"].startswith("down: ")
    assert seconds < HEALTH_TIMEOUT_S + 1.5


async def test_both_down(settings):
    status, body, seconds = await health(settings.replace(broker_url=DOWN, redis_url=f"redis://{DOWN}/0"))
    assert status == 503
    assert body["status"] == "degraded"
    assert body["redis"].startswith("down: ") and body["kafka"].startswith("down: ")
    # an error answer like every other, naming what is down
    assert body["error"] == "unavailable"
    assert body["message"] == "Redis and the Kafka broker are down; try again later"
    assert seconds < HEALTH_TIMEOUT_S + 1.5


@pytest.fixture
def hung_port():
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.setblocking(False)
    held = []
    loop = asyncio.get_event_loop()

    def accept():
        try:
            while True:
                held.append(server.accept()[0])
        except BlockingIOError:
            pass

    loop.add_reader(server.fileno(), accept)
    yield server.getsockname()[1]
    loop.remove_reader(server.fileno())
    for c in held:
        c.close()
    server.close()


async def test_hung_dependencies_answer_within_the_timeout(settings, hung_port):
    status, body, seconds = await health(settings.replace(broker_url=f"127.0.0.1:{hung_port}",
                                                          redis_url=f"redis://127.0.0.1:{hung_port}/0"))
    assert status == 503
    assert body["redis"].startswith("down: ") and body["kafka"].startswith("down: ")
    assert seconds < HEALTH_TIMEOUT_S + 1.5


async def test_concurrent_requests_share_one_check(settings):
    app = create_api(settings.replace(broker_url=DOWN))
    api = app[API_KEY]
    checks = 0
    kafka_health = api._kafka_health

    async def counted():
        nonlocal checks
        checks += 1
        await asyncio.sleep(0.3)  # long enough for every request to arrive during it
        return await kafka_health()

    api._kafka_health = counted
    async with TestClient(TestServer(app)) as client:
        answers = await asyncio.gather(*(client.get("/health") for _ in range(20)))
        bodies = [await r.json() for r in answers]
    assert {r.status for r in answers} == {503}
    assert all(b["kafka"].startswith("down: ") and b["redis"] == "ok" for b in bodies)
    assert checks == 1
