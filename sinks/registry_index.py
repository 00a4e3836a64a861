"""The identifier index and parked records in Redis (存量代码转换 at the storage edge).

One atomic Lua script per batch (:meth:`RegistryIndex.apply_batch`), so that a record is never
parked after the registry has learnt its identifier and never left parked once it has:

1. check the batch's input positions: Redis must not record one behind what it said when the batch
   began (it lost its last writes: then nothing is written, and the agent re-reads from there);
2. learn: store (lookup key -> USCC) pairs and return the records parked under those keys. The
   caller emits them, and only after the broker acknowledged them calls
   :meth:`RegistryIndex.unpark`: a crash in between releases them again (harmless: they keep their
   origin ids, which the subject agent dedupes on). A decision attached through a key whose
   mapping changed follows it (:class:`Moved`): the organisation it was on gets a ``detached``
   notice, the one its first known key names now its copies, at the move's generation; the move
   waits (``Keys.attached_pending``) until :meth:`RegistryIndex.acknowledge_moves`, and is sent
   again by a batch that teaches the key again before that;
3. look up or park: for each record, the USCC of its first known lookup key; a record with none is
   parked under all its keys; a decision attached so is remembered (``Keys.attached``), to follow;
4. record the positions the batch reached, with what it wrote: a Redis that loses its last writes
   loses them together, and the next batch of that partition finds its position behind the log
   and re-reads the lost inputs (agents/input_positions.py).

The scripts touch keys they derive from arguments (``{ns}:parked:<key>``): fine on a single Redis
server or a primary with replicas; a Redis Cluster is refused at start (creditstream/connections.py
``check_redis``).
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import orjson

from creditstream.connections import redis_now_ms
from domain.clock import CHINA
from domain.kinds import MOVES_WITH_ITS_NUMBER
from domain.state import SEEN_ORIGINS_KEPT
from sinks.keys import Keys

_BATCH = """
-- One ingest or registry batch's writes, atomic (so a Redis that loses its last writes loses all of
-- a batch's or none, with the positions that say so):
-- ARGV: parked prefix, attached-by prefix, m, m x (position field, floor, new, mine), t, t x (lookup
--       key, USCC, version), then items to look up or park: n, n lookup keys, field, payload,
--       sighting, follow (1: a decision whose subject follows its number's moves) (to the end).
local index, parked_keys, versions, positions = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local attached, pending_keys, parked_counts = KEYS[5], KEYS[6], KEYS[7]
local prefix, by = ARGV[1], ARGV[2]
local m = tonumber(ARGV[3])
-- 1. a position behind its floor (what was written), or gone when this worker wrote it: Redis lost
-- writes; write nothing
local behind = {}
for i = 4, 3 + 4 * m, 4 do
  local cur = tonumber(redis.call('HGET', positions, ARGV[i]) or '-1')
  if (cur == -1 and ARGV[i + 3] == '1') or (cur ~= -1 and cur < tonumber(ARGV[i + 1])) then
    behind[#behind + 1] = ARGV[i]
    behind[#behind + 1] = tostring(cur)
  end
end
if #behind > 0 then return {'behind', behind} end
local p = 4 + 4 * m
local t = tonumber(ARGV[p])
p = p + 1
local function split(text)
  local out = {}
  for line in string.gmatch(text or '', '[^\\n]+') do out[#out + 1] = line end
  return out
end
-- the USCC a record with these lookup keys is attached to: that of its first key the index knows
local function resolve(keys)
  for _, k in ipairs(keys) do
    local v = redis.call('HGET', index, k)
    if v then return v end
  end
  return false
end
-- each sighting of a record (ms and origin, sorted as text) in <field>|s of hash ``key``, at most
-- SIGHTINGS_KEPT of them: the earliest and the latest arrived; true when one was let go for it, and
-- (second) true unless it is the same message again
local function sighted(key, field, sighting)
  local held = redis.call('HGET', key, field .. '|s')
  local lines = {}
  if held then
    for line in string.gmatch(held, '[^\\n]+') do
      if line == sighting then return false, false end  -- the same message again
      lines[#lines + 1] = line
    end
  end
  lines[#lines + 1] = sighting
  local dropped = false
  if #lines > SIGHTINGS_KEPT then
    local least = 1
    for i = 2, #lines do if lines[i] < lines[least] then least = i end end
    table.remove(lines, least == 1 and 2 or 1)
    dropped = true
  end
  redis.call('HSET', key, field .. '|s', table.concat(lines, '\\n'))
  return dropped, true
end
-- a decision attached through its legacy numbers: remembered (attached: field -> "subject<TAB>gen<TAB>
-- pending", field|e its payload, field|k its lookup keys, field|h the subjects it was ever attached
-- to, field|s its sightings; attached-by:<key>: the fields attached through that key), so that it
-- follows when a number it was attached by comes to name another organisation
local function remember(field, keys, payload, subject)
  redis.call('HSET', attached, field, subject .. '\\t0\\t0', field .. '|e', payload,
             field .. '|k', table.concat(keys, '\\n'), field .. '|h', subject)
  for _, k in ipairs(keys) do redis.call('SADD', by .. k, field) end
end
-- a sighting the ingest sent straight to the organisation a move not acknowledged yet goes to, at
-- its generation (field|d: the generation, then those sightings): the move, sent again or read after
-- it (``RegistryIndex._moved``), sends no copy of it: only one copy of a department input reaches
-- the organisation that counts it (``inputs``). Not a message sighted before (read again: its first
-- reading may have gone to the organisation before, and been counted there)
local function sent_direct(field, gen, sighting)
  local held = redis.call('HGET', attached, field .. '|d')
  local lines = split(held)
  if lines[1] ~= gen then lines = {gen} end
  for i = 2, #lines do if lines[i] == sighting then return end end
  if #lines > SIGHTINGS_KEPT then return end
  lines[#lines + 1] = sighting
  redis.call('HSET', attached, field .. '|d', table.concat(lines, '\\n'))
end
local moved = {}
-- a remembered decision whose first known number names another organisation now moves there (its
-- generation counted up); one whose move is not acknowledged yet is moved again (the same move)
local function follow(field)
  local entry = redis.call('HGET', attached, field)
  if not entry then return end
  local subject, gen, pending = string.match(entry, '^([^\\t]*)\\t(%d+)\\t(%d)$')
  local now = resolve(split(redis.call('HGET', attached, field .. '|k')))
  if not now then return end
  local was = split(redis.call('HGET', attached, field .. '|h'))
  if now ~= subject then
    gen = tostring(tonumber(gen) + 1)
    local known = false
    for _, s in ipairs(was) do if s == now then known = true end end
    if not known then
      was[#was + 1] = now
      redis.call('HSET', attached, field .. '|h', table.concat(was, '\\n'))
    end
    redis.call('HSET', attached, field, now .. '\\t' .. gen .. '\\t1')
    redis.call('HDEL', attached, field .. '|d')
  elseif pending ~= '1' then
    return
  end
  -- waiting for its acknowledgement: a batch that teaches one of its numbers sends it again
  for _, k in ipairs(split(redis.call('HGET', attached, field .. '|k'))) do
    redis.call('SADD', pending_keys, k)
  end
  local from = {}
  for _, s in ipairs(was) do if s ~= now then from[#from + 1] = s end end
  moved[#moved + 1] = field
  moved[#moved + 1] = now
  moved[#moved + 1] = gen
  moved[#moved + 1] = table.concat(from, '\\n')
  -- (its subject event and sightings are read after the script, not held here: thousands of long,
  -- alike strings made Lua 5.1's string table, Redis 6.2's, slow past Redis's script time limit)
end
-- 2. what the batch teaches the index (a mapping replaced only by a newer version); then the
-- records parked under those keys, each attached by its first known key, and the remembered
-- decisions attached through a key whose mapping moved (or whose move waits for its acknowledgement)
local released = {}
local parked_fields = {}
local to_follow = {}
local followed = {}
for i = p, p + 3 * t - 1, 3 do
  local key, uscc, version = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local held = redis.call('HGET', versions, key)
  local changed = false
  if held == false or version > held then
    if redis.call('HGET', index, key) ~= uscc then
      redis.call('HSET', index, key, uscc)
      changed = true
    end
    redis.call('HSET', versions, key, version)
  end
  if redis.call('SISMEMBER', parked_keys, key) == 1 then
    local entries = redis.call('HGETALL', prefix .. key)
    for j = 1, #entries, 2 do
      released[#released + 1] = key
      released[#released + 1] = ''
      released[#released + 1] = entries[j]
      released[#released + 1] = entries[j + 1]
    end
  end
  local waiting = redis.call('SISMEMBER', pending_keys, key) == 1
  if changed or waiting then
    for _, field in ipairs(redis.call('SMEMBERS', by .. key)) do
      if not followed[field] then
        followed[field] = true
        to_follow[#to_follow + 1] = field
      end
    end
    if waiting and not changed then redis.call('SREM', pending_keys, key) end
  end
end
p = p + 3 * t
for i = 1, #released, 4 do
  local field = released[i + 2]
  if string.sub(field, -2) ~= '|s' then
    local record = cjson.decode(released[i + 3])
    local subject = resolve(record['lookup_keys'])
    local event = record['event'] or {}
    local entry = redis.call('HGET', attached, field)
    if entry then
      subject = string.match(entry, '^([^\\t]*)\\t')
      released[i + 1] = subject .. '\\t' .. string.match(entry, '^[^\\t]*\\t(%d+)')
    else
      released[i + 1] = subject .. '\\t0'
      if event['type'] == 'record' and FOLLOWED_KINDS[(event['record'] or {})['kind'] or ''] then
        remember(field, record['lookup_keys'], released[i + 3], subject)
      end
    end
    parked_fields[field] = released[i + 1]
  end
end
for i = 1, #released, 4 do  -- a record's sightings go where the record goes
  if string.sub(released[i + 2], -2) == '|s' then
    released[i + 1] = parked_fields[string.sub(released[i + 2], 1, -3)] or ''
    local field = string.sub(released[i + 2], 1, -3)
    if redis.call('HGET', attached, field) then
      for line in string.gmatch(released[i + 3], '[^\\n]+') do sighted(attached, field, line) end
    end
  end
end
for _, field in ipairs(to_follow) do follow(field) end
-- 3. each record's USCC by its first known lookup key; a record with none is parked under all: its
-- content once (field), each sighting of it in field|s. A decision attached so is remembered
-- (``remember``); one remembered already goes where it is, at its generation.
local resolved = {}
while p <= #ARGV do
  local n = tonumber(ARGV[p])
  local field = ARGV[p + n + 1]
  local payload = ARGV[p + n + 2]
  local sighting = ARGV[p + n + 3]
  local follows = ARGV[p + n + 4] == '1'
  local keys = {}
  for j = 1, n do keys[j] = ARGV[p + j] end
  local found = resolve(keys)
  if found then
    local entry = follows and redis.call('HGET', attached, field)
    if entry then
      local subject, gen, pending = string.match(entry, '^([^\\t]*)\\t(%d+)\\t(%d)$')
      resolved[#resolved + 1] = subject .. '\\t' .. gen
      local _, new = sighted(attached, field, sighting)
      if new and pending == '1' then sent_direct(field, gen, sighting) end
    else
      if follows then
        remember(field, keys, payload, found)
        sighted(attached, field, sighting)
      end
      resolved[#resolved + 1] = found .. '\\t0'
    end
  else
    for j = 1, n do
      redis.call('HSETNX', prefix .. keys[j], field, payload)
      if sighted(prefix .. keys[j], field, sighting) and j == 1 then
        -- a re-send past the sightings kept: counted once as an input accounted for (``parked_inputs``)
        redis.call('HINCRBY', parked_counts, 'sightings_let_go', 1)
      end
      redis.call('SADD', parked_keys, keys[j])
    end
    resolved[#resolved + 1] = ''
  end
  p = p + n + 5
end
-- 4. the positions reached (never backwards)
for i = 4, 3 + 4 * m, 4 do
  local cur = tonumber(redis.call('HGET', positions, ARGV[i]) or '-1')
  if tonumber(ARGV[i + 2]) > cur then
    redis.call('HSET', positions, ARGV[i], ARGV[i + 2])
  end
end
return {'ok', released, resolved, moved}
"""

_ACK_MOVES = """
-- moves whose notices and copies the broker acknowledged: no longer sent again (unless moved since);
-- returns how many were waiting (each move counted once, however often it was sent)
local attached = KEYS[1]
local acknowledged = 0
for i = 1, #ARGV, 2 do
  local entry = redis.call('HGET', attached, ARGV[i])
  if entry then
    local subject, gen, pending = string.match(entry, '^([^\\t]*)\\t(%d+)\\t(%d)$')
    if pending == '1' and gen == ARGV[i + 1] then
      redis.call('HSET', attached, ARGV[i], subject .. '\\t' .. gen .. '\\t0')
      redis.call('HDEL', attached, ARGV[i] .. '|d')
      acknowledged = acknowledged + 1
    end
  end
end
return acknowledged
"""

_UNPARK = """
local parked_keys, prefix = KEYS[1], ARGV[1]
for i = 2, #ARGV, 2 do
  local key = ARGV[i]
  redis.call('HDEL', prefix .. key, ARGV[i + 1], ARGV[i + 1] .. '|s')
  if redis.call('HLEN', prefix .. key) == 0 then
    redis.call('SREM', parked_keys, key)
  end
end
return 1
"""


_NOTE_LOST = """
-- Redis lost an agent's writes (ARGV: Redis's time in ms, partitions read again, the agent, 1 when its
-- re-read reached where it had been): the first time noted once, the last kept as the latest of the
-- times noted (two workers' notes may come in either order), and the latest re-read that caught up
local key, now = KEYS[1], tonumber(ARGV[1])
redis.call('HSETNX', key, 'since', ARGV[1])
if now > tonumber(redis.call('HGET', key, 'last') or '0') then redis.call('HSET', key, 'last', ARGV[1]) end
if ARGV[4] == '1' and now > tonumber(redis.call('HGET', key, 'caught_up') or '0') then
  redis.call('HSET', key, 'caught_up', ARGV[1])
end
redis.call('HINCRBY', key, 'rewinds', ARGV[2])
redis.call('HSET', key, 'agent', ARGV[3])
return 1
"""

_FOLLOWED = """
-- a run of follow-numbers that began after the last loss noted: the note is cleared (1); a loss noted
-- since the run began, or in its first millisecond, stays (0)
local key, began = KEYS[1], ARGV[1]
local last = redis.call('HGET', key, 'last')
if last and tonumber(last) < tonumber(began) then
  redis.call('HDEL', key, 'since', 'last', 'caught_up', 'rewinds', 'agent')
  return 1
end
return 0
"""


class NumbersToFollow(NamedTuple):
    """Redis lost the identifier index's last writes (``Keys.numbers_to_follow``): when (ms: the first
    loss noted, the last), how many partitions were read again for them, the last agent that noted one."""
    since_ms: int
    last_ms: int
    rewinds: int
    agent: str
    caught_up_ms: int = 0  # the latest re-read for it that reached where its agent had been (0: none yet)

    def said(self) -> str:
        def at(ms: int) -> str:
            return dt.datetime.fromtimestamp(ms / 1000, CHINA).isoformat(timespec="seconds")

        read = f"{self.rewinds} partition(s) read again by" if self.rewinds else "a re-read of"
        caught = f"; a re-read caught up at {at(self.caught_up_ms)}" if self.caught_up_ms else ""
        return (f"Redis lost the identifier index's last writes ({read} the ingest or registry agent, noted first "
                f"at {at(self.since_ms)}, last at {at(self.last_ms)}{caught})")

    def advice(self) -> str:
        return (f"{self.said()}: decisions sent by a legacy number may be on another organisation than their number "
                "names; once the workers have caught up, run `creditstream follow-numbers` (docs/operations.md, "
                "Backups and losing Redis)")


class PositionsBehind(Exception):
    """Redis records an input partition's position behind the one read when the batch began: it
    lost its last writes meanwhile (a restart from an older AOF, a replica promoted)."""

    def __init__(self, positions: dict[str, int]):
        super().__init__(f"positions behind: {positions}")
        self.positions = positions  # partition field -> the position Redis records (-1: none)


SIGHTINGS_KEPT = SEEN_ORIGINS_KEPT
"""The sightings of one parked record kept (its earliest, and the latest arrived): as many origins as
a record's state keeps (domain/state.py ``SEEN_ORIGINS_KEPT``)."""


def park_field(payload: dict) -> str:
    """The field a record is parked under in each of its keys' hashes: ``#`` and its content's hash.
    Each re-send of the same record (another origin, the same content) is a sighting of it, kept in
    ``<field>|s`` (:func:`sighting`), not another copy: a soak run saw every re-send of a record
    waiting for its registration parked again whole (1.6 KB each, 51 copies of one decision). Fields
    of the form ``<origin>#<hash>`` were written before: each is released as it was."""
    return f"#{payload['event']['hash'][:16]}"


def sighting(event: dict) -> str:
    """One sighting of a parked record: its arrival time (ms, zero-padded so that text sorts as time)
    and its origin."""
    return f"{int(event['event_ms']):015d}\t{event['origin']}"


class Released(NamedTuple):
    subject_id: str
    origin: str  # the field it is parked under (unpark removes it)
    parked: dict  # what was parked: the subject event without its subject
    sightings: tuple[tuple[int, str], ...] = ()  # each (ms, origin) it was sent with, earliest first
    gen: int = 0  # a decision that follows its number: the move generation it goes at (domain/events.py)

    def events(self) -> list[dict]:
        """The parked subject event once per sighting, each with its own arrival time and origin, in
        the order of their times: the state folds them as it would have on their arrival (its
        version's first sighting, the origins it has seen)."""
        event = self.parked["event"]
        if not self.sightings:
            return [event]
        return [dict(event, event_ms=ms, origin=origin) for ms, origin in self.sightings]


class Moved(NamedTuple):
    """A decision attached through a legacy number whose first known number now names another
    organisation (存量代码转换 after the number moved, or after the registration authority outranked
    what a department's record taught): it leaves ``left`` and goes to ``subject_id`` at the
    ``gen``-th move (domain/events.py ``DetachedEvent``, ``RecordEvent.attach_gen``)."""
    field: str
    subject_id: str
    gen: int
    left: tuple[str, ...]
    parked: dict  # the record's payload as it was attached: {"lookup_keys", "event"}
    sightings: tuple[tuple[int, str], ...] = ()
    # sightings the ingest agent sent straight to ``subject_id`` at ``gen`` while the move waited for
    # its acknowledgement (a re-send between the move's script and its read, or before it was sent
    # again): no copy of them, or the organisation would receive the input twice and count it
    # (``inputs``) only if the ingest's copy came first
    direct: frozenset[tuple[int, str]] = frozenset()

    def events(self) -> list[dict]:
        """The decision's subject event once per sighting (as :meth:`Released.events`)."""
        return Released(self.subject_id, self.field, self.parked, self.sightings).events()


class Resolved(NamedTuple):
    subject_id: str
    gen: int  # the move generation the record is attached at (0: never moved)


class BatchApplied(NamedTuple):
    released: list[Released]
    resolved: list[Resolved | None]  # each item's subject, or None: parked
    moved: list[Moved]


class RegistryIndex:
    def __init__(self, redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._prefix = keys.parked("")
        self._by_prefix = keys.attached_by("")
        followed = "({" + ", ".join(f"['{kind}'] = true" for kind in sorted(MOVES_WITH_ITS_NUMBER)) + "})"
        self._batch = redis.register_script(_BATCH.replace("SIGHTINGS_KEPT", str(SIGHTINGS_KEPT))
                                            .replace("FOLLOWED_KINDS", followed))
        self._unpark = redis.register_script(_UNPARK)
        self._ack_moves = redis.register_script(_ACK_MOVES)
        self._followed = redis.register_script(_FOLLOWED)
        self._note_lost = redis.register_script(_NOTE_LOST)

    async def note_lost_writes(self, agent: str, partitions: int, caught_up: bool = False) -> None:
        """The ingest or registry ``agent`` reads ``partitions`` again because Redis lost writes of its
        (0: its re-read reached where it had been): what the index remembered of decisions attached
        through a legacy number, and of their moves, may be gone while the subject-event log keeps what
        they sent (docs/operations.md, Backups and losing Redis). Noted for the operator
        (``numbers_to_follow``), until a run of ``creditstream follow-numbers`` that began after it."""
        await self._note_lost(keys=[self.keys.numbers_to_follow],
                              args=[await redis_now_ms(self.redis), partitions, agent, int(caught_up)])

    async def numbers_to_follow(self) -> NumbersToFollow | None:
        """What :meth:`note_lost_writes` noted, None when nothing (or a run of follow-numbers since)."""
        since, last, rewinds, agent, caught_up = await self.redis.hmget(
            self.keys.numbers_to_follow, ["since", "last", "rewinds", "agent", "caught_up"])
        if since is None:
            return None
        return NumbersToFollow(int(since), int(last or since), int(rewinds or 0), (agent or b"").decode(),
                               int(caught_up or 0))

    async def numbers_followed(self, began_ms: int) -> bool:
        """A run of follow-numbers that began at ``began_ms`` ended: the note is cleared if it is older
        (True); one noted since (Redis lost writes again during the run) stays (False)."""
        return bool(await self._followed(keys=[self.keys.numbers_to_follow], args=[began_ms]))

    async def positions(self, agent: str, fields: list[str]) -> dict[str, int | None]:
        """The next offset of each input partition (``"topic/partition"``) that ``agent``'s batches
        have applied to Redis (``Keys.input_positions``); None: never written."""
        if not fields:
            return {}
        values = await self.redis.hmget(self.keys.input_positions(agent), fields)
        return {f: (int(v) if v is not None else None) for f, v in zip(fields, values)}

    async def acknowledged_positions(self, agent: str, fields: list[str]) -> dict[str, str | None]:
        """Where each input partition goes on after the batches ``agent`` applied and the broker
        acknowledged (``Keys.acknowledged_positions``: ``next@mark``, agents/input_positions.py);
        None: none recorded."""
        if not fields:
            return {}
        values = await self.redis.hmget(self.keys.acknowledged_positions(agent), fields)
        return {f: (v.decode() if isinstance(v, bytes) else v) for f, v in zip(fields, values)}

    async def acknowledge_positions(self, agent: str, positions: dict[str, str]) -> None:
        """A batch's messages are acknowledged: record where its partitions go on."""
        if positions:
            await self.redis.hset(self.keys.acknowledged_positions(agent), mapping=positions)

    async def first_positions(self, agent: str, positions: dict[str, int]) -> None:
        """Record these positions where none is recorded yet (HSETNX)."""
        pipe = self.redis.pipeline(transaction=False)
        for field, offset in positions.items():
            pipe.hsetnx(self.keys.input_positions(agent), field, offset)
        await pipe.execute()

    async def apply_batch(self, teach: list[tuple[str, str, str]], items: list[tuple[tuple[str, ...], str, dict]],
                          positions: tuple[str, list[tuple[str, int, int, bool]]] | None = None) -> BatchApplied:
        """A batch's writes, in one atomic script:

        1. ``positions`` = (agent, [(partition field, floor, next offset after the batch, mine)]):
           if Redis records one behind its floor (what was written: agents/input_positions.py), or
           none where this worker wrote one (``mine``), it lost writes; nothing is written and
           :class:`PositionsBehind` is raised;
        2. ``teach``: (lookup key, USCC, version) triples, each stored only if its version
           (domain/attach.py ``mapping_version``) is newer than the one the index holds for that key
           (a mapping stored before versions were kept counts as older than any); the records
           parked under those keys are released, each to the USCC of its first known key; the
           decisions attached through a key whose mapping moved follow it (:class:`Moved`);
        3. ``items``: (lookup keys, origin id, payload to park): the USCC of each one's first known
           key, or None, and then it is parked under all its keys (field: :func:`park_field`); a
           decision attached so is remembered with its keys (``Keys.attached``) so that it can follow;
        4. the positions reached, never moved backwards.

        The released records stay parked (:meth:`unpark` once they are on the log), the moves
        waiting (:meth:`acknowledge_moves`): a batch that fails before its produce, run again,
        releases and moves them again."""
        agent, spec = positions if positions is not None else ("", [])
        args: list = [self._prefix, self._by_prefix, len(spec)]
        for field, floor, reached, mine in spec:
            args += [field, floor, reached, int(mine)]
        args.append(len(teach))
        for key, uscc, version in teach:
            args += [key, uscc, version]
        for lookup_keys, _origin, payload in items:
            args.append(len(lookup_keys))
            args.extend(lookup_keys)
            args.append(park_field(payload))
            args.append(orjson.dumps(payload))
            args.append(sighting(payload["event"]))
            args.append(int(follows_its_number(payload["event"])))
        status, *rest = await self._batch(keys=[self.keys.id_index, self.keys.parked_keys,
                                                self.keys.id_index_versions, self.keys.input_positions(agent),
                                                self.keys.attached, self.keys.attached_pending,
                                                self.keys.parked_counts],
                                          args=args)
        if status == b"behind":
            flat = rest[0]
            raise PositionsBehind({flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)})
        flat, resolved, moved = rest
        return BatchApplied(released_of(flat), [_resolved(v) for v in resolved], await self._moved(moved))

    MOVED_READ = 1000
    """Moved decisions whose subject events are read per pipelined round trip."""

    async def _moved(self, flat: list) -> list[Moved]:
        """The decisions the batch script moved, (field, USCC, gen, the subjects left) fours, with
        their subject events and sightings read from ``Keys.attached`` (written once; a sighting added
        since is one more copy, as it would be at the next move)."""
        out: list[Moved] = []
        fours = [flat[i:i + 4] for i in range(0, len(flat), 4)]
        for start in range(0, len(fours), self.MOVED_READ):
            chunk = fours[start:start + self.MOVED_READ]
            pipe = self.redis.pipeline(transaction=False)
            for field, *_ in chunk:
                name = field.decode()
                pipe.hmget(self.keys.attached, [f"{name}|e", f"{name}|s", f"{name}|d"])
            for (field, subject, gen, left), (payload, seen, direct) in zip(chunk, await pipe.execute()):
                out.append(Moved(field.decode(), subject.decode(), int(gen),
                                 tuple(x for x in left.decode().split("\n") if x), orjson.loads(payload),
                                 _sightings((seen or b"").decode()), _sent_direct(direct, int(gen))))
        return out

    async def acknowledge_moves(self, moved: list[Moved]) -> int:
        """The notices and copies of these moves are on the log: they are not sent again. Returns how
        many of them were waiting for it (a move sent again after a failed produce is counted once)."""
        if not moved:
            return 0
        args: list = []
        for m in moved:
            args += [m.field, m.gen]
        return int(await self._ack_moves(keys=[self.keys.attached], args=args))

    async def unpark(self, released: list[Released]) -> None:
        """Remove released records from every key they were parked under."""
        if not released:
            return
        args: list = [self._prefix]
        for r in released:
            for key in r.parked.get("lookup_keys", ()):
                args += [key, r.origin]
        await self._unpark(keys=[self.keys.parked_keys], args=args)

    async def parked_inputs(self) -> int:
        """How many department inputs wait parked: each parked record once per sighting kept (a
        re-send of it is one more input), and the re-sends past the sightings kept
        (``Keys.parked_counts``). Released, each sighting is a subject event the subject agent counts
        as an input (``stats``): ``creditstream report``'s progress adds the two."""
        keys = await self.redis.smembers(self.keys.parked_keys)
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.hgetall(self.keys.parked(k.decode() if isinstance(k, bytes) else k))
        pipe.hget(self.keys.parked_counts, "sightings_let_go")
        *hashes, let_go = await pipe.execute()
        seen: dict[bytes, int] = {}
        for fields in hashes:
            for field, value in fields.items():
                if field.endswith(b"|s"):
                    name, n = field[:-2], value.count(b"\n") + 1
                else:
                    name, n = field, 1
                seen[name] = max(seen.get(name, 0), n)
        return sum(seen.values()) + int(let_go or 0)

    async def parked_count(self) -> int:
        """How many records wait parked (each once, however often it was sent)."""
        keys = await self.redis.smembers(self.keys.parked_keys)
        if not keys:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.hkeys(self.keys.parked(k.decode() if isinstance(k, bytes) else k))
        origins = set()
        for fields in await pipe.execute():
            origins.update(f for f in fields if not f.endswith(b"|s"))
        return len(origins)

    async def parked_records(self, limit: int = 1000) -> list[dict]:
        keys = sorted(k.decode() for k in await self.redis.smembers(self.keys.parked_keys))
        out: dict[str, dict] = {}
        for k in keys:
            for origin, payload in (await self.redis.hgetall(self.keys.parked(k))).items():
                if origin.endswith(b"|s"):
                    continue
                out.setdefault(origin.decode(), orjson.loads(payload))
                if len(out) >= limit:
                    return list(out.values())
        return list(out.values())


def follows_its_number(event: dict) -> bool:
    """Whether a subject event attached through a legacy number follows the number's moves: a
    decision (domain/kinds.py ``MOVES_WITH_ITS_NUMBER``)."""
    return event.get("type") == "record" and (event.get("record") or {}).get("kind") in MOVES_WITH_ITS_NUMBER


def _resolved(value: bytes | str) -> Resolved | None:
    text = value.decode() if isinstance(value, bytes) else value
    if not text:
        return None
    subject, _, gen = text.partition("\t")
    return Resolved(subject, int(gen or 0))


def _sent_direct(value: bytes | None, gen: int) -> frozenset[tuple[int, str]]:
    """The sightings the ingest sent straight to where the move at ``gen`` goes (``<field>|d``: the
    generation, then the sightings; another generation's are not this move's)."""
    if not value:
        return frozenset()
    head, _, rest = value.decode().partition("\n")
    return frozenset(_sightings(rest)) if head == str(gen) else frozenset()


def _sightings(text: str) -> tuple[tuple[int, str], ...]:
    lines = [x for x in text.split("\n") if x]
    return tuple(sorted((int(ms), origin) for ms, _, origin in (x.partition("\t") for x in lines)))


def released_of(flat: list) -> list[Released]:
    """The records the batch script released: (key, "USCC<TAB>gen", field, value) fours, a record once
    whatever the number of keys it was parked under, with its sightings (``<field>|s``) when it has them."""
    found: dict[str, tuple[Resolved, dict]] = {}
    seen: dict[str, tuple[tuple[int, str], ...]] = {}
    for i in range(0, len(flat), 4):
        field = flat[i + 2].decode()
        if field.endswith("|s"):
            seen[field[:-2]] = _sightings(flat[i + 3].decode())
        elif field not in found:
            target = _resolved(flat[i + 1])
            if target is not None:
                found[field] = (target, orjson.loads(flat[i + 3]))
    return [Released(target.subject_id, field, parked, seen.get(field, ()), target.gen)
            for field, (target, parked) in found.items()]
