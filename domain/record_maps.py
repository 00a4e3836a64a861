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

The same holds for the three large parts of a state's basis (domain/facts.py): ``basis["dates"]``
(how many records count on each decision date), ``basis["pub_dates"]`` (how many publicity changes
fall on each date) and ``basis["adverse"]`` (the adverse records of each date), ``[date, value]``
pairs sorted by date. Every input copied all three whole to leave the state it was given as it
was: for a hot subject of 10,000 inputs some 6,600 pairs per input, growing with its history
(issue 13). A large state holds them as :class:`DatedPairs`, pairs in chunks that a copy shares,
so that an input copies only the chunks it changes.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any, Final

from immutables import Map

PERSISTENT_FROM: Final = 64
"""A state with more records than this keeps its per-record maps persistent (:func:`persistent`)."""

SECTIONS: Final = (("records", None), ("facts", None), ("timeline", "publicity"), ("evaluation", "publicity"))
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
    """``state`` with its per-record maps persistent and its basis's dated parts in chunks
    (:class:`DatedPairs`) if it has more than ``above`` records (a new state dict; the parts already
    in that form are kept), else ``state`` itself."""
    if state is None or len(state.get("records") or ()) <= above:
        return state
    basis = state.get("basis")
    chunk_basis = isinstance(basis, dict) and any(isinstance(basis.get(k), list) for k in DATED_PARTS)
    if not chunk_basis and all(is_persistent(m) for m in sections(state) if m is not None):
        return state
    out = _convert(state, lambda m: m if isinstance(m, Map) else Map(m))
    if chunk_basis:
        out["basis"] = {k: (DatedPairs(v) if k in DATED_PARTS and isinstance(v, list) else v)
                        for k, v in basis.items()}
    return out


def plain(state: Any) -> Any:
    """``state`` with plain dicts for its per-record maps and plain lists for its basis's dated
    parts (``state`` itself if it has neither in the persistent form)."""
    if state is None:
        return state
    basis = state.get("basis")
    chunked = isinstance(basis, dict) and any(isinstance(basis.get(k), DatedPairs) for k in DATED_PARTS)
    if not chunked and not any(is_persistent(m) for m in sections(state) if m is not None):
        return state
    out = _convert(state, plain_map)
    if chunked:
        out["basis"] = {k: (v.pairs() if isinstance(v, DatedPairs) else v) for k, v in basis.items()}
    return out


DATED_PARTS: Final = ("dates", "pub_dates", "adverse")
"""The parts of a basis held as :class:`DatedPairs` in a large state."""
CHUNK: Final = 64
"""Pairs per chunk of a :class:`DatedPairs` as it is built; a chunk is split in two past twice this."""


