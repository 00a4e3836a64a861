"""ops.produce: a JSON line -> (topic, value, key, timestamp); every event keyed by its subject."""

from __future__ import annotations

import orjson
import pytest

from ops.produce import encode_line, subject_key
from streams.codec import AvroCodec, LocalRegistry, to_json
from streams.samples import (
    COMPANY_ORG_CODE,
    COMPANY_REG_NO,
    COMPANY_USCC,
    KINDS,
    PERSON,
    PERSON_ID,
    sample_event,
    schema_of,
)
from streams.topics import Topics

CODEC = AvroCodec(LocalRegistry())
TOPICS = Topics("test.")


def line(kind: str, *, drop: tuple[str, ...] = (), timestamp=None, **overrides) -> str:
    fields = to_json(schema_of(kind), sample_event(kind, **overrides))
    for name in drop:
        fields.pop(name, None)
    obj = {"kind": kind, "fields": fields}
    if timestamp is not None:
        obj["timestamp"] = timestamp
    return orjson.dumps(obj).decode()


def key_of(text: str) -> bytes | None:
    topic, value, key, ts = encode_line(text, CODEC, TOPICS)
    return key


def person(kind: str = "penalty", **overrides) -> str:
    """A natural person's record: no USCC, only the ID number."""
    return line(kind, uscc=None, subject_name=PERSON, person_id_no=PERSON_ID, **overrides)


def test_penalty_keyed_by_uscc():
    topic, value, key, ts = encode_line(line("penalty", timestamp="2024-05-21T10:00:00+08:00"), CODEC, TOPICS)
    assert topic == TOPICS.penalty
    assert CODEC.decode(value)[1]["uscc"] == COMPANY_USCC
    assert key == COMPANY_USCC.encode()
    assert ts == 1716256800000


def test_person_keyed_by_id_number():
    topic, value, key, _ = encode_line(person(subject_category="自然人", legal_rep_name=None,
                                              legal_rep_id_no=None, legal_rep_id_type=None), CODEC, TOPICS)
    record = CODEC.decode(value)[1]
    assert record["uscc"] is None and record["person_id_no"] == PERSON_ID
    assert key == PERSON_ID.encode()


def test_objection_keyed_by_its_subject():
    topic, _, key, _ = encode_line(line("objection"), CODEC, TOPICS)
    assert topic == TOPICS.credit_office
    assert key == COMPANY_USCC.encode()
    # a person's objection: by the ID number, like the person's penalty it disputes
    assert key_of(person("objection")) == key_of(person("penalty")) == PERSON_ID.encode()


def test_registration_keyed_by_uscc():
    topic, _, key, _ = encode_line(line("registration"), CODEC, TOPICS)
    assert topic == TOPICS.registration
    assert key == COMPANY_USCC.encode()  # the topic is compacted by USCC
    # its legacy numbers are not the key, whatever their order
    assert key_of(line("registration", org_code=COMPANY_ORG_CODE, reg_no=COMPANY_REG_NO)) == COMPANY_USCC.encode()


@pytest.mark.parametrize("kind", KINDS)
def test_one_subject_one_key_across_kinds(kind):
    """Every input kind of the sample company (department, credit office, feedback) has the same
    key, so they all land on one partition per topic in the order they were produced."""
    assert key_of(line(kind)) == COMPANY_USCC.encode()


def test_repair_listing_decision_and_feedback():
    assert key_of(person("repair")) == PERSON_ID.encode()
    assert key_of(person("listing_decision", legal_rep_name=None, legal_rep_id_no=None)) == PERSON_ID.encode()
    assert key_of(line("feedback", subject_id=PERSON_ID)) == PERSON_ID.encode()


