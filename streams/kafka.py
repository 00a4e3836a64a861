"""Kafka clients configured from the settings, topic creation, and reading a topic to its end.

``Settings.broker_kind`` decides how (one switch per difference, each with a test):

| | ``kafka`` (Apache Kafka, production) | ``tansu`` (the embedded default) |
|---|---|---|
| producer | idempotent, ``acks=all`` | ``acks=all``, not idempotent (defect 1) |
| log ends | ListOffsets (``end_offsets``) | the fetch response's high watermark (defect 3) |
| start at a time | ``offsets_for_times`` | read from the start, filter by timestamp (defect 6) |
| topics | compaction, ``min.insync.replicas`` | accepted, not applied (defect 4) |
| a commit's metadata | kept (:func:`committed`) | dropped: answered empty (defect 11) |

Both: consumers reset to ``earliest`` (a new consumer group must apply the subject-event log from
its start: that is the design, not a workaround); no broker transactions (correctness comes from
fenced, idempotent state transitions and deterministic ids).

Where the broker is Tansu (``Settings.broker_kind == "tansu"``) this module works around the
defects measured in docs/broker.md:

* no idempotent or transactional producer (InitProducerId v0 fails): correctness comes from
  idempotent state transitions and deterministic ids, never from broker transactions;
* ``ListOffsets(latest)`` under-reports the log end, so the end of a topic is taken from the fetch
  response's high watermark (:func:`read_to_end`), never from ``end_offsets`` or ``seek_to_end``,
  and consumers reset to ``earliest`` only;
* JoinGroup is answered after about half the session timeout, so the embedded stack runs with a
  short session timeout, and a consumer leaves its group explicitly when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import structlog
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
    errors,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    IllegalOperation,
    IncompatibleBrokerVersion,
    InvalidProducerEpoch,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

from creditstream.settings import Settings
from streams import topics as topic_specs
from streams.topics import Topics

# What leaves an idempotent aiokafka producer unusable: its sequence numbers no longer match the
# broker's (a partition leader died with batches in flight), or its producer id is gone or fenced.
# aiokafka does not recover (the Java client bumps its epoch): only a new producer does.
PRODUCER_FATAL = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)

log = structlog.get_logger("creditstream.kafka")


def _close_tls_at_once() -> None:
    """aiokafka 0.14 (pinned) closes a connection with ``transport.close()`` and a client's ``close()``
    waits for each one's ``connection_lost``. On uvloop (creditstream/eventloop.py, the default) a TLS
    transport calls it only once the broker answers the TLS close_notify, which Apache Kafka often
    does not while a fetch waits at the broker, or after uvloop's 30-s ``ssl_shutdown_timeout``: over
    SSL / SASL_SSL one consumer stop in two or three took 30 s more (`report`, `replay`, `dlq`, a
    worker stopping; tests/integration/test_sasl_ssl_close.py). A client closes a connection with
    nothing in flight that it still waits for, so a TLS connection is aborted after the close: no
    close_notify exchange, ``connection_lost`` at once."""
    from aiokafka.conn import AIOKafkaConnection

    close = AIOKafkaConnection.close
    if getattr(close, "_creditstream_tls_at_once", False):
        return

    def close_tls_at_once(self, reason=None, exc=None):
        writer = self._writer  # noqa: SLF001 - what close() drops
        tls = writer is not None and not writer.transport.is_closing() and writer.get_extra_info("sslcontext")
        closed = close(self, reason=reason, exc=exc)
        if tls:
            writer.transport.abort()
        return closed

    close_tls_at_once._creditstream_tls_at_once = True  # type: ignore[attr-defined]
    AIOKafkaConnection.close = close_tls_at_once  # type: ignore[method-assign]


_close_tls_at_once()


class Producer:
    """An aiokafka producer (every attribute is the current one's) that knows the largest message
    each topic takes (``limits``, checked by the sinks) and can be replaced by a new one when a
    broker failure leaves it unusable (:meth:`renew`): the batch is then retried with a new
    producer id, its messages carry deterministic ids, so a duplicate is harmless."""

    def __init__(self, *, limits: topic_specs.MessageLimits, **kw):
        self.limits = limits
        self.placement: dict[str, int] = {}
        """Topic -> the partition count its keyed messages are placed over (streams/placement.py),
        set by the worker at its start; a topic not in it is placed by the producer's metadata."""
        self.generation = 0
        self._kw = kw
        self._inner = AIOKafkaProducer(**kw)
        self._renewing = asyncio.Lock()
        self._started = False

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    async def start(self) -> None:
        await self._inner.start()
        self._started = True

    async def stop(self) -> None:
        self._started = False
        await self._inner.stop()

    @property
    def broken(self) -> bool:
        """Its sender task ended (a fatal error): nothing it is given will ever be delivered."""
        task = self._inner._sender.sender_task if self._started else None  # noqa: SLF001
        return task is not None and task.done()

    async def renew(self, generation: int, cause: BaseException) -> None:
        """Replace the producer of ``generation`` with a new one (once, whoever asks first)."""
        async with self._renewing:
            if generation != self.generation or not self._started:
                return
            old, self._inner = self._inner, AIOKafkaProducer(**self._kw)
            self.generation += 1
            log.warning("producer replaced after a fatal broker error", cause=type(cause).__name__,
                        generation=self.generation)
            try:
                await asyncio.wait_for(old.stop(), 10)
            except Exception as exc:  # noqa: BLE001 - the old one is broken: it is dropped anyway
                log.info("the broken producer did not stop cleanly", error=type(exc).__name__)
            await self._inner.start()


def producer(settings: Settings, **overrides) -> Producer:
    kw = settings.kafka_client_kwargs()
    kw.update(
        acks="all",
        # Tansu rejects InitProducerId v0 (defect 1); Apache Kafka gets the idempotent producer
        enable_idempotence=not settings.is_tansu,
        linger_ms=settings.producer_linger_ms,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=30_000,
    )
    kw.update(overrides)
    return Producer(limits=topic_specs.message_limits(settings), **kw)


def isolation_level(settings: Settings, *, committed_only: bool) -> str:
    """How a consumer reads records written in transactions.

    ``committed_only``: the reader must never see a record whose transaction did not commit. The
    agents read so: their inputs are written by department systems, and a department producer with a
    ``transactional.id`` (Kafka Connect's exactly-once sources, Flink's and Kafka Streams' sinks, any
    client told to) aborts transactions on failures and restarts. Read ``read_uncommitted``, an aborted
    penalty was applied to its subject, and a record inside an open transaction was applied before its
    producer decided (tests/integration/test_department_transactions.py). Read ``read_committed``,
    Apache Kafka never delivers an aborted record, and holds a partition's later records until an open
    transaction ends (at most the producer's ``transaction.timeout.ms``; docs/operations.md).

    Tansu always reads ``read_uncommitted``: it delivers aborted records to ``read_committed`` readers
    too (docs/broker.md, defect 5), so asking would change nothing there. creditstream's own producers
    use no transactions: its own topics read the same either way."""
    if settings.is_tansu or not committed_only:
        return "read_uncommitted"
    return "read_committed"  # apache-kafka only: broker_kind switch


def consumer(settings: Settings, *topics: str, group_id: str | None, listener: ConsumerRebalanceListener | None = None,
             committed_only: bool = False, **overrides) -> AIOKafkaConsumer:
    """An aiokafka consumer as creditstream configures them (``committed_only``: :func:`isolation_level`)."""
    session = settings.session_timeout_ms
    kw = settings.kafka_client_kwargs()
    kw.update(
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # never 'latest': ListOffsets(latest) is wrong on Tansu
        session_timeout_ms=session,
        heartbeat_interval_ms=max(100, session // 4),
        max_poll_interval_ms=settings.max_poll_interval_ms,
        max_poll_records=settings.max_batch,
        fetch_max_wait_ms=settings.fetch_wait(),
        fetch_min_bytes=settings.fetch_min(),
        max_partition_fetch_bytes=4 * 1024 * 1024,
        isolation_level=isolation_level(settings, committed_only=committed_only),
    )
    kw.update(overrides)
    if listener is None:
        return AIOKafkaConsumer(*topics, **kw)
    c = AIOKafkaConsumer(**kw)
    c.subscribe(list(topics), listener=listener)  # told of each rebalance (streams/runner.py)
    return c


class Committed(NamedTuple):
    """A group's committed offset of a partition (None: none) and the metadata committed with it
    (``""``: none, or a broker that drops it: Tansu, docs/broker.md 11)."""
    offset: int | None
    metadata: str = ""


async def committed(c: AIOKafkaConsumer, tp: TopicPartition) -> Committed:
    """``c.committed(tp)`` with the commit's metadata, which aiokafka's ``committed`` leaves out (one
    OffsetFetch, as it makes)."""
    coordinator = c._coordinator  # noqa: SLF001 - aiokafka 0.14 (pinned): what its committed() asks
    if coordinator is None:
        raise IllegalOperation("a group's commits are asked with a consumer of that group (group_id)")
    got = (await coordinator.fetch_committed_offsets([tp])).get(tp)
    if got is None:
        return Committed(None)
    return Committed(got.offset if got.offset >= 0 else None, got.metadata or "")


async def committed_offsets(c: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
    """The group's committed offsets of ``tps`` (None: none), in one OffsetFetch."""
    coordinator = c._coordinator  # noqa: SLF001 - aiokafka 0.14 (pinned): what its committed() asks
    if coordinator is None:
        raise IllegalOperation("a group's commits are asked with a consumer of that group (group_id)")
    got = await coordinator.fetch_committed_offsets(tps)
    return {tp: (got[tp].offset if tp in got and got[tp].offset >= 0 else None) for tp in tps}


async def stop_consumer(c: AIOKafkaConsumer) -> None:
    """``c.stop()``, carried to its end when aiokafka 0.14 raises ``CancelledError`` out of it
    (aio-libs/aiokafka#647). Two ways it does, both seen here:

    * a fetch request that has just failed (a broker slow to answer, a connection lost) sleeps its
      retry back-off in a task of the fetcher; ``stop()`` cancels that task and awaits it unguarded
      (the reliability suite on a 3-node Apache Kafka: a consumer reading a topic to its end failed as
      it closed);
    * ``stop()`` right after ``start()`` cancels a background routine that has not run yet.

    Either way the rest of ``stop()`` (the fetcher's other tasks, the client's connections) never
    runs: it is done here. A cancellation of the caller's own task still raises."""
    await asyncio.sleep(0)  # the background routines started by start() get to run once
    try:
        await c.stop()
        return
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the caller is being cancelled: not aiokafka's leftover
    log.info("consumer stop: aiokafka raised CancelledError out of stop() (aio-libs/aiokafka#647); "
             "closing the rest")
    fetcher = getattr(c, "_fetcher", None)  # noqa: SLF001 - what stop() left behind
    leftovers = [getattr(fetcher, "_fetch_task", None), *getattr(fetcher, "_pending_tasks", ())]
    for t in leftovers:
        if t is None:
            continue
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    await c._client.close()  # noqa: SLF001


def admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**settings.kafka_client_kwargs())


async def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> list[str]:
    """Create the topics this app uses (idempotent). Returns the names it created."""
    t = Topics(settings)
    wanted = list(names) if names is not None else t.all()
    client = admin(settings)
    await client.start()
    try:
        existing = set(await client.list_topics())
        new = []
        for name in wanted:
            if name in existing:
                continue
            spec = t.spec_of(name)
            config = topic_specs.topic_config(settings, spec) if spec is not None else {}
            new.append(NewTopic(name, settings.partitions, settings.replication_factor, topic_configs=config))
        created: list[str] = []
        if new:
            try:
                answer = await client.create_topics(new)
            except TopicAlreadyExistsError:  # another worker created them a moment before
                answer = None
            # the broker answers each topic's error in the response (aiokafka raises none): a topic
            # refused (e.g. TopicAuthorizationFailed: no Create ACL) was once said to be "created"
            for name, code, *rest in (answer.topic_errors if answer is not None else ()):
                if code and code != TopicAlreadyExistsError.errno:
                    message = rest[0] if rest and isinstance(rest[0], str) else ""
                    raise errors.for_code(code)(name, *([message] if message else []))
                if not code:
                    created.append(name)
        # every one usable before the callers count their partitions: those created here with all of
        # theirs, the others (another worker's, created an instant before) with at least one
        fresh = {n.name for n in new}
        await _until_described(client, {name: settings.partitions if name in fresh else 1 for name in wanted})
        return created
    finally:
        await client.close()


TOPICS_READY_S = 30.0
"""How long :func:`ensure_topics` waits for the topics it uses to be described with a leader for each
partition."""


async def _until_described(client, least: Mapping[str, int], timeout_s: float = TOPICS_READY_S) -> None:
    """Wait until every topic of ``least`` is described with at least that many partitions, each with
    a leader: Apache Kafka answers CreateTopics before its brokers list the topic. Seen (an audit): a
    worker's first start on fresh topics counted 0 partitions for them right after, so it recorded no
    placement (streams/placement.py) and ran its life with the producer choosing the partition, and
    its first produce met NotLeaderForPartition. After ``timeout_s``, said and left to the callers'
    own retries. (Only topics that exist: a Metadata request names them, and a broker with
    ``auto.create.topics.enable`` creates one it does not have.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    waiting = list(least)
    while True:
        try:
            described = await client.describe_topics(waiting)
        except Exception as exc:  # noqa: BLE001 - a broker between two states: asked again
            described, error = [], exc
        else:
            error = None
        ready = {t.get("topic") for t in described
                 if not t.get("error_code") and len(t.get("partitions") or ()) >= least.get(t.get("topic"), 1)
                 and all(p.get("leader", -1) >= 0 for p in t.get("partitions") or ())}  # (a replica down: no matter)
        waiting = [n for n in waiting if n not in ready]
        if not waiting:
            return
        if loop.time() > deadline:
            log.warning("topics created but not yet described with a leader for every partition",
                        topics=waiting, waited_s=timeout_s, error=str(error) if error else None)
            return
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class ConfigDrift:
    """An existing topic whose configuration differs from what creditstream would create."""

    topic: str
    name: str
    current: str | None
    wanted: str


async def topic_config_drift(settings: Settings) -> list[ConfigDrift] | None:
    """What differs between the existing topics' configuration and :func:`topics.topic_config`
    (None when the broker does not describe topic configurations)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    t = Topics(settings)
    client = admin(settings)
    await client.start()
    try:
        existing = set(await client.list_topics())
        names = [n for n in t.all() if n in existing]
        if not names:
            return []
        try:
            answers = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        except Exception:  # noqa: BLE001 - a broker without DescribeConfigs (Tansu): unknown
            return None
        current: dict[str, dict[str, str]] = {}
        for answer in answers:
            for resource in answer.resources:
                if resource[0]:  # refused (e.g. no DescribeConfigs ACL): unknown, not "every key differs"
                    raise errors.for_code(resource[0])(resource[3], *([resource[1]] if resource[1] else []))
                current[resource[3]] = {c[0]: c[1] for c in resource[4]}
        drift = []
        for name in names:
            spec = t.spec_of(name)
            if spec is None or name not in current:
                continue
            for key, wanted in topic_specs.topic_config(settings, spec).items():
                have = current[name].get(key)
                if have != wanted:
                    drift.append(ConfigDrift(name, key, have, wanted))
        return drift
    finally:
        await client.close()


class ConfigsUnchangeable(Exception):
    """The broker has no AlterConfigs (Tansu): :func:`apply_topic_config` cannot set anything."""


async def apply_topic_config(settings: Settings, topics: Iterable[str]) -> None:
    """Set creditstream's configuration on existing ``topics`` (AlterConfigs replaces a topic's
    whole dynamic configuration, so every key creditstream manages is sent together)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    t = Topics(settings)
    resources = []
    for name in topics:
        spec = t.spec_of(name)
        if spec is not None:
            resources.append(ConfigResource(ConfigResourceType.TOPIC, name,
                                            configs=topic_specs.topic_config(settings, spec)))
    if not resources:
        return
    client = admin(settings)
    await client.start()
    try:
        try:
            answers = await client.alter_configs(resources)
        except IncompatibleBrokerVersion as exc:  # Tansu: no AlterConfigs
            raise ConfigsUnchangeable(f"the broker at {settings.broker_url} does not change a topic's configuration "
                                      f"(no AlterConfigs: {exc})") from exc
        for answer in answers if isinstance(answers, list) else [answers]:
            for resource in answer.resources:
                code, message = resource[0], resource[1]
                if code:  # e.g. TopicAuthorizationFailed: no AlterConfigs ACL (the command line says so)
                    raise errors.for_code(code)(resource[3], *([message] if message else []))
    finally:
        await client.close()


@dataclass
class TopicEnd:
    partition: int
    end: int


STALL_TIMEOUT_S = 120.0
"""How long :func:`read_to_end` waits without a record for partitions short of their known end
before it raises :class:`ReadIncomplete`: past aiokafka's 40-s request timeout and a retry."""
STALL_WARN_EVERY_S = 10.0


class ReadIncomplete(TimeoutError):
    """A topic could not be read to its end: the broker stopped answering with partitions short of
    their end. A TimeoutError: the CLI says "a service did not answer" and exits 3, as for any outage."""

    def __init__(self, topic: str, short: dict[int, tuple[int, int | None]], waited_s: float):
        self.topic = topic
        self.waited_s = waited_s
        self.short = short  # partition -> (position reached, log end; None: the broker never answered for it)
        where = ", ".join(f"[{p}] at {pos} of {'an end not known' if end is None else end}"
                          for p, (pos, end) in sorted(short.items()))
        super().__init__(f"{topic}: no record for {waited_s:.0f} s while partitions {where} were short of their "
                         f"end: the Kafka broker did not answer its fetches. Nothing was cut short silently; run it "
                         f"again once the broker answers")

    def __reduce__(self):
        # raised in a replay's job process and re-raised in the replay's own (pickled between them)
        return (type(self), (self.topic, self.short, self.waited_s))


async def read_to_end(
    settings: Settings,
    topic: str,
    *,
    start: dict[int, int] | None = None,
    stall_timeout_s: float = STALL_TIMEOUT_S,
    max_records: int = 5000,
    partitions: Iterable[int] | None = None,
    fetch_bytes: int = 4 * 1024 * 1024,
    fetch_max_bytes: int | None = None,
    stop: Mapping[int, int] | None = None,
) -> AsyncIterator[list[ConsumerRecord]]:
    """Yield batches of every record in ``topic`` from ``start`` (default: the beginning) to its end
    (``partitions``: only these of its partitions; ``stop``: only the partitions in it, each up to
    that offset, exclusive, or its end if sooner: a span of the log, streams/placement.py ``spans``).

    A partition's end: on Apache Kafka its log end by ListOffsets, taken as the read starts; on
    Tansu the high watermark of the fetch responses (defect 3), which follows the log as it grows
    (an empty partition is answered with 0). A partition is done once its position reaches its end,
    and only then: a partition the broker has not answered for yet is waited for.

    A read is never ended short of the end: cut short, it would, say, rebuild a partial state in
    ``creditstream replay`` and report it complete. Before, ``idle_timeout_s`` without a record
    ended it: a broker slow to answer (a fetch timing out on a 3-node Apache Kafka under load), or
    Tansu leaving a partition out of its first fetch responses, ended the read with records left.
    Now the read waits, logging the partitions it waits on every :data:`STALL_WARN_EVERY_S`, and
    raises :class:`ReadIncomplete` after ``stall_timeout_s`` without a record.

    ``fetch_bytes``: the most one fetch brings per partition; ``fetch_max_bytes``: in all (default:
    the client's, 50 MiB; Tansu answers up to it whatever ``fetch_bytes`` says).
    """
    limits = {"fetch_max_bytes": fetch_max_bytes} if fetch_max_bytes else {}
    c = consumer(settings, group_id=None, max_partition_fetch_bytes=fetch_bytes, **limits)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic)
        if not parts:
            if not await _exists(c, topic):
                return  # read as empty, never created (:func:`existing_topics`)
            await c._client._wait_on_metadata(topic)  # noqa: SLF001 - metadata of an unsubscribed topic
            parts = c.partitions_for_topic(topic) or set()
        only = set(partitions) if partitions is not None else None
        if stop is not None:  # a span: a partition not in it did not exist then
            only = set(stop) if only is None else only & set(stop)
        tps = [TopicPartition(topic, p) for p in sorted(parts) if only is None or p in only]
        if not tps:
            return
        c.assign(tps)
        for tp in tps:
            if start and tp.partition in start:
                c.seek(tp, start[tp.partition])
            else:
                await c.seek_to_beginning(tp)
        pending = set(tps)
        # the end to stop at: ListOffsets on Apache Kafka; Tansu under-reports it (defect 3), so there
        # the fetch responses' high watermarks decide (below)
        ends = None if settings.is_tansu else await log_end_offsets(c, tps)
        stop = stop or {}

        def end_of(tp: TopicPartition) -> int | None:
            end = ends[tp] if ends is not None else c.highwater(tp)
            if tp.partition in stop:
                return stop[tp.partition] if end is None else min(end, stop[tp.partition])
            return end

        for tp in list(pending):
            end = end_of(tp)
            if (ends is not None or tp.partition in stop) and end is not None and await c.position(tp) >= end:
                pending.discard(tp)
        last_data = warned = time.monotonic()
        while pending:
            batches = await c.getmany(*pending, timeout_ms=200, max_records=max_records)
            got = False
            for tp, records in batches.items():
                if records and tp.partition in stop and records[-1].offset >= stop[tp.partition]:
                    records = [m for m in records if m.offset < stop[tp.partition]]  # the span's end
                if records:
                    got = True
                    yield records
            now = time.monotonic()
            if got:
                last_data = warned = now
            short: dict[int, tuple[int, int | None]] = {}  # partition -> (position, end; None: not answered yet)
            for tp in list(pending):
                end = end_of(tp)
                pos = await c.position(tp)
                if end is not None and pos >= end:
                    pending.discard(tp)
                else:
                    short[tp.partition] = (pos, end)
            if not pending or got:
                continue
            idle = now - last_data
            if idle > stall_timeout_s:
                raise ReadIncomplete(topic, short, idle)
            if now - warned >= STALL_WARN_EVERY_S:
                warned = now
                log.warning("reading a topic to its end: no record lately, waiting on partitions short of "
                            "their end", topic=topic, idle_s=round(idle),
                            short={p: f"{pos}/{'?' if end is None else end}"
                                   for p, (pos, end) in sorted(short.items())},
                            gives_up_after_s=stall_timeout_s)
    finally:
        await stop_consumer(c)


def record_mark(record) -> str:
    """What tells one record from another at the same offset of a topic created again: its timestamp
    and a short digest of its key and value (``agents/input_positions.py`` records it with a position)."""
    digest = hashlib.blake2b(record.key or b"", digest_size=6)
    digest.update(b"\0")
    digest.update(record.value or b"")
    return f"{record.timestamp}.{digest.hexdigest()}"


async def record_marks(settings: Settings, places: dict[TopicPartition, int]) -> dict[TopicPartition, str | None]:
    """:func:`record_mark` of the record at each (partition, offset); None where no record is there
    (deleted by retention, compacted away, a transaction marker, past the end, no such topic)."""
    out: dict[TopicPartition, str | None] = {tp: None for tp in places}
    by_topic: dict[str, list[tuple[int, int]]] = {}
    for tp, offset in places.items():
        by_topic.setdefault(tp.topic, []).append((tp.partition, offset))
    for topic, wanted in by_topic.items():
        for (partition, _), msg in (await records_at(settings, topic, wanted)).items():
            out[TopicPartition(topic, partition)] = record_mark(msg)
    return out


async def records_at(settings: Settings, topic: str, places: Iterable[tuple[int, int]], *,
                     stall_timeout_s: float = STALL_TIMEOUT_S, fetch_bytes: int = 4 * 1024 * 1024
                     ) -> dict[tuple[int, int], ConsumerRecord]:
    """The records of ``topic`` at these (partition, offset) places; a place that holds none is left
    out: past its partition's end, before its start (retention deleted it: the consumer, reset to
    ``earliest``, begins past it), compacted away, or a partition or topic that does not exist.
    Reads only the partitions named, from the lowest offset wanted in each, through
    :func:`read_to_end`, until every place is passed: a broker that stops answering
    before that raises :class:`ReadIncomplete` after ``stall_timeout_s``, so a place
    not read is never reported as holding nothing."""
    parts = set(await partitions_of(settings, topic))
    wanted: dict[int, set[int]] = {}
    for p, o in places:
        if p in parts:
            wanted.setdefault(p, set()).add(o)
    found: dict[tuple[int, int], ConsumerRecord] = {}
    if not wanted:
        return found
    last = {p: max(offsets) for p, offsets in wanted.items()}  # partitions not read past their last place yet
    reader = read_to_end(settings, topic, start={p: min(offsets) for p, offsets in wanted.items()},
                         partitions=wanted, stall_timeout_s=stall_timeout_s,
                         fetch_bytes=fetch_bytes, fetch_max_bytes=fetch_bytes)
    async with contextlib.aclosing(reader):
        async for batch in reader:
            for msg in batch:
                if msg.offset in wanted[msg.partition]:
                    found[(msg.partition, msg.offset)] = msg
                if msg.offset >= last.get(msg.partition, msg.offset + 1):
                    del last[msg.partition]
            if not last:
                break
    return found


async def log_end_offsets(c: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Log ends by ListOffsets: right on Apache Kafka only (never called for Tansu, defect 3)."""
    return await c.end_offsets(tps)  # apache-kafka only: broker_kind switch


async def log_starts(settings: Settings, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Each partition's log start (ListOffsets, earliest): the records before it were deleted (the
    topic's retention, or DeleteRecords). Tansu deletes nothing and answers 0."""
    if not tps:
        return {}
    c = consumer(settings, group_id=None)
    await c.start()
    try:
        return dict(await c.beginning_offsets(tps))
    finally:
        await stop_consumer(c)


async def _exists(c: AIOKafkaConsumer, topic: str) -> bool:
    """Whether the cluster has ``topic``, asked without naming it (:func:`existing_topics`)."""
    return topic in (await c._client.fetch_all_metadata()).topics()  # noqa: SLF001


async def add_partitions(settings: Settings, counts: dict[str, int]) -> None:
    """Raise each topic's partition count to ``counts[topic]`` (CreatePartitions; ops/partitions.py
    decides when that is safe). Apache Kafka only: Tansu does not offer it (docs/broker.md, 7)."""
    from aiokafka.admin import NewPartitions
    from aiokafka.errors import for_code

    if settings.is_tansu:
        raise ValueError("the embedded development broker (Tansu) cannot add partitions (docs/broker.md, 7)")
    client = admin(settings)
    await client.start()
    try:
        new = {t: NewPartitions(total_count=n) for t, n in counts.items()}
        response = await client.create_partitions(new)  # apache-kafka only: broker_kind switch
    finally:
        await client.close()
    errors = [(topic, code, message) for topic, code, message in getattr(response, "topic_errors", ()) if code]
    if errors:  # aiokafka raises nothing for a topic's error in the answer
        topic, code, message = errors[0]
        raise for_code(code)(f"{topic}: {message or for_code(code).__name__}")


async def existing_topics(settings: Settings) -> set[str]:
    """The topics the cluster has, from a metadata request for all of them: asking for a topic by
    name (``describe_topics``, a consumer's ``_wait_on_metadata``) lets a broker with
    ``auto.create.topics.enable`` (Apache Kafka's default; Tansu always) create it with its defaults."""
    client = admin(settings)
    await client.start()
    try:
        return set(await client.list_topics())
    finally:
        await client.close()


async def partitions_of(settings: Settings, topic: str) -> list[int]:
    """The partitions of ``topic``, from the cluster's metadata (none if it does not exist)."""
    return (await _described_partitions(settings, [topic]))[topic]


async def partition_counts(settings: Settings, topics: Iterable[str]) -> dict[str, int]:
    """Each of ``topics``' partition count (0: it does not exist), from one admin client: one
    ListTopics and one DescribeTopics for them all."""
    return {t: len(ps) for t, ps in (await _described_partitions(settings, topics)).items()}


async def _described_partitions(settings: Settings, topics: Iterable[str]) -> dict[str, list[int]]:
    wanted = list(dict.fromkeys(topics))
    found: dict[str, list[int]] = {t: [] for t in wanted}
    client = admin(settings)
    await client.start()
    try:
        existing = set(await client.list_topics())
        # a topic asked for by name that does not exist would be created (:func:`existing_topics`)
        names = [t for t in wanted if t in existing]
        described = await client.describe_topics(names) if names else []
    finally:
        await client.close()
    for t in described:
        if t.get("topic") in found and not t.get("error_code"):
            found[t["topic"]] = sorted(p["partition"] for p in t.get("partitions") or ())
    return found


async def log_ends(settings: Settings, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """Each partition's log end: ListOffsets on Apache Kafka; on Tansu the high watermark of fetch
    responses (ListOffsets under-reports there, defect 3)."""
    c = consumer(settings, group_id=None, max_partition_fetch_bytes=1024)
    await c.start()
    try:
        if not await _exists(c, topic):
            return {}  # never created (:func:`existing_topics`)
        await c._client._wait_on_metadata(topic)  # noqa: SLF001 - metadata of an unsubscribed topic
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        if not tps:
            return {}
        if not settings.is_tansu:
            return {tp.partition: end for tp, end in (await log_end_offsets(c, tps)).items()}
        c.assign(tps)
        for tp in tps:
            await c.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout_s
        ends: dict[int, int] = {}
        while len(ends) < len(tps) and time.monotonic() < deadline:
            pending = [tp for tp in tps if tp.partition not in ends]
            await c.getmany(*pending, timeout_ms=100, max_records=1)
            for tp in pending:
                hw = c.highwater(tp)
                if hw is not None:
                    ends[tp.partition] = hw
                else:
                    # an empty partition answers with no records; its position stays at the start
                    pos = await c.position(tp)
                    if pos == 0 and time.monotonic() > deadline - timeout_s + 1.0:
                        ends[tp.partition] = 0
        return ends
    finally:
        await stop_consumer(c)


async def offsets_at(settings: Settings, topic: str, timestamp_ms: int) -> dict[int, int] | None:
    """The first offset at or after ``timestamp_ms`` per partition (the log end where none is):
    Apache Kafka's ListOffsets by time. None on Tansu, whose answer uses append time and rewinds to
    0 for a late time (defect 6): the caller reads from the start and filters by timestamp."""
    if settings.is_tansu:
        return None
    c = consumer(settings, group_id=None)
    await c.start()
    try:
        if not await _exists(c, topic):
            return {}  # never created (:func:`existing_topics`)
        await c._client._wait_on_metadata(topic)  # noqa: SLF001
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        found = await c.offsets_for_times({tp: timestamp_ms for tp in tps})  # apache-kafka only: broker_kind switch
        ends = await log_end_offsets(c, tps)
        return {tp.partition: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in tps}
    finally:
        await stop_consumer(c)


async def wait_for_broker(settings: Settings, timeout_s: float = 30.0) -> None:
    """Wait until the broker answers a metadata request, or raise TimeoutError with the address."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        client = admin(settings)
        try:
            await client.start()
            await client.list_topics()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means: not yet
            last = exc
            await asyncio.sleep(0.5)
        finally:
            try:
                await client.close()
            except Exception:  # noqa: BLE001
                pass
    raise TimeoutError(f"Kafka broker at {settings.broker_url} did not answer within {timeout_s:.0f}s: {last}")


__all__ = ["producer", "consumer", "admin", "Committed", "committed", "ensure_topics", "read_to_end", "log_ends",
           "offsets_at", "wait_for_broker", "topic_specs"]
