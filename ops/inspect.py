"""The read side (查询): a subject's state and lists, the lists and their members, and the list changes
since a cursor. The CLI (``creditstream subject|lists|list``) and the HTTP API (creditstream/api.py)
both read through :class:`Reader`; neither reads Redis keys or the list-change topic itself.

A subject is found by any identifier it is known by: its own id (USCC or resident ID number), or
a legacy number the registry index maps to a USCC. Redis holds subjects under their storage ids
(sinks/keys.py: a natural person's ID number only as its keyed pseudonym): the code a user types is
normalised and mapped with the same function (``pseudonym_key`` needed for a person), and a list's
members are shown by the clear id their state keeps.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

import orjson
import redis.exceptions as rexc
import structlog
from aiokafka import ConsumerRecord, TopicPartition

from creditstream.connections import make_codec, redis_client
from creditstream.settings import Settings
from domain.attach import LOOKUP_KINDS, lookup_key
from domain.identifiers import normalise_code, resident_id_of_legacy
from sinks.keys import Keys, is_pseudonym, resolve_keys
from sinks.keys import list_names as generation_list_names
from sinks.redis_state import read_states
from sinks.state_codec import decode_state
from streams import kafka
from streams.codec import AvroCodec, DecodeError
from streams.topics import Topics

log = structlog.get_logger("creditstream.inspect")


class BadCursor(ValueError):
    """A cursor this read side did not hand out."""


class ChangesPage(NamedTuple):
    records: list[ConsumerRecord]  # list-change messages, by partition then offset
    offsets: dict[int, int]        # partition -> next offset to read (the next cursor)
    caught_up: bool                # every partition read to its end


def lists_view(state: dict) -> dict:
    """A subject's list memberships, suspensions, publicity and next due date, from its state."""
    evaluation = state.get("evaluation") or {}
    return {
        "subject": state["id"],
        "name": (state.get("names") or [None])[-1],
        "as_of": state.get("as_of"),
        "lists": evaluation.get("lists", {}),
        "publicity": evaluation.get("publicity", {}),
        "overdue_objections": evaluation.get("overdue_objections", []),
        "next_due": evaluation.get("next_due"),
    }


async def resolve_subject_id(redis, keys: Keys, code: str) -> str | None:
    """The subject id a code names: itself if a subject has it (under its storage id), else through the
    identifier index."""
    code = normalise_code(code)
    if not code:
        return None
    # a first-generation (15-digit) resident ID number names the person by its 18-character form,
    # under which the processor keeps them (domain/identity.py); a subject kept under the 15 digits
    # by an earlier version is still found by them
    current = resident_id_of_legacy(code)
    if current is not None and await redis.exists(keys.subject(current)):
        return current
    if await redis.exists(keys.subject(code)):
        return code
    kinds = LOOKUP_KINDS
    found = await redis.hmget(keys.id_index, [lookup_key(k, code) for k in kinds])
    for value in found:
        if value is not None:
            return value.decode()
    return None


