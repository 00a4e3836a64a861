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
:class:`HeapRounds` turns CPython's automatic collections off and runs one collection every
``interval_s``, between two batches (cheap: the only objects it walks are those made since the
last round, each of them once), then freezes the survivors (``gc.freeze()``: moved to the
permanent generation, never walked again). Frozen objects are still freed by reference counting
when dropped; a reference cycle that became garbage only after it was frozen would stay (the
worker's RSS would climb;
tests/unit/test_heap.py checks that the rules core makes no reference cycles).
``creditstream_gc_round_seconds`` times the rounds, ``creditstream_gc_collected_objects_total``
counts what they found.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

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


class HeapRounds:
    """When the worker's rounds run.

    A round walks every object alive that was made since the last one. Mid-batch that is the
    batch's working set: the subject agent's batch holds the states of up to ``max_batch``
    subjects (tens of containers each), gone once the batch ends. Measured (60,000 events, one
    worker): rounds every 0.25 s on a timer took 1.2 s of a 19-s run (21 ms each on average, up to
    77 ms); taken right after a subject batch ended, 0.19 s (4 ms each, at most 8.5 ms). So the
    runner of the agent whose batches hold the most calls :meth:`at_rest` after each batch, and a
    round runs there once ``interval_s`` has passed. The timer runs one anyway when none came for
    ``OVERDUE`` intervals (that agent idle, or a batch stuck retrying), and every interval in a
    worker that has no such agent. ``creditstream replay`` calls :meth:`start`, then :meth:`round`
    after each of its batches, with no timer."""

    OVERDUE = 4

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self.last = time.monotonic()
        self.paced = False  # a runner calls at_rest() after its batches

    def at_rest(self) -> None:
        """A batch has ended and its objects are gone: run a round if one is due."""
        self.paced = True
        if self.interval_s > 0 and time.monotonic() - self.last >= self.interval_s:
            self.round()

    def round(self) -> None:
        self.last = time.monotonic()
        collect_and_freeze()

    def start(self) -> bool:
        """The first round, then CPython's own collections off; False (nothing done) if the rounds
        are off (``interval_s`` 0: CPython's defaults). :func:`thaw` undoes it."""
        if self.interval_s <= 0:
            log.info("cyclic collector left to CPython's defaults (gc_freeze_interval_s = 0)")
            return False
        self.round()  # the modules, the rules and the clients loaded at start-up
        # the rounds are the only collections: each object is walked once, in the round after it was
        # made (CPython's automatic young collections would walk every survivor twice first)
        gc.disable()
        return True

    async def run(self) -> None:
        """For the life of the worker: :meth:`start`, then a round whenever none came in time."""
        if not self.start():
            return
        while True:
            await asyncio.sleep(self.interval_s)
            if time.monotonic() - self.last >= self.interval_s * (self.OVERDUE if self.paced else 1):
                self.round()


def thaw() -> None:
    """Give the frozen objects back to the collector (the pipeline stopped; the process goes on,
    as in tests or when embedded)."""
    gc.unfreeze()
    gc.enable()


@contextmanager
def worker_rounds() -> Iterator[None]:
    """The collector as a worker runs it, around work measured in process (bench/): a round first,
    CPython's own collections off (the measured code runs :func:`collect_and_freeze` where the worker
    would); afterwards the frozen objects given back and the collector on or off as it was."""
    was_enabled = gc.isenabled()
    collect_and_freeze()
    gc.disable()
    try:
        yield
    finally:
        thaw()
        if not was_enabled:
            gc.disable()
