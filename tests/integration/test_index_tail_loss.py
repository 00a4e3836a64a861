"""The identifier index and parked records when Redis loses its last writes (a restart from an
older AOF, a lagging replica promoted: modelled, as tests/reliability/test_fencing.py does, by
putting back a copy of the namespace taken a moment earlier). The ingest and registry agents record
in Redis how far their batches got (agents/input_positions.py), so the inputs whose writes were lost
are read again: a parked record is parked again, a learnt number learnt again. An agent with no new
input checks its positions when idle, so a subject whose last input Redis lost gets it again."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams import samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.integration.test_pipeline import state_of, wait_outcomes
from tests.reliability.test_fencing import _RESTORE, _SNAPSHOT

pytestmark = pytest.mark.integration

PENALTY = schema_of("penalty")
LICENSE = schema_of("license")
REGISTRATION = schema_of("registration")
OTHER = "91310115591693856A"


async def _steady(pipeline, department, redis, settings):
    """One input applied, and every ingest and registry partition's position recorded (a worker
    that has run a while): the copy taken now is what Redis falls back to."""
    from sinks.keys import Keys, resolve_keys

    await department.send(PENALTY, sample_event("penalty", uscc=OTHER, org_code=None, reg_no=None,
                                                decision_doc_no="沪罚〔2024〕1号"))
    await wait_outcomes(redis, settings, new=1)
    keys = Keys(settings.namespace)
    [ingest] = [r.agent for r in pipeline.runners if getattr(r, "agent", None) is not None and r.agent.name == "ingest"]
    ingest_partitions = len(ingest.source_topics()) * settings.partitions

    live = await resolve_keys(redis, settings.namespace)

    async def recorded():
        return (await redis.hlen(keys.input_positions("ingest")) >= ingest_partitions
                and await redis.hlen(keys.input_positions("registry")) >= settings.partitions
                and await redis.exists(*(live.position(p) for p in range(settings.partitions))) == settings.partitions)

    await eventually(recorded, timeout=30)
    snapshot = redis.register_script(_SNAPSHOT)
    return await snapshot(keys=[], args=[f"{settings.namespace}:*"])


async def _lose_the_tail(redis, settings, copy):
    await redis.register_script(_RESTORE)(keys=[], args=[f"{settings.namespace}:*", *copy])


async def _company_has(redis, settings, *docs: str) -> bool:
    """The company's state holds records of these document numbers."""
    state = await state_of(redis, settings, samples.COMPANY_USCC)
    return set(docs) <= {r["doc_no"] for r in (state or {}).get("records", {}).values()}


async def _park_and_lose(pipeline, department, redis, settings, doc_no: str):
    """A record parked on a registration number, then Redis's tail lost with the park."""
    index = _index(redis, settings)
    copy = await _steady(pipeline, department, redis, settings)
    await department.send(PENALTY, sample_event("penalty", uscc=None, org_code=None, reg_no=samples.COMPANY_REG_NO,
                                                decision_doc_no=doc_no))
    await eventually(lambda: index.parked_count())
    await _lose_the_tail(redis, settings, copy)
    assert await index.parked_count() == 0  # the park went with Redis's tail
    return index


def _index(redis, settings):
    from sinks.keys import Keys
    from sinks.registry_index import RegistryIndex

    return RegistryIndex(redis, Keys(settings.namespace))


async def test_a_record_parked_before_redis_lost_its_tail_is_parked_again(pipeline, department, redis, settings):
    index = await _park_and_lose(pipeline, department, redis, settings, "郑市监罚〔2024〕900号")
    await eventually(lambda: index.parked_count(), timeout=30)  # read again, with no new input
    await department.send(REGISTRATION, sample_event("registration"))
    await eventually(lambda: _company_has(redis, settings, "郑市监罚〔2024〕900号"), timeout=30)
    assert await index.parked_count() == 0


