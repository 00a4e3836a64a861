"""The identifier index and parked records when Redis loses its last writes (a restart from an
older AOF, a lagging replica promoted: modelled, as tests/reliability/test_fencing.py does, by
putting back a copy of the namespace taken a moment earlier). The ingest and registry agents record
in Redis how far their batches got (agents/input_positions.py), so the inputs whose writes were lost
are read again: a parked record is parked again, a learnt number learnt again. An agent with no new
input checks its positions when idle, so a subject whose last input Redis lost gets it again."""

from __future__ import annotations

import asyncio
import time

from streams import samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.integration.test_pipeline import state_of, wait_outcomes
from tests.reliability.test_fencing import _RESTORE, _SNAPSHOT

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
    while time.monotonic() - t0 < 15:
        seen.append((round(time.monotonic() - t0, 1), await index.parked_count()))
        await asyncio.sleep(0.5)
    busy.set()
    await task
    assert any(c for _, c in seen), "the quiet partition's lost park was not re-read while another topic was busy"
