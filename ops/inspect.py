"""The read side (查询): a subject's state and lists, the lists and their members, and the list changes
since a cursor. The CLI (``creditstream subject|lists|list``) and the HTTP API (creditstream/api.py)
both read through :class:`Reader`; neither reads Redis keys or the list-change topic itself.

A subject is found by any identifier it is known by: its own id (USCC or resident ID number), or
a legacy number the registry index maps to a USCC.
"""

from __future__ import annotations

import asyncio
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
from domain.attach import lookup_key
from domain.identifiers import normalise_code
from sinks.keys import Keys, resolve_keys
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
    """The subject id a code names: itself if a subject has it, else through the identifier index."""
    code = normalise_code(code)
    if not code:
        return None
    if await redis.exists(keys.subject(code)):
        return code
    kinds = ("org", "reg_no", "tax_no", "other")
    found = await redis.hmget(keys.id_index, [lookup_key(k, code) for k in kinds])
    for value in found:
        if value is not None:
            return value.decode()
    return None


class Reader:
    """Reads the live state (Redis, under the live generation's keys) and the list-change topic.
    ``redis``: a client the caller owns."""

    def __init__(self, settings: Settings, redis):
        self.settings = settings
        self.redis = redis
        self.list_changes_topic = Topics(settings).list_changes
        self._codec: AvroCodec | None = None

    async def keys(self) -> Keys:
        return await resolve_keys(self.redis, self.settings.namespace)

    # --- Redis ------------------------------------------------------------------------------
    async def subject(self, code: str) -> dict | None:
        """A subject's whole state, or None if no subject has that code."""
        keys = await self.keys()
        sid = await resolve_subject_id(self.redis, keys, code)
        raw = await self.redis.get(keys.subject(sid)) if sid is not None else None
        return orjson.loads(raw) if raw is not None else None

    async def subject_lists(self, code: str) -> dict | None:
        """A subject's current list memberships (from its last evaluation), or None if unknown."""
        state = await self.subject(code)
        return None if state is None else lists_view(state)

    async def lists(self) -> dict[str, int]:
        """Every list with members, and its size, by name."""
        keys = await self.keys()
        names = sorted({k.decode()[len(keys.list_prefix):]
                        async for k in self.redis.scan_iter(match=keys.list_prefix + "*", count=1000)})
        pipe = self.redis.pipeline(transaction=False)
        for n in names:
            pipe.scard(keys.list_members(n))
        sizes = await pipe.execute() if names else []
        return {n: int(s) for n, s in zip(names, sizes) if s}

    async def list_exists(self, name: str) -> bool:
        return bool(await self.redis.exists((await self.keys()).list_members(name)))

    async def members(self, name: str, *, cursor: int = 0, count: int = 100) -> tuple[list[str], int]:
        """One page of a list's members (sorted within the page) and the cursor of the next (0: done).
        Raises :class:`BadCursor` for a cursor Redis does not know."""
        key = (await self.keys()).list_members(name)
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
        return sorted(members), int(next_cursor)

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
            return ChangesPage(records, offsets, caught_up)
        finally:
            await stop_consumer(c)

    def decode_changes(self, records: list[ConsumerRecord]) -> list[tuple[ConsumerRecord, dict]]:
        """(message, ListChange record) of each change; an undecodable one is logged and skipped
        (only creditstream writes the topic: it should not happen). A remote registry is read with
        blocking HTTP: call this off the event loop then."""
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


async def stop_consumer(c) -> None:
    """``AIOKafkaConsumer.stop`` right after ``start`` cancels a background routine that has not run
    yet and leaks its CancelledError (aiokafka 0.14): let it start first; should it leak all the same,
    swallow it (unless this task itself is being cancelled) and close what stop() skipped."""
    await asyncio.sleep(0)
    try:
        await c.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        await c._fetcher.close()  # noqa: SLF001
        await c._client.close()  # noqa: SLF001


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
