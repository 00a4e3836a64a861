"""domain/privacy.py: what a reader without the personal role sees of a document."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.identifiers import resident_id_check_char
from domain.privacy import mask_legacy_ids_in_text, mask_name, names_given_with_ids, redact_personal
from streams.samples import COMPANY, COMPANY_REG_NO, COMPANY_USCC, LEGAL_REP, LEGAL_REP_ID, PERSON, PERSON_ID

LEGACY_ID = "410102870315451"  # first-generation card: 6 division + YYMMDD + 3 sequence, no check


def text_of(doc) -> str:
    return json.dumps(doc, ensure_ascii=False)


def person_state() -> dict:
    """A natural person's state as domain/state.py stores it: their own penalty, and an
    organisation's severe record linked onto their file (whose legal representative they are)."""
    return {
        "id": PERSON_ID, "id_kind": "resident_id", "names": [PERSON], "ids": {"resident_id": PERSON_ID},
        "category": "natural_person", "flags": [],
        "records": {
            "penalty|unit|doc-1": {
                "kind": "penalty", "doc_no": "doc-1", "status": "active",
                "content": {"kind": "penalty", "subject_name": PERSON, "subject_category": "natural_person",
                            "ids": {"resident_id": PERSON_ID}, "legal_rep": None,
                            "fields": {"facts": f"当事人{PERSON}（身份证号{PERSON_ID}）于2024年3月无证经营。"}},
                "others": {"h2": {"subject_name": PERSON, "ids": {"resident_id": PERSON_ID}}},
            },
            "penalty|eco|doc-2": {
                "kind": "linked", "via": COMPANY_USCC, "status": "active",
                "content": {"kind": "penalty", "subject_name": COMPANY, "subject_category": "legal_entity",
                            "ids": {"uscc": COMPANY_USCC, "reg_no": COMPANY_REG_NO},
                            "legal_rep": {"name": PERSON, "id_no": PERSON_ID}},
            },
        },
        "feedback": {f"chg-{PERSON_ID}-1": [{"unit": "税务局", "measure": "限制"}]},
    }


def test_a_natural_persons_state_keeps_no_id_number_and_no_name():
    state = person_state()
    before = copy.deepcopy(state)
    out = redact_personal(state)
    assert state == before, "the input was modified"
    text = text_of(out)
    assert PERSON_ID not in text and PERSON not in text
    assert out["id"] == "410**************8" and out["ids"]["resident_id"] == "410**************8"
    assert out["names"] == ["张**"]
    own = out["records"]["penalty|unit|doc-1"]["content"]
    assert own["subject_name"] == "张**"
    assert own["fields"]["facts"] == "当事人张**（身份证号410**************8）于2024年3月无证经营。"
    # the organisation's record on the person's file keeps the organisation's own name and numbers
    linked = out["records"]["penalty|eco|doc-2"]["content"]
    assert linked["subject_name"] == COMPANY and linked["ids"] == {"uscc": COMPANY_USCC, "reg_no": COMPANY_REG_NO}
    assert linked["legal_rep"] == {"name": "张**", "id_no": "410**************8"}
    # object keys too
    assert list(out["feedback"]) == ["chg-410**************8-1"]
    # what is not personal is untouched
    assert out["records"]["penalty|unit|doc-1"]["status"] == "active" and out["flags"] == []


def test_an_organisation_keeps_its_name_but_not_its_legal_representatives():
    record = {"kind": "penalty", "subject_name": COMPANY, "subject_category": "法人及非法人组织",
              "uscc": COMPANY_USCC, "reg_no": COMPANY_REG_NO, "legal_rep_name": LEGAL_REP,
              "legal_rep_id_type": "身份证", "legal_rep_id_no": LEGAL_REP_ID,
              "facts": f"法定代表人{LEGAL_REP}签收。"}
    out = redact_personal(record)
    assert out["subject_name"] == COMPANY and out["uscc"] == COMPANY_USCC and out["reg_no"] == COMPANY_REG_NO
    assert out["legal_rep_name"] == "李**" and out["legal_rep_id_no"] == "410**************5"
    assert out["facts"] == "法定代表人李**签收。"