class Reader:
    """Reads the live state (Redis, under the live generation's keys) and the list-change topic.
    ``redis``: a client the caller owns."""

    GENERATION_TTL_S = 1.0
    """How long the live generation read from Redis is reused: after ``replay --switch`` readers
    follow within this time, and a busy API (credit checks) saves a round trip per request."""

    def __init__(self, settings: Settings, redis):
        self.settings = settings
        self.redis = redis
        self.list_changes_topic = Topics(settings).list_changes
        self._codec: AvroCodec | None = None
        self._keys: tuple[float, Keys] | None = None

    async def keys(self) -> Keys:
        now = time.monotonic()
        if self._keys is not None and now - self._keys[0] < self.GENERATION_TTL_S:
            return self._keys[1]
        keys = await resolve_keys(self.redis, self.settings.namespace, self.settings.pseudonym_key)
        self._keys = (now, keys)
        return keys

    async def subject_ids(self, keys: Keys, stored: list[str]) -> list[str]:
        """The subject ids to show for storage ids read from a set: an organisation's is its USCC, a
        pseudonym's the clear id its state keeps (the pseudonym itself if it has no state)."""
        pseudonyms = [s for s in stored if is_pseudonym(s)]
        clear: dict[str, str] = {}
        if pseudonyms:
            for s, raw in zip(pseudonyms, await self.redis.mget([keys.subject(p) for p in pseudonyms])):
                if raw is not None:
                    clear[s] = decode_state(raw).get("id") or s  # the head is enough (a split state's too)
        return [clear.get(s, s) for s in stored]

    # --- Redis ------------------------------------------------------------------------------
    async def subject(self, code: str) -> dict | None:
        """A subject's whole state, or None if no subject has that code."""
        keys = await self.keys()
        sid = await resolve_subject_id(self.redis, keys, code)
        return (await read_states(self.redis, keys, [sid]))[0] if sid is not None else None

    async def parked_counts(self, codes: list[str]) -> dict[str, int]:
        """How many records wait for the registry under each code (parked under one of its lookup
        keys: sinks/registry_index.py), for codes no subject has: one round trip. Seen (an audit): a
        bidder whose severe penalty named only its organisation code was answered ``no_record``
        until a registration named the code, nothing telling it from a clean one."""
        keys = await self.keys()
        norm = {c: normalise_code(c) for c in codes}
        asked = [c for c in dict.fromkeys(norm.values()) if c]
        if not asked:
            return {c: 0 for c in codes}
        pipe = self.redis.pipeline(transaction=False)
        for c in asked:
            for kind in LOOKUP_KINDS:
                pipe.hkeys(keys.parked(lookup_key(kind, c)))
        # a record's sightings (``<field>|s``) are not records (sinks/registry_index.py park_field)
        counts = [sum(1 for f in fields if not f.endswith(b"|s")) for fields in await pipe.execute()]
        per = {c: sum(counts[i * len(LOOKUP_KINDS):(i + 1) * len(LOOKUP_KINDS)]) for i, c in enumerate(asked)}
        return {c: per.get(norm[c], 0) for c in codes}

    async def subjects(self, codes: list[str]) -> list[dict | None]:
        """The states of many subjects (None for a code no subject has), in the order of ``codes``:
        the look-up of :meth:`subject`, in at most four Redis round trips whatever their number (a fifth
        if any is a hot subject stored split)."""
        keys = await self.keys()
        norm = [normalise_code(c) for c in codes]
        asked = [c for c in dict.fromkeys(norm) if c]
        found: dict[str, dict] = {}
        if asked:
            # a first-generation (15-digit) resident ID number names the person by its 18-character
            # form, under which the processor keeps them, as :func:`resolve_subject_id` reads it (seen:
            # the check API answered ``no_record`` by the 15 digits for a person it restricted by the 18)
            current = {c: cur for c in asked if (cur := resident_id_of_legacy(c)) is not None}
            ids = list(dict.fromkeys([*current.values(), *asked]))
            read = dict(zip(ids, await read_states(self.redis, keys, ids)))
            for c in asked:
                state = read.get(current[c]) if c in current else None
                if state is None:
                    state = read.get(c)
                if state is not None:
                    found[c] = state
        missing = [c for c in asked if c not in found]
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for c in missing:
                pipe.hmget(keys.id_index, [lookup_key(k, c) for k in LOOKUP_KINDS])
            resolved = {c: next((v.decode() for v in hits if v is not None), None)
                        for c, hits in zip(missing, await pipe.execute())}
            sids = sorted({s for s in resolved.values() if s is not None})
            if sids:
                states = dict(zip(sids, await read_states(self.redis, keys, sids)))
                for c, sid in resolved.items():
                    if sid is not None and (state := states.get(sid)) is not None:
                        found[c] = state
        return [found.get(c) if c else None for c in norm]

    async def subject_lists(self, code: str) -> dict | None:
        """A subject's current list memberships (from its last evaluation), or None if unknown."""
        state = await self.subject(code)
        return None if state is None else lists_view(state)

    async def lists(self) -> dict[str, int]:
        """Every list with members, and its size, by name."""
        keys = await self.keys()
        names = await generation_list_names(self.redis, keys)  # no scan of the keyspace (sinks/keys.py)
        pipe = self.redis.pipeline(transaction=False)
        for n in names:
            pipe.scard(keys.list_members(n))
        sizes = await pipe.execute() if names else []
        return {n: int(s) for n, s in zip(names, sizes) if s}

    async def list_exists(self, name: str) -> bool:
        return bool(await self.redis.exists((await self.keys()).list_members(name)))

    async def members(self, name: str, *, cursor: int = 0, count: int = 100) -> tuple[list[str], int]:
        """One page of a list's members (subject ids, sorted within the page) and the cursor of the next
        (0: done). Raises :class:`BadCursor` for a cursor Redis does not know."""
        keys = await self.keys()
        key = keys.list_members(name)
        members: list[str] = []
        next_cursor = cursor
        try:
            while len(members) < count:
                next_cursor, page = await self.redis.sscan(key, cursor=next_cursor, count=count)
                members += [m.decode() for m in page]
                if next_cursor == 0:
                    break
        except rexc.ResponseError:
            raise BadCursor(f"{cursor} is not a cursor of list {name}") from None
        return sorted(await self.subject_ids(keys, members)), int(next_cursor)

    async def organisations(self, *, cursor: int = 0, count: int = 200) -> tuple[list[dict], int]:
        """One bounded step of a walk over the organisations with state (the public disclosure's
        penalties and licences): about ``count`` storage ids of the subjects set (SSCAN), natural
        persons (pseudonyms) skipped without reading their state, the organisations' states read in
        one MGET; and the cursor of the next step (0: done). A step may return fewer states than
        ``count``, or none, before the walk ends. Raises :class:`BadCursor` for a cursor Redis does
        not know."""
        keys = await self.keys()
        try:
            next_cursor, page = await self.redis.sscan(keys.subjects, cursor=cursor, count=count)
        except rexc.ResponseError:
            raise BadCursor(f"{cursor} is not a cursor of the subjects") from None
        stored = sorted(s for s in (m.decode() for m in page) if not is_pseudonym(s))
        return [st for st in await read_states(self.redis, keys, stored) if st is not None], int(next_cursor)

    # --- list changes (Kafka) ---------------------------------------------------------------
    def codec(self) -> AvroCodec:
        if self._codec is None:
            self._codec = make_codec(self.settings)
        return self._codec

    async def changes(self, start: dict[int, int], limit: int, *, wait_s: float,
                      timeout_s: float) -> ChangesPage:
        """Up to ``limit`` list changes from the cursor ``start`` (partition -> offset), reading for
        at most ``wait_s``. Raises :class:`BadCursor` if ``start`` names a partition the topic lacks."""
        c = kafka.consumer(self.settings, group_id=None, max_poll_records=limit,
                           request_timeout_ms=int(timeout_s * 1000))
        await c.start()
        try:
            topic = self.list_changes_topic
            parts = c.partitions_for_topic(topic)
            if not parts:
                await c._client.force_metadata_update()  # noqa: SLF001 - metadata of an unassigned topic
                parts = c.partitions_for_topic(topic) or set()
            unknown = set(start) - set(parts)
            if unknown:
                raise BadCursor(f"since names partition(s) {sorted(unknown)} that the list-change topic does not have")
            if not parts:
                return ChangesPage([], dict(start), True)  # no topic yet: nothing changed
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            c.assign(tps)
            for tp in tps:
                c.seek(tp, start.get(tp.partition, 0))  # out of range -> reset to earliest
            records: list[ConsumerRecord] = []
            pending = set(tps)
            deadline = time.monotonic() + wait_s
            while pending and len(records) < limit and time.monotonic() < deadline:
                batches = await c.getmany(*pending, timeout_ms=200, max_records=limit - len(records))
                for tp in sorted(batches, key=lambda t: t.partition):
                    records.extend(batches[tp])
                for tp in list(pending):
                    hw = c.highwater(tp)
                    if hw is not None and await c.position(tp) >= hw:
                        pending.discard(tp)
            offsets = {tp.partition: await c.position(tp) for tp in tps}
            caught_up = all((hw := c.highwater(tp)) is not None and offsets[tp.partition] >= hw for tp in tps)
            # a remote registry: the writer schemas of the page, awaited here, so decoding asks nothing
            await self.codec().ensure_for(m.value for m in records)
            return ChangesPage(records, offsets, caught_up)
        finally:
            await kafka.stop_consumer(c)

    def decode_changes(self, records: list[ConsumerRecord]) -> list[tuple[ConsumerRecord, dict]]:
        """(message, ListChange record) of each change; an undecodable one is logged and skipped
        (only creditstream writes the topic: it should not happen). The records of a page from
        :meth:`changes` decode without asking the registry (their schemas were fetched with it)."""
        codec = self.codec()
        out = []
        for msg in records:
            try:
                _, rec = codec.decode(msg.value)
            except DecodeError as exc:
                log.warning("undecodable list change skipped", partition=msg.partition, offset=msg.offset,
                            reason=exc.reason)
                continue
            out.append((msg, rec))
        return out


