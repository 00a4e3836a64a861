"""The batch engine: consume a batch, let an agent process it, commit only after its effects are durable.

Every agent is a :class:`BatchAgent`: it gets a batch of consumer records (at most
``Settings.max_batch``, in order within each partition) and a checkpoint (sinks/checkpoint.py), does
its work with one Redis round trip and adds the batch's messages, rejects and after-flush steps to
the checkpoint. The runner completes the checkpoint (one produce flush, every acknowledgement, the
after-flush steps, the counts), then commits the offsets after the batch. So the unit of work is
the batch, nothing is awaited per event, and a worker killed at any moment re-processes at most its
last batch, which the agents handle idempotently.

Failures:
* bad input is rejected by the agent into the checkpoint (a dead letter) and never raises;
* an infrastructure failure (Redis or the broker unreachable) makes ``process`` raise: the runner
  retries the same batch with exponential backoff (0.1 s doubling to 5 s) for as long as it takes,
  logging each attempt; heartbeats continue meanwhile, so the group does not rebalance;
* losing partitions in a rebalance makes the commit fail: the new owner re-processes the batch.

Stopping (``stop()``: SIGTERM, a deploy, a scale-down) is bounded, so that the worker exits within its
supervisor's grace period and leaves its consumer group (its partitions move at once) rather than
being killed: the fetch in flight is dropped; a batch being processed gets ``STOP_GRACE_S`` to
complete (and is then committed as usual), a batch being retried is abandoned at once, and one that
does not complete in time is cancelled and abandoned, its offsets not committed (the next owner of
its partitions processes it again, idempotently, as after a crash). The last commit gets
``STOP_COMMIT_S``, leaving the group ``STOP_CONSUMER_S``.

Commits are pipelined: batch N's commit is in flight while batch N+1 is fetched and processed,
and is awaited before batch N+1's commit is issued, so commits stay in order.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple, Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CommitFailedError,
    GroupAuthorizationFailedError,
    IllegalStateError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from aiokafka.structs import OffsetAndMetadata
from redis.exceptions import RedisError

from creditstream import metrics
from creditstream.connections import error_cause, error_text
from creditstream.logs import Repeats
from creditstream.settings import Settings
from sinks.checkpoint import Checkpoint
from streams import kafka
from streams.codec import RegistryError
from streams.deleted_inputs import CHECK_EVERY_S, Gaps

log = structlog.get_logger("creditstream.runner")


def _debug_enabled() -> bool:
    """One line per batch at debug level (``log_level = "DEBUG"``): its size, the time to process
    it, the time to produce what it caused, the age of its oldest input."""
    return logging.getLogger("creditstream.runner").isEnabledFor(logging.DEBUG)

AUTHORIZATION = (TopicAuthorizationFailedError, GroupAuthorizationFailedError, ClusterAuthorizationFailedError)
"""The broker refused for want of an ACL: an operator grants it, waiting does not."""
# Failures of a service, not of the input: the batch is retried until the service is back.
TRANSIENT = (RedisError, KafkaError, RegistryError, ConnectionError, OSError, asyncio.TimeoutError)
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 5.0
POSITION_CHECK_S = 2.0
POSITION_CHECK_TIMEOUT_S = 10.0
T = TypeVar("T")
STOP_GRACE_S = 2.0
"""Told to stop, the batch being processed gets this long to complete, then is abandoned."""
STOP_COMMIT_S = 1.0
"""Told to stop, the last batch's commit gets this long to land (else its next owner re-processes it)."""
STOP_CONSUMER_S = 1.0
"""Told to stop, the consumer gets this long to leave its group and close."""


class _Abandoned(Exception):
    """Told to stop while a batch was in hand: it is dropped, its offsets not committed."""


class Recorded(NamedTuple):
    """Where an agent records a partition stands (``recorded_positions``): the next offset to read,
    and, where the agent keeps it, the mark of the record before it (``kafka.record_mark``), checked
    against the log before it is started from: a topic created again has other records there."""

    offset: int
    mark: str | None = None


