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

import asyncio
import datetime as dt
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from creditstream.settings import Settings
from domain.fields import _PLACEHOLDERS as _NO_VALUE  # "无", "NULL", ...: the pipeline reads no code
from domain.fields import _filler
from domain.identifiers import normalise_code
from domain.kinds import SCHEMA_OF_KIND
from domain.privacy import safe_detail
from streams import kafka
from streams.codec import from_json
from streams.topics import SPEC_OF_KIND, Topics


@dataclass
class ProduceReport:
    source: str
    sent: Counter = field(default_factory=Counter)
    refused: list[tuple[int, str]] = field(default_factory=list)
    dry_run: bool = False
    done_through: int = 0
    """The last line of the file whose events, and those of every line before it, were all sent and
    acknowledged (or refused)."""
    interrupted: bool = False

    def render(self) -> str:
        verb = "would send" if self.dry_run else "sent"
        lines = [f"{self.source}: {'interrupted: ' if self.interrupted else ''}{verb} "
                 f"{sum(self.sent.values())} event(s), refused {len(self.refused)}"]
        for topic, n in sorted(self.sent.items()):
            lines.append(f"  {verb} {n:>6}  -> {topic}")
        for line_no, why in self.refused:
            # what a refusal quotes may be a person's name or ID number (a value in the wrong field),
            # and this report goes to job logs: the line number says where it is in the file
            lines.append(f"  refused line {line_no}: {safe_detail(why)}")
        if self.interrupted and not self.dry_run:
            lines.append(f"  lines 1-{self.done_through} were all sent (and acknowledged) or refused; later lines "
                         "may have been sent in part (a line sent twice is recognised as a redelivery)")
            if self.source != "-":
                lines.append(f"  to go on: tail -n +{self.done_through + 1} {self.source} | creditstream produce -")
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
        if _undecoded(line):
            raise ValueError("not UTF-8 text (a file in GBK or another encoding? convert it first, e.g. "
                             "`iconv -f GBK -t UTF-8 in.jsonl > out.jsonl`)") from None
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
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(sorted(SPEC_OF_KIND))}, or raw")
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


CHUNK_LINES = 5000
"""Lines read, encoded and sent at a time: a file of any size is produced in bounded memory (the
previous version read and encoded the whole file first: ~6 KB of memory per line)."""


