"""Dead letters for operators: list, show and re-drive them (``creditstream dlq list|show|redrive``).

A dead letter (sinks/deadletter.py) is the original message, bytes untouched, on the dead-letter
topic, with ``dlq.*`` headers saying why and where it came from. A dead letter is named by its
place on the dead-letter topic, ``PARTITION:OFFSET`` (a *ref*, as ``dlq list`` prints it).

* :func:`list_dead_letters`: every dead letter, filtered by reason, source topic and time (when it
  was dead-lettered, ``dlq.at``, or the source message's own timestamp), each with its last
  re-drive if it had one.
* :func:`show`: one dead letter whole: every header, the detail, the original key, the value as hex
  and, when it decodes as Avro, the schema name and the record as JSON (``streams.codec.to_json``;
  the very JSON a ``--fix`` file takes), else a printable preview of the bytes; for a dead letter
  written without its value (``dlq.value-omitted``: over the dead-letter topic's limit), that it was
  and where the original is (``original_at``, its source topic/partition/offset).
* :func:`redrive`: produce dead letters again to their source topic, so the pipeline judges them
  afresh (a kind that had been sent to another kind's topic, ``unexpected-schema``, and a fix
  encoded as another ``--kind``, go to the topic of their kind). By default the ORIGINAL bytes, key,
  headers (without the ``dlq.*`` ones) and timestamp; for a dead letter written without its value
  (``dlq.value-omitted``) those of the original read back from its source topic at
  ``dlq.source.*``, and where that topic no longer holds it (retention, compaction, an offset out
  of range) the letter is refused (``original-gone``), never re-driven empty nor recorded;
  with a fix file, the corrected record from the file, Avro-encoded with the schema of the original
  message (or of ``--kind``), the original key and headers, and a new timestamp (now, or the file's
  ``timestamp``). Each re-driven message carries the header ``redriven-from: dead-letters/P/O``
  (:data:`REDRIVEN_FROM_HEADER`; not ``dlq.``-prefixed, because the dead-letter sink drops incoming
  ``dlq.*`` headers, and this one must survive into the new dead letter if the message is rejected
  again). Every re-drive is recorded in the Redis hash ``{ns}:dlq:redriven`` (sinks/keys.py):
  field ``P:O`` -> JSON ``{at, at_ms, by, fixed, topic, partition, offset, source, reason}`` (and
  ``original_from`` where the original was read back from its source topic), with
  the entries of earlier (forced) re-drives under ``earlier`` (the last :data:`EARLIER_KEPT`). A
  re-drive drops from the hash the entries of dead letters the topic no longer holds (its
  retention: :func:`forget_expired`), so the audit lasts as long as the letters do. A dead letter that was re-driven
  already is skipped unless ``force``; a selection (``--reason`` ...) never re-drives a dead letter
  that is itself a re-drive that failed again (only its original), so rerunning a selection does
  not multiply them.

A fix file is a JSON object: either the record's fields (``{"decision_doc_no": ..., ...}``, as
``dlq show --json`` prints them under ``decoded.record``), or an event line of
``creditstream produce`` (``{"kind": "penalty", "fields": {...}, "timestamp": "..."}``).

Times on the command line are ISO date-times (``2024-05-21``, ``2024-05-21T10:00``,
``2024-05-21T10:00:00+08:00``; no zone means China Standard Time, as in ``creditstream produce``)
or milliseconds since the epoch. ``since`` is inclusive, ``until`` exclusive.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from creditstream.settings import Settings
from ops.dead_letters import (  # parse_ref, parse_time, Filter, RedriveError: re-exported
    REDRIVEN_FROM_HEADER,
    DeadLetter,
    Filter,
    RedriveError,
    Selected,
    _fetch,
    _matching,
    _scan_summaries,
    fetch_originals,
    format_ms,
    parse_ref,
    parse_time,
)
from ops.tables import clip, pad, table, width
from sinks.keys import Keys
from streams import kafka, placement
from streams.codec import ConfluentRegistry
from streams.topics import Topics


# --- the audit of re-drives in Redis -------------------------------------------------------
async def redriven(settings: Settings, refs: list[str] | None = None) -> dict[str, dict]:
    """``P:O`` -> the last re-drive of each of these dead letters that had one (see the module
    docstring), read a page at a time (:func:`with_redrives_by_page`): the audit holds every re-drive
    ever made, and the commands never read it whole. ``refs`` None: every re-drive recorded."""
    from creditstream.connections import redis_client

    if refs is None:
        redis = redis_client(settings)
        try:
            raw = await redis.hgetall(Keys(settings.namespace).dlq_redriven)
        finally:
            await redis.aclose()
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}
    letters = [{"ref": ref} for ref in refs]
    async for _ in with_redrives_by_page(settings, letters, forget=False):
        pass
    return {d["ref"]: d["redriven"] for d in letters if d["redriven"] is not None}


def operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (container without passwd entry)
        return os.environ.get("USER") or f"uid:{os.getuid()}"


# --- list ----------------------------------------------------------------------------------
async def list_dead_letters(settings: Settings, *, reason: str | None = None,
                            source_topic: str | None = None, since: str | int | None = None,
                            until: str | int | None = None, source_time: bool = False,
                            with_redrives: bool = True) -> list[dict]:
    """Every dead letter on the dead-letter topic (read to its end), optionally filtered, oldest
    dead-lettered first. ``since``/``until``: ISO date-times or ms (:func:`parse_time`), on when it
    was dead-lettered or, with ``source_time``, on the source message's timestamp. Each entry has
    ``redriven``: its last re-drive (or None) when ``with_redrives``."""
    flt = Filter(reason, source_topic, parse_time(since), parse_time(until), source_time)
    out = await _scan_summaries(settings, flt)
    if with_redrives:
        async for _ in with_redrives_by_page(settings, out, forget=False):
            pass
    return out


async def with_redrives_by_page(settings: Settings, letters: list[dict], *, page: int = 0,
                                forget: bool = True) -> AsyncIterator[list[dict]]:
    """The listing's letters :data:`REDRIVE_CHUNK` at a time, each with ``redriven`` (its last
    re-drive, or None), read from the audit for that page only. With ``forget``, a page's letters
    are let go of in ``letters`` once the next is asked for: what is held is the summaries, never
    every letter's re-drive and printed form at once (``dlq list`` of 200,000 letters held 509 MB)."""
    from creditstream.connections import redis_client

    if not letters:
        return
    page = page or REDRIVE_CHUNK
    redis = redis_client(settings)
    audit_key = Keys(settings.namespace).dlq_redriven
    try:
        for start in range(0, len(letters), page):
            part = letters[start:start + page]
            done = await _redriven_of(redis, audit_key, [d["ref"] for d in part])
            for d in part:
                d["redriven"] = done.get(d["ref"])
            yield part
            if forget:
                letters[start:start + len(part)] = [{}] * len(part)
    finally:
        await redis.aclose()