@pytest.mark.parametrize(
    "fields, key",
    [
        ({"uscc": COMPANY_USCC, "person_id_no": PERSON_ID, "org_code": COMPANY_ORG_CODE}, COMPANY_USCC),
        ({"person_id_no": PERSON_ID, "org_code": COMPANY_ORG_CODE, "reg_no": COMPANY_REG_NO}, PERSON_ID),
        ({"org_code": COMPANY_ORG_CODE, "reg_no": COMPANY_REG_NO, "tax_no": "410105666007217"}, COMPANY_ORG_CODE),
        ({"reg_no": COMPANY_REG_NO, "tax_no": "410105666007217"}, COMPANY_REG_NO),
        ({"tax_no": "410105666007217"}, "410105666007217"),
        # the canonical form the pipeline reads: half-width, upper case, separators removed
        ({"uscc": " 91310110666007217t "}, COMPANY_USCC),
        ({"uscc": "９１３１０１１０６６６００７２１７Ｔ"}, COMPANY_USCC),
        ({"person_id_no": "41010219870315451x"}, "41010219870315451X"),
        ({"org_code": "66600721-7"}, COMPANY_ORG_CODE),
        # empty and placeholder values name no subject: the next identifier is the key
        ({"uscc": "", "person_id_no": PERSON_ID}, PERSON_ID),
        ({"uscc": "无", "person_id_no": PERSON_ID}, PERSON_ID),
        ({"uscc": "  ", "org_code": "NULL", "reg_no": COMPANY_REG_NO}, COMPANY_REG_NO),
        ({}, None),
        ({"uscc": None, "legal_rep_id_no": PERSON_ID}, None),  # a legal representative is not the subject
        # a filler code is no code, as the pipeline reads it (domain/fields.py _filler)
        ({"uscc": "000000000000000000", "person_id_no": PERSON_ID}, PERSON_ID),
        ({"uscc": None, "institution_cert_no": "12410000MB1234567X"}, "12410000MB1234567X"),
    ],
)
def test_subject_key_order(fields, key):
    assert subject_key("penalty", fields) == (key.encode() if key else None)


def test_raw_lines_have_no_key():
    raw = orjson.dumps({"kind": "raw", "topic": "penalty", "value_hex": "07ff"}).decode()
    assert encode_line(raw, CODEC, TOPICS) == (TOPICS.penalty, b"\x07\xff", None, None)


def test_no_identifier_no_key():
    assert key_of(line("penalty", drop=("uscc",), legal_rep_name=None, legal_rep_id_no=None)) is None


@pytest.mark.parametrize("obj, says", [
    ({"kind": ["penalty"]}, "unknown kind"),
    ({"kind": "raw", "topic": "penalty", "value_hex": 7}, "value_hex"),
    ({"kind": "raw", "topic": ["penalty"]}, "must name an input kind"),
])
def test_a_line_of_the_wrong_shape_is_refused_not_a_crash(obj, says):
    with pytest.raises(ValueError, match=says):
        encode_line(orjson.dumps(obj).decode(), CODEC, TOPICS)


@pytest.mark.parametrize("timestamp", [1e30, -1, True, [2024], float("nan")])
def test_a_timestamp_that_is_no_time_is_refused(timestamp):
    text = line("penalty").replace('{"kind"', '{"timestamp":' + (orjson.dumps(timestamp).decode()
                                                                 if timestamp == timestamp else "NaN") + ',"kind"', 1)
    with pytest.raises(ValueError):
        encode_line(text, CODEC, TOPICS)


@pytest.mark.parametrize("value", ["false", "no", 0, 1])
def test_a_boolean_field_takes_only_true_or_false(value):
    # the Avro writer wrote the truth of any value: "false" was sent as true
    with pytest.raises(ValueError, match="simplified_procedure: expected true or false"):
        encode_line(line("penalty", simplified_procedure=value), CODEC, TOPICS)
    assert CODEC.decode(encode_line(line("penalty", simplified_procedure=False), CODEC, TOPICS)[1])[1][
        "simplified_procedure"] is False


async def test_a_file_is_produced_a_chunk_at_a_time_with_its_refusals_numbered(tmp_path, monkeypatch):
    # a file of any size in bounded memory (it was read and encoded whole first): chunks of
    # CHUNK_LINES, each line still refused with its own number
    import ops.produce as produce
    from creditstream.settings import Settings

    monkeypatch.setattr(produce, "CHUNK_LINES", 3)
    good = line("penalty")
    text = "\n".join([good, "// a comment", good, "not json", "", good, '{"kind": ["penalty"]}', good, good]) + "\n"
    path = tmp_path / "in.jsonl"
    path.write_text(text, encoding="utf-8")
    report = await produce.produce_file(Settings(), str(path), dry_run=True, progress=False)
    assert sum(report.sent.values()) == 5
    assert [n for n, _ in report.refused] == [4, 7]