def test_list_views_members_and_changes():
    view = {"subject": PERSON_ID, "name": PERSON, "as_of": "2026-01-02", "lists": {"court_debtor": {}}}
    assert redact_personal(view) == {"subject": "410**************8", "name": "张**", "as_of": "2026-01-02",
                                     "lists": {"court_debtor": {}}}
    company_view = {"subject": COMPANY_USCC, "name": COMPANY, "lists": {}}
    assert redact_personal(company_view) == company_view
    # a first-generation number does not say it is a person: the caller does
    legacy = {"subject": LEGACY_ID, "name": PERSON, "lists": {}}
    assert redact_personal(legacy, natural_person=True) == {"subject": "410***********1", "name": "张**", "lists": {}}
    page = {"list": "court_debtor", "members": [COMPANY_USCC, PERSON_ID, LEGACY_ID], "next_cursor": None}
    assert redact_personal(page)["members"] == [COMPANY_USCC, "410**************8", "410***********1"]
    change = {"change_id": "c1", "subject_id": PERSON_ID, "subject_kind": "resident_id", "list": "court_debtor",
              "cause_record_ids": [f"court_listing|court|(2026)豫01执1号|{PERSON_ID}"], "event_time": 17}
    out = redact_personal(change)
    assert PERSON_ID not in text_of(out) and out["event_time"] == 17 and out["list"] == "court_debtor"


def test_a_department_message_of_a_natural_person_with_a_legacy_card():
    msg = {"subject_name": PERSON, "subject_category": "自然人", "person_id_type": "身份证", "person_id_no": LEGACY_ID,
           "facts": f"{PERSON}于2024年"}
    out = redact_personal(msg)
    assert out["person_id_no"] == "410***********1" and out["subject_name"] == "张**" and out["facts"] == "张**于2024年"


def test_text_masks():
    assert mask_name(PERSON) == "张**" and mask_name("欧阳娜娜") == "欧***" and mask_name("王") == "*"
    assert mask_legacy_ids_in_text(f"证号{LEGACY_ID}。") == "证号410***********1。"
    assert mask_legacy_ids_in_text("4101028703154510") == "4101028703154510"  # 16 digits: not a card number
    assert mask_legacy_ids_in_text("990102870315451") == "990102870315451"  # no province 99
    assert redact_personal("no 110105194912310021 here") == "no 110**************1 here"
    assert redact_personal([1, 2.5, None, True]) == [1, 2.5, None, True]


def resident_ids():
    divisions = st.sampled_from(["110105", "410102", "440305", "650102"])
    dates = st.dates(min_value=dt.date(1930, 1, 1), max_value=dt.date(2019, 12, 31))
    seqs = st.integers(0, 999)
    return st.builds(lambda d, b, s: (lambda body: body + resident_id_check_char(body))(
        f"{d}{b:%Y%m%d}{s:03d}"), divisions, dates, seqs)


names = st.text(alphabet="张王李赵刘陈杨黄周吴徐孙马朱胡郭何高林罗卫东建国娜明华", min_size=2, max_size=4)
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
digitless = st.text(alphabet=st.characters(blacklist_categories=("Nd", "Cs")), max_size=20)


@settings(max_examples=200, deadline=None)
@given(pid=resident_ids(), name=names, filler=st.recursive(
    json_leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=10),
       where=st.integers(0, 3))
def test_property_no_id_number_or_name_of_a_person_survives(pid, name, filler, where):
    """Whatever else a natural person's document holds, and wherever the number and name are
    echoed, neither survives; the redaction is idempotent."""
    echo = [f"x{pid}y", f"备注：{name}。", {pid: name}, [f"{name}{pid}"]][where]
    doc = {"id": pid, "id_kind": "resident_id", "names": [name], "extra": filler, "echo": echo,
           "records": {"k": {"content": {"subject_name": name, "person_id_no": pid}}}}
    out = redact_personal(doc)
    text = text_of(out)
    assert pid not in text and name not in text
    assert redact_personal(out) == out


@settings(max_examples=200, deadline=None)
@given(doc=st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), digitless), lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.sampled_from(["list", "status", "as_of"]), digitless),
                                                 inner, max_size=3)), max_leaves=12))
def test_property_documents_without_personal_data_come_back_equal(doc):
    """Nothing to mask (no digits in any string, so no ID number; no personal field): the same document."""
    assert redact_personal(doc) == doc


def test_a_detail_quotes_no_personal_value():
    from domain.privacy import safe_detail

    assert safe_detail("subject_category: '张卫东'") == "subject_category: <3 chars withheld>"
    assert safe_detail("listing_reason: '张卫东违反限制高消费令'") == "listing_reason: <11 chars withheld>"
    assert safe_detail("record_status: '410102870315451'") == "record_status: '410***********1'"
    assert safe_detail("KeyError: '11010519491231002X'") == "KeyError: '110**************X'"
    assert safe_detail('ValueError: "王五" 不是 a date') == "ValueError: <2 chars withheld> … a date"
    assert safe_detail("decision_date: in the future (2030-01-01)") == "decision_date: in the future (2030-01-01)"


