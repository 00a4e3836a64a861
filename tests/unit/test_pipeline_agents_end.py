"""A worker's agent that ends while nobody told it to stop takes the pipeline down, and is said at
once with its name (creditstream/app.py ``Pipeline.wait``, ``_agent_ended``).

Seen: in ``make test-redis``'s lanes, the in-process pipeline of test_redis_failover.py logged
"agent stopped" for its subject agent right after the failover, and nothing else: the test saw no
progress for 30 s and could not say why. ``wait()`` waited for the first exception only, so an agent
whose task ended without one would have left a worker running without it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from structlog.testing import capture_logs

from creditstream.app import AgentEnded, Pipeline
from creditstream.settings import Settings


class _Runner:
    def __init__(self, name: str, body):
        self.agent = SimpleNamespace(name=name)
        self._body = body

    async def run(self) -> None:
        await self._body()


async def _forever() -> None:
    await asyncio.Event().wait()


def _pipeline(*runners: _Runner) -> Pipeline:
    pipeline = Pipeline(Settings())
    pipeline.runners = list(runners)
    pipeline._start_agents()
    return pipeline


async def _cancel(pipeline: Pipeline) -> None:
    for t in pipeline._tasks:
        t.cancel()
    await asyncio.gather(*pipeline._tasks, return_exceptions=True)


async def test_an_agent_that_ends_unasked_stops_the_pipeline_and_is_named():
    async def ends() -> None:
        await asyncio.sleep(0.01)

    pipeline = _pipeline(_Runner("ingest", _forever), _Runner("subject", ends))
    with capture_logs() as logs:
        with pytest.raises(AgentEnded, match="subject"):
            await asyncio.wait_for(pipeline.wait(), 5)
    assert [(e["event"], e["agent"]) for e in logs if e["log_level"] == "error"] == [
        ("agent ended without being told to stop: the pipeline stops", "subject")]
    await _cancel(pipeline)


async def test_an_agent_that_raises_stops_the_pipeline_with_its_error_said_in_one_line():
    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise AttributeError("'NoneType' object has no attribute 'read'")

    pipeline = _pipeline(_Runner("ingest", _forever), _Runner("subject", fails))
    with capture_logs() as logs:
        with pytest.raises(AttributeError):
            await asyncio.wait_for(pipeline.wait(), 5)
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [(e["event"], e["agent"]) for e in errors] == [("agent failed: the pipeline stops", "subject")]
    assert errors[0]["error"] == "AttributeError: 'NoneType' object has no attribute 'read'"
    assert "exc_info" not in errors[0]  # no traceback here: the worker's handler logs the failure
    await _cancel(pipeline)


async def test_agents_told_to_stop_end_quietly():
    stop = asyncio.Event()

    async def until_told() -> None:
        await stop.wait()

    pipeline = _pipeline(_Runner("ingest", until_told), _Runner("subject", until_told))
    pipeline._stop_asked = True  # as stop_soon() does before telling the runners
    stop.set()
    with capture_logs() as logs:
        await asyncio.wait_for(pipeline.wait(), 5)
        await asyncio.gather(*pipeline._tasks)
    assert [e for e in logs if e["log_level"] == "error"] == []


async def test_a_stop_cancelled_half_way_still_runs_to_its_end():
    """Faust's shutdown cancels the task that runs the pipeline while it stops: the stop goes on to
    its end (the heartbeat removed), then the cancellation is raised (creditstream/app.py
    ``stop_whole``)."""
    from creditstream.app import stop_whole

    ended = []

    class _Slow:
        async def stop(self) -> None:
            await asyncio.sleep(0.2)
            ended.append("stopped")

    task = asyncio.create_task(stop_whole(_Slow()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == ["stopped"]
