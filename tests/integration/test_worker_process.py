"""The real worker process (``creditstream worker``, a Faust worker hosting the agents): killed with
SIGKILL mid-stream and restarted, it loses nothing and applies nothing twice."""

from __future__ import annotations

import signal
import subprocess

import pytest

from streams.samples import sample_event, schema_of
from streams.synthetic import uscc
from tests.conftest import eventually
from tests.workers import WorkerProcess, stop_process

pytestmark = pytest.mark.integration


def start_worker(settings, log_path) -> subprocess.Popen:
    return WorkerProcess(settings, log_path).start().proc


async def send_penalties(department, subjects: list[str], total: int) -> None:
    """``total`` penalties spread over ``subjects``, each its own decision."""
    for n in range(total):
        sid = subjects[n % len(subjects)]
        await department.producer.send(
            department.topics.penalty,
            department.codec.encode(schema_of("penalty"), sample_event(
                "penalty", uscc=sid, subject_name=f"测试{sid[-6:]}有限公司", legal_rep_id_no=None,
                decision_doc_no=f"豫测罚〔2024〕{n}号"), topic=department.topics.penalty))
    await department.producer.flush()


async def record_counts(redis, settings, subjects):
    from sinks.keys import Keys
    from sinks.redis_state import read_states

    keys = Keys(settings.namespace)
    return [s for s in await read_states(redis, keys, subjects) if s is not None]  # hot subjects stored split


async def one_input_applied(worker, department, redis, settings, log_path, subject: str) -> None:
    """One input for ``subject`` sent, and applied by the running ``worker``."""
    await send_penalties(department, [subject], 1)

    async def applied():
        assert worker.poll() is None, f"worker exited: {log_path.read_text()[-2000:]}"
        return len(await record_counts(redis, settings, [subject])) == 1

    await eventually(applied, timeout=60)


async def test_worker_killed_mid_stream_loses_nothing(settings, department, redis, tmp_path):
    subjects = [uscc(7000 + i) for i in range(20)]
    total = 1500
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path)
    try:
        await send_penalties(department, subjects, total)

        async def some_applied():
            assert worker.poll() is None, f"worker exited: {log_path.read_text()[-2000:]}"
            states = await record_counts(redis, settings, subjects)
            return sum(len(s["records"]) for s in states) >= 200

        await eventually(some_applied, timeout=60)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        worker = start_worker(settings, log_path)

        async def all_applied():
            assert worker.poll() is None, f"worker exited: {log_path.read_text()[-2000:]}"
            states = await record_counts(redis, settings, subjects)
            n = sum(len(s["records"]) for s in states)
            return states if n >= total else None

        states = await eventually(all_applied, timeout=90)
        assert sum(len(s["records"]) for s in states) == total
        # nothing applied twice: every record has exactly one version and one origin
        for s in states:
            for rec in s["records"].values():
                assert rec["version"] == 1 and len(rec["seen"]) == 1, rec["seen"]
    finally:
        stop_process(worker, 20)
        print(log_path.read_text()[-3000:])


async def test_two_workers_share_the_work_quietly(settings, department, redis, tmp_path):
    """Two workers of one group: every event applied, Faust opens no group of its own (it used to
    rebalance an idle ``<group>-worker`` group every few seconds and log "Heartbeat session expired"
    at error level), and neither worker logs anything at error level."""
    from aiokafka.admin import AIOKafkaAdminClient

    subjects = [uscc(7100 + i) for i in range(12)]
    total = 240
    workers = [WorkerProcess(settings, tmp_path / f"worker{i}.log").start() for i in range(2)]
    try:
        await send_penalties(department, subjects, total)

        async def all_applied():
            for w in workers:
                assert w.alive(), f"worker exited: {w.log_tail()}"
            states = await record_counts(redis, settings, subjects)
            return sum(len(s["records"]) for s in states) >= total

        await eventually(all_applied, timeout=90)
        admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
        await admin.start()
        try:
            groups = {g[0] for g in await admin.list_consumer_groups()}
        finally:
            await admin.close()
        assert f"{settings.consumer_group}-worker" not in groups, groups
        assert f"{settings.consumer_group}.subject" in groups, groups
    finally:
        for w in workers:
            w.stop()
    # stopped (SIGTERM), each removed its heartbeat: `replay --switch` and `positions move` see no
    # worker running (a stop cut short by Faust's cancellation once left them, on Apache Kafka)
    from sinks.keys import Keys

    assert await redis.zrange(Keys(settings.namespace).workers, 0, -1) == []
    started = []
    for w in workers:
        lines = w.log_path.read_text(errors="replace").splitlines()
        errors = [line for line in lines if '"level":"error"' in line or '"level":"critical"' in line]
        assert not errors, errors[:5]
        started += [line for line in lines if '"pipeline started"' in line]
    # they ran on the default event loop, uvloop (creditstream/eventloop.py), and say so once all their
    # agents have partitions (on a busy machine the second may not be there yet when the work is done)
    assert started and all('"event_loop":"uvloop"' in line for line in started), started


