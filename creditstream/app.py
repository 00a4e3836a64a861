"""The composition root: builds the clients, agents and sinks from the settings and runs them.

``Pipeline`` wires everything and runs one :class:`streams.runner.AgentRunner` per agent:

=========  ===============================================  ======================================
agent      reads                                            writes
=========  ===============================================  ======================================
ingest     penalty, license, court-debtor, action-record,   subject-events, dead-letters, Redis
           credit-office                                    identifier index / parked records
registry   registration (compacted)                         subject-events, dead-letters, Redis
subject    subject-events (keyed by subject)                list-changes, subject-events (links to
                                                            legal representatives), dead-letters,
                                                            Redis state / lists / due instants
timer      Redis due instants (wall clock)                  subject-events (tick events)
=========  ===============================================  ======================================

``create_faust_app`` hosts the pipeline in a Faust app (``creditstream worker``): Faust provides the
worker's lifecycle, signal handling and web server; the agents run as app tasks with their own
batch consumers, which keeps Faust's per-event cost off the hot path (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import time
from pathlib import Path

import orjson
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import domain
from agents.ingest import IngestAgent
from agents.registry import RegistryAgent
from agents.subject import SubjectAgent
from agents.timer import TimerAgent
from creditstream import eventloop, holdings, host, metrics
from creditstream.connections import (
    check_redis,
    follow_redis_clock,
    make_codec,
    redis_client,
    redis_memory,
    redis_now_ms,
)
from creditstream.heap import HeapRounds, thaw
from creditstream.logs import said_in_one_line
from creditstream.settings import Settings
from domain.calendar import WorkingCalendar, coverage_warning
from domain.clock import date_of_ms, now_ms
from domain.facts import BASIS_VERSION
from domain.rulebook import load_rulebook
from sinks.keys import complete_indexes, require_pseudonym_key, resolve_keys
from sinks.redis_state import SubjectStateSink
from sinks.registry_index import RegistryIndex
from streams import kafka, placement
from streams.runner import AgentRunner, PositionAhead
from streams.topics import Topics

log = structlog.get_logger("creditstream.app")

AGENTS = ("ingest", "registry", "subject", "timer")
HEARTBEAT_S = 2.0
KAFKA_CHECK_EVERY = 5
"""Heartbeats between two checks that the Kafka cluster answers (``creditstream_dependency_up``): 10 s."""
HEARTBEAT_TTL_S = 15
STOP_BUDGET_S = 4.0
"""How long :meth:`Pipeline.stop` takes at most, whatever the services do."""
STOP_WITHIN_S = 8.0
"""A requested stop (SIGTERM) ends the process within this: ``STOP_BUDGET_S`` plus Faust's own
shutdown (1-2 s), with a margin (tests/reliability/test_graceful_stop.py holds every case to it).
The supervisor's grace period (docker-compose.yml ``stop_grace_period``, Kubernetes'
``terminationGracePeriodSeconds``) must be longer: a worker killed at its end leaves its consumer
groups only when their session timeout expires (docs/operations.md, "Stopping a worker")."""
STOP_RESERVE_S = 1.0
"""Of ``STOP_BUDGET_S``, kept for the producer's close and the heartbeat's removal after the agents."""
WORKERS_FORGOTTEN_AFTER_MS = 86_400_000  # a worker's entry in the ``workers`` index, not renewed for this long


class AgentEnded(RuntimeError):
    """An agent's task ended while the pipeline runs and nobody told it to stop."""


def _agent_name(task: asyncio.Task) -> str:
    return task.get_name().removeprefix("agent:")  # (Pipeline._start_agents names them so)


