"""``creditstream positions``: each agent's positions shown, and the ingest agent's moved to skip
inputs, on a real broker and redis-server.

Skipping department inputs by moving the ingest group forward alone does not skip them: the
worker finds the position Redis records behind the new commit (as after a Redis that lost its
last writes) and reads them again (docs/operations.md). ``positions move`` moves both."""

from __future__ import annotations

import json
import sys

import pytest

from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.workers import run_to_end, worker_env

pytestmark = pytest.mark.integration

PENALTY = schema_of("penalty")
UNIT_USCC = "91310110666007217T"


async def cli(settings, *args: str) -> tuple[int, str, str]:
    rc, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "positions", *args],
                                    env=worker_env(settings))
    return rc, out.decode(), err.decode()


async def state_text(redis, settings) -> str:
    from sinks.keys import resolve_keys
    from sinks.state_codec import state_json

    keys = await resolve_keys(redis, settings.namespace)
    raw = await redis.get(keys.subject(UNIT_USCC))
    return "" if raw is None else state_json(raw).decode()


async def applied(redis, settings, doc_no: str) -> None:
    async def check():
        return doc_no in await state_text(redis, settings)

    await eventually(check, timeout=60)


def penalty_rows(out: str, settings) -> list[dict]:
    return [r for r in json.loads(out) if r["agent"] == "ingest" and r["topic"] == f"{settings.topic_prefix}penalty"]


async def test_positions_move_skips_inputs_that_a_group_moved_alone_would_read_again(settings, department, redis):
    from creditstream.app import Pipeline

    pipeline = Pipeline(settings)
    await pipeline.start()
    try:
        await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕1号"))
        await applied(redis, settings, "郑罚〔2026〕1号")

        # while the workers run, nothing is moved: the group has a member
        rc, out, err = await cli(settings, "move", "ingest", "--to-end")
        assert rc == 1, (out, err)
        assert "stop the ingest workers first" in err
        assert out == ""  # refused: no table of moves that were not made
        # a dry run shows the plan, and says the move would be refused now (it said nothing of it)
        rc, out, err = await cli(settings, "move", "ingest", "--to-end", "--dry-run")
        assert rc == 0 and "(dry run: nothing moved)" in out, (out, err)
        assert "warning: the move would be refused now: 1 worker(s) running the ingest agent" in err, err
    finally:
        await pipeline.stop()
    # the workers restarted once (on Tansu the members of a group's first generation never leave
    # it, docs/broker.md 2: its offsets cannot be moved until a later generation left)
    pipeline = Pipeline(settings)
    await pipeline.start()
    await pipeline.stop()

    # two inputs arrive while the workers are stopped; the operator decides to skip them
    await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕2号"))
    await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕3号"))

    rc, out, err = await cli(settings, "show", "--json")
    assert rc == 0, err
    rows = penalty_rows(out, settings)
    assert sum(r["end"] for r in rows) == 3
    assert sum(r["behind"] for r in rows) == 2  # the two new inputs, wherever they landed
    # what the first run applied, recorded in Redis and committed alike (a partition it read
    # nothing from has the commit it found, none: 0, recorded, and no commit)
    [first] = [r for r in rows if r["committed"]]
    assert first["redis"] == first["committed"] == 1
    assert all(r["redis"] in (0, None) and r["committed"] is None for r in rows if r is not first)

    rc, out, err = await cli(settings, "move", "ingest", "--to-end", "--topic", "penalty", "--dry-run")
    assert rc == 0 and "dry run" in out, (out, err)
    assert sum(r["behind"] for r in penalty_rows((await cli(settings, "--json"))[1], settings)) == 2

    rc, out, err = await cli(settings, "move", "ingest", "--to-end", "--topic", "penalty")
    assert rc == 0, (out, err)
    assert "moved 4 partition(s) of the ingest agent" in out
    rows = penalty_rows((await cli(settings, "--json"))[1], settings)
    assert all(r["redis"] == r["committed"] == r["end"] and r["behind"] == 0 for r in rows), rows

    pipeline = Pipeline(settings)
    await pipeline.start()
    try:
        await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕4号"))
        await applied(redis, settings, "郑罚〔2026〕4号")
        text = await state_text(redis, settings)
        assert "郑罚〔2026〕2号" not in text and "郑罚〔2026〕3号" not in text
    finally:
        await pipeline.stop()