@asynccontextmanager
async def reader(settings: Settings) -> AsyncIterator[Reader]:
    """A :class:`Reader` with its own Redis client, closed on exit (the CLI's commands)."""
    redis = redis_client(settings)
    try:
        yield Reader(settings, redis)
    finally:
        await redis.aclose()


# --- one-shot reads for the CLI ----------------------------------------------------------------
async def subject_state(settings: Settings, code: str) -> dict | None:
    async with reader(settings) as r:
        return await r.subject(code)


async def subject_lists(settings: Settings, code: str) -> dict | None:
    async with reader(settings) as r:
        return await r.subject_lists(code)


async def list_names(settings: Settings) -> dict[str, int]:
    async with reader(settings) as r:
        return await r.lists()


async def list_members(settings: Settings, name: str, *, cursor: int = 0, count: int = 100) -> tuple[list[str], int]:
    async with reader(settings) as r:
        return await r.members(name, cursor=cursor, count=count)


# a worker whose last heartbeat is older than this is not looked for (its key expired long before:
# creditstream/app.py HEARTBEAT_TTL_S); the margin covers clocks that differ between hosts
WORKER_LOOKBACK_MS = 300_000


async def running_workers(redis, keys: Keys, *, scan: bool = False) -> list[dict]:
    """The workers of this namespace whose heartbeat has not expired (creditstream/app.py writes it
    every few seconds: host, pid, generation, agents and each agent's consumption ``health``), found
    through the ``workers`` index: two commands, whatever the size of the keyspace (a scan for the
    heartbeat keys read every key of Redis: 0.8 s at a million subjects, for each /health probe).
    ``scan``: also scan for heartbeats the index may not have (a worker of an earlier version during
    an upgrade), where a worker missed would be unsafe: ``replay --switch``, ``positions move``."""
    since = int(time.time() * 1000) - WORKER_LOOKBACK_MS
    found = [keys.worker(m.decode()) for m in await redis.zrangebyscore(keys.workers, since, "+inf")]
    if scan:
        indexed = set(found)
        found += [k for k in [key.decode() async for key in redis.scan_iter(match=keys.worker_pattern, count=1000)]
                  if k not in indexed]
    out = []
    for key, raw in zip(found, await redis.mget(found) if found else ()):
        if raw and raw != b"stopped":
            try:
                out.append(orjson.loads(raw))
            except ValueError:
                out.append({"key": key})
    return out


