"""Replay (``creditstream replay``): rebuild subject state and list memberships from the log.

The subject-event log (``<prefix>subject-events``) holds every input the subject agent ever applied,
timer firings included, in order per subject. Replaying it through the same pure step
(domain/engine.py) into a fresh Redis generation rebuilds the state exactly, and yields the same
list changes with the same ids: nothing is re-emitted (downstream already has them), they are
collected and can be compared with the list-change topic.

* ``--verify``: rebuild aside, then report every difference with the live generation (subject
  states and list memberships), key by key; exit 1 if any.
* ``--switch``: after the rebuild, point readers at the new generation (one ``SET``). The workers
  resolve the generation when they start: stop them before switching, start them after. A switch
  is refused (before the rebuild and again before the ``SET``) while any worker of the namespace
  has a live heartbeat (``{ns}:worker:*``, renewed every 2 s, expiring 15 s after a worker dies).
* ``--from-offsets P:O,...`` / ``--from-timestamp``: start later than the beginning. Because a
  subject's state depends on all of its history, a partial replay is applied on top of a copy of
  nothing: use it to inspect, not to switch. ``--from-timestamp`` is resolved by scanning record
  timestamps (Tansu's offsets_for_times uses append time and answers 0 past the end: docs/broker.md).

Safe to interrupt and rerun: the new generation is only read after a complete rebuild; a rerun
starts over in a generation of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import msgspec
import structlog
from redis.exceptions import OutOfMemoryError

from creditstream import host
from creditstream.connections import check_redis, make_codec, redis_client, redis_memory
from creditstream.heap import HeapRounds, thaw
from creditstream.settings import Settings
from domain.calendar import WorkingCalendar
from domain.rulebook import load_rulebook
from ops.inspect import running_workers
from sinks.kafka import home_partition
from sinks.keys import INDEX_COMPLETE, Keys, complete_indexes, list_names, require_pseudonym_key, resolve_keys
from sinks.redis_state import SubjectStateSink, read_states
from streams import kafka, placement
from streams.placement import Span
from streams.runner import Rewind
from streams.topics import Topics

log = structlog.get_logger("creditstream.replay")


@dataclass
class ReplayResult:
    generation: str
    events: int = 0
    seconds: float = 0.0  # the rebuild's, from after the checks: the job processes' start-up included
    changes: list[tuple[str, str]] = field(default_factory=list)  # (subject, change id) in log order: kept (verify)
    change_count: int = 0  # the list changes the log caused (counted whether or not kept)
    differences: list[str] = field(default_factory=list)
    switched: bool = False
    jobs: int = 1  # processes that rebuilt it
    fenced: bool = False  # several processes, each transaction WATCHing its subjects (a subject on two partitions)
    abandoned: list[str] = field(default_factory=list)  # earlier replays found interrupted
    # --verify: per partition, live position minus the rebuilt one when they differed at the diff
    # (negative: the live workers had not yet applied that many events; positive: events arrived
    # after the rebuild): differences then may be nothing but that
    live_offset: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


PROGRESS_LINE_S = 10.0
"""When stderr is not a terminal (a pipe, a log file, `docker compose run -T`): a progress line this often."""


class Progress:
    """Progress on stderr, with rate and ETA: a one-line bar on a terminal; elsewhere (unless
    ``enabled`` is False) a plain line every :data:`PROGRESS_LINE_S` seconds, so that a long
    operation run in a pipe or a container is not silent until it ends. ``enabled`` True: the bar."""

    def __init__(self, total: int, *, enabled: bool | None = None, label: str = "replay", unit: str = "ev"):
        self.known = total > 0  # (0: not known, e.g. lines read from standard input as they come)
        self.total = max(total, 1)
        self.unit = unit
        self.done = 0
        self.t0 = time.monotonic()
        self.label = label
        tty = sys.stderr.isatty()
        self.enabled = tty if enabled is None else enabled
        self.lines = enabled is None and not tty
        self._last = 0.0
        self._last_line = self.t0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.2 or self.done >= self.total):
            self._last = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate else 0
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
            sys.stderr.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {rate:,.0f} {self.unit}/s "
                             f"ETA {eta:.0f}s " if self.known else
                             f"\r{self.label} {self.done:,} {self.unit} {rate:,.0f} {self.unit}/s ")
            sys.stderr.flush()
        elif self.lines and now - self._last_line >= PROGRESS_LINE_S:
            self._last_line = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate else 0
            sys.stderr.write(f"{self.label}: {self.done:,} of {self.total:,} {self.unit} "
                             f"({min(100.0, 100 * self.done / self.total):.0f}%), {rate:,.0f} {self.unit}/s, "
                             f"ETA {max(eta, 0):.0f} s\n" if self.known else
                             f"{self.label}: {self.done:,} {self.unit}, {rate:,.0f} {self.unit}/s\n")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


async def _log_size(settings: Settings, topic: str) -> int:
    """Messages in the log: the sum of the partitions' log ends."""
    return sum((await log_ends(settings, topic)).values())


async def log_ends(settings: Settings, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """Each partition's log end (streams/kafka.py decides how, by broker kind)."""
    return await kafka.log_ends(settings, topic, timeout_s)


class WorkersRunning(ValueError):
    """``replay --switch`` while workers of the namespace run: they would keep writing to the old
    generation, and what they apply would never reach the readers."""


async def _refuse_if_workers_run(redis, keys: Keys) -> None:
    workers = await running_workers(redis, keys, scan=True)
    if workers:
        who = ", ".join(f"{w.get('host', '?')} pid {w.get('pid', '?')}" for w in workers[:5])
        raise WorkersRunning(
            f"{len(workers)} worker(s) of namespace {keys.namespace!r} are running ({who}): stop them before "
            f"`replay --switch` (a worker killed a moment ago is counted until its heartbeat expires, "
            f"within 15 s), then start them again after the switch")


REPLAY_ALIVE_S = 5.0
REPLAY_ALIVE_TTL_S = 15


async def mark_abandoned(redis, keys: Keys) -> list[str]:
    """Earlier replays still marked running whose process is gone (killed: their alive key expired):
    marked ``abandoned``; returns their generations (their keys can be deleted, never the live one).
    They are found in the ``replays`` set, which holds the replays started and not yet seen ended
    (a scan for their progress keys read every key of Redis: 0.8 s at a million subjects)."""
    found = []
    started = {m.decode() for m in await redis.smembers(keys.replays)}
    if INDEX_COMPLETE not in started:  # replays of an earlier version: scanned for, once
        await complete_indexes(redis, keys)
        started = {m.decode() for m in await redis.smembers(keys.replays)}
    started.discard(INDEX_COMPLETE)
    for generation in sorted(started):
        status = await redis.hget(keys.replay_progress(generation), "status")
        if status == b"running" and await redis.get(keys.replay_alive(generation)) == b"1":
            continue  # still running
        if status == b"running":
            await redis.hset(keys.replay_progress(generation),
                             mapping={"status": "abandoned", "abandoned": int(time.time())})
            found.append(generation)
        await redis.srem(keys.replays, generation)
    return sorted(found)


async def _stay_alive(redis, key: str, done: asyncio.Event) -> None:
    """``1`` while the replay runs, ``0`` once it ended (one task writes both: they cannot cross)."""
    while not done.is_set():
        await redis.set(key, b"1", ex=REPLAY_ALIVE_TTL_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), REPLAY_ALIVE_S)
    await redis.set(key, b"0", ex=REPLAY_ALIVE_TTL_S)


