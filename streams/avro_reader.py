"""A faster reader of Avro record bodies, for the flat record schemas department systems write.

fastavro's reader is general: for each field of each message it walks the writer schema and
dispatches on its type. The input schemas (schemas/*.avsc) are flat records whose fields are a
handful of types: strings, optional strings, dates, timestamps, decimals, booleans, arrays of
strings. :func:`compile_record` turns such a writer schema once into a list of field steps, and
:func:`read` runs them over a message body: the same dict, with the same values and types as
fastavro's ``schemaless_reader`` gives (tests/unit/test_avro_reader.py compares them over every
schema and over damaged bodies), in about two-thirds of its time in the worker's loop
(docs/performance.md, seventeenth session).

fastavro stays the authority. :func:`compile_record` returns None for a schema that uses anything
else (a nested record, a named type, an enum, a map, a union other than ``["null", T]``...): such a
schema is always decoded by fastavro. :func:`read` raises :class:`NotFast` for anything unusual in a
body (a union branch that does not exist, a boolean byte other than 0 or 1, a negative length or
block count, a varint longer than 10 bytes, reading past the end, invalid UTF-8, a date out of
range): the caller then decodes that message with fastavro, whose record or error stands. So a
malformed input gets exactly the dead-letter reason it always got.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Context
from typing import Any, Final, NamedTuple

# Final: compiled (ops/build_core.py), a Final module name is a C static, any other a dict look-up
_EPOCH_ORDINAL: Final = _dt.date(1970, 1, 1).toordinal()
_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_timedelta: Final = _dt.timedelta
_from_ordinal: Final = _dt.date.fromordinal
_decimal_context: Final = Context()

# what a field step reads
STRING: Final = 0
LONG: Final = 1
DATE: Final = 2
TIMESTAMP_MILLIS: Final = 3
BOOLEAN: Final = 4
BYTES: Final = 5
DECIMAL: Final = 6
STRING_ARRAY: Final = 7
_MAX_VARINT: Final = 1 << 64


class NotFast(Exception):
    """This body is not one :func:`read` decodes: let fastavro decode it (and report what is wrong)."""


class Field(NamedTuple):
    name: str
    kind: int
    optional: bool           # the union ["null", T]: branch 0 is None, branch 1 is T
    precision: int = 0       # DECIMAL only
    scale: int = 0


def flat_type(ftype: Any) -> tuple[bool, str, int, int] | None:
    """A field type of a flat record as (optional, what, precision, scale): ``what`` is string, int,
    long, boolean, bytes, date, timestamp-millis, decimal (its precision and scale) or string-array,
    optional the union ``["null", T]``; None for any other type. The reader's and the writer's
    (streams/avro_writer.py) one reading of a schema."""
    optional = False
    if isinstance(ftype, list):
        if len(ftype) != 2 or ftype[0] != "null":
            return None
        optional, ftype = True, ftype[1]
    if isinstance(ftype, dict):
        base, logical = ftype.get("type"), ftype.get("logicalType")
        if base == "array":
            return (optional, "string-array", 0, 0) if ftype.get("items") == "string" else None
        if logical == "date" and base == "int":
            return optional, "date", 0, 0
        if logical == "timestamp-millis" and base == "long":
            return optional, "timestamp-millis", 0, 0
        if logical == "decimal" and base == "bytes":
            precision, scale = ftype.get("precision"), ftype.get("scale", 0)
            if not isinstance(precision, int) or not isinstance(scale, int):
                return None
            return optional, "decimal", precision, scale
        if logical is not None or not isinstance(base, str):
            return None
        ftype = base
    if ftype in ("string", "int", "long", "bytes", "boolean"):
        return optional, ftype, 0, 0
    return None


_KINDS: Final = {"string": STRING, "int": LONG, "long": LONG, "bytes": BYTES, "boolean": BOOLEAN, "date": DATE,
                 "timestamp-millis": TIMESTAMP_MILLIS, "decimal": DECIMAL, "string-array": STRING_ARRAY}


def _field(name: str, ftype: Any) -> Field | None:
    flat = flat_type(ftype)
    if flat is None:
        return None
    optional, what, precision, scale = flat
    if optional and what in ("string-array", "boolean"):  # read by fastavro
        return None
    return Field(name, _KINDS[what], optional, precision, scale)


def record_fields(schema: Any) -> list[dict[str, Any]] | None:
    """The fields of a record schema, each an object with a name; None for anything else."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    fields = list(schema.get("fields") or ())
    return fields if all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in fields) else None


