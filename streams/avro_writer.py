"""A faster writer of Avro record bodies, for flat record schemas: the list changes the subject
agent announces (about one for each input it applies), the check audit, the inputs ``produce``
sends.

fastavro's ``schemaless_writer`` walks the schema for each record and costs about 15 us for one
``ListChange`` (docs/performance.md, twenty-seventh session). :func:`compile_record` turns a schema
once into a tuple of field steps, and :func:`write` runs them over a record: the same bytes as
fastavro's (tests/unit/test_avro_writer.py compares them over every schema of schemas/, for
records of every value those schemas take and of values they do not).

fastavro stays the authority. :func:`compile_record` returns None for a schema with anything but
strings, ints and longs (dates and timestamps given as the ints Avro writes), booleans, bytes,
arrays of strings and the unions ``["null", T]`` of these: such a schema is always written by
fastavro. :func:`write` raises :class:`NotFast` for any value it does not plainly write (a value of
another type than its field's, a date or a timestamp given as an object, an int out of its range, a
string that is not valid UTF-8, a missing field without a default): the caller then writes that
record with fastavro, whose bytes or error stand (fastavro writes ``True`` as the int 1 and
truncates a float given for an int; this module leaves such values to it).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Final, NamedTuple

from streams.avro_reader import flat_type, record_fields

# what a field step writes (Final: compiled, a Final module name is a C static, any other a dict look-up)
STRING: Final = 0
LONG: Final = 1
INT: Final = 2
BOOLEAN: Final = 3
BYTES: Final = 4
STRING_ARRAY: Final = 5
DATE: Final = 6
_EPOCH_ORDINAL: Final = _dt.date(1970, 1, 1).toordinal()
_date: Final = _dt.date
_LONG_MIN: Final = -(1 << 63)
_LONG_MAX: Final = (1 << 63) - 1
_INT_MIN: Final = -(1 << 31)
_INT_MAX: Final = (1 << 31) - 1
_MISSING: Final = object()
# the zigzag varint of the numbers most fields hold: small lengths and counts
_SMALL: Final = tuple(bytes((((n << 1) ^ (n >> 63)),)) for n in range(-64, 64))


class NotFast(Exception):
    """This record is not one :func:`write` writes: let fastavro write it (or say what is wrong)."""


class Field(NamedTuple):
    name: str
    kind: int
    optional: bool       # the union ["null", T]: None is branch 0, any other value branch 1
    default: Any         # the schema's default (written when the record lacks the field), or _MISSING


_KINDS: Final = {"string": STRING, "long": LONG, "timestamp-millis": LONG, "int": INT, "boolean": BOOLEAN,
                 "bytes": BYTES, "string-array": STRING_ARRAY, "date": DATE}  # not decimal: fastavro writes it


def _field(f: dict[str, Any]) -> Field | None:
    flat = flat_type(f.get("type"))  # the reader's reading of the schema
    kind = _KINDS.get(flat[1]) if flat is not None else None
    return Field(f["name"], kind, flat[0], f.get("default", _MISSING)) if flat is not None and kind is not None \
        else None


def compile_record(schema: Any) -> tuple[Field, ...] | None:
    """The field steps of a schema (parsed by fastavro or not), or None when it is not a flat
    record of the types above (fastavro then writes every record of it)."""
    fields = record_fields(schema)
    steps = [_field(f) for f in fields] if fields is not None else [None]
    return tuple(s for s in steps if s is not None) if None not in steps else None


def _varint(out: bytearray, n: int) -> None:
    """``n`` (within a long's range) as Avro's zigzag varint."""
    if -64 <= n < 64:
        out += _SMALL[n + 64]
        return
    v = (n << 1) ^ (n >> 63)
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _string(name: str, v: Any, out: bytearray) -> None:
    if v.__class__ is not str:
        raise NotFast(f"{name}: not a str")
    try:
        b = v.encode()
    except UnicodeEncodeError:
        raise NotFast(f"{name}: not valid UTF-8") from None
    _varint(out, len(b))
    out += b


def write(fields: tuple[Field, ...], record: dict[str, Any], out: bytearray) -> None:
    """Append the body of ``record`` to ``out``. Raises :class:`NotFast` (never anything else) for
    a record it does not plainly write; ``out`` is then to be thrown away."""
    for name, kind, optional, default in fields:
        v = record.get(name, _MISSING)
        if v is _MISSING:
            if default is _MISSING:
                raise NotFast(f"no value and no default for {name}")
            v = default
        if optional:
            if v is None:
                out.append(0)
                continue
            out.append(2)  # zigzag 1: the second branch
        t = v.__class__
        if kind == STRING:
            _string(name, v, out)
        elif kind == LONG or kind == INT:
            if t is not int:
                raise NotFast(f"{name}: not an int")
            if not ((_LONG_MIN <= v <= _LONG_MAX) if kind == LONG else (_INT_MIN <= v <= _INT_MAX)):
                raise NotFast(f"{name}: out of range")
            _varint(out, v)
        elif kind == DATE:
            if t is _date:
                v = v.toordinal() - _EPOCH_ORDINAL
            elif t is not int or not _INT_MIN <= v <= _INT_MAX:
                raise NotFast(f"{name}: not a date or an int in range")
            _varint(out, v)
        elif kind == STRING_ARRAY:
            if t is not list:
                raise NotFast(f"{name}: not a list")
            if v:
                _varint(out, len(v))
                for item in v:
                    _string(name, item, out)
            out.append(0)  # the end of the blocks
        elif kind == BOOLEAN:
            if t is not bool:
                raise NotFast(f"{name}: not a bool")
            out.append(1 if v else 0)
        else:  # BYTES
            if t is not bytes:
                raise NotFast(f"{name}: not bytes")
            _varint(out, len(v))
            out += v
