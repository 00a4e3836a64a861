"""A hot subject stored split (sinks/state_codec.py) against a real redis-server: head and record
parts written in the fenced transaction, only the touched parts re-written, read back whole by the
agent's sink (under WATCH, for another worker taking the partition over) and by the operators'
readers, and a missing part refused by name."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from bench.core import SUBJECT, penalty
from domain import events
from domain.calendar import WorkingCalendar
from domain.clock import due_ms
from domain.engine import step
from domain.record_maps import json_default
from domain.rulebook import load_rulebook
from domain.validate import decision_key
from sinks.keys import Keys
from sinks.redis_state import SubjectStateSink, read_states
from sinks.state_codec import SPLIT_RECORDS, StateFormatError, decode_state

pytestmark = pytest.mark.integration


def as_json(state: dict) -> dict:
    """A state as JSON (the sink hands a large state's per-record maps persistent: domain/record_maps.py)."""
    return orjson.loads(orjson.dumps(state, default=json_default))


def inputs(n: int) -> list:
    """``n`` penalties of the hot subject, every fifth a correction of an earlier one."""
    arrival = due_ms("2026-11-30") + 36_000_000
    start = dt.date(2021, 1, 4)
    out = []
    for i in range(n):
        if i % 5 == 4:
            j = i - 3
            rec = dict(penalty(j, start + dt.timedelta(days=j)), fields={"remarks": f"更正{i}"})
        else:
            rec = penalty(i, start + dt.timedelta(days=i))
        out.append(events.of_record(SUBJECT, "uscc", f"creditstream.penalty/0/{i}", rec, arrival))
    return out


async def apply_batch(sink: SubjectStateSink, batch: list, partition: int, start: int) -> dict:
    rules, cal = load_rulebook(), WorkingCalendar()
    loaded = await sink.begin([SUBJECT], {partition: start}, partition_of={SUBJECT: partition})
    state, touched = loaded.states[SUBJECT], frozenset()
    for ev in batch:
        result = step(state, ev, rules, cal)
        state = result.state
        touched = None if touched is None or result.touched is None else touched | result.touched
    sink.add(SUBJECT, state, new=loaded.states[SUBJECT] is None, touched=touched)
    sink.set_position(partition, start + len(batch))
    await sink.commit()
    return state


async def test_a_hot_subject_is_stored_split_and_reads_back_whole(settings, redis):
    keys = Keys(settings.namespace, pseudonym_key=settings.pseudonym_key)
    evs = inputs(SPLIT_RECORDS + 60)
    sink = SubjectStateSink(redis, keys)
    state = None
    for start in range(0, len(evs), 20):
        state = await apply_batch(sink, evs[start:start + 20], 0, start)
        (back,) = await read_states(redis, keys, [SUBJECT])
        assert back == as_json(state)
    records = state["records"]
    assert len(records) > SPLIT_RECORDS
    head = decode_state(await redis.get(keys.subject(SUBJECT)))
    assert head["split"]["parts"] == len(records) and "records" not in head and "basis" not in head
    assert await redis.hlen(keys.subject_records(SUBJECT)) == len(records)
    assert len(await redis.get(keys.subject(SUBJECT))) < 4096  # the head stays small

    # one more input: its record's part is re-written, no other
    before = await redis.hgetall(keys.subject_records(SUBJECT))
    extra = inputs(len(evs) + 1)[-1:]
    state = await apply_batch(sink, extra, 0, len(evs))
    after = await redis.hgetall(keys.subject_records(SUBJECT))
    assert {k for k in after if before.get(k) != after[k]} == {decision_key(extra[0].record).encode()}

    # another worker takes the partition over: it reads head and parts under WATCH, whole
    other = SubjectStateSink(redis, keys, cache_mb=0)
    loaded = await other.begin([SUBJECT], {0: len(evs) + 1}, partition_of={SUBJECT: 0})
    assert as_json(loaded.states[SUBJECT]) == as_json(state)
    assert loaded.states[SUBJECT]["basis"] == state["basis"]  # rebuilt from the facts, not stored
    await other.abort()

    # the operators' readers see the whole state
    from ops.inspect import subject_state

    assert await subject_state(settings, SUBJECT) == as_json(state)

    # a lost part is refused by name, never read as a smaller state
    await redis.hdel(keys.subject_records(SUBJECT), next(iter(after)))
    with pytest.raises(StateFormatError, match="record parts"):
        await read_states(redis, keys, [SUBJECT])


async def test_readers_never_see_a_head_and_parts_of_different_batches(settings, redis):
    """Seen in CI: a reader took the head of one batch and the parts of the next ("its head names
    120 record parts, Redis holds 130") while a worker wrote. Head and parts are read together."""
    import asyncio

    keys = Keys(settings.namespace, pseudonym_key=settings.pseudonym_key)
    evs = inputs(SPLIT_RECORDS + 200)
    sink = SubjectStateSink(redis, keys)
    first = SPLIT_RECORDS + 5
    await apply_batch(sink, evs[:first], 0, 0)
    done = asyncio.Event()
    reads = 0

    async def read_all_the_time() -> None:
        nonlocal reads
        while not done.is_set():
            (state,) = await read_states(redis, keys, [SUBJECT])  # raises on a torn read
            assert len(state["records"]) >= first - first // 5
            reads += 1

    reader = asyncio.create_task(read_all_the_time())
    try:
        for start in range(first, len(evs), 5):
            await apply_batch(sink, evs[start:start + 5], 0, start)
            await asyncio.sleep(0)
    finally:
        done.set()
        await reader
    assert reads > 20


async def test_a_big_state_written_whole_by_an_earlier_version_is_split_when_next_written(settings, redis):
    """A subject of more than 64 records stored whole (before split storage): read, held by the
    state cache without being written (a batch that changed nothing of it), then changed by the next
    batch: every part is written then, not only the touched one."""
    from sinks.state_codec import encode_state

    keys = Keys(settings.namespace, pseudonym_key=settings.pseudonym_key)
    rules, cal = load_rulebook(), WorkingCalendar()
    evs = inputs(SPLIT_RECORDS + 20)
    state = None
    for ev in evs[:-1]:
        state = step(state, ev, rules, cal).state
    n = len(evs) - 1
    await redis.set(keys.subject(SUBJECT), encode_state(state))  # the earlier version's whole form
    await redis.set(keys.position(0), n)
    sink = SubjectStateSink(redis, keys)
    await sink.begin([SUBJECT], {0: n}, partition_of={SUBJECT: 0})  # read, nothing written
    sink.set_position(0, n)
    await sink.commit()
    state = await apply_batch(sink, evs[-1:], 0, n)  # from the cache: one record touched
    (back,) = await read_states(redis, keys, [SUBJECT])
    assert back == as_json(state)
    assert await redis.hlen(keys.subject_records(SUBJECT)) == len(state["records"])


async def test_a_state_that_shrinks_below_the_split_and_grows_again_reads_back(settings, redis):
    """Records leave a state (decisions that followed their legacy number to another organisation): a
    state of 70 records (split) down to 60 (stored whole) then up to 70 again. The split form's parts
    were left in Redis when it was stored whole, read again with the next split form's: "its head names
    70 record parts, Redis holds 80", and every worker taking the partition stopped (an audit)."""
    sid = "91310110666007217T"
    keys = Keys(settings.namespace)
    sink = SubjectStateSink(redis, keys, cache_mb=0)

    def state(names: list[str], version: int) -> dict:
        return {"id": sid, "id_kind": "uscc", "version": version, "updated_ms": 1,
                "records": {k: {"kind": "penalty", "doc_no": k, "versions": {}} for k in names},
                "facts": {k: {"since": "2026-01-01"} for k in names}}

    async def write(value: dict, offset: int, touched) -> None:
        await sink.begin([sid], [0], partition_of={sid: 0})
        sink.add(sid, value, touched=touched)
        sink.set_position(0, offset)
        await sink.commit()

    first = [f"penalty|u|r{i:03d}" for i in range(SPLIT_RECORDS + 6)]
    await write(state(first, 1), 1, None)
    fewer = first[:SPLIT_RECORDS - 4]
    await write(state(fewer, 2), 2, set(first[len(fewer):]))
    assert await redis.hlen(keys.subject_records(sid)) == 0  # stored whole: no part left
    more = fewer + [f"penalty|u|n{i:03d}" for i in range(10)]
    await write(state(more, 3), 3, set(more[len(fewer):]))
    [read] = await read_states(redis, keys, [sid])
    assert sorted(read["records"]) == sorted(more)
