"""Replay: the demo data through the live pipeline, then the subject-event log replayed twice into
fresh generations: identical state, identical list-change ids in the same order per subject; a
tampered live key is reported exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import eventually

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo" / "events.jsonl"


async def test_replaying_the_demo_twice_gives_identical_state_and_change_ids(pipeline, settings, redis, monkeypatch):
    from ops.produce import produce_file
    from ops.replay import live_changes, per_subject, replay
    from ops.report import progress

    report = await produce_file(settings, str(DEMO))
    expected = sum(report.sent.values())

    from sinks.keys import resolve_keys
    from tests.reliability.harness import _subject_events_applied

    keys = await resolve_keys(redis, settings.namespace)

    async def processed():  # every input, and every subject event on the log (links, ticks) applied: CI
        # saw the live states differ from the replay's, with department inputs all counted
        return await progress(settings) >= expected and await _subject_events_applied(settings, redis, keys)

    await eventually(processed, timeout=60)
    await pipeline.stop()  # the log is complete; nothing moves while we compare

    live = per_subject(await live_changes(settings))
    assert sum(map(len, live.values())) >= 3, live  # blacklist entries and the court listing at least
    # a replay re-emits nothing, so it encodes nothing either (its list changes are kept as ids)
    from streams.codec import AvroCodec

    def refuse(*_args, **_kwargs):
        raise AssertionError("a replay encoded a message")

    with monkeypatch.context() as m:
        m.setattr(AvroCodec, "encode", refuse)
        first = await replay(settings, verify=True, progress=False, jobs=1)
    second = await replay(settings, verify=True, progress=False, jobs=2)  # two processes, two partitions each
    assert (first.jobs, second.jobs) == (1, 2)
    assert not second.fenced  # every subject's inputs on its one partition: no process fenced
    assert first.differences == [] and second.differences == []
    assert per_subject(first.changes) == per_subject(second.changes) == live
    assert first.change_count == len(first.changes) == second.change_count == len(second.changes)
    # without --verify the ids are only counted: a replay's memory does not grow with its log's changes
    for jobs in (1, 2):
        counted = await replay(settings, progress=False, jobs=jobs)
        assert (counted.changes, counted.change_count) == ([], first.change_count), jobs

    # the log's reads joined into batches of replay_batch inputs or more: the same state, the same changes
    from ops.replay import _batches
    from streams.topics import Topics

    topic = Topics(settings).subject_events
    batches = [[(m.partition, m.offset) for m in b] async for b in _batches(settings, topic, None, None, None,
                                                                           at_least=7)]
    assert all(len(b) >= 7 for b in batches[:-1]), [len(b) for b in batches]
    read = [r for b in batches for r in b]
    assert len(read) == len(set(read)) == first.events
    for p in {p for p, _ in read}:  # every record once, each partition's in log order
        offsets = [o for q, o in read if q == p]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), (p, offsets)
    small = settings.replace(replay_batch=7)
    for jobs in (1, 2):
        again = await replay(small, verify=True, progress=False, jobs=jobs)
        assert again.differences == [] and per_subject(again.changes) == live, jobs

    # tamper with one live key: verify names exactly that key
    from sinks.keys import resolve_keys

    keys = await resolve_keys(redis, settings.namespace)
    member = sorted(m.decode() for m in await redis.smembers(keys.subjects))[0]
    await redis.set(keys.subject(member), b'{"id": "tampered"}')
    await redis.sadd(keys.list_members("court_debtor"), "91000000MA00000000")
    # a subject only the live generation has, after the tampered one in the order of ids (another chunk)
    await redis.set(keys.subject("9YYYYYYYYYYYYYYYYY"), b'{"id": "9YYYYYYYYYYYYYYYYY"}')
    await redis.sadd(keys.subjects, "9YYYYYYYYYYYYYYYYY")
    import ops.replay

    monkeypatch.setattr(ops.replay, "DIFF_CHUNK", 2)  # the states compared two subjects at a time
    third = await replay(settings, verify=True, progress=False)
    assert len(third.differences) == 3, third.differences
    assert third.differences[0].startswith(f"{keys.subject(member)}: differs in ")
    assert third.differences[1] == f"{keys.subject('9YYYYYYYYYYYYYYYYY')}: missing in the rebuild"
    assert third.differences[2].startswith(f"{keys.list_members('court_debtor')}:")


async def test_a_switch_is_refused_while_a_worker_runs_and_done_once_it_stopped(pipeline, settings, redis):
    """Seen: `replay --switch` with a worker running switched the readers' generation; the worker
    kept writing to the old one and new events never reached the readers."""
    from ops.replay import WorkersRunning, replay
    from sinks.keys import Keys, resolve_keys

    async def beating():
        return [k async for k in redis.scan_iter(match=Keys(settings.namespace).worker_pattern)]

    await eventually(beating, timeout=10)
    with pytest.raises(WorkersRunning, match="1 worker"):
        await replay(settings, switch=True, progress=False)
    assert (await resolve_keys(redis, settings.namespace)).generation == "live"  # nothing switched
    await pipeline.stop()  # its heartbeat goes with it
    result = await replay(settings, switch=True, progress=False)
    assert result.switched
    assert (await resolve_keys(redis, settings.namespace)).generation == result.generation


async def test_an_interrupted_replay_is_found_abandoned_by_the_next_one(settings, redis):
    """Seen: a killed replay left its generation marked "running" forever. A replay renews an alive
    key while it runs; what kill -9 leaves is a "running" progress entry whose alive key expired:
    the next replay marks it abandoned and names it."""
    from ops.replay import replay
    from sinks.keys import Keys

    keys = Keys(settings.namespace)
    await redis.hset(keys.replay_progress("replay-killed"), mapping={"status": "running", "started": 1})
    await redis.hset(keys.replay_progress("replay-alive"), mapping={"status": "running", "started": 2})
    await redis.set(keys.replay_alive("replay-alive"), b"1", ex=60)  # another replay, still running
    result = await replay(settings, generation="replay-next", progress=False)
    assert result.abandoned == ["replay-killed"]
    assert await redis.hget(keys.replay_progress("replay-killed"), "status") == b"abandoned"
    assert await redis.hget(keys.replay_progress("replay-alive"), "status") == b"running"
    assert await redis.hget(keys.replay_progress("replay-next"), "status") == b"complete"
    assert await redis.get(keys.replay_alive("replay-next")) == b"0"  # ended
    # replays of this version are found in the replays set; the scan for an earlier version's (the two
    # entries above, written as it wrote them) is done once
    assert await redis.smembers(keys.replays) == {b"*", b"replay-alive"}
    scans = int((await redis.info("commandstats")).get("cmdstat_scan", {}).get("calls", 0))
    await redis.delete(keys.replay_alive("replay-alive"))  # killed meanwhile
    again = await replay(settings, generation="replay-after", progress=False)
    assert again.abandoned == ["replay-alive"]
    assert int((await redis.info("commandstats")).get("cmdstat_scan", {}).get("calls", 0)) == scans
    last = await replay(settings, generation="replay-last", progress=False)
    assert last.abandoned == []  # found once
    assert await redis.smembers(keys.replays) == {b"*"}


async def test_a_replay_in_processes_rebuilds_a_subject_whose_events_sit_on_two_partitions(settings, redis):
    """After a repartition (or a changed pseudonym key) a subject's events sit on two partitions;
    replayed by two processes at once, neither may overwrite what the other applied (each batch
    WATCHes its subjects): the rebuild equals the one in one process."""
    from bench.core import SUBJECT
    from ops.replay import diff_generations, replay
    from sinks.keys import Keys
    from sinks.redis_state import read_states

    n = 600
    await _one_subject_on_two_partitions(settings, n)
    one = await replay(settings, progress=False, jobs=1)
    two = await replay(settings, progress=False, jobs=2)
    assert (one.events, two.events, two.jobs) == (n, n, 2)
    assert two.fenced  # inputs off their subject's partition found: the rest of the rebuild was fenced
    base = Keys(settings.namespace, pseudonym_key=settings.pseudonym_key)
    assert await diff_generations(redis, base.with_generation(one.generation),
                                  base.with_generation(two.generation)) == []
    (state,) = await read_states(redis, base.with_generation(two.generation), [SUBJECT])
    assert len(state["records"]) == n  # nothing one process applied was overwritten by the other
    # (the announced changes themselves may differ: the two processes interleave the subject's
    # inputs in another order, so other intermediate histories were announced and withdrawn; the
    # history they fold to is in the state, equal above)


async def test_parallel_rebuilds_fence_each_other_slice_by_slice(settings, redis, monkeypatch):
    """A job of a replay in several WATCHes the subjects of its transaction, and redis-server's
    WATCH is quadratic in the keys one transaction watches (a 5,000-input batch held Redis ~100 ms):
    so a job applies its batches in slices of at most ``FENCED_SLICE`` inputs. Two such jobs, run
    side by side here on the two partitions a subject's events sit on, in slices of 7: every input
    applied once, nothing one slice wrote lost to the other job, the state equal to a rebuild in
    one process."""
    import asyncio

    from agents.subject import SubjectAgent
    from bench.core import SUBJECT
    from ops import replay as replay_module
    from sinks.keys import Keys
    from sinks.redis_state import SubjectStateSink, read_states

    n = 90
    await _one_subject_on_two_partitions(settings, n)

    sizes: list[int] = []
    process, commit = SubjectAgent.process, SubjectStateSink.commit

    async def counted(self, records, checkpoint):
        sizes.append(len(records))
        return await process(self, records, checkpoint)

    async def late(self):
        await asyncio.sleep(0.005)  # the other job reads the subject between this one's read and write
        return await commit(self)

    monkeypatch.setattr(SubjectAgent, "process", counted)
    monkeypatch.setattr(SubjectStateSink, "commit", late)
    monkeypatch.setattr(replay_module, "FENCED_SLICE", 7)
    base = Keys(settings.namespace, pseudonym_key=settings.pseudonym_key)
    keys = base.with_generation("replay-sliced")

    async def nothing(_n: int) -> None:
        return None

    applied = await asyncio.gather(*(
        replay_module._rebuild(settings, redis, keys, partitions=[p], start=None, from_timestamp_ms=None,
                               on_batch=nothing, parallel=True) for p in (0, 1)))
    assert sum(done.events for done in applied) == n
    assert max(sizes) == 7 and sum(sizes) > n  # sliced; and fenced: some slices were processed again
    (state,) = await read_states(redis, keys, [SUBJECT])
    assert len(state["records"]) == n  # nothing one job applied was overwritten by the other
    one = await replay_module.replay(settings, progress=False, jobs=1)
    assert await replay_module.diff_generations(redis, base.with_generation(one.generation), keys) == []


async def test_a_replay_in_processes_meeting_a_stray_input_midway_goes_on_fenced(settings, redis):
    """A replay in several processes runs unfenced while every input sits on its subject's one
    partition; here the subject's first 40 and last 40 inputs sit where the producer puts them, the 40
    between on another partition (written before a repartition, say). The process that meets the
    first of those stops before it; a fenced pass goes on from the positions recorded, skipping what
    the first applied: the rebuild equals the one in one process, every input applied once."""
    from bench.core import SUBJECT
    from ops.replay import diff_generations, replay
    from sinks.kafka import key_hash
    from sinks.keys import Keys
    from sinks.redis_state import read_states
    from streams import kafka
    from streams.topics import Topics

    await kafka.ensure_topics(settings)
    count = len(await kafka.partitions_of(settings, Topics(settings).subject_events))
    home = key_hash(SUBJECT.encode()) % count
    n = 120
    await _one_subject_on_two_partitions(settings, n, lambda i: (home + 1) % count if 40 <= i < 80 else None)
    one = await replay(settings, progress=False, jobs=1)
    two = await replay(settings, progress=False, jobs=2)
    assert (one.events, two.events, two.jobs, two.fenced) == (n, n, 2, True)
    base = Keys(settings.namespace, pseudonym_key=settings.pseudonym_key)
    assert await diff_generations(redis, base.with_generation(one.generation),
                                  base.with_generation(two.generation)) == []
    (state,) = await read_states(redis, base.with_generation(two.generation), [SUBJECT])
    assert len(state["records"]) == n


async def _one_subject_on_two_partitions(settings, n: int, partition_of=lambda i: i % 2) -> None:
    """``n`` penalties about one subject on the subject-event log, input ``i`` on partition
    ``partition_of(i)`` (default: alternating partitions 0 and 1, as after a repartition; None: where
    the producer's partitioner puts it, as the workers do), every input its own record."""
    import datetime as dt

    from bench.core import SUBJECT, penalty
    from domain import events
    from domain.clock import due_ms
    from streams import kafka
    from streams.topics import Topics

    await kafka.ensure_topics(settings)
    topic = Topics(settings).subject_events
    producer = kafka.producer(settings)
    await producer.start()
    arrival = due_ms("2026-11-30") + 36_000_000
    try:
        for i in range(n):
            ev = events.of_record(SUBJECT, "uscc", f"creditstream.penalty/{i % 2}/{i}",
                                  penalty(i, dt.date(2021, 1, 4) + dt.timedelta(days=i)), arrival)
            await producer.send(topic, events.encode(ev), key=SUBJECT.encode(), partition=partition_of(i))
        await producer.flush()
    finally:
        await producer.stop()


async def test_from_offsets_naming_a_partition_the_log_does_not_have_is_refused(settings, redis):
    """Seen: `replay --from-offsets 9:0` on a 4-partition log replayed every partition from its
    start and exited 0 (a partition it does not name is read from the start; one that does not exist
    was simply never met). A partition the log does not have is a usage error, nothing started."""
    import sys

    from sinks.keys import Keys
    from streams import kafka
    from tests.workers import run_to_end, worker_env

    await kafka.ensure_topics(settings)
    rc, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "replay", "--from-offsets", "9:0,1:0"],
                                    env=worker_env(settings))
    assert rc == 2, (out, err)
    assert b"partition(s) 9" in err and b"replayed" not in out, (out, err)
    assert [k async for k in redis.scan_iter(match=Keys(settings.namespace).replay_pattern)] == []


