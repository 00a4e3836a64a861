"""A replay in several processes whose process is killed (the kernel's out-of-memory killer sends
SIGKILL) stops with one line that says which process ended, how, whether the kernel's OOM killer
acted, and what to run next (ops/replay.py ``ReplayProcessDied``); the command exits 1 with that line
(creditstream/cli.py). Seen before: the process pool's traceback ("BrokenProcessPool: A process in
the process pool was terminated abruptly ...") and nothing an operator could act on.
tests/integration/test_interrupted_ops.py kills a real replay's process."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from creditstream import cli
from ops.replay import ReplayProcessDied, _ended_by, _ended_processes, job_memory


def test_the_line_says_what_ended_it_and_what_to_run_next():
    oom = str(ReplayProcessDied("replay-1", 2, [(41, -signal.SIGKILL)], 1, 10_000))
    assert "replay into generation 'replay-1' stopped: one of its 2 processes ended" in oom
    assert "pid 41 killed by SIGKILL" in oom and "the other was stopped" in oom
    assert "nothing was switched, and the generation is marked failed" in oom
    assert "out-of-memory killer killed 1 process of this cgroup" in oom
    assert f"~{job_memory(10_000) >> 20} MiB (replay_batch 10000)" in oom and "--jobs 1" in oom
    many = str(ReplayProcessDied("g", 4, [(7, -signal.SIGKILL)], 3, 2_000))
    assert "killed 3 processes" in many and "the others were stopped" in many and "--jobs 3" in many
    unknown = str(ReplayProcessDied("g", 2, [(7, -signal.SIGKILL)], None, 10_000))
    assert "its log says so (dmesg)" in unknown and "--jobs 1" in unknown
    someone = str(ReplayProcessDied("g", 2, [(7, -signal.SIGKILL)], 0, 10_000))
    assert "did not kill it (its count did not move)" in someone and "--jobs" not in someone
    crashed = str(ReplayProcessDied("g", 2, [(7, -signal.SIGSEGV)], None, 10_000))
    assert "pid 7 killed by SIGSEGV" in crashed and "--jobs" not in crashed
    assert "\n" not in oom + many + unknown + someone + crashed  # one line


def test_exit_statuses_in_words():
    assert _ended_by(-signal.SIGKILL) == "killed by SIGKILL"
    assert _ended_by(3) == "exited with status 3"
    assert _ended_by(-200) == "killed by signal 200"
    assert _ended_by(None) == "ended, its status unknown"


def test_the_cli_exits_1_with_the_line_and_no_traceback():
    code, line = cli._failure(ReplayProcessDied("replay-1", 2, [(41, -signal.SIGKILL)], 1, 10_000))
    assert code == cli.EXIT_NOT_FOUND == 1
    assert line.startswith("creditstream: replay into generation 'replay-1' stopped")


def _sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_the_process_killed_is_told_from_the_ones_the_pool_stopped():
    """A real pool: one of its processes killed with SIGKILL at work; the pool stops the other
    (SIGTERM). Only the killed one is named."""
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(_sleep, 30) for _ in range(2)]
        deadline = time.monotonic() + 60
        while len(pool._processes) < 2 and time.monotonic() < deadline:  # noqa: SLF001 - the pool's own
            time.sleep(0.05)
        victim = next(iter(pool._processes))  # noqa: SLF001
        time.sleep(1.0)  # both at work
        os.kill(victim, signal.SIGKILL)
        for future in futures:
            with pytest.raises(BrokenProcessPool):
                future.result(timeout=30)
        assert _ended_processes(pool) == [(victim, -signal.SIGKILL)]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_a_write_redis_refused_as_full_is_one_line_exit_1():
    """Any command (a re-drive's audit, a positions move): Redis full is said so, not a traceback."""
    from redis.exceptions import OutOfMemoryError

    code, line = cli._failure(OutOfMemoryError("command not allowed when used memory > 'maxmemory'."))
    assert code == 1 and line.startswith("creditstream: Redis refused a write: it is full"), line
    assert "noeviction" in line and "admin user" in line
