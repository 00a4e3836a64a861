"""``make test``'s passes of pytest, and the lanes that run them side by side.

The suite is six passes: the unit, integration and reliability tests on Tansu (the compiled rules
core), the unit tests again on the pure Python core, and the integration and reliability tests again
on Apache Kafka. Each pass is one pytest session with an embedded stack of its own. Most of a pass's
time is spent waiting on workers, brokers and Redis: with two lanes the run took 14 minutes of wall
time for 18.7 minutes of CPU on two cores. So the passes run in four lanes at once::

    lane 1 (printed live)   tansu-integration
    lane 2                  tansu-unit, then tansu-reliability
    lane 3                  kafka-integration
    lane 4                  kafka-reliability, then pure-unit

Every pass is written to ``.run/test-<pass>.log`` (``tail -f`` follows one live); the other lanes'
reports are printed when the live lane has ended, in the order above. Then a failed pass's
``FAILED`` and ``ERROR`` lines, and last a line of every pass's exit status and time (two lanes: 14
min 12 s; four: 9 min 6 s to 9 min 22 s, the same tests). ``--serial`` runs the passes one after
another, all live.

A pass selects its tests by mark (the Kafka passes) and by folder (the Tansu ones); together they
select what the two legs of old did, each test once per broker (tests/unit/test_test_passes.py
checks it over every combination of marks)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

RUN_DIR = Path(".run")
COPY_GRACE_S = 5.0
"""How long a live pass's output is still copied after the pass ended."""
NONE_SELECTED = 5
"""pytest's exit status when a pass selected no test: a failure in a whole run (a mark or a folder
went wrong), not when the caller narrowed the run with pytest arguments of its own."""


@dataclass(frozen=True)
class Pass:
    name: str
    title: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


TANSU_UNIT = "not slow and not kafka and not reliability"
TANSU_INTEGRATION = "not slow and not kafka and not reliability"  # with tests/unit left out
TANSU_RELIABILITY = "reliability and not slow and not kafka"
KAFKA_INTEGRATION = "integration and not reliability and not slow and not browser"
KAFKA_RELIABILITY = "reliability and not slow and not browser"
PURE_UNIT = "not slow"


