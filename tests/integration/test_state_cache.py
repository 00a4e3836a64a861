"""The subject agent's state cache (sinks/redis_state.py) against a real redis-server: a worker
holds its hot subjects' states (stored split), reads from Redis only the subjects it does not hold,
and never uses a held state once anyone else may have written its partition (fencing). A state
stored whole is not held."""

from __future__ import annotations

import secrets

import orjson
import pytest

from domain.record_maps import json_default
from sinks.keys import Keys
from sinks.redis_state import Fenced, SubjectStateSink, read_states
from sinks.state_codec import SPLIT_RECORDS, decode_state

pytestmark = pytest.mark.integration

A, B = "91310110666007217T", "91110000100000000X"


def keys_of(settings) -> Keys:
    return Keys(settings.namespace, pseudonym_key=settings.pseudonym_key)


def hot(sid: str, n: int, **more) -> dict:
    """A hot subject's state: more than SPLIT_RECORDS records, so stored split, and held."""
    return {"id": sid, "n": n, "records": {f"r{i}": {"doc": i} for i in range(SPLIT_RECORDS + 6)}, **more}


def as_json(state: dict | None) -> dict | None:
    """A state as JSON (the sink hands a large state's per-record maps persistent: domain/record_maps.py)."""
    return orjson.loads(orjson.dumps(state, default=json_default))


async def batch(sink: SubjectStateSink, states: dict[str, dict], partition: int, start: int, end: int) -> dict:
    """One batch of ``partition`` over offsets [start, end): read the subjects, write ``states``."""
    loaded = await sink.begin(list(states), {partition: start}, partition_of=dict.fromkeys(states, partition))
    for sid, st in states.items():
        sink.add(sid, st, new=loaded.states[sid] is None)
    sink.set_position(partition, end)
    await sink.commit()
    return loaded.states


async def test_held_states_are_not_read_again(settings, redis):
    sink = SubjectStateSink(redis, keys_of(settings))
    first = hot(A, 1)
    await batch(sink, {A: first}, 0, 0, 5)
    # written through: Redis has it too
    assert as_json((await read_states(redis, keys_of(settings), [A]))[0]) == first
    await redis.delete(keys_of(settings).subject(A), keys_of(settings).subject_records(A))
    loaded = await sink.begin([A], {0: 5}, partition_of={A: 0})
    assert as_json(loaded.states[A]) == first  # from memory: Redis has it no more
    assert sink.cache.hits == 1
    await sink.abort()


async def test_a_state_stored_whole_is_read_from_redis_on_every_batch(settings, redis):
    """A state stored whole is not held (sinks/redis_state.py, module doc), taken by the agent or not."""
    sink = SubjectStateSink(redis, keys_of(settings))
    await batch(sink, {A: {"id": A, "n": 1}, B: hot(B, 1)}, 0, 0, 5)
    assert len(sink.cache) == 1  # B only
    misses = sink.cache.misses
    loaded = await sink.begin([A, B], {0: 5}, partition_of={A: 0, B: 0})
    assert (sink.cache.hits, sink.cache.misses) == (1, misses + 1)  # B held, A read
    assert loaded.states.take(A) == {"id": A, "n": 1}  # its inputs were re-sends: nothing to write
    sink.set_position(0, 7)
    await sink.commit()
    await redis.delete(keys_of(settings).subject(A))
    loaded = await sink.begin([A], {0: 7}, partition_of={A: 0})
    assert loaded.states.take(A) is None and sink.cache.hits == 1  # read from Redis, which lost it
    await sink.abort()


async def test_a_partition_written_by_another_worker_is_read_again(settings, redis):
    mine, other = SubjectStateSink(redis, keys_of(settings)), SubjectStateSink(redis, keys_of(settings))
    await batch(mine, {A: hot(A, 1), B: hot(B, 1)}, 0, 0, 5)
    # a rebalance: the other worker owns partition 0 for a while and applies offsets 5..8
    await batch(other, {A: hot(A, 2)}, 0, 5, 8)
    loaded = await mine.begin([A, B], {0: 8}, partition_of={A: 0, B: 0})
    assert as_json(loaded.states[A]) == hot(A, 2)  # not the held n=1
    assert as_json(loaded.states[B]) == hot(B, 1)
    assert mine.cache.hits == 0  # the whole partition was dropped, B included
    await mine.abort()


async def test_a_fenced_commit_drops_what_it_held(settings, redis):
    mine, other = SubjectStateSink(redis, keys_of(settings)), SubjectStateSink(redis, keys_of(settings))
    await batch(mine, {A: hot(A, 1)}, 0, 0, 5)
    loaded = await mine.begin([A], {0: 5}, partition_of={A: 0})
    assert mine.cache.hits == 1
    mine.add(A, hot(A, 99))
    mine.set_position(0, 6)
    await batch(other, {A: hot(A, 2)}, 0, 5, 6)  # same position reached, other state
    with pytest.raises(Fenced):
        await mine.commit()
    loaded = await mine.begin([A], {0: 6}, partition_of={A: 0})
    assert as_json(loaded.states[A]) == hot(A, 2)
    assert mine.cache.hits == 1  # no new hit: read from Redis
    await mine.abort()


async def test_redis_lost_its_data(settings, redis):
    sink = SubjectStateSink(redis, keys_of(settings))
    await batch(sink, {A: hot(A, 1)}, 0, 0, 5)
    k = keys_of(settings)
    await redis.delete(k.subject(A), k.subject_records(A), k.position(0))  # flushed (or restored from before this write)
    loaded = await sink.begin([A], {0: 0}, partition_of={A: 0})
    assert loaded.states[A] is None
    await sink.abort()


