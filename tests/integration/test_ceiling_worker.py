"""``make bench-ceiling``'s worker (bench/ceiling.py) on the real broker and Redis: with the domain
work stood in for, the inputs still go through both hops and the fenced Redis transaction, and they
are counted as the benchmark's progress counts them. Otherwise the ceiling it reports would be the
speed of a worker that skipped or dead-lettered its inputs."""

from __future__ import annotations

import pytest

import agents.ingest
import agents.subject
from bench import ceiling
from streams import samples
from streams.samples import sample_event, schema_of
from tests.integration.test_pipeline import state_of, wait_outcomes

pytestmark = pytest.mark.integration

PENALTY = schema_of("penalty")
OTHER = "91410303MA44K7R24M"


@pytest.fixture
def stood_in():
    saved = agents.subject.step, agents.ingest.normalise_event
    ceiling.install("domain")
    yield
    agents.subject.step, agents.ingest.normalise_event = saved


async def test_with_the_domain_stood_in_for_every_input_is_applied_through_kafka_and_redis(
        stood_in, pipeline, department, redis, settings):
    for n in range(3):  # three decisions about one company, then one about another
        await department.send(PENALTY, sample_event("penalty", decision_doc_no=f"郑市监罚〔2024〕{500 + n}号"))
    await department.send(PENALTY, sample_event("penalty", uscc=OTHER))
    await wait_outcomes(redis, settings, new=4)
    # the stand-in step's state: the subject and the count of its inputs, stored by the real sink
    assert await state_of(redis, settings, samples.COMPANY_USCC) == {"id": samples.COMPANY_USCC, "id_kind": "uscc",
                                                                     "n": 3}
    from sinks.keys import resolve_keys

    stats = await redis.hgetall((await resolve_keys(redis, settings.namespace)).stats)
    assert int(stats[b"inputs"]) == 4  # what the benchmark's progress reads
    assert (await state_of(redis, settings, OTHER))["n"] == 1