def passes(python: str, pytest_args: list[str], *, kafka_redis: str | None = None,
           require_browser: bool = False) -> dict[str, Pass]:
    """The six passes by name. ``kafka_redis``: the redis-server binary of the Kafka passes
    (production's Redis 7 where ops/tls_redis.py could unpack it)."""
    pytest = (python, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    extra = tuple(pytest_args)
    on_kafka = {"CREDITSTREAM_REDIS_SERVER": kafka_redis} if kafka_redis else {}
    return {p.name: p for p in (
        Pass("tansu-unit", "the unit tests, on the compiled rules core",
             (*pytest, "tests/unit", "-m", TANSU_UNIT, *extra)),
        Pass("tansu-integration", "the integration tests, on Tansu",
             (*pytest, "tests", "--ignore=tests/unit", "-m", TANSU_INTEGRATION, *extra),
             {"REQUIRE_BROWSER": "1" if require_browser else ""}),
        Pass("tansu-reliability", "the reliability suite at CI scale, on Tansu",
             (*pytest, "tests", "-m", TANSU_RELIABILITY, *extra),
             {"RELIABILITY_RESULTS": str(RUN_DIR / "reliability-ci.json")}),
        Pass("pure-unit", "the unit tests again, on the pure Python rules core (the reference the compiled one is"
             " built from)", (*pytest, "tests/unit", "-m", PURE_UNIT, *extra), {"CREDITSTREAM_PURE_PYTHON": "1"}),
        Pass("kafka-integration", "the integration tests again, on Apache Kafka",
             (*pytest, "--broker", "kafka", "-m", KAFKA_INTEGRATION, *extra), on_kafka),
        Pass("kafka-reliability", "the reliability suite again, on Apache Kafka",
             (*pytest, "--broker", "kafka", "-m", KAFKA_RELIABILITY, *extra),
             {**on_kafka, "RELIABILITY_RESULTS": str(RUN_DIR / "reliability-ci-kafka.json")}),
    )}


REDIS_INTEGRATION = "integration and not reliability and not slow and not kafka and not browser"
REDIS_RELIABILITY = "reliability and not slow and not kafka and not browser"


def redis_server_lanes(python: str, pytest_args: list[str], servers: dict[str, str], *,
                       serial: bool = False) -> list[list[Pass]]:
    """``make test-redis``: the Tansu passes' integration tests and reliability suite again on each
    of ``servers`` (name -> redis-server binary, ops/redis_servers.py), the code under test and the
    end-to-end ACL tests alike; a lane for each pass (``serial``: one lane)."""
    pytest = (python, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    made = []
    for name, binary in servers.items():
        env = {"CREDITSTREAM_REDIS_SERVER": binary, "CREDITSTREAM_TEST_REDIS_SERVER": binary}
        made.append(Pass(f"{name}-integration", f"the integration tests, on Tansu and {name} ({binary})",
                         (*pytest, "-m", REDIS_INTEGRATION, *pytest_args), env))
        made.append(Pass(f"{name}-reliability", f"the reliability suite at CI scale, on Tansu and {name}",
                         (*pytest, "-m", REDIS_RELIABILITY, *pytest_args),
                         {**env, "RELIABILITY_RESULTS": str(RUN_DIR / f"reliability-{name}.json")}))
    return [made] if serial else [[one] for one in made]


def lanes(by_name: dict[str, Pass], *, kafka: bool, serial: bool) -> list[list[Pass]]:
    """The lanes: the first is printed live. Without Java (``kafka=False``) the Kafka passes are left
    out; ``serial``: one lane."""
    if serial:
        order = ["tansu-unit", "tansu-integration", "tansu-reliability", "pure-unit"]
        order += ["kafka-integration", "kafka-reliability"] if kafka else []
        return [[by_name[n] for n in order]]
    plan = [["tansu-integration"], ["tansu-unit", "tansu-reliability"]]
    plan += [["kafka-integration"], ["kafka-reliability", "pure-unit"]] if kafka else [["pure-unit"]]
    return [[by_name[n] for n in lane] for lane in plan]


def log_path(one: Pass) -> Path:
    return RUN_DIR / f"test-{one.name}.log"


@dataclass
class Outcome:
    status: int | None = None  # None: not run (interrupted before it)
    seconds: float = 0.0


class Lane:
    """Runs its passes one after another, each in a session of its own (Ctrl-C at the terminal
    reaches only the live lane; :meth:`stop` stops the others), into its log unless ``live``."""

    def __init__(self, passes_: list[Pass], *, live: bool, outcomes: dict[str, Outcome]):
        self.passes, self.live, self.outcomes = passes_, live, outcomes
        self.current: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        for one in self.passes:
            if self.stopping:
                return
            if self.live:
                print(f"== {one.name}: {one.title}", flush=True)
            started = time.monotonic()
            self.outcomes[one.name] = Outcome()  # started: an outcome without a status was interrupted
            env = {**os.environ, **one.env}
            with open(log_path(one), "wb") as log:
                if self.live:  # printed as it comes, and kept in its log too (the failures' summary)
                    self.current = subprocess.Popen(one.argv, env=env, stdout=subprocess.PIPE,
                                                    stderr=subprocess.STDOUT)
                else:
                    self.current = subprocess.Popen(one.argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL, start_new_session=True)
                if self.stopping:  # stopped while this pass started
                    self.stop()
                reader = None
                if self.current.stdout is not None:
                    reader = threading.Thread(target=_copy, args=(self.current.stdout.fileno(), log), daemon=True)
                    reader.start()
                status = self.current.wait()
                if reader is not None:
                    # the rest of its output; not waited for beyond this: a process the pass left
                    # running with the pipe as its output would hold it open
                    reader.join(COPY_GRACE_S)
            self.outcomes[one.name] = Outcome(status, time.monotonic() - started)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="lane", daemon=True)
        self.thread.start()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the pass that runs (pytest stops its workers and stack on SIGTERM, as on Ctrl-C) and
        start no other."""
        self.stopping = True
        proc = self.current
        if proc is None or proc.poll() is not None:
            return
        try:
            if self.live:
                proc.send_signal(sig)
            else:
                os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)


def _copy(fd: int, log) -> None:
    """A live pass's output to the terminal as it comes (pytest's progress dots before their line
    ends), and to its log."""
    out = sys.stdout.buffer
    while chunk := os.read(fd, 65536):
        out.write(chunk)
        out.flush()
        log.write(chunk)


def failures(path: Path) -> list[str]:
    """pytest's lines naming what failed, from a pass's log (its short test summary)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.startswith(("FAILED ", "ERROR "))]


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s" if seconds >= 60 else f"{seconds:.0f} s"


