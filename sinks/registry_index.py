"""The identifier index and parked records in Redis (存量代码转换 at the storage edge).

Two operations, each one atomic Lua script per batch, so that a record is never parked after the
registry has learnt its identifier and never left parked once it has:

* :meth:`RegistryIndex.lookup_or_park`: for each record, the USCC of its first known lookup key;
  a record with none is parked under all its keys;
* :meth:`RegistryIndex.learn`: store (lookup key -> USCC) pairs and return the records parked
  under those keys. The caller emits them, and only after the broker acknowledged them calls
  :meth:`RegistryIndex.unpark`: a crash in between releases them again (harmless: they keep their
  origin ids, which the subject agent dedupes on).

The scripts touch keys they derive from arguments (``{ns}:parked:<key>``): fine on a single Redis
server or a primary with replicas; Redis Cluster would need hash tags (docs/redis.md).
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from sinks.keys import Keys

_LOOKUP_OR_PARK = """
local index, parked_keys, prefix = KEYS[1], KEYS[2], ARGV[1]
local out = {}
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local origin = ARGV[i + n + 1]
  local payload = ARGV[i + n + 2]
  local found = false
  for j = 1, n do
    local v = redis.call('HGET', index, ARGV[i + j])
    if v then found = v; break end
  end
  if found then
    out[#out + 1] = found
  else
    for j = 1, n do
      redis.call('HSET', prefix .. ARGV[i + j], origin, payload)
      redis.call('SADD', parked_keys, ARGV[i + j])
    end
    out[#out + 1] = ''
  end
  i = i + n + 3
end
return out
"""

_LEARN = """
local index, parked_keys, versions, prefix = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local out = {}
for i = 2, #ARGV, 3 do
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
      out[#out + 1] = key
      out[#out + 1] = uscc
      out[#out + 1] = entries[j]
      out[#out + 1] = entries[j + 1]
    end
  end
end
return out
"""

_UNPARK = """
local parked_keys, prefix = KEYS[1], ARGV[1]
for i = 2, #ARGV, 2 do
  local key = ARGV[i]
  redis.call('HDEL', prefix .. key, ARGV[i + 1])
  if redis.call('HLEN', prefix .. key) == 0 then
    redis.call('SREM', parked_keys, key)
  end
end
return 1
"""


class Released(NamedTuple):
    subject_id: str
    origin: str
    parked: dict  # what was parked: the subject event without its subject


class RegistryIndex:
    def __init__(self, redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._prefix = keys.parked("")
        self._lookup_or_park = redis.register_script(_LOOKUP_OR_PARK)
        self._learn = redis.register_script(_LEARN)
        self._unpark = redis.register_script(_UNPARK)

    async def lookup_or_park(self, items: list[tuple[tuple[str, ...], str, dict]]) -> list[str | None]:
        """``items``: (lookup keys, origin id, payload to park). Returns the USCC or None (parked)."""
        if not items:
            return []
        args: list = [self._prefix]
        for lookup_keys, origin, payload in items:
            args.append(len(lookup_keys))
            args.extend(lookup_keys)
            args.append(origin)
            args.append(orjson.dumps(payload))
        result = await self._lookup_or_park(keys=[self.keys.id_index, self.keys.parked_keys], args=args)
        return [(v.decode() if isinstance(v, bytes) else v) or None for v in result]

    async def learn(self, pairs: list[tuple[str, str, str]]) -> list[Released]:
        """Store (lookup key, USCC, version) triples, each only if its version (domain/attach.py
        ``mapping_version``) is newer than the one the index holds for that key (a mapping stored
        before versions were kept counts as older than any); return the records parked under those
        keys (still parked), to the USCC the index holds then."""
        if not pairs:
            return []
        args: list = [self._prefix]
        for key, uscc, version in pairs:
            args += [key, uscc, version]
        flat = await self._learn(keys=[self.keys.id_index, self.keys.parked_keys, self.keys.id_index_versions],
                                 args=args)
        released: dict[str, Released] = {}
        for i in range(0, len(flat), 4):
            uscc = flat[i + 1].decode()
            origin = flat[i + 2].decode()
            if origin not in released:
                released[origin] = Released(uscc, origin, orjson.loads(flat[i + 3]))
        return list(released.values())

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
            origins.update(fields)
        return len(origins)

    async def parked_records(self, limit: int = 1000) -> list[dict]:
        keys = sorted(k.decode() for k in await self.redis.smembers(self.keys.parked_keys))
        out: dict[str, dict] = {}
        for k in keys:
            for origin, payload in (await self.redis.hgetall(self.keys.parked(k))).items():
                out.setdefault(origin.decode(), orjson.loads(payload))
                if len(out) >= limit:
                    return list(out.values())
        return list(out.values())