class HeartbeatWatch:
    """Which running workers' heartbeats have stopped coming, in the reader's own time (no clocks
    compared between hosts): a heartbeat whose value (its ``at``) has not changed for ``late_after_s``
    since this reader first saw it. A worker writes one every ``HEARTBEAT_S`` (2 s,
    creditstream/app.py) and its key expires 15 s after the last: seen (an audit), a worker paused
    with SIGSTOP was reported ``ok`` with 0 inputs waiting for 13-15 s by the check API and /health,
    its last heartbeat saying so, while inputs waited. A reader that reads the heartbeats for the
    first time sees none late."""

    LATE_AFTER_S = 6.0
    """Three heartbeats missed."""

    def __init__(self, late_after_s: float = LATE_AFTER_S):
        self.late_after_s = late_after_s
        self._seen: dict[str, tuple[object, float]] = {}

    def late(self, workers: list[dict]) -> list[str]:
        """The late workers among ``workers`` (running_workers), each as a reason for ``consumption``."""
        now = time.monotonic()
        seen: dict[str, tuple[object, float]] = {}
        late = []
        for w in workers:
            who = f"{w.get('host', '?')} pid {w.get('pid', '?')}"
            beat = (w.get("started"), w.get("at"))
            before = self._seen.get(who)
            since = before[1] if before is not None and before[0] == beat else now
            seen[who] = (beat, since)
            if now - since >= self.late_after_s:
                late.append(f"{who}: no heartbeat for {now - since:.0f} s (the process is paused, overloaded or "
                            f"cannot reach Redis)")
        self._seen = seen
        return late


def consumption(workers: list[dict], late: list[str] | None = None) -> tuple[str, list[str]]:
    """``("ok" | "stalled" | "no worker running", reasons)`` from the workers' heartbeats: each
    stalled agent named with its worker and why; ``late``: the workers whose heartbeats stopped
    coming (:class:`HeartbeatWatch`), stalled too."""
    if not workers:
        return "no worker running", []
    stalled = list(late or ())
    for w in workers:
        for agent, h in (w.get("health") or {}).items():
            if h.get("state") == "stalled":
                stalled.append(f"{w.get('host', '?')} pid {w.get('pid', '?')} {agent}: {h.get('reason', '')}")
    return ("stalled", stalled) if stalled else ("ok", [])


def timer_and_waiting(workers: list[dict]) -> tuple[bool, int | None]:
    """From the running workers' heartbeats: whether one of them runs the timer (fires the deadlines),
    and the inputs they had not processed at their last heartbeat (None when none runs, or one does
    not say: a version before the count). Read by /health and the check API's ``pipeline``."""
    timer = any("timer" in (w.get("agents") or ()) for w in workers)
    waiting = [h.get("waiting") for w in workers for h in (w.get("health") or {}).values()]
    return timer, (sum(waiting) if waiting and all(isinstance(n, int) for n in waiting) else None)
