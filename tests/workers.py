"""Run the real worker (``creditstream worker``) as a child process in tests; and run a command to
its end from async tests (:func:`run_to_end`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path


def worker_env(settings, **extra) -> dict:
    env = dict(os.environ)
    for name in ("broker_url", "broker_kind", "redis_url", "pseudonym_key", "topic_prefix", "namespace", "consumer_group",
                 "session_timeout_ms", "max_poll_interval_ms", "run_dir", "max_batch", "timer_interval_s", "clock_offset_s", "state_cache_mb", "log_end_patience_s",
                 "security_protocol", "sasl_mechanism", "sasl_username", "sasl_password", "ssl_cafile", "ssl_certfile",
                 "ssl_keyfile", "ssl_password"):
        env[f"CREDITSTREAM_{name.upper()}"] = str(getattr(settings, name))
    env["CREDITSTREAM_LOG_FORMAT"] = "json"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def health_of(port: int) -> dict | None:
    """A worker's ``/health`` answer (``--web`` on ``port``), None while it does not answer."""
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:  # 503: degraded, with the same body
        return json.loads(exc.read())
    except OSError:
        return None


def wait_until_serving(port: int, worker: WorkerProcess, timeout: float = 90) -> dict:
    """Until the worker's /health says Kafka ok and one worker's heartbeat; its answer."""
    import time

    deadline = time.monotonic() + timeout
    while (h := health_of(port)) is None or h.get("kafka") != "ok" or h.get("workers") != 1:
        assert worker.alive() and time.monotonic() < deadline, (h, worker.log_tail())
        time.sleep(0.5)
    return h


def all_applied(positions_table: str) -> bool:
    """``creditstream positions``' table says every input is applied: BEHIND 0 on every row (its
    column found by the header, not by place: the table grows columns)."""
    lines = [line.split() for line in positions_table.splitlines() if line.strip()]
    if not lines or "BEHIND" not in lines[0]:
        return False
    column = lines[0].index("BEHIND")
    return all(row[column] == "0" for row in lines[1:])


def demo_through_a_worker(settings, ok, tmp_path: Path, *, serving_timeout: float = 90) -> str:
    """The bundled demo data through a real ``worker --web``, with the operator commands beside it:
    ``ok(*args)`` runs ``creditstream ARGS`` (with whatever security settings the test gives it) and
    returns its standard output, failing the test on a non-zero exit. Produces the demo's events,
    waits until every input is applied (``positions``), checks /health, ``report``, ``dlq list`` and a
    ``dlq redrive``; returns the worker's log."""
    import time

    root = Path(__file__).resolve().parents[1]
    events = tmp_path / "events.jsonl"
    events.write_text((root / "data" / "demo" / "events.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    from ops.processes import free_port_from

    port = free_port_from(set())
    log = tmp_path / "worker.log"
    worker = WorkerProcess(settings, log, "--web", "--web-port", str(port)).start()
    try:
        wait_until_serving(port, worker, timeout=serving_timeout)
        ok("produce", str(events))
        deadline = time.monotonic() + 60
        while not all_applied(table := ok("positions")):
            assert time.monotonic() < deadline, table
            time.sleep(1)
        health = health_of(port)
        assert health.pop("inputs_waiting") >= 0  # (as of the worker's last heartbeat)
        assert health == {"status": "ok", "redis": "ok", "kafka": "ok", "workers": 1, "consumption": "ok",
                          "timer": "running"}
        assert "Subjects: 8" in ok("report")
        assert "5 dead letter(s)" in ok("dlq", "list")
        assert "re-drove 1" in ok("dlq", "redrive", "--reason", "negative-amount")
        deadline = time.monotonic() + 30
        while "6 dead letter(s), 1 re-driven" not in (listed := ok("dlq", "list")):
            assert time.monotonic() < deadline, listed
            time.sleep(1)
    finally:
        worker.stop()
    return log.read_text(errors="replace")


_STARTED: list[subprocess.Popen] = []  # every worker child of this test session (stop_leftovers)


def stop_leftovers() -> int:
    """SIGKILL the worker children still running: those a test could not stop because the run was
    interrupted (Ctrl-C, SIGTERM) in the middle of it. Each runs in a session of its own, so nothing
    else would stop it. Returns how many there were."""
    left = [p for p in _STARTED if p.poll() is None]
    for proc in left:
        proc.kill()  # a SIGSTOPped worker too
        proc.wait()
    _STARTED.clear()
    return len(left)


class WorkerProcess:
    """One ``creditstream worker`` child; its output is appended to ``log_path``."""

    def __init__(self, settings, log_path: Path, *args: str, module: str = "", env: dict | None = None):
        """``module``: run ``python -m <module> [args]`` instead of the worker command (a worker
        instrumented by a test: tests/reliability/paused_worker.py); ``env``: more variables."""
        self.settings = settings
        self.log_path = Path(log_path)
        self.args = args
        self.argv = ["-m", module, *args] if module else ["-m", "creditstream.cli", "worker", *args]
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        fh = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, *self.argv],
                                     env=worker_env(self.settings, **self.env), stdout=fh, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        fh.close()
        _STARTED[:] = [p for p in _STARTED if p.poll() is None]  # only those that may still run
        _STARTED.append(self.proc)
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to commit, flush or leave the group."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM a child that still runs, SIGKILL it if it has not exited within ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def run_to_end(argv: list[str], *, env: dict[str, str] | None = None, stdin: bytes | None = None,
                     timeout: float = 120) -> tuple[int, bytes, bytes]:
    """Run a command to its end without blocking the test's event loop (a pipeline running in it
    would miss its heartbeats): (exit status, stdout, stderr). In a thread, not with asyncio's
    subprocess pipes: Python 3.11's ``communicate()`` there lost the end of a command's output now
    and then (a 203,844-byte answer read as its first 131,072 bytes, twice the stream's limit,
    while strace showed the command writing it whole) when the command exited while the reading
    was paused."""
    done = await asyncio.to_thread(subprocess.run, argv, env=env, input=stdin, capture_output=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


async def wait_for_log(worker: WorkerProcess, text: str, timeout: float = 60.0) -> None:
    """Until ``text`` is in the worker's log (it must stay alive meanwhile)."""
    from tests.conftest import eventually

    async def seen():
        assert worker.alive(), worker.log_tail()
        return text in worker.log_tail(10 ** 9)

    await eventually(seen, timeout=timeout, interval=0.2)