def one_per_message(letters: list[dict]) -> list[dict]:
    """The first letter of each dead-lettered message: a message read again (`positions move
    --to-start`, a batch redelivered after a crash) is dead-lettered again, and is still one input.
    Letters without a source place (written by something else) each count."""
    seen: set[tuple[str, int, int]] = set()
    out = []
    for d in letters:
        place = (d["source_topic"], d["source_partition"], d["source_offset"])
        if place[0] and place[1] >= 0 and place[2] >= 0:
            if place in seen:
                continue
            seen.add(place)
        out.append(d)
    return out


REDRIVE_CHUNK = 5_000
"""Dead letters a selection's re-drive holds whole (original bytes and headers) at a time: the
selection is held light (:class:`ops.dead_letters.Selected`), and each chunk's letters are read back
from the dead-letter topic just before they are sent (50,000 letters of 1 KB: 200 MB peak RSS, 324 MB
held whole)."""

REDRIVE_WINDOW = 500
"""Dead letters a re-drive sends before it awaits their acknowledgements and records them (``dlq
redrive --window``): a re-drive killed half-way sends at most this many again when run again."""

COUNT_FETCH_BYTES = 1024 * 1024
"""The most one fetch of :func:`count_dead_letters` brings (per partition, and in all): what it
holds of the dead-letter topic at a time, whatever its size."""


async def count_dead_letters(settings: Settings) -> dict[str, int]:
    """Dead-lettered messages by reason, one per message (as :func:`one_per_message`), counted as
    the dead-letter topic is read: only each letter's source place is held, never the letters (their
    values are the original messages). :func:`list_dead_letters` held every letter, values and all,
    until the end of the topic: 30,000 letters of 1 KB took 143 MB at `creditstream report`."""
    seen: set[tuple[str, int, int]] = set()
    counts: dict[str, int] = {}
    async for batch in kafka.read_to_end(settings, Topics(settings).dead_letters,
                                         fetch_bytes=COUNT_FETCH_BYTES, fetch_max_bytes=COUNT_FETCH_BYTES):
        for msg in batch:
            letter = DeadLetter.of(msg)
            place = letter.source_place
            if place is not None:
                if place in seen:
                    continue
                seen.add(place)
            reason = letter.info.get("reason", "")
            counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items()))


LIST_HEADER = ("ref", "dead-lettered", "reason", "source", "re-driven", "detail")
LIST_MIN_WIDTHS = (9, 25, 20, 36, 25)


def _list_row(d: dict) -> tuple[str, ...]:
    src = f"{d['source_topic']}/{d['source_partition']}/{d['source_offset']}"
    r = d.get("redriven")
    mark = f"{r.get('at', '')[:19]}{' fixed' if r.get('fixed') else ''}" if r else ""
    again = f"[re-drive of {d['redriven_from']}] " if d.get("redriven_from") else ""
    return (d["ref"], format_ms(d["dead_lettered_at"]), d["reason"], src, mark, again + clip(d["detail"], 80))


def _list_end(n: int, n_redriven: int) -> str:
    return f"{n} dead letter(s), {n_redriven} re-driven"


def render_list(letters: list[dict]) -> str:
    if not letters:
        return "no dead letters"
    lines = table([_list_row(d) for d in letters], header=LIST_HEADER, min_widths=LIST_MIN_WIDTHS, sep=" ")
    lines.append(_list_end(len(letters), sum(1 for d in letters if d.get("redriven"))))
    return "\n".join(lines)


class ListPrinter:
    """:func:`render_list`'s text, printed a page at a time (:func:`with_redrives_by_page`): the
    columns are as wide as over the whole listing (known from the summaries: a re-drive's mark and a
    date never pass their columns' least widths), so the lines are the very lines of
    :func:`render_list`. ``write`` takes each line."""

    def __init__(self, letters: list[dict], write: Callable[[str], None]) -> None:
        widths = [max(width(LIST_HEADER[i]), LIST_MIN_WIDTHS[i]) for i in range(4)]
        for d in letters:  # one row at a time: the rows of a long listing are not held together
            row = _list_row(d)
            for i in range(4):
                widths[i] = max(widths[i], width(row[i]))
        self.widths = (*widths, LIST_MIN_WIDTHS[4])
        self.write = write
        self.n = self.n_redriven = 0

    def page(self, letters: list[dict]) -> None:
        lines = table([_list_row(d) for d in letters], header=LIST_HEADER, min_widths=self.widths, sep=" ")
        for line in lines if self.n == 0 else lines[1:]:
            self.write(line)
        self.n += len(letters)
        self.n_redriven += sum(1 for d in letters if d.get("redriven"))

    def end(self) -> None:
        self.write(_list_end(self.n, self.n_redriven) if self.n else "no dead letters")