async def test_a_subject_outgrowing_the_state_cache_keeps_every_record(settings, department, redis, tmp_path):
    # a state cache of 1 MB: one subject's state outgrows a quarter of it (past ~64 records, held as
    # objects) while its batches go on. The state the cache held before must not be served again:
    # it was, and each batch applied its inputs to that older state and wrote the result over the
    # records since (seen: "its head names 80 record parts, Redis holds 120")
    hot = uscc(7100)
    s = settings.replace(state_cache_mb=1, max_batch=40)
    worker = start_worker(s, tmp_path / "worker.log")
    try:
        await send_penalties(department, [hot], 400)

        async def all_applied():
            assert worker.poll() is None, f"worker exited: {(tmp_path / 'worker.log').read_text()[-2000:]}"
            states = await record_counts(redis, s, [hot])
            return bool(states) and len(states[0]["records"]) >= 400

        await eventually(all_applied, timeout=90)
    finally:
        worker.terminate()
        worker.wait(10)
    [state] = await record_counts(redis, s, [hot])
    assert len(state["records"]) == 400


async def test_a_position_past_the_log_end_stops_the_worker_after_its_patience_not_at_once(settings, department,
                                                                                           redis, tmp_path):
    """Redis ahead of the log (a topic recreated, the wrong Redis) cannot be proved right: the worker
    fetches the partition again, waiting longer each time, for ``log_end_patience_s``, then stops with
    a non-zero status and says why. Not at once: a new Kafka partition leader may report an old log
    end for a moment after a failover (docs/operations.md)."""
    import time

    from sinks.keys import resolve_keys

    s = settings.replace(log_end_patience_s=3.0)
    subject = uscc(7100)
    log_path = tmp_path / "worker.log"
    worker = start_worker(s, log_path)
    try:
        await one_input_applied(worker, department, redis, s, log_path, subject)
        keys = await resolve_keys(redis, s.namespace)
        moved = {}
        for p in range(s.partitions):
            if (v := await redis.get(keys.position(p))) is not None:
                moved[p] = int(v) + 1000
                await redis.set(keys.position(p), moved[p])
        assert moved
        t0 = time.monotonic()
        await send_penalties(department, [subject], 1)  # the same subject: a partition whose position moved

        async def stopped():
            return worker.poll() is not None

        await eventually(stopped, timeout=60)
        waited = time.monotonic() - t0
        log = log_path.read_text()
        assert worker.returncode != 0, log[-2000:]
        assert "the state is not from this log" in log, log[-2000:]
        assert "Traceback" not in log, log[-4000:]  # said in one line: no traceback, Faust's crash line included
        from agents.subject import AHEAD_LIMIT

        # fetched again before each of the AHEAD_LIMIT checks but the last, which stops it, each after
        # its wait (0.2 + 0.4 + 0.8 + 1.6 s: the patience of 3 s is reached at the fifth check);
        # without the waits the agent would fetch again hundreds of times within the patience
        fetched_again = log.count("the log ends before the position Redis records: fetching again")
        assert AHEAD_LIMIT - 1 <= fetched_again <= AHEAD_LIMIT + 1, log[-3000:]
        assert waited >= 3.0
    finally:
        stop_process(worker, 20)


async def applied_then_stopped(settings, department, redis, log_path, subject: str) -> None:
    """A worker applies one input for ``subject``, then is stopped (SIGTERM)."""
    worker = start_worker(settings, log_path)
    try:
        await one_input_applied(worker, department, redis, settings, log_path, subject)
    finally:
        stop_process(worker, 20)


def stops_with(settings, log_path, says: str):
    """A worker started now stops by itself, non-zero, its log saying ``says``."""
    async def check():
        worker = start_worker(settings, log_path)
        try:
            async def stopped():
                return worker.poll() is not None

            await eventually(stopped, timeout=90)
            log = log_path.read_text()
            assert worker.returncode != 0, log[-2000:]
            assert says in log, log[-2000:]
        finally:
            stop_process(worker, 20)

    return check()


async def test_a_worker_started_on_positions_past_the_log_end_stops_while_idle(settings, department, redis,
                                                                              tmp_path):
    """Redis ahead of the log when the workers start (a topic recreated, the wrong Redis, while they
    were stopped), and no new input: no batch comes to be checked. The check every few seconds, busy
    or idle, sees it: after its patience the worker stops, non-zero, and says why. It used to wait for
    ever with /health ok (and on Tansu, whose fetch past a log's end answers nothing, with new inputs
    too). Every line of its log is JSON (no terminal spinner's controls in a file)."""
    import orjson

    from sinks.keys import resolve_keys

    s = settings.replace(log_end_patience_s=3.0)
    first_log = tmp_path / "worker.log"
    await applied_then_stopped(s, department, redis, first_log, uscc(7300))
    for line in first_log.read_text().splitlines():
        orjson.loads(line)
    keys = await resolve_keys(redis, s.namespace)
    moved = 0
    for p in range(s.partitions):
        if (v := await redis.get(keys.position(p))) is not None:
            await redis.set(keys.position(p), int(v) + 1000)
            moved += 1
    assert moved
    await stops_with(s, tmp_path / "worker-again.log", "the state is not from this log")


async def test_a_worker_started_on_a_redis_that_lost_everything_stops_without_waiting_for_an_input(
        settings, department, redis, tmp_path):
    """Redis emptied while the workers were stopped (a flush, a restart without persistence): the
    worker stops at start, loudly, with "Redis has no state" (docs/operations.md, "Redis empty"),
    not at the next input. On Tansu, which drops a commit's metadata (docs/broker.md 11), the worker
    served the empty state with /health ok until an input came."""
    await applied_then_stopped(settings, department, redis, tmp_path / "worker.log", uscc(7400))
    gone = [key async for key in redis.scan_iter(match=f"{settings.namespace}:*")]
    assert gone
    await redis.unlink(*gone)
    await stops_with(settings, tmp_path / "worker-again.log", "Redis has no state")
