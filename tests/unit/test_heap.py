"""creditstream/heap.py: the worker keeps the cyclic collector off its long-lived objects."""

from __future__ import annotations

import asyncio
import gc

import pytest

from creditstream.heap import collect_and_freeze, keep_heap_young, thaw
from tests.unit.test_state_round_trip import inputs


@pytest.fixture(autouse=True)
def _thawed():
    thaw()
    yield
    thaw()


class Node:
    def __init__(self):
        self.other = None


def test_a_round_collects_young_cycles_and_freezes_the_survivors():
    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle, garbage once the names go
    del a, b
    kept = {"records": {"k": [1, 2, 3]}}
    collected, took = collect_and_freeze()
    assert collected >= 2  # the cycle (and its instance dicts)
    assert took >= 0
    assert gc.get_freeze_count() > 0
    # frozen: no collection walks it any more, yet it is alive and usable
    assert not any(o is kept for o in gc.get_objects())
    assert kept["records"]["k"] == [1, 2, 3]
    thaw()
    assert any(o is kept for o in gc.get_objects())


def test_the_rules_core_leaves_no_cyclic_garbage():
    """What the worker folds and keeps (states, records, list changes) is freed by reference
    counting alone: after many inputs, a full collection finds nothing of the core's."""
    from domain.calendar import WorkingCalendar
    from domain.engine import step
    from domain.rulebook import load_rulebook
    from sinks.state_codec import encode_state

    rules, cal = load_rulebook(), WorkingCalendar()
    evs = list(inputs(400))
    gc.collect()
    gc.disable()
    try:
        state = None
        for ev in evs:
            result = step(state, ev, rules, cal)
            state = result.state
            encode_state(state, "compact")
        assert state is not None and state["records"]
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_keep_heap_young_runs_rounds_until_cancelled():
    async def run():
        task = asyncio.create_task(keep_heap_young(0.01))
        await asyncio.sleep(0.05)
        assert gc.get_freeze_count() > 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())


def test_interval_zero_leaves_the_collector_alone():
    asyncio.run(keep_heap_young(0))
    assert gc.get_freeze_count() == 0