class Rewind(Exception):
    """Raised by an agent: drop this batch and fetch these partitions again from these offsets (the
    state in Redis records where each partition really is)."""

    def __init__(self, offsets: dict[TopicPartition, int], *, reason: str, delay_s: float = 0.0):
        super().__init__(f"{reason}: re-fetch from {offsets}")
        self.offsets = offsets
        self.reason = reason
        self.delay_s = delay_s  # wait this long before fetching again (something must change first)


class PositionAhead(RuntimeError):
    """The state in Redis records a position past the end of the log: it is not this log's state.
    Not retried: the worker stops loudly."""


class BatchAgent(Protocol):
    """decode -> rules core -> effects: ``process`` adds what a batch causes to the checkpoint
    (sinks/checkpoint.py: messages, rejects, after-flush steps); the runner completes it, then
    commits."""

    name: str

    def source_topics(self) -> list[str]: ...

    def checkpoint(self) -> Checkpoint: ...

    async def process(self, records: list[ConsumerRecord], checkpoint: Checkpoint) -> None: ...


def merge_by_time(batches: dict[TopicPartition, list[ConsumerRecord]]) -> list[ConsumerRecord]:
    """One list of a fetch's records: partitions interleaved by timestamp (event time), each
    partition's own order kept. Inputs about one subject that arrive on different topics are thus
    handled in event-time order, whatever order the broker returned the partitions in."""
    parts = [recs for _, recs in sorted(batches.items(), key=lambda kv: (kv[0].topic, kv[0].partition)) if recs]
    if len(parts) == 1:
        return list(parts[0])
    return list(heapq.merge(*parts, key=lambda r: r.timestamp))


class _Revoked(ConsumerRebalanceListener):
    """Tells the agent and the runner which partitions they lost (``forget``), so that what they
    remember of them (the positions the agent wrote: agents/input_positions.py; where the runner
    expected each to go on: streams/deleted_inputs.py) is not taken for true if they come back after
    another worker owned them; and the runner which it was given (``assigned``)."""

    def __init__(self, *forgets: Callable[[set[TopicPartition]], None], agent: str = "",
                 assigned: Callable[[set[TopicPartition]], Awaitable[None]] | None = None):
        self.forgets = forgets
        self.agent = agent
        self.assigned = assigned

    async def on_partitions_revoked(self, revoked) -> None:
        for forget in self.forgets:
            forget(set(revoked))

    async def on_partitions_assigned(self, assigned) -> None:
        # one line per rebalance: which worker reads how much (a worker that stops hands its
        # partitions over at once, one killed only when its session timeout expires)
        by_topic: dict[str, list[int]] = {}
        for tp in assigned:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        log.info("partitions assigned", agent=self.agent, partitions=len(assigned), topics=len(by_topic),
                 assigned={t: _ranges(sorted(ps)) for t, ps in sorted(by_topic.items())})
        if self.assigned is not None:
            await self.assigned(set(assigned))