async def test_other_partitions_stay_held_and_the_cache_is_bounded(settings, redis):
    sink = SubjectStateSink(redis, keys_of(settings), cache_mb=1)
    other = SubjectStateSink(redis, keys_of(settings))
    await batch(sink, {A: hot(A, 1)}, 0, 0, 5)
    await batch(sink, {B: hot(B, 1)}, 1, 0, 5)
    await batch(other, {A: hot(A, 2)}, 0, 5, 6)
    loaded = await sink.begin([A, B], {0: 6, 1: 5}, partition_of={A: 0, B: 1})
    assert {s: as_json(st) for s, st in loaded.states.items()} == {A: hot(A, 2), B: hot(B, 1)}
    assert sink.cache.hits == 1  # B (partition 1, untouched) came from memory
    await sink.abort()
    # held as objects, about 4 bytes a JSON byte: ~30 KB of JSON each, 40 of them more than 1 MiB
    big = {f"s{i}": hot(f"s{i}", 1, pad=secrets.token_hex(15_000)) for i in range(40)}
    await batch(sink, big, 2, 0, 1)
    assert 0 < len(sink.cache) < 40


async def test_a_state_grown_too_large_to_hold_is_read_again_not_its_older_state(settings, redis):
    # the next batch of a subject whose new state is too large to hold (over the whole budget) reads
    # it from Redis: the state held before is older (it was served, the batch's inputs applied to it,
    # and the result written over everything since)
    from creditstream import metrics

    sink = SubjectStateSink(redis, keys_of(settings), cache_mb=1)
    await batch(sink, {A: hot(A, 1)}, 0, 0, 5)
    assert as_json((await sink.begin([A], {0: 5}, partition_of={A: 0})).states[A]) == hot(A, 1)
    assert sink.cache.hits == 1
    await sink.abort()
    before = metrics.STATE_TOO_LARGE._value.get()  # noqa: SLF001
    grown = hot(A, 2, pad=secrets.token_hex(150_000))  # ~300 KB of JSON: its objects over 1 MB
    await batch(sink, {A: grown}, 0, 5, 6)
    assert metrics.STATE_TOO_LARGE._value.get() == before + 1  # noqa: SLF001
    hits = sink.cache.hits
    loaded = await sink.begin([A], {0: 6}, partition_of={A: 0})
    assert loaded.states[A]["n"] == 2 and as_json(loaded.states[A]) == grown
    assert sink.cache.hits == hits  # read from Redis
    await sink.abort()


async def test_states_are_stored_compact_and_legacy_json_is_read(settings, redis):
    """The default writes the compact form (sinks/state_codec.py); a JSON value (what earlier versions
    and ``state_format = "json"`` write) is read as it is and turns compact when written again."""
    from sinks.state_codec import HEADER

    k = keys_of(settings)
    state = {"id": A, "names": ["郑州市金水区恒达商贸有限公司"] * 3, "records": {f"r{i}": {"doc": f"罚〔2024〕{i}号"}
                                                                           for i in range(50)}}
    legacy = SubjectStateSink(redis, k, state_format="json")
    await batch(legacy, {A: state}, 0, 0, 1)
    raw = await redis.get(k.subject(A))
    assert raw == orjson.dumps(state)  # JSON, as before
    fresh = SubjectStateSink(redis, k)  # the default: compact
    loaded = await batch(fresh, {A: dict(state, n=2)}, 0, 1, 2)
    assert loaded[A] == state  # the JSON value read
    raw = await redis.get(k.subject(A))
    assert raw[:2] == HEADER and not raw.startswith(b"{")
    assert len(raw) < len(orjson.dumps(dict(state, n=2))) / 5
    assert decode_state(raw) == dict(state, n=2)
    loaded = await legacy.begin([A], {0: 2}, partition_of={A: 0})  # a JSON writer reads compact states
    assert loaded.states[A] == dict(state, n=2)
    await legacy.abort()


async def test_a_state_stored_whole_that_says_split_is_read_whole(settings, redis):
    """A state stored whole is told from the head of a state stored split without decoding it, by
    the head's marker; a state whose text has the marker's word elsewhere is decoded to tell."""
    state = {"id": A, "n": 1, "note": "split", "fields": {"split": True}}
    await batch(SubjectStateSink(redis, keys_of(settings)), {A: state}, 0, 0, 5)
    sink = SubjectStateSink(redis, keys_of(settings))
    loaded = await sink.begin([A], {0: 5}, partition_of={A: 0})
    assert loaded.states.take(A) == state
    await sink.abort()


async def test_a_connection_lost_while_watching_is_redis_unreachable_not_a_fence(settings, redis):
    # seen: Redis restarted under a replay; redis-py raises WatchError when the watching connection
    # drops, and it was logged as "batch fenced out: another worker owns these partitions now" (and,
    # in a replay, "fenced by another job") with no other worker or job there
    from redis.exceptions import ConnectionError as RedisConnectionError

    sink = SubjectStateSink(redis, keys_of(settings))
    await batch(sink, {A: hot(A, 1)}, 0, 0, 5)
    await sink.begin([A], {0: 5}, partition_of={A: 0})
    sink.add(A, hot(A, 2))
    sink.set_position(0, 6)
    await redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # the sink's watching connection
    with pytest.raises(RedisConnectionError, match="occurred while watching") as raised:
        await sink.commit()
    assert not isinstance(raised.value, Fenced)
    loaded = await sink.begin([A], {0: 5}, partition_of={A: 0})  # the batch is read again, from Redis
    assert as_json(loaded.states[A]) == hot(A, 1)
    await sink.abort()