def compile_record(schema: Any) -> tuple[Field, ...] | None:
    """The field steps of a writer schema (parsed by fastavro or not), or None when it is not a
    flat record of the types above (fastavro then decodes every message of it)."""
    fields = record_fields(schema)
    steps = [_field(f["name"], f.get("type")) for f in fields] if fields is not None else [None]
    return tuple(s for s in steps if s is not None) if None not in steps else None


def read(fields: tuple[Field, ...], buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
    """The record in ``buf`` from ``pos``, and where it ends. Raises :class:`NotFast` (never
    anything else) for a body that is not plainly well formed."""
    try:
        return _read(fields, buf, pos)
    except NotFast:
        raise
    except (IndexError, ValueError, OverflowError, ArithmeticError) as exc:  # past the end, bad UTF-8, bad date
        raise NotFast(str(exc)) from None


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    pos += 1
    v = b & 0x7F
    shift = 7
    while b & 0x80:
        if shift > 63:
            raise NotFast("varint longer than 10 bytes")
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
    if v >= _MAX_VARINT:
        raise NotFast("varint past 64 bits")
    return (v >> 1) ^ -(v & 1), pos


def _read(fields: tuple[Field, ...], buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    end_of_buf = len(buf)
    for name, kind, optional, precision, scale in fields:
        if optional:
            branch = buf[pos]
            pos += 1
            if branch == 0:
                out[name] = None
                continue
            if branch != 2:  # zigzag 1: the second branch
                raise NotFast("union branch")
        if kind == BOOLEAN:
            b = buf[pos]
            pos += 1
            if b > 1:
                raise NotFast("boolean byte")
            out[name] = b == 1
            continue
        # every other kind starts with a zigzag varint (a value, a length or a block count);
        # one byte holds most of them
        b = buf[pos]
        if b < 0x80:
            pos += 1
            v = (b >> 1) ^ -(b & 1)
        else:
            v, pos = _varint(buf, pos)
        if kind == STRING:
            end = pos + v
            if v < 0 or end > end_of_buf:
                raise NotFast("string length")
            out[name] = buf[pos:end].decode()
            pos = end
        elif kind == LONG:
            out[name] = v
        elif kind == DATE:
            out[name] = _from_ordinal(v + _EPOCH_ORDINAL)
        elif kind == TIMESTAMP_MILLIS:
            out[name] = _EPOCH + _timedelta(microseconds=v * 1000)
        elif kind == STRING_ARRAY:
            items: list[str] = []
            count = v
            while count:
                if count < 0:
                    raise NotFast("array block with a size")
                for _ in range(count):
                    n, pos = _varint(buf, pos)
                    end = pos + n
                    if n < 0 or end > end_of_buf:
                        raise NotFast("string length")
                    items.append(buf[pos:end].decode())
                    pos = end
                count, pos = _varint(buf, pos)
            out[name] = items
        else:  # BYTES, DECIMAL
            end = pos + v
            if v < 0 or end > end_of_buf:
                raise NotFast("bytes length")
            raw = buf[pos:end]
            pos = end
            if kind == BYTES:
                out[name] = raw
            else:
                _decimal_context.prec = precision
                out[name] = _decimal_context.create_decimal(
                    int.from_bytes(raw, "big", signed=True)).scaleb(-scale, _decimal_context)
    return out, pos