async def test_a_number_learnt_before_redis_lost_its_tail_is_learnt_again(pipeline, department, redis, settings):
    from sinks.keys import Keys

    keys, index = Keys(settings.namespace), _index(redis, settings)
    copy = await _steady(pipeline, department, redis, settings)
    await department.send(REGISTRATION, sample_event("registration"))
    await eventually(lambda: redis.hget(keys.id_index, "reg_no:" + samples.COMPANY_REG_NO))
    await eventually(lambda: state_of(redis, settings, samples.COMPANY_USCC))
    await _lose_the_tail(redis, settings, copy)
    assert await redis.hget(keys.id_index, "reg_no:" + samples.COMPANY_REG_NO) is None
    await eventually(lambda: redis.hget(keys.id_index, "reg_no:" + samples.COMPANY_REG_NO), timeout=30)
    await department.send(PENALTY, sample_event("penalty", uscc=None, org_code=None, reg_no=samples.COMPANY_REG_NO,
                                                decision_doc_no="郑市监罚〔2024〕901号"))
    await eventually(lambda: _company_has(redis, settings, "郑市监罚〔2024〕901号"), timeout=30)
    assert await index.parked_count() == 0


async def test_a_number_a_department_taught_is_taught_again_after_redis_lost_it(pipeline, department, redis, settings):
    """The ingest agent remembers what it taught the index, not to write it on every record; what
    Redis lost it must write again."""
    from sinks.keys import Keys

    keys, index = Keys(settings.namespace), _index(redis, settings)
    copy = await _steady(pipeline, department, redis, settings)
    await department.send(PENALTY, sample_event("penalty", reg_no=samples.COMPANY_REG_NO,
                                                decision_doc_no="郑市监罚〔2024〕910号"))
    await eventually(lambda: redis.hget(keys.id_index, "reg_no:" + samples.COMPANY_REG_NO))
    await _lose_the_tail(redis, settings, copy)
    await department.send(PENALTY, sample_event("penalty", reg_no=samples.COMPANY_REG_NO,
                                                decision_doc_no="郑市监罚〔2024〕911号"))
    await department.send(PENALTY, sample_event("penalty", uscc=None, org_code=None, reg_no=samples.COMPANY_REG_NO,
                                                decision_doc_no="郑市监罚〔2024〕912号"))
    await eventually(lambda: _company_has(redis, settings, "郑市监罚〔2024〕910号", "郑市监罚〔2024〕911号",
                                          "郑市监罚〔2024〕912号"), timeout=30)
    assert await index.parked_count() == 0


async def test_a_subject_whose_last_input_redis_lost_gets_it_again_without_new_input(pipeline, department, redis,
                                                                                     settings):
    """Only the subject states' writes are lost here (the ingest agent's survive, so nothing sends
    the input again): the subject agent itself, idle, finds its position behind its consumer's."""
    from sinks.keys import resolve_keys

    await _steady(pipeline, department, redis, settings)
    states = f"{(await resolve_keys(redis, settings.namespace)).gen_prefix}*"
    copy = await redis.register_script(_SNAPSHOT)(keys=[], args=[states])
    await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑市监罚〔2024〕920号"))
    await eventually(lambda: _company_has(redis, settings, "郑市监罚〔2024〕920号"), timeout=30)
    await redis.register_script(_RESTORE)(keys=[], args=[states, *copy])
    assert not await _company_has(redis, settings, "郑市监罚〔2024〕920号")
    # the subject agent re-feeds it, with no new input
    await eventually(lambda: _company_has(redis, settings, "郑市监罚〔2024〕920号"), timeout=30)


