"""agents/input_positions.py against a real redis-server: when Redis is behind what was written.

Each "worker" is an InputPositions driven as agents/ingest.py and agents/registry.py drive it:
floors(bounds) -> apply_batch(..., bounds.spec) -> written_batch(bounds); the runner then commits (here a
dict stands for the group's committed offsets), and in a rebalance tells it what it lost (forget)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from agents.input_positions import BatchPositions, InputPositions
from sinks.keys import Keys
from sinks.registry_index import PositionsBehind, RegistryIndex
from streams.kafka import Committed
from streams.runner import Rewind

pytestmark = pytest.mark.integration

TP = TopicPartition("cs.penalty", 0)
FIELD = "cs.penalty/0"


def recs(first: int, last: int):
    return [SimpleNamespace(topic=TP.topic, partition=TP.partition, offset=o) for o in range(first, last + 1)]


@pytest.fixture
def env(redis, settings):
    index = RegistryIndex(redis, Keys(settings.namespace))
    commits: dict[TopicPartition, int] = {}
    metadata: dict[TopicPartition, str] = {}  # what each commit carries (the runner's: the agent's marker)
    asked: list[TopicPartition] = []

    async def committed(tp):
        asked.append(tp)
        return Committed(commits.get(tp), metadata.get(tp, ""))

    return SimpleNamespace(r=redis, keys=index.keys, index=index, commits=commits, metadata=metadata, asked=asked,
                           worker=lambda: InputPositions(index, "ingest", committed))


async def batch(env, w: InputPositions, first: int, last: int):
    """One batch as the agents run it; then the runner commits."""
    b = BatchPositions(recs(first, last))
    await w.floors(b)
    try:
        await env.index.apply_batch([], [], b.spec("ingest"))
    except PositionsBehind as exc:
        raise await w.rewind_for(exc, b) from exc
    await w.written_batch(b)
    env.commits[TP] = last + 1
    env.metadata[TP] = w.commit_marker()  # as streams/runner.py commits


async def recorded(env):
    return (await env.index.positions("ingest", [FIELD]))[FIELD]


async def test_a_partition_back_from_another_owner_is_checked_against_the_commit(env):
    """A wrote p to 500, p went to B, B wrote and committed 800, Redis fell back to 600 and B died
    with it: when p comes back to A, 600..799 are read again (A forgot its 500 in the rebalance)."""
    a = env.worker()
    await batch(env, a, 0, 499)
    a.forget({TP})  # the rebalance: p -> B
    b = env.worker()
    await batch(env, b, 500, 599)
    await batch(env, b, 600, 799)
    await env.r.hset(env.keys.input_positions("ingest"), FIELD, 600)  # Redis lost B's last writes
    with pytest.raises(Rewind) as back:
        await batch(env, a, 800, 849)  # p back to A, whose consumer resumes at the commit
    assert back.value.offsets == {TP: 600} and back.value.reason == "redis-behind"
    assert (await a.positions_behind([TP])) is None  # from there on, Redis is expected at 600
    await batch(env, a, 600, 849)
    assert await recorded(env) == 850


async def test_offsets_without_records_are_not_a_loss(env):
    """A transaction marker, records compacted away or deleted: the next batch begins past the
    recorded position, and nothing was lost."""
    w = env.worker()
    await batch(env, w, 0, 9)
    await batch(env, w, 12, 20)  # 10 and 11 hold no record a consumer sees
    assert await recorded(env) == 21 and await w.positions_behind([TP]) is None


async def test_a_position_gone_while_a_batch_ran_reads_the_partition_again_whole(env):
    w = env.worker()
    await batch(env, w, 0, 499)
    b = BatchPositions(recs(500, 599))
    await w.floors(b)
    await env.r.delete(env.keys.input_positions("ingest"))  # Redis emptied meanwhile
    with pytest.raises(PositionsBehind) as exc:
        await env.index.apply_batch([], [], b.spec("ingest"))
    assert (await w.rewind_for(exc.value, b)).offsets == {TP: 0}
    await batch(env, w, 0, 599)
    assert await recorded(env) == 600


async def test_a_reset_to_earliest_reads_again_and_an_upgrade_starts_at_the_commit(env):
    w = env.worker()
    await batch(env, w, 0, 499)
    env.commits[TP] = 0  # --to-earliest, workers stopped
    r = env.worker()
    await batch(env, r, 0, 99)  # no rewind; the position stays 500
    assert await recorded(env) == 500
    await batch(env, r, 100, 599)
    assert await recorded(env) == 600
    tp2 = TopicPartition("cs.penalty", 1)  # committed by a version that kept no positions
    env.commits[tp2] = 700
    assert await env.worker().positions_behind([tp2]) is None
    assert (await env.index.positions("ingest", ["cs.penalty/1"]))["cs.penalty/1"] == 700


async def test_the_commit_is_asked_once_per_partition_and_ownership(env):
    w = env.worker()
    parts = [TopicPartition("cs.penalty", p) for p in range(12)]  # never committed
    for _ in range(3):
        assert await w.positions_behind(parts) is None
    assert len(env.asked) == len(parts)
    w.forget(set(parts[:2]))
    assert await w.positions_behind(parts) is None and len(env.asked) == len(parts) + 2


async def test_a_partition_whose_first_position_redis_lost_is_read_again_from_its_start(env):
    """A wrote p's first positions and committed; Redis then lost the hash whole (an empty replica
    promoted, a restore from before p's first batch) and A died. B, which wrote nothing, finds no
    position: the commit's marker says one was written, so p is read again from its start (the
    lost parks and numbers come back) instead of from the commit (they would be lost)."""
    a = env.worker()
    await batch(env, a, 0, 499)
    assert env.metadata[TP] == "creditstream positions in redis: " + env.keys.input_positions("ingest")
    await env.r.delete(env.keys.input_positions("ingest"))
    b = env.worker()
    rewind = await b.positions_behind([TP])  # the periodic check
    assert rewind is not None and rewind.offsets == {TP: 0}
    assert (await env.index.positions("ingest", [FIELD]))[FIELD] is None  # nothing taken as a first position
    await batch(env, b, 0, 599)
    assert await recorded(env) == 600

    # the same, found by a batch's own script (no check came first)
    await env.r.delete(env.keys.input_positions("ingest"))
    c = env.worker()
    b2 = BatchPositions(recs(600, 649))
    await c.floors(b2)
    with pytest.raises(PositionsBehind) as exc:
        await env.index.apply_batch([], [], b2.spec("ingest"))
    assert (await c.rewind_for(exc.value, b2)).offsets == {TP: 0}


async def test_a_commit_without_this_redis_marker_leaves_the_first_position_at_the_commit(env):
    """No marker (a version before it, `positions move`, Tansu, which drops a commit's metadata) or
    another Redis's (another namespace): the partition's first position is the commit, as before."""
    for metadata in ("", "creditstream positions in redis: other:positions:ingest"):
        await env.r.delete(env.keys.input_positions("ingest"))
        env.commits[TP], env.metadata[TP] = 700, metadata
        assert await env.worker().positions_behind([TP]) is None
        assert await recorded(env) == 700
