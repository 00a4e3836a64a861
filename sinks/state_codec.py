"""The stored form of a subject's state: the one module that writes and reads the value of
``Keys.subject()`` (sinks/keys.py).

Formats (the first byte tells them apart):

* **compact** (written by default, setting ``state_format = "compact"``): a 2-byte header, the magic
  byte ``0xFF`` (never the first byte of JSON text, nor of any UTF-8 text) and the format version
  (``1``), then one zstd frame of the state's JSON (orjson), compressed at level 3 with a
  dictionary trained on sample states (``sinks/state-v1.zdict``, :data:`DICTIONARIES`). The frame
  carries the dictionary's id, its content size and a checksum: the reader picks the dictionary by
  the frame's id, so a state written with an older dictionary stays readable once a newer one ships
  (every dictionary ever shipped stays in :data:`DICTIONARIES`, its file in sinks/). About 10 times
  smaller than the JSON (docs/performance.md). A state of more than :data:`LARGE` bytes of JSON (a hot
  subject with thousands of records) is compressed at level 1: 40% faster there, and no larger.
* **json** (legacy, and what ``state_format = "json"`` writes): the state's JSON text, starting with
  ``{``. :func:`decode_state` reads it as it always did, so data written before the compact format
  keeps working: an upgrade needs no migration, and a subject's value turns compact the next time
  its state is written (``creditstream replay --switch`` rewrites them all at once).

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
from pathlib import Path
from typing import NamedTuple

import orjson
import zstandard

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


class Dictionary(NamedTuple):
    file: str      # in sinks/
    sha256: str    # of the file: checked when it is loaded


DICTIONARIES: dict[int, Dictionary] = {
    # dictionary id (in the file and in every frame compressed with it) -> its file
    0x43530001: Dictionary("state-v1.zdict",
                           "7a295fa567694d6379174209b3c1680b2371490ee080eb1b557f2bb8b09cbba9"),
}
CURRENT = 0x43530001
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
    text = orjson.dumps(state)
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
