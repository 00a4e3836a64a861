"""What an operator reads when Redis's ACL refuses creditstream (NOPERM), against a redis-server
enforcing deploy/redis.acl (tests/acl_redis.py), logged in to as the ``creditstream`` user.

Seen: with a namespace the ACL does not grant (deploy/redis.acl: ``~cs:*``; ``CREDITSTREAM_NAMESPACE``
set to anything else), `creditstream subject` / `list` printed a traceback of
``redis.exceptions.NoPermissionError`` and exited 1 (the code for "not found"), and `creditstream
worker` crashed after start-up with the same traceback in Faust's crash log ("Crashed
reason=auth:NoPermissionError"), neither naming the namespace nor the ACL."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory):
    from tests.acl_redis import AclRedis

    server = AclRedis(tmp_path_factory.mktemp("acl-refusals")).start()
    yield server
    server.stop()


def env_for(settings, tmp_path, **extra) -> dict:
    from tests.workers import worker_env

    (tmp_path / "none.toml").write_text("")
    env = worker_env(settings)
    env.update(CREDITSTREAM_SETTINGS=str(tmp_path / "none.toml"), PYTHONPATH=str(ROOT), CREDITSTREAM_LOG_FORMAT="json")
    env.update(extra)
    return env


def assert_one_readable_line(stderr: str, namespace: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "NOPERM" in stderr and f"{namespace}:*" in stderr and "deploy/redis.acl" in stderr, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith("creditstream: Redis at "), stderr[-3000:]


@pytest.mark.parametrize("args", [["subject", "91310110666007217T"], ["list"], ["positions"], ["report"]])
def test_a_command_whose_namespace_the_acl_does_not_grant_says_so(settings, acl_server, tmp_path, args):
    s = settings.replace(redis_url=acl_server.url(), namespace="prod")
    done = subprocess.run([sys.executable, "-m", "creditstream.cli", *args], env=env_for(s, tmp_path), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert_one_readable_line(done.stderr, "prod")
    assert acl_server.passwords["creditstream"] not in done.stderr + done.stdout


def test_a_worker_whose_namespace_the_acl_does_not_grant_stops_at_once_saying_so(settings, acl_server, tmp_path):
    s = settings.replace(redis_url=acl_server.url(), namespace="prod")
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "creditstream.cli", "worker", "--wait", "10"],
                          env=env_for(s, tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert time.monotonic() - t0 < 60
    assert_one_readable_line(done.stderr, "prod")


async def test_a_command_refused_while_the_worker_runs_is_retried_and_named_until_allowed_again(
        settings, acl_server, department):
    """The ACL changed under a running worker (a command taken away): the subject agent's batch is
    not lost nor skipped but retried, and /health's reason names the refusal; once the ACL allows the
    command again, the batch completes without a restart."""
    from creditstream.app import Pipeline
    from sinks.keys import resolve_keys
    from streams import samples
    from streams.samples import sample_event, schema_of
    from tests.conftest import eventually

    s = settings.replace(redis_url=acl_server.user_url(settings.namespace), stall_after_s=1.0)
    user = f"cs-{s.namespace}"
    pipeline = Pipeline(s)
    await pipeline.start()
    try:
        keys = await resolve_keys(pipeline.redis, s.namespace)
        with acl_server.admin() as admin:
            admin.execute_command("ACL", "SETUSER", user, "-mset")
        await department.send(schema_of("penalty"), sample_event("penalty"))

        async def stalled():
            h = pipeline.health().get("subject", {})
            return h.get("state") == "stalled" and "NoPermissionError" in h.get("reason", "") and h

        health = await eventually(stalled, timeout=30)
        assert "MSET" in health["reason"].upper(), health
        assert await pipeline.redis.get(keys.subject(samples.COMPANY_USCC)) is None
        with acl_server.admin() as admin:
            admin.execute_command("ACL", "SETUSER", user, "+mset")

        async def stored():
            return await pipeline.redis.get(keys.subject(samples.COMPANY_USCC))

        await eventually(stored, timeout=30)
        await eventually(lambda: _ok(pipeline), timeout=10)
    finally:
        await pipeline.stop()


async def _ok(pipeline) -> bool:
    return pipeline.health().get("subject", {}).get("state") == "ok"


def test_the_api_whose_namespace_the_acl_does_not_grant_stops_at_once_saying_so(settings, acl_server, tmp_path):
    """Seen: `creditstream api` started, /health answered 200 ``redis: ok`` (PING is allowed) and every
    data endpoint 500 ``internal``, the NOPERM in the server log only."""
    s = settings.replace(redis_url=acl_server.url(), namespace="prod")
    from ops.stack import free_port

    done = subprocess.run([sys.executable, "-m", "creditstream.cli", "api", "--port", str(free_port()), "--wait", "10"],
                          env=env_for(s, tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert_one_readable_line(done.stderr, "prod")


async def test_health_says_redis_refuses_the_namespace(settings, acl_server):
    """/health of an API (or a worker's web server) whose Redis user may not read the namespace's
    keys (the ACL changed under it) answers 503 naming the refusal, not 200 ``redis: ok``."""
    import asyncio

    import aiohttp

    from creditstream.api import serve
    from ops.stack import free_port
    from tests.conftest import eventually

    s = settings.replace(redis_url=acl_server.url(), namespace="prod")
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(s, "127.0.0.1", port, stop=stop))
    try:
        async def health():
            try:
                async with aiohttp.ClientSession() as session, \
                        session.get(f"http://127.0.0.1:{port}/health") as resp:
                    return resp.status, await resp.json()
            except aiohttp.ClientError:
                return None

        status, body = await eventually(health, timeout=30, interval=0.2)
    finally:
        stop.set()
        await server
    assert status == 503, body
    assert body["redis"].startswith("down: ") and "NOPERM" in body["redis"] and "prod:*" in body["redis"], body
