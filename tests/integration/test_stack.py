"""The embedded stack (ops/stack.py): Tansu + redis-server on free loopback ports."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from creditstream import settings as cs_settings
from ops import stack as stack_mod
from ops.processes import reap
from ops.stack import Stack, StackError, embedded_stack

pytestmark = [pytest.mark.integration, pytest.mark.tansu_only]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path / "run")
    yield s
    s.down()


async def _roundtrip_kafka(broker_url: str) -> None:
    topic = f"stack-test-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=broker_url, enable_idempotence=False)
    await producer.start()
    try:
        md = await producer.send_and_wait(topic, b"hello", key=b"k", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=broker_url, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, md.offset)
        batch = await consumer.getmany(tp, timeout_ms=5000)
        values = [(r.key, r.value) for r in batch.get(tp, [])]
    finally:
        await consumer.stop()
    assert values[:1] == [(b"k", b"hello")]


async def test_up_answers_status_down(stack):
    info = stack.up()
    assert info.broker_url == f"127.0.0.1:{info.broker_port}"
    assert info.redis_url == f"redis://127.0.0.1:{info.redis_port}/0"

    await _roundtrip_kafka(info.broker_url)
    r = aioredis.from_url(info.redis_url)
    try:
        await r.set("cs:test", "v1")
        assert await r.get("cs:test") == b"v1"
    finally:
        await r.aclose()

    data = json.loads(stack.stack_file.read_text())
    assert data["settings"] == {
        "broker_url": info.broker_url, "broker_kind": "tansu",
        "redis_url": info.redis_url, "session_timeout_ms": 2000,
    }
    assert data["broker"]["pid"] == info.broker_pid and data["broker"]["cmd"]
    # settings.load() picks the stack up
    s = cs_settings.load(env={"CREDITSTREAM_RUN_DIR": str(stack.run_dir)})
    assert (s.broker_url, s.broker_kind, s.redis_url, s.session_timeout_ms) == (
        info.broker_url, "tansu", info.redis_url, 2000)

    st = stack.status()
    assert st["running"] is True
    assert st["broker"] == {"pid": info.broker_pid, "port": info.broker_port,
                                 "alive": True, "paused": False, "answering": True}
    assert st["redis"]["answering"] and st["redis"]["pid"] == info.redis_pid

    assert stack.down() is True
    assert _gone(info.broker_pid) and _gone(info.redis_pid)
    assert not stack.stack_file.exists()
    assert stack.info() is None
    assert stack.status()["running"] is False
    assert stack.down() is False


def test_up_twice_is_idempotent(stack):
    a = stack.up()
    b = Stack(stack.run_dir).up()
    assert (a.broker_pid, a.redis_pid, a.broker_port, a.redis_port) == (
        b.broker_pid, b.redis_pid, b.broker_port, b.redis_port)
    assert stack.info() == a


def test_up_restarts_only_a_dead_component(stack):
    a = stack.up()
    os.kill(a.redis_pid, 9)
    deadline = time.monotonic() + 5
    while not _gone(a.redis_pid) and time.monotonic() < deadline:
        reap(a.redis_pid)
        time.sleep(0.01)
    b = stack.up()
    assert b.broker_pid == a.broker_pid
    assert b.redis_pid != a.redis_pid and b.redis_port == a.redis_port


async def test_stop_start_redis_keeps_data_flush_empties(stack):
    info = stack.up()
    r = aioredis.from_url(info.redis_url)
    try:
        await r.hset("cs:h", mapping={"a": "1"})
        await r.aclose()
        stack.stop_redis()
        assert _gone(info.redis_pid)
        assert stack.status()["redis"]["alive"] is False
        assert stack.status()["running"] is False
        stack.start_redis()
        new = stack.info()
        assert new.redis_port == info.redis_port and new.redis_pid != info.redis_pid
        r = aioredis.from_url(info.redis_url)
        assert await r.hgetall("cs:h") == {b"a": b"1"}
        await r.aclose()

        stack.stop_redis()
        stack.flush_redis_files()
        stack.start_redis()
        r = aioredis.from_url(info.redis_url)
        assert await r.hgetall("cs:h") == {}
    finally:
        await r.aclose()
    with pytest.raises(StackError):
        stack.flush_redis_files()  # running


async def test_pause_resume_broker(stack):
    info = stack.up()
    stack.pause_broker()
    st = stack.status()
    assert st["broker"]["alive"] and st["broker"]["paused"] and not st["broker"]["answering"]
    assert st["running"] is False
    assert not stack_mod.probe_broker(info.broker_port, timeout=0.3)
    with pytest.raises(StackError, match="paused"):
        stack.up()
    stack.resume_broker()
    assert stack.status()["running"] is True
    await _roundtrip_kafka(info.broker_url)
    # down also stops a paused broker
    stack.pause_broker()
    assert stack.down() is True
    assert _gone(info.broker_pid)


async def test_redis_password(stack):
    info = stack.up(redis_password="s3cr et/@")
    assert info.redis_url == f"redis://:s3cr%20et%2F%40@127.0.0.1:{info.redis_port}/0"
    assert stat.S_IMODE(stack.stack_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(stack.redis_conf.stat().st_mode) == 0o600
    # the password is not on the command line
    with open(f"/proc/{info.redis_pid}/cmdline", "rb") as fh:
        assert b"s3cr" not in fh.read()
    assert not stack_mod.probe_redis(info.redis_port)
    r = aioredis.from_url(info.redis_url)
    try:
        assert await r.ping()
    finally:
        await r.aclose()
    assert stack.up(redis_password="s3cr et/@").redis_pid == info.redis_pid


def test_down_never_kills_a_stranger(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run / "stack.json").write_text(json.dumps({
            "settings": {}, "started_at": 0,
            "broker": {"pid": sleeper.pid, "port": 1, "cmd": ["tansu", "broker"]},
            "redis": {"pid": sleeper.pid, "port": 2, "cmd": ["redis-server"]},
        }))
        assert Stack(run).down() is False
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_failed_start_stops_the_broker_and_reports_the_log(tmp_path, monkeypatch):
    fake = tmp_path / "fake-redis"
    fake.write_text("#!/bin/sh\necho 'fatal: cannot start redis on purpose' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(stack_mod, "find_redis_server", lambda: str(fake))
    s = Stack(tmp_path / "run")
    before = set(stack_mod._CHILDREN)
    with pytest.raises(StackError, match="on purpose"):
        s.up(timeout=5)
    assert not s.stack_file.exists()
    assert s.status()["broker"]["alive"] is False
    # the broker started in that attempt is gone: no Tansu with this run dir's port is left
    brokers = [p for pid, p in stack_mod._CHILDREN.items()
               if pid not in before and p.args[0] == stack_mod.find_tansu()]
    assert all(p.poll() is not None for p in brokers)


def test_embedded_stack_context(tmp_path):
    with embedded_stack(tmp_path / "run") as info:
        assert stack_mod.probe_broker(info.broker_port)
        assert stack_mod.probe_redis(info.redis_port)
    assert _gone(info.broker_pid) and _gone(info.redis_pid)