# --- show ----------------------------------------------------------------------------------
def _text_or_hex(b: bytes | None) -> str | None:
    if b is None:
        return None
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + b.hex()
    return text if text.isprintable() else "0x" + b.hex()


def _preview(b: bytes, limit: int = 200) -> str:
    text = b[:limit * 4].decode("utf-8", "replace")
    # a tab or an ideographic space stays a space: it may part the groups of an ID number, which must
    # still read as one for the mask (mask_personal)
    text = "".join(ch if ch.isprintable() or ch == "\u3000" else " " if ch == "\t" else "." for ch in text)
    return text[:limit] + ("..." if len(text) > limit or len(b) > limit * 4 else "")


async def _decode(settings: Settings, value: bytes | None, codec=None) -> tuple[str | None, dict | None, str | None]:
    """(schema name, record, error) of a value."""
    from creditstream.connections import make_codec
    from streams.codec import DecodeError, RegistryError

    codec = codec or make_codec(settings)
    try:
        await codec.ensure_for([value])  # a remote registry: its writer schema, awaited
        name, record = codec.decode(value)
    except DecodeError as exc:
        return None, None, str(exc)
    except RegistryError as exc:
        return None, None, f"schema registry: {exc}"
    return name, record, None


def _mask_text(text: str | None) -> str | None:
    """ID numbers masked: 18-character, 15-digit legacy, and both written with spaces or dashes."""
    from domain.identifiers import mask_id_numbers_in_text

    return None if text is None else mask_id_numbers_in_text(text)


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _mask_preview(text: str) -> str:
    """The preview of bytes no schema decoded: ID numbers masked, and each run of non-ASCII text
    (Chinese) kept to its first character, as a name is masked: undecoded, a name cannot be told from
    a unit's name or a document number there (``--personal`` shows the bytes)."""
    return _NON_ASCII_RUN.sub(lambda m: m.group()[0] + "*" * (len(m.group()) - 1), _mask_text(text) or "")


def mask_personal(d: dict) -> dict:
    """A dead letter (``show`` / ``list`` form) as a reader without the right to personal data
    sees it (RULES.md 7): the decoded record through :func:`domain.privacy.redact_personal` (ID
    numbers anywhere, natural persons' names), ID numbers (18-character, 15-digit legacy, and both
    written with spaces or dashes) masked in the key, headers and detail, the preview of undecoded
    bytes masked further (:func:`_mask_preview`: names cannot be told apart there), and the raw bytes
    (``value_hex``) withheld; ``personal_data_masked`` says so."""
    from domain.privacy import redact_personal, safe_detail

    out = dict(d)
    decoded = out.get("decoded")
    secrets_in_record = None
    if decoded:
        out["decoded"] = {"schema": decoded["schema"], "record": redact_personal(decoded["record"])}
        secrets_in_record = redact_personal({"key": out.get("key"), "record": decoded["record"]})["key"]
    if isinstance(out.get("decode_error"), str):
        out["decode_error"] = _mask_text(out["decode_error"])
    if isinstance(out.get("preview"), str):
        out["preview"] = _mask_preview(out["preview"])
    if isinstance(out.get("detail"), str):  # made safe when written; a letter written before that too
        out["detail"] = safe_detail(out["detail"])
    if "key" in out:
        out["key"] = secrets_in_record if secrets_in_record is not None else _mask_text(out["key"])
    if "headers" in out:
        out["headers"] = [[k, _mask_text(v)] for k, v in out["headers"]]
    if "value_hex" in out:
        out["value_hex"] = None
    out["personal_data_masked"] = True
    return out


async def show(settings: Settings, ref: str) -> dict | None:
    """One dead letter whole (see the module docstring), or None when there is none at ``ref``."""
    from streams.codec import to_json

    partition, offset = parse_ref(ref)
    letter = (await _fetch(settings, [(partition, offset)])).get((partition, offset))
    if letter is None:
        return None
    name, record, error = (None, None, None) if letter.value_omitted else await _decode(settings, letter.value)
    d = letter.summary()
    place = letter.source_place
    d.update({
        "timestamp": letter.timestamp,
        "headers": [[k, _text_or_hex(v)] for k, v in letter.headers],
        "key": _text_or_hex(letter.key),
        "value_hex": letter.value.hex() if letter.value is not None else None,
        "tombstone": letter.value is None,
        "decoded": {"schema": name, "record": to_json(name, record)} if name else None,
        "decode_error": error,
        "preview": None if name or letter.value_omitted else _preview(letter.value or b""),
        # written without its value: where the original is (what `dlq redrive` reads back)
        "original_at": f"{place[0]}/{place[1]}/{place[2]}" if letter.value_omitted and place else None,
        "redriven": (await redriven(settings, [letter.ref])).get(letter.ref),
    })
    return d