async def test_a_quiet_partition_is_checked_while_the_agent_is_busy_with_others(pipeline, department, redis, settings):
    index = await _park_and_lose(pipeline, department, redis, settings, "郑市监罚〔2024〕930号")

    busy = asyncio.Event()

    async def traffic():  # another topic's input, steady (license decisions of a known subject)
        n = 0
        while not busy.is_set():
            n += 1
            topic = department.topics.for_kind("license")
            await department.codec.ensure_writer(LICENSE, topic)
            await department.producer.send(topic, department.codec.encode(LICENSE, sample_event("license"), topic=topic))
            await asyncio.sleep(0.003)

    task = asyncio.create_task(traffic())
    t0 = time.monotonic()
    seen = []
    while time.monotonic() - t0 < 15 and not any(c for _, c in seen):  # parked again: shown
        seen.append((round(time.monotonic() - t0, 1), await index.parked_count()))
        await asyncio.sleep(0.5)
    busy.set()
    await task
    assert any(c for _, c in seen), "the quiet partition's lost park was not re-read while another topic was busy"


async def _commit_of(settings, group: str, topic: str, partitions: int):
    """The group's commits of ``topic``, with their metadata (streams/kafka.py ``committed``)."""
    from aiokafka import TopicPartition

    from streams import kafka

    c = kafka.consumer(settings, group_id=group)
    await c.start()
    try:
        return {p: await kafka.committed(c, TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await kafka.stop_consumer(c)


async def test_a_park_lost_with_its_partitions_first_position_is_parked_again_by_the_next_worker(department, redis,
                                                                                               settings):
    """Redis lost more than its tail: the ingest agent's positions hash went whole, with a park made
    since (an empty replica promoted, a restore from before the worker first wrote), and the worker
    that wrote them is gone. The next worker finds no position, which alone would also mean "never
    written": the group's commit carries the agent's marker (streams/runner.py), so it reads the
    partitions again from their start and the record is parked again. Tansu drops a commit's
    metadata (docs/broker.md 11): there the first position stays the commit, as before."""
    from creditstream.app import Pipeline
    from sinks.keys import Keys
    from streams.topics import Topics

    keys, index = Keys(settings.namespace), _index(redis, settings)
    topic = Topics(settings).for_kind("penalty")
    doc_no = "郑市监罚〔2024〕930号"
    first = Pipeline(settings)
    await first.start()
    try:
        await department.send(PENALTY, sample_event("penalty", uscc=None, org_code=None,
                                                    reg_no=samples.COMPANY_REG_NO, decision_doc_no=doc_no))
        await eventually(lambda: index.parked_count(), timeout=30)

        async def committed_after_the_park():
            commits = await _commit_of(settings, f"{settings.consumer_group}.ingest", topic, settings.partitions)
            return [c for c in commits.values() if c.offset]

        [commit] = await eventually(committed_after_the_park, timeout=30)
    finally:
        await first.stop()
    if settings.is_tansu:
        assert commit.metadata == ""  # dropped (docs/broker.md 11)
        return
    assert commit.metadata == "creditstream positions in redis: " + keys.input_positions("ingest")
    parked = [k async for k in redis.scan_iter(match=f"{settings.namespace}:parked:*")]
    await redis.delete(keys.input_positions("ingest"), *parked)  # Redis lost all the ingest agent wrote
    assert await index.parked_count() == 0
    from ops import positions

    [row] = [r for r in await positions.show(settings, ("ingest",)) if r.topic == topic and r.committed]
    assert (row.redis, row.redis_lost, row.behind) == (None, True, row.end), row  # `positions` says "lost"
    second = Pipeline(settings)
    await second.start()
    try:
        await eventually(lambda: index.parked_count(), timeout=30)  # read again from the start
        await department.send(REGISTRATION, sample_event("registration"))
        await eventually(lambda: _company_has(redis, settings, doc_no), timeout=30)
        assert await index.parked_count() == 0
    finally:
        await second.stop()


async def test_a_state_lost_with_its_partitions_first_position_is_applied_again_by_the_next_worker(department, redis,
                                                                                                 settings):
    """The same for the subject agent: Redis lost a subject's state with the positions of the
    subject-event log (its sentinel survived, so Redis is not empty), and the worker that wrote
    them is gone. The commit's marker names this generation's positions: the next worker applies
    the log again from its start and the state comes back."""
    from creditstream.app import Pipeline
    from sinks.keys import resolve_keys
    from streams.topics import Topics

    doc_no = "郑市监罚〔2024〕940号"
    first = Pipeline(settings)
    await first.start()
    try:
        await department.send(PENALTY, sample_event("penalty", decision_doc_no=doc_no))
        await eventually(lambda: _company_has(redis, settings, doc_no), timeout=30)
        live = await resolve_keys(redis, settings.namespace)
        topic = Topics(settings).subject_events

        async def committed():
            commits = await _commit_of(settings, f"{settings.consumer_group}.subject", topic, settings.partitions)
            return [c for c in commits.values() if c.offset]

        commits = await eventually(committed, timeout=30)
    finally:
        await first.stop()
    if settings.is_tansu:
        assert {c.metadata for c in commits} == {""}  # dropped (docs/broker.md 11)
        return
    assert {c.metadata for c in commits} == {"creditstream positions in redis: " + live.positions_pattern}
    await redis.delete(live.subject(samples.COMPANY_USCC), *(live.position(p) for p in range(settings.partitions)))
    assert await redis.exists(live.sentinel) and not await _company_has(redis, settings, doc_no)
    second = Pipeline(settings)
    await second.start()
    try:
        await eventually(lambda: _company_has(redis, settings, doc_no), timeout=30)
    finally:
        await second.stop()


async def test_after_redis_lost_everything_a_rebuild_and_a_restart_bring_back_the_parked_records(
        department, redis, settings):
    """docs/operations.md, Backups and losing Redis: Redis comes back empty; the subject state is
    rebuilt (`replay --switch`, the workers stopped), then the workers start. On Apache Kafka the
    ingest and registry agents find no positions where their groups' commits say some were written,
    and read their topics again from the start: the parked record is parked again, with no group
    reset by hand. (On Tansu the reset is needed: docs/broker.md 11.)"""
    from creditstream.app import Pipeline
    from ops.replay import replay
    from sinks.keys import Keys

    if settings.is_tansu:
        pytest.skip("Tansu drops a commit's metadata (docs/broker.md 11): the groups are reset by hand there")
    keys, index = Keys(settings.namespace), _index(redis, settings)
    doc_no = "郑市监罚〔2024〕950号"
    first = Pipeline(settings)
    await first.start()
    try:
        await department.send(PENALTY, sample_event("penalty", uscc=OTHER, org_code=None, reg_no=None,
                                                    decision_doc_no="沪罚〔2024〕2号"))
        await department.send(PENALTY, sample_event("penalty", uscc=None, org_code=None,
                                                    reg_no=samples.COMPANY_REG_NO, decision_doc_no=doc_no))
        await eventually(lambda: index.parked_count(), timeout=30)
        await eventually(lambda: state_of(redis, settings, OTHER), timeout=30)
        await asyncio.sleep(3)  # the batches' commits, and a position check of every partition
    finally:
        await first.stop()
    await redis.delete(*[k async for k in redis.scan_iter(match=f"{settings.namespace}:*")])  # Redis came back empty
    await replay(settings, switch=True, progress=False)
    assert await state_of(redis, settings, OTHER) is not None and await index.parked_count() == 0
    second = Pipeline(settings)
    await second.start()
    try:
        await eventually(lambda: index.parked_count(), timeout=30)  # parked again
        await department.send(REGISTRATION, sample_event("registration"))
        await eventually(lambda: _company_has(redis, settings, doc_no), timeout=30)
        assert await redis.hget(keys.id_index, "reg_no:" + samples.COMPANY_REG_NO) is not None
    finally:
        await second.stop()


async def test_a_loss_of_the_indexs_writes_is_said_until_follow_numbers_has_run(pipeline, department, redis, settings):
    """What the index remembered of decisions sent by a legacy number is not read again with the lost
    tail (docs/operations.md, Backups and losing Redis): the agent that reads again notes it, and the
    worker says it (its gauge, /health, `creditstream report`) until `creditstream follow-numbers` has run."""
    from creditstream import metrics
    from ops.follow_numbers import follow_numbers
    from ops.report import operator_report, render_operator_report
    from sinks.keys import Keys
    from tests.integration.test_health import health

    keys, index = Keys(settings.namespace), _index(redis, settings)
    copy = await _steady(pipeline, department, redis, settings)
    await department.send(REGISTRATION, sample_event("registration"))
    await eventually(lambda: redis.hget(keys.id_index, "reg_no:" + samples.COMPANY_REG_NO))
    assert await index.numbers_to_follow() is None
    status, body, _ = await health(settings)
    assert status == 200 and "numbers_to_follow" not in body
    await _lose_the_tail(redis, settings, copy)
    noted = await eventually(index.numbers_to_follow, timeout=30)
    assert noted.agent == "registry" and noted.rewinds >= 1 and noted.last_ms >= noted.since_ms

    async def caught_up():  # the registry's re-read reached where it had been: noted again
        again = await index.numbers_to_follow()
        return again if again and again.caught_up_ms >= again.since_ms else None

    assert "a re-read caught up at" in (await eventually(caught_up, timeout=30)).said()
    assert await redis.hget(keys.id_index, "reg_no:" + samples.COMPANY_REG_NO)  # (the number learnt again)

    async def gauge(value):
        return metrics.NUMBERS_TO_FOLLOW._value.get() == value or None

    await eventually(lambda: gauge(1), timeout=10)
    status, body, _ = await health(settings)
    assert status == 200 and "run `creditstream follow-numbers`" in body["numbers_to_follow"], body
    report = await operator_report(settings, progress=False)
    assert render_operator_report(report).splitlines()[1].startswith("TO DO: Redis lost the identifier index's")
    done = await follow_numbers(settings, progress=False)
    assert done.lost_writes_cleared and "the workers' note is cleared" in done.render()
    assert await index.numbers_to_follow() is None
    await eventually(lambda: gauge(0), timeout=10)
    status, body, _ = await health(settings)
    assert "numbers_to_follow" not in body
    assert (await operator_report(settings, progress=False))["numbers_to_follow"] is None


async def test_a_loss_noted_while_follow_numbers_ran_stays_noted(redis, settings):
    from creditstream.connections import redis_now_ms

    index = _index(redis, settings)
    await index.note_lost_writes("ingest", 2)
    began = await redis_now_ms(redis)
    await asyncio.sleep(0.01)
    await index.note_lost_writes("registry", 1)  # Redis lost writes again while the command read the states
    assert not await index.numbers_followed(began)
    noted = await index.numbers_to_follow()
    assert (noted.rewinds, noted.agent) == (3, "registry") and noted.last_ms > noted.since_ms
    # a run begun after the last note clears it (Redis's clock may still read the note's millisecond
    # here, and a run begun in it leaves the note: the one after)
    assert await index.numbers_followed(noted.last_ms + 1)
    assert await index.numbers_to_follow() is None


async def test_the_last_loss_noted_is_the_latest_whatever_order_two_workers_note_in(redis, settings):
    """Two workers note a loss; the one with the earlier clock reading writes last: the note keeps the
    later time, and a run of follow-numbers that began between the two (or in the same millisecond as
    the later) leaves it (review: it was cleared)."""
    from sinks.keys import Keys

    index = _index(redis, settings)
    note = index._note_lost
    key = Keys(settings.namespace).numbers_to_follow
    await note(keys=[key], args=[2_000, 1, "ingest"])
    await note(keys=[key], args=[1_000, 1, "registry"])
    noted = await index.numbers_to_follow()
    assert (noted.since_ms, noted.last_ms, noted.rewinds) == (2_000, 2_000, 2)
    assert not await index.numbers_followed(1_500)
    assert not await index.numbers_followed(2_000)
    assert await index.numbers_followed(2_001)
