"""creditstream/heap.py: the worker keeps the cyclic collector off its long-lived objects."""

from __future__ import annotations

import asyncio
import gc

import pytest

from creditstream.heap import HeapRounds, collect_and_freeze, thaw, worker_rounds
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


def test_the_rounds_run_until_cancelled():
    async def run():
        task = asyncio.create_task(HeapRounds(0.01).run())
        await asyncio.sleep(0.05)
        assert gc.get_freeze_count() > 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())


def test_interval_zero_leaves_the_collector_alone():
    asyncio.run(HeapRounds(0).run())
    assert HeapRounds(0).start() is False
    assert gc.get_freeze_count() == 0


def test_a_round_at_rest_runs_once_its_interval_has_passed():
    rounds = HeapRounds(10)
    rounds.last -= 11  # the last round long ago
    rounds.at_rest()
    first = rounds.last
    assert gc.get_freeze_count() > 0 and rounds.paced
    thaw()
    rounds.at_rest()  # too soon after: no round
    assert rounds.last == first and gc.get_freeze_count() == 0
    rounds.last -= 10
    rounds.at_rest()
    assert rounds.last > first - 10 and gc.get_freeze_count() > 0


def test_the_timer_leaves_the_rounds_to_the_batches_while_they_come_and_runs_one_when_they_stop():
    async def run():
        rounds = HeapRounds(0.05)
        task = asyncio.create_task(rounds.run())
        await asyncio.sleep(0)
        taken_by_timer = []
        original = rounds.round

        def counted():
            taken_by_timer.append(rounds.paced)
            original()

        rounds.round = counted
        # batches ending every 10 ms: every round is theirs (at_rest calls the original), none the timer's
        for _ in range(20):
            await asyncio.sleep(0.01)
            rounds.round = original
            rounds.at_rest()
            rounds.round = counted
        assert taken_by_timer == []
        # no batch ends any more: the timer runs one after OVERDUE intervals
        await asyncio.sleep(0.05 * (HeapRounds.OVERDUE + 4))
        assert taken_by_timer
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())


def test_without_rounds_at_rest_the_timer_runs_every_interval():
    async def run():
        rounds = HeapRounds(0.01)
        task = asyncio.create_task(rounds.run())
        await asyncio.sleep(0)
        start = rounds.last
        await asyncio.sleep(0.035)
        assert rounds.last > start and not rounds.paced
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())


def test_work_measured_as_the_worker_runs_it_gives_the_collector_back_as_it_was():
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            with worker_rounds():
                assert not gc.isenabled()
                assert gc.get_freeze_count() > 0  # the round froze what was alive
            assert gc.isenabled() == enabled
            assert gc.get_freeze_count() == 0
            with pytest.raises(RuntimeError), worker_rounds():  # given back when the work fails too
                raise RuntimeError("measured code failed")
            assert gc.isenabled() == enabled and gc.get_freeze_count() == 0
        finally:
            gc.enable()