def render_show(d: dict) -> str:
    lines = [
        f"dead letter {d['ref']}  ({d['size']} bytes)",
        f"  reason          {d['reason']}",
        f"  detail          {d['detail']}",
        f"  agent           {d['agent']}",
        f"  source          {d['source_topic']}/{d['source_partition']}/{d['source_offset']}"
        f"  at {format_ms(d['source_timestamp'])}",
        f"  dead-lettered   {format_ms(d['dead_lettered_at'])}",
        f"  key             {d['key'] if d['key'] is not None else '(none)'}",
    ]
    if d.get("redriven_from"):
        lines.append(f"  re-drive of     {d['redriven_from']}")
    r = d.get("redriven")
    if r:
        lines.append(f"  re-driven       {r['at']} by {r['by']}{' with a fix' if r['fixed'] else ''} -> "
                     f"{r['topic']}/{r['partition']}/{r['offset']}")
    else:
        lines.append("  re-driven       no")
    lines.append("  headers")
    for k, v in d["headers"]:
        lines.append(f"    {k} = {v}")
    hexed = d["value_hex"]
    if d.get("tombstone"):
        lines.append("  value           null (a tombstone; a re-drive sends a tombstone)")
    elif d.get("value_omitted"):
        where = d.get("original_at") or "nowhere: the dead letter names no source"
        lines.append(f"  value           omitted ({d['value_omitted']}): over the dead-letter topic's limit, the "
                     "dead letter was written without it")
        lines.append(f"  original at     {where} (on its source topic while that keeps it; "
                     "`dlq redrive` reads it from there)")
    elif hexed is None:
        lines.append("  value (hex)     withheld: it may hold names and ID numbers (--personal shows it)")
    else:
        lines.append("  value (hex)")
        for i in range(0, len(hexed), 64):
            lines.append(f"    {hexed[i:i + 64]}")
    if d.get("value_omitted"):
        return "\n".join(lines)
    if d.get("decoded"):
        lines.append(f"  value (Avro {d['decoded']['schema']})")
        body = orjson.dumps(d["decoded"]["record"], option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        lines.extend("    " + line for line in body.splitlines())
    else:
        lines.append(f"  value is not Avro: {d.get('decode_error')}")
        lines.append(f"  preview         {d.get('preview')}")
    return "\n".join(lines)


# --- redrive -------------------------------------------------------------------------------
@dataclass
class Redriven:
    ref: str
    action: str  # redriven | would-redrive | skipped | not-found | no-source | original-gone | unsendable
    reason: str = ""
    source: str = ""
    fixed: bool = False
    target: dict | None = None
    note: str = ""
    original: str = ""  # topic/partition/offset the original was read back from (a letter without its value)

    def add_note(self, text: str) -> None:
        self.note = f"{self.note}; {text}" if self.note else text


@dataclass
class RedriveReport:
    """What a re-drive did with each dead letter, in the order it went through them. With ``emit``,
    each item is handed to it once its action is final (a chunk at a time) and not kept: a selection
    of millions prints as it goes and holds only the counts (:meth:`render_item`, :meth:`render_end`);
    without, :attr:`items` holds them all."""

    dry_run: bool
    items: list[Redriven] = field(default_factory=list)
    emit: Callable[[Redriven], None] | None = None
    counts: Counter[str] = field(default_factory=Counter)
    forgotten: int = 0  # re-drives of letters the topic no longer holds, dropped from the audit

    def add(self, item: Redriven) -> None:
        self.counts[item.action] += 1
        if self.emit is None:
            self.items.append(item)
        else:
            self.emit(item)

    def count(self, action: str) -> int:
        return self.counts[action]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "items": [i.__dict__ for i in self.items]}

    def render(self) -> str:
        return "\n".join([*(line for i in self.items for line in self.render_item(i)), *self.render_end()])

    @staticmethod
    def render_item(i: Redriven) -> list[str]:
        fix = " (fixed)" if i.fixed else ""
        lines = []
        if i.action == "redriven":
            t = i.target or {}
            lines.append(f"  re-driven{fix}   {pad(i.ref, 9)} {pad(i.reason, 20)} -> {t.get('topic')}/"
                         f"{t.get('partition')}/{t.get('offset')}")
            if i.note:
                lines.append(f"      ({i.note})")
        elif i.action == "would-redrive":
            lines.append(f"  would re-drive{fix} {pad(i.ref, 9)} {pad(i.reason, 20)} -> {i.source}")
            if i.note:
                lines.append(f"      ({i.note})")
        else:
            lines.append(f"  {pad(i.action, 13)} {pad(i.ref, 9)} {pad(i.reason, 20)} {i.note}")
        return lines

    def render_end(self) -> list[str]:
        """The summary after the items (or that none matched)."""
        if not self.total:
            return ["no dead letter matches"]
        verb = "would re-drive" if self.dry_run else "re-drove"
        n = self.count("would-redrive" if self.dry_run else "redriven")
        lines = [f"{verb} {n}, skipped {self.count('skipped')} (already re-driven; --force to re-drive "
                 f"again), not found {self.count('not-found')}, without a source {self.count('no-source')}"]
        unsendable = self.count("unsendable")
        if unsendable:
            lines.append(f"not sent {unsendable}: empty messages without a key (tombstones), which no client sends; "
                         "they stay dead letters")
        gone = self.count("original-gone")
        if gone:
            lines.append(f"refused {gone}: written without its value, and the original could not be read back from "
                         "its source topic (see above); nothing was sent or recorded for it")
        if self.forgotten:
            lines.append(f"the re-drive audit forgot {self.forgotten} re-drives of dead letters the topic no longer "
                         "holds (its retention)")
        return lines

    @property
    def failed(self) -> bool:
        """A dead letter named was not found, or one selected could not be re-driven (exit non-zero)."""
        return bool(self.count("not-found") or self.count("original-gone"))


