"""Dead letters for operators on the embedded broker and redis-server: list with filters, show, and
re-drive (fixed, unfixed, skipped, forced), through ops/dlq.py and the `creditstream dlq` CLI."""

from __future__ import annotations

import decimal
import json
import os
import sys
import time

import orjson
import pytest

from ops import dlq
from ops.dlq import REDRIVEN_FROM_HEADER, Filter, list_dead_letters, redrive, show
from sinks.keys import Keys
from streams import samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.workers import run_to_end

pytestmark = pytest.mark.integration

PENALTY = schema_of("penalty")
DOC_NO = "郑市监罚〔2024〕777号"
OLD = "2024-05-21T10:00:00+08:00"  # the garbage's source timestamp


async def state_of(redis, settings, subject_id):
    from sinks.keys import resolve_keys
    from sinks.state_codec import decode_state

    keys = await resolve_keys(redis, settings.namespace)
    raw = await redis.get(keys.subject(subject_id))
    return decode_state(raw) if raw else None


async def letters_until(settings, n, **filters):
    async def check():
        letters = await list_dead_letters(settings, **filters)
        return letters if len(letters) >= n else None

    return await eventually(check, timeout=30)


async def cli(settings, *argv):
    """Run `creditstream ...` in a subprocess against this test's stack, prefix and namespace."""
    env = dict(os.environ)
    env.update({
        "CREDITSTREAM_BROKER_URL": settings.broker_url, "CREDITSTREAM_BROKER_KIND": settings.broker_kind,
        "CREDITSTREAM_REDIS_URL": settings.redis_url, "CREDITSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "CREDITSTREAM_NAMESPACE": settings.namespace, "CREDITSTREAM_RUN_DIR": settings.run_dir,
        "CREDITSTREAM_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
    })
    env.pop("CREDITSTREAM_SETTINGS", None)
    code, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", *argv], env=env)
    return code, out.decode(), err.decode()


