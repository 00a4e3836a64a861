"""``creditstream partitions``: the partition counts shown, raised only when it is safe, and the
count subjects are placed over recorded with them; a topic created again with fewer partitions
than recorded stops a worker at its start (streams/placement.py)."""

from __future__ import annotations

import json
import sys

import pytest

from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.workers import run_to_end, worker_env

pytestmark = pytest.mark.integration

PENALTY = schema_of("penalty")


async def cli(settings, *args: str, command: str = "partitions") -> tuple[int, str, str]:
    rc, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", command, *args],
                                    env=worker_env(settings))
    return rc, out.decode(), err.decode()


def row(out: str, topic: str) -> dict:
    [r] = [r for r in json.loads(out) if r["topic"] == topic]
    return r


async def applied_count(redis, settings) -> int:
    from sinks.keys import resolve_keys

    keys = await resolve_keys(redis, settings.namespace)
    return await redis.scard(keys.subjects)


@pytest.mark.kafka_only
async def test_partitions_raised_only_with_the_workers_stopped_and_the_log_applied(settings, department, redis):
    from aiokafka import AIOKafkaProducer

    from creditstream.app import Pipeline
    from ops.report import progress
    from streams.topics import Topics

    topics = Topics(settings)
    subject_events = topics.subject_events
    n = settings.partitions
    pipeline = Pipeline(settings)
    await pipeline.start()
    try:
        # the first worker records the count it places subjects over
        rc, out, err = await cli(settings, "--json")
        assert rc == 0, err
        assert row(out, subject_events) == {"topic": subject_events, "partitions": n, "placed_over": n,
                                            "after": None, "note": ""}
        assert row(out, topics.penalty)["placed_over"] is None  # a department topic is not placed

        rc, out, err = await cli(settings, "--to", str(2 * n))
        assert rc == 1, (out, err)
        assert "worker(s) of namespace" in err and "stop them first" in err
        assert out == ""
        for i in range(3):
            await department.send(PENALTY, sample_event("penalty", decision_doc_no=f"郑罚〔2026〕{i + 1}号"))

        # all three applied before the workers stop (not the first subject state: an input still unread
        # by the ingest agent was read by the next run, which could stop after its subject agent had
        # caught up and before it applied that input's subject event: "inputs still to apply")
        async def all_applied():
            return await progress(settings) >= 3

        await eventually(all_applied, timeout=60)
    finally:
        await pipeline.stop()

    # a subject event not yet applied (the workers stopped before it): refused
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(subject_events, b"{}", key=b"91310110666007217T")
    finally:
        await producer.stop()
    rc, out, err = await cli(settings, "--to", str(2 * n))
    assert rc == 1, (out, err)
    assert "inputs still to apply" in err and subject_events in err

    # applied (a worker dead-letters it), the workers stopped again: the plan, then the change
    pipeline = Pipeline(settings)
    await pipeline.start()
    try:
        async def caught_up():
            rc, out, _ = await cli(settings, "--json", command="positions")
            return rc == 0 and all(r["behind"] == 0 for r in json.loads(out) if r["agent"] == "subject")

        await eventually(caught_up, timeout=60)
    finally:
        await pipeline.stop()
    rc, out, err = await cli(settings, "--to", str(2 * n), "--dry-run")
    assert rc == 0, (out, err)
    assert "dry run: nothing changed" in out
    assert row((await cli(settings, "--json"))[1], subject_events)["partitions"] == n

    rc, out, err = await cli(settings, "--to", str(2 * n))
    assert rc == 0, (out, err)
    assert f"subjects are placed over {2 * n} partitions" in out
    assert "registration" in out and "compacted" in out
    rc, out, err = await cli(settings, "--json")
    assert row(out, subject_events)["partitions"] == row(out, subject_events)["placed_over"] == 2 * n
    assert row(out, topics.list_changes)["placed_over"] == 2 * n
    assert row(out, topics.penalty)["partitions"] == 2 * n
    assert row(out, topics.registration)["partitions"] == n  # left: compacted

    rc, out, err = await cli(settings, "--to", str(2 * n))
    assert rc == 0 and "nothing to change" in out, (out, err)
    rc, out, err = await cli(settings, "--to", str(n))  # the count only grows
    assert rc == 0 and "nothing to change" in out, (out, err)

    # the next worker places over the new count: a new subject's events reach the new partitions
    from sinks.kafka import home_partition
    from sinks.keys import storage_id
    from streams.synthetic import uscc as make_uscc

    uscc = next(u for u in map(make_uscc, range(1, 100))
                if home_partition(storage_id(u, settings.pseudonym_key).encode(), range(2 * n)) >= n)
    pipeline = Pipeline(settings)
    await pipeline.start()
    try:
        assert pipeline.producer.placement[subject_events] == 2 * n
        await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕9号", party_uscc=uscc))

        async def on_a_new_partition():
            rc, out, _ = await cli(settings, "--json", command="positions")
            return rc == 0 and any(r["agent"] == "subject" and r["partition"] >= n and r["end"]
                                   and r["behind"] == 0 for r in json.loads(out))

        await eventually(on_a_new_partition, timeout=60)
    finally:
        await pipeline.stop()


@pytest.mark.tansu_only
async def test_partitions_cannot_be_raised_on_tansu(settings, department):
    rc, out, err = await cli(settings, "--to", "8")
    assert rc == 2, (out, err)
    assert "cannot add partitions" in err