def test_a_view_without_the_legal_representative_still_masks_their_name_in_free_text():
    """A disclosure page or a credit report leaves a record's legal representative out, but the
    penalty's facts may name them: masked as an echo of the state the view was made from (RULES.md 7)."""
    from domain.privacy import redact_personal

    state = {"id": "91410100MA44C2XH7A", "id_kind": "uscc", "category": "legal_entity",
             "records": {"k": {"content": {"legal_rep": {"name": "张卫东", "id_no": "11010519491231002X"},
                                           "fields": {"violation_type": "法定代表人张卫东指使超标排放"}}}}}
    view = {"records": [{"subject": "91410100MA44C2XH7A", "details": {"violation_type": "法定代表人张卫东指使超标排放"},
                         "note": "身份证11010519491231002X"}]}
    assert redact_personal(view)["records"][0]["details"]["violation_type"] == "法定代表人张卫东指使超标排放"
    masked = redact_personal(view, sources=[state])
    assert masked["records"][0]["details"]["violation_type"] == "法定代表人张**指使超标排放"
    assert "11010519491231002X" not in str(masked)
    assert masked["records"][0]["subject"] == "91410100MA44C2XH7A"
    assert "legal_rep" not in masked  # the sources are read, never returned


# ---------------------------------------------------------------------------- written in groups

GROUPED_CASES = [  # an ID number written with spaces or dashes, and its mask (separators kept)
    ("410700 19710813 2424", "410*** ******** ***4"),
    ("410700-19710813-2424", "410***-********-***4"),
    ("110105 - 19491231 - 002x", "110*** - ******** - ***x"),
    ("110105\t19491231\t002X", "110***\t********\t***X"),
    ("110105\u300019491231\u3000002X", "110***\u3000********\u3000***X"),
    ("身份证：１１０１０５－１９４９１２３１－００２Ｘ。", "身份证：１１０***－********－***Ｘ。"),
    ("联系人赵铁柱 410700 19710813 2424", "联系人赵铁柱 410*** ******** ***4"),
    ("旧证 110105 491231 002，", "旧证 110*** ****** **2，"),  # first-generation card, 6 + 6 + 3
    ("110105-491231-002", "110***-******-**2"),
]


@pytest.mark.parametrize("text, expected", GROUPED_CASES)
def test_id_numbers_written_in_groups_are_masked_in_every_string(text, expected):
    """RULES.md 7: the public side masks natural persons' ID numbers wherever they appear, also
    written in groups (an organisation's remarks naming a contact person; a penalty's facts)."""
    doc = {"id": "91410105M00000R29A", "id_kind": "uscc", "fields": {"remarks": text}, "list": [text], text: 1}
    out = redact_personal(doc)
    assert out["fields"]["remarks"] == expected and out["list"] == [expected] and out[expected] == 1
    assert redact_personal(out) == out


@pytest.mark.parametrize("text, expected", GROUPED_CASES)
def test_the_log_mask_and_the_redaction_mask_grouped_forms_alike(text, expected):
    """One search for the grouped forms (domain/identifiers.py), used by the logs and the API alike."""
    from creditstream.logs import mask_text

    assert mask_text(text) == redact_personal(text) == expected


@pytest.mark.parametrize("text", [
    "990105 19491231 002X",    # no province 99, fails the check
    "110105 19491331 002X",    # month 13
    "1110105 19491231 002X",   # a first group of 7 digits: not the ID's grouping
    "110105 19491231 002X7",   # the last group runs on
    "2024-05-21 10:00:00",
    "电话 0371-6688 1234，罚款 50000 元",
])
def test_grouped_look_alikes_stay(text):
    assert redact_personal({"remarks": text}) == {"remarks": text}


def test_a_registration_number_written_in_groups_stays_in_its_own_field():
    """reg_no holds an organisation's 15-digit registration number, which shares the legacy ID's shape."""
    doc = {"reg_no": "110105 491231 002", "remarks": "110105 491231 002"}
    assert redact_personal(doc) == {"reg_no": "110105 491231 002", "remarks": "110*** ****** **2"}


def test_a_detail_masks_grouped_id_numbers():
    from domain.privacy import safe_detail

    assert safe_detail("record_status: '410700-19710813-2424'") == "record_status: '410***-********-***4'"
    assert safe_detail("KeyError: '110105 491231 002'") == "KeyError: '110*** ****** **2'"


