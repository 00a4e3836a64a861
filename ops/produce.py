"""The department side: publish events from a JSON Lines file (``creditstream produce FILE``).

One event a line::

    {"kind": "penalty", "fields": {...the Avro record, dates as "YYYY-MM-DD"...},
     "timestamp": "2024-05-21T10:00:00+08:00"}        # optional: event time (default: now)

Kinds: penalty, license, court_listing, court_deletion, action, registration (department side);
objection, repair, listing_decision (credit office); feedback (implementing units). Each event is
Avro-encoded in the Confluent wire format (docs/events.md) and sent to its topic. A line that cannot
be encoded (not JSON, unknown kind, a field of the wrong type, a required field missing) is refused
and reported with its line number; whether an encoded event is *valid* is the pipeline's judgement
(it dead-letters what fails validation). For testing that path, a line may carry raw bytes:
``{"kind": "raw", "topic": "penalty", "value_hex": "07ff..."}`` (``topic`` names the input kind
whose topic the bytes go to).

Every event is keyed by its subject (``subject_key``), so that one subject's inputs stay on one
partition, in order (docs/events.md, "Keys, order and timestamps"): the USCC if the record has one,
else the natural person's ID number, else the organisation code, registration number or tax number
(the first present), else no key. Registrations are keyed by their USCC (the registration topic is
compacted by key); feedback by its ``subject_id``. Raw lines are sent without a key.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from creditstream.settings import Settings
from domain.fields import _PLACEHOLDERS as _NO_VALUE  # "无", "NULL", ...: the pipeline reads no code
from domain.fields import _filler
from domain.identifiers import normalise_code
from domain.kinds import SCHEMA_OF_KIND
from streams import kafka
from streams.codec import from_json
from streams.topics import SPEC_OF_KIND, Topics


@dataclass
class ProduceReport:
    source: str
    sent: Counter = field(default_factory=Counter)
    refused: list[tuple[int, str]] = field(default_factory=list)
    dry_run: bool = False

    def render(self) -> str:
        verb = "would send" if self.dry_run else "sent"
        lines = [f"{self.source}: {verb} {sum(self.sent.values())} event(s), refused {len(self.refused)}"]
        for topic, n in sorted(self.sent.items()):
            lines.append(f"  {verb} {n:>6}  -> {topic}")
        for line_no, why in self.refused:
            lines.append(f"  refused line {line_no}: {why}")
        return "\n".join(lines)


_LATEST_MS = 253402300800000  # 10000-01-01: a message timestamp is epoch milliseconds below it


def _timestamp_ms(value) -> int | None:
    """A line's ``timestamp``: ISO 8601 (China time when it names no zone), or epoch milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, float) and value != value:
        raise ValueError(f"timestamp: not a time: {value!r}")
    if isinstance(value, (int, float)):
        if not 0 <= value < _LATEST_MS:
            raise ValueError(f"timestamp: {value!r} ms is outside 1970-01-01 .. 9999-12-31")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"timestamp: an ISO 8601 string or epoch milliseconds, not {type(value).__name__}")
    ts = dt.datetime.fromisoformat(value)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))  # China Standard Time
    return int(ts.timestamp() * 1000)


# The subject's identifier, best first (the pipeline's order: USCC, resident ID, legacy numbers).
SUBJECT_KEY_FIELDS = ("uscc", "person_id_no", "org_code", "reg_no", "tax_no", "institution_cert_no",
                      "social_org_cert_no")
# Kinds whose subject is named by other fields than SUBJECT_KEY_FIELDS.
_KEY_FIELDS_OF_KIND = {
    "registration": ("uscc",),  # compacted topic: the key is the USCC
    "feedback": ("subject_id",),  # USCC or resident ID of the subject the measure was taken on
}


def subject_key(kind: str, fields: dict) -> bytes | None:
    """The message key of an input: its subject's identifier in canonical form (as the pipeline
    reads it: half-width, upper case, separators removed), or None if the record names none."""
    for name in _KEY_FIELDS_OF_KIND.get(kind, SUBJECT_KEY_FIELDS):
        value = fields.get(name)
        if value is None:
            continue
        code = normalise_code(str(value))
        if code and code not in _NO_VALUE and not _filler(code):  # 000000000000000000 is no code
            return code.encode()
    return None


def encode_line(line: str, codec, topics: Topics) -> tuple[str, bytes, bytes | None, int | None]:
    """(topic, value, key, timestamp_ms) of one JSON line; ValueError says why it is refused."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    kind = obj.get("kind")
    ts = _timestamp_ms(obj.get("timestamp"))
    if kind == "raw":
        kinds = sorted(SPEC_OF_KIND)
        if not isinstance(obj.get("topic"), str) or obj["topic"] not in kinds:
            raise ValueError(f"raw: 'topic' must name an input kind: {', '.join(kinds)}")
        if not isinstance(obj.get("value_hex", ""), str):
            raise ValueError("raw: 'value_hex' must be a string of hex digits")
        return topics.for_kind(obj["topic"]), bytes.fromhex(obj.get("value_hex", "")), None, ts
    if not isinstance(kind, str) or kind not in SPEC_OF_KIND:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(SCHEMA_OF_KIND)}")
    fields = obj.get("fields")
    if not isinstance(fields, dict):
        raise ValueError("'fields' must be an object")
    schema = SCHEMA_OF_KIND[kind]
    topic = topics.for_kind(kind)
    record = from_json(schema, fields)
    try:
        value = codec.encode(schema, record, topic=topic)
    except Exception as exc:  # noqa: BLE001 - the codec's message names the field
        raise ValueError(f"{kind}: cannot encode: {exc}") from None
    return topic, value, subject_key(kind, record), ts  # what was encoded: unknown keys dropped


def writers_needed(lines, topics: Topics) -> set[tuple[str, str]]:
    """(schema, topic) of each event kind the lines name (lines that do not parse are skipped here:
    :func:`encode_line` refuses them)."""
    needed = set()
    for line in lines:
        try:
            kind = orjson.loads(line).get("kind")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if kind in SPEC_OF_KIND and kind in SCHEMA_OF_KIND:
            needed.add((SCHEMA_OF_KIND[kind], topics.for_kind(kind)))
    return needed


async def produce_file(settings: Settings, path: str, *, dry_run: bool = False) -> ProduceReport:
    from creditstream.connections import make_codec

    topics = Topics(settings)
    codec = make_codec(settings)
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    report = ProduceReport(source=path, dry_run=dry_run)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("//")]
    # a remote registry: the schemas of the kinds in the file, registered before anything is
    # encoded; a registry that is down raises RegistryError here (an outage), not a refused line
    if codec.remote:
        await codec.ensure_writers(writers_needed((line for _, line in lines), topics))
    encoded = []
    for line_no, line in lines:
        try:
            encoded.append(encode_line(line, codec, topics))
        except ValueError as exc:
            report.refused.append((line_no, str(exc)))
        except Exception as exc:  # noqa: BLE001 - a line nothing above foresaw is refused, never the run's end
            report.refused.append((line_no, f"cannot encode: {type(exc).__name__}: {exc}"[:300]))
    if dry_run:
        for topic, *_ in encoded:
            report.sent[topic] += 1
        return report
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    await producer.start()
    try:
        futures = []
        for topic, value, key, ts in encoded:
            futures.append((topic, await producer.send(topic, value, key=key, timestamp_ms=ts)))
        for topic, fut in futures:
            await fut
            report.sent[topic] += 1
    finally:
        await producer.stop()
    return report
