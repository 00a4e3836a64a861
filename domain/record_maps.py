"""The per-record maps of a subject's state, and how an input changes them without copying them.

A subject's state holds four maps keyed by record key (记录): ``records`` (the entries),
``facts`` (what each record counts for), ``timeline["publicity"]`` (each record's publicity
changes) and ``evaluation["publicity"]`` (each record's publicity on the subject's clock). The rules
core never changes the state it is given, so an input that changes one record used to copy all four
maps: for a hot subject of 4,000 records, four copies of 4,000 entries and four frees of the old
ones on every input, the cost growing with the subject's history (issue 13).

A large state (more than :data:`PERSISTENT_FROM` records) keeps these maps as persistent maps
(``immutables.Map``, a hash array mapped trie): setting an entry makes a new map that shares all the
others with the old one, in time that does not grow with the map. The state the core was given
stays as it was, and the new one costs what the input changed. The core keeps the form it is given
(plain dicts in, plain dicts out), so readers, tests and the stored form are unchanged; the worker
turns the large states it reads into this form (sinks/redis_state.py ``begin``), and writes them
entry by entry as before (sinks/state_codec.py: a large state is stored split, one part per record).

Both forms read alike (``Mapping``: ``get``, ``[]``, ``in``, ``len``, iteration); writes go through
:func:`editable` / :func:`finished` (many entries) or :func:`with_entry` (one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immutables import Map

PERSISTENT_FROM = 64
"""A state with more records than this keeps its per-record maps persistent (:func:`persistent`)."""

SECTIONS = (("records", None), ("facts", None), ("timeline", "publicity"), ("evaluation", "publicity"))
"""The per-record maps of a state, as (top-level key, key inside it or None)."""

Editable = Any  # a dict, or an immutables MapMutation: get, [], []=, pop, in, len (no iteration)


def is_persistent(mapping: Any) -> bool:
    return isinstance(mapping, Map)


def editable(mapping: Mapping[str, Any] | None) -> Editable:
    """A working copy of ``mapping`` to set and pop entries in, leaving ``mapping`` as it was: a
    dict's copy, or a persistent map's mutation (which shares every entry not changed)."""
    if mapping is None:
        return {}
    if isinstance(mapping, Map):
        return mapping.mutate()
    return dict(mapping)


def finished(working: Editable) -> Mapping[str, Any]:
    """The map a working copy from :func:`editable` became (in the form it was made from)."""
    if isinstance(working, dict):
        return working
    return working.finish()  # type: ignore[no-any-return]


def with_entry(mapping: Mapping[str, Any] | None, key: str, value: Any) -> Mapping[str, Any]:
    """``mapping`` with ``key`` set to ``value``, ``mapping`` left as it was."""
    if isinstance(mapping, Map):
        return mapping.set(key, value)
    return {**(mapping or {}), key: value}


def like(form: Any, mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """``mapping`` in the form of ``form`` (persistent if ``form`` is)."""
    if isinstance(form, Map) and not isinstance(mapping, Map):
        return Map(mapping)
    return mapping


def plain_map(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return mapping if isinstance(mapping, dict) else dict(mapping.items())


def _convert(state: dict[str, Any], convert: Any) -> dict[str, Any]:
    out = dict(state)
    for top in ("records", "facts"):
        if isinstance(out.get(top), _MAPS):
            out[top] = convert(out[top])
    for top in ("timeline", "evaluation"):
        section = out.get(top)
        if isinstance(section, dict) and isinstance(section.get("publicity"), _MAPS):
            out[top] = dict(section, publicity=convert(section["publicity"]))
    return out


def persistent(state: Any, above: int = PERSISTENT_FROM) -> Any:
    """``state`` with its per-record maps persistent if it has more than ``above`` records (a new
    state dict; the maps already persistent are kept), else ``state`` itself."""
    if state is None or len(state.get("records") or ()) <= above:
        return state
    if all(is_persistent(m) for m in sections(state) if m is not None):
        return state
    return _convert(state, lambda m: m if isinstance(m, Map) else Map(m))


def plain(state: Any) -> Any:
    """``state`` with plain dicts for its per-record maps (``state`` itself if it has no persistent one)."""
    if state is None or not any(is_persistent(m) for m in sections(state) if m is not None):
        return state
    return _convert(state, plain_map)


def sections(state: Mapping[str, Any]) -> list[Mapping[str, Any] | None]:
    """The four per-record maps of a state (None where it has none): records, facts, publicity
    tracks, publicity views."""
    out: list[Mapping[str, Any] | None] = []
    for top, inner in SECTIONS:
        part = state.get(top)
        if inner is not None and isinstance(part, dict):
            part = part.get(inner)
        out.append(part if isinstance(part, _MAPS) else None)
    return out


_MAPS = (dict, Map)


def json_default(value: Any) -> Any:
    """orjson's ``default``: a persistent map is written as the JSON object it stands for, its keys
    sorted (a persistent map's own order follows the keys' hashes, which differ between processes)."""
    if isinstance(value, Map):
        return dict(sorted(value.items()))
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
