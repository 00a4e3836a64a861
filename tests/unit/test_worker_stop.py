"""The pieces of a worker's bounded stop that need no server (the stop itself, with real processes:
tests/reliability/test_graceful_stop.py)."""

from __future__ import annotations

import asyncio

from creditstream.app import STOP_BUDGET_S, STOP_WITHIN_S, WEB_SHUTDOWN_S, _worker_app_class, bound_web_shutdown


def test_the_web_servers_shutdown_is_bounded(tmp_path):
    """Faust creates its aiohttp runner with aiohttp's 60 s wait for the requests in flight; the worker
    lowers it. Fails when Faust or aiohttp no longer have the attribute (the worker then warns)."""
    app = _worker_app_class()("cs-stop-test", web_enabled=True, store="memory://", datadir=str(tmp_path))
    web = app.web
    assert web._runner._shutdown_timeout == 60.0  # noqa: SLF001 - what Faust leaves
    assert bound_web_shutdown(web) is True
    assert web._runner._shutdown_timeout == WEB_SHUTDOWN_S  # noqa: SLF001


def test_a_runner_without_the_attribute_is_left_alone_and_said():
    class Changed:
        _runner = object()

    assert bound_web_shutdown(Changed()) is False


def test_the_bounds_add_up():
    """The web server's wait, the pipeline's budget and Faust's own shutdown (~2 s) within the bound."""
    assert WEB_SHUTDOWN_S + STOP_BUDGET_S + 2.0 <= STOP_WITHIN_S


async def test_a_runner_told_to_stop_before_its_consumer_started_does_not_start_it():
    """stop() before run(): the agent returns without a consumer (no broker needed: none is asked)."""
    from creditstream.settings import Settings
    from streams.runner import AgentRunner

    class Agent:
        name = "probe"

        def source_topics(self):
            return ["t"]

    runner = AgentRunner(Agent(), Settings(broker_url="127.0.0.1:9"), group_id="g")
    runner.stop()
    await asyncio.wait_for(runner.run(), 5)
    assert runner.consumer is None and not runner.started.is_set()
