"""What a worker holds in memory, holder by holder (内存占用): the entries of every bounded cache it
keeps, and each one's bound.

A worker's memory past its code is its caches: the rules core's memo caches of checks, normalisers
and dates (domain/), the storage ids of subjects (sinks/keys.py), the index entries the ingest agent
has taught (agents/ingest.py) and the states the subject agent holds (sinks/redis_state.py). Each is
bounded; this module says how full each one is, for ``/metrics``
(``creditstream_worker_held_entries`` and ``creditstream_worker_held_capacity``, by ``holder``) and
for the worker's last log line ("pipeline stopped", ``held``). Counting costs a ``len`` per holder,
at a scrape, never per event.

Module-level caches are found here by name; a cache that lives in an object registers itself with
:func:`hold` (held by a weak reference: a holder that is gone is no longer reported).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, NamedTuple


class Held(NamedTuple):
    entries: int
    capacity: int | None  # None: no one count bounds it (the state cache: bytes; months_added: each table)


_HOLDERS: dict[str, tuple[weakref.ref, Callable[[Any], Held]]] = {}


def hold(name: str, owner: object, count: Callable[[Any], Held]) -> None:
    """Report ``count(owner)`` as holder ``name`` while ``owner`` lives (a newer owner replaces it)."""
    _HOLDERS[name] = (weakref.ref(owner), count)


def _lru(cache: Any) -> Held:
    info = cache.cache_info()
    return Held(info.currsize, info.maxsize)


def memo_caches() -> dict[str, Any]:
    """The rules core's memo caches (functools.lru_cache), by name: checks and normalisers of the
    values records carry (domain/identifiers.py ``MEMO_ENTRIES``), and dates."""
    from domain import clock, facts, fields, history, identifiers, rulebook

    return {"is_valid_uscc": identifiers.is_valid_uscc, "uscc_shape_ok": identifiers.uscc_shape_ok,
            "valid_resident_id": fields._valid_resident_id, "valid_org_code": fields._valid_org_code,
            "valid_reg_no": fields._valid_reg_no,
            **{f"normalise:{getattr(f, '__name__', f)}": c for f, c in fields._CACHED_NORMALISERS.items()},
            "date_of_day": clock._date_of_day, "due_ms": clock.due_ms, "plus_years_iso": history._plus_years_iso,
            "date": facts._d, "plus_years": facts._plus_years, "rulebook_date": rulebook._parse}


def held() -> dict[str, Held]:
    """Every holder's entries and bound, by name."""
    from domain import calendar
    from sinks import keys

    out = {name: _lru(cache) for name, cache in memo_caches().items()}
    out["storage_ids"] = Held(sum(len(d) for d in keys._STORAGE_IDS.values()), keys.STORAGE_IDS_KEPT)
    out["iso_dates"] = Held(len(calendar._ISO), calendar.DATES_KEPT)
    out["months_added"] = Held(sum(len(d) for d in calendar._ADDED.values()), None)
    for name, (ref, count) in list(_HOLDERS.items()):
        owner = ref()
        if owner is None:
            _HOLDERS.pop(name, None)
        else:
            out[name] = count(owner)
    return out


def summary() -> dict[str, int]:
    """The holders that hold anything: name -> entries (the worker's last log line)."""
    return {name: h.entries for name, h in sorted(held().items()) if h.entries}