async def test_list_show_and_redrive(pipeline, department, redis, settings, tmp_path):
    start_ms = int(time.time() * 1000) - 1000
    bad = sample_event("penalty", decision_doc_no=DOC_NO, fine_amount=samples.Decimal("-1"))
    await department.send(PENALTY, bad, key=b"dept-key-1")
    await department.send_raw(department.topics.license, b"\x07garbage bytes\x01",
                              timestamp_ms=dlq.parse_time(OLD))
    letters = await letters_until(settings, 2)
    assert len(letters) == 2, letters
    neg = next(d for d in letters if d["reason"] == "negative-amount")
    junk = next(d for d in letters if d["reason"] == "bad-magic")
    assert neg["redriven"] is None and junk["redriven"] is None

    # --- list: filters by reason, source topic (full or short name) and time
    assert [d["ref"] for d in await list_dead_letters(settings, reason="negative-amount")] == [neg["ref"]]
    assert [d["ref"] for d in await list_dead_letters(settings, source_topic=department.topics.license)] == [junk["ref"]]
    assert [d["ref"] for d in await list_dead_letters(settings, source_topic="penalty")] == [neg["ref"]]
    assert await list_dead_letters(settings, source_topic="court-debtor") == []
    assert len(await list_dead_letters(settings, since=start_ms)) == 2
    assert await list_dead_letters(settings, since="2999-01-01") == []
    assert await list_dead_letters(settings, until="2024-01-01T00:00") == []
    by_source = await list_dead_letters(settings, until="2025-01-01", source_time=True)
    assert [d["ref"] for d in by_source] == [junk["ref"]]  # the garbage was sent with a 2024 timestamp
    assert [d["ref"] for d in await list_dead_letters(settings, since="2025-01-01", source_time=True)] == [neg["ref"]]

    # --- show: the Avro one decodes, the garbage gets a preview
    shown = await show(settings, neg["ref"])
    assert shown["decoded"]["schema"] == PENALTY
    assert shown["decoded"]["record"]["fine_amount"] == "-1.000000"
    assert shown["decoded"]["record"]["decision_doc_no"] == DOC_NO
    assert shown["key"] == "dept-key-1"
    headers = dict(shown["headers"])
    assert headers["dlq.reason"] == "negative-amount" and headers["dlq.source.topic"] == department.topics.penalty
    assert "fine_amount" in shown["detail"]
    assert shown["value_hex"].startswith("00")
    shown_junk = await show(settings, junk["ref"])
    assert shown_junk["decoded"] is None and "bad-magic" in shown_junk["decode_error"]
    assert "garbage bytes" in shown_junk["preview"]
    assert shown_junk["value_hex"] == b"\x07garbage bytes\x01".hex()
    # stamped when dead-lettered (retention counts from it), the 2024 source time kept in a header
    assert shown_junk["timestamp"] >= start_ms and shown_junk["source_timestamp"] == dlq.parse_time(OLD)
    assert await show(settings, "0:999999") is None
    assert "value (Avro creditstream.AdministrativePenalty)" in dlq.render_show(shown)

    # --- redrive with a fix: the fixed record reaches the subject's state in Redis
    fixed = dict(shown["decoded"]["record"], fine_amount="5")
    fix = tmp_path / "fix.json"
    fix.write_text(json.dumps(fixed, ensure_ascii=False), encoding="utf-8")
    dry = await redrive(settings, [neg["ref"]], fix=fix, dry_run=True)
    assert [i.action for i in dry.items] == ["would-redrive"]
    assert await redis.hgetall(Keys(settings.namespace).dlq_redriven) == {}

    report = await redrive(settings, [neg["ref"]], fix=fix, by="tester")
    [item] = report.items
    assert item.action == "redriven" and item.fixed
    assert item.target["topic"] == department.topics.penalty
    # sent as creditstream produce keys it (by the fixed record's subject), not by the letter's key
    assert item.note == "keyed by the fixed record's subject"

    async def reached():
        state = await state_of(redis, settings, samples.COMPANY_USCC)
        recs = [r for r in (state or {}).get("records", {}).values() if r.get("doc_no") == DOC_NO]
        return recs or None

    [record] = await eventually(reached, timeout=30)
    assert record["status"] == "active"
    assert record["content"]["fields"]["fine_amount"] in ("5", "5.000000")

    audit = await redis.hgetall(Keys(settings.namespace).dlq_redriven)
    entry = orjson.loads(audit[neg["ref"].encode()])
    assert entry["fixed"] is True and entry["by"] == "tester" and entry["at"]
    assert (entry["topic"], entry["partition"], entry["offset"]) == (
        item.target["topic"], item.target["partition"], item.target["offset"])

    listed = {d["ref"]: d for d in await list_dead_letters(settings)}
    assert listed[neg["ref"]]["redriven"]["fixed"] is True
    assert listed[junk["ref"]]["redriven"] is None

    # --- a second redrive without --force skips it
    again = await redrive(settings, [neg["ref"]])
    assert [i.action for i in again.items] == ["skipped"]
    # a filter selects it too, and skips it just the same
    again = await redrive(settings, flt=Filter(reason="negative-amount"))
    assert [i.action for i in again.items] == ["skipped"]

    # --- re-driving the unfixed original (forced) just dead-letters it again
    forced = await redrive(settings, [neg["ref"]], force=True, by="tester")
    assert [(i.action, i.fixed) for i in forced.items] == [("redriven", False)]
    letters = await letters_until(settings, 2, reason="negative-amount")
    new = next(d for d in letters if d["ref"] != neg["ref"])
    assert new["redriven_from"] == f"dead-letters/{neg['partition']}/{neg['offset']}"
    new_shown = await show(settings, new["ref"])
    new_headers = dict(new_shown["headers"])
    assert new_headers[REDRIVEN_FROM_HEADER] == f"dead-letters/{neg['partition']}/{neg['offset']}"
    assert new_shown["value_hex"] == shown["value_hex"]  # the original bytes, untouched
    assert new_shown["key"] == "dept-key-1"
    assert new_shown["source_timestamp"] == shown["source_timestamp"]  # original timestamp kept
    entry = orjson.loads(await redis.hget(Keys(settings.namespace).dlq_redriven, neg["ref"]))
    assert entry["fixed"] is False and [e["fixed"] for e in entry["earlier"]] == [True]
    # the fixed record is still there, once
    state = await state_of(redis, settings, samples.COMPANY_USCC)
    assert sum(1 for r in state["records"].values() if r.get("doc_no") == DOC_NO) == 1

    # --- what cannot be done is refused before anything is sent
    with pytest.raises(dlq.RedriveError):
        await redrive(settings, [junk["ref"]], fix=fix)  # garbage: the kind must be named
    with pytest.raises(dlq.RedriveError):
        await redrive(settings)  # neither refs nor a filter
    dry = await redrive(settings, [junk["ref"]], fix=fix, kind="penalty", dry_run=True)
    assert [(i.action, i.fixed) for i in dry.items] == [("would-redrive", True)]
    assert [i.action for i in (await redrive(settings, ["3:999999"])).items] == ["not-found"]

    # --- the CLI
    code, out, err = await cli(settings, "dlq", "list", "--reason", "negative-amount", "--json")
    assert code == 0, err
    assert {d["ref"] for d in json.loads(out)} == {neg["ref"], new["ref"]}
    code, out, err = await cli(settings, "dlq", "list", "--topic", "license")
    assert code == 0, err
    assert junk["ref"] in out and "1 dead letter(s), 0 re-driven" in out
    code, out, err = await cli(settings, "dlq", "show", neg["ref"])
    assert code == 0, err
    assert "creditstream.AdministrativePenalty" in out and "dlq.reason = negative-amount" in out
    code, out, err = await cli(settings, "dlq", "show", "0:999999")
    assert code == 1
    code, out, err = await cli(settings, "dlq", "redrive", neg["ref"])
    assert code == 0, err
    assert "skipped" in out
    code, out, err = await cli(settings, "dlq", "redrive", "--reason", "bad-magic", "--dry-run")
    assert code == 0, err
    assert "would re-drive 1" in out
    code, out, err = await cli(settings, "dlq", "redrive")
    assert code == 2 and "name the dead letters" in err
    code, out, err = await cli(settings, "dlq", "list", "--since", "yesterday")
    assert code == 2


