"""``creditstream demo`` (``make demo``): the whole pipeline on the bundled sample data, then a summary.

Starts a fresh embedded stack under ``.run/demo``, a worker process (``creditstream worker``), publishes
data/demo/events.jsonl, waits until every event is accounted for (applied to a subject, parked or
dead-lettered), prints a summary, and stops everything, also on Ctrl-C or failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from creditstream.settings import load

DEMO_RUN_DIR = Path(".run/demo")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO_ROOT / "data" / "demo" / "events.jsonl"
TIMEOUT_S = 90.0


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def run_demo(keep: bool = False, data: Path = DEMO_DATA, broker: str = "tansu") -> int:
    from ops.stack import Stack, StackError

    if not data.is_file():
        print(f"creditstream demo: sample data not found at {data}", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    stack = Stack(DEMO_RUN_DIR)
    stack.down()
    shutil.rmtree(DEMO_RUN_DIR, ignore_errors=True)
    try:
        info = stack.up(broker=broker)
    except StackError as exc:
        print(f"creditstream demo: the embedded stack did not start: {exc}", file=sys.stderr)
        return 3
    from creditstream.probes import mask_url

    _say(f"embedded stack up: broker {stack.broker_description()} at {info.broker_url}, "
         f"redis {mask_url(info.redis_url)}")
    env = dict(os.environ, CREDITSTREAM_RUN_DIR=str(DEMO_RUN_DIR))
    os.environ["CREDITSTREAM_RUN_DIR"] = str(DEMO_RUN_DIR)
    settings = load()
    worker_log = DEMO_RUN_DIR / "worker.log"
    worker = None
    try:
        with open(worker_log, "wb") as log_fh:
            worker = subprocess.Popen([sys.executable, "-m", "creditstream.cli", "worker"], env=env,
                                      stdout=log_fh, stderr=subprocess.STDOUT, start_new_session=True)
        _say(f"worker started (pid {worker.pid}, log {worker_log})")
        code = asyncio.run(_publish_and_wait(settings, data, worker))
        if code == 0:
            _say(f"done in {time.monotonic() - t0:.1f}s")
        return code
    except KeyboardInterrupt:
        return 130
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        if not keep:
            stack.down()
            _say("stack stopped")
        else:
            _say(f"stack left running: CREDITSTREAM_RUN_DIR={DEMO_RUN_DIR} creditstream subject CODE")


async def _publish_and_wait(settings, data: Path, worker: subprocess.Popen) -> int:
    from ops.produce import produce_file
    from ops.report import progress, render_summary, summary

    report = await produce_file(settings, str(data))
    for line in report.render().splitlines():
        _say(line)
    expected = sum(report.sent.values())
    deadline = time.monotonic() + TIMEOUT_S
    last = -1
    while True:
        if worker.poll() is not None:
            print(f"creditstream demo: the worker exited with {worker.returncode}; see {DEMO_RUN_DIR}/worker.log",
                  file=sys.stderr)
            return 1
        done = await progress(settings)
        if done != last:
            _say(f"processed {done}/{expected}")
            last = done
        if done >= expected:
            break
        if time.monotonic() > deadline:
            print(f"creditstream demo: only {done} of {expected} events processed after {TIMEOUT_S:.0f}s; "
                  f"see {DEMO_RUN_DIR}/worker.log", file=sys.stderr)
            return 1
        await asyncio.sleep(0.5)
    print()
    print(render_summary(await summary(settings)))
    print()
    return 0
