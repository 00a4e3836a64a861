"""The worker's heap and CPython's cyclic garbage collector.

A worker holds the subject states of its partitions in memory (the state cache,
sinks/redis_state.py): hundreds of thousands of dicts and lists that live for minutes. CPython's
cyclic collector walks every live container in a full (generation 2) collection, and it runs one
whenever the old generation has grown by a quarter. Measured on the benchmark's latency run (1,000
events/s, the cache filling): a full collection every ~2 s, taking 14 ms at 52k objects, 170 ms
at 343k and 424 ms at 525k, with the event loop stopped meanwhile: every input that arrived in
those moments waited, and the latency's p99 was these pauses (500-700 ms).

What lives long in a worker holds no reference cycles (JSON-shaped states and records, freed by
reference counting when replaced), so the collector need only look at what is new:
:func:`keep_heap_young` turns CPython's automatic collections off and runs one collection every
``interval_s`` (cheap: the only objects it walks are those made since the last round, each of them
once), then freezes the survivors (``gc.freeze()``: moved to the permanent generation, never walked
again). Frozen objects are still freed by reference counting when dropped; a reference cycle that
became garbage only after it was frozen would stay (the worker's RSS would climb;
tests/unit/test_heap.py checks that the rules core makes no reference cycles).
``creditstream_gc_round_seconds`` times the rounds, ``creditstream_gc_collected_objects_total``
counts what they found.
"""

from __future__ import annotations

import asyncio
import gc
import time

import structlog

from creditstream import metrics

log = structlog.get_logger("creditstream.heap")


def collect_and_freeze() -> tuple[int, float]:
    """One round: collect what is garbage among the objects made since the last round, freeze the
    rest. Returns (objects collected, seconds taken)."""
    t0 = time.perf_counter()
    collected = gc.collect()  # walks the unfrozen objects only: those made since the last freeze
    gc.freeze()
    took = time.perf_counter() - t0
    # (not gc.get_freeze_count(): it walks the whole frozen list, a pause of its own)
    metrics.GC_COLLECTED.inc(collected)
    metrics.GC_ROUND_SECONDS.observe(took)
    return collected, took


async def keep_heap_young(interval_s: float) -> None:
    """Run :func:`collect_and_freeze` every ``interval_s`` seconds, for the life of the worker."""
    if interval_s <= 0:
        log.info("cyclic collector left to CPython's defaults (gc_freeze_interval_s = 0)")
        return
    collect_and_freeze()  # the modules, the rules and the clients loaded at start-up
    # the rounds are the only collections: each object is walked once, in the round after it was
    # made (CPython's automatic young collections would walk every survivor twice first)
    gc.disable()
    while True:
        await asyncio.sleep(interval_s)
        collect_and_freeze()


def thaw() -> None:
    """Give the frozen objects back to the collector (the pipeline stopped; the process goes on,
    as in tests or when embedded)."""
    gc.unfreeze()
    gc.enable()