async def test_rerunning_a_selection_never_redrives_the_copies_that_failed_again(pipeline, department, settings):
    """Seen: rerunning `dlq redrive --reason` re-drove the copies that failed again (2,500 letters
    became 3,818 re-drives). A selection re-drives originals only; their re-failed copies stay put."""
    for i in range(3):
        await department.send(PENALTY, sample_event("penalty", fine_amount=decimal.Decimal("-1"), decision_doc_no=f"郑罚〔2026〕{i}号"))
    originals = await letters_until(settings, 3, reason="negative-amount")
    first = await redrive(settings, flt=Filter(reason="negative-amount"), by="tester")
    assert sorted(i.action for i in first.items) == ["redriven"] * 3
    letters = await letters_until(settings, 6, reason="negative-amount")  # still bad: 3 copies
    assert sum(1 for d in letters if d["redriven_from"]) == 3

    again = await redrive(settings, flt=Filter(reason="negative-amount"), force=True, by="tester")
    actions = {i.ref: i.action for i in again.items}
    assert [actions[d["ref"]] for d in originals] == ["redriven"] * 3  # forced: the originals again
    copies = [i for i in again.items if i.ref not in {d["ref"] for d in originals}]
    assert [i.action for i in copies] == ["skipped"] * 3 and all("failed again" in i.note for i in copies)
    await letters_until(settings, 9, reason="negative-amount")  # 3 originals + 3 + 3 copies, not 12
    assert len(await list_dead_letters(settings, reason="negative-amount")) == 9


