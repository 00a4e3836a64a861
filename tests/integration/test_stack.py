"""The embedded stack (ops/stack.py): Tansu + redis-server on free loopback ports."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
import redis.exceptions
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


def _stack_cli(stack, capsys, *commands: list[str]) -> tuple[str, str]:
    """``creditstream`` run in process with ``stack``'s run directory, each of ``commands`` expected to
    exit 0: what they printed (stdout, stderr)."""
    from creditstream import cli

    os.environ["CREDITSTREAM_RUN_DIR"] = str(stack.run_dir)
    try:
        capsys.readouterr()
        for command in commands:
            assert cli.main(command) == cli.EXIT_OK, command
    finally:
        del os.environ["CREDITSTREAM_RUN_DIR"]
    return capsys.readouterr()


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
    assert re.fullmatch(rf"redis://:[A-Za-z0-9_-]{{43}}@127\.0\.0\.1:{info.redis_port}/0", info.redis_url)

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
        "pseudonym_key": info.pseudonym_key,
    }
    assert data["broker"]["pid"] == info.broker_pid and data["broker"]["cmd"]
    # settings.load() picks the stack up
    s = cs_settings.load(env={"CREDITSTREAM_RUN_DIR": str(stack.run_dir)})
    assert (s.broker_url, s.broker_kind, s.redis_url, s.session_timeout_ms, s.pseudonym_key) == (
        info.broker_url, "tansu", info.redis_url, 2000, info.pseudonym_key)
    assert s.validate() == []

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


def test_stack_up_says_which_server_it_started_and_which_was_running(stack, capsys):
    """An operator who restarts a dead Redis with `stack up` read the same three lines as a first start:
    whether the broker was restarted too (a Tansu started anew has an empty log) was not said."""
    first, _ = _stack_cli(stack, capsys, ["stack", "up"])
    lines = first.splitlines()
    assert lines[0].startswith("broker ") and lines[0].endswith("  started"), first
    assert lines[1].startswith("redis-server ") and "  started  (password in stack.json)" in lines[1], first
    a = stack.info()
    assert a is not None
    os.kill(a.redis_pid, 9)
    deadline = time.monotonic() + 5
    while not _gone(a.redis_pid) and time.monotonic() < deadline:
        reap(a.redis_pid)
        time.sleep(0.01)
    again, _ = _stack_cli(stack, capsys, ["stack", "up"])
    lines = again.splitlines()
    assert lines[0].endswith(f"pid {a.broker_pid}  running"), again
    assert "  started  (password in stack.json)" in lines[1] and f"pid {a.redis_pid} " not in lines[1], again
    unchanged, _ = _stack_cli(stack, capsys, ["stack", "up"])
    assert [line.split("  ")[-1] for line in unchanged.splitlines()[:1]] == ["running"], unchanged
    assert "  running  (password in stack.json)" in unchanged.splitlines()[1], unchanged


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


async def test_restart_broker_starts_an_empty_tansu_and_keeps_redis(stack):
    """What the benchmark does before each measured run: a new Tansu process, empty, Redis untouched."""
    from aiokafka.admin import AIOKafkaAdminClient

    info = stack.up()
    await _roundtrip_kafka(info.broker_url)
    admin = AIOKafkaAdminClient(bootstrap_servers=info.broker_url)
    await admin.start()
    try:
        assert any(t.startswith("stack-test-") for t in await admin.list_topics())
    finally:
        await admin.close()
    again = stack.restart_broker()
    assert again.broker_pid != info.broker_pid and _gone(info.broker_pid)
    assert again.redis_pid == info.redis_pid and again.redis_url == info.redis_url
    assert Stack(stack.run_dir).up().broker_url == again.broker_url  # recorded in stack.json
    admin = AIOKafkaAdminClient(bootstrap_servers=again.broker_url)
    await admin.start()
    try:
        assert not any(t.startswith("stack-test-") for t in await admin.list_topics())
    finally:
        await admin.close()
    await _roundtrip_kafka(again.broker_url)


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
        assert stack_mod.probe_redis(info.redis_port, urlsplit(info.redis_url).password)
    assert _gone(info.broker_pid) and _gone(info.redis_pid)


async def test_up_without_a_password_makes_one_and_keeps_it(stack, capsys):
    """RULES.md 7: access to the state store is authenticated, the embedded stack's too."""
    info = stack.up()
    password = urlsplit(info.redis_url).password
    assert password and len(password) >= 43
    # the run dir is the owner's only; the files holding the password and the pseudonym key too
    assert stat.S_IMODE(stack.run_dir.stat().st_mode) == 0o700
    for path in (stack.stack_file, stack.redis_conf, stack.pseudonym_key_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    with open(f"/proc/{info.redis_pid}/cmdline", "rb") as fh:
        assert password.encode() not in fh.read()
    # a client without the password is refused: NOAUTH on the wire, an AuthenticationError in redis-py
    assert not stack_mod.probe_redis(info.redis_port)
    with socket.create_connection(("127.0.0.1", info.redis_port), timeout=5) as sock:
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$11\r\ncs:anything\r\n")
        assert sock.makefile("rb").readline().startswith(b"-NOAUTH")
    anonymous = aioredis.from_url(f"redis://127.0.0.1:{info.redis_port}/0")
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            await anonymous.get("cs:anything")
    finally:
        await anonymous.aclose()
    wrong = aioredis.from_url(f"redis://:not-{password}@127.0.0.1:{info.redis_port}/0")
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            await wrong.ping()
    finally:
        await wrong.aclose()
    # every client built from the settings has it
    from creditstream.connections import redis_client

    client = redis_client(cs_settings.load(env={"CREDITSTREAM_RUN_DIR": str(stack.run_dir)}))
    try:
        assert await client.ping()
    finally:
        await client.aclose()

    # `up` again keeps the running redis-server and its password; so does a restart of a dead one
    again = Stack(stack.run_dir).up()
    assert (again.redis_pid, again.redis_url, again.pseudonym_key) == (info.redis_pid, info.redis_url,
                                                                       info.pseudonym_key)
    stack.stop_redis()
    stack.start_redis()
    assert stack.info().redis_url == info.redis_url
    os.kill(stack.info().redis_pid, 9)
    deadline = time.monotonic() + 5
    while not _gone(stack.info().redis_pid) and time.monotonic() < deadline:
        reap(stack.info().redis_pid)
        time.sleep(0.01)
    restarted = stack.up()
    assert restarted.redis_pid != info.redis_pid and restarted.redis_url == info.redis_url

    # status and the CLI's `stack up` / `stack status` never show it
    assert password not in json.dumps(stack.status())
    out, err = _stack_cli(stack, capsys, ["stack", "up"], ["stack", "status"])
    assert password not in out + err and info.pseudonym_key not in out + err
    assert f"redis://***@127.0.0.1:{info.redis_port}/0" in out
    assert password not in repr(stack.info())

    # down / up: a new password, the same pseudonym key (Redis's data outlives `down`, so must the key)
    stack.down()
    after = stack.up()
    assert urlsplit(after.redis_url).password != password
    assert after.pseudonym_key == info.pseudonym_key and len(after.pseudonym_key) == 64


def test_stack_up_takes_a_password_file(stack, tmp_path, monkeypatch, capsys):
    from creditstream import cli

    secret = tmp_path / "redis-password"
    secret.write_text("from-a-file-0123456789\n")
    monkeypatch.setenv("CREDITSTREAM_RUN_DIR", str(stack.run_dir))
    assert cli.main(["stack", "up", "--redis-password-file", str(secret)]) == cli.EXIT_OK
    assert "from-a-file" not in "".join(capsys.readouterr())
    info = stack.info()
    assert urlsplit(info.redis_url).password == "from-a-file-0123456789"
    assert stack_mod.probe_redis(info.redis_port, "from-a-file-0123456789")
    secret.write_text("\n")
    assert cli.main(["stack", "up", "--redis-password-file", str(secret)]) == cli.EXIT_USAGE
    assert cli.main(["stack", "up", "--redis-password-file", str(tmp_path / "missing")]) == cli.EXIT_USAGE


def test_the_redis_server_named_by_the_environment_is_the_one_run(tmp_path, monkeypatch):
    """CREDITSTREAM_REDIS_SERVER chooses the binary (make test's Kafka passes: Debian's Redis 7); a path
    that cannot run is refused by name, not passed over for another."""
    from ops.stack import REDIS_SERVER_ENV, StackError, find_redis_server, redis_server_release, redis_server_version

    monkeypatch.delenv(REDIS_SERVER_ENV, raising=False)
    default = find_redis_server()
    assert redis_server_version(default)[0].isdigit()
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'Redis server v=9.9.9 sha=0 malloc=libc bits=64'\n")
    monkeypatch.setenv(REDIS_SERVER_ENV, str(fake))
    with pytest.raises(StackError, match="not an executable file"):
        find_redis_server()
    fake.chmod(0o755)
    assert find_redis_server() == str(fake)
    assert redis_server_version(str(fake)) == "9.9.9"
    assert redis_server_release(str(fake)) == "redis-server 9.9.9"
    fake.write_text("#!/bin/sh\necho 'Valkey server v=9.1.2 sha=00000000:1 malloc=libc bits=64'\n")
    assert redis_server_release(str(fake)) == "valkey-server 9.1.2"
    monkeypatch.setenv(REDIS_SERVER_ENV, "")
    assert find_redis_server() == default


async def test_a_new_tansu_broker_starts_with_an_empty_redis_and_the_old_state_set_aside(stack, capsys):
    # seen: after `stack down` / `stack up` Tansu's log was empty (it keeps it in memory) while Redis kept
    # the state and its positions; a worker skipped that many new inputs per partition, silently
    info = stack.up()
    r = aioredis.from_url(info.redis_url)
    try:
        await r.set("cs:live:positions", "9")
    finally:
        await r.aclose()
    stack.down()
    again = stack.up()
    assert again.set_aside is not None
    aside = again.run_dir / os.path.basename(again.set_aside)
    assert aside.is_dir() and any(p.stat().st_size for p in aside.rglob("*") if p.is_file())
    r = aioredis.from_url(again.redis_url)
    try:
        assert await r.dbsize() == 0
    finally:
        await r.aclose()
    # a running Tansu with its Redis: kept as it is; so is an empty Redis under a new broker
    assert Stack(stack.run_dir).up().set_aside is None
    os.kill(stack.info().broker_pid, 9)
    deadline = time.monotonic() + 5
    while not _gone(again.broker_pid) and time.monotonic() < deadline:
        reap(again.broker_pid)
        time.sleep(0.01)
    assert stack.up().set_aside is None  # (nothing in Redis to set aside)
    # the command says so

    r = aioredis.from_url(stack.info().redis_url)
    try:
        await r.set("cs:live:positions", "9")
    finally:
        await r.aclose()
    stack.down()
    _, err = _stack_cli(stack, capsys, ["stack", "up"])
    assert "Tansu started anew with an empty log" in err and "redis.before-" in err, err


def test_up_never_replaces_a_running_broker_of_the_other_kind(stack):
    # seen: `stack up` (meant to restart a dead redis-server) stopped a running Apache Kafka and started
    # an empty Tansu; the other way round too
    info = stack.up()
    with pytest.raises(StackError, match="runs Tansu, not Apache Kafka: `creditstream stack down` first"):
        stack.up(broker="kafka")
    assert stack.info().broker_pid == info.broker_pid and stack.status()["running"]
    assert stack.last_broker_kind() == "tansu"
    from creditstream import cli  # a refusal, not an outage: exit 2

    os.environ["CREDITSTREAM_RUN_DIR"] = str(stack.run_dir)
    try:
        assert cli.main(["stack", "up", "--broker", "kafka"]) == cli.EXIT_USAGE
    finally:
        del os.environ["CREDITSTREAM_RUN_DIR"]


def test_up_starts_the_broker_the_run_directory_ran_last(tmp_path):
    s = Stack(tmp_path / "run")
    assert s.last_broker_kind() == "tansu"  # nothing ran there
    (tmp_path / "run").mkdir()
    s.broker_kind_file.write_text("kafka\n", encoding="utf-8")
    assert s.last_broker_kind() == "kafka"
    s.broker_kind_file.unlink()
    (tmp_path / "run" / "kafka").mkdir()  # an Apache Kafka log directory of a version before the file
    assert s.last_broker_kind() == "kafka"


def test_down_names_the_workers_that_still_run(stack, capsys):
    # seen: `stack down` said nothing of a worker still running, which then logged connection errors
    # (a command line: no event loop runs, as in the shell)
    import redis as sync_redis

    from sinks.keys import Keys

    info = stack.up()
    keys = Keys("cs")
    r = sync_redis.Redis.from_url(info.redis_url)
    try:
        r.set(keys.worker("vm:4242:1"), json.dumps({"host": "vm", "pid": 4242}), ex=30)
        r.zadd(keys.workers, {"vm:4242:1": int(time.time() * 1000)})
    finally:
        r.close()
    out, err = _stack_cli(stack, capsys, ["stack", "down"])
    assert "stopped the embedded stack" in out
    assert "1 worker(s) of this stack still run (vm pid 4242)" in err, err


def test_the_newest_three_redis_copies_set_aside_are_kept(stack):
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    olds = []
    for i in range(4):
        d = stack.run_dir / f"redis.before-2026010{i}T000000"
        d.mkdir()
        os.utime(d, (1_000_000 + i, 1_000_000 + i))
        olds.append(d)
    stack.redis_dir.mkdir()
    aside = stack._set_redis_aside()
    assert aside.is_dir() and not stack.redis_dir.exists()
    assert sorted(p.name for p in stack.run_dir.glob("redis.before-*")) == sorted(
        [olds[2].name, olds[3].name, aside.name])


def test_a_state_is_kept_under_apache_kafka_only_when_it_was_built_from_its_log(tmp_path):
    # seen: `stack down; stack up --broker kafka` in a Tansu run dir kept the Tansu-built state over an
    # empty Kafka log; its positions lay past the new log's end (new inputs waited, then the worker stopped)
    s = Stack(tmp_path / "run")
    (tmp_path / "run").mkdir()
    assert not s._kafka_log_is_the_states(None)  # nothing ran here: the log is formatted now
    s.broker_kind_file.write_text("tansu\n", encoding="utf-8")
    (tmp_path / "run" / "kafka").mkdir()
    assert not s._kafka_log_is_the_states(None)  # Tansu ran last: its state, not this log's
    assert not s._kafka_log_is_the_states({"pid": 1, "port": 2})  # a Tansu in stack.json (no kind)
    s.broker_kind_file.write_text("kafka\n", encoding="utf-8")
    assert s._kafka_log_is_the_states(None) and s._kafka_log_is_the_states({"kind": "kafka"})
    s.broker_kind_file.unlink()
    assert s._kafka_log_is_the_states(None)  # an earlier version's Kafka run dir (no broker-kind file)
    (tmp_path / "run" / "kafka").rmdir()
    assert not s._kafka_log_is_the_states({"kind": "kafka"})  # its log directory gone: formatted anew
