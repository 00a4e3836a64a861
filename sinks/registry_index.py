"""The identifier index and parked records in Redis (存量代码转换 at the storage edge).

One atomic Lua script per batch (:meth:`RegistryIndex.apply_batch`), so that a record is never
parked after the registry has learnt its identifier and never left parked once it has:

1. check the batch's input positions: Redis must not record one behind what it said when the batch
   began (it lost its last writes: then nothing is written, and the agent re-reads from there);
2. learn: store (lookup key -> USCC) pairs and return the records parked under those keys. The
   caller emits them, and only after the broker acknowledged them calls
   :meth:`RegistryIndex.unpark`: a crash in between releases them again (harmless: they keep their
   origin ids, which the subject agent dedupes on);
3. look up or park: for each record, the USCC of its first known lookup key; a record with none is
   parked under all its keys;
4. record the positions the batch reached, with what it wrote: a Redis that loses its last writes
   loses them together, and the next batch of that partition finds its position behind the log
   and re-reads the lost inputs (agents/input_positions.py).

The scripts touch keys they derive from arguments (``{ns}:parked:<key>``): fine on a single Redis
server or a primary with replicas; a Redis Cluster is refused at start (creditstream/connections.py
``check_redis``).
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from domain.state import SEEN_ORIGINS_KEPT
from sinks.keys import Keys

_BATCH = """
-- One ingest or registry batch's writes, atomic (so a Redis that loses its last writes loses all of
-- a batch's or none, with the positions that say so):
-- ARGV: prefix, m, m x (position field, floor, new, mine), t, t x (lookup key, USCC, version),
--       then items to look up or park: n, n lookup keys, field, payload, sighting (to the end).
local index, parked_keys, versions, positions = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix = ARGV[1]
local m = tonumber(ARGV[2])
-- 1. a position behind its floor (what was written), or gone when this worker wrote it: Redis lost
-- writes; write nothing
local behind = {}
for i = 3, 2 + 4 * m, 4 do
  local cur = tonumber(redis.call('HGET', positions, ARGV[i]) or '-1')
  if (cur == -1 and ARGV[i + 3] == '1') or (cur ~= -1 and cur < tonumber(ARGV[i + 1])) then
    behind[#behind + 1] = ARGV[i]
    behind[#behind + 1] = tostring(cur)
  end
end
if #behind > 0 then return {'behind', behind} end
local p = 3 + 4 * m
local t = tonumber(ARGV[p])
p = p + 1
-- 2. what the batch teaches the index (a mapping replaced only by a newer version), and the records
-- parked under those keys
local released = {}
for i = p, p + 3 * t - 1, 3 do
  local key, uscc, version = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local held = redis.call('HGET', versions, key)
  if held == false or version > held then
    if redis.call('HGET', index, key) ~= uscc then
      redis.call('HSET', index, key, uscc)
    end
    redis.call('HSET', versions, key, version)
  else
    uscc = redis.call('HGET', index, key) or uscc
  end
  if redis.call('SISMEMBER', parked_keys, key) == 1 then
    local entries = redis.call('HGETALL', prefix .. key)
    for j = 1, #entries, 2 do
      released[#released + 1] = key
      released[#released + 1] = uscc
      released[#released + 1] = entries[j]
      released[#released + 1] = entries[j + 1]
    end
  end
end
p = p + 3 * t
-- 3. each record's USCC by its first known lookup key; a record with none is parked under all: its
-- content once (field), each sighting of it (ms and origin, sorted as text) in field|s, at most
-- SIGHTINGS_KEPT of them: the earliest and the latest arrived
local function sighted(key, field, sighting)
  local held = redis.call('HGET', key, field .. '|s')
  local lines = {}
  if held then
    for line in string.gmatch(held, '[^\\n]+') do
      if line == sighting then return end  -- the same message again
      lines[#lines + 1] = line
    end
  end
  lines[#lines + 1] = sighting
  if #lines > SIGHTINGS_KEPT then
    local least = 1
    for i = 2, #lines do if lines[i] < lines[least] then least = i end end
    table.remove(lines, least == 1 and 2 or 1)
  end
  redis.call('HSET', key, field .. '|s', table.concat(lines, '\\n'))
end
local resolved = {}
while p <= #ARGV do
  local n = tonumber(ARGV[p])
  local field = ARGV[p + n + 1]
  local payload = ARGV[p + n + 2]
  local sighting = ARGV[p + n + 3]
  local found = false
  for j = 1, n do
    local v = redis.call('HGET', index, ARGV[p + j])
    if v then found = v; break end
  end
  if found then
    resolved[#resolved + 1] = found
  else
    for j = 1, n do
      redis.call('HSETNX', prefix .. ARGV[p + j], field, payload)
      sighted(prefix .. ARGV[p + j], field, sighting)
      redis.call('SADD', parked_keys, ARGV[p + j])
    end
    resolved[#resolved + 1] = ''
  end
  p = p + n + 4
end
-- 4. the positions reached (never backwards)
for i = 3, 2 + 4 * m, 4 do
  local cur = tonumber(redis.call('HGET', positions, ARGV[i]) or '-1')
  if tonumber(ARGV[i + 2]) > cur then
    redis.call('HSET', positions, ARGV[i], ARGV[i + 2])
  end
end
return {'ok', released, resolved}
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

    def events(self) -> list[dict]:
        """The parked subject event once per sighting, each with its own arrival time and origin, in
        the order of their times: the state folds them as it would have on their arrival (its
        version's first sighting, the origins it has seen)."""
        event = self.parked["event"]
        if not self.sightings:
            return [event]
        return [dict(event, event_ms=ms, origin=origin) for ms, origin in self.sightings]


class RegistryIndex:
    def __init__(self, redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._prefix = keys.parked("")
        self._batch = redis.register_script(_BATCH.replace("SIGHTINGS_KEPT", str(SIGHTINGS_KEPT)))
        self._unpark = redis.register_script(_UNPARK)

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
                          positions: tuple[str, list[tuple[str, int, int, bool]]] | None = None
                          ) -> tuple[list[Released], list[str | None]]:
        """A batch's writes, in one atomic script:

        1. ``positions`` = (agent, [(partition field, floor, next offset after the batch, mine)]):
           if Redis records one behind its floor (what was written: agents/input_positions.py), or
           none where this worker wrote one (``mine``), it lost writes; nothing is written and
           :class:`PositionsBehind` is raised;
        2. ``teach``: (lookup key, USCC, version) triples, each stored only if its version
           (domain/attach.py ``mapping_version``) is newer than the one the index holds for that key
           (a mapping stored before versions were kept counts as older than any);
        3. ``items``: (lookup keys, origin id, payload to park): the USCC of each one's first known
           key, or None, and then it is parked under all its keys (field: :func:`park_field`);
        4. the positions reached, never moved backwards.

        Returns the records parked under the taught keys (still parked: :meth:`unpark` once they
        are on the log), to the USCC the index holds then, and each item's USCC or None."""
        agent, spec = positions if positions is not None else ("", [])
        args: list = [self._prefix, len(spec)]
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
        status, *rest = await self._batch(keys=[self.keys.id_index, self.keys.parked_keys,
                                                self.keys.id_index_versions, self.keys.input_positions(agent)],
                                          args=args)
        if status == b"behind":
            flat = rest[0]
            raise PositionsBehind({flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)})
        flat, resolved = rest
        return released_of(flat), [(v.decode() if isinstance(v, bytes) else v) or None for v in resolved]

    async def unpark(self, released: list[Released]) -> None:
        """Remove released records from every key they were parked under."""
        if not released:
            return
        args: list = [self._prefix]
        for r in released:
            for key in r.parked.get("lookup_keys", ()):
                args += [key, r.origin]
        await self._unpark(keys=[self.keys.parked_keys], args=args)

    async def parked_count(self) -> int:
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


def released_of(flat: list) -> list[Released]:
    """The records the batch script released: (key, USCC, field, value) fours, a record once whatever
    the number of keys it was parked under, with its sightings (``<field>|s``) when it has them."""
    found: dict[str, tuple[str, dict]] = {}
    seen: dict[str, tuple[tuple[int, str], ...]] = {}
    for i in range(0, len(flat), 4):
        field = flat[i + 2].decode()
        if field.endswith("|s"):
            lines = flat[i + 3].decode().split("\n")
            seen[field[:-2]] = tuple(sorted((int(ms), origin) for ms, _, origin in (x.partition("\t") for x in lines)))
        elif field not in found:
            found[field] = (flat[i + 1].decode(), orjson.loads(flat[i + 3]))
    return [Released(subject, field, parked, seen.get(field, ())) for field, (subject, parked) in found.items()]