async def test_a_line_that_is_not_utf8_is_refused_with_its_number(tmp_path):
    """A department's file in GBK (or one bad byte): each such line refused, said so, the others sent;
    it was a UnicodeDecodeError traceback that named no line."""
    import ops.produce as produce
    from creditstream.settings import Settings

    good = line("penalty")
    path = tmp_path / "in.jsonl"
    path.write_bytes(good.encode() + b"\n" + good.encode("utf-8").replace(b"penalty", b"pen\xd6alty") + b"\n"
                     + "{\"kind\": \"penalty\", \"subject_name\": \"郑州\"}".encode("gbk") + b"\n" + good.encode() + b"\n")
    report = await produce.produce_file(Settings(), str(path), dry_run=True, progress=False)
    assert sum(report.sent.values()) == 2
    assert [n for n, _ in report.refused] == [2, 3]
    assert all("not UTF-8" in why for _, why in report.refused), report.refused


def test_an_unknown_kind_is_told_the_kinds_it_can_send():
    """The kinds listed are those `produce` sends to an input topic: not the pipeline's outputs."""
    with pytest.raises(ValueError) as refused:
        encode_line(orjson.dumps({"kind": "list_change", "fields": {}}).decode(), CODEC, TOPICS)
    listed = str(refused.value).split("one of ", 1)[1]
    assert "penalty" in listed and "registration" in listed and listed.endswith("or raw")
    assert "list_change" not in listed and "check_audit" not in listed


async def test_standard_input_is_sent_as_its_lines_come(monkeypatch):
    """Seen: `produce -` took 5,000 lines (or the end of its input) before it sent anything, so a
    pipe writing a line now and then (`tail -f`) sent nothing for hours. Now a chunk goes once no
    line came for STDIN_LINGER_S, and the event loop is never blocked on the read."""
    import asyncio
    import io
    import os
    import time

    from ops import produce

    read_fd, write_fd = os.pipe()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.FileIO(read_fd, "r"), encoding="utf-8"))
    chunks = produce._chunks("-")
    os.write(write_fd, b'{"kind": "penalty"}\n// a comment\n{"kind": "license"}\n')
    t0 = time.monotonic()
    first = await asyncio.wait_for(anext(chunks), 5)  # the writer is still open
    assert [n for n, _ in first] == [1, 3] and time.monotonic() - t0 < 3
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    waiting = asyncio.create_task(anext(chunks))
    await asyncio.sleep(0.5)  # no line: the loop runs on meanwhile
    assert not waiting.done() and ticks > 10
    os.write(write_fd, b'{"kind": "action"}\n')
    os.close(write_fd)
    assert [n for n, _ in await asyncio.wait_for(waiting, 5)] == [4]
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(chunks), 5)
    ticker.cancel()


async def test_a_file_is_read_in_chunks(tmp_path, monkeypatch):
    from ops import produce

    monkeypatch.setattr(produce, "CHUNK_LINES", 3)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(f'{{"kind": "penalty", "n": {i}}}\n' for i in range(7)), encoding="utf-8")
    assert [[n for n, _ in c] async for c in produce._chunks(str(path))] == [[1, 2, 3], [4, 5, 6], [7]]


def test_refused_lines_quote_no_personal_data():
    """Seen: `produce` printed a refused line's values in clear (an ID number as a kind, a name where
    a date was expected): its report goes to job logs. The line number says where they are."""
    from ops.produce import ProduceReport

    report = ProduceReport(source="in.jsonl")
    report.refused += [(3, "unknown kind '41010519920101123X'"), (4, "Invalid isoformat string: '韩梅梅'")]
    text = report.render()
    assert "41010519920101123X" not in text and "韩梅梅" not in text
    assert "refused line 3: unknown kind '410**************X'" in text
    assert "refused line 4: Invalid isoformat string: <3 chars withheld>" in text
