"""A worker told to stop (SIGTERM: a rolling deploy, a scale-down) stops within a few seconds, whatever
it is doing: idle, busy with a backlog, retrying a batch while Redis is down or hung, with the broker
frozen, still waiting for its services at start-up, or serving the API (``--web``) with a request
in flight. It exits 0, says in its log that it stops and
what it leaves (a batch in hand is processed again by the next owner), leaves its consumer groups
so that another worker takes its partitions at once, and nothing is lost: the state equals the
oracle's once a worker has caught up again.

A supervisor's grace period (docker compose's ``stop_grace_period``, Kubernetes'
``terminationGracePeriodSeconds``) ends in SIGKILL: a worker still stopping then leaves its groups
only when the session timeout expires. ``STOP_BOUND_S`` is within the 10 s of docker compose's default
and generous for a shared test machine (a stop takes 1-3 s, 6 s with the broker frozen mid-batch)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import pytest

from creditstream.app import STOP_WITHIN_S
from streams.synthetic import EventGenerator
from streams.topics import Topics
from tests.conftest import eventually
from tests.reliability import harness
from tests.workers import WorkerProcess, wait_for_log

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

STOP_BOUND_S = STOP_WITHIN_S
"""The longest a requested stop may take (creditstream/app.py; its own pipeline's bound is STOP_BUDGET_S)."""


def terminate(worker: WorkerProcess, limit: float = 60.0) -> tuple[float, int | None]:
    """SIGTERM the worker; (seconds until it exited, exit code). A worker still running after
    ``limit`` is killed (exit code None)."""
    t0 = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    try:
        code = worker.proc.wait(limit)
    except subprocess.TimeoutExpired:
        worker.kill()
        return time.monotonic() - t0, None
    took = time.monotonic() - t0
    print(f"\n[stop] {worker.log_path.name}: exited {code} after {took:.2f} s")
    return took, code


def assert_stopped_cleanly(worker: WorkerProcess, took: float, code: int | None, *, said: str = '"stopping: ') -> str:
    log = worker.log_tail(10 ** 9)
    tail = log[-4000:]
    assert code is not None, f"still running {took:.0f} s after SIGTERM: {tail}"
    assert took < STOP_BOUND_S, f"took {took:.1f} s to stop: {tail}"
    assert code == 0, f"exit code {code} for a requested stop: {tail}"
    assert said in log, f"no {said!r} in the log: {tail}"
    assert '"level":"critical"' not in log, tail
    return log


async def caught_up_without_loss(s, redis, tmp_path, what: str) -> None:
    """A new worker catches up: nothing lost, the state equals the oracle's."""
    worker = WorkerProcess(s, tmp_path / "after.log").start()
    try:
        await harness.quiescent(s, redis)
        diverged = await harness.divergence(s, redis)
        lost = await harness.lost_inputs(s, redis)
    finally:
        worker.stop()
    assert not diverged, f"{what}: {diverged[:10]}"
    assert not lost, f"{what}: {lost[:10]}"


@pytest.mark.slow  # the busy and outage cases below cover its path in CI
async def test_idle_worker_stops_at_once(settings, department, redis, tmp_path):
    gen = EventGenerator(seed=31, subjects=50)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await wait_for_log(worker, "pipeline started")
        await harness.produce(department, gen, 100)
        await harness.quiescent(settings, redis)
        took, code = terminate(worker)
    finally:
        worker.stop()
    log = assert_stopped_cleanly(worker, took, code)
    assert "pipeline stopped" in log


async def test_busy_worker_stops_in_the_middle_of_its_backlog(settings, department, redis, tmp_path):
    s = settings.replace(max_batch=200)
    gen = EventGenerator(seed=32, subjects=400)
    await harness.produce(department, gen, harness.EVENTS)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    try:
        from ops.report import progress

        async def some_done():
            assert worker.alive(), worker.log_tail()
            return await progress(s) >= 200

        await eventually(some_done, timeout=90)
        assert await progress(s) < harness.EVENTS, "the backlog was done before the stop: make it larger"
        took, code = terminate(worker)
    finally:
        worker.stop()
    log = assert_stopped_cleanly(worker, took, code)
    # its first line says what of the machine it may use (creditstream/host.py)
    line = next(line for line in log.splitlines() if '"pipeline started"' in line)
    started = json.loads(line[line.index("{"):])
    assert started["cpus"] >= 1 and started["memory_available_mib"] > 0, started
    # its last line says what it held (creditstream/holdings.py): it had handled hundreds of inputs
    line = next(line for line in log.splitlines() if '"pipeline stopped"' in line)
    stopped = json.loads(line[line.index("{"):])
    assert stopped["held"]["storage_ids"] > 0 and stopped["held"]["is_valid_uscc"] > 0, stopped
    await caught_up_without_loss(s, redis, tmp_path, "after a stop in the middle of a backlog")


@pytest.mark.parametrize("outage", [pytest.param("stopped", marks=pytest.mark.slow), "hung"])
async def test_worker_retrying_a_batch_for_redis_stops(outage, settings, department, redis, stack, tmp_path):
    """Redis stopped (connections refused) or hung (SIGSTOP: connections open, nothing answered): the
    worker holds a batch and retries it; told to stop, it abandons the batch (its offsets are not
    committed: the next owner processes it again) and exits."""
    s = settings.replace(max_batch=200)
    gen = EventGenerator(seed=33, subjects=200)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    pid = stack.status()["redis"]["pid"]
    try:
        await wait_for_log(worker, "pipeline started")
        await harness.produce(department, gen, 300)
        await harness.quiescent(s, redis)
        if outage == "stopped":
            stack.stop_redis()
        else:
            os.kill(pid, signal.SIGSTOP)
        await harness.produce(department, gen, 300)
        await wait_for_log(worker, "batch failed, retrying", timeout=60)
        took, code = terminate(worker)
    finally:
        if outage == "hung":
            os.kill(pid, signal.SIGCONT)
        elif not stack.status()["redis"]["alive"]:
            stack.start_redis()
        worker.stop()
    log = assert_stopped_cleanly(worker, took, code)
    assert "abandon" in log, log[-3000:]
    await caught_up_without_loss(s, redis, tmp_path, f"after a stop while Redis was {outage}")


@pytest.mark.parametrize("busy", [pytest.param(False, marks=pytest.mark.slow), True])
async def test_worker_stops_with_the_broker_frozen(busy, settings, department, redis, stack, tmp_path):
    """The broker frozen (SIGSTOP: connections open, nothing answered) while the worker is idle, or
    while it works through a backlog (a batch waits for its messages' acknowledgements)."""
    from ops.report import progress

    s = settings.replace(max_batch=200)
    gen = EventGenerator(seed=34, subjects=300)
    if busy:
        await harness.produce(department, gen, harness.EVENTS)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    try:
        await wait_for_log(worker, "pipeline started")
        if busy:
            async def some_done():
                assert worker.alive(), worker.log_tail()
                return await progress(s) >= 200

            await eventually(some_done, timeout=90)
        else:
            await harness.produce(department, gen, 300)
            await harness.quiescent(s, redis)
        stack.pause_broker()
        try:
            await asyncio.sleep(1.0)
            took, code = terminate(worker)
        finally:
            stack.resume_broker()
    finally:
        worker.stop()
    assert_stopped_cleanly(worker, took, code)
    await eventually(lambda: broker_answers(s), timeout=60, interval=0.5)  # (a resumed cluster settles first)
    await harness.produce(department, gen, 100)
    await caught_up_without_loss(s, redis, tmp_path, "after a stop with the broker frozen")


async def broker_answers(s) -> bool:
    try:
        for name in Topics(s).ingest_sources:
            await harness.log_size(s, name)
    except Exception:  # noqa: BLE001 - not yet
        return False
    return True


@pytest.mark.parametrize("broker", [pytest.param("refusing", marks=pytest.mark.slow), "frozen"])
async def test_worker_waiting_for_services_at_start_stops(broker, settings, stack, tmp_path):
    """``worker --wait``: the broker does not answer yet (nothing listens on its port, or it is frozen);
    told to stop, the worker stops waiting and exits 0."""
    from ops.processes import free_port_from

    s = settings
    if broker == "refusing":
        s = settings.replace(broker_url=f"127.0.0.1:{free_port_from(set())}")
    else:
        stack.pause_broker()
    worker = WorkerProcess(s, tmp_path / "worker.log", "--wait", "120").start()
    try:
        await wait_for_log(worker, "waiting for services", timeout=60)
        took, code = terminate(worker)
    finally:
        if broker == "frozen":
            stack.resume_broker()
        worker.stop()
    assert_stopped_cleanly(worker, took, code)


@pytest.mark.kafka_only
async def test_a_stopped_worker_hands_its_partitions_over_at_once(settings, department, redis, tmp_path):
    """Two workers, production's session timeout (10 s): the stopped worker leaves its groups, so the
    other one is assigned all their partitions within a few seconds, not after the session timeout,
    and applies what arrives on them. Apache Kafka only: Tansu answers JoinGroup after half the session
    timeout (docs/broker.md 8), so there the handover is not prompt and the test took 33-44 s to show
    only what the kill and restart tests show."""
    from ops.report import progress

    s = settings.replace(session_timeout_ms=10_000, max_batch=200)
    gen = EventGenerator(seed=35, subjects=300)
    a = WorkerProcess(s, tmp_path / "a.log").start()
    b = WorkerProcess(s, tmp_path / "b.log").start()
    try:
        totals = await partitions_of_agents(s, a)
        await eventually(lambda: asyncio.sleep(0, shared(a, b, totals)), timeout=90, interval=0.5)
        await harness.produce(department, gen, 300)
        await harness.quiescent(s, redis)
        before = len(b.log_tail(10 ** 9))
        t0 = time.monotonic()
        took, code = terminate(a)

        def b_holds_all():
            assert b.alive(), b.log_tail()
            held = assignments(b.log_tail(10 ** 9)[before:])
            return all(held.get(agent) == n for agent, n in totals.items())

        await eventually(lambda: asyncio.sleep(0, b_holds_all()), timeout=60, interval=0.1)
        handed_over = time.monotonic() - t0
        await harness.produce(department, gen, 300)  # over every partition: a's too
        inputs = sum([await harness.log_size(s, name) for name in Topics(s).ingest_sources])

        async def all_done():
            assert b.alive(), b.log_tail()
            return await progress(s) >= inputs

        await eventually(all_done, timeout=60, interval=0.2)
        print(f"\n[handover] the other worker held every partition {handed_over:.2f} s after the SIGTERM "
              f"(the stop took {took:.2f} s)")
    finally:
        a.stop()
        b.stop()
    assert_stopped_cleanly(a, took, code)
    assert handed_over < STOP_BOUND_S, (f"the other worker took {handed_over:.1f} s to be assigned the stopped "
                                        f"worker's partitions: {b.log_tail()}")
    await caught_up_without_loss(s, redis, tmp_path, "after one of two workers stopped")


def assignments(log: str) -> dict[str, int]:
    """Each agent's partition count in its last "partitions assigned" line of ``log``."""
    held = {}
    for line in log.splitlines():
        if '"partitions assigned"' in line:
            entry = json.loads(line)
            held[entry["agent"]] = entry["partitions"]
    return held


def shared(a: WorkerProcess, b: WorkerProcess, totals: dict[str, int]) -> bool:
    """Both workers hold part of every agent's partitions (they share each group)."""
    ha, hb = assignments(a.log_tail(10 ** 9)), assignments(b.log_tail(10 ** 9))
    return all(ha.get(agent, 0) + hb.get(agent, 0) == n and ha.get(agent) and hb.get(agent)
               for agent, n in totals.items())


async def partitions_of_agents(s, worker: WorkerProcess) -> dict[str, int]:
    """Each batch agent's partition count, over the topics its "agent started" line names."""
    from streams import kafka

    await wait_for_log(worker, "pipeline started", timeout=90)
    out = {}
    for line in worker.log_tail(10 ** 9).splitlines():
        if '"agent started"' in line:
            entry = json.loads(line)
            out[entry["agent"]] = sum([len(await kafka.partitions_of(s, t)) for t in entry["topics"]])
    return out


@pytest.mark.parametrize("in_flight", [pytest.param(None, marks=pytest.mark.slow), "/changes"])
async def test_worker_serving_the_api_stops_at_once(in_flight, settings, department, redis, stack, tmp_path):
    """``worker --web`` (as docker-compose.yml runs it): the web server's shutdown does not wait for
    a request in flight (``/changes`` with the broker frozen waits up to its Kafka timeout, 15 s:
    the worker took 19.3 s to stop, aiohttp waiting up to 60 s for its requests)."""
    import threading
    import urllib.request

    from ops.processes import free_port_from
    from tests.workers import wait_until_serving

    port = free_port_from(set())
    worker = WorkerProcess(settings, tmp_path / "worker.log", "--web", "--web-port", str(port)).start()
    answers: list = []
    try:
        wait_until_serving(port, worker)
        await wait_for_log(worker, "pipeline started")
        if in_flight:
            stack.pause_broker()

            def ask():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{in_flight}", timeout=60) as answer:
                        answers.append(answer.status)
                except Exception as exc:  # noqa: BLE001 - the stop may cut it: any end will do
                    answers.append(repr(exc))

            threading.Thread(target=ask, daemon=True).start()
            await asyncio.sleep(1.0)
        try:
            took, code = terminate(worker)
        finally:
            if in_flight:
                stack.resume_broker()
    finally:
        worker.stop()
    print(f"[web] request in flight {in_flight}: {answers}")
    assert_stopped_cleanly(worker, took, code)