class Pipeline:
    """Every agent of one worker process, started and stopped together."""

    def __init__(self, settings: Settings, agents: tuple[str, ...] = AGENTS):
        self.settings = settings
        self.agent_names = agents
        self.topics = Topics(settings)
        self.redis = None
        self.producer = None
        self.runners: list[AgentRunner] = []
        self._tasks: list[asyncio.Task] = []
        self._heartbeat: asyncio.Task | None = None
        self._heap: asyncio.Task | None = None
        self._heartbeat_key = ""
        self._workers_key = ""
        self._identity = ""
        self._rules_version = ""
        self.failure: BaseException | None = None
        self._stop_asked = False
        """What stopped the worker that the command line reports itself (a missing Kafka ACL)."""

    async def start(self) -> None:
        s = self.settings
        if s.clock_offset_s:
            from domain import clock

            clock.set_offset(s.clock_offset_s)
            log.warning("this worker's clock is shifted (clock_offset_s: tests only)", offset_s=s.clock_offset_s)
        await kafka.wait_for_broker(s)
        await kafka.ensure_topics(s)
        await self._warn_of_topic_drift()
        self.redis = redis_client(s, repeat_unanswered=False)  # the batch runner and the timer retry, and say so
        await self._wait_for_redis()
        unsure = await check_redis(self.redis, s.namespace)  # RedisUnsuitable: one that evicts any key, or a cluster
        if unsure:
            log.warning("redis set-up", problem=unsure)
        keys = await resolve_keys(self.redis, s.namespace, require_pseudonym_key(s.pseudonym_key))
        await self._follow_redis_clock()  # before any input is checked against the clock
        if "subject" in self.agent_names:
            # what an earlier version wrote without the index sets (lists, replays): scanned for, once
            await complete_indexes(self.redis, keys)
        self.producer = kafka.producer(s)
        # over how many partitions the subject-keyed topics are placed: the count recorded, not the
        # topic's now (PlacementError if it has fewer: exit 2)
        self.producer.placement = await self._placement(keys)
        await self.producer.start()
        codec = make_codec(s)
        index = RegistryIndex(self.redis, keys)
        rules = load_rulebook(s.rules_file or None)
        calendar = WorkingCalendar.from_file(s.calendar_file) if s.calendar_file else WorkingCalendar()
        uncovered = coverage_warning(calendar, dt.date.fromisoformat(date_of_ms(now_ms())))
        if uncovered:
            log.warning("working-day calendar incomplete", detail=uncovered)
        build = {
            "ingest": lambda: IngestAgent(topics=self.topics, codec=codec, index=index, producer=self.producer),
            "registry": lambda: RegistryAgent(topics=self.topics, codec=codec, index=index, producer=self.producer),
            "subject": lambda: SubjectAgent(topics=self.topics,
                                            state=SubjectStateSink(self.redis, keys, cache_mb=s.state_cache_mb,
                                                                   state_format=s.state_format),
                                            producer=self.producer, codec=codec, rules=rules, calendar=calendar,
                                            log_end_patience_s=s.log_end_patience_s),
        }
        # the heap's rounds run between two subject batches, when the batch's states are gone
        self.heap_rounds = HeapRounds(s.gc_freeze_interval_s)
        self.runners = [AgentRunner(build[name](), s,
                                    after_batch=self.heap_rounds.at_rest if name == "subject" else None)
                        for name in self.agent_names if name in build]
        if "timer" in self.agent_names:
            self.runners.append(TimerAgent(topics=self.topics, redis=self.redis, keys=keys, producer=self.producer,
                                           interval_s=s.timer_interval_s, lease_s=s.timer_lease_s,
                                           clock_tolerance_s=s.clock_tolerance_s))
        self._start_agents()
        self._identity = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._rules_version = rules.version  # in the heartbeat: `rederive` ticks toward the workers' rules
        self._heartbeat_key = keys.worker(self._identity)
        self._workers_key = keys.workers
        self._due_key = keys.due
        self._follow_key = keys.numbers_to_follow
        self._heartbeat = asyncio.create_task(self._beat(keys.generation), name="heartbeat")
        self._heap = asyncio.create_task(self.heap_rounds.run(), name="heap")
        started = asyncio.gather(*(r.started.wait() for r in self.runners))
        try:
            await asyncio.wait([started, *self._tasks], return_when=asyncio.FIRST_COMPLETED, timeout=120)
        finally:
            # stopped while the agents join their groups: no wait left behind, nor its cancellation
            # reported as an exception never retrieved
            started.cancel()
            started.add_done_callback(lambda f: f.cancelled() or f.exception())
        for t in self._tasks:
            if t.done() and t.exception():
                raise t.exception()
        if self._stop_asked:
            return
        room = host.memory_available()  # what its container (cgroup) lets it take: docs/operations.md, Sizing
        years = sorted(calendar.covered_years)
        log.info("pipeline started", agents=list(self.agent_names), keys=keys.gen_prefix, rules=rules.version,
                 # which working-day calendar the deadlines are counted with (a replay with another
                 # gives another timeline: an audit of the timer found nothing that said which)
                 calendar=s.calendar_file or "built-in",
                 calendar_years=f"{years[0]}-{years[-1]}" if years else None,
                 broker=s.broker_url, broker_kind=s.broker_kind,
                 rules_core="compiled" if domain.COMPILED else "python", event_loop=eventloop.running(),
                 cpus=host.cpus(), memory_available_mib=None if room is None else room >> 20)

    async def _placement(self, keys) -> dict[str, int]:
        """streams/placement.py: each placed topic's partition count recorded (the first worker on a
        fresh topic records it), a warning for partitions beyond it."""
        names = placement.placed_topics(self.topics)
        counts = await kafka.partition_counts(self.settings, names)
        return await self._while_redis_starts(lambda: placement.settle(self.redis, keys, counts),
                                              retry_on=(RedisConnectionError, RedisTimeoutError))

    async def _warn_of_topic_drift(self) -> None:
        """A topic that existed before creditstream created it (a department's first send, with the
        broker auto-creating it) has the broker's defaults: on Apache Kafka a retention of 7 days,
        which deletes the inputs a replay needs (and, on a stalled worker, inputs not yet read).
        Said at every start, with the command that fixes it; a broker that cannot tell is not an
        error."""
        try:
            drift = await kafka.topic_config_drift(self.settings)
        except Exception as exc:  # noqa: BLE001 - a check, never a reason not to start
            from creditstream.probes import kafka_authorization

            refused = kafka_authorization(exc, self.settings)  # no DescribeConfigs ACL: say which
            log.warning("could not compare the topics' configuration",
                        error=refused or f"{type(exc).__name__}: {exc}")
            return
        fix = ("Tansu does not change a topic's configuration (the embedded development broker does not rely "
               "on it; `creditstream topics` says more)" if self.settings.is_tansu
               else "run `creditstream topics --apply`")
        for d in drift or ():
            log.warning(f"topic configuration differs from creditstream's: {fix}",
                        topic=d.topic, config=d.name, current=d.current, wanted=d.wanted)

    async def _beat(self, generation: str) -> None:
        """Tell Redis this worker runs (``HEARTBEAT_S``; the key expires ``HEARTBEAT_TTL_S`` after the
        last beat of a worker that died): ``replay --switch`` refuses while workers run."""
        started = int(time.time())
        health: dict[str, dict] = {}
        beats = 0
        while True:
            health = log_health_changes(health, self.health())
            value = orjson.dumps({"host": socket.gethostname(), "pid": os.getpid(), "generation": generation,
                                  "agents": list(self.agent_names), "started": started, "at": int(time.time()),
                                  "health": health, "rules": self._rules_version, "derivation": BASIS_VERSION})
            try:
                await self._write_heartbeat(value)
                metrics.DEPENDENCY_UP.labels("redis").set(1)
            except Exception as exc:  # noqa: BLE001 - Redis down or full: the agents retry and report it
                log.debug("heartbeat not written", error=str(exc))
                # seen (an audit): Redis down with no input coming (nights, weekends) moved no metric
                # and fired no alert while the timer could fire nothing
                metrics.DEPENDENCY_UP.labels("redis").set(0)
            try:
                await self._read_redis_memory()
                reference_ms = await redis_now_ms(self.redis)  # one TIME for the clock and the backlog
                await self._follow_redis_clock(reference_ms)
                await self._read_due_backlog(reference_ms)
                metrics.NUMBERS_TO_FOLLOW.set(0 if await self.redis.hget(self._follow_key, "since") is None else 1)
            except Exception as exc:  # noqa: BLE001 - as above; the gauges keep their last figures
                log.debug("redis memory, clock or due backlog not read", error=str(exc))
            beats += 1
            if beats % KAFKA_CHECK_EVERY == 1:
                metrics.DEPENDENCY_UP.labels("kafka").set(1 if await self._kafka_answers() else 0)
            await asyncio.sleep(HEARTBEAT_S)

    async def _read_due_backlog(self, now_ms: int) -> None:
        """``creditstream_due_timer_backlog`` from Redis, by every worker, with each heartbeat: the
        subjects due by Redis's clock whose tick is not written yet. Seen (an audit): set only in the
        lease holder's round, the gauge stayed 0 while no worker ran the timer (the alert could never
        fire), and kept its last value on a worker that had lost the lease (an alert that never
        resolved). ``now_ms``: Redis's clock."""
        metrics.TIMER_BACKLOG.set(await self.redis.zcount(self._due_key, "-inf", now_ms))

    async def _kafka_answers(self) -> bool:
        """Whether the cluster answers a metadata request on the producer's connections (every
        ``KAFKA_CHECK_EVERY`` heartbeats). Seen (an audit): the broker down, and no metric moved:
        no batch is fetched, so none is retried, and the lag keeps its last figures."""
        client = getattr(self.producer, "client", None)
        if client is None:
            return True
        try:
            # the metadata of the topics the producer writes, as it asks for them itself every
            # metadata_max_age_s: True once a broker answered
            return bool(await asyncio.wait_for(client.force_metadata_update(), timeout=HEARTBEAT_S))
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, timed out: all "not reached"
            log.debug("kafka metadata not fetched", error=type(exc).__name__)
            return False

    async def _follow_redis_clock(self, reference_ms: int | None = None) -> None:
        """This worker's clock against Redis's (``reference_ms``, read already, or read here), at start
        and with each heartbeat (creditstream/connections.py ``follow_redis_clock``)."""
        await follow_redis_clock(self.redis, self.settings.clock_tolerance_s, reference_ms=reference_ms)

    async def _read_redis_memory(self) -> None:
        """Redis's memory and its ``maxmemory`` into /metrics, with each heartbeat: at ``maxmemory``
        Redis refuses every write (noeviction, as creditstream requires) and the pipeline waits, so
        the alert ``CreditstreamRedisNearlyFull`` tells of it before (deploy/prometheus-rules.yml)."""
        used, maxmemory = await redis_memory(self.redis)
        metrics.REDIS_MEMORY_USED.set(used)
        metrics.REDIS_MAXMEMORY.set(maxmemory)

    async def _write_heartbeat(self, value: bytes) -> None:
        """The heartbeat key (expiring) and this worker's entry in the ``workers`` index, by which
        readers find it without scanning the keyspace (ops/inspect.py ``running_workers``); entries
        not renewed for a day are taken out of the index (a worker that died without stopping)."""
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self._heartbeat_key, value, ex=HEARTBEAT_TTL_S)
        pipe.zadd(self._workers_key, {self._identity: now_ms})
        pipe.zrangebyscore(self._workers_key, "-inf", now_ms - WORKERS_FORGOTTEN_AFTER_MS)
        *_, gone = await pipe.execute()
        if gone:
            await self.redis.zrem(self._workers_key, *gone)

    def health(self) -> dict[str, dict]:
        """Each batch agent's consumption: ``ok`` or ``stalled`` with the reason (AgentRunner.health);
        carried by the heartbeat, read by /health."""
        return {r.agent.name: r.health(self.settings.stall_after_s) for r in self.runners if isinstance(r, AgentRunner)}

    async def _wait_for_redis(self) -> None:
        await self._while_redis_starts(self.redis.ping, retry_on=(Exception,))

    async def _while_redis_starts(self, step, *, retry_on: tuple[type[BaseException], ...],
                                  timeout_s: float = 30.0):
        """``step()``, tried again every 0.5 s while it fails with ``retry_on``, for up to ``timeout_s``:
        a Redis restarting while the worker starts is waited for (its first ping, the placement it
        records), then TimeoutError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                return await step()
            except retry_on as exc:
                if loop.time() > deadline:
                    raise TimeoutError(f"Redis did not answer within {timeout_s:.0f}s: {exc}") from exc
                log.warning("redis not reachable while the worker starts, retrying", error=str(exc)[:200])
                await asyncio.sleep(0.5)

    def _start_agents(self) -> None:
        """A task for each runner, watched (:meth:`_agent_ended`)."""
        self._tasks = [asyncio.create_task(r.run(), name=f"agent:{getattr(r, 'agent', r).name}")
                       for r in self.runners]
        for t in self._tasks:
            t.add_done_callback(self._agent_ended)

    def _agent_ended(self, task: asyncio.Task) -> None:
        """An agent's task ended. Told to stop, that is its stop. Otherwise it is said at once, with
        the agent's name and what it raised, whoever awaits :meth:`wait`: a test or a tool that runs
        the pipeline in process saw only "agent stopped" (streams/runner.py) and no progress after."""
        if self._stop_asked or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # one line, no traceback: the worker's own handler logs the failure (creditstream worker)
            log.error("agent failed: the pipeline stops", agent=_agent_name(task),
                      error=f"{type(exc).__name__}: {str(exc)[:300]}")
        else:
            log.error("agent ended without being told to stop: the pipeline stops",
                      agent=_agent_name(task))

    async def wait(self) -> None:
        """Run until stopped; an agent that dies takes the pipeline down (the supervisor restarts it),
        and so does one whose task ended while nobody told it to stop (a stalled worker otherwise:
        the others run on, that agent's inputs wait)."""
        pending = set(self._tasks)
        while pending:  # told to stop, until every agent has (the worker's stop runs shielded meanwhile)
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if not t.cancelled() and t.exception():
                    raise t.exception()
            if not self._stop_asked:
                ended = sorted(_agent_name(t) for t in done)
                raise AgentEnded(f"agent(s) {', '.join(ended)} ended without being told to stop")

    def stop_soon(self) -> None:
        """Tell every agent to stop, without waiting: each begins its bounded stop (finishing or
        abandoning its batch, committing, leaving its groups) while Faust stops its web server;
        :meth:`stop` then waits for them."""
        if not self._stop_asked:
            held = [r.agent.name for r in self.runners if isinstance(r, AgentRunner) and r.busy_since is not None]
            log.info("stopping: agents finish or abandon their batches, commit and leave their consumer groups",
                     budget_s=STOP_BUDGET_S, batches_in_hand=held)
        self._stop_asked = True
        for r in self.runners:
            r.stop()

    async def stop(self) -> None:
        """Stop every agent, then the producer and Redis, within ``STOP_BUDGET_S`` whatever state the
        services are in (a supervisor kills a worker that outlasts its grace period, and a killed
        worker leaves its consumer groups only when their session timeout expires). Each agent
        bounds its own stop (streams/runner.py: a batch in hand gets ``STOP_GRACE_S``, then is
        abandoned uncommitted); what still runs at the deadline is cancelled. Nothing is lost by a
        cut short step: a batch's offsets are committed only after its effects are durable, and a
        message the producer had not delivered belongs to a batch not committed."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        deadline = t0 + STOP_BUDGET_S
        self.stop_soon()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=max(0.0, deadline - loop.time() - STOP_RESERVE_S))
            for t in late:
                log.warning("stopping: an agent did not stop in time and is cancelled", agent=t.get_name())
                t.cancel()
            if late:
                await asyncio.wait(late, timeout=0.5)
        if self._heap is not None:
            self._heap.cancel()
            thaw()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(self._heartbeat_key, b"stopped", px=1)  # gone (no DEL in the ACL)
                pipe.zrem(self._workers_key, self._identity)
                await asyncio.wait_for(pipe.execute(), min(0.5, max(0.1, deadline - loop.time())))
            except Exception:  # noqa: BLE001 - it expires by itself (HEARTBEAT_TTL_S)
                log.info("stopping: this worker's heartbeat not removed (Redis does not answer): it expires in "
                         f"{HEARTBEAT_TTL_S} s")
        if self.producer is not None:
            try:
                await asyncio.wait_for(self.producer.stop(), max(0.5, deadline - loop.time()))
            except Exception as exc:  # noqa: BLE001 - what it held belongs to batches not committed
                log.warning("stopping: the producer did not close in time (the broker does not answer); the "
                            "messages it held belong to batches not committed, which are processed again",
                            error=type(exc).__name__)
        if self.redis is not None:
            try:
                await asyncio.wait_for(self.redis.aclose(), 1.0)
            except Exception:  # noqa: BLE001 - the process ends: its sockets close with it
                pass
        log.info("pipeline stopped", took_s=round(loop.time() - t0, 2), held=holdings.summary())


async def stop_whole(pipeline: Pipeline) -> None:
    """``pipeline.stop()`` run to its end even if this task is cancelled meanwhile, then the
    cancellation raised. Faust's shutdown cancels the app's tasks while the agents stop: once they
    had, ``run_pipeline`` went on to a stop that nothing shielded, and a cancellation there left the
    worker's heartbeat key behind (no "pipeline stopped" in its log, exit 0): `replay --switch` and
    `positions move` refused for 15 s, "1 worker(s) running" (seen in CI, test_redis_acl_e2e.py)."""
    stopping = asyncio.ensure_future(pipeline.stop())
    try:
        await asyncio.shield(stopping)
    except asyncio.CancelledError:
        await stopping
        raise


def _worker_app_class():
    """A Faust app that starts no Kafka client of its own.

    The agents run their own batch consumers and producer (streams/runner.py); Faust's consumer
    would only join a group of its own (``<consumer_group>-worker``) for its leader topic. With
    several workers that idle group rebalanced every few seconds and logged "Heartbeat session
    expired" at error level, and on Apache Kafka it created topics nothing uses. So Faust keeps
    what the worker needs from it (lifecycle, signals, the web server, sensors) and no Kafka client.
    """
    import faust
    from faust.app.base import BootStrategy

    class _NoKafka(BootStrategy):
        enable_kafka = False

    class _WorkerApp(faust.App):
        BootStrategy = _NoKafka

    return _WorkerApp


def create_faust_app(settings: Settings, agents: tuple[str, ...] = AGENTS, *, web: bool = False):
    """A Faust app whose task runs the pipeline (the ``creditstream worker`` entry point)."""
    _WorkerApp = _worker_app_class()
    Path(settings.run_dir, "faust").mkdir(parents=True, exist_ok=True)
    app = _WorkerApp(
        f"{settings.consumer_group}-worker",
        broker=[f"kafka://{s}" for s in settings.bootstrap_servers],
        web_enabled=web,
        web_port=settings.web_port,
        web_host="127.0.0.1",
        web_bind=settings.web_bind,  # Faust binds web_bind (0.0.0.0 by default), not web_host
        # Faust's /router and /table pages serve its tables, which creditstream has none of: a path
        # naming an unknown one answered 500 with a traceback quoting it at ERROR (a name in it, in
        # clear, seen)
        web_router_enabled=False,
        web_tables_enabled=False,
        store="memory://",
        producer_linger_ms=settings.producer_linger_ms,
        datadir=f"{settings.run_dir}/faust",
    )
    pipeline = Pipeline(settings, agents)
    if web:
        from creditstream.access import server_ssl_context
        from creditstream.api import check_port_free, check_serving, mount

        # refuse now (AccessConfigError: the CLI exits 2) rather than when the web server starts
        check_serving(settings, settings.web_bind)
        check_port_free(settings.web_bind, settings.web_port)
        # Faust's web server is aiohttp: the query API and /metrics join its routes, and its
        # middlewares (JSON errors, bearer tokens) cover Faust's own pages, when it initialises;
        # HTTPS with api_tls_certfile/api_tls_keyfile, as `creditstream api`
        app.conf.web_ssl_context = server_ssl_context(settings)

        def on_webserver_init(faust_web) -> None:
            mount(faust_web.web_app, settings)
            bound_web_shutdown(faust_web)

        app.on_webserver_init = on_webserver_init

    @app.on_before_shutdown.connect
    async def stop_the_agents_first(app, **kwargs) -> None:
        # sent as Faust's shutdown begins, before it stops its web server and cancels the task below
        pipeline.stop_soon()

    @app.task
    async def run_pipeline() -> None:
        try:
            await pipeline.start()
            await pipeline.wait()
        except asyncio.CancelledError:  # the worker is stopping (SIGTERM / Ctrl-C)
            await stop_whole(pipeline)
            raise
        except Exception as exc:
            from creditstream.probes import kafka_authorization

            refused = kafka_authorization(exc, settings)
            if isinstance(exc, (placement.PlacementError, PositionAhead)):  # expected, said whole in one line
                refused = str(exc)
            if refused:  # an ACL missing: said in one line (the command line exits 2 with it), no traceback
                pipeline.failure = said_in_one_line(exc)  # and none in Faust's crash line either
                log.error("pipeline failed: stopping the worker", reason=refused)
            else:
                log.exception("pipeline failed; stopping the worker so its supervisor restarts it")
            await stop_whole(pipeline)
            await app.crash(exc)  # the worker exits non-zero
            return
        await stop_whole(pipeline)

    app.pipeline = pipeline
    return app


WEB_SHUTDOWN_S = 1.0
"""How long a stopping worker's web server waits for the requests in flight (aiohttp's default: 60 s;
``/changes`` with the broker frozen waits up to 15 s for it). A request cut short fails, and its
client asks another worker."""


def bound_web_shutdown(faust_web) -> bool:
    """Faust's web server (its aiohttp ``AppRunner``) waits at most ``WEB_SHUTDOWN_S`` for the
    requests in flight when the worker stops; Faust creates the runner with aiohttp's default, 60 s.
    False (and a warning) where the runner does not have the attribute: a Faust or aiohttp that
    changed (tests/unit/test_worker_stop.py keeps this in view)."""
    runner = getattr(faust_web, "_runner", None)
    if runner is None or not hasattr(runner, "_shutdown_timeout"):
        log.warning("the web server's shutdown is not bounded (Faust's web runner changed): a request in flight "
                    "may delay a worker's stop")
        return False
    runner._shutdown_timeout = WEB_SHUTDOWN_S  # noqa: SLF001 - aiohttp's BaseRunner(shutdown_timeout=...)
    return True


def log_health_changes(before: dict[str, dict], now: dict[str, dict]) -> dict[str, dict]:
    """Log each agent whose consumption turned ``stalled`` since the last heartbeat (a warning, with
    the reason ``AgentRunner.health`` gives) or ``ok`` again (info); returns ``now``. /health and the
    heartbeat say it too, but an operator reading the worker's log alone saw nothing while an agent
    held one batch for minutes or left events waiting."""
    for agent, h in now.items():
        was = (before.get(agent) or {}).get("state", "ok")
        if h.get("state") == was:
            continue
        if h.get("state") == "stalled":
            log.warning("agent stalled", agent=agent, reason=h.get("reason"))
        else:
            log.info("agent consuming again", agent=agent)
    return now
