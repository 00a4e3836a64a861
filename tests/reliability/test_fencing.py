"""Faults the fenced pipeline must survive (issue: nothing lost when the infrastructure misbehaves):
a worker paused past its session timeout and resumed while another owns its partitions; Redis
restored from a copy taken seconds earlier; poison on the subject-event log; a record re-delivered
100 times; Redis refusing writes with thousands of ticks due; a worker clock a day ahead.

After each: the state equals the pure oracle, nothing is lost, list changes (deduplicated by id)
equal the oracle's, and no worker is down."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time

import pytest

from domain.clock import CHINA
from streams.samples import sample_event, schema_of
from streams.synthetic import EventGenerator
from tests.conftest import eventually
from tests.reliability import harness
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

PAUSES = int(os.environ.get("RELIABILITY_PAUSES", "2"))
RESTORES = int(os.environ.get("RELIABILITY_RESTORES", "1"))

# A point-in-time copy of one namespace, as an RDB/AOF restore or a failover to a lagging replica
# gives: taken and put back atomically (one script each).
_SNAPSHOT = """
local out = {}
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
  out[#out + 1] = k
  out[#out + 1] = redis.call('DUMP', k)
end
return out
"""
_RESTORE = """
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end
for i = 2, #ARGV, 2 do redis.call('RESTORE', ARGV[i], 0, ARGV[i + 1]) end
return 1
"""




async def check(s, redis, workers, what):
    await harness.quiescent(s, redis, timeout=180)
    diverged = await harness.divergence(s, redis)
    lost = await harness.lost_inputs(s, redis)
    logs = "".join(w.log_tail(10 ** 9) for w in workers)
    harness.record(lost=len(lost), diverged=len(diverged), pii_leaks=len(harness.pii_leaks(logs)),
                   crashes=harness.crashes("fencing", logs))
    assert all(w.alive() for w in workers), "a worker is down: " + workers[0].log_tail()
    assert not diverged, f"{what}: {diverged[:10]} ({len(diverged)} in all; lost {len(lost)}): " + \
        await harness.difference(s, redis, diverged)
    assert not lost, f"{what}: {lost[:10]}"


async def test_a_paused_worker_is_fenced_out(settings, department, redis, tmp_path):
    s = settings.replace(max_batch=300, timer_interval_s=0.5)
    gen = EventGenerator(seed=21, subjects=max(60, harness.EVENTS // 20), legacy_rate=0.0, hot_share=0.05)
    a = WorkerProcess(s, tmp_path / "a.log").start()
    b = WorkerProcess(s, tmp_path / "b.log").start()
    pauses = 0
    chunk = max(200, harness.EVENTS // max(1, PAUSES))
    try:
        await asyncio.sleep(3)
        for _ in range(PAUSES):
            await harness.produce(department, gen, chunk)
            await asyncio.sleep(0.3)  # mid-stream
            os.kill(b.proc.pid, signal.SIGSTOP)  # a GC pause, a frozen VM
            await harness.produce(department, gen, chunk // 2)
            await asyncio.sleep(s.session_timeout_ms / 1000 * 2 + 1)  # past the session timeout
            os.kill(b.proc.pid, signal.SIGCONT)
            pauses += 1
            await asyncio.sleep(1.0)
        await check(s, redis, [a, b], f"after {pauses} pauses")
        fenced = "batch fenced out" in (a.log_tail(10 ** 9) + b.log_tail(10 ** 9))
        harness.record(pauses=pauses, events=pauses * (chunk + chunk // 2), fenced_batches=int(fenced))
    finally:
        if b.alive():
            os.kill(b.proc.pid, signal.SIGCONT)
        a.stop()
        b.stop()


async def test_a_worker_paused_between_its_state_write_and_its_produce_misleads_no_subscriber(
        settings, department, redis, tmp_path):
    """Seen (an audit on Apache Kafka): worker A stops after its fenced state write and before it
    produces the batch's list changes; B takes the partitions over, produces A's outbox (an entry) and,
    for a later input, newer changes (the entry withdrawn, another entered); A resumes and produces its
    copy of the entry, after the withdrawal. Folded as docs/events.md said (a map by change id), the
    withdrawn entry came back. Each change now carries its announcement's sequence: the copy's is
    below the withdrawal's, and the fold skips it (agents/subject.py ``announcement_sequence``)."""
    from ops.replay import live_changes, stale_copies

    flag = tmp_path / "pause"
    a = WorkerProcess(settings, tmp_path / "a.log", module="tests.reliability.paused_worker",
                      env={"PAUSE_FLAG": str(flag)}).start()
    b = WorkerProcess(settings, tmp_path / "b.log")
    subject = "91310110666007217T"

    def penalty(doc_no: str, day: dt.date) -> dict:
        return sample_event("penalty", uscc=subject, decision_doc_no=doc_no, severity="严重", domain="taxation",
                            decision_date=day, legal_rep_name=None, legal_rep_id_type=None, legal_rep_id_no=None)

    try:
        await eventually(lambda: _logged(a, "agent started"), timeout=60)
        flag.touch()
        await department.send(schema_of("penalty"), penalty("税罚〔2026〕1号", dt.date(2026, 5, 11)))
        await eventually(lambda: _logged(a, "PAUSED after the state write"), timeout=60)
        b.start()  # takes every partition once A's session has expired
        await eventually(lambda: _owns_every_subject_partition(b, settings), timeout=150)
        # an earlier severe decision: B produces A's outbox (the 2026-05-11 entry), then withdraws that
        # entry and announces one of 2025-10-25
        await department.send(schema_of("penalty"), penalty("税罚〔2025〕9号", dt.date(2025, 10, 25)))
        await eventually(lambda: _logged(b, "produced the outbox of an earlier batch"), timeout=60)
        await eventually(lambda: _transitions(settings, "withdrawn"), timeout=60)
        os.kill(a.proc.pid, signal.SIGCONT)
        await eventually(lambda: _logged(a, "RESUMED"), timeout=30)
        await eventually(lambda: _copies_of_the_first_entry(settings, 2), timeout=60)  # B's from the outbox, A's
        # the subscriber's fold (docs/events.md): the withdrawn entry stays withdrawn
        held = await _fold(settings)
        assert {(c["list"], c["transition"], str(c["effective_date"])) for c in held.values()
                if c["list"] == "blacklist:taxation"} == {("blacklist:taxation", "entered", "2025-10-25")}, held
        assert stale_copies(await live_changes(settings)) >= 1  # `replay --verify` tells of A's copy
        assert all(w.alive() for w in (a, b))
    finally:
        if a.alive():
            os.kill(a.proc.pid, signal.SIGCONT)
        a.stop()
        b.stop()


async def _logged(worker: WorkerProcess, text: str) -> bool:
    return text in worker.log_tail(10 ** 9)


async def _owns_every_subject_partition(worker: WorkerProcess, settings) -> bool:
    wanted = f'"agent":"subject","partitions":{settings.partitions},'
    return wanted in worker.log_tail(10 ** 9).replace(" ", "")


async def _copies_of_the_first_entry(settings, n: int) -> bool:
    return len([c for c in await _transitions(settings, "entered")
                if c["list"] == "blacklist:taxation" and str(c["effective_date"]) == "2026-05-11"]) >= n


async def _decoded_changes(settings) -> list[dict]:
    from creditstream.connections import make_codec
    from streams import kafka
    from streams.topics import Topics

    codec = make_codec(settings)
    out = []
    async for batch in kafka.read_to_end(settings, Topics(settings).list_changes):
        for msg in batch:
            out.append(codec.decode(msg.value)[1])
    return out


async def _transitions(settings, transition: str) -> list[dict]:
    return [c for c in await _decoded_changes(settings) if c["transition"] == transition]


async def _fold(settings) -> dict[str, dict]:
    """docs/events.md, Folding: a change whose sequence is below its subject's highest is skipped; a
    withdrawal removes the change it names; any other change adds itself."""
    held: dict[str, dict] = {}
    highest: dict[str, int] = {}
    for change in await _decoded_changes(settings):
        subject = change["subject_id"]
        if change["sequence"] < highest.get(subject, 0):
            continue
        highest[subject] = change["sequence"]
        if change["transition"] == "withdrawn":
            held.pop(change["withdraws"], None)
        else:
            held[change["change_id"]] = change
    return held


async def test_redis_restored_from_a_copy_seconds_old(settings, department, redis, tmp_path):
    s = settings.replace(max_batch=200)
    # legacy numbers too: the ingest agent's index and parked records must survive the restore as well
    gen = EventGenerator(seed=22, subjects=max(60, harness.EVENTS // 20), legacy_rate=0.05, hot_share=0.05)
    snapshot, restore = redis.register_script(_SNAPSHOT), redis.register_script(_RESTORE)
    pattern = f"{s.namespace}:*"
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    restores = 0
    try:
        await harness.produce(department, gen, harness.EVENTS // 4)
        await harness.quiescent(s, redis, timeout=300)
        for _ in range(RESTORES):
            copy = await snapshot(keys=[], args=[pattern])
            assert copy, "nothing to copy"
            await harness.produce(department, gen, harness.EVENTS // 4)  # the worker applies these...
            await harness.quiescent(s, redis, timeout=300)
            await restore(keys=[], args=[pattern, *copy])  # ...and Redis comes back without them
            restores += 1
            await harness.produce(department, gen, harness.EVENTS // 4)  # the next inputs find Redis behind
        await check(s, redis, [worker], f"after {restores} stale restores")
        assert "Redis is behind the log" in worker.log_tail(10 ** 9)
        harness.record(stale_restores=restores, events=(1 + 2 * RESTORES) * (harness.EVENTS // 4))
    finally:
        worker.stop()


POISON = [
    b"{}", b"[1,2,3]", b'{"subject":["a"]}', b'{"subject": null}', b"", b"\xff\xfe\x00", b"null", b"42",
    b'{"type":"record","subject":"S1","origin":"o/0/1","event_ms":1}',
    b'{"type":"record","subject":null,"origin":"o/0/2","event_ms":1,"record":{},"hash":"h"}',
    b'{"type":"tick","subject":"S2","origin":"tick:S2:x","event_ms":1,"due":"2024-13-45"}',
    b'{"type":"record","subject":"S3","origin":"o/0/3","event_ms":100000000000000000000,"record":{},"hash":"h"}',
    b'{"type":"objection","subject":"S4","origin":"o/0/4","event_ms":1,"objection_id":"x","record_key":"k",'
    b'"status":"weird","filed":"2024-01-02"}',
    b'{"type":"whatever","subject":"S5","origin":"o/0/5","event_ms":1}',
    b'{"type":"repair","subject":"S6","origin":"o/0/6","event_ms":1,"record_key":"k","decision_date":"tomorrow"}',
    b'{"type":"feedback","subject":"","origin":"o/0/7","event_ms":1,"change_id":"c"}',
]


async def test_poison_on_the_subject_event_log(settings, department, redis, tmp_path):
    from ops.dlq import list_dead_letters

    s = settings.replace(max_batch=100)
    gen = EventGenerator(seed=23, subjects=50, legacy_rate=0.0, malformed_rate=0.0)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    try:
        await harness.produce(department, gen, 100)
        for i, raw in enumerate(POISON):
            await department.send_raw(department.topics.subject_events, raw, key=f"S{i % 4}".encode())
        await harness.produce(department, gen, 200)  # the partitions go on
        await check(s, redis, [worker], "after poison")

        async def all_dead():
            letters = [d for d in await list_dead_letters(s) if d["source_topic"] == department.topics.subject_events]
            return letters if len(letters) >= len(POISON) - 1 else None

        letters = await eventually(all_dead, timeout=30)
        reasons = {d["reason"] for d in letters}
        assert reasons <= {"bad-subject-event", "processing-error", "invalid-objection"}, reasons
        harness.record(poison_cases=len(POISON), events=300)
    finally:
        worker.stop()


async def test_a_record_redelivered_100_times_applies_once(settings, department, redis, tmp_path):
    from ops.inspect import subject_state

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        topic = department.topics.for_kind("penalty")
        value = department.codec.encode(schema_of("penalty"), sample_event("penalty"), topic=topic)
        for _ in range(100):
            await department.producer.send(topic, value)
        await department.producer.flush()
        await check(settings, redis, [worker], "after 100 re-deliveries")
        state = await subject_state(settings, sample_event("penalty")["uscc"])
        [entry] = state["records"].values()
        assert entry["version"] == 1
        harness.record(redeliveries=100, events=100)
    finally:
        worker.stop()


async def test_redis_refusing_writes_with_ticks_due_does_not_multiply_ticks(settings, department, redis, tmp_path):
    from sinks.keys import resolve_keys
    from streams import kafka

    s = settings.replace(timer_interval_s=0.2)
    gen = EventGenerator(seed=24, subjects=max(200, harness.EVENTS // 5), legacy_rate=0.0, malformed_rate=0.0)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()

    async def ticks() -> int:
        n = 0
        async for batch in kafka.read_to_end(s, department.topics.subject_events):
            n += sum(1 for m in batch if m.value.startswith(b'{"type":"tick"'))
        return n

    try:
        await harness.produce(department, gen, max(400, harness.EVENTS // 2))
        await harness.quiescent(s, redis)
        keys = await resolve_keys(redis, s.namespace)
        subjects = [m.decode() for m in await redis.smembers(keys.subjects)]
        before = await ticks()
        refused_s = max(3.0, harness.OUTAGE_S)
        # thousands of due instants, and from the same moment every write refused (NOREPLICAS), as a
        # read-only replica, a full disk or maxmemory would refuse them
        tx = redis.pipeline(transaction=True)
        tx.zadd(keys.due, {sid: int(time.time() * 1000) - 1000 for sid in subjects})
        tx.config_set("min-replicas-to-write", 1)
        await tx.execute()
        await asyncio.sleep(refused_s)
        during = await ticks() - before
        await redis.config_set("min-replicas-to-write", 0)
        assert during <= len(subjects), f"{during} ticks for {len(subjects)} due instants"
        await check(s, redis, [worker], "after Redis refused writes")
        after = await ticks() - before
        assert after <= 2 * len(subjects), f"{after} ticks for {len(subjects)} due instants"
        harness.record(ticks_due=len(subjects), ticks_written=after)
    finally:
        await redis.config_set("min-replicas-to-write", 0)
        worker.stop()


async def test_a_worker_clock_a_day_behind_fires_what_is_due_by_redis_clock(settings, department, redis, tmp_path):
    """A timer whose clock was behind Redis's fired nothing due until its clock caught up, while it held
    the lease (an audit: the other worker never took over, the backlog gauge said 0). It fires what is
    due by Redis's clock. (The test's shift, clock_offset_s, is not corrected by the worker: only a
    host clock that is off is; domain/clock.py ``follow_reference``.)"""
    from tests.integration.test_rules_scenario import read_changes

    today = dt.datetime.now(CHINA).date()
    listed = today.replace(year=today.year - 2)  # the 2-year term ended today at 00:00 in China
    if listed.month == 2 and listed.day == 29:
        listed -= dt.timedelta(days=1)
    s = settings.replace(timer_interval_s=0.2, clock_offset_s=-86_400.0)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    try:
        stamped = int(time.time() * 1000) - 2 * 86_400_000  # not in the future of a clock a day behind
        await department.send(schema_of("court_listing"), sample_event(
            "court_listing", listing_reason="obstruct", listing_date=listed, publish_date=listed),
            timestamp_ms=stamped)

        async def exited():
            return [c for c in await read_changes(s) if c["transition"] == "exited"] or None

        changes = await eventually(exited, timeout=30)  # (the court's and its legal representative's)
        assert {str(c["effective_date"]) for c in changes} == {listed.replace(year=listed.year + 2).isoformat()}
        harness.record(clock_behind_runs=1)
    finally:
        worker.stop()


async def test_a_worker_clock_a_day_ahead_fires_nothing_early(settings, department, redis, tmp_path):
    from tests.integration.test_rules_scenario import read_changes

    today = dt.datetime.now(CHINA).date()
    listed = today.replace(year=today.year - 2) + dt.timedelta(days=1)  # the 2-year term ends tomorrow
    if listed.month == 2 and listed.day == 29:
        listed += dt.timedelta(days=1)
    s = settings.replace(timer_interval_s=0.2, clock_offset_s=86_400.0)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    try:
        await department.send(schema_of("court_listing"), sample_event(
            "court_listing", listing_reason="obstruct", listing_date=listed, publish_date=listed))

        async def entered():
            return [c for c in await read_changes(s) if c["transition"] == "entered"] or None

        await eventually(entered, timeout=30)
        await asyncio.sleep(3.0)  # a timer with the clock a day ahead would have fired the expiry
        changes = await read_changes(s)
        assert not [c for c in changes if c["transition"] == "exited"], changes
        assert "clock ahead of the reference" in worker.log_tail(10 ** 9)
        harness.record(clock_ahead_runs=1)
    finally:
        worker.stop()