async def test_positions_move_refuses_targets_outside_the_log_and_the_subject_agent(settings, department):
    await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕1号"), key=b"k")
    rc, out, err = await cli(settings, "move", "ingest", "--to-offset", "5", "--topic", "penalty")
    assert rc == 2 and "outside" in err, (out, err)
    rc, out, err = await cli(settings, "move", "ingest", "--to-end", "--topic", "subject-events")
    assert rc == 2 and "not an input topic of the ingest agent" in err, (out, err)
    rc, out, err = await cli(settings, "move", "subject", "--to-end")
    assert rc == 2, (out, err)  # argparse: the subject agent's positions are shown only


async def test_positions_move_to_a_time_on_apache_kafka_and_refused_on_tansu(settings, department):
    """--to-time: the first input produced at or after the time (Apache Kafka's offsets by time);
    on Tansu those are not reliable (docs/broker.md 6) and the command says so.

    The topics are made as `creditstream topics` makes them (inputs kept forever). Seen: a topic the
    first send auto-created has the broker's 7-day retention, and Apache Kafka deleted these inputs,
    dated months ago, at its next retention check (every 10 s here, from 30 s after it starts), so
    the time was past the log and the move went to its end: (3, 3, 3, 0) instead of (1, 1, 3, 2)."""
    from streams import kafka

    await kafka.ensure_topics(settings)
    day = 1_780_000_000_000  # 2026-05-28
    for i, ts in enumerate((day, day + 3_600_000, day + 7_200_000)):
        await department.send(PENALTY, sample_event("penalty", decision_doc_no=f"郑罚〔2026〕{i + 1}号"),
                              key=b"one-partition", timestamp_ms=ts)
    rc, out, err = await cli(settings, "move", "ingest", "--topic", "penalty", "--to-time", str(day + 1))
    if settings.is_tansu:
        assert rc == 2 and "--to-time needs Apache Kafka" in err, (out, err)
        return
    assert rc == 0, (out, err)
    rows = [r for r in penalty_rows((await cli(settings, "--json"))[1], settings) if r["end"]]
    assert [(r["redis"], r["committed"], r["end"], r["behind"]) for r in rows] == [(1, 1, 3, 2)]


async def test_positions_move_prints_only_its_answer_on_standard_output(settings, department):
    """Seen: `positions move` printed its `positions moved` log line on standard output (structlog
    left unconfigured: its default prints there, in neither the settings' format nor on stderr), in
    the middle of the answer an operator pipes or saves. The log line goes to standard error."""
    await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑罚〔2026〕1号"), key=b"k")
    rc, out, err = await cli(settings, "move", "ingest", "--to-end", "--topic", "penalty")
    assert rc == 0, (out, err)
    assert "positions moved" not in out, out
    assert out.splitlines()[0].split() == ["PARTITION", "COMMITTED", "REDIS", "TO"]
    assert out.splitlines()[-1] == "moved 4 partition(s) of the ingest agent"
    assert "positions moved" in err, err


async def test_positions_never_creates_the_topics_it_is_asked_about(settings):
    """Seen on Apache Kafka (auto.create.topics.enable, its default): `creditstream positions` run
    before `creditstream topics` created the eight input topics with the broker's defaults, a 7-day
    retention (the subject-event log included) and `registration` not compacted, and
    `creditstream topics` then only reported them as existing with the wrong configuration. A
    missing topic is said to be missing (`creditstream topics` creates it), never created."""
    from streams import kafka

    rc, out, err = await cli(settings, "--json")
    assert rc == 0, (out, err)
    assert json.loads(out) == []
    assert f"{settings.topic_prefix}penalty" in err and "not exist" in err and "creditstream topics" in err, err
    rc, out, err = await cli(settings, "move", "ingest", "--to-end", "--topic", "penalty")
    assert rc == 1 and f"{settings.topic_prefix}penalty does not exist" in err, (out, err)
    rc, out, err = await cli(settings, "move", "registry", "--to-start")
    assert rc == 1 and f"{settings.topic_prefix}registration does not exist" in err, (out, err)

    client = kafka.admin(settings)
    await client.start()
    try:
        created = [t for t in await client.list_topics() if t.startswith(settings.topic_prefix)]
    finally:
        await client.close()
    assert created == []