def _undecoded(line: str) -> bool:
    """Whether ``line`` holds bytes that were not UTF-8 (read with ``surrogateescape``: :func:`_lines`)."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _lines(path: str):
    """(line number, line) of the file (``-``: stdin), read as they come; blank and ``//`` lines
    skipped. Bytes that are not UTF-8 are kept as surrogates: that line is refused, with its number
    (:func:`encode_line`), not the whole run with a traceback."""
    if path == "-":
        sys.stdin.reconfigure(encoding="utf-8", errors="surrogateescape")
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    try:
        for n, line in enumerate(stream, start=1):
            line = line.rstrip("\r\n")
            if line.strip() and not line.lstrip().startswith("//"):
                yield n, line
    finally:
        if stream is not sys.stdin:
            stream.close()


STDIN_LINGER_S = 0.2
"""Standard input is sent as its lines come: a chunk goes once :data:`CHUNK_LINES` lines are in or
no line came for this long (a pipe that writes a line now and then, ``tail -f``, sees each one
sent within a moment, not after 5,000 lines or at its end)."""
_END = object()


async def _chunks(path: str):
    """Chunks of up to :data:`CHUNK_LINES` (line number, line) of the file, or of standard input
    (``-``) as it comes (:data:`STDIN_LINGER_S`), read in bounded memory."""
    if path != "-":
        lines = _lines(path)
        while chunk := [item for _, item in zip(range(CHUNK_LINES), lines)]:
            yield chunk
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=CHUNK_LINES)  # the reader waits while it is full

    def read() -> None:  # a thread: reading stdin blocks, the event loop must not
        try:
            for item in _lines(path):
                asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
            end: object = _END
        except Exception as exc:  # noqa: BLE001 - raised where the chunks are taken
            end = exc
        try:
            asyncio.run_coroutine_threadsafe(queue.put(end), loop).result()
        except RuntimeError:  # the loop is closed: the run was interrupted
            pass

    threading.Thread(target=read, name="produce-stdin", daemon=True).start()
    while True:
        item = await queue.get()
        chunk = []
        deadline = loop.time() + STDIN_LINGER_S
        while item is not _END and not isinstance(item, Exception):
            chunk.append(item)
            if len(chunk) >= CHUNK_LINES:
                break
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    item = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
        if chunk:
            yield chunk
        if isinstance(item, Exception):
            raise item
        if item is _END:
            return


def _refused_by_the_broker(exc: BaseException) -> bool:
    """A delivery failure that sending again would not mend (the broker refused the record: its
    timestamp, its size, its form), as against an outage (a connection, a timeout), which ends the
    run as one."""
    from aiokafka.errors import KafkaError

    return isinstance(exc, KafkaError) and not getattr(exc, "retriable", False) \
        and type(exc).__name__ not in ("KafkaConnectionError", "KafkaTimeoutError", "RequestTimedOutError",
                                       "NodeNotReadyError", "ProducerClosed")


_BROKER_REASONS = {
    "InvalidTimestampError": "its timestamp lies outside what the topic accepts (Apache Kafka: more than "
                             "message.timestamp.after.max.ms ahead, 1 hour by default, or before.max.ms behind); "
                             "the broker refuses the whole batch of its partition, so the lines sent with it are "
                             "refused too: send them again",
    "MessageSizeTooLargeError": "over the topic's max.message.bytes",
    "RecordTooLargeError": "over the topic's max.message.bytes",
}


def _broker_reason(exc: BaseException) -> str:
    return _BROKER_REASONS.get(type(exc).__name__) or (str(exc) or "the broker refused it")[:200]


def _count_lines(path: str) -> int:
    if path == "-":
        return 0
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


async def produce_file(settings: Settings, path: str, *, dry_run: bool = False,
                       progress: bool | None = None, report: ProduceReport | None = None) -> ProduceReport:
    """Encode the file's lines (module doc) and send them, :data:`CHUNK_LINES` at a time (standard
    input as its lines come: :data:`STDIN_LINGER_S`), each chunk acknowledged before the next is taken;
    a progress bar on stderr when it is a terminal. ``report``:
    the report to fill (the caller then has what was done when the run is interrupted)."""
    from creditstream.connections import make_codec
    from ops.replay import Progress

    topics = Topics(settings)
    codec = make_codec(settings)
    report = report if report is not None else ProduceReport(source=path, dry_run=dry_run)
    if path != "-":
        Path(path).stat()  # a missing file: OSError before anything starts
    bar = Progress(_count_lines(path), enabled=progress, label="produce")
    producer = None
    try:
        async for chunk in _chunks(path):
            # a remote registry: the schemas of the kinds in the chunk, registered before they are
            # encoded; a registry that is down raises RegistryError here (an outage), not a refused line
            if codec.remote:
                await codec.ensure_writers(writers_needed((line for _, line in chunk), topics))
            encoded = []
            for line_no, line in chunk:
                try:
                    encoded.append((line_no, *encode_line(line, codec, topics)))
                except ValueError as exc:
                    report.refused.append((line_no, str(exc)))
                except Exception as exc:  # noqa: BLE001 - a line nothing above foresaw is refused, never the run's end
                    report.refused.append((line_no, f"cannot encode: {type(exc).__name__}: {exc}"[:300]))
            if dry_run:
                for _, topic, *_ in encoded:
                    report.sent[topic] += 1
            else:
                if producer is None:
                    await kafka.ensure_topics(settings)
                    producer = kafka.producer(settings)
                    await producer.start()
                futures = [(line_no, topic, await producer.send(topic, value, key=key, timestamp_ms=ts))
                           for line_no, topic, value, key, ts in encoded]
                # shielded: Ctrl-C cancels this wait, never the client's own delivery futures: asyncio.run's
                # handler cancels as the signal comes, between any two lines, so one was cancelled after the
                # client saw it pending and before it resolved it ("Unexpected error in sender routine",
                # InvalidStateError, in a CI run); the producer's stop below waits for them
                acks = await asyncio.shield(asyncio.gather(*(fut for *_, fut in futures), return_exceptions=True))
                outage: BaseException | None = None
                for (line_no, topic, _), ack in zip(futures, acks):
                    if not isinstance(ack, BaseException):
                        report.sent[topic] += 1
                    elif _refused_by_the_broker(ack):
                        # seen: a timestamp an hour ahead (Apache Kafka's message.timestamp.after.max.ms)
                        # ended the run with a traceback, the lines of its batch lost without a word
                        report.refused.append((line_no, f"refused by the broker: {type(ack).__name__}: "
                                                        f"{_broker_reason(ack)}"))
                    else:
                        outage = outage or ack
                if outage is not None:
                    raise outage
            report.done_through = chunk[-1][0]
            bar.advance(chunk[-1][0] - bar.done if bar.total > 1 else len(chunk))
    finally:
        bar.close()
        if producer is not None:
            await producer.stop()
    return report