def _load_fix(path: str | os.PathLike) -> tuple[dict, str | None, int | None]:
    """(fields, kind or None, timestamp ms or None) from a fix file."""
    from ops.produce import _timestamp_ms

    try:
        obj = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise RedriveError(f"cannot read the fix file {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise RedriveError(f"the fix file {path} is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RedriveError(f"the fix file {path} must hold a JSON object")
    if isinstance(obj.get("fields"), dict):
        try:
            ts = _timestamp_ms(obj.get("timestamp"))
        except ValueError:
            raise RedriveError(f"the fix file {path}: bad timestamp {obj.get('timestamp')!r}") from None
        return obj["fields"], obj.get("kind"), ts
    return obj, None, None


def _schema_for(kind: str) -> str:
    from domain.kinds import SCHEMA_OF_KIND
    from schemas import all_schemas

    if kind in SCHEMA_OF_KIND:
        return SCHEMA_OF_KIND[kind]
    if kind in all_schemas():
        return kind
    raise RedriveError(f"unknown kind {kind!r}; one of {', '.join(SCHEMA_OF_KIND)}")


async def _encode_fix(settings: Settings, codec, letter: DeadLetter, path, kind: str | None
                      ) -> tuple[bytes, int | None, str, bytes | None]:
    """The fixed value (Avro, Confluent wire format) for ``letter``, its timestamp, the topic it goes
    to, and its key: the fixed record's subject (a fix that changes the identifier moves the record to
    its subject's partition, as ``creditstream produce`` keys it), else the letter's own key."""
    from streams.codec import RegistryError, from_json

    fields, file_kind, ts = _load_fix(path)
    fields, restored = await _unmasked(settings, codec, letter, fields, path)
    kind = kind or file_kind
    if kind:
        schema = _schema_for(kind)
    else:
        schema, _, error = await _decode(settings, letter.value, codec)
        if schema is None:
            raise RedriveError(f"dead letter {letter.ref} does not decode as Avro ({error}): "
                               "name the fixed record's kind with --kind")
    topic = home_topic(settings, schema, letter.source_topic)
    try:
        await codec.ensure_writer(schema, topic)  # a remote registry: registered, awaited
        record = from_json(schema, fields)
        value = codec.encode(schema, record, topic=topic)
    except RegistryError:
        raise  # the registry's failure, not the fix's
    except Exception as exc:  # noqa: BLE001 - ValueError/EncodeError name the field
        raise RedriveError(f"the fix file {path} does not encode as {schema}: {exc}") from None
    from domain.kinds import KIND_OF_SCHEMA
    from ops.produce import subject_key

    fixed_kind = KIND_OF_SCHEMA.get(schema or "")
    key = subject_key(fixed_kind, record) if fixed_kind else None
    return value, ts, topic, key if key is not None else letter.key, restored


async def _unmasked(settings: Settings, codec, letter: DeadLetter, fields: dict, path
                    ) -> tuple[dict, list[str]]:
    """The fix's fields with the values ``dlq show`` masked (without ``--personal``: names, ID
    numbers, their echoes in free text) and the fix left as shown put back to the original's, and the
    fields so restored. A fix is written from ``dlq show REF --json`` (docs/operations.md): sent as
    they are, ``李**`` and ``410**************5`` would be taken for the legal representative's name
    and number. A field the fix changed that still holds a mask is refused: its original cannot be
    told (RedriveError: write the fix from ``dlq show REF --personal --json``)."""
    from domain.privacy import redact_personal
    from streams.codec import to_json

    if letter.value is None:
        return fields, []
    name, record, _ = await _decode(settings, letter.value, codec)
    if name is None:
        return fields, []
    original = to_json(name, record)
    masked = redact_personal(original)
    restored: list[str] = []
    masks: set[str] = set()

    def collect(orig, mask) -> None:
        if isinstance(orig, str) and isinstance(mask, str):
            if orig != mask:
                masks.add(mask)
        elif isinstance(orig, dict) and isinstance(mask, dict):
            for k in orig:
                collect(orig[k], mask.get(k))
        elif isinstance(orig, list) and isinstance(mask, list) and len(orig) == len(mask):
            for o, m in zip(orig, mask):
                collect(o, m)

    def restore(fix, orig, mask, where: str):
        if isinstance(fix, str) and isinstance(orig, str) and fix == mask and orig != mask:
            restored.append(where)
            return orig
        if isinstance(fix, dict) and isinstance(orig, dict) and isinstance(mask, dict):
            return {k: restore(v, orig.get(k), mask.get(k), f"{where}.{k}" if where else k) if k in orig else v
                    for k, v in fix.items()}
        if isinstance(fix, list) and isinstance(orig, list) and isinstance(mask, list) \
                and len(fix) == len(orig) == len(mask):
            return [restore(f, o, m, f"{where}[{i}]") for i, (f, o, m) in enumerate(zip(fix, orig, mask))]
        return fix

    def still_masked(fix, orig, where: str) -> list[str]:
        if isinstance(fix, str):
            base = orig if isinstance(orig, str) else ""
            return [where] if any(m in fix and m not in base for m in masks if len(m) >= 2) else []
        if isinstance(fix, dict):
            return [w for k, v in fix.items()
                    for w in still_masked(v, orig.get(k) if isinstance(orig, dict) else None,
                                          f"{where}.{k}" if where else k)]
        if isinstance(fix, list):
            return [w for i, v in enumerate(fix)
                    for w in still_masked(v, orig[i] if isinstance(orig, list) and i < len(orig) else None,
                                          f"{where}[{i}]")]
        return []

    collect(original, masked)
    if not masks:
        return fields, []
    out = restore(fields, original, masked, "")
    left = still_masked(out, original, "")
    if left:
        raise RedriveError(f"the fix file {path} holds personal data as `dlq show` masks it, in a changed "
                           f"value ({', '.join(left)}): its original cannot be told; write the fix from "
                           f"`creditstream dlq show {letter.ref} --personal --json`")
    return out, restored


def home_topic(settings: Settings, schema: str | None, source: str) -> str:
    """Where a re-driven message goes: the topic its schema's kind travels on (a kind sent to
    another kind's topic was dead-lettered for it, ``unexpected-schema``); else where it came from."""
    from domain.kinds import KIND_OF_SCHEMA

    kind = KIND_OF_SCHEMA.get(schema or "")
    return Topics(settings).for_kind(kind) if kind else source


def _headers_for(letter: DeadLetter) -> list[tuple[str, bytes]]:
    headers = [(k, v) for k, v in letter.original_headers if k != REDRIVEN_FROM_HEADER]
    headers.append((REDRIVEN_FROM_HEADER, f"dead-letters/{letter.partition}/{letter.offset}".encode()))
    return headers


async def _with_originals(settings: Settings, todo: list[tuple[DeadLetter, Redriven]], *, fix_kind: str | None
                          ) -> list[tuple[DeadLetter, Redriven]]:
    """The dead letters to re-drive, those written without their value (``dlq.value-omitted``)
    with the original read back from ``dlq.source.*`` (its bytes, key and headers). One whose
    original the source no longer holds is refused (``original-gone``, the item says why) and
    left out; except for a fix encoded as a named kind (``fix_kind``), which needs no original
    bytes: it goes with the dead letter's own key and headers."""
    omitted = [letter for letter, _ in todo if letter.value_omitted]
    if not omitted:
        return todo
    originals = await fetch_originals(settings, omitted)
    out = []
    for letter, item in todo:
        if letter.value_omitted:
            got = originals[letter.ref]
            if isinstance(got, str):
                if fix_kind is None:
                    item.action, item.note = "original-gone", got
                    continue
                item.add_note("the original is gone from its source: the fix goes with the dead letter's key "
                              "and headers")
            else:
                place = letter.source_place or ("", -1, -1)
                item.original = f"{place[0]}/{place[1]}/{place[2]}"
                item.add_note(f"the original read from {item.original} (the dead letter was written without it)")
                letter = got
        out.append((letter, item))
    return out


async def redrive(settings: Settings, refs: list[str] | None = None, *, flt: Filter | None = None,
                  fix: str | os.PathLike | None = None, kind: str | None = None, dry_run: bool = False,
                  force: bool = False, by: str | None = None, progress: bool | None = None,
                  window: int = 0, emit: Callable[[Redriven], None] | None = None) -> RedriveReport:
    """Re-produce dead letters to their source topic (see the module docstring).

    ``refs`` (``P:O`` strings) name the dead letters; without them ``flt`` selects them (one of
    the two is required). ``fix``: a JSON file with the corrected record (one dead letter only);
    ``kind``: the kind (or full schema name) to encode it with, default the original's schema.
    A dead letter written without its value (``dlq.value-omitted``: over the dead-letter topic's
    limit) is re-driven with the original read back from its source topic (``dlq.source.*``);
    where that topic no longer holds it, it is refused (``original-gone``): nothing is sent or
    recorded for it, the others go on, and :attr:`RedriveReport.failed` is true.

    The letters go in the order their messages first arrived (source topic, partition, offset), so
    that a record and its correction keep theirs, :data:`REDRIVE_CHUNK` at a time: each chunk's
    earlier re-drives are read from the audit, its letters read back whole, sent and recorded, and
    its items handed to ``emit`` (:class:`RedriveReport`). What is held besides a chunk is the
    selection, light (:class:`ops.dead_letters.Selected`).
    Raises ValueError for a bad ref and RedriveError when the re-drive cannot be done as asked;
    nothing is sent then."""
    from creditstream.connections import make_codec, redis_client

    if not refs and (flt is None or flt.empty):
        raise RedriveError("name the dead letters to re-drive (PARTITION:OFFSET ...) or select them with "
                           "--reason, --topic, --since or --until")
    if kind and not fix:
        raise RedriveError("--kind only goes with --fix")
    report = RedriveReport(dry_run=dry_run, emit=emit)
    letters: list[DeadLetter] | list[Selected]
    if refs:
        places = list(dict.fromkeys(parse_ref(r) for r in refs))
        found = await _fetch(settings, places)
        named = []
        for p, o in places:
            if (p, o) in found:
                named.append(found[(p, o)])
            else:
                report.add(Redriven(f"{p}:{o}", "not-found", note="no dead letter there"))
        if flt is not None:
            prefix = Topics(settings).prefix
            named = [x for x in named if flt.matches(x, prefix)]
        letters = named
    else:  # a selection: held light (ref, source place, reason), each chunk read back whole when sent
        letters = await _matching(settings, flt, Selected.of)
    if not letters:
        if fix is not None and not report.total:
            raise RedriveError("--fix re-drives exactly one dead letter; 0 selected")
        return report
    # the order they first arrived in, so that a record and its correction keep theirs
    letters.sort(key=lambda x: (x.source_topic, x.source_partition, x.source_offset, x.partition, x.offset))
    # a fix goes with one letter: the whole selection is decided, and refused if it is not one, before
    # anything is sent
    bounds = _chunk_bounds(letters, REDRIVE_CHUNK) if fix is None else [(0, len(letters))]
    codec = make_codec(settings)
    redis = redis_client(settings)
    producer = kafka.producer(settings) if not dry_run else None
    audit_key = Keys(settings.namespace).dlq_redriven
    bar = None
    try:
        for start, end in bounds:
            chunk = letters[start:end]
            done = await _redriven_of(redis, audit_key, [x.ref for x in chunk])
            decided, todo = _decide(chunk, done, by_ref=bool(refs), force=force)
            if fix is not None:
                _one_for_the_fix(todo, decided, report)
            if bar is None:
                from ops.replay import Progress

                bar = Progress(len(letters), enabled=progress, label="dlq redrive", unit="letters")
                if producer is not None:
                    await producer.start()
            sends = await _sends(settings, codec, todo, fix, kind)
            bar.advance(len(chunk) - len(sends))  # skipped, refused (their original gone), or gone themselves
            if producer is None:
                for _, item, *_ in sends:
                    item.action = "would-redrive"
            else:
                await _send_and_record(settings, producer, redis, audit_key, sends, done, by=by or operator(),
                                       window=window or REDRIVE_WINDOW, bar=bar)
            for item in decided:
                report.add(item)
        if producer is not None:
            report.forgotten = await forget_expired(settings, redis, audit_key)
    finally:
        if bar is not None:
            bar.close()
            if producer is not None:
                await producer.stop()
        await redis.aclose()
    return report


EARLIER_KEPT = 20
"""The earlier (forced) re-drives the audit keeps of one dead letter, the newest: a letter forced
again and again grew its entry without bound (a soak run: 1,523 bytes after 6)."""


async def forget_expired(settings: Settings, redis, audit_key: str) -> int:
    """Drop from the audit the re-drives of dead letters the dead-letter topic no longer holds (below
    a partition's log start: the topic's retention, ``dead_letter_retention_days``). The audit kept
    every re-drive ever made (a soak run: 270 bytes each, never trimmed); a letter gone from the topic
    can be neither shown nor re-driven again, so its re-drive's record has nothing left to decide.
    Run after every re-drive; returns how many were dropped (Tansu deletes nothing: none)."""
    by_partition: dict[int, list[tuple[int, bytes]]] = {}
    for name in await redis.hkeys(audit_key):  # (bounded by the letters the topic holds; keys only)
        ref = name.decode() if isinstance(name, bytes) else str(name)
        partition, _, offset = ref.partition(":")
        if partition.isdigit() and offset.isdigit():
            by_partition.setdefault(int(partition), []).append((int(offset), name))
    if not by_partition:
        return 0
    from aiokafka import TopicPartition

    topic = Topics(settings).dead_letters
    starts = await kafka.log_starts(settings, [TopicPartition(topic, p) for p in sorted(by_partition)])
    gone = [name for p, refs in by_partition.items() for offset, name in refs
            if offset < starts.get(TopicPartition(topic, p), 0)]
    for i in range(0, len(gone), 1000):
        await redis.hdel(audit_key, *gone[i:i + 1000])
    return len(gone)


def _chunk_bounds(letters: Sequence[DeadLetter | Selected], size: int) -> list[tuple[int, int]]:
    """[start, end) of chunks of about ``size`` sorted letters, never splitting the letters of one
    source message (a message dead-lettered twice is decided as one, :func:`_decide`)."""
    bounds, start = [], 0
    while start < len(letters):
        end = min(start + size, len(letters))
        while end < len(letters) and letters[end].source_place is not None \
                and letters[end].source_place == letters[end - 1].source_place:
            end += 1
        bounds.append((start, end))
        start = end
    return bounds


async def _redriven_of(redis, audit_key: str, refs: list[str]) -> dict[str, dict]:
    """``P:O`` -> the last re-drive of each of these dead letters that had one (the audit, read for
    them only: it holds every re-drive ever made)."""
    raw = await redis.hmget(audit_key, refs) if refs else []
    return {ref: orjson.loads(v) for ref, v in zip(refs, raw) if v is not None}


def _decide(letters: Sequence[DeadLetter | Selected], done: dict[str, dict], *, by_ref: bool, force: bool
            ) -> tuple[list[Redriven], list[tuple[DeadLetter | Selected, Redriven]]]:
    """Each letter's item, and those to re-drive: not a letter without a source, a selection's
    re-drive that failed again, a second letter of one message, or one re-driven before (unless
    ``force``)."""
    # a message dead-lettered twice (its source read again: `positions move --to-start`, a batch
    # redelivered): a selection re-drives it once, by the letter re-driven before, else the first
    stands_for: dict[tuple[str, int, int], str] = {}
    for letter in sorted(letters, key=lambda x: x.ref not in done):
        if letter.source_place is not None:
            stands_for.setdefault(letter.source_place, letter.ref)
    decided: list[Redriven] = []
    todo: list[tuple[DeadLetter | Selected, Redriven]] = []
    for letter in letters:
        item = Redriven(letter.ref, "", reason=letter.reason, source=letter.source_topic)
        first = stands_for.get(letter.source_place) if letter.source_place is not None else None
        if not letter.source_topic:
            item.action, item.note = "no-source", "no dlq.source.topic header"
        elif not by_ref and letter.redriven_from:
            # a re-drive that failed again: its original is what a selection re-drives (once, or
            # again with --force); re-driving the copies too would multiply them on every rerun
            item.action = "skipped"
            item.note = f"a re-drive of {letter.redriven_from} that failed again (name its ref to re-drive it)"
        elif not by_ref and first is not None and first != letter.ref:
            item.action = "skipped"
            item.note = (f"the message of {first} (dead-lettered again when its source was read again; "
                         "name its ref to re-drive it)")
        elif letter.ref in done and not force:
            prev = done[letter.ref]
            item.action = "skipped"
            item.note = f"re-driven {prev.get('at')} by {prev.get('by')}"
        else:
            todo.append((letter, item))
        decided.append(item)
    return decided, todo


def _one_for_the_fix(todo: list, decided: list[Redriven], report: RedriveReport) -> None:
    """A fix goes with exactly one dead letter: RedriveError otherwise, saying why the one named is not."""
    if len(todo) == 1:
        return
    if not todo and report.total + len(decided) == 1:
        only = (decided or report.items)[0]
        if only.action == "skipped":
            raise RedriveError(f"dead letter {only.ref}: {only.note}; add --force to re-drive it again, "
                               "with the fix")
        if only.action == "no-source":
            raise RedriveError(f"dead letter {only.ref} cannot be re-driven: {only.note}")
    raise RedriveError(f"--fix re-drives exactly one dead letter; {len(todo)} selected")


UNKNOWN_SCHEMA_KEPT_MS = int(ConfluentRegistry.UNKNOWN_KEPT_S * 1000)
"""How long a worker holds a schema id the registry refused as unknown (streams/codec.py)."""


async def _send_and_record(settings: Settings, producer, redis, audit_key: str, sends: list, done: dict[str, dict],
                           *, by: str, window: int, bar) -> None:
    """Send the chunk's letters ``window`` at a time, each window's acknowledgements awaited together
    and its re-drives recorded in one round trip (one letter at a time took ~0.5 ms each: 20,000 in
    10.5 s). What was delivered is recorded even when some of the window failed; then the first
    failure is raised."""
    # a dead letter of the subject agent goes back where the workers place its subject
    placed = await placement.recorded(redis, Keys(settings.namespace), {t for *_, t, _ in sends})
    for start in range(0, len(sends), window):
        part = []
        futures: list[asyncio.Future | BaseException] = []
        for send in sends[start:start + window]:
            letter, item, value, ts, topic, key = send
            if value is None and key is None:
                # seen: a department's unkeyed tombstone stopped the whole re-drive with the client's
                # assertion, the window's letters sent before it delivered but never recorded
                item.action = "unsendable"
                item.note = ("an empty message without a key (a tombstone): no Kafka client sends one, and its "
                             "topic's agent would dead-letter it again (empty); nothing sent")
                continue
            try:
                partition = placement.partition_for(placed, topic, key)
                futures.append(await producer.send(topic, value, key=key, headers=_headers_for(letter),
                                                   timestamp_ms=ts, partition=partition))
            except Exception as exc:  # noqa: BLE001 - refused before sending (its size): the window's others go on
                futures.append(exc)
            part.append(send)
        results = await asyncio.shield(asyncio.gather(*(f for f in futures if not isinstance(f, BaseException)),
                                                      return_exceptions=True))  # (as sinks/kafka.py)
        outcomes = iter(results)
        results = [f if isinstance(f, BaseException) else next(outcomes) for f in futures]
        pipe = redis.pipeline(transaction=False)
        failed: BaseException | None = None
        for (letter, item, *_), meta in zip(part, results):
            if isinstance(meta, BaseException):
                failed = failed or meta
                continue
            item.action = "redriven"
            item.target = {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}
            now_ms = int(time.time() * 1000)
            if item.reason in ("unknown-schema-id", "unusable-schema") and isinstance(letter, DeadLetter) \
                    and now_ms - letter.timestamp < UNKNOWN_SCHEMA_KEPT_MS:
                # seen: re-driven at once after the department registered its schema, the letter came
                # back (the workers still held the id as unknown), and a later --reason selection skipped
                # both the original and the copy
                again = format_ms(letter.timestamp + UNKNOWN_SCHEMA_KEPT_MS)
                item.add_note(f"dead-lettered under a minute ago: a worker asks the registry about an id it was "
                              f"refused again only 60 s later; if this comes back as {item.reason}, re-drive "
                              f"it by its new ref after {again}")
            entry = {
                "at": format_ms(now_ms), "at_ms": now_ms, "by": by, "fixed": item.fixed,
                **item.target,
                "source": f"{letter.source_topic}/{letter.info.get('source.partition', '')}/"
                          f"{letter.info.get('source.offset', '')}",
                "reason": item.reason,
            }
            if item.original:
                entry["original_from"] = item.original
            prev = done.get(letter.ref)
            if prev:
                entry["earlier"] = (prev.pop("earlier", []) + [prev])[-EARLIER_KEPT:]
            pipe.hset(audit_key, letter.ref, orjson.dumps(entry))
        await pipe.execute()
        bar.advance(min(window, len(sends) - start))
        if failed is not None:
            raise failed


async def _whole(settings: Settings, chunk: list[tuple[DeadLetter | Selected, Redriven]]
                 ) -> list[tuple[DeadLetter, Redriven]]:
    """The chunk's letters whole: a selection's light entries read back from the dead-letter topic
    (one read over the partitions and offsets they name). One gone since it was selected (the
    topic's retention) is left out, its item saying so."""
    wanted = [(x.partition, x.offset) for x, _ in chunk if isinstance(x, Selected)]
    found = await _fetch(settings, wanted) if wanted else {}
    out: list[tuple[DeadLetter, Redriven]] = []
    for letter, item in chunk:
        if isinstance(letter, Selected):
            whole = found.get((letter.partition, letter.offset))
            if whole is None:
                item.action, item.note = "not-found", "no longer on the dead-letter topic (its retention)"
                continue
            letter = whole
        out.append((letter, item))
    return out


async def _sends(settings: Settings, codec, chunk: list[tuple[DeadLetter | Selected, Redriven]], fix, kind
                 ) -> list[tuple[DeadLetter, Redriven, bytes | None, int | None, str, bytes | None]]:
    """What the chunk's letters are sent as: (letter, item, value, timestamp, topic, key), the
    letters read whole, those written without their value with their original
    (:func:`_with_originals`), a fix encoded."""
    todo = await _with_originals(settings, await _whole(settings, chunk),
                                 fix_kind=kind if fix is not None else None)
    sends = []
    for letter, item in todo:
        key = letter.key
        if fix is not None:
            value, ts, topic, key, restored = await _encode_fix(settings, codec, letter, fix, kind)
            item.fixed = True
            if restored:
                item.add_note(f"sent as in the original where the fix holds values masked by `dlq show`: "
                              f"{', '.join(restored)}")
            if key != letter.key:
                item.add_note("keyed by the fixed record's subject")
        else:
            value, ts, topic = letter.value, letter.source_timestamp or None, letter.source_topic
            if item.reason == "unexpected-schema":  # sent to another kind's topic: re-driven to its own
                schema, _, _ = await _decode(settings, value, codec)
                topic = home_topic(settings, schema, letter.source_topic)
        if topic != letter.source_topic:
            item.add_note(f"to {topic}, the topic of its kind (it came from {letter.source_topic})")
        sends.append((letter, item, value, ts, topic, key))
    return sends
