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
    assert (status, body) == (200, {"status": "ok", "redis": "ok", "kafka": "ok", "workers": 0,
                                    "consumption": "no worker running"})


async def test_a_running_worker_reports_its_consumption(pipeline, settings):
    from tests.conftest import eventually

    async def seen():
        status, body, _ = await health(settings)
        return (status, body) if body.get("workers") == 1 else None

    status, body = await eventually(seen, timeout=10)
    assert status == 200 and body["consumption"] == "ok"
    assert body["timer"] == "running" and isinstance(body["inputs_waiting"], int)


async def test_a_stalled_agent_makes_health_degraded_and_says_why(settings, redis):
    """A worker's heartbeat (creditstream/app.py) carries each agent's AgentRunner.health(): one that
    has retried a batch past stall_after_s is named in /health's answer, which is then 503."""
    import orjson

    from sinks.keys import Keys

    beat = {"host": "w7", "pid": 4242, "generation": "live", "agents": ["ingest", "subject"],
            "health": {"ingest": {"state": "ok"},
                       "subject": {"state": "stalled", "reason": "one batch in hand for 75 s, retrying "
                                                                 "(ConnectionError: Redis refused)"}}}
    keys = Keys(settings.namespace)
    await redis.set(keys.worker("w7:4242:1"), orjson.dumps(beat), ex=15)
    await redis.zadd(keys.workers, {"w7:4242:1": int(time.time() * 1000)})  # as a worker's heartbeat indexes it
    status, body, _ = await health(settings)
    assert status == 503 and body["status"] == "degraded" and body["consumption"] == "stalled"
    assert body["stalled"] == ["w7 pid 4242 subject: one batch in hand for 75 s, retrying (ConnectionError: "
                               "Redis refused)"]
    assert body["message"].startswith("consumption is stalled: w7 pid 4242 subject")
    # no worker runs the timer: said (deadlines are not applied); a heartbeat without waiting counts, none
    assert body["timer"] == "not running" and "inputs_waiting" not in body


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


# --- the schema registry: checked only when a remote one is configured ---------------------


async def test_a_remote_registry_that_answers_is_ok(settings):
    from tests.integration.test_registry_client import FakeRegistry

    fake = await FakeRegistry(auth=("bearer", "tok-health")).start()
    try:
        status, body, _ = await health(settings.replace(schema_registry=fake.url, schema_registry_token="tok-health"))
    finally:
        await fake.stop()
    assert (status, body) == (200, {"status": "ok", "redis": "ok", "kafka": "ok", "schema_registry": "ok",
                                    "workers": 0, "consumption": "no worker running"})
    assert fake.requests == [("GET", "/subjects", "Bearer tok-health")]


async def test_a_hung_registry_is_down_within_the_timeout(settings, hung_port):
    url = f"http://svc:pw-reg-1@127.0.0.1:{hung_port}"
    status, body, seconds = await health(settings.replace(schema_registry=url))
    assert status == 503 and body["redis"] == "ok" and body["kafka"] == "ok"
    assert body["schema_registry"].startswith("down: ") and "pw-reg-1" not in str(body)
    assert body["message"] == "the schema registry is down; try again later"
    assert seconds < HEALTH_TIMEOUT_S + 1.5


async def test_refused_registry_credentials_are_down_too(settings):
    from tests.integration.test_registry_client import FakeRegistry

    fake = await FakeRegistry(auth=("basic", "svc", "right")).start()
    try:
        status, body, _ = await health(settings.replace(schema_registry=fake.url, schema_registry_username="svc",
                                                        schema_registry_password="wrong-pw-5"))
    finally:
        await fake.stop()
    assert status == 503 and "refused the credentials" in body["schema_registry"]
    assert "wrong-pw-5" not in str(body)


async def test_a_full_redis_makes_health_degraded(settings, redis):
    """Seen (an audit): Redis at its maxmemory, every worker stalled, and /health answered 200 "no
    worker running" (their heartbeats could not be written either)."""
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory", max(used // 2, 1))
    try:
        status, body, _ = await health(settings)
    finally:
        await redis.config_set("maxmemory", 0)
    assert status == 503 and body["redis"].startswith("full: used_memory"), body
    assert "Redis is full" in body["message"] and "raise maxmemory" in body["message"], body
    assert (await health(settings))[0] == 200


async def test_workers_without_the_timer_and_a_due_instant_passed(settings, redis):
    """Seen (an audit): workers started without the timer agent, a due instant passed, and /health
    answered 200 "ok" (only "timer": "not running"), the backlog gauge 0 on every worker, no alert. Now
    /health is degraded, and each worker reads the backlog from Redis with its heartbeat, as it reports
    whether it reaches Redis and Kafka (creditstream_dependency_up)."""
    from creditstream import metrics
    from creditstream.app import Pipeline
    from sinks.keys import resolve_keys
    from tests.conftest import eventually

    pipeline = Pipeline(settings, agents=("ingest", "registry", "subject"))
    await pipeline.start()
    try:
        keys = await resolve_keys(redis, settings.namespace)
        await redis.zadd(keys.due, {"p.0000000000000000000000000000dead": int(time.time() * 1000) - 60_000})

        async def backlog():
            return metrics.TIMER_BACKLOG._value.get() == 1 or None  # noqa: SLF001

        await eventually(backlog, timeout=10, interval=0.2)
        assert metrics.DEPENDENCY_UP.labels("redis")._value.get() == 1  # noqa: SLF001
        assert metrics.DEPENDENCY_UP.labels("kafka")._value.get() == 1  # noqa: SLF001

        async def degraded():
            status, body, _ = await health(settings)
            return (status, body) if body.get("workers") == 1 else None

        status, body = await eventually(degraded, timeout=10)
        assert status == 503 and body["timer"] == "not running: 1 subject(s) past their due instant", body
        assert "no worker runs the timer" in body["message"], body
        await redis.zrem(keys.due, "p.0000000000000000000000000000dead")

        async def none_due():
            return metrics.TIMER_BACKLOG._value.get() == 0 or None  # noqa: SLF001

        await eventually(none_due, timeout=10, interval=0.2)
        status, body, _ = await health(settings)
        assert status == 200 and body["timer"] == "not running", body
    finally:
        await pipeline.stop()
