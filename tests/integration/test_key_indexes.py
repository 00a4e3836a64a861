"""The readers that are called often find the running workers and the lists without scanning the
keyspace (real Redis).

Seen: /health (every probe), GET /lists and the public disclosure's front page found the workers'
heartbeats and the list keys with SCAN ... MATCH, which reads every key of Redis: measured on the
embedded redis-server with 1,000,000 keys (a million subjects' states), 0.74-0.90 s per call and
about 0.6 s of Redis's one thread each, which every worker and check waited behind. The workers are
now found through the ``workers`` index (sinks/keys.py), the lists through the generation's
``lists`` set; both are written with what they index.
"""

from __future__ import annotations

import time

import orjson
import pytest

from streams import samples
from tests.conftest import eventually

pytestmark = pytest.mark.integration


async def scans(redis) -> int:
    return int((await redis.info("commandstats")).get("cmdstat_scan", {}).get("calls", 0))


async def test_health_and_lists_read_indexes_not_the_keyspace(settings, pipeline, department, redis):
    from creditstream.api import Api
    from ops.inspect import Reader, running_workers
    from sinks.keys import INDEX_COMPLETE, Keys, resolve_keys
    from tests.integration.test_api import produce_listing_inputs

    await produce_listing_inputs(department)
    keys = await resolve_keys(redis, settings.namespace)

    # every list both inputs put the company and its legal representative on (not the court-debtor set
    # alone: the court listing may be applied before the penalty, so the blacklist and the escalation
    # were not there yet when the sets were scanned)
    from ops.inspect import subject_lists

    wanted = {"blacklist:environment", "court_debtor", "escalated"}

    async def listed():
        found = [await subject_lists(settings, s) for s in (samples.COMPANY_USCC, samples.LEGAL_REP_ID)]
        return all(f and wanted <= set(f["lists"]) for f in found)

    await eventually(listed, timeout=60)
    # what a scan finds: the truth the indexes must give
    scanned_lists = sorted([k.decode()[len(keys.list_prefix):]
                            async for k in redis.scan_iter(match=keys.list_prefix + "*", count=1000)])
    assert {"blacklist:environment", "court_debtor", "escalated"} <= set(scanned_lists)
    # the worker started them (what an earlier version wrote is scanned for then, once)
    assert INDEX_COMPLETE.encode() in await redis.smembers(keys.list_names)
    assert INDEX_COMPLETE.encode() in await redis.smembers(keys.replays)

    before = await scans(redis)
    workers = await running_workers(redis, Keys(settings.namespace))

    async def sizes_as_the_sets_say():
        # read again while the pipeline still applies the inputs (seen in CI: court_debtor 1 read by
        # the reader, 2 by the SCARD just after)
        sizes = await Reader(settings, redis).lists()
        truth = {n: await redis.scard(keys.list_members(n)) for n in scanned_lists}
        return sizes if sorted(sizes) == scanned_lists and sizes == truth else None

    sizes = await eventually(sizes_as_the_sets_say, timeout=30)
    health = await Api(settings, redis)._check_health()  # noqa: SLF001 - what GET /health reads
    assert await scans(redis) == before, "a reader scanned the keyspace"

    assert [w["pid"] for w in workers] == [pipeline_pid()] and workers[0]["generation"] == keys.generation
    assert sizes and set(sizes) == set(scanned_lists)  # (equal to the sets' sizes: sizes_as_the_sets_say)
    assert [w["pid"] for w in health[3]] == [pipeline_pid()]


def pipeline_pid() -> int:
    import os

    return os.getpid()  # the pipeline fixture runs in this process


async def test_a_generation_written_before_the_list_index_is_scanned_once_then_indexed(settings, redis):
    """A generation an earlier version wrote has list keys and no ``lists`` set: readers scan for
    them (the right answer, slowly) until a worker starts on it and completes the set."""
    from ops.inspect import Reader
    from sinks.keys import INDEX_COMPLETE, complete_indexes, list_names, resolve_keys

    keys = await resolve_keys(redis, settings.namespace)
    await redis.sadd(keys.list_members("court_debtor"), "91350211MA0000000X")
    await redis.sadd(keys.list_members("blacklist:environment"), "91350211MA0000000X", "91350211MA0000001X")
    before = await scans(redis)
    assert await list_names(redis, keys) == ["blacklist:environment", "court_debtor"]
    assert await scans(redis) > before  # not indexed: found by a scan

    await complete_indexes(redis, keys)
    assert await redis.smembers(keys.list_names) == {
        INDEX_COMPLETE.encode(), b"blacklist:environment", b"court_debtor"}
    await redis.sadd(keys.list_members("red_list"), "91350211MA0000002X")  # a batch adds its lists too
    await redis.sadd(keys.list_names, "red_list")
    before = await scans(redis)
    assert await Reader(settings, redis).lists() == {"blacklist:environment": 2, "court_debtor": 1, "red_list": 1}
    assert await scans(redis) == before
    # done once: a worker starting again does not scan
    await complete_indexes(redis, keys)
    assert await scans(redis) == before


async def test_running_workers_are_found_by_the_index_and_their_heartbeats(settings, redis):
    """The index names candidates; the heartbeat key decides: expired or ``stopped`` is not running.
    A heartbeat the index lacks (a worker of an earlier version) is found only where it matters
    that none is missed (``scan=True``: ``replay --switch``, ``positions move``)."""
    from ops.inspect import running_workers
    from sinks.keys import Keys

    keys = Keys(settings.namespace)
    now_ms = int(time.time() * 1000)

    def beat(pid: int) -> bytes:
        return orjson.dumps({"host": "h", "pid": pid, "generation": "live", "agents": ["subject"]})

    await redis.set(keys.worker("h:1:a"), beat(1), ex=15)
    await redis.set(keys.worker("h:2:b"), b"stopped", px=60_000)
    await redis.set(keys.worker("h:4:d"), beat(4), ex=15)  # not in the index: an earlier version's
    await redis.zadd(keys.workers, {"h:1:a": now_ms, "h:2:b": now_ms, "h:3:c": now_ms, "h:5:e": now_ms - 3_600_000})
    await redis.set(keys.worker("h:5:e"), beat(5), ex=15)  # a beat an hour old in the index: not looked at
    assert [w["pid"] for w in await running_workers(redis, keys)] == [1]  # h:3:c's key expired
    assert sorted(w["pid"] for w in await running_workers(redis, keys, scan=True)) == [1, 4, 5]


async def test_a_worker_enters_the_index_while_it_runs_and_leaves_it_when_it_stops(settings, redis):
    from creditstream.app import Pipeline
    from ops.inspect import running_workers
    from sinks.keys import Keys

    keys = Keys(settings.namespace)
    p = Pipeline(settings, agents=("subject",))
    await p.start()
    try:
        async def indexed():
            return await redis.zcard(keys.workers) == 1 and await running_workers(redis, keys)

        await eventually(indexed, timeout=10)
        (identity,) = await redis.zrange(keys.workers, 0, -1)
        assert await redis.exists(keys.worker(identity.decode()))
    finally:
        await p.stop()
    assert await redis.zcard(keys.workers) == 0
    assert await running_workers(redis, keys, scan=True) == []