async def test_show_masks_personal_data_unless_asked(pipeline, department, settings):
    """A natural person's rejected penalty: `dlq show` and `dlq list` print no ID number, no name and
    no raw bytes; `dlq show --personal` prints them, and the request is logged with the operator."""
    person = {"uscc": None, "legal_rep_name": None, "legal_rep_id_type": None, "legal_rep_id_no": None,
              "subject_name": samples.PERSON, "subject_category": "自然人", "person_id_type": "身份证",
              "person_id_no": samples.PERSON_ID}
    bad = sample_event("penalty", decision_doc_no="郑市监罚〔2024〕778号", fine_amount=samples.Decimal("-1"),
                       facts=f"当事人{samples.PERSON}（身份证号{samples.PERSON_ID}）无证经营。", **person)
    await department.send(PENALTY, bad, key=samples.PERSON_ID.encode())
    [letter] = await letters_until(settings, 1, reason="negative-amount")

    code, out, err = await cli(settings, "dlq", "show", letter["ref"], "--json")
    assert code == 0, err
    masked = json.loads(out)
    assert masked["personal_data_masked"] is True and masked["value_hex"] is None
    assert masked["decoded"]["record"]["decision_doc_no"] == "郑市监罚〔2024〕778号"  # the rest is there
    code, text, err = await cli(settings, "dlq", "show", letter["ref"])
    assert code == 0 and "withheld" in text, err
    code, listed, err = await cli(settings, "dlq", "list", "--json")
    assert code == 0, err
    for shown in (out, text, listed):
        assert samples.PERSON_ID not in shown and samples.PERSON not in shown
        assert samples.PERSON_ID.encode().hex() not in shown

    code, out, err = await cli(settings, "dlq", "show", letter["ref"], "--json", "--personal")
    assert code == 0, err
    whole = json.loads(out)
    assert whole["key"] == samples.PERSON_ID and samples.PERSON in whole["decoded"]["record"]["facts"]
    assert whole["value_hex"] and "personal_data_masked" not in whole
    assert "dead letter shown with personal data" in err and samples.PERSON_ID not in err


async def test_a_kind_on_another_kinds_topic_is_a_dead_letter(pipeline, department, settings):
    """Who may write a topic decides who may send its kind: a repair decision (the credit office's)
    on a department's penalty topic is refused, whole and with its reason, never applied."""
    from streams.topics import Topics

    topics = Topics(settings)
    schema = schema_of("repair")
    record = sample_event("repair")
    await department.codec.ensure_writer(schema, topics.penalty)
    await department.send_raw(topics.penalty, department.codec.encode(schema, record, topic=topics.penalty))
    [letter] = await letters_until(settings, 1, reason="unexpected-schema")
    assert letter["source_topic"] == topics.penalty, letter
    assert topics.credit_office in letter["detail"] and schema in letter["detail"]

    # re-driven, it goes to the topic of its kind, not back to where it was refused
    report = await redrive(settings, [letter["ref"]])
    [item] = report.items
    assert item.action == "redriven" and item.target["topic"] == topics.credit_office, item
    assert topics.credit_office in item.note


async def test_a_dead_letters_detail_quotes_no_personal_value(pipeline, department, settings, redis):
    """A natural person's name sent in the category field: the reason's detail does not quote it
    (RULES.md 7; docs/events.md: dlq.detail never carries personal data), in the topic's headers."""
    person = {"uscc": None, "legal_rep_name": None, "legal_rep_id_type": None, "legal_rep_id_no": None,
              "subject_name": samples.PERSON, "subject_category": samples.PERSON, "person_id_type": "身份证",
              "person_id_no": samples.PERSON_ID}
    await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑市监罚〔2024〕779号", **person))
    [letter] = await letters_until(settings, 1, reason="unknown-enum")
    code, out, err = await cli(settings, "dlq", "show", letter["ref"], "--json", "--personal")
    assert code == 0, err
    detail = json.loads(out)["detail"]
    assert detail.startswith("subject_category: <") and "withheld" in detail, detail
    assert samples.PERSON not in detail


