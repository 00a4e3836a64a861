"""The check-audit sink: every credit check the API answers (``GET``/``POST /check``) as an Avro
``CheckAudit`` record on the check-audit topic, so that 奖惩到位 can be evaluated (who checked whom,
for which matter, when, with what outcome).

A check is answered first and recorded after: :meth:`CheckAuditSink.add` only appends the record
to an in-memory buffer (no I/O, never raises, never waits); a background task produces the buffer
every ``check_audit_flush_ms`` and, once the broker has acknowledged a batch, adds it to the counters
``creditstream report`` shows (Redis hash ``Keys.check_counts``: ``<matter>:<outcome>`` -> count).
A slow or unreachable broker therefore never delays an answer; the records wait in the buffer
(kept in order, retried every round) until it holds ``check_audit_buffer`` records, and then new
records are **dropped**: counted in ``creditstream_check_audit_dropped_total{reason="buffer_full"}``
and in the ``dropped`` counter of the hash, and logged (one line per round with the number). On
shutdown the buffer is flushed for a few seconds; what is still unsent is dropped the same way
(``reason="shutdown"``). Delivery is at least once (a batch retried after a lost ack repeats its
records; ``check_id`` tells them apart).

Personal information (RULES.md 7): the record names the subject by its **storage id**
(sinks/keys.py :func:`storage_id`): an organisation's USCC as it is, anything else (a natural
person's ID number, a code no subject has) only as its keyed pseudonym ``p.<32 hex>``, the same
pseudonym as the subject's Redis key and its list-change message key, so checks can be joined with
list changes without an ID number in clear. The message key is that storage id too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter, deque
from typing import NamedTuple

import structlog

from creditstream import metrics
from creditstream.connections import make_codec
from creditstream.settings import Settings
from domain.kinds import CHECK_AUDIT_SCHEMA
from sinks.kafka import KafkaSink
from sinks.keys import Keys, storage_id
from streams import kafka
from streams.codec import AvroCodec
from streams.topics import Topics

log = structlog.get_logger("creditstream.sinks.check_audit")

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
MAX_SEND = 5_000
"""Most records produced in one round (the rest wait for the next)."""
SEND_TIMEOUT_S = 10.0
"""How long one round waits for the broker's acks before keeping the records for the next."""
SHUTDOWN_FLUSH_S = 5.0
ENCODE_SLICE = 64
"""Records encoded between two yields to the event loop (the API's answers share it)."""


class CheckRecord(NamedTuple):
    """One check as the API hands it over (``subject``: the clear id; pseudonymised when encoded)."""

    check_id: str
    client: str
    checked_at_ms: int
    subject: str
    subject_kind: str      # uscc / resident_id / unknown
    matter: str
    at: str                # the China date asked about, ISO
    outcome: str
    measures: tuple[str, ...]
    rules_version: str
    batch_id: str | None


def audit_value(rec: CheckRecord, stored_id: str) -> dict:
    """The Avro ``CheckAudit`` record (schemas/check_audit.avsc), logical types as Avro's ints."""
    return {"check_id": rec.check_id, "client": rec.client, "checked_at": rec.checked_at_ms, "subject": stored_id,
            "subject_kind": rec.subject_kind, "matter": rec.matter,
            "at": dt.date.fromisoformat(rec.at).toordinal() - _EPOCH_ORDINAL, "outcome": rec.outcome,
            "measures": list(rec.measures), "rules_version": rec.rules_version, "batch_id": rec.batch_id}


