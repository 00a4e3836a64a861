"""`creditstream follow-numbers`: have the decisions attached through a legacy number before the
registry index remembered them follow their number (存量代码转换; docs/operations.md, "Legacy numbers
that move").

A decision a department sends naming its organisation only by a legacy number (registration
number, organisation code, tax number) is remembered by the index when it is attached
(sinks/registry_index.py): when the number comes to name another organisation, it moves there. A
version of creditstream before that (2026-12-07) did not remember them, so after the upgrade those
decisions stayed where they were: a later registration moving their number left them with the
earlier holder, and a revocation or correction sent by the number afterwards reached the new holder
only (an upgrade audit: a revoked penalty kept the earlier holder blacklisted). This command
remembers them from the subjects' states, as the index would have.

Steps:

1. Every organisation of the live generation is read (``SSCAN subjects``, a chunk at a time, whole
   states through sinks/redis_state.py ``read_states``); each version of its records of a kind that
   follows its number (domain/kinds.py ``MOVES_WITH_ITS_NUMBER``) whose ``ids`` name no USCC was
   attached through a number: its subject event is made again from the state (the version's content,
   first sighting and content hash, checked against the content), with the lookup keys its numbers
   give (domain/attach.py).
2. A script per chunk remembers each one not remembered yet (``Keys.attached``), on the organisation
   that holds it. One remembered already as another organisation's (the earlier version attached it
   to one, and a re-send after the number moved to the other; or Redis lost the index's last writes,
   which moved it, while the subject-event log kept their notices and copies: an audit), or held by an
   organisation the number no longer names, is marked to move: to the organisation the number names
   now, with a ``detached`` notice to every other one it was on, at a generation above any it had
   (step 3).
3. Without ``--dry-run``: for each number with such decisions, the index's current mapping is taught
   again (``RegistryIndex.apply_batch``), which moves them as a registration would, and the notices
   and copies are produced to the subject-event log before the moves are acknowledged, as the agents
   do. The workers fold them.

Running it again changes nothing more (remembered decisions are skipped). It can run beside the
workers. Not remembered: a court's deletion (its state keeps what it says of the listing, not the
message), and sightings beyond each version's first (the organisation a decision moves to gets it
once, at its first sighting)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from creditstream.connections import redis_client, redis_now_ms
from creditstream.settings import Settings
from domain import events
from domain.attach import legacy_lookup_keys
from domain.kinds import MOVES_WITH_ITS_NUMBER
from domain.validate import content_hash
from sinks.deadletter import DeadLetterSink
from sinks.kafka import KafkaSink
from sinks.keys import Keys, resolve_keys
from sinks.redis_state import read_states, subject_chunks
from sinks.registry_index import RegistryIndex, park_field, sighting
from sinks.subject_events import SubjectEventWriter
from streams import kafka as kafka_io
from streams import placement
from streams.topics import Topics

CHUNK = 500

_REMEMBER = """
-- KEYS: attached, pending numbers, the index; ARGV: attached-by prefix, then per decision: field,
-- subject, payload, sighting, n, n lookup keys. Returns the numbers whose decisions must move.
local attached, pending, index = KEYS[1], KEYS[2], KEYS[3]
local by = ARGV[1]
local remembered, known, to_move = 0, 0, {}
local marked = {}
local p = 2
while p <= #ARGV do
  local field, subject, payload, seen = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
  local n = tonumber(ARGV[p + 4])
  local keys = {}
  for j = 1, n do keys[j] = ARGV[p + 4 + j] end
  p = p + 5 + n
  local entry = redis.call('HGET', attached, field)
  local holder = subject
  local move = false
  if not entry then
    redis.call('HSET', attached, field, subject .. '\\t0\\t0', field .. '|e', payload,
               field .. '|k', table.concat(keys, '\\n'), field .. '|h', subject, field .. '|s', seen)
    for _, k in ipairs(keys) do redis.call('SADD', by .. k, field) end
    remembered = remembered + 1
  else
    known = known + 1
    local s, gen = string.match(entry, '^([^\\t]*)\\t(%d+)')
    holder = s
    local ever = redis.call('HGET', attached, field .. '|h') or ''
    local on = false
    for line in string.gmatch(ever, '[^\\n]+') do if line == subject then on = true end end
    if s ~= subject then
      -- held by another organisation than the index says (a re-send put it on two; Redis lost the
      -- index's last writes while the log kept what they sent): a move, a generation more, to the one
      -- its number names, with a notice to every other it was ever on
      if not on then
        redis.call('HSET', attached, field .. '|h', ever == '' and subject or (ever .. '\\n' .. subject))
      end
      redis.call('HSET', attached, field, s .. '\\t' .. tostring(tonumber(gen) + 1) .. '\\t1')
      move = true
    end
  end
  local now = false
  for _, k in ipairs(keys) do
    now = redis.call('HGET', index, k)
    if now then break end
  end
  if now and now ~= holder then move = true end
  if move then
    for _, k in ipairs(keys) do
      redis.call('SADD', pending, k)
      if not marked[k] then
        marked[k] = true
        to_move[#to_move + 1] = k
      end
    end
  end
end
return {remembered, known, to_move}
"""


@dataclass
class Followed:
    subjects: int = 0
    organisations: int = 0
    decisions: int = 0            # versions attached through a number, found in the states
    remembered: int = 0           # newly remembered
    known: int = 0                # remembered already
    skipped: int = 0              # content and hash disagree (not remembered)
    numbers_to_move: int = 0
    to_move: int = 0              # (--dry-run) versions that would move (or send a notice)
    moved: int = 0                # decisions moved now
    dry_run: bool = False
    seconds: float = 0.0
    lost_writes: str = ""         # what the workers noted of Redis losing the index's writes, if anything
    lost_writes_cleared: bool = False  # the note cleared by this run (it began after it)

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def render(self) -> str:
        head = "follow-numbers (dry run: nothing written)" if self.dry_run else "follow-numbers"
        now = "to remember" if self.dry_run else "remembered now"
        lines = [f"{head}: {self.subjects} subjects read, {self.organisations} organisations, in {self.seconds:.1f}s",
                 f"  versions of decisions attached through a legacy number, on the organisations' files: "
                 f"{self.decisions} ({now} {self.remembered}, remembered already {self.known}"
                 + (f", not remembered {self.skipped}: their content does not give their hash" if self.skipped else "")
                 + ")"]
        if self.dry_run:
            lines.append(f"  numbers whose decisions would move: {self.numbers_to_move} ({self.to_move} versions "
                         "on an organisation the index does not name for them)")
        else:
            lines.append(f"  numbers whose decisions moved: {self.numbers_to_move} ({self.moved} decisions; "
                         "the workers fold the notices and copies)")
        if self.lost_writes and self.lost_writes_cleared:
            lines.append(f"  the workers' note is cleared: {self.lost_writes}")
        elif self.lost_writes:
            lines.append(f"  the workers' note stays: {self.lost_writes}"
                         + ("" if self.dry_run else "; noted again while this run read the states: run it again "
                            "once the workers have caught up"))
        return "\n".join(lines)


def attached_by_number(state: dict) -> list[tuple[dict, list[str]]]:
    """The versions of ``state``'s records (an organisation's) attached through a legacy number: each as
    (the subject event the ingest agent made of it, its lookup keys), made from the state."""
    out: list[tuple[dict, list[str]]] = []
    if state.get("id_kind") != "uscc":
        return out
    for entry in (state.get("records") or {}).values():
        for digest, (first_ms, origin) in (entry.get("versions") or {}).items():
            content = entry.get("content") if entry.get("hash") == digest else (entry.get("others") or {}).get(digest)
            if not content or content.get("kind") not in MOVES_WITH_ITS_NUMBER:
                continue
            ids = content.get("ids") or {}
            if ids.get("uscc") or ids.get("resident_id"):
                continue
            keys = list(legacy_lookup_keys(ids))
            if not keys:
                continue
            event = events.of_record("?", "uscc", origin, content, int(first_ms))
            out.append((dict(events.to_dict(event), hash=digest), keys))
    return out


async def follow_numbers(settings: Settings, *, dry_run: bool = False, progress: bool | None = None,
                         chunk: int = CHUNK) -> Followed:
    """Steps 1-3 of the module docstring."""
    from ops.replay import Progress

    started = time.monotonic()
    result = Followed(dry_run=dry_run)
    redis = redis_client(settings)
    bar = None
    try:
        keys = await resolve_keys(redis, settings.namespace)
        ns = Keys(settings.namespace)
        remember = redis.register_script(_REMEMBER)
        index = RegistryIndex(redis, ns)
        began_ms = await redis_now_ms(redis)  # (Redis's clock: the one the workers' notes are stamped by)
        noted = await index.numbers_to_follow()
        if noted is not None:
            result.lost_writes = noted.said()
        bar = Progress(await redis.scard(keys.subjects), enabled=progress, label="follow-numbers", unit="subjects")
        to_move: list[str] = []

        held_by: dict[str, str] = {}  # (--dry-run) field -> the organisation the run would remember it on
        would_move: set[str] = set()  # (--dry-run) the numbers

        async def one_chunk(stored: list[str]) -> None:
            items: list[tuple[str, str, bytes, str, list[str]]] = []
            for state in await read_states(redis, keys, stored):
                if state is None:
                    continue
                result.subjects += 1
                if state.get("id_kind") == "uscc":
                    result.organisations += 1
                for event, lookup in attached_by_number(state):
                    result.decisions += 1
                    if content_hash(event["record"]) != event["hash"]:  # (kept by an earlier layout)
                        result.skipped += 1
                        continue
                    payload = {"lookup_keys": lookup, "event": event}
                    items.append((park_field(payload), state["id"], orjson.dumps(payload), sighting(event), lookup))
            if items and not dry_run:
                args: list[Any] = [f"{ns.namespace}:attached-by:"]
                for field, subject, payload_json, seen, lookup in items:
                    args += [field, subject, payload_json, seen, len(lookup), *lookup]
                remembered, known, numbers = await remember(keys=[ns.attached, ns.attached_pending, ns.id_index],
                                                            args=args)
                result.remembered += int(remembered)
                result.known += int(known)
                to_move.extend(k.decode() if isinstance(k, bytes) else k for k in numbers)
            elif items:
                await _dry_run(redis, ns, items, held_by, would_move, result)
            bar.advance(len(stored))

        async for stored in subject_chunks(redis, keys, chunk):
            await one_chunk(stored)
        if dry_run:
            result.numbers_to_move = len(would_move)
        else:
            numbers = sorted(set(to_move))
            result.numbers_to_move = len(numbers)
            if numbers:
                result.moved = await _move(settings, redis, ns, numbers)
            result.lost_writes_cleared = await index.numbers_followed(began_ms) and bool(result.lost_writes)
            if not result.lost_writes_cleared:  # (one noted while it ran, where there was none before)
                noted = await index.numbers_to_follow()
                result.lost_writes = noted.said() if noted is not None else ""
        result.seconds = time.monotonic() - started
        return result
    finally:
        if bar is not None:
            bar.close()
        await redis.aclose()


async def _dry_run(redis: Any, ns: Keys, items: list[tuple[str, str, bytes, str, list[str]]],
                   held_by: dict[str, str], would_move: set[str], result: Followed) -> None:
    """(--dry-run) What the script would do with these versions (read only): remembered now or
    already, and whether each would move (``would_move`` gathers its numbers, over the whole run)."""
    pipe = redis.pipeline(transaction=False)
    for field, _subject, _payload, _seen, lookup in items:
        pipe.hget(ns.attached, field)
        for k in lookup:
            pipe.hget(ns.id_index, k)
    answers = await pipe.execute()
    at = 0
    for field, subject, _payload, _seen, lookup in items:
        entry, mapped = answers[at], answers[at + 1:at + 1 + len(lookup)]
        at += 1 + len(lookup)
        holder = entry.decode().split("\t", 1)[0] if entry is not None else held_by.get(field)
        if holder is None:
            result.remembered += 1
            held_by[field] = holder = subject
        else:
            result.known += 1
        now = next((m.decode() for m in mapped if m is not None), None)
        if holder != subject or (now is not None and now != holder):
            result.to_move += 1
            would_move.update(lookup)


async def _move(settings: Settings, redis: Any, ns: Keys, numbers: list[str]) -> int:
    """Step 3: teach each number its current mapping again (the index moves what waits on it), produce
    the notices and copies, then acknowledge the moves."""
    index = RegistryIndex(redis, ns)
    teach = []
    for k in numbers:
        uscc, version = await redis.hget(ns.id_index, k), await redis.hget(ns.id_index_versions, k)
        if uscc is not None:
            teach.append((k, uscc.decode(), (version or b"").decode()))
    topics = Topics(settings)
    producer = kafka_io.producer(settings)
    producer.placement = await placement.recorded(redis, ns, [topics.subject_events])
    await producer.start()
    moved_count = 0
    try:
        for start in range(0, len(teach), 200):
            applied = await index.apply_batch(teach[start:start + 200], [])
            if not applied.moved:
                continue
            sink = KafkaSink(producer)
            out = SubjectEventWriter(sink, topics.subject_events,
                                     DeadLetterSink(sink, topics.dead_letters, "follow-numbers"), ns)
            out.add_moved(applied.moved)
            await sink.flush()
            moved_count += await index.acknowledge_moves(applied.moved)
    finally:
        await producer.stop()
    return moved_count