async def test_a_tombstone_is_dead_lettered_and_redriven_as_a_tombstone(pipeline, department, settings):
    """Seen: a null-valued message on a department topic was dead-lettered (`empty`) with the value
    b'' instead of null, so a re-drive sent an empty message, not the tombstone that came."""
    from aiokafka import TopicPartition

    from streams import kafka
    from streams.topics import Topics

    topic = Topics(settings).for_kind("penalty")
    await department.send_raw(topic, None, key=samples.COMPANY_USCC.encode())
    [letter] = await letters_until(settings, 1, reason="empty")
    shown = await show(settings, letter["ref"])
    assert shown["tombstone"] is True and shown["value_hex"] is None and shown["size"] == 0
    assert "a tombstone" in dlq.render_show(shown)

    report = await redrive(settings, flt=Filter(reason="empty"), by="tester")
    [item] = report.items
    assert item.action == "redriven"
    c = kafka.consumer(settings, group_id=None)
    await c.start()
    try:
        tp = TopicPartition(item.target["topic"], item.target["partition"])
        c.assign([tp])
        c.seek(tp, item.target["offset"])
        batch = await c.getmany(tp, timeout_ms=10_000)
        [msg] = batch[tp][:1]
    finally:
        await kafka.stop_consumer(c)
    assert msg.value is None and msg.key == samples.COMPANY_USCC.encode()
    again = await letters_until(settings, 2, reason="empty")  # a tombstone again: dead-lettered again
    assert sum(1 for d in again if d["redriven_from"]) == 1


async def test_an_unkeyed_tombstone_is_not_sent_and_stops_nothing(pipeline, department, settings):
    """Seen (an audit from a department's side): a department's tombstone without a key (Kafka takes
    one; aiokafka's send() refuses it with an assertion) stopped `dlq redrive --reason empty` with a
    traceback: the window's letters sent before it were delivered but never recorded, so every rerun
    sent them again, and those after it were never sent. It is reported as not sendable; the others
    are re-driven and recorded."""
    from streams.topics import Topics

    topic = Topics(settings).for_kind("penalty")
    batch = department.producer.create_batch()
    batch.append(timestamp=None, key=None, value=None)
    batch.close()
    await (await department.producer.send_batch(batch, topic, partition=0))
    await department.send_raw(topic, None, key=samples.COMPANY_USCC.encode())
    letters = await letters_until(settings, 2, reason="empty")
    assert len(letters) == 2

    report = await redrive(settings, flt=Filter(reason="empty"), by="tester")
    assert sorted(i.action for i in report.items) == ["redriven", "unsendable"], report.render()
    assert "not sent 1: empty messages without a key" in report.render() and not report.failed
    await letters_until(settings, 3, reason="empty")  # the re-driven tombstone, dead-lettered again
    again = await redrive(settings, flt=Filter(reason="empty"), by="tester")
    assert sorted(i.action for i in again.items) == ["skipped", "skipped", "unsendable"], again.render()


async def test_a_fix_written_from_the_masked_show_keeps_the_personal_values(pipeline, department, redis, settings,
                                                                         tmp_path):
    """Seen: the documented workflow, `dlq show REF --json | jq .decoded.record > fix.json`, edit a
    field, `dlq redrive REF --fix fix.json`, re-drove the legal representative's name and ID number
    as `dlq show` masks them (李**, 410**************5): the pipeline accepted them and the record
    was stored with a masked name. Values the fix leaves as `dlq show` masked them are the original's;
    a changed value that still holds a mask is refused (write it from `dlq show --personal`)."""
    doc_no = "郑市监罚〔2024〕780号"
    bad = sample_event("penalty", decision_doc_no=doc_no, fine_amount=samples.Decimal("-1"),
                       facts=f"法定代表人{samples.LEGAL_REP}在场。")
    await department.send(PENALTY, bad, key=samples.COMPANY_USCC.encode())
    [letter] = await letters_until(settings, 1, reason="negative-amount")

    code, out, err = await cli(settings, "dlq", "show", letter["ref"], "--json")
    assert code == 0, err
    record = json.loads(out)["decoded"]["record"]
    assert record["legal_rep_name"] != samples.LEGAL_REP and record["legal_rep_id_no"] != samples.LEGAL_REP_ID

    # a changed field that still holds a masked name: refused, nothing sent
    fix = tmp_path / "fix.json"
    fix.write_text(json.dumps(dict(record, fine_amount="5", facts=record["facts"] + "（更正）"),
                              ensure_ascii=False), encoding="utf-8")
    code, out, err = await cli(settings, "dlq", "redrive", letter["ref"], "--fix", str(fix))
    assert code == 2 and "--personal" in err and "facts" in err, (out, err)
    assert await redis.hgetall(Keys(settings.namespace).dlq_redriven) == {}

    # the masked values left as shown: the original's are sent
    fix.write_text(json.dumps(dict(record, fine_amount="5"), ensure_ascii=False), encoding="utf-8")
    code, out, err = await cli(settings, "dlq", "redrive", letter["ref"], "--fix", str(fix))
    assert code == 0, (out, err)
    assert "masked" in out, out

    async def reached():
        state = await state_of(redis, settings, samples.COMPANY_USCC)
        recs = [r for r in (state or {}).get("records", {}).values() if r.get("doc_no") == doc_no]
        return recs or None

    [stored] = await eventually(reached, timeout=30)
    fields = stored["content"]["fields"]
    assert fields["fine_amount"] in ("5", "5.000000")
    assert stored["content"]["legal_rep"] == {"name": samples.LEGAL_REP, "id_no": samples.LEGAL_REP_ID}
    assert fields["facts"] == f"法定代表人{samples.LEGAL_REP}在场。"