class CheckAuditSink:
    """Buffers check records and produces them in the background (module docstring).

    ``redis``: the client the counters are written with (the caller owns it). ``producer``: an
    already started producer the caller owns (tests, the benchmark); None: the sink starts its own
    in the background, retrying every round while the broker is unreachable."""

    def __init__(self, settings: Settings, redis, *, producer=None, codec: AvroCodec | None = None):
        self.settings = settings
        self.redis = redis
        self.topic = Topics(settings).check_audit
        self.counts_key = Keys(settings.namespace).check_counts
        self.flush_s = settings.check_audit_flush_ms / 1000
        self.capacity = settings.check_audit_buffer
        self._pending: deque[CheckRecord] = deque()
        self._dropped: Counter[str] = Counter()      # reason -> not yet logged
        self._counts: Counter[str] = Counter()       # hash field -> not yet written to Redis
        self._writing: tuple[str, dict[str, int]] | None = None  # (id, counts) sent, not yet answered
        self._writer = uuid.uuid4().hex[:16]  # this process's writes of the counters (Keys.check_counts_written)
        self._write_seq = 0
        self.counts_written_key = Keys(settings.namespace).check_counts_written(self._writer)
        self._add_counts = redis.register_script(_ADD_COUNTS)
        self._producer = producer
        self._owns_producer = producer is None
        self._producer_started = producer is not None
        self._codec = codec
        self._codec_ready = False
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.delivered = 0

    # --- the request path -----------------------------------------------------------------
    def add(self, rec: CheckRecord) -> None:
        """Buffer one check record; drops it (counted, logged by the flusher) if the buffer is full."""
        if len(self._pending) >= self.capacity:
            self._drop("buffer_full")
            return
        self._pending.append(rec)
        metrics.CHECK_AUDIT_PENDING.set(len(self._pending))

    def _drop(self, reason: str, n: int = 1) -> None:
        metrics.CHECK_AUDIT_DROPPED.labels(reason).inc(n)
        self._dropped[reason] += n
        self._counts["dropped"] += n

    def __len__(self) -> int:
        return len(self._pending)

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="check-audit")

    async def stop(self, timeout_s: float = SHUTDOWN_FLUSH_S) -> None:
        """Stop the background task, flush what is buffered for up to ``timeout_s``, drop the rest
        (counted and logged), stop the producer if the sink started it."""
        self._stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if self._task is not None:
            # let a round in flight finish (cancelled mid-send, its records would be sent again)
            task, self._task = self._task, None
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        try:
            await asyncio.wait_for(self._drain(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            pass
        if self._pending:
            self._drop("shutdown", len(self._pending))
            self._pending.clear()
            metrics.CHECK_AUDIT_PENDING.set(0)
        self._log_drops()
        try:
            await asyncio.wait_for(self._write_counts(), 2)
        except Exception as exc:  # noqa: BLE001 - Redis down at shutdown: the counts are lost, logged
            unwritten = Counter(self._counts) + Counter(self._writing[1] if self._writing else {})
            log.warning("check counts not written at shutdown", error=type(exc).__name__, counts=dict(unwritten))
        if self._owns_producer and self._producer_started:
            try:
                await asyncio.wait_for(self._producer.stop(), 10)
            except Exception as exc:  # noqa: BLE001
                log.info("check-audit producer did not stop cleanly", error=type(exc).__name__)
            self._producer_started = False

    async def _drain(self) -> None:
        while self._pending:
            if not await self.flush():
                await asyncio.sleep(0.2)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self.flush_s)
            except TimeoutError:
                pass
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - never let the flusher die: the records stay buffered
                log.exception("check-audit flush failed; retrying next round")

    # --- the background flush -------------------------------------------------------------
    async def flush(self) -> bool:
        """Produce up to :data:`MAX_SEND` buffered records and count them once acknowledged. False
        if the broker (or the registry) did not take them: they stay buffered for the next round."""
        self._log_drops()
        if not self._pending:
            await self._write_counts_quietly()
            return True
        if not await self._ready():
            return False
        batch = [self._pending[i] for i in range(min(MAX_SEND, len(self._pending)))]
        sink = KafkaSink(self._producer)
        assert self._codec is not None
        key = self.settings.pseudonym_key
        for n, rec in enumerate(batch, 1):
            if n % ENCODE_SLICE == 0:
                await asyncio.sleep(0)  # let answers through: encoding a large backlog must not stall them
            stored = storage_id(rec.subject, key) if key or rec.subject_kind == "uscc" else "p.unkeyed"
            value = self._codec.encode(CHECK_AUDIT_SCHEMA, audit_value(rec, stored), topic=self.topic)
            sink.add(self.topic, value, key=stored.encode(), timestamp_ms=rec.checked_at_ms)
        try:
            await asyncio.wait_for(sink.flush(), SEND_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - slow or down: keep them, retry next round
            log.warning("check-audit records not delivered yet; kept for the next round",
                        pending=len(self._pending), error=type(exc).__name__)
            return False
        for _ in batch:
            self._pending.popleft()
        metrics.CHECK_AUDIT_PENDING.set(len(self._pending))
        self.delivered += len(batch)
        for rec in batch:
            self._counts[f"{rec.matter}:{rec.outcome}"] += 1
        await self._write_counts_quietly()
        return True

    async def _ready(self) -> bool:
        """The producer started and the schema registered (a remote registry), else False (logged)."""
        try:
            if self._codec is None:
                self._codec = make_codec(self.settings)
            if not self._producer_started:
                if self._producer is None:
                    self._producer = kafka.producer(self.settings, linger_ms=5)
                await asyncio.wait_for(self._producer.start(), SEND_TIMEOUT_S)
                self._producer_started = True
            if not self._codec_ready:
                await self._codec.ensure_writer(CHECK_AUDIT_SCHEMA, self.topic)
                self._codec_ready = True
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the broker or registry is unreachable: next round
            if self._owns_producer and not self._producer_started and self._producer is not None:
                try:
                    await asyncio.wait_for(self._producer.stop(), 5)
                except Exception:  # noqa: BLE001 - it never started
                    pass
                self._producer = None
            log.warning("check-audit producer not ready; records stay buffered", pending=len(self._pending),
                        error=type(exc).__name__)
            return False

    async def _write_counts(self) -> None:
        """Add the counts delivered since the last write to the counters, at most once: a write is
        sent with an id (this process, a sequence number) and sent again, the same, until Redis
        answers it; the script skips a write Redis already applied. Seen (an audit): with Redis
        stalled (SIGSTOP) a write timed out, was kept and sent again, and Redis applied both once it
        went on: ``creditstream report`` counted 787 checks where the topic held 711."""
        if self._writing is None:
            if not self._counts:
                return
            self._write_seq += 1
            self._writing = (f"{self._writer}.{self._write_seq}", dict(self._counts))
            self._counts.clear()
        write_id, counts = self._writing
        args: list[object] = [write_id]
        for field, n in counts.items():
            args += [field, n]
        await self._add_counts(keys=[self.counts_key, self.counts_written_key], args=args)
        self._writing = None
        if self._counts:  # counted while the write was in flight: the next write
            await self._write_counts()

    async def _write_counts_quietly(self) -> None:
        try:
            await self._write_counts()
        except Exception as exc:  # noqa: BLE001 - Redis down: kept, written with the next batch
            log.warning("check counts not written yet; kept for the next round", error=type(exc).__name__)

    def _log_drops(self) -> None:
        if self._dropped:
            log.warning("check-audit records dropped: the check answers were given, their audit records are lost",
                        dropped=dict(self._dropped), capacity=self.capacity)
            self._dropped.clear()


_ADD_COUNTS = """
-- One write of an API process's check counters, applied at most once: KEYS[1] the counters' hash,
-- KEYS[2] the id of this writer's last write Redis applied; ARGV[1] this write's id, then field, n pairs.
-- A write sent again (its first sending timed out: Redis was stalled, not down, and applied it
-- later) finds its own id there and changes nothing.
if redis.call('GET', KEYS[2]) == ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[2], ARGV[1], 'EX', 86400)
return 1
"""


async def check_counts(redis, namespace: str) -> dict:
    """The counters the sink writes: ``{"by_matter": {matter: {outcome: n}}, "dropped": n}``."""
    raw = await redis.hgetall(Keys(namespace).check_counts)
    by_matter: dict[str, dict[str, int]] = {}
    dropped = 0
    for field, n in sorted((k.decode(), int(v)) for k, v in raw.items()):
        if field == "dropped":
            dropped = n
            continue
        matter, _, outcome = field.rpartition(":")
        by_matter.setdefault(matter, {})[outcome] = n
    return {"by_matter": by_matter, "dropped": dropped}