def run(lanes_: list[list[Pass]], *, narrowed: bool, out=None, label: str = "make test") -> int:
    """Run the lanes side by side; print the others' reports after the live one, then a line of every
    pass's exit status. 0 if every pass passed, 130 if interrupted, else 1."""
    out = out or sys.stdout
    RUN_DIR.mkdir(exist_ok=True)
    outcomes: dict[str, Outcome] = {}
    all_passes = [one for lane in lanes_ for one in lane]
    for one in all_passes:
        log_path(one).unlink(missing_ok=True)
    live, *others = [Lane(lane, live=i == 0, outcomes=outcomes) for i, lane in enumerate(lanes_)]
    if others:
        names = ", ".join(f"{' then '.join(p.name for p in lane.passes)}" for lane in others)
        print(f"== {label}: {len(lanes_)} lanes side by side, each pass with a stack of its own; beside the live"
              f" one: {names} (their reports follow it; live: tail -f {RUN_DIR}/test-<pass>.log)", file=out, flush=True)
    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    interrupted = False
    try:
        for lane in others:
            lane.start()
        live.run()
        for lane in others:
            while lane.thread is not None and lane.thread.is_alive():
                lane.join(1.0)
    except KeyboardInterrupt:
        interrupted = True
        for lane in (live, *others):
            lane.stop()
        for lane in (live, *others):
            _wait_stopped(lane)
    finally:
        signal.signal(signal.SIGTERM, previous)
    for lane in others:
        for one in lane.passes:
            print(f"== {one.name} (ran beside {live.passes[0].name}): {one.title}", file=out, flush=True)
            path = log_path(one)
            if path.exists():
                sys.stdout.flush()
                out.write(path.read_text(encoding="utf-8", errors="replace"))
                out.flush()
    said = []
    for one in all_passes:
        got = outcomes.get(one.name)
        if got is None:
            said.append(f"{one.name} not run")
        elif got.status is None:
            said.append(f"{one.name} interrupted")
        else:
            said.append(f"{one.name} {got.status} ({_minutes(got.seconds)})")
    failed = [one for one in all_passes if (got := outcomes.get(one.name)) is not None
              and got.status not in (0, None) and not (narrowed and got.status == NONE_SELECTED)]
    for one in failed:
        lines = failures(log_path(one))
        print(f"{label}: {one.name} failed" + (":" if lines else f" (its report: {log_path(one)})"), file=out)
        for line in lines:
            print(f"  {line}", file=out)
    print(f"{label}: exit status by pass: {', '.join(said)}; {_minutes(time.monotonic() - started)} in all",
          file=out, flush=True)
    if interrupted:
        return 130
    ok = all(o.status == 0 or (narrowed and o.status == NONE_SELECTED) for o in outcomes.values())
    return 0 if ok and len(outcomes) == len(all_passes) else 1


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _wait_stopped(lane: Lane, timeout: float = 60.0) -> None:
    """Wait for a stopped lane's pass to end; kill it if it has not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            proc = lane.current
            if proc is None:
                return
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            lane.join(5.0)
            return
        except subprocess.TimeoutExpired:
            lane.stop(signal.SIGKILL)
            deadline = time.monotonic() + 10
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
            lane.stop(signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.test_passes",
        description="Run make test's passes of pytest in lanes side by side (or --serial); the last line gives"
                    " every pass's exit status. Arguments after -- go to every pass's pytest.")
    parser.add_argument("--serial", action="store_true", help="one pass after another, all printed live")
    parser.add_argument("--no-kafka", action="store_true", help="leave out the Apache Kafka passes (no Java 17)")
    parser.add_argument("--kafka-redis", default="", help="the redis-server binary of the Apache Kafka passes")
    parser.add_argument("--require-browser", action="store_true",
                        help="the browser test fails, not skips, without Chromium (CI)")
    parser.add_argument("--redis-server", action="append", default=[], metavar="NAME=BINARY",
                        help="make test-redis: the integration tests and the reliability suite on Tansu and this"
                             " redis-server, instead of make test's passes (repeat it for each server)")
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest, after --")
    args = parser.parse_args(argv)
    if args.redis_server:
        servers = dict(s.split("=", 1) for s in args.redis_server if "=" in s)
        if len(servers) != len(args.redis_server):
            parser.error("--redis-server takes NAME=BINARY")
        return run(redis_server_lanes(sys.executable, args.pytest_args, servers, serial=args.serial),
                   narrowed=bool(args.pytest_args), label="make test-redis")
    by_name = passes(sys.executable, args.pytest_args, kafka_redis=args.kafka_redis or None,
                     require_browser=args.require_browser)
    return run(lanes(by_name, kafka=not args.no_kafka, serial=args.serial), narrowed=bool(args.pytest_args))


if __name__ == "__main__":
    sys.exit(main())