async def test_a_fix_for_a_letter_re_driven_before_or_not_there_says_so(pipeline, department, settings, tmp_path):
    """Seen: `dlq redrive REF --fix FILE` for a letter re-driven before (a first fix that was wrong)
    and for a REF with no dead letter both ended "--fix re-drives exactly one dead letter; 0 selected"
    (exit 2): neither said why, nor that --force re-drives it again. Re-driven before: exit 2 naming
    --force; not there: exit 1, as without --fix."""
    await department.send(PENALTY, sample_event("penalty", decision_doc_no="郑市监罚〔2024〕781号",
                                                fine_amount=samples.Decimal("-1")))
    [letter] = await letters_until(settings, 1, reason="negative-amount")
    shown = await show(settings, letter["ref"])
    fix = tmp_path / "fix.json"
    fix.write_text(json.dumps(dict(shown["decoded"]["record"], fine_amount="4"), ensure_ascii=False), encoding="utf-8")
    code, out, err = await cli(settings, "dlq", "redrive", letter["ref"], "--fix", str(fix))
    assert code == 0, (out, err)

    fix.write_text(json.dumps(dict(shown["decoded"]["record"], fine_amount="5"), ensure_ascii=False), encoding="utf-8")
    code, out, err = await cli(settings, "dlq", "redrive", letter["ref"], "--fix", str(fix))
    assert code == 2 and "re-driven" in err and "--force" in err and "0 selected" not in err, (out, err)
    code, out, err = await cli(settings, "dlq", "redrive", letter["ref"], "--fix", str(fix), "--force")
    assert code == 0 and "re-driven (fixed)" in out, (out, err)

    code, out, err = await cli(settings, "dlq", "redrive", "0:999999", "--fix", str(fix))
    assert code == 1 and "no dead letter there" in out and "0 selected" not in err, (out, err)


async def test_a_message_dead_lettered_twice_is_re_driven_once_by_a_selection(settings, department, redis):
    """Seen: after `positions move ingest --to-start` (docs: "redeliveries are recognised and change
    nothing") every bad input read again was dead-lettered again, and `dlq redrive --reason ...`
    selected both copies and sent the same department message twice (so did a second selection after
    the first copy's re-drive). A selection re-drives one dead letter per source message: the others
    are skipped, naming it."""
    from creditstream.app import Pipeline
    from ops import positions

    bad = sample_event("penalty", decision_doc_no="郑市监罚〔2024〕782号", fine_amount=samples.Decimal("-1"))
    await department.send(PENALTY, bad)
    for _ in range(2):  # on Tansu a group's first generation keeps its members: start and stop twice
        pipeline = Pipeline(settings)
        await pipeline.start()
        try:
            await letters_until(settings, 1, reason="negative-amount")
        finally:
            await pipeline.stop()
    moves = await positions.plan(settings, "ingest", to="start", topic="penalty")
    await positions.move(settings, "ingest", moves)  # the penalty topic read again from its start
    pipeline = Pipeline(settings)
    await pipeline.start()
    try:
        first, second = await letters_until(settings, 2, reason="negative-amount")
    finally:
        await pipeline.stop()
    assert (first["source_partition"], first["source_offset"]) == (second["source_partition"], second["source_offset"])
    # the reports count the message once (they counted each letter: two dead-lettered inputs)
    from ops.report import operator_report, progress, summary

    assert (await summary(settings))["dead_letters"] == {"negative-amount": 1}
    assert (await operator_report(settings))["dead_letters"] == {"negative-amount": 1}
    assert await progress(settings) == 1  # the one input, dead-lettered (inputs applied: none)

    dry = await redrive(settings, flt=Filter(reason="negative-amount"), dry_run=True)
    assert sorted(i.action for i in dry.items) == ["skipped", "would-redrive"], dry.items
    report = await redrive(settings, flt=Filter(reason="negative-amount"), by="tester")
    [sent] = [i for i in report.items if i.action == "redriven"]
    [copy] = [i for i in report.items if i.action == "skipped"]
    assert {sent.ref, copy.ref} == {first["ref"], second["ref"]} and sent.ref in copy.note, report.items
    again = await redrive(settings, flt=Filter(reason="negative-amount"), by="tester")
    assert [i.action for i in again.items] == ["skipped"] * 2, again.items
    # named by its REF, the copy is re-driven as asked
    named = await redrive(settings, [copy.ref], dry_run=True)
    assert [i.action for i in named.items] == ["would-redrive"]