# What one replay process may take: measured 171-180 MiB of peak RSS with replay_batch 1 and
# 242-249 MiB with 10,000 (docs/performance.md, "a replay's reads joined into batches"): a base, and
# the objects of a batch's inputs and states; with a margin for larger states than the benchmark's
JOB_BASE_BYTES = 220 << 20
JOB_BYTES_PER_INPUT = 8 << 10


def job_memory(replay_batch: int) -> int:
    """The memory one replay process is counted at (``replay_batch`` inputs a batch)."""
    return JOB_BASE_BYTES + replay_batch * JOB_BYTES_PER_INPUT


@dataclass(frozen=True)
class JobCount:
    """How many processes a replay runs by default, and what bounded the count."""
    count: int
    bound: str                     # "cpus", "partitions" or "memory"
    cpus: int                      # this process's CPUs (affinity, cgroup quota: creditstream/host.py)
    memory_available: int | None   # bytes it may still take (its cgroup's limit, or the host's)
    job_memory: int                # bytes a process is counted at


def default_jobs(partitions: int, replay_batch: int, root: Path = Path("/")) -> JobCount:
    """One process per CPU this process may use, at most one per partition, and no more than the
    memory it may take holds (in a container limited to 1 GiB, as docker-compose.yml limits the
    worker service that ``docker compose run`` starts a replay in, one process per host CPU would be
    killed by the kernel). The smallest bound wins; the first named on a tie."""
    cpus = host.cpus(root)
    room = host.memory_available(root)
    per = job_memory(replay_batch)
    bounds = [(cpus, "cpus"), (max(1, partitions), "partitions")]
    if room is not None:
        bounds.append((max(1, room // per), "memory"))
    count, bound = min(bounds, key=lambda b: b[0])
    return JobCount(count, bound, cpus, room, per)


def job_partitions(partitions: list[int], jobs: int) -> list[list[int]]:
    """The subject-event partitions each replay process rebuilds: ``jobs`` groups, round robin,
    never more than there are partitions."""
    n = max(1, min(jobs, len(partitions)))
    return [g for g in (partitions[i::n] for i in range(n)) if g]


class Rebuilt(NamedTuple):
    """What a rebuild (or one process's part of it) applied."""
    events: int
    changes: list[tuple[str, str]]  # (storage id, change id) in log order, where kept (``keep_changes``)
    change_count: int               # the list changes, kept or not


async def _rebuild(settings: Settings, redis, keys: Keys, *, partitions: list[int] | None,
                   start: dict[int, int] | None, from_timestamp_ms: int | None, on_batch,
                   parallel: bool = False, fenced: bool = True,
                   partition_count: int | None = None, keep_changes: bool = True,
                   stop: Mapping[int, int] | None = None) -> Rebuilt:
    """Apply the subject-event log (``partitions`` of it; None: all) to the generation of ``keys``
    through the subject agent, as a worker does but producing nothing. Returns the events applied
    and the list changes: counted, and (subject, change id) in log order where ``keep_changes``
    (``replay --verify``; they grow with the log, ~200 bytes each). ``parallel``: other processes rebuild
    other partitions of the same generation at the same time: ``fenced``, each transaction WATCHes
    its subjects; not fenced, every input is first checked to sit on its subject's one partition
    (``partition_count`` partitions), :class:`StraySubject` raised if one does not (``replay``).
    ``stop``: each partition read up to there (a span of the log, streams/placement.py ``spans``)."""
    from agents.subject import SubjectAgent

    topics = Topics(settings)
    # several processes, fenced: a subject's events may sit on two partitions (repartitioned topic,
    # changed pseudonym key) rebuilt by two of them, so each batch also WATCHes its subjects and holds
    # no state between batches (sinks/redis_state.py), and a batch fenced by another job is read again
    fence = parallel and fenced
    check = parallel and not fenced
    if check and not partition_count:
        raise ValueError("an unfenced rebuild in several processes needs the log's partition count")
    sink = SubjectStateSink(redis, keys, cache_mb=0 if fence else settings.state_cache_mb,
                            state_format=settings.state_format, watch_subjects=fence)
    agent = SubjectAgent(topics=topics, state=sink, producer=None, codec=make_codec(settings),
                         rules=load_rulebook(settings.rules_file or None),
                         calendar=WorkingCalendar.from_file(settings.calendar_file)
                         if settings.calendar_file else WorkingCalendar())
    agent.keep_announced = keep_changes
    events = 0
    # the cyclic collector (creditstream/heap.py): a round after every batch, when the
    # batch's working states are freed and only what is kept (the state cache's states) is new;
    # measured: a timer's rounds, falling mid-batch, walked every batch's states and took 13% of a replay
    rounds = HeapRounds(settings.gc_freeze_interval_s)
    heap = rounds.start()
    try:
        # unfenced, a batch of replay_batch inputs or more (reads of the log joined): a Redis transaction
        # per batch, and a subject touched several times in a batch is encoded and written once
        # (docs/performance.md); fenced, the slices of FENCED_SLICE below decide
        async for read in _batches(settings, topics.subject_events, start, partitions, from_timestamp_ms,
                                   at_least=1 if fence else settings.replay_batch, stop=stop):
            if check:  # unfenced: only while no subject can be on another process's partitions
                try:
                    refuse_strays(read, partition_count, keys)
                except StraySubject as stray:  # nothing of this read applied: a fenced pass goes on from here
                    stray.events, stray.changes, stray.change_count = events, agent.announced, agent.announced_count
                    raise
            # fenced, a transaction WATCHes its subjects: a slice of the batch at a time (FENCED_SLICE)
            for batch in (_slices(read, FENCED_SLICE) if fence else (read,)):
                # stopped before the new generation fills Redis: the live workers' writes need the room
                await redis_room(redis, keys.generation, settings.namespace)
                for attempt in range(1, FENCED_RETRIES + 1):
                    checkpoint = agent.checkpoint()
                    try:
                        await agent.process(batch, checkpoint)
                    except OutOfMemoryError:  # full all the same (the live workers wrote meanwhile)
                        raise await refused_as_full(redis, keys.generation, settings.namespace) from None
                    except Rewind:
                        if attempt == FENCED_RETRIES:
                            raise RuntimeError(f"a replay batch was fenced {attempt} times in a row by another job "
                                               f"of the same replay; run it again with --jobs 1") from None
                        log.info("replay batch fenced by another job (a subject on two partitions): read again",
                                 partitions=sorted({m.partition for m in batch}), attempt=attempt)
                        continue
                    await checkpoint.complete()
                    break
                events += len(batch)
                await on_batch(len(batch))
                if heap:  # after every batch: the sink let go of the batch's states at its commit
                    rounds.round()
    finally:
        if heap:
            thaw()
    return Rebuilt(events, agent.announced, agent.announced_count)


async def _batches(settings: Settings, topic: str, start: Mapping[int, int] | None, partitions: list[int] | None,
                   from_timestamp_ms: int | None, at_least: int = 1, stop: Mapping[int, int] | None = None):
    """The log's records (``partitions`` of it), those before ``from_timestamp_ms`` left out, in
    batches of ``at_least`` records or more (the last may hold fewer): the reads of the log, one
    partition's at a time, joined in the order read, so each partition's records stay in log order."""
    pending: list = []
    async for batch in kafka.read_to_end(settings, topic, start=dict(start) if start else None,
                                         partitions=partitions, stop=stop):
        if from_timestamp_ms is not None:
            batch = [m for m in batch if m.timestamp >= from_timestamp_ms]
        if pending:
            pending.extend(batch)
        else:
            pending = list(batch)  # (a list of its own: the next reads are added to it)
        if len(pending) >= at_least:
            yield pending
            pending = []
    if pending:
        yield pending


FENCED_RETRIES = 20


# In several processes, each transaction of a job WATCHes the subjects it writes. redis-server
# checks every key a WATCH adds against each key the connection already watches, so one WATCH of n
# keys costs n^2 / 2 comparisons on Redis's one thread, every other client waiting meanwhile
# (measured on the embedded redis-server 6.2.5: 500 keys 2.8 ms, 2,000 keys 32 ms, 4,000 keys 107 ms;
# a replay's batches of ~5,000 inputs held Redis for 46 ms a WATCH, a client's GET waited up to 104
# ms). So a job's transactions take at most this many inputs, and WATCH at most as many subjects.
FENCED_SLICE = 500


class StraySubject(Exception):
    """An input of the subject-event log not on its subject's one partition (the partition count or
    the pseudonym key changed since it was written): two processes might rebuild that subject.
    ``events``, ``changes`` and ``change_count``: what the rebuild had applied before it (``_rebuild``
    sets them)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.events = 0
        self.changes: list[tuple[str, str]] = []
        self.change_count = 0


class _SubjectOnly(msgspec.Struct):
    subject: str


_subject_only = msgspec.json.Decoder(_SubjectOnly)


def refuse_strays(batch: list, partition_count: int, keys: Keys) -> None:
    """Raise :class:`StraySubject` unless every input of ``batch`` is keyed by its subject's storage id
    under the current pseudonym key and sits on the partition that key hashes to (Kafka's murmur2, as
    the workers' producers place it). When every input of a log passes, each subject's inputs are on
    one partition, so the processes rebuilding different partitions never write the same subject."""
    for m in batch:
        key = m.key
        if key is None:
            raise StraySubject(f"an input without a key at {m.topic}[{m.partition}]@{m.offset}")
        home = home_partition(key, range(partition_count))  # a topic's partitions are 0 .. count - 1
        if home != m.partition:
            raise StraySubject(f"{m.topic}[{m.partition}]@{m.offset} is keyed for partition {home} of "
                               f"{partition_count}")
        try:
            subject = _subject_only.decode(m.value or b"").subject
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue  # not a subject event: dead-lettered by the rebuild, never applied
        if keys.storage_id(subject).encode() != key:
            raise StraySubject(f"{m.topic}[{m.partition}]@{m.offset} is keyed {key!r}, not by its subject's "
                               f"storage id under the current pseudonym key")


def _slices(batch: list, size: int) -> list[list]:
    """``batch`` in consecutive slices of at most ``size`` records, log order kept."""
    return [batch[i:i + size] for i in range(0, len(batch), size)] if len(batch) > size else [batch]


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored meanwhile (in the main thread; elsewhere nothing changes), for the processes
    started meanwhile to inherit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop_if_interrupted() -> None:
    """Raise CancelledError if this task was asked to stop (Ctrl-C: asyncio.run cancels the command's
    task) and a library on the way swallowed the cancellation: a replay in one process interrupted at
    the wrong moment ran to its end and exited 0."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _end_with_parent(parent: int) -> None:
    """In a replay's job process: end it as soon as the replay that started it is gone (killed with
    kill -9, say): nobody would read its result, and a rerun starts a generation of its own."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, daemon=True, name="end-with-parent").start()


def _rebuild_job(settings: Settings, generation: str, partitions: list[int], span: Span,
                 from_timestamp_ms: int | None, fenced: bool, keep_changes: bool) -> tuple[Rebuilt, str | None]:
    """One process of a replay in several (``--jobs``): rebuild ``partitions``, counting progress in
    the replay's progress hash (``applied``). Returns what it applied, and the stray input that
    stopped it (unfenced), if one did."""
    from creditstream import eventloop, logs

    logs.configure(level=settings.log_level, fmt=settings.log_format, libraries=settings.libraries_log_level)
    eventloop.install(settings.event_loop)  # a process of its own: the replay's loop is not inherited
    return asyncio.run(_rebuild_job_async(settings, generation, partitions, span, from_timestamp_ms, fenced,
                                          keep_changes))


async def _rebuild_job_async(settings: Settings, generation: str, partitions: list[int], span: Span,
                             from_timestamp_ms: int | None, fenced: bool,
                             keep_changes: bool) -> tuple[Rebuilt, str | None]:
    keys = Keys(settings.namespace, generation, require_pseudonym_key(settings.pseudonym_key))
    redis = redis_client(settings)
    try:
        async def counted(n: int) -> None:
            await redis.hincrby(keys.replay_progress(generation), "applied", n)

        try:
            return await _rebuild(settings, redis, keys, partitions=partitions, start=span.start,
                                  from_timestamp_ms=from_timestamp_ms, on_batch=counted, parallel=True, fenced=fenced,
                                  partition_count=span.placed_over, keep_changes=keep_changes, stop=span.stop), None
        except StraySubject as stray:
            return Rebuilt(stray.events, stray.changes, stray.change_count), str(stray)
    finally:
        await redis.aclose()


def _job_pool(processes: int) -> ProcessPoolExecutor:
    """The job processes of a replay in several, started at once (each a new interpreter importing
    the rules core, the codecs and the clients: 0.37 s measured), and kept for a second, fenced pass
    (``replay``). Started ignoring SIGINT, as Python then leaves it: a terminal's Ctrl-C reaches the
    whole process group, and a job interrupted while it started printed a traceback; the replay
    stops them itself (:func:`_stop_pool`). Measured: started before the replay's checks instead of
    after them, on a 2-core machine, they competed with the checks for the cores, and the whole
    command took as long (4.22-4.37 s for 40,000 inputs, against 4.09-4.59 s started after)."""
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_end_with_parent, initargs=(os.getpid(),))
    with _sigint_ignored():
        for _ in range(processes):  # one process started per task while none is idle
            try:
                pool.submit(os.getpid)
            except (BrokenProcessPool, ValueError) as exc:
                if isinstance(exc, ValueError) and not _spawn_failed(exc):
                    raise
                # a process ended while the others started (seen: killed at once, under load): the
                # pool refuses the first job, where it is said in one line (_rebuild_in_processes)
                break
    return pool


def _spawn_failed(exc: ValueError) -> bool:
    """A process of the pool could not be started because another one had just been killed: the
    spawn is refused with ``bad value(s) in fds_to_keep`` (the dead process's handle closed under it;
    seen in CI: `creditstream replay` ended with that line alone, exit 2)."""
    return "fds_to_keep" in str(exc)


GENERATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What ``--generation`` may be: no space, ``*``, ``?``, ``[`` or ``:`` (a key pattern's or a key's
separators: docs/operations.md deletes a generation's keys with ``--scan --pattern``)."""


class ReplayStopped(RuntimeError):
    """A replay stopped part-way for a reason outside the log (``creditstream replay`` exits 1 with
    ``str()``, one line): its generation is marked failed, never switched to."""


MEMORY_RESERVE_MIN = 64 << 20
MEMORY_RESERVE_SHARE = 0.05


def memory_reserve(maxmemory: int) -> int:
    """What a replay leaves free under Redis's ``maxmemory`` for the live workers: 5% of it, at
    least 64 MiB (a replay's batch of ``replay_batch`` inputs writes a few MB between two checks)."""
    return max(MEMORY_RESERVE_MIN, int(maxmemory * MEMORY_RESERVE_SHARE))


class RedisNearlyFull(ReplayStopped):
    """A replay stopped before its new generation filled Redis: at ``maxmemory`` (noeviction, as
    creditstream requires) Redis refuses every write, the live workers' too, and the pipeline stalls
    until memory is freed; the creditstream user may not delete keys (deploy/redis.acl), so the
    failed generation's keys would hold that memory until an administrator deletes them. One
    message string: the exception crosses from a replay's job process to the command (pickled)."""

    @classmethod
    def of(cls, generation: str, namespace: str, used: int, maxmemory: int, *, started: bool = True,
           refused: bool = False) -> RedisNearlyFull:
        mib = 1 << 20
        where = (f"Redis refused its writes, full: {used / mib:,.0f} MiB used of its maxmemory "
                 f"{maxmemory / mib:,.0f} MiB" if refused else
                 f"Redis uses {used / mib:,.0f} MiB of its maxmemory {maxmemory / mib:,.0f} MiB, within the "
                 f"{memory_reserve(maxmemory) / mib:,.0f} MiB a replay leaves to the live workers")
        if not started:
            after = "Nothing was written"
        else:  # refused: Redis refuses the failed status too (a later replay marks the generation abandoned)
            after = (f"The generation is {'' if refused else 'marked failed and '}never switched to; its keys "
                     f"({namespace}:{generation}:*) can be deleted with the admin user")
        return cls(f"replay into generation {generation!r} {'stopped' if started else 'not started'}: {where} (a "
                   f"full Redis refuses the live workers' writes too, and the pipeline waits). {after}. A rebuild "
                   f"takes about as much memory again as the live generation: raise maxmemory, or delete older "
                   f"generations' keys, then run it again")


async def refused_as_full(redis, generation: str, namespace: str) -> RedisNearlyFull:
    """What a replay raises when Redis refused one of its writes as full (``OutOfMemoryError``)."""
    try:
        used, maxmemory = await redis_memory(redis)
    except Exception:  # noqa: BLE001 - the figures are only for the message
        used = maxmemory = 0
    return RedisNearlyFull.of(generation, namespace, used, maxmemory, refused=True)


async def redis_room(redis, generation: str, namespace: str, *, started: bool = True) -> tuple[int, int]:
    """Raise :class:`RedisNearlyFull` when Redis has a ``maxmemory`` and what it uses is within
    :func:`memory_reserve` of it; else (used_memory, maxmemory). Checked at a replay's start and
    before each of its batches."""
    used, maxmemory = await redis_memory(redis)
    if maxmemory and used > maxmemory - memory_reserve(maxmemory):
        raise RedisNearlyFull.of(generation, namespace, used, maxmemory, started=started)
    return used, maxmemory


class ReplayProcessDied(ReplayStopped):
    """A process of a replay in several ended before its part of the rebuild did: killed (by the
    kernel's out-of-memory killer, most often: SIGKILL) or crashed. The replay stops, its generation
    marked failed; ``str()`` is the one line ``creditstream replay`` prints: which process ended and
    how, whether the kernel's OOM killer acted meanwhile (creditstream/host.py ``oom_kills``), and
    how to run it again."""

    def __init__(self, generation: str, jobs: int, ended: list[tuple[int, int | None]],
                 oom_kills: int | None, replay_batch: int):
        self.generation, self.jobs, self.ended = generation, jobs, ended
        self.oom_kills, self.replay_batch = oom_kills, replay_batch
        super().__init__(self._line())

    def _line(self) -> str:
        how = ", ".join(f"pid {pid} {_ended_by(code)}" for pid, code in self.ended) or "its status unknown"
        killed = any(code == -signal.SIGKILL for _, code in self.ended)
        others = "the other was" if self.jobs == 2 else "the others were"
        fewer = f"--jobs {self.jobs - 1}" if self.jobs > 2 else "--jobs 1"
        memory = (f"each process is counted at ~{job_memory(self.replay_batch) >> 20} MiB (replay_batch "
                  f"{self.replay_batch}): run it again with fewer processes ({fewer}) or a smaller replay_batch "
                  f"(CREDITSTREAM_REPLAY_BATCH)")
        if self.oom_kills:
            cause = (f"the kernel's out-of-memory killer killed {self.oom_kills} process"
                     f"{'es' if self.oom_kills > 1 else ''} of this cgroup meanwhile: {memory}")
        elif self.oom_kills == 0:
            cause = ("this cgroup's out-of-memory killer did not kill it (its count did not move): run it again; "
                     "the log above has the process's last lines")
        elif killed:
            cause = f"if it was the kernel's out-of-memory killer, its log says so (dmesg): {memory}"
        else:
            cause = "run it again; the log above has the process's last lines"
        return (f"replay into generation {self.generation!r} stopped: one of its {self.jobs} processes ended "
                f"before its part of the rebuild ({how}); {others} stopped, nothing was switched, and the "
                f"generation is marked failed. {cause[0].upper()}{cause[1:]}")


def _ended_by(code: int | None) -> str:
    """A process's exit status in words: ``killed by SIGKILL``, ``exited with status 3``."""
    if code is None:
        return "ended, its status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def _ended_processes(pool: ProcessPoolExecutor, wait_s: float = 5.0) -> list[tuple[int, int | None]]:
    """(pid, exit status) of the pool's processes that ended by themselves: after one died, the pool
    stops the others with SIGTERM, so those are left out unless every one ended so, and so are the
    ones whose status this thread could not learn."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    deadline = time.monotonic() + wait_s
    for proc in procs:  # the pool is stopping them: their statuses are known in a moment
        proc.join(max(0.0, deadline - time.monotonic()))
    # a status is None a moment longer where the pool's own thread reaped the process first
    while any(proc.exitcode is None for proc in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    ended = [(proc.pid, proc.exitcode) for proc in procs]
    # None: reaped by the pool's own thread first (this one's wait then learns nothing)
    own = [(pid, code) for pid, code in ended if code is not None and code != -signal.SIGTERM]
    return own or [(pid, code) for pid, code in ended if code is not None] or ended


def _stop_pool(pool: ProcessPoolExecutor, *, failed: bool) -> None:
    """After the rebuild: the processes end. After a failure or an interruption: stopped now, and
    waited for (a pool left to shut down at interpreter exit wrote to its closed wake-up pipe there:
    a traceback after Ctrl-C, "Bad file descriptor")."""
    if failed:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
    pool.shutdown(wait=True, cancel_futures=failed)


async def _rebuild_in_processes(settings: Settings, redis, keys: Keys, groups: list[list[int]], span: Span,
                                from_timestamp_ms: int | None, bar: Progress, *, fenced: bool,
                                pool: ProcessPoolExecutor, keep_changes: bool,
                                shown: int = 0) -> tuple[Rebuilt, list[str]]:
    """The rebuild in one process per group of partitions, of ``pool`` (they share nothing but
    Redis: each writes its partitions' positions, its subjects' states and lists). The progress bar
    follows the ``applied`` count the processes keep in Redis. If one fails, the others are stopped.
    Returns what they applied together, and the stray inputs that stopped processes (unfenced).
    ``span``: the stretch of the log, and the count its subjects are placed over (streams/placement.py);
    ``shown``: the ``applied`` count the bar already shows (the spans before)."""
    loop = asyncio.get_running_loop()
    progress_key = keys.replay_progress(keys.generation)
    log.info("replay in processes", jobs=len(groups), partitions=groups)
    oom_before = host.oom_kills()
    started: list[asyncio.Future] = []
    try:
        try:
            for g in groups:  # a pool already broken (a process killed before it had work) refuses here
                started.append(loop.run_in_executor(pool, _rebuild_job, settings, keys.generation, g, span,
                                                    from_timestamp_ms, fenced, keep_changes))
            jobs = asyncio.gather(*started)
            while not jobs.done():
                await asyncio.wait([jobs], timeout=0.25)
                applied = int(await redis.hget(progress_key, "applied") or 0)
                bar.advance(applied - shown)
                shown = applied
            results = jobs.result()
        except (BrokenProcessPool, ValueError) as exc:
            if isinstance(exc, ValueError) and not _spawn_failed(exc):
                raise
            # a process was killed (the kernel's OOM killer: SIGKILL) or crashed, at work or before it
            # had any (another then could not be started): said as such, not as the pool's traceback
            ended = await asyncio.to_thread(_ended_processes, pool)
            oom_after = host.oom_kills()
            oom = None if oom_before is None or oom_after is None else oom_after - oom_before
            log.error("replay process ended", generation=keys.generation, ended=ended, oom_kills=oom)
            raise ReplayProcessDied(keys.generation, len(groups), ended, oom, settings.replay_batch) from None
    except BaseException:
        for future in started:  # their failures are the one raised here, or an interruption's: retrieved
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
        if "jobs" in locals():
            jobs.add_done_callback(lambda f: f.cancelled() or f.exception())
        _stop_pool(pool, failed=True)  # the other jobs stopped now
        raise
    return (Rebuilt(sum(done.events for done, _ in results), [c for done, _ in results for c in done.changes],
                    sum(done.change_count for done, _ in results)),
            [stray for _, stray in results if stray])


async def replay(settings: Settings, *, generation: str | None = None, verify: bool = False,
                 switch: bool = False, start: dict[int, int] | None = None, from_timestamp_ms: int | None = None,
                 progress: bool | None = None, jobs: int | None = None,
                 keep_changes: bool | None = None) -> ReplayResult:
    """Rebuild into a fresh generation (module doc). ``jobs``: processes rebuilding partitions side
    by side (default: :func:`default_jobs`, one per CPU, at most one per partition and as many as
    the memory this process may take holds; 1: in this process). ``keep_changes``: the list changes'
    ids in ``ReplayResult.changes`` (default: with ``verify``, which compares them); otherwise they
    are only counted (``change_count``), and a replay's memory does not grow with its log."""
    if keep_changes is None:
        keep_changes = verify
    if generation is not None and not GENERATION_NAME.fullmatch(generation):
        raise ValueError(f"--generation {generation!r}: letters, digits, '.', '_' and '-' only (at most 64): "
                         "the name is part of every key of the generation, and deleting them takes a pattern")
    topics = Topics(settings)
    generation = generation or f"replay-{int(time.time() * 1000)}"
    keys = Keys(settings.namespace, generation, require_pseudonym_key(settings.pseudonym_key))
    redis = redis_client(settings)
    result = ReplayResult(generation)
    alive: asyncio.Future | None = None
    ended = asyncio.Event()
    pool: ProcessPoolExecutor | None = None
    failed = True
    try:
        # RedisUnsuitable: a rebuilt state could vanish, or never be written; or the ACL refuses the namespace
        unsure = await check_redis(redis, settings.namespace)
        if unsure:
            log.warning("redis set-up", problem=unsure)
        used, maxmemory = await redis_room(redis, generation, settings.namespace, started=False)
        if maxmemory and maxmemory - memory_reserve(maxmemory) - used < used:
            # a rebuild writes about as much again as the live generation, most of what Redis holds
            log.warning("replay: Redis may not hold a second generation; the replay stops before it fills it",
                        used_mib=used >> 20, maxmemory_mib=maxmemory >> 20,
                        reserve_mib=memory_reserve(maxmemory) >> 20)
        if await redis.exists(keys.subjects, *(keys.position(p) for p in range(settings.partitions))):
            # (positions without subjects: a generation its workers wrote after Redis lost the rest)
            raise ValueError(f"generation {generation!r} already has state; choose another name")
        live = await resolve_keys(redis, settings.namespace)
        if live.generation == generation:
            raise ValueError(f"generation {generation!r} is the live one")
        if switch:
            await _refuse_if_workers_run(redis, live)
        all_partitions = await kafka.partitions_of(settings, topics.subject_events)
        # the workers place subjects over the count recorded (streams/placement.py), not the topic's now
        placed_over = (await placement.recorded(redis, keys, [topics.subject_events])).get(
            topics.subject_events) or len(all_partitions)
        unknown = sorted(set(start or ()) - set(all_partitions))
        if unknown:  # read from its start otherwise: a mistyped partition replayed it all, silently
            raise ValueError(f"--from-offsets names partition(s) {', '.join(map(str, unknown))}, which "
                             f"{topics.subject_events} does not have (it has {len(all_partitions)}: "
                             f"{', '.join(map(str, all_partitions)) or 'none'})")
        if start is None and from_timestamp_ms is None:
            await _refuse_a_log_cut_short(settings, topics.subject_events, all_partitions)
            await _refuse_a_log_behind_the_state(settings, redis, live, topics.subject_events, all_partitions,
                                                 switch=switch)
        if start:  # an offset past a partition's end replays nothing of it: said, not silent
            ends = await kafka.log_ends(settings, topics.subject_events)
            past = {p: (o, ends[p]) for p, o in sorted(start.items()) if p in ends and o > ends[p]}
            if past:
                log.warning("--from-offsets: past the end of the partition: nothing of it is replayed",
                            partitions={p: {"offset": o, "log_end": end} for p, (o, end) in past.items()})
        result.abandoned = await mark_abandoned(redis, keys)
        await redis.set(keys.replay_alive(generation), b"1", ex=REPLAY_ALIVE_TTL_S)
        alive = asyncio.ensure_future(_stay_alive(redis, keys.replay_alive(generation), ended))
        await redis.hset(keys.replay_progress(generation), mapping={"status": "running", "started": int(time.time())})
        await redis.sadd(keys.replays, generation)  # found by the next replay if this one is killed
        await complete_indexes(redis, keys, fresh_generation=True)  # a new generation: its lists come from its batches
        bar = Progress(await _log_size(settings, topics.subject_events), enabled=progress)
        t0 = time.perf_counter()  # the rebuild's time: the job processes' start-up included
        if from_timestamp_ms is not None and start is None:
            start = await kafka.offsets_at(settings, topics.subject_events, from_timestamp_ms)
            if start is not None:
                from_timestamp_ms = None  # Apache Kafka found the offsets: nothing to filter
        if jobs is None:
            chosen = default_jobs(len(all_partitions), settings.replay_batch)
            jobs = chosen.count
            fields = {"jobs": chosen.count, "bound": chosen.bound, "cpus": chosen.cpus,
                      "partitions": len(all_partitions), "job_memory_mib": chosen.job_memory >> 20,
                      "memory_available_mib": None if chosen.memory_available is None
                      else chosen.memory_available >> 20}
            if chosen.bound == "memory":  # fewer than both the CPUs and the partitions
                log.warning("replay processes: fewer than the CPUs, for the memory this process may take "
                            "(--jobs N chooses; a smaller replay_batch takes less)", **fields)
            else:
                log.info("replay processes chosen", **fields)
        groups = job_partitions(all_partitions, jobs)
        result.jobs = max(len(groups), 1)
        if len(groups) > 1:
            pool = _job_pool(len(groups))
        # a topic whose partition count was raised: a subject's earlier inputs on its old partition,
        # its later ones on its new one; read span by span, each applied before the next, they are
        # applied in the order the workers applied them (streams/placement.py)
        changes = await placement.changes(redis, keys, topics.subject_events)
        spans = placement.spans(changes, placed_over, start)
        if changes:
            log.info("replay in spans: the subject-event log's partition count was raised", spans=len(spans),
                     placed_over=[span.placed_over for span in spans])
        done = Rebuilt(0, [], 0)

        async def advance(n: int) -> None:  # in this process (--jobs 1)
            _stop_if_interrupted()
            bar.advance(n)
            await redis.hincrby(keys.replay_progress(generation), "applied", n)

        for span in spans:
            if pool is None:
                more = await _rebuild(settings, redis, keys, partitions=None, start=span.start, stop=span.stop,
                                      from_timestamp_ms=from_timestamp_ms, on_batch=advance, keep_changes=keep_changes)
            else:
                # every subject's inputs on its one partition, as the workers produce them: the processes
                # never write the same subject and need no fence. Checked input by input: a process that
                # meets one elsewhere (the partition count changed without `creditstream partitions`,
                # or the pseudonym key changed) stops before it, and a second pass, fenced (each
                # transaction WATCHes its subjects: ~20% slower), goes on from the positions the first
                # recorded (what they cover is skipped)
                more, strays = await _rebuild_in_processes(
                    settings, redis, keys, groups, span, from_timestamp_ms, bar, fenced=False, pool=pool,
                    keep_changes=keep_changes, shown=done.events)
                if strays:
                    log.warning("a subject's inputs sit on more than one partition: the rest of the rebuild is "
                                "fenced", generation=generation, found=strays)
                    bar.close()
                    await redis.hset(keys.replay_progress(generation), "applied", done.events)
                    bar = Progress(bar.total, enabled=progress)
                    bar.advance(done.events)
                    result.fenced = True
                    again, _ = await _rebuild_in_processes(
                        settings, redis, keys, groups, span, from_timestamp_ms, bar, fenced=True, pool=pool,
                        keep_changes=keep_changes, shown=done.events)
                    # the second pass read the span again (what the first covered skipped)
                    more = Rebuilt(again.events, more.changes + again.changes, more.change_count + again.change_count)
            done = Rebuilt(done.events + more.events, done.changes + more.changes,
                           done.change_count + more.change_count)
        result.events, result.changes, result.change_count = done
        if pool is not None:
            _stop_pool(pool, failed=False)
            pool = None
        result.seconds = time.perf_counter() - t0
        bar.close()
        await redis.hset(keys.replay_progress(generation),
                         mapping={"status": "complete", "events": result.events, "finished": int(time.time())})
        await redis.srem(keys.replays, generation)  # ended: nothing for the next replay to check
        if verify:
            result.live_offset = await _await_live_positions(redis, live, keys, all_partitions)
            result.differences = await diff_generations(redis, live, keys)
        if switch:
            await _refuse_if_workers_run(redis, live)  # none may have started during the rebuild
            await redis.set(keys.current_generation, generation)
            result.switched = True
        failed = False
    except BaseException as exc:
        if alive is not None:  # the rebuild started: say how it ended, unless it had completed
            with contextlib.suppress(Exception):
                if await redis.hget(keys.replay_progress(generation), "status") == b"running":
                    await redis.hset(keys.replay_progress(generation),
                                     mapping={"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]})
                    await redis.srem(keys.replays, generation)
        if isinstance(exc, OutOfMemoryError):  # a write of the replay's own refused, Redis full: said so
            raise await refused_as_full(redis, generation, settings.namespace) from None
        raise
    finally:
        if pool is not None:
            _stop_pool(pool, failed=failed)
        if alive is not None:
            ended.set()
            with contextlib.suppress(Exception):
                await alive
        await redis.aclose()
    return result


async def _refuse_a_log_cut_short(settings: Settings, topic: str, partitions: list[int]) -> None:
    """A whole replay rebuilds from the log's first input: where a partition's log start is past 0,
    the inputs before it were deleted (the topic's retention, DeleteRecords), and the rebuild would
    lack them while the live state holds them; switched to, it would lose them. Refused (ValueError:
    exit 2), before anything is written. Read before: from the earliest record left, silently."""
    from aiokafka import TopicPartition

    starts = await kafka.log_starts(settings, [TopicPartition(topic, p) for p in partitions])
    cut = {tp.partition: offset for tp, offset in sorted(starts.items()) if offset > 0}
    if cut:
        where = ", ".join(f"partition {p} starts at offset {offset:,}" for p, offset in cut.items())
        raise ValueError(
            f"the subject-event log {topic} has lost its first inputs ({where}): they were deleted (the "
            f"topic's retention, or DeleteRecords), so a rebuild from it would lack them, while the live state "
            f"holds them; nothing was written. Keep the live state (and back up Redis: docs/operations.md, "
            f"Backups), and give the topic retention.ms=-1 (`creditstream topics --apply`). What is left can "
            f"be replayed for inspection with --from-offsets (a partial replay, never switched to)")


async def _refuse_a_log_behind_the_state(settings: Settings, redis, live: Keys, topic: str, partitions: list[int],
                                         *, switch: bool) -> None:
    """The live state records positions past the subject-event log's end: it was not built from this
    log (the topic created again, an embedded Tansu broker restarted with an empty log, another
    cluster), and a rebuild from it would lose every subject the log no longer holds. A switch to it
    is refused (ValueError: exit 2) before anything is written (seen: `replay --switch`, as the
    worker's stop advised, replayed 0 events and readers saw 0 subjects); a rebuild to inspect or
    verify goes on, said."""
    positions = await _positions(redis, live, partitions)
    if not any(positions.values()):
        return
    ends = await kafka.log_ends(settings, topic)
    ahead = {p: (pos, ends.get(p, 0)) for p, pos in sorted(positions.items()) if pos > ends.get(p, 0)}
    if not ahead:
        return
    where = ", ".join(f"partition {p}: state at {pos:,}, log ends at {end:,}" for p, (pos, end) in ahead.items())
    what = (f"the live state records positions past the end of {topic} ({where}): it was not built from this "
            f"log (the topic created again, an embedded Tansu broker started anew with an empty log, another "
            f"cluster), so a rebuild from it lacks every subject the log no longer holds")
    if switch:
        raise ValueError(f"{what}; nothing was written, nothing switched. Keep the live state for its "
                         f"readers; if the log was lost, back it up, start from an empty Redis and send the "
                         f"inputs again (docs/operations.md, Redis ahead of the log)")
    log.warning("replay: " + what + "; the rebuild goes on (not switched to)")


VERIFY_CATCH_UP_S = 30.0
"""How long ``--verify`` waits for running workers to apply what the rebuild applied."""


async def _positions(redis, keys: Keys, partitions: list[int]) -> dict[int, int]:
    values = await redis.mget([keys.position(p) for p in partitions]) if partitions else []
    return {p: int(v) if v is not None else 0 for p, v in zip(partitions, values)}


async def _await_live_positions(redis, live: Keys, rebuilt: Keys, partitions: list[int],
                                wait_s: float | None = None) -> dict[int, int]:
    """Before ``--verify`` compares: wait (up to :data:`VERIFY_CATCH_UP_S`) until the live
    generation's workers have applied the subject-event log as far as the rebuild did, so that a
    worker merely behind the log is not reported as a difference. Returns, per partition where they
    still differ, the live position minus the rebuilt one."""
    wait_s = VERIFY_CATCH_UP_S if wait_s is None else wait_s
    target = await _positions(redis, rebuilt, partitions)
    deadline = time.monotonic() + wait_s
    while True:
        now = await _positions(redis, live, partitions)
        behind = {p: now[p] - target[p] for p in partitions if now[p] < target[p]}
        if not behind or time.monotonic() >= deadline:
            break
        log.info("verify: waiting for the live workers to catch up", events_behind=-sum(behind.values()))
        await asyncio.sleep(0.5)
    return {p: now[p] - target[p] for p in partitions if now[p] != target[p]}


async def _subject_ids(redis, keys: Keys) -> set[str]:
    """The generation's subjects (storage ids), read in pages (``SSCAN``): one ``SMEMBERS`` of a
    million members is one reply of tens of MB that holds Redis's thread meanwhile."""
    return {s.decode() async for s in redis.sscan_iter(keys.subjects, count=1000)}


async def _lists(redis, keys: Keys) -> dict[str, set[str]]:
    lists: dict[str, set[str]] = {}
    for name in await list_names(redis, keys):
        members = {m.decode() for m in await redis.smembers(keys.list_members(name))}
        if members:
            lists[name] = members
    return lists


DIFF_CHUNK = 1000  # subjects whose states ``diff_generations`` holds at a time, per generation


async def diff_generations(redis, live: Keys, rebuilt: Keys) -> list[str]:
    """Every key whose content differs between two generations, as readable lines. The states are
    compared :data:`DIFF_CHUNK` subjects at a time, both generations' side by side (decoded: compact
    or JSON, whole or split), so that only the subjects' ids are held throughout. Before, every state
    of both generations was held decoded at once (about 4 times its JSON size: sinks/redis_state.py),
    which grows with the subjects without bound."""
    out = []
    ids = sorted(await _subject_ids(redis, live) | await _subject_ids(redis, rebuilt))
    bar = Progress(len(ids), label="verify", unit="subjects")  # (a bar on a terminal, lines elsewhere)
    for i in range(0, len(ids), DIFF_CHUNK):
        chunk = ids[i:i + DIFF_CHUNK]
        bar.advance(len(chunk))
        for sid, a, b in zip(chunk, await read_states(redis, live, chunk), await read_states(redis, rebuilt, chunk)):
            a, b = comparable(a), comparable(b)
            if a != b:
                what = "missing in the rebuild" if b is None else "missing live" if a is None else (
                    "differs in " + ", ".join(sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))))
                out.append(f"{live.subject(sid)}: {what}")
    a_lists, b_lists = await _lists(redis, live), await _lists(redis, rebuilt)
    for name in sorted(set(a_lists) | set(b_lists)):
        a, b = a_lists.get(name, set()), b_lists.get(name, set())
        if a != b:
            out.append(f"{live.list_members(name)}: live has {sorted(a - b)} more, rebuild has {sorted(b - a)} more")
    bar.close()
    return out


async def live_changes(settings: Settings) -> list[tuple[str, str, int]]:
    """(subject, change id, sequence) of every message on the list-change topic, in log order per
    partition; where its partition count was raised, span by span (streams/placement.py), so that
    each subject's changes come in the order they were emitted. The sequence is 0 for a change
    written before changes carried one."""
    topic = Topics(settings).list_changes
    redis = redis_client(settings)
    try:
        changes = await placement.changes(redis, Keys(settings.namespace), topic)
    finally:
        await redis.aclose()
    out = []
    for span in placement.spans(changes, 0):
        async for batch in kafka.read_to_end(settings, topic, start=dict(span.start) if span.start else None,
                                             stop=span.stop):
            for msg in batch:
                headers = dict(msg.headers)
                out.append((msg.key.decode(), headers["change_id"].decode(), int(headers.get("sequence") or 0)))
    return out


def comparable(state: dict | None) -> dict | None:
    """What of a state a rebuild must equal: not its announcements' ``sequence`` (each process numbers
    them by its own clock, agents/subject.py ``announcement_sequence``), not its revision counter
    (``version``: how many inputs changed it, which depends on what arrived in which order, e.g. two
    records kept apart before an upgrade merged them), nor the order in which its records' origins
    were seen (compared as sets)."""
    state = without_sequence(state)
    if state is None:
        return None
    out = {k: v for k, v in state.items() if k != "version"}
    records = out.get("records")
    if records:
        out["records"] = {key: dict(entry, seen=sorted(entry["seen"])) if isinstance(entry, dict)
                          and isinstance(entry.get("seen"), list) else entry for key, entry in records.items()}
    return out


def without_sequence(state: dict | None) -> dict | None:
    """A state without its announcements' ``sequence`` (agents/subject.py ``announcement_sequence``):
    each process numbers them by its own clock, so it is no part of what a rebuild must equal."""
    if state is None or "sequence" not in state:
        return state
    return {k: v for k, v in state.items() if k != "sequence"}


def per_subject(changes: Sequence[tuple[str, str] | tuple[str, str, int]]) -> dict[str, list[str]]:
    """Change ids per subject in order, duplicates (at-least-once re-emissions) dropped, and so are
    stale copies (:func:`stale_copies`)."""
    out: dict[str, list[str]] = {}
    seen: set[str] = set()
    highest: dict[str, int] = {}
    for subject, cid, *sequence in changes:
        if sequence:
            if sequence[0] < highest.get(subject, 0):
                continue
            highest[subject] = sequence[0]
        if cid not in seen:
            seen.add(cid)
            out.setdefault(subject, []).append(cid)
    return out


def stale_copies(changes: Sequence[tuple[str, str, int]]) -> int:
    """Messages whose sequence is below one already sent for their subject: what a worker paused
    between its state write and its produce sent on resuming (agents/subject.py
    ``announcement_sequence``); a subscriber that folds as docs/events.md says skips them."""
    highest: dict[str, int] = {}
    n = 0
    for subject, _cid, sequence in changes:
        if sequence < highest.get(subject, 0):
            n += 1
        else:
            highest[subject] = sequence
    return n