async def test_from_offsets_past_a_partitions_end_says_nothing_of_it_is_replayed(settings, redis):
    """Seen: `replay --from-offsets 0:999999999` (past partition 0's end) replayed the other partitions
    and exited 0 without a word about partition 0. It says so (and still replays the rest)."""
    import sys

    from streams import kafka
    from tests.workers import run_to_end, worker_env

    await kafka.ensure_topics(settings)
    rc, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "replay", "--from-offsets",
                                     "0:999999999,1:0"], env=worker_env(settings))
    assert rc == 0, (out, err)
    assert b"--from-offsets: past the end of the partition: nothing of it is replayed" in err, err[-2000:]


async def test_a_switch_to_a_rebuild_of_a_log_behind_the_live_state_is_refused(settings, redis):
    """Seen: after an embedded Tansu restarted with an empty log, `replay --switch` (as the worker's
    stop advised) rebuilt 0 events, switched, and readers saw 0 subjects. The live state records
    positions past the log's end: a switch is refused before anything is written; a rebuild to verify
    goes on, said."""
    import sys

    from sinks.keys import Keys
    from streams import kafka
    from tests.workers import run_to_end, worker_env

    await kafka.ensure_topics(settings)
    live = Keys(settings.namespace)
    await redis.set(live.position(1), 13000)  # the state of a log that had 13,000 events on partition 1
    rc, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "replay", "--switch"],
                                    env=worker_env(settings))
    assert rc == 2, (out, err)
    assert b"records positions past the end of" in err and b"partition 1: state at 13,000" in err, err[-2000:]
    assert b"nothing switched" in err and b"replayed" not in out, (out, err)
    assert await redis.get(live.current_generation) is None
    assert [k async for k in redis.scan_iter(match=live.replay_pattern)] == []
    rc, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "replay"], env=worker_env(settings))
    assert rc == 0, (out, err)
    assert b"the rebuild goes on (not switched to)" in err, err[-2000:]