@pytest.mark.parametrize("chunk", [None, 150])
async def test_a_thousand_letters_are_re_driven_in_windows_each_recorded_in_their_order(settings, redis, chunk,
                                                                                         monkeypatch):
    """``dlq redrive`` sends ``REDRIVE_WINDOW`` letters before it awaits their acknowledgements (one
    at a time, 20,000 letters took 10.5 s on the embedded stack; in windows 2.4 s): every letter is
    still re-driven once, recorded with where it went, and the letters reach each partition of their
    source topic in the order they first arrived. With chunks smaller than a window, each chunk's
    letters read back from the dead-letter topic in turn (``REDRIVE_CHUNK``): the same."""
    from bench.seed import write_dead_letters
    from streams import kafka
    from streams.topics import Topics

    if chunk is not None:
        monkeypatch.setattr(dlq, "REDRIVE_CHUNK", chunk)

    n = 2 * dlq.REDRIVE_WINDOW + 100
    await write_dead_letters(settings, n, value_bytes=64)
    report = await redrive(settings, flt=Filter(since_ms=0), by="tester", progress=False)
    assert [i.action for i in report.items].count("redriven") == n
    audit = await redis.hgetall(Keys(settings.namespace).dlq_redriven)
    assert len(audit) == n
    targets = {(e["partition"], e["offset"]) for e in map(orjson.loads, audit.values())}
    assert len(targets) == n  # each letter once, each where it says
    arrived: dict[int, list[tuple[int, int]]] = {}  # partition sent to -> (source partition, offset) in order
    async for batch in kafka.read_to_end(settings, Topics(settings).penalty):
        for msg in batch:
            ref = dict(msg.headers)[REDRIVEN_FROM_HEADER].decode().removeprefix("dead-letters/").replace("/", ":")
            entry = orjson.loads(audit[ref.encode()])
            assert (entry["partition"], entry["offset"]) == (msg.partition, msg.offset)
            arrived.setdefault(msg.partition, []).append(tuple(map(int, entry["source"].split("/")[1:])))
    assert sum(map(len, arrived.values())) == n
    assert all(places == sorted(places) for places in arrived.values())


async def test_a_redrive_of_an_unknown_schema_id_within_the_minute_says_when_to_try_again(pipeline, department,
                                                                                          settings):
    """Seen (an audit with a remote registry): a department registered its schema and the operator
    re-drove at once; a worker still held the id as unknown (60 s), the letter came back, and a later
    `--reason` re-drive skipped both the original and the copy. The re-drive says when to try again."""
    from streams.codec import frame
    from streams.topics import Topics

    await department.send_raw(Topics(settings).for_kind("penalty"), frame(99, b"\x00"),
                              key=samples.COMPANY_USCC.encode())
    [letter] = await letters_until(settings, 1, reason="unknown-schema-id")
    report = await redrive(settings, flt=Filter(reason="unknown-schema-id"), by="tester")
    [item] = report.items
    assert item.action == "redriven" and "again only 60 s later" in item.note and "after " in item.note, item
