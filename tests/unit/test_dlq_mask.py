"""ops/dlq.py ``mask_personal``: a dead letter as ``creditstream dlq show`` / ``dlq list`` print it
without --personal has no natural person's ID number in clear, however it is written (RULES.md 7;
docs/operations.md: 18-digit, 15-digit legacy, written with spaces or dashes)."""

from __future__ import annotations

import json

import pytest

from ops import dlq

ID = "410700197108132424"
GROUPED = ("410700 19710813 2424", "410700-19710813-2424", "410700 - 19710813 - 2424", "410700\u300019710813\u30002424")
LEGACY_GROUPED = "110105 491231 002"


def shown(**changes) -> dict:
    """A dead letter in the form ``dlq.show`` returns it."""
    d = {"ref": "1:1495", "partition": 1, "offset": 1495, "reason": "negative-amount",
         "detail": "fine_amount: negative (-80)", "agent": "ingest", "source_topic": "cs.penalty",
         "source_partition": 0, "source_offset": 7, "source_timestamp": 0, "dead_lettered_at": 0, "size": 10,
         "redriven_from": None, "timestamp": 0, "headers": [["dlq.reason", "negative-amount"]],
         "key": "91410105M00000R29A", "value_hex": "00", "decoded": None, "decode_error": None, "preview": None,
         "redriven": None}
    d.update(changes)
    return d


@pytest.mark.parametrize("number", GROUPED + (LEGACY_GROUPED,))
def test_grouped_id_numbers_are_masked_everywhere(number):
    record = {"subject_name": "郑州市测试环保科技有限公司", "uscc": "91410105M00000R29A",
              "facts": f"法定代表人（身份证号 {number}）指使员工偷排废水。"}
    letter = shown(decoded={"schema": "penalty", "record": record}, key=f"k {number}",
                   headers=[["dlq.reason", "negative-amount"], ["contact", number]],
                   detail=f"record_status: '{number}'")
    out = dlq.mask_personal(letter)
    text = json.dumps(out, ensure_ascii=False)
    assert number not in text and ("19710813" not in text and "491231" not in text), text
    assert out["personal_data_masked"] is True and out["value_hex"] is None
    assert out["decoded"]["record"]["uscc"] == "91410105M00000R29A"


@pytest.mark.parametrize("number", GROUPED + (LEGACY_GROUPED, "410700\t19710813\t2424"))
def test_the_preview_of_undecodable_bytes_masks_grouped_id_numbers(number):
    raw = b"\x00\x01not avro " + number.encode() + b" \xff"
    letter = shown(decode_error="bad magic byte", preview=dlq._preview(raw))
    out = dlq.mask_personal(letter)
    assert "19710813" not in out["preview"] and "491231" not in out["preview"], out["preview"]
    assert out["preview"].startswith("..not avro ")


def test_a_letter_without_personal_data_keeps_what_it_shows():
    letter = shown(preview="2024-05-21 10:00:00 amount -80")
    out = dlq.mask_personal(letter)
    assert out["preview"] == letter["preview"] and out["key"] == letter["key"] and out["detail"] == letter["detail"]
    assert dlq.mask_personal(shown(key=ID))["key"] == "410**************4"


def test_a_name_sent_in_the_category_field_is_masked_with_the_subjects_name():
    """A natural person's penalty dead-lettered for its category (``unknown-enum``): the category is
    not one of the vocabulary's, so neither it nor the subject's name says it is an organisation's."""
    record = {"subject_name": "张三丰", "subject_category": "王五", "uscc": None, "person_id_no": ID,
              "facts": "当事人张三丰（王五之子）无证经营。", "legal_rep_name": None}
    out = dlq.mask_personal(shown(reason="unknown-enum", decoded={"schema": "penalty", "record": record}))
    text = json.dumps(out, ensure_ascii=False)
    assert "张三丰" not in text and "王五" not in text and ID not in text, text
    assert out["decoded"]["record"]["subject_name"] == "张**"
    # an organisation's, with a category no department sends: its valid USCC says what it is
    company = {"subject_name": "郑州市测试环保科技有限公司", "subject_category": "公司", "uscc": "91410105M00000R29A"}
    out = dlq.mask_personal(shown(reason="unknown-enum", decoded={"schema": "penalty", "record": company}))
    assert out["decoded"]["record"]["subject_name"] == company["subject_name"]


def test_the_preview_of_undecodable_bytes_keeps_each_chinese_run_to_its_first_character():
    raw = "\x00c\x0c张三丰\x0c自然人\x00\x24".encode() + ID.encode() + "郑环罚〔2025〕120号".encode()
    out = dlq.mask_personal(shown(decode_error="unknown schema id 99", preview=dlq._preview(raw)))
    assert "张三丰" not in out["preview"] and ID not in out["preview"], out["preview"]
    assert "张**" in out["preview"] and "410**************4" in out["preview"] and "2025" in out["preview"]
