"""Read-side helpers for operators: a subject's state, resolved from any identifier it is known by."""

from __future__ import annotations

import orjson

from creditstream.app import redis_client
from creditstream.settings import Settings
from domain.attach import lookup_key
from domain.identifiers import normalise_code
from sinks.keys import Keys, resolve_keys


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


async def subject_state(settings: Settings, code: str) -> dict | None:
    redis = redis_client(settings)
    try:
        keys = await resolve_keys(redis, settings.namespace)
        sid = await resolve_subject_id(redis, keys, code)
        if sid is None:
            return None
        raw = await redis.get(keys.subject(sid))
        return orjson.loads(raw) if raw is not None else None
    finally:
        await redis.aclose()
