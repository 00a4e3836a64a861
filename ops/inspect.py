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


async def subject_lists(settings: Settings, code: str) -> dict | None:
    """A subject's current list memberships (from its last evaluation), or None if unknown."""
    state = await subject_state(settings, code)
    return None if state is None else lists_view(state)


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


async def list_names(settings: Settings) -> dict[str, int]:
    """Every list with members, and its size."""
    redis = redis_client(settings)
    try:
        keys = await resolve_keys(redis, settings.namespace)
        names = [k.decode()[len(keys.list_prefix):]
                 async for k in redis.scan_iter(match=keys.list_prefix + "*", count=1000)]
        pipe = redis.pipeline(transaction=False)
        for n in names:
            pipe.scard(keys.list_members(n))
        return dict(sorted(zip(names, await pipe.execute())))
    finally:
        await redis.aclose()


async def list_members(settings: Settings, name: str, *, cursor: int = 0, count: int = 100) -> tuple[list[str], int]:
    """One page of a list's members (sorted within the page) and the cursor of the next (0: done)."""
    redis = redis_client(settings)
    try:
        keys = await resolve_keys(redis, settings.namespace)
        members: list[str] = []
        key = keys.list_members(name)
        next_cursor = cursor
        while len(members) < count:
            next_cursor, page = await redis.sscan(key, cursor=next_cursor, count=count)
            members += [m.decode() for m in page]
            if next_cursor == 0:
                break
        return sorted(members), int(next_cursor)
    finally:
        await redis.aclose()
