"""The stored form of a subject's state: the one module that writes and reads the value of
``Keys.subject()`` (sinks/keys.py).

Formats (the first byte tells them apart):

* **compact** (written by default, setting ``state_format = "compact"``): a 2-byte header, the magic
  byte ``0xFF`` (never the first byte of JSON text, nor of any UTF-8 text) and the format version
  (``1``), then one zstd frame of the state's JSON (orjson), compressed at level 3 with a
  dictionary trained on sample states (:data:`CURRENT`: ``sinks/state-v2.zdict``). The frame
  carries the dictionary's id, its content size and a checksum: the reader picks the dictionary by
  the frame's id, so a state written with an older dictionary stays readable once a newer one ships
  (every dictionary ever shipped stays in :data:`DICTIONARIES`, its file in sinks/). About 10 times
  smaller than the JSON (docs/performance.md). A state of more than :data:`LARGE` bytes of JSON (a hot
  subject with thousands of records) is compressed at level 1: 40% faster there, and no larger.
* **json** (legacy, and what ``state_format = "json"`` writes): the state's JSON text, starting with
  ``{``. :func:`decode_state` reads it as it always did, so data written before the compact format
  keeps working: an upgrade needs no migration, and a subject's value turns compact the next time
  its state is written (``creditstream replay --switch`` rewrites them all at once).

**Split** (a hot subject, more than :data:`SPLIT_RECORDS` records): re-encoding a state of thousands
of records whole on every write cost ~15 ms per input at 4,000 records (issue 13), and grows with
the subject's history. Such a state is stored in two keys (sinks/keys.py): the subject key holds its
**head** (everything but the per-record parts, and a ``"split"`` marker), in the form above; the hash
``Keys.subject_records()`` holds one **part** per record key (the record's entry, its facts, its
publicity track and its publicity view), each in the form above. A write re-encodes the head and
only the parts that changed (:func:`encode_stored`); the basis (domain/facts.py ``basis_of``) is
not stored, it is rebuilt from the facts when read (:func:`join`). Head and parts are written in one
MULTI/EXEC, so a reader sees them consistent. Readers of whole states go through
``sinks.redis_state.read_states``; a reader that needs only the identity may decode the head alone.

Anything else raises :class:`StateFormatError` naming what was found (a newer format version, a
dictionary this version does not know, corrupt bytes).

The (de)compressors are made once per process and reused: zstd contexts are NOT thread-safe. Every
user (the worker's agents, the API, the CLI) runs in one asyncio thread; a caller on another thread
would need its own.

A new dictionary: ``python -m bench.train_state_dict --version 2`` writes ``sinks/state-v2.zdict``
(deterministic: the same sample states and parameters give the same bytes); add it to
:data:`DICTIONARIES` with its sha256 and make it :data:`CURRENT`. Never remove an entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import zstandard

from domain import record_maps

MAGIC = 0xFF
"""First byte of a compact state (JSON text starts with ``{``, or whitespace)."""
VERSION = 1
"""Format version after the magic byte: 1 = a zstd frame compressed with a dictionary of
:data:`DICTIONARIES`."""
HEADER = bytes((MAGIC, VERSION))
LEVEL = 3
LARGE = 256 * 1024
LARGE_LEVEL = 1
STATE_FORMATS = ("compact", "json")
SPLIT_RECORDS = 64
"""A state with more records than this is stored split (head + one part per record)."""
SPLIT = "split"
"""The head's marker: ``{"parts": n, "has": [sections]}``, n the number of parts in the hash."""
# the per-record sections of a state, as (top-level key, key inside it or None)
_SECTIONS = record_maps.SECTIONS
_PART_NAMES = ("record", "facts", "track", "view")


class Dictionary(NamedTuple):
    file: str      # in sinks/
    sha256: str    # of the file: checked when it is loaded


DICTIONARIES: dict[int, Dictionary] = {
    # dictionary id (in the file and in every frame compressed with it) -> its file
    0x43530001: Dictionary("state-v1.zdict",
                           "7a295fa567694d6379174209b3c1680b2371490ee080eb1b557f2bb8b09cbba9"),
    # trained on states whose basis keeps sorted [date, value] pairs (domain/facts.py BASIS_VERSION 2)
    0x43530002: Dictionary("state-v2.zdict",
                           "cc8e6c1abad752596ad5284863cbd2b3dc320118afe4a1a72057053cf79b520d"),
}
CURRENT = 0x43530002
"""The dictionary new states are compressed with."""

_DIR = Path(__file__).resolve().parent


class StateFormatError(ValueError):
    """Bytes under a subject key that are not a stored state this version can read."""


_dicts: dict[int, zstandard.ZstdCompressionDict] = {}
_compressors: dict[int, zstandard.ZstdCompressor] = {}
_decompressors: dict[int, zstandard.ZstdDecompressor] = {}


def dictionary_bytes(dict_id: int) -> bytes:
    """The file of a known dictionary, checked against its sha256."""
    entry = DICTIONARIES[dict_id]
    path = _DIR / entry.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StateFormatError(f"the state dictionary {path} is missing ({exc}): reinstall creditstream") from None
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise StateFormatError(f"the state dictionary {path} is not the one shipped (sha256 differs): "
                               f"reinstall creditstream")
    return data


def _dictionary(dict_id: int) -> zstandard.ZstdCompressionDict:
    d = _dicts.get(dict_id)
    if d is None:
        d = _dicts[dict_id] = zstandard.ZstdCompressionDict(dictionary_bytes(dict_id),
                                                            dict_type=zstandard.DICT_TYPE_FULLDICT)
    return d


def compact(json_text: bytes) -> bytes:
    """The compact form of a state's JSON text (header + zstd frame)."""
    level = LEVEL if len(json_text) <= LARGE else LARGE_LEVEL
    c = _compressors.get(level)
    if c is None:
        c = _compressors[level] = zstandard.ZstdCompressor(level=level, dict_data=_dictionary(CURRENT),
                                                           write_checksum=True, write_content_size=True,
                                                           write_dict_id=True)
    return HEADER + c.compress(json_text)


def encode_state(state: dict, state_format: str = "compact") -> bytes:
    """What to store for ``state``: its compact form, or its JSON text with ``state_format="json"``."""
    text = orjson.dumps(state, default=record_maps.json_default)
    return compact(text) if state_format == "compact" else text


def state_json(raw: bytes) -> bytes:
    """The JSON text of a stored state, whichever its format (without parsing it)."""
    if not raw:
        raise StateFormatError("an empty value is not a stored state")
    first = raw[0]
    if first == MAGIC:
        if len(raw) < 2 or raw[1] != VERSION:
            found = raw[1] if len(raw) > 1 else "none"
            raise StateFormatError(f"stored state of format version {found}; this version of creditstream reads "
                                   f"version {VERSION} and JSON: upgrade it")
        frame = raw[2:]
        try:
            dict_id = zstandard.get_frame_parameters(frame).dict_id
        except zstandard.ZstdError as exc:
            raise StateFormatError(f"stored state is not a zstd frame ({exc})") from None
        d = _decompressors.get(dict_id)
        if d is None:
            if dict_id not in DICTIONARIES:
                raise StateFormatError(f"stored state compressed with dictionary id {dict_id:#x}, which this "
                                       f"version of creditstream does not know (known: "
                                       f"{', '.join(f'{i:#x}' for i in DICTIONARIES)}): upgrade it")
            d = _decompressors[dict_id] = zstandard.ZstdDecompressor(dict_data=_dictionary(dict_id))
        try:
            return d.decompress(frame)
        except zstandard.ZstdError as exc:
            raise StateFormatError(f"stored state is corrupt ({exc})") from None
    if first == 0x7B or first in b" \t\r\n":  # {: the legacy (and state_format="json") form
        return raw
    raise StateFormatError(f"stored state starts with byte {first:#04x}: neither a compact state (0xff) nor "
                           f"JSON; written by something else than creditstream?")


def decode_state(raw: bytes) -> dict:
    """A stored state (compact or JSON) as the dict the rules core works on."""
    state = orjson.loads(state_json(raw))
    if not isinstance(state, dict):
        raise StateFormatError(f"stored state is a {type(state).__name__}, not an object")
    return state


_AWAITING_KEY = b'"awaiting_feedback"'
_NONE_AWAITING = _AWAITING_KEY + b":{}"


def awaiting_feedback(raw: bytes) -> dict[str, str]:
    """A stored state's ``awaiting_feedback`` (list change id -> the date it was pushed; the head of
    a split state has it too), parsing the state only when it has some. Most subjects wait for no
    feedback, and parsing a state's JSON is most of the cost of reading it (about 30 us of the 35 a
    subject cost ``creditstream report``): a state whose text names the key nowhere, or names it
    once with an empty object (an object's key appears as ``"awaiting_feedback"`` only unescaped, so
    never inside a string), has none."""
    text = state_json(raw)
    at = text.find(_AWAITING_KEY)
    if at < 0 or (text.startswith(_NONE_AWAITING, at) and text.find(_AWAITING_KEY, at + 1) < 0):
        return {}
    state = orjson.loads(text)
    if not isinstance(state, dict):
        raise StateFormatError(f"stored state is a {type(state).__name__}, not an object")
    return state.get("awaiting_feedback") or {}


# ------------------------------------------------------------------------------------ split states


class Stored(NamedTuple):
    """What to write for one state: the value of ``Keys.subject()``, and for a split state the
    parts to set and the record keys to delete in ``Keys.subject_records()``."""
    head: bytes
    json_bytes: int                # the state's JSON size (estimated for a split state: see encode_stored)
    split: bool
    parts: dict[str, bytes]
    removed: list[str]


def split_due(state: dict) -> bool:
    return len(state.get("records") or ()) > SPLIT_RECORDS


def _part_keys(sections: list[Mapping[str, Any] | None]) -> set[str]:
    keys: set[str] = set()
    for section in sections:
        if section:
            keys.update(section)
    return keys


def head_of(state: dict) -> dict:
    """A state without its per-record parts and basis, marked ``split``."""
    sections = record_maps.sections(state)
    has = [f"{top}.{inner}" if inner else top for (top, inner), sec in zip(_SECTIONS, sections) if sec is not None]
    head = {k: v for k, v in state.items() if k not in ("records", "facts", "basis")}
    for top in ("timeline", "evaluation"):
        if isinstance(state.get(top), dict):
            head[top] = {k: v for k, v in state[top].items() if k != "publicity"}
    marker: dict[str, Any] = {"parts": len(state.get("records") or ()), "has": has}
    if "basis" in state:
        has.append("basis")
        # the derivation the basis was made by: the basis is built again when read (join), and without
        # it a state an earlier derivation wrote read as derived by the reader's, never derived again
        marker["derivation"] = (state.get("basis") or {}).get("v")
    # every per-record section is keyed by record keys (facts of records, tracks and views of facts)
    head[SPLIT] = marker
    return head


def part_of(sections: list[Mapping[str, Any] | None], key: str) -> dict:
    """One record's part: its entry, facts, publicity track and publicity view (those it has)."""
    return {name: sec[key] for name, sec in zip(_PART_NAMES, sections) if sec is not None and key in sec}


def _encode(value: Any, state_format: str) -> tuple[bytes, int]:
    text = orjson.dumps(value, default=record_maps.json_default)
    return (compact(text) if state_format == "compact" else text), len(text)


def encode_stored(state: dict, base: dict | None = None, *, base_split: bool = False,
                  changed: Collection[str] | None = None, state_format: str = "compact") -> Stored:
    """What to store for ``state``, stored as ``base`` before (``base_split``: it was stored split).
    A state of at most :data:`SPLIT_RECORDS` records is stored whole (:func:`encode_state`), the
    parts of a ``base`` stored split removed;
    otherwise its head, and the parts that may differ from ``base``'s: those of the record keys
    ``changed`` names (the rules core says which an input touched: ``Step.touched``), or, without
    it, those that differ (compared by identity first: the rules core shares the entries an input
    did not touch); all of them if ``base`` was not stored split."""
    if not split_due(state):
        head, size = _encode(state, state_format)
        # stored split before (records moved away): its parts go, or they would be read again with the
        # next split form's (an audit: "its head names 71 record parts, Redis holds 98", workers stopped)
        gone = sorted(_part_keys(record_maps.sections(base))) if base is not None and base_split else []
        return Stored(head, size, False, {}, gone)
    new = record_maps.sections(state)
    removed: list[str] = []
    if base is not None and base_split and changed is not None:
        keys = sorted(k for k in changed if any(n is not None and k in n for n in new))
        removed = sorted(k for k in changed if k not in keys and any(
            o is not None and k in o for o in record_maps.sections(base)))
        changed = keys
    elif base is not None and base_split:
        old = record_maps.sections(base)
        now = _part_keys(new)
        changed = sorted(k for k in now if any(
            (o.get(k) if o is not None else None) is not (n.get(k) if n is not None else None)
            and (o.get(k) if o is not None else None) != (n.get(k) if n is not None else None)
            for o, n in zip(old, new)))
        removed = sorted(_part_keys(old) - now)
    else:
        changed = sorted(_part_keys(new))
    head, size = _encode(head_of(state), state_format)
    parts = {}
    written = 0
    for key in changed:
        parts[key], n = _encode(part_of(new, key), state_format)
        written += n
    # the whole state's JSON size, for the state cache's budget: the parts not written are taken
    # to be as large as those written (a record's part is ~2 KB whatever the record)
    per_part = written / len(parts) if parts else 2048
    return Stored(head, size + int(per_part * len(state.get("records") or ())), True, parts, removed)


def is_split(head: dict) -> bool:
    return SPLIT in head


_HEAD_MARK = b'"' + SPLIT.encode() + b'":{"parts":'
HEAD_MARK_WITHIN = 512
"""A head's JSON text ends with its marker (:func:`head_of` adds it last; orjson keeps the order):
``"split":{"parts":n,"has":[...]}}``, well within this many bytes of its end."""


def may_be_split(text: bytes) -> bool:
    """Whether a stored state's JSON text may be the head of a state stored split (decode it to
    tell: :func:`is_split`); False: a state stored whole, for sure. Looks at the text's last
    :data:`HEAD_MARK_WITHIN` bytes only: searching the whole text of a state (~7 KB, full of the
    marker's first byte ``"``) took 5-6 us, on every state a batch read from Redis."""
    return text.find(_HEAD_MARK, max(0, len(text) - HEAD_MARK_WITHIN)) >= 0


def join(head: dict, parts: dict) -> tuple[dict, int]:
    """The whole state of a split one, from its head (decoded) and its parts (record key -> stored
    part, as HGETALL gives them); and the JSON size of the parts. Raises :class:`StateFormatError`
    if parts are missing."""
    from domain.facts import basis_of

    state = dict(head)
    meta = state.pop(SPLIT)
    if len(parts) != meta.get("parts"):
        raise StateFormatError(f"split state of {head.get('id', '?')!r}: its head names {meta.get('parts')} record "
                               f"parts, Redis holds {len(parts)}")
    has = set(meta.get("has") or ())
    sections: list[dict] = [{}, {}, {}, {}]
    size = 0
    for key, raw in sorted(parts.items()):
        text = state_json(raw)
        size += len(text)
        part = orjson.loads(text)
        name = key.decode() if isinstance(key, bytes) else key
        for i, part_name in enumerate(_PART_NAMES):
            if part_name in part:
                sections[i][name] = part[part_name]
    for (top, inner), section in zip(_SECTIONS, sections):
        label = f"{top}.{inner}" if inner else top
        if label not in has:
            continue
        if inner is None:
            state[top] = section
        else:
            state[top] = dict(state.get(top) or {}, **{inner: section})
    if "basis" in has:
        basis = basis_of(state.get("facts") or {}, (state.get("timeline") or {}).get("publicity") or {})
        # (a head written before it kept the derivation: unknown, so derived again at its next input)
        basis["v"] = meta.get("derivation")
        state["basis"] = basis
    return state, size
