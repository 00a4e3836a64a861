"""Dead letters as read from the dead-letter topic: their refs (``PARTITION:OFFSET``), the times and
filters operators select them by, and :class:`DeadLetter` with what its headers say. The commands
on them (list, show, re-drive) are in ops/dlq.py."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka import ConsumerRecord

from creditstream.settings import Settings
from sinks.deadletter import HEADER_PREFIX, dead_letter_info
from streams import kafka
from streams.topics import Topics

REDRIVEN_FROM_HEADER = "redriven-from"
CST = dt.timezone(dt.timedelta(hours=8))
T = TypeVar("T")


class RedriveError(ValueError):
    """The re-drive cannot be done as asked (bad fix file, --fix for several letters, ...)."""


# --- refs, times, filters ------------------------------------------------------------------
def parse_ref(ref: str) -> tuple[int, int]:
    """``"P:O"`` -> (partition, offset); ValueError otherwise."""
    try:
        p, o = str(ref).strip().split(":")
        partition, offset = int(p), int(o)
    except ValueError:
        raise ValueError(f"not a dead-letter ref {ref!r}: expected PARTITION:OFFSET, e.g. 0:17") from None
    if partition < 0 or offset < 0:
        raise ValueError(f"not a dead-letter ref {ref!r}: partition and offset are >= 0")
    return partition, offset


def parse_time(text: str | int | None) -> int | None:
    """An ISO date(-time) (no zone: China Standard Time) or epoch milliseconds -> ms."""
    if text is None or text == "":
        return None
    if isinstance(text, int):
        return text
    s = str(text).strip()
    if s.isdigit():
        return int(s)
    try:
        ts = dt.datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"not an ISO date-time: {text!r} (e.g. 2024-05-21T10:00:00+08:00)") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=CST)
    return int(ts.timestamp() * 1000)


def format_ms(ms: int | None) -> str:
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, CST).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Filter:
    """Which dead letters: by reason, source topic (full name or without the prefix, e.g.
    ``penalty``) and time ([since, until) in ms, on ``dlq.at`` or, with ``source_time``, on the
    source message's timestamp)."""

    reason: str | None = None
    source_topic: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    source_time: bool = False

    @property
    def empty(self) -> bool:
        return not (self.reason or self.source_topic or self.since_ms is not None or self.until_ms is not None)

    def matches(self, letter: DeadLetter, prefix: str = "") -> bool:
        info = letter.info
        if self.reason and info.get("reason") != self.reason:
            return False
        if self.source_topic and info.get("source.topic") not in (self.source_topic, prefix + self.source_topic):
            return False
        t = letter.source_timestamp if self.source_time else letter.dead_lettered_at
        if self.since_ms is not None and t < self.since_ms:
            return False
        if self.until_ms is not None and t >= self.until_ms:
            return False
        return True


# --- dead letters as read from the topic ---------------------------------------------------
def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text not in (None, "") else default
    except ValueError:
        return default


@dataclass
class DeadLetter:
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None  # None: the dead-lettered message was a tombstone (and is re-driven as one)
    headers: list[tuple[str, bytes]]
    info: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, msg) -> DeadLetter:
        headers = [(k, v if isinstance(v, bytes) else bytes(v or b"")) for k, v in (msg.headers or ())]
        return cls(msg.partition, msg.offset, msg.timestamp or 0, msg.key, msg.value, headers,
                   dead_letter_info(headers))

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def source_topic(self) -> str:
        return self.info.get("source.topic", "")

    @property
    def source_timestamp(self) -> int:
        return _int(self.info.get("source.timestamp"), 0) or self.timestamp

    @property
    def dead_lettered_at(self) -> int:
        return _int(self.info.get("at"), 0)

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the source message had (without the dead-letter ones)."""
        return [(k, v) for k, v in self.headers if not k.startswith(HEADER_PREFIX)]

    @property
    def value_omitted(self) -> str:
        """``dlq.value-omitted`` (the original's size, and the limit it was over), or "": this dead
        letter was written without the original's bytes, which stay at ``dlq.source.*``."""
        return self.info.get("value-omitted", "")

    @property
    def omitted_size(self) -> int | None:
        """The size of the value left out (the number ``dlq.value-omitted`` begins with), if said."""
        text = self.value_omitted.split(" ", 1)[0]
        return int(text) if text.isdigit() else None

    @property
    def source_partition(self) -> int:
        """``dlq.source.partition``, -1 where it says none."""
        return _int(self.info.get("source.partition"), -1)

    @property
    def source_offset(self) -> int:
        """``dlq.source.offset``, -1 where it says none."""
        return _int(self.info.get("source.offset"), -1)

    @property
    def reason(self) -> str:
        return self.info.get("reason", "")

    @property
    def source_place(self) -> tuple[str, int, int] | None:
        """(topic, partition, offset) of the original message, from ``dlq.source.*``."""
        p, o = self.source_partition, self.source_offset
        return (self.source_topic, p, o) if self.source_topic and p >= 0 and o >= 0 else None

    def with_original(self, msg) -> DeadLetter:
        """This dead letter with the original message's key, value and headers, as read back from its
        source (for one written without its value): its ``dlq.*`` headers, then the original's."""
        original = DeadLetter.of(msg)
        headers = [(k, v) for k, v in self.headers if k.startswith(HEADER_PREFIX)] + original.original_headers
        return DeadLetter(self.partition, self.offset, self.timestamp, original.key, original.value, headers,
                          dict(self.info))

    @property
    def redriven_from(self) -> str:
        """``dead-letters/P/O`` when this letter's message was itself a re-drive."""
        for k, v in self.headers:
            if k == REDRIVEN_FROM_HEADER:
                return v.decode("utf-8", "replace")
        return ""

    def summary(self) -> dict:
        """What `dlq list` shows of the letter; the strings most letters share (a reason, an agent, a
        topic) are one object for all of them, as a listing holds every summary to sort them."""
        info = self.info
        return {
            "ref": self.ref,
            "partition": self.partition,
            "offset": self.offset,
            "reason": sys.intern(info.get("reason", "")),
            "detail": info.get("detail", ""),
            "agent": sys.intern(info.get("agent", "")),
            "source_topic": sys.intern(self.source_topic),
            "source_partition": _int(info.get("source.partition"), -1),
            "source_offset": _int(info.get("source.offset"), -1),
            "source_timestamp": _int(info.get("source.timestamp"), 0),
            "dead_lettered_at": self.dead_lettered_at,
            "size": len(self.value) if self.value is not None else 0,
            "value_omitted": self.value_omitted or None,
            "redriven_from": self.redriven_from or None,
        }


@dataclass(slots=True)
class Selected:
    """A dead letter as a re-drive selects it: its place, what its ``dlq.*`` headers say that the
    selection decides on, and what it is a re-drive of; not the original's bytes and headers, nor
    the detail, which are read back from the dead-letter topic (:func:`_fetch`) just before it is
    sent. About 0.2 KB a letter, the strings that name a topic and a reason shared by all its
    letters (held whole, 50,000 letters of 1 KB made a re-drive's peak 324 MB RSS; as a dict of
    their headers, 0.6 KB a letter)."""

    partition: int
    offset: int
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    value_omitted: str
    redriven_from: str

    @classmethod
    def of(cls, letter: DeadLetter) -> Selected:
        info = letter.info
        return cls(letter.partition, letter.offset, sys.intern(letter.source_topic), letter.source_partition,
                   letter.source_offset, sys.intern(info.get("reason", "")), letter.value_omitted,
                   letter.redriven_from)

    ref = DeadLetter.ref
    source_place = DeadLetter.source_place


READ_FETCH_BYTES = 1024 * 1024
"""The most one fetch brings, per partition and in all, when the dead letters are scanned (``dlq
list``, a re-drive's selection) or read back (a re-drive's chunks, the originals of letters written
without them): what is held of a topic at a time besides what is kept of each letter. The client's
default (4 MiB a partition, 50 MiB in all) made a re-drive's peak."""


async def _matching(settings: Settings, flt: Filter, keep: Callable[[DeadLetter], T]) -> list[T]:
    """``keep(letter)`` of every dead letter matching ``flt``, made as the topic is read to its end."""
    prefix = Topics(settings).prefix
    out = []
    async for batch in kafka.read_to_end(settings, Topics(settings).dead_letters, fetch_bytes=READ_FETCH_BYTES,
                                         fetch_max_bytes=READ_FETCH_BYTES):
        for msg in batch:
            letter = DeadLetter.of(msg)
            if flt.matches(letter, prefix):
                out.append(keep(letter))
    return out


async def _scan_summaries(settings: Settings, flt: Filter) -> list[dict]:
    """Every dead letter matching ``flt`` as :meth:`DeadLetter.summary` dicts, oldest dead-lettered
    first, made as the topic is read: what a listing
    shows, without holding each letter's original bytes and headers (30,000 letters of 1 KB: 236 MB
    peak held whole, 149 MB as summaries)."""
    out = await _matching(settings, flt, DeadLetter.summary)
    return sorted(out, key=lambda d: (d["dead_lettered_at"], d["partition"], d["offset"]))


async def _fetch_records(settings: Settings, topic: str, places: list[tuple[int, int]],
                         stall_timeout_s: float = kafka.STALL_TIMEOUT_S) -> dict[tuple[int, int], ConsumerRecord]:
    """:func:`streams.kafka.records_at`, in fetches of :data:`READ_FETCH_BYTES`."""
    return await kafka.records_at(settings, topic, places, stall_timeout_s=stall_timeout_s,
                                  fetch_bytes=READ_FETCH_BYTES)


async def _fetch(settings: Settings, refs: list[tuple[int, int]], stall_timeout_s: float = kafka.STALL_TIMEOUT_S
                 ) -> dict[tuple[int, int], DeadLetter]:
    """The dead letters at these (partition, offset) places of the dead-letter topic; places that
    hold none are left out (:func:`_fetch_records`)."""
    found = await _fetch_records(settings, Topics(settings).dead_letters, refs, stall_timeout_s)
    return {place: DeadLetter.of(msg) for place, msg in found.items()}


async def fetch_originals(settings: Settings, letters: list[DeadLetter],
                          stall_timeout_s: float = kafka.STALL_TIMEOUT_S) -> dict[str, DeadLetter | str]:
    """For dead letters written without their value (``dlq.value-omitted``): ref -> the letter with
    the original message read back from ``dlq.source.*`` (:meth:`DeadLetter.with_original`), or a
    sentence saying why it cannot be (the source no longer holds it, or holds another message)."""
    out: dict[str, DeadLetter | str] = {}
    by_topic: dict[str, list[tuple[DeadLetter, int, int]]] = {}
    for letter in letters:
        place = letter.source_place
        if place is None:
            out[letter.ref] = (f"dead letter {letter.ref} has no value and no source topic/partition/offset "
                               "to read the original from")
        else:
            by_topic.setdefault(place[0], []).append((letter, place[1], place[2]))
    for topic, group in by_topic.items():
        records = await _fetch_records(settings, topic, [(p, o) for _, p, o in group], stall_timeout_s)
        for letter, p, o in group:
            msg = records.get((p, o))
            where = f"{topic}/{p}/{o}"
            size, got = letter.omitted_size, len(msg.value or b"") if msg is not None else 0
            if msg is None:
                out[letter.ref] = (f"dead letter {letter.ref} was written without its value and its original is no "
                                   f"longer at {where} (deleted by retention or compaction, or the offset is out of "
                                   "range): it cannot be re-driven unchanged")
            elif size is not None and got != size:
                out[letter.ref] = (f"dead letter {letter.ref} was written without its value, and the message at "
                                   f"{where} is {got} bytes, not the original's {size}: another message (was the "
                                   "topic recreated?); not re-driven")
            else:
                out[letter.ref] = letter.with_original(msg)
    return out