async def test_a_topic_with_fewer_partitions_than_recorded_stops_a_worker(settings, department, redis):
    """As after the subject-event topic was deleted and created again with fewer partitions: the
    worker refuses to place subjects anew (exit 2, one line), before it reads anything."""
    from sinks.keys import Keys
    from streams import kafka
    from streams.topics import Topics
    from tests.workers import WorkerProcess

    await kafka.ensure_topics(settings)
    subject_events = Topics(settings).subject_events
    await redis.hset(Keys(settings.namespace).placement, subject_events, settings.partitions * 3)
    rc, out, err = await cli(settings, "--json")
    assert row(out, subject_events)["placed_over"] == settings.partitions * 3

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        worker = WorkerProcess(settings, Path(tmp) / "worker.log").start()
        try:
            worker.proc.wait(90)
        finally:
            worker.stop()
        log = worker.log_tail()
    assert worker.proc.returncode == 2, log
    assert f"topic {subject_events} has {settings.partitions} partitions, but creditstream placed its subjects " \
           f"over {settings.partitions * 3}" in log
    assert log.strip().splitlines()[-1].startswith(f"creditstream: topic {subject_events} has "), log
    assert "agent started" not in log, log  # before it read anything


@pytest.mark.kafka_only
async def test_a_department_topic_given_partitions_while_the_workers_run_is_read_on_all_of_them(
        settings, department, redis):
    """A department may raise its own topic's partition count at any time (the ingest agent keys
    every input by subject itself). Before: the ingest group read the new partitions only after its
    leader's metadata refresh, 5 minutes later (aiokafka's default ``metadata_max_age_ms``)."""
    from aiokafka import AIOKafkaProducer

    from creditstream.app import Pipeline
    from streams.topics import Topics
    from tests.reliability.test_partitions_added import grow

    s = settings.replace(metadata_max_age_s=3.0)
    penalty = Topics(s).penalty
    pipeline = Pipeline(s)
    await pipeline.start()
    try:
        await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕1号"))
        await eventually(lambda: applied_count(redis, s), timeout=60)
        await grow(s, [penalty], s.partitions + 2)
        producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers)
        await producer.start()
        try:
            value = department.codec.encode(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕2号"),
                                            topic=penalty)
            await producer.send_and_wait(penalty, value, partition=s.partitions + 1)  # a new partition
        finally:
            await producer.stop()

        async def both_applied():
            from sinks.keys import resolve_keys
            from sinks.state_codec import state_json

            keys = await resolve_keys(redis, s.namespace)
            raw = await redis.get(keys.subject(sample_event("penalty")["uscc"]))
            return raw is not None and "郑罚〔2026〕2号" in state_json(raw).decode()

        await eventually(both_applied, timeout=30)
    finally:
        await pipeline.stop()


@pytest.mark.kafka_only
async def test_a_replay_after_partitions_are_raised_applies_each_subject_in_the_workers_order(settings, department,
                                                                                             redis):
    """Seen: after `partitions --to`, a subject's earlier inputs sit on its old partition and its later
    ones on its new partition. A replay read the partitions side by side and applied some subjects'
    later inputs first: their records and lists came out the same, but the order of the origins
    seen, `awaiting_feedback`'s dates and `version` did not, and `replay --verify` reported the
    subjects (89 of 308). `partitions --to` records where the log ended, and a replay reads the log
    span by span (streams/placement.py), in one process and in several."""
    from creditstream.app import Pipeline
    from ops.report import progress
    from sinks.kafka import home_partition
    from sinks.keys import storage_id
    from streams.synthetic import uscc as make_uscc
    from streams.topics import Topics

    n = settings.partitions
    subjects = [make_uscc(500 + i) for i in range(48)]
    moved = [u for u in subjects if home_partition(storage_id(u, settings.pseudonym_key).encode(), range(n))
             != home_partition(storage_id(u, settings.pseudonym_key).encode(), range(2 * n))]
    assert len(moved) >= 12, "the test needs subjects that move"

    async def run(first: int) -> None:
        pipeline = Pipeline(settings)
        await pipeline.start()
        try:
            for i, uscc in enumerate(subjects):
                await department.send(PENALTY, sample_event(
                    "penalty", decision_doc_no=f"郑罚〔2026〕{first + i}号", uscc=uscc))

            async def applied():
                return await progress(settings) >= first // 100 * len(subjects)

            await eventually(applied, timeout=90)
        finally:
            await pipeline.stop()

    await run(100)
    rc, out, err = await cli(settings, "--to", str(2 * n))
    assert rc == 0, (out, err)
    changes = await redis.hgetall(f"{settings.namespace}:placement:changes")
    assert {k.decode() for k in changes} == {f"{t} {2 * n}" for t in (Topics(settings).subject_events,
                                                                      Topics(settings).list_changes)}
    await run(200)

    for jobs in ("1", "2"):
        rc, out, err = await cli(settings, "--verify", "--jobs", jobs, command="replay")
        assert rc == 0, (jobs, out, err[-3000:])
        assert "verify: 0 differences with the live state" in out, out
        assert "list-change ids identical" in out, out
        assert "sit on more than one partition" not in err, err[-3000:]  # no fenced pass: spans