def _ranges(partitions: list[int]) -> str:
    """Sorted partition numbers as ranges: ``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    out: list[str] = []
    for p in partitions:
        if out and p == int(out[-1].rpartition("-")[2]) + 1:
            out[-1] = f"{out[-1].partition('-')[0]}-{p}"
        else:
            out.append(str(p))
    return ",".join(out)


class AgentRunner:
    def __init__(self, agent: BatchAgent, settings: Settings, *, group_id: str | None = None,
                 after_batch: Callable[[], None] | None = None):
        self.agent = agent
        self.after_batch = after_batch  # called between two batches (creditstream/heap.py HeapRounds.at_rest)
        self.settings = settings
        self.group_id = group_id or f"{settings.consumer_group}.{agent.name}"
        self.consumer = None
        self.batches = 0
        self.records = 0
        self.started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._commit_task: asyncio.Future | None = None
        self._stop_wait: asyncio.Future | None = None  # done once told to stop (set by run)
        self.done_at = time.monotonic()  # the last batch completed (or the start)
        self.busy_since: float | None = None  # a batch in hand since then (retrying while it lasts)
        self.retry_cause: str | None = None
        self._skipped_checks = Repeats()  # "position check skipped" while Redis is down
        self.lag = 0  # events waiting on this agent's partitions, as of its last batch
        self._lag_at = 0.0
        self._checked_at = time.monotonic()  # the first check after a first fetch: positions known then
        self._starts: dict[TopicPartition, int] = {}  # where partitions without a commit start (_start_where_recorded)
        self._assigning: asyncio.Future | None = None  # done once _start_where_recorded has decided
        self.gaps = Gaps()  # inputs the broker deleted before they were read (streams/deleted_inputs.py)
        self._gaps_checked_at = 0.0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        topics = self.agent.source_topics()
        forget = getattr(self.agent, "forget", None)
        forgets = (self.gaps.forget,) if forget is None else (forget, self.gaps.forget)
        for topic in topics:  # exported as 0 from the start, so that the alert sees the first increase
            metrics.DELETED_UNREAD.labels(self.agent.name, topic)
        metrics.export_zero(self.agent.name)
        # committed records only: a department's aborted transaction is never an input (kafka.isolation_level)
        def new_consumer():
            return kafka.consumer(self.settings, *topics, group_id=self.group_id, committed_only=True,
                                  listener=_Revoked(*forgets, agent=self.agent.name,
                                                    assigned=self._start_where_recorded))

        if not await self._start_consumer(new_consumer):
            log.info("agent stopped before it started", agent=self.agent.name)
            return
        c = self.consumer
        if hasattr(self.agent, "committed_offset"):
            self.agent.committed_offset = self._committed
        if hasattr(self.agent, "highwater"):
            self.agent.highwater = lambda p, t=topics[0]: self._highwater(TopicPartition(t, p))
        log.info("agent started", agent=self.agent.name, topics=topics, group=self.group_id)
        self.started.set()
        stop_wait = self._stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                fetch = asyncio.ensure_future(
                    c.getmany(timeout_ms=max(self.settings.fetch_wait(), 10), max_records=self.settings.max_batch))
                done, _ = await asyncio.wait({fetch, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if fetch not in done:
                    fetch.cancel()
                    break
                batches = fetch.result()
                if self._assigning is not None and not self._assigning.done():
                    # records fetched while the new partitions' starts are decided: not processed
                    # before, as they may begin at the log start
                    if await self._unless_stopped(asyncio.shield(self._assigning)) is None:
                        break
                if self._starts:
                    # partitions without a commit start where Redis records them: sought again here, as
                    # the consumer's reset to the log start may land after the listener's seek; the
                    # batch is dropped and fetched again from there
                    starts, self._starts = self._starts, {}
                    for tp, recs in batches.items():
                        if recs and tp not in starts:
                            starts[tp] = recs[0].offset
                    self._seek(Rewind(starts, reason="no-commit"))
                    continue
                # (each step that may wait for Redis or the broker is dropped when told to stop)
                if time.monotonic() - self._checked_at >= POSITION_CHECK_S:
                    check = await self._unless_stopped(self._position_check(batches))
                    if check is None:
                        break
                    if check.result():
                        continue  # partitions re-read: this fetch is dropped, and fetched again
                if not batches:
                    if self.lag and time.monotonic() - self._lag_at > 1.0:
                        # partitions moved, or the log ends are known now
                        if await self._unless_stopped(self._update_lag()) is None:
                            break
                    continue
                if await self._unless_stopped(self._note_gaps(batches)) is None:
                    break
                records = merge_by_time(batches)
                held_from = time.monotonic()  # the consumer counts itself idle from its last fetch
                try:
                    await self._process_with_retry(records)
                except _Abandoned as abandoned:
                    log.warning("stopping: abandoned the batch in hand, its offsets not committed; the next owner "
                                "of its partitions processes it again", agent=self.agent.name, records=len(records),
                                partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp, rs in batches.items() if rs),
                                why=str(abandoned))
                    break
                except Rewind as rewind:
                    self._seek(rewind)
                    if rewind.delay_s:
                        await asyncio.wait({stop_wait}, timeout=rewind.delay_s)
                    continue
                self._note_held(time.monotonic() - held_from)
                offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs}
                self.gaps.advanced(offsets)
                # the commit runs while the next batch is fetched and processed; commits stay in
                # order (each waits for the previous one), and a crash before a commit lands only
                # means that batch is processed again, idempotently
                if self._commit_task is not None:
                    await asyncio.wait({self._commit_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    if not self._commit_task.done():
                        break  # the broker slow: this batch's commit is not issued (its next owner re-processes it)
                    self._commit_task.result()  # what it raised, raised here
                self._commit_task = asyncio.ensure_future(self._commit(offsets))
                if await self._unless_stopped(self._observe(records)) is None:
                    break
                if self.after_batch is not None:
                    del done, fetch, batches, records  # the batch's objects go first
                    self.after_batch()
        finally:
            stop_wait.cancel()
            if self._commit_task is not None:
                try:
                    await asyncio.wait_for(self._commit_task, STOP_COMMIT_S)
                except Exception as exc:  # noqa: BLE001 - the next owner re-processes that batch
                    log.warning("last commit failed: the next owner of its partitions processes that batch again",
                                agent=self.agent.name, error=str(exc) or type(exc).__name__)
            try:
                await asyncio.wait_for(self._stop_consumer(), STOP_CONSUMER_S)
            except TimeoutError:
                log.warning("stopping: the consumer did not leave its group in time (the broker does not answer); "
                            "its partitions move once the session timeout expires", agent=self.agent.name,
                            waited_s=STOP_CONSUMER_S, session_timeout_ms=self.settings.session_timeout_ms)
            log.info("agent stopped", agent=self.agent.name, batches=self.batches, records=self.records)

    def _note_held(self, held_s: float) -> None:
        """A batch held longer than ``max_poll_interval_ms`` (retried while Redis was down, or stalled):
        the consumer's heartbeat left the group meanwhile, so its partitions may have moved to another
        worker (which applies the batch again, fenced). Said, and counted: aiokafka says it only at
        INFO, among the client's own lines. The consumer rejoins at the next fetch; the batch's commit
        is refused if its partitions moved."""
        limit_s = self.settings.max_poll_interval_ms / 1000
        if held_s > limit_s:
            metrics.HELD_PAST_POLL_INTERVAL.labels(self.agent.name).inc()
            log.warning("a batch was held longer than max_poll_interval_ms: this agent's consumer left its group "
                        "meanwhile and rejoins now; its partitions may have moved to another worker",
                        agent=self.agent.name, held_s=round(held_s, 1), max_poll_interval_s=limit_s)

    async def _start_where_recorded(self, assigned: set[TopicPartition]) -> None:
        """Partitions given to this worker for which the group has no commit, but whose position the
        agent recorded in Redis with its batches' effects (``recorded_positions``), start there, not
        at the log start: the group's commits expire (Apache Kafka's ``offsets.retention.minutes``,
        7 days after its last member left: workers stopped for a week) or the group is new (a
        renamed ``consumer_group``). From the log start, every input was processed again and every
        subject event written again (tests/integration/test_expired_commits.py). A position Redis
        does not have, or one this cannot ask for, leaves the partition at the log start: processed
        again, idempotently, as before."""
        recorded_positions = getattr(self.agent, "recorded_positions", None)
        if recorded_positions is None or not assigned or self.consumer is None:
            return
        self._assigning = asyncio.get_running_loop().create_future()
        try:
            await self._decide_starts(recorded_positions, sorted(assigned))
        finally:
            self._assigning.set_result(None)

    async def _decide_starts(self, recorded_positions, tps: list[TopicPartition]) -> None:
        """:meth:`_start_where_recorded` for ``tps``."""
        try:
            committed = await kafka.committed_offsets(self.consumer, tps)
            uncommitted = [tp for tp in tps if committed.get(tp) is None]
            recorded = {tp: r for tp, r in (await recorded_positions(uncommitted) if uncommitted else {}).items()
                        if r is not None and r.offset > 0}
            # the record before each position, as recorded: a topic deleted and created again (its
            # commits deleted with it) has other records there, and its inputs would be skipped
            marked = {tp: r.offset - 1 for tp, r in recorded.items() if r.mark is not None}
            found = await kafka.record_marks(self.settings, marked) if marked else {}
        except (*TRANSIENT, IllegalStateError) as exc:
            log.warning("could not ask where the partitions without a commit stand: they are read from the "
                        "log start", agent=self.agent.name, error=str(exc)[:200] or type(exc).__name__)
            return
        other = sorted(tp for tp, r in recorded.items() if r.mark is not None and found.get(tp) != r.mark)
        if other:
            log.warning("the record before the position Redis records is not the one it recorded (the topic "
                        "was created again, or the record deleted): read from the log start",
                        agent=self.agent.name, partitions=[f"{tp.topic}[{tp.partition}]" for tp in other])
        sought = {tp: r.offset for tp, r in recorded.items() if tp not in other}
        for tp, pos in sought.items():
            self.consumer.seek(tp, pos)
        self._starts.update(sought)  # and again before the next batch (run)
        if sought:
            log.warning("the group has no commit for partitions Redis records positions of (its commits "
                        "expired, or the group is new): they are read from those positions",
                        agent=self.agent.name, group=self.group_id,
                        partitions={f"{tp.topic}[{tp.partition}]": pos for tp, pos in sorted(sought.items())})

    async def _unless_stopped(self, step: Awaitable[T]) -> asyncio.Future[T] | None:
        """``step`` run to its end (its done future; what it raised is raised), or None when told to
        stop first: ``step`` is then cancelled."""
        work = asyncio.ensure_future(step)
        stop_wait = self._stop_wait
        own = stop_wait is None  # before run()'s loop: a wait of its own
        if own:
            stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({work, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if own:
                stop_wait.cancel()
        if work.done():
            work.result()  # what it raised, raised here
            return work
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        return None

    async def _position_check(self, fetched: dict[TopicPartition, list[ConsumerRecord]]) -> bool:
        """Every ``POSITION_CHECK_S``, busy or idle: an agent that records its positions in Redis
        (``positions_behind``: agents/input_positions.py, agents/subject.py) says which of its
        partitions Redis records behind what was written (it lost the writes of their last
        batches); they are read again from there. A partition with no new input would otherwise
        wait for one, and with steady input on others a check only when idle would never come.
        True if partitions were sought back: then the ``fetched`` batch is dropped, its other
        partitions sought back to its first records, so that it is fetched again."""
        self._checked_at = time.monotonic()
        check = getattr(self.agent, "positions_behind", None)
        if check is None:
            return False
        try:
            rewind = await asyncio.wait_for(check(list(self.consumer.assignment())), POSITION_CHECK_TIMEOUT_S)
        except (*TRANSIENT, IllegalStateError) as exc:
            if (fields := self._skipped_checks.due()) is not None:  # once a minute during an outage
                log.info("position check skipped", agent=self.agent.name,
                         error=str(exc)[:200] or type(exc).__name__, **fields)
            return False
        self._skipped_checks.ended()
        if rewind is None:
            return False
        for tp, recs in fetched.items():
            if recs and tp not in rewind.offsets:
                rewind.offsets[tp] = recs[0].offset
        self._seek(rewind)
        return True

    async def _committed(self, tp: TopicPartition) -> kafka.Committed:
        """The group's committed offset of a partition and its metadata, for an agent's position
        checks (a coordinator that does not answer: TimeoutError, a transient failure, retried)."""
        return await asyncio.wait_for(kafka.committed(self.consumer, tp), POSITION_CHECK_TIMEOUT_S)

    def health(self, stall_after_s: float) -> dict:
        """``{"state": "ok"|"stalled", "waiting": events not yet processed, "reason": ...}``: stalled
        when a batch has been in hand (retried: Redis, the broker or the registry failing) for
        ``stall_after_s``, or when events wait and no batch completed for that long (the worker's
        heartbeat carries this to /health and to the check API's ``pipeline``)."""
        now = time.monotonic()
        if self.busy_since is not None and now - self.busy_since > stall_after_s:
            cause = f" ({self.retry_cause})" if self.retry_cause else ""
            return {"state": "stalled", "waiting": self.lag,
                    "reason": f"one batch in hand for {now - self.busy_since:.0f} s, retrying{cause}"}
        if self.lag > 0 and now - self.done_at > stall_after_s:
            return {"state": "stalled", "waiting": self.lag,
                    "reason": f"{self.lag} event(s) waiting, none processed for {now - self.done_at:.0f} s"}
        return {"state": "ok", "waiting": self.lag}

    def _highwater(self, tp: TopicPartition) -> int | None:
        """The log end of a partition this consumer holds; None when unknown, or when a rebalance
        took the partition away in the middle of a batch (the batch's commit then fails too)."""
        if tp not in self.consumer.assignment():
            return None
        return self.consumer.highwater(tp)

    def _last_stable(self, tp: TopicPartition) -> int | None:
        """The end a ``read_committed`` consumer may read to (kafka.isolation_level): records of an open
        transaction, and all after them, wait on their producer, not on this agent. None when the
        consumer reads uncommitted (aiokafka answers -1), the broker does not say, or the partition was
        taken away (aiokafka asserts, as for ``highwater``)."""
        if tp not in self.consumer.assignment():
            return None
        stable = self.consumer.last_stable_offset(tp)
        return stable if stable is not None and stable >= 0 else None

    async def _note_gaps(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Where this batch begins against where each partition was expected to go on; gaps checked
        against the log starts, at most every ``CHECK_EVERY_S``: inputs the broker deleted before they
        were read (retention, DeleteRecords) are logged at error level and counted. Never stops the
        agent: a broker that does not answer leaves the gaps for the next check."""
        firsts = {tp: recs[0].offset for tp, recs in batches.items() if recs}
        unknown = self.gaps.unknown(firsts)
        commits: dict[TopicPartition, int | None] = {}
        if unknown:
            try:
                commits = await asyncio.wait_for(kafka.committed_offsets(self.consumer, unknown),
                                                 POSITION_CHECK_TIMEOUT_S)
            except (*TRANSIENT, IllegalStateError) as exc:
                log.info("commits not read: gaps of these partitions not checked", agent=self.agent.name,
                         error=str(exc)[:200] or type(exc).__name__)
        self.gaps.note(firsts, commits)
        if not self.gaps.pending or time.monotonic() - self._gaps_checked_at < CHECK_EVERY_S:
            return
        self._gaps_checked_at = time.monotonic()
        tps = [tp for tp in self.gaps.pending if tp in self.consumer.assignment()]
        for tp in set(self.gaps.pending) - set(tps):
            del self.gaps.pending[tp]  # moved away: its next owner reads its commit
        if not tps:
            return
        try:
            starts = await asyncio.wait_for(self.consumer.beginning_offsets(tps), POSITION_CHECK_TIMEOUT_S)
        except (*TRANSIENT, IllegalStateError) as exc:
            log.info("log starts not read: gaps checked later", agent=self.agent.name,
                     error=str(exc)[:200] or type(exc).__name__)
            return
        for deleted in self.gaps.resolve(starts):
            metrics.DELETED_UNREAD.labels(self.agent.name, deleted.tp.topic).inc(deleted.count)
            log.error("inputs deleted by the broker before they were read: they were never applied; ask their "
                      "department to send them again", agent=self.agent.name, topic=deleted.tp.topic,
                      partition=deleted.tp.partition, offsets=f"{deleted.first}-{deleted.end - 1}",
                      count=deleted.count)

    def _seek(self, rewind: Rewind) -> None:
        owned = self.consumer.assignment()
        for tp, offset in rewind.offsets.items():
            if tp in owned:
                self.consumer.seek(tp, offset)
        log.info("partitions re-fetched", agent=self.agent.name, reason=rewind.reason,
                 offsets={f"{tp.topic}[{tp.partition}]": o for tp, o in rewind.offsets.items() if tp in owned})

    async def _start_consumer(self, new_consumer: Callable[[], AIOKafkaConsumer]) -> bool:
        """A started consumer in ``self.consumer`` (True): a broker that does not answer is waited for,
        each attempt with a new consumer (aiokafka's ``start()`` cannot be called again on one whose
        start failed half-way: "Did you call `start` twice?"), until told to stop (False). A refusal
        for want of an ACL (topic, group, cluster authorization) is raised at once: waiting does not
        grant it."""
        delay = BACKOFF_START_S
        while not self._stopping.is_set():
            self.consumer = new_consumer()
            try:
                if await self._unless_stopped(self.consumer.start()) is None:  # (joining a group takes a while)
                    try:
                        await asyncio.wait_for(self._stop_consumer(), STOP_CONSUMER_S)
                    except TimeoutError:
                        pass
                    return False
                return True
            except AUTHORIZATION:
                await self._stop_consumer()
                raise
            except KafkaError as exc:
                await self._stop_consumer()
                log.warning("broker not reachable, retrying", agent=self.agent.name, error=str(exc), retry_in_s=delay)
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, BACKOFF_MAX_S)
        return False

    async def _stop_consumer(self) -> None:
        try:
            await kafka.stop_consumer(self.consumer)  # leaves the group, so a successor need not wait a session timeout
        except Exception as exc:  # noqa: BLE001 - stopping must not mask the original error
            log.warning("consumer stop failed", agent=self.agent.name, error=str(exc))

    async def _process_with_retry(self, records: list[ConsumerRecord]) -> None:
        self.busy_since = time.monotonic()
        try:
            await self._retry(records)
        finally:
            self.busy_since = self.retry_cause = None
        self.done_at = time.monotonic()

    async def _retry(self, records: list[ConsumerRecord]) -> None:
        """The batch processed and its effects durable, retried while a service fails; _Abandoned when
        told to stop before that (a retry's back-off is cut short, an attempt gets ``STOP_GRACE_S``)."""
        delay = BACKOFF_START_S
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._attempt_unless_stopped(records, attempt)
                return
            except TRANSIENT as exc:
                cause = error_cause(exc)
                error = error_text(exc)
                self.retry_cause = f"{cause}: {error[:200]}"
                metrics.RETRIES.labels(self.agent.name, cause).inc()
                if self._stopping.is_set():
                    raise _Abandoned(f"attempt {attempt} failed ({cause}: {error[:200]})") from exc
                log.warning("batch failed, retrying", agent=self.agent.name, attempt=attempt, records=len(records),
                            cause=cause, error=error, retry_in_s=round(delay, 2))
                if self.consumer is not None:  # the lag counts the batch in hand: a stuck agent has lag
                    await self._update_lag(in_hand=records)
                if await self._stopped_within(delay):
                    raise _Abandoned(f"retrying after {attempt} failed attempt(s): {self.retry_cause}") from exc
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def _stopped_within(self, seconds: float) -> bool:
        """Sleep ``seconds``, or less if told to stop meanwhile; whether told to stop."""
        stop_wait = self._stop_wait
        if stop_wait is None:  # not run by run(): only a sleep
            await asyncio.sleep(seconds)
        else:
            await asyncio.wait({stop_wait}, timeout=seconds)
        return self._stopping.is_set()

    async def _attempt_unless_stopped(self, records: list[ConsumerRecord], attempt: int) -> None:
        """One attempt (:meth:`_attempt`); told to stop meanwhile, it gets ``STOP_GRACE_S`` more to
        complete, then it is cancelled: _Abandoned. A cancelled attempt is no worse than a crash at
        that point: its offsets are not committed, and every write of a batch is idempotent."""
        stop_wait = self._stop_wait
        if stop_wait is None:  # not run by run()
            await self._attempt(records)
            return
        work = asyncio.ensure_future(self._attempt(records))
        done, _ = await asyncio.wait({work, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if work not in done:
            done, _ = await asyncio.wait({work}, timeout=STOP_GRACE_S)
            if work not in done:
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
                cause = f" (retrying: {self.retry_cause})" if self.retry_cause else ""
                raise _Abandoned(f"attempt {attempt} not done {STOP_GRACE_S:.0f} s after the stop{cause}")
        work.result()

    async def _attempt(self, records: list[ConsumerRecord]) -> None:
        t0 = time.perf_counter()
        checkpoint = self.agent.checkpoint()  # a new one per attempt: a retry counts nothing twice
        await self.agent.process(records, checkpoint)
        t1 = time.perf_counter()
        await checkpoint.complete()
        t2 = time.perf_counter()
        metrics.BATCH_SECONDS.labels(self.agent.name).observe(t2 - t0)
        if _debug_enabled():
            log.debug("batch done", agent=self.agent.name, records=len(records),
                      process_ms=round((t1 - t0) * 1000, 1), produce_ms=round((t2 - t1) * 1000, 1),
                      oldest_age_ms=round(time.time() * 1000 - min(r.timestamp for r in records)))

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """The batch's offsets committed, with the agent's ``commit_marker()`` as their metadata when it
        has one: the batch recorded its positions in Redis (agents/input_positions.py), so a later
        owner that finds none there knows Redis lost them."""
        marker = getattr(self.agent, "commit_marker", None)
        text = marker() if marker is not None else None
        commit: dict = {tp: OffsetAndMetadata(o, text) for tp, o in offsets.items()} if text else offsets
        delay = BACKOFF_START_S
        while True:
            try:
                await self.consumer.commit(commit)
                return
            except (CommitFailedError, IllegalStateError) as exc:
                # Partitions moved to another worker; it re-processes from the last commit.
                log.info("commit skipped after rebalance", agent=self.agent.name, error=str(exc))
                return
            except KafkaError as exc:
                log.warning("commit failed, retrying", agent=self.agent.name, error=str(exc), retry_in_s=delay)
                if self._stopping.is_set():
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def _observe(self, records: list[ConsumerRecord]) -> None:
        self.batches += 1
        self.records += len(records)
        now_ms = time.time() * 1000
        newest = max(r.timestamp for r in records)
        metrics.EVENT_FRESHNESS.labels(self.agent.name).set(max(0.0, (now_ms - newest) / 1000))
        hist = metrics.PROCESSING_LATENCY.labels(self.agent.name)
        counts: dict[str, int] = {}
        for r in records:
            counts[r.topic] = counts.get(r.topic, 0) + 1
        for topic, n in counts.items():
            metrics.EVENTS_IN.labels(self.agent.name, topic).inc(n)
        # one observation per batch keeps the hot path free of per-event metric calls
        hist.observe(max(0.0, (now_ms - newest) / 1000))
        await self._update_lag()

    async def _update_lag(self, in_hand: Sequence[ConsumerRecord] = ()) -> None:
        """The lag gauges. Only a metric: a partition taken away by a rebalance while this runs
        (``highwater`` asserts, ``position`` raises IllegalStateError) leaves them as they were
        until the next update, never stops the agent. ``in_hand``: a batch being retried (the
        consumer's position is past it, but it is not applied): counted as lag too, so that an agent
        stuck on a failing Redis or registry shows lag, and the stall alert fires (it stayed 0)."""
        lag: dict[str, int] = {}
        for record in in_hand:
            lag[record.topic] = lag.get(record.topic, 0) + 1
        held: dict[str, int] = {}
        try:
            for tp in list(self.consumer.assignment()):
                hw = self._highwater(tp)  # from the fetch response: right on Tansu too
                if hw is None:
                    continue
                position = await self.consumer.position(tp)
                stable = self._last_stable(tp)
                end = min(hw, stable) if stable is not None else hw
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end - position)
                held[tp.topic] = held.get(tp.topic, 0) + max(0, hw - max(end, position))
        except KafkaError as exc:
            log.info("lag not measured: partitions moved", agent=self.agent.name, error=str(exc))
            return
        for topic, n in lag.items():
            metrics.CONSUMER_LAG.labels(self.agent.name, topic).set(n)
            # (a topic only in hand: its partitions' high watermark not known yet, held is 0)
            metrics.IN_OPEN_TRANSACTIONS.labels(self.agent.name, topic).set(held.get(topic, 0))
        self.lag = sum(lag.values())
        self._lag_at = time.monotonic()