class DatedPairs:
    """``[date, value]`` pairs sorted by date, held in chunks: a large state's ``basis["dates"]``,
    ``basis["pub_dates"]`` (a count per date) or ``basis["adverse"]`` (the record keys of each date)
    (domain/facts.py). :meth:`copy` shares every chunk with the original; a chunk shared is copied
    before it changes (one made since the copy changes in place), and a pair is replaced, never
    changed in place, so the state a copy was made from stays as it was and an input costs what
    it changed, not the subject's history. Equal to the plain list of the same pairs; written to
    JSON as that list (:func:`json_default`)."""

    def __init__(self, pairs: Any = ()) -> None:
        flat = [p for p in pairs]
        # the dates and the values in chunks side by side: dates[c][i] is the date of values[c][i]
        self.dates: list[list[str]] = [[p[0] for p in flat[i:i + CHUNK]] for i in range(0, len(flat), CHUNK)]
        self.values: list[list[Any]] = [[p[1] for p in flat[i:i + CHUNK]] for i in range(0, len(flat), CHUNK)]
        self.firsts: list[str] = [c[0] for c in self.dates]  # each chunk's first date
        self.size = len(flat)
        # the chunks this one made since it was copied (ids of their dates): changed in place; the
        # others are shared with a copy, and copied before they change
        self.owned: set[int] = {id(c) for c in self.dates}

    def copy(self) -> DatedPairs:
        out = DatedPairs()
        out.dates = list(self.dates)
        out.values = list(self.values)
        out.firsts = list(self.firsts)
        out.size = self.size
        self.owned = set()  # every chunk is shared now: neither may change one in place
        return out

    def _place(self, d: str) -> tuple[int, int]:
        """(chunk, index in it) where date ``d`` is or would go; there is at least one chunk."""
        ci = bisect.bisect_right(self.firsts, d) - 1
        if ci < 0:
            ci = 0
        return ci, bisect.bisect_left(self.dates[ci], d)

    def get(self, d: str) -> Any:
        """The value of date ``d`` (None if it has no pair)."""
        if not self.dates:
            return None
        ci, i = self._place(d)
        chunk = self.dates[ci]
        return self.values[ci][i] if i < len(chunk) and chunk[i] == d else None

    def put(self, d: str, value: Any) -> None:
        """Set the value of date ``d``; None removes its pair."""
        if not self.dates:
            if value is not None:
                self._first_chunk(d, value)
            return
        ci, i = self._place(d)
        chunk = self.dates[ci]
        self._set(ci, i, i < len(chunk) and chunk[i] == d, d, value)

    def count(self, d: str, sign: int) -> None:
        """Add ``sign`` to the count of date ``d``; a count that falls to 0 is removed."""
        if not self.dates:
            if sign:
                self._first_chunk(d, sign)
            return
        ci, i = self._place(d)
        chunk = self.dates[ci]
        if i < len(chunk) and chunk[i] == d:
            n = self.values[ci][i] + sign
            self._set(ci, i, True, d, n if n else None)
        elif sign:
            self._set(ci, i, False, d, sign)

    def _first_chunk(self, d: str, value: Any) -> None:
        chunk = [d]
        self.dates.append(chunk)
        self.values.append([value])
        self.firsts.append(d)
        self.owned.add(id(chunk))
        self.size = 1

    def _set(self, ci: int, i: int, found: bool, d: str, value: Any) -> None:
        if value is None and not found:
            return
        dates, values = self.dates[ci], self.values[ci]
        if id(dates) not in self.owned:  # shared with the state copied from: copied before it changes
            dates, values = list(dates), list(values)
            self.dates[ci], self.values[ci] = dates, values
            self.owned.add(id(dates))
        if value is None:
            del dates[i]
            del values[i]
            self.size -= 1
        elif found:
            values[i] = value
        else:
            dates.insert(i, d)
            values.insert(i, value)
            self.size += 1
        if not dates:
            del self.dates[ci]
            del self.values[ci]
            del self.firsts[ci]
            self.owned.discard(id(dates))
        elif len(dates) > 2 * CHUNK:
            half = len(dates) // 2
            low, high = dates[:half], dates[half:]
            self.dates[ci:ci + 1] = [low, high]
            self.values[ci:ci + 1] = [values[:half], values[half:]]
            self.firsts[ci:ci + 1] = [low[0], high[0]]
            self.owned.discard(id(dates))
            self.owned.update((id(low), id(high)))
        else:
            self.firsts[ci] = dates[0]

    def first(self) -> str | None:
        """The earliest date."""
        return self.firsts[0] if self.firsts else None

    def next_after(self, after: str) -> str | None:
        """The earliest date later than ``after``."""
        ci = bisect.bisect_right(self.firsts, after) - 1
        if ci >= 0:
            chunk = self.dates[ci]
            i = bisect.bisect_right(chunk, after)
            if i < len(chunk):
                return chunk[i]
        ci += 1
        return self.firsts[ci] if ci < len(self.firsts) else None

    def last_upto(self, until: str) -> str | None:
        """The latest date on or before ``until``."""
        ci = bisect.bisect_right(self.firsts, until) - 1
        if ci < 0:
            return None
        chunk = self.dates[ci]
        return chunk[bisect.bisect_right(chunk, until) - 1]

    def pairs(self) -> list[list[Any]]:
        """The pairs as one plain list."""
        out: list[list[Any]] = []
        for dates, values in zip(self.dates, self.values):
            out.extend([d, v] for d, v in zip(dates, values))
        return out

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Any:
        return iter(self.pairs())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DatedPairs):
            return self.pairs() == other.pairs()
        if isinstance(other, list):
            return self.pairs() == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"DatedPairs({self.pairs()!r})"


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


_MAPS: Final = (dict, Map)


def json_default(value: Any) -> Any:
    """orjson's ``default``: a persistent map is written as the JSON object it stands for, its keys
    sorted (a persistent map's own order follows the keys' hashes, which differ between processes);
    a :class:`DatedPairs` as its list of pairs."""
    if isinstance(value, Map):
        return dict(sorted(value.items()))
    if isinstance(value, DatedPairs):
        return value.pairs()
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