@settings(max_examples=200, deadline=None)
@given(pid=resident_ids(), sep=st.sampled_from([" ", "  ", "-", " - ", "\t", "\u3000", "－", "—", " –"]),
       before=st.sampled_from(["", "身份证号", "id: ", "（"]), after=st.sampled_from(["", "。", " and more", "）"]))
def test_property_no_grouped_id_number_survives(pid, sep, before, after):
    """However an 18-character ID number is grouped (6 + 8 + 4) inside an organisation's free text,
    its birth date and sequence do not reach the public side."""
    text = f"{before}{pid[:6]}{sep}{pid[6:14]}{sep}{pid[14:]}{after}"
    out = redact_personal({"id": "91410105M00000R29A", "id_kind": "uscc", "remarks": text})["remarks"]
    assert out == f"{before}{pid[:3]}***{sep}********{sep}***{pid[17]}{after}"


def test_a_15_digit_number_that_fails_the_registration_check_is_masked_in_its_reg_no_field():
    """Seen: `dlq show` of a record dead-lettered for its reg_no (it fails the MOD 11,10 check and
    reads as a first-generation ID number, born 1980-01-01) masked it in the key line and printed it
    in clear in the decoded record: no registration number, it may be a person's."""
    doc = {"reg_no": "410105800101000", "remarks": "x"}
    assert redact_personal(doc)["reg_no"] == "410***********0"
    assert redact_personal({"reg_no": "310230001716146"}) == {"reg_no": "310230001716146"}  # passes: stays


def test_a_person_named_with_an_id_number_in_a_decisions_text_is_masked_there_and_elsewhere():
    """RULES.md 7: names of natural persons are personal information. A penalty's facts name its
    directly responsible persons (直接责任人员) with their numbers; the schema has a field for the legal
    representative only. An audit saw 孙七 in clear on the open pages, next to their masked number."""
    facts = "法定代表人赵六指使孙七销售假冒商品"
    content = ("对法定代表人赵六(身份证号410105197505050026)罚款1万元，"
               "对直接责任人员孙七(公民身份号码410105199002020035)罚款0.5万元")
    doc = {"category": "legal_entity", "name": "某公司", "fields": {"violation_type": facts, "penalty_content": content}}
    out = redact_personal(doc)
    assert out["fields"]["violation_type"] == "法定代表人赵*指使孙*销售假冒商品"
    assert "孙七" not in out["fields"]["penalty_content"] and "对直接责任人员孙*(公民身份号码410" in out["fields"]["penalty_content"]
    assert out["name"] == "某公司"
    assert names_given_with_ids("当事人张三（身份证号：410105199002020035）") == {"张三"}
    # without a role word: the last two and three characters, both masked where they recur
    assert names_given_with_ids("处罚对象王小明(身份证号410105199002020035)") == {"小明", "王小明"}
    assert names_given_with_ids("某公司(统一社会信用代码91310110666007217T)") == set()
    # a bracket holding nothing but a resident ID number (an audit saw 蒋四号 in clear on the open pages)
    bare = "对直接责任人员蒋四号(410102198506151238)罚款1万元，对蒋四号予以警告"
    assert names_given_with_ids(bare) == {"蒋四号"}
    out = redact_personal({"category": "legal_entity", "name": "某公司", "fields": {"penalty_content": bare}})
    assert "蒋四号" not in out["fields"]["penalty_content"], out
    # not an organisation's number in brackets, nor digits that are no resident ID number
    assert names_given_with_ids("某某商贸有限公司(410105000010291)") == set()
    assert names_given_with_ids("某某商贸有限公司(410102198506151230)") == set()  # check character wrong
    # a first-generation (15-digit) number alone in brackets, after a word that introduces a person (the
    # re-check of the fix saw 褚七号 in clear); not after an organisation's name (its registration number
    # can read as one)
    old_card = "直接责任人员褚七号(410102850615123)擅自排放，对褚七号罚款"
    assert names_given_with_ids(old_card) == {"褚七号"}
    out = redact_personal({"category": "legal_entity", "name": "某公司", "fields": {"facts": old_card}})
    assert "褚七号" not in out["fields"]["facts"], out
    assert names_given_with_ids("郑州市某某商贸有限公司(410102850615123)") == set()
    assert names_given_with_ids("当事人郑州市某某商贸有限公司(410102850615123)") == set()
