"""domain.validate: canonical records, rejections, identifier flags, content hash."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.validate import REASONS, Rejection, content_hash, decision_key, normalise_event
from schemas import load_schema
from streams.samples import KINDS, sample_event, schema_of

CST = dt.timezone(dt.timedelta(hours=8))
# 2024-10-01 23:30 in Beijing (15:30 UTC): dates up to 2024-10-02 are accepted.
NOW_MS = int(dt.datetime(2024, 10, 1, 23, 30, tzinfo=CST).timestamp() * 1000)

PILOT_USCC = "91350211M00013FA1N"  # real early-pilot code that fails its check character
BAD_ID = "410105198503121236"  # check digit wrong (valid: ...1235)


def norm(kind: str, **overrides):
    return normalise_event(schema_of(kind), sample_event(kind, **overrides), event_time_ms=NOW_MS)


def ok(kind: str, **overrides) -> dict:
    out = norm(kind, **overrides)
    assert isinstance(out, dict), out
    return out


# --------------------------------------------------------------------------------------------
# rejections, table-driven

REJECTIONS = [
    # (kind, overrides, reason)
    ("penalty", {"subject_name": None}, "missing-field"),
    ("penalty", {"subject_name": " \u3000 "}, "missing-field"),
    ("penalty", {"decision_doc_no": ""}, "missing-field"),
    ("penalty", {"source_unit": None}, "missing-field"),
    ("penalty", {"decision_date": None}, "missing-field"),
    ("license", {"license_doc_no": "  "}, "missing-field"),
    ("court_listing", {"case_no": None}, "missing-field"),
    ("court_listing", {"listing_reason": ""}, "missing-field"),
    ("court_deletion", {"deletion_date": None}, "missing-field"),
    ("action", {"action_kind": ""}, "missing-field"),
    ("registration", {"uscc": None}, "missing-field"),
    ("penalty", {"decision_date": dt.date(1949, 9, 30)}, "bad-date"),
    ("penalty", {"decision_date": "2024-02-30"}, "bad-date"),
    ("penalty", {"decision_date": "next tuesday"}, "bad-date"),
    ("penalty", {"valid_until": "31/12/2024"}, "bad-date"),
    ("penalty", {"decision_date": dt.date(2024, 10, 3)}, "future-date"),
    ("court_listing", {"listing_date": dt.date(2030, 1, 1)}, "future-date"),
    ("court_listing", {"publish_date": dt.date(2030, 1, 1)}, "future-date"),
    ("penalty", {"fine_amount": Decimal("-0.000001")}, "negative-amount"),
    ("penalty", {"confiscated_amount": -3}, "negative-amount"),
    ("court_listing", {"aggravation_years": -1}, "negative-amount"),
    ("penalty", {"fine_amount": "lots"}, "bad-number"),
    # decimal(18, 6): rounded to six places it has 13 integer digits (the check ran before rounding)
    ("penalty", {"fine_amount": "999999999999.9999995"}, "bad-number"),
    ("penalty", {"subject_category": "公司"}, "unknown-enum"),
    ("penalty", {"severity": "较重"}, "unknown-enum"),
    ("penalty", {"record_status": "deleted"}, "unknown-enum"),
    ("license", {"license_category": "特别许可"}, "unknown-enum"),
    ("action", {"action_kind": "处罚"}, "unknown-enum"),
    ("court_listing", {"listing_reason": "bad_luck"}, "unknown-enum"),
    ("court_deletion", {"deletion_reason": "forgotten"}, "unknown-enum"),
    ("penalty", {"uscc": "9131011066600721"}, "bad-identifier"),  # 16 chars
    ("penalty", {"uscc": "91310110666OO7217T"}, "bad-identifier"),  # letter O not in the alphabet
    ("penalty", {"uscc": None, "org_code": "D21435691"}, "bad-identifier"),  # beside a USCC: flagged (below)
    ("penalty", {"uscc": None, "reg_no": "310230001716147"}, "bad-identifier"),
    ("penalty", {"uscc": None, "subject_category": "自然人", "person_id_type": "身份证", "person_id_no": BAD_ID}, "bad-identifier"),
    ("court_listing", {"uscc": None, "person_id_no": BAD_ID}, "bad-identifier"),
    ("penalty", {"uscc": None}, "no-identifier"),
    ("registration", {"uscc": "无", "reg_no": None, "org_code": None, "tax_no": None}, "no-identifier"),
    ("penalty", {"subject_name": "郑" * 201}, "field-too-long"),
    ("penalty", {"facts": "违" * 4001}, "field-too-long"),
    ("penalty", {"decision_doc_no": "号" * 100_000}, "field-too-long"),
]


@pytest.mark.parametrize("kind,overrides,reason", REJECTIONS, ids=[f"{r[2]}:{r[0]}:{','.join(r[1])}" for r in REJECTIONS])
def test_rejections(kind, overrides, reason):
    out = norm(kind, **overrides)
    assert isinstance(out, Rejection), out
    assert out.reason == reason, out
    assert out.reason in REASONS and out.detail


def test_every_reason_is_covered():
    assert {r[2] for r in REJECTIONS} == set(REASONS)


def test_missing_key_is_missing_field():
    rec = sample_event("penalty")
    del rec["source_unit"]
    assert normalise_event(schema_of("penalty"), rec, event_time_ms=NOW_MS) == Rejection("missing-field", "source_unit")


def test_not_a_mapping_and_unknown_schema():
    assert isinstance(normalise_event(schema_of("penalty"), ["x"], event_time_ms=NOW_MS), Rejection)
    with pytest.raises(ValueError):
        normalise_event("creditstream.Nope", {}, event_time_ms=NOW_MS)


# --------------------------------------------------------------------------------------------
# the canonical record


@pytest.mark.parametrize("kind", KINDS)
def test_every_sample_is_valid_and_json_serialisable(kind):
    out = ok(kind)
    assert out["kind"] == kind
    blob = orjson.dumps(out)
    assert orjson.loads(blob) == out
    assert all(v not in (None, "", []) for v in out["fields"].values())
    assert out["ids"]["uscc"] == "91310110666007217T"
    assert out["id_flags"] == []


def test_penalty_canonical_record():
    out = ok("penalty")
    assert out["action_kind"] == "penalty"
    assert out["source_unit"] == "郑州市市场监督管理局"
    assert out["source_unit_code"] == "11410100005200036R"
    assert out["doc_no"] == "郑市监罚〔2024〕123号"
    assert out["subject_category"] == "legal_entity"
    assert out["decision_date"] == "2024-05-20"
    assert out["severity"] == "general"
    assert out["domain"] == "food_drug"
    assert out["revoked"] is False
    assert out["simplified_procedure"] is False
    assert out["legal_rep"] == {"name": "李建国", "id_no": "410105198503121235"}
    assert out["fields"]["fine_amount"] == "5.000000"
    assert out["fields"]["confiscated_amount"] == "0.360000"
    assert out["fields"]["valid_until"] == "2025-05-20"
    assert out["event_id"] == "samr-zz-penalty-000123"
    for top in ("subject_name", "uscc", "decision_doc_no", "decision_date", "source_unit", "event_id"):
        assert top not in out["fields"]


def test_pilot_uscc_is_flagged_not_rejected():
    out = ok("penalty", uscc=PILOT_USCC)
    assert out["ids"]["uscc"] == PILOT_USCC
    assert "uscc-check-failed" in out["id_flags"]


def test_full_width_and_spaced_values_are_normalised():
    out = ok(
        "penalty",
        subject_name=" 郑州市　金水区（恒达）商贸有限公司 ",
        uscc="９１３１ ０１１０ ６６６００７２１７ｔ",
        decision_doc_no="郑市监罚（２０２４）123 号",
        source_unit="郑州市 市场监督管理局",
        source_unit_uscc="11410100-005200036r",
        facts="  当事人\n\n销售  过期食品  ",
    )
    assert out["subject_name"] == "郑州市金水区(恒达)商贸有限公司"
    assert out["ids"]["uscc"] == "91310110666007217T"
    assert out["doc_no"] == "郑市监罚〔2024〕123号"
    assert out["source_unit"] == "郑州市市场监督管理局"
    assert out["source_unit_code"] == "11410100005200036R"
    assert out["fields"]["facts"] == "当事人 销售 过期食品"
    assert out["id_flags"] == []


@pytest.mark.parametrize(
    "field,raw,expected",
    [
        ("subject_category", "自然人", "natural_person"),
        ("subject_category", "个体工商户", "individual_business"),
        ("subject_category", "legal_entity", "legal_entity"),
        ("severity", "严重", "severe"),
        ("severity", "Minor", "minor"),
    ],
)
def test_enums_accept_chinese_and_english(field, raw, expected):
    overrides = {field: raw}
    if expected == "natural_person":
        overrides.update(uscc=None, person_id_type="身份证", person_id_no="410102198703154518")
    assert ok("penalty", **overrides)[field] == expected


@pytest.mark.parametrize(
    "kind,field,raw,expected",
    [
        ("license", "license_category", "特许", "special"),
        ("license", "license_category", "approval", "approval"),
        ("court_listing", "listing_reason", "有履行能力而拒不履行生效法律文书确定义务", "refuse_with_ability"),
        ("court_listing", "listing_reason", "违反财产报告制度", "false_report"),
        ("court_listing", "listing_reason", "以虚假诉讼、虚假仲裁或者以隐匿、转移财产等方法规避执行", "evade"),
        ("court_listing", "listing_reason", "obstruct", "obstruct"),
        ("court_deletion", "deletion_reason", "执行和解履行完毕", "settlement_performed"),
        ("court_deletion", "deletion_reason", "全部履行", "performed"),
        ("court_deletion", "deletion_reason", "term_expired", "term_expired"),
    ],
)
def test_field_enums(kind, field, raw, expected):
    assert ok(kind, **{field: raw})["fields"][field] == expected


# the court rule of 2017 (法释〔2017〕7号) in its own words: the six situations of article 1 (only the
# first, able but refusing, has no fixed term: RULES.md 4) and the deletions of articles 10 and 11
COURT_RULE_WORDS = [
    ("court_listing", "listing_reason", "有履行能力而拒不履行生效法律文书确定义务的", "refuse_with_ability"),
    ("court_listing", "listing_reason", "以伪造证据、暴力、威胁等方法妨碍、抗拒执行的", "obstruct"),
    ("court_listing", "listing_reason", "以虚假诉讼、虚假仲裁或者以隐匿、转移财产等方法规避执行的", "evade"),
    ("court_listing", "listing_reason", "违反财产报告制度的", "false_report"),
    ("court_listing", "listing_reason", "违反限制消费令的", "other"),
    ("court_listing", "listing_reason", "无正当理由拒不履行执行和解协议的", "other"),
    ("court_deletion", "deletion_reason", "被执行人已履行生效法律文书确定的义务或人民法院已执行完毕的", "performed"),
    ("court_deletion", "deletion_reason", "当事人达成执行和解协议且已履行完毕的", "settlement_performed"),
    ("court_deletion", "deletion_reason", "申请执行人书面申请删除失信信息，人民法院审查同意的", "creditor_request"),
    ("court_deletion", "deletion_reason", "终结本次执行程序后，通过网络执行查控系统查询被执行人财产两次以上，未发现有可供执行财产，"
                                          "且申请执行人或者其他人未提供有效财产线索的", "enforcement_ended"),
    ("court_deletion", "deletion_reason", "因审判监督或破产程序，人民法院依法裁定对失信被执行人中止执行的", "enforcement_ended"),
    ("court_deletion", "deletion_reason", "人民法院依法裁定不予执行的", "enforcement_ended"),
    ("court_deletion", "deletion_reason", "人民法院依法裁定终结执行的", "enforcement_ended"),
    ("court_deletion", "deletion_reason", "不应将其纳入失信被执行人名单的", "listing_revoked"),
]


@pytest.mark.parametrize("kind,field,raw,expected", COURT_RULE_WORDS, ids=[f"{r[1]}:{r[3]}:{i}" for i, r in enumerate(COURT_RULE_WORDS)])
def test_court_rule_in_its_own_words(kind, field, raw, expected):
    assert ok(kind, **{field: raw})["fields"][field] == expected


def test_a_refused_settlement_agreement_is_listed_for_the_fixed_term():
    from domain.rulebook import load_rulebook

    fields = ok("court_listing", listing_reason="无正当理由拒不履行执行和解协议的", aggravated=False)["fields"]
    assert load_rulebook().court_period_years(fields) == 2


@pytest.mark.parametrize("raw,expected", [("强制", "enforcement"), ("行政检查", "inspection"), ("reward", "reward"), ("征收", "levy")])
def test_action_kind(raw, expected):
    out = ok("action", action_kind=raw)
    assert out["kind"] == "action" and out["action_kind"] == expected


def test_revocation():
    assert ok("penalty", record_status="撤销")["revoked"] is True
    assert ok("penalty", record_status="revoked")["revoked"] is True
    assert ok("license", record_status="正常")["revoked"] is False


def test_natural_person_and_inferred_category():
    out = ok("penalty", uscc=None, subject_name="张卫东", subject_category="", person_id_no="410102198703154518",
             legal_rep_name=None, legal_rep_id_no=None, legal_rep_id_type=None, simplified_procedure=True)
    assert out["subject_category"] == "natural_person"
    assert out["ids"] == {"resident_id": "410102198703154518"}
    assert out["legal_rep"] is None
    assert out["simplified_procedure"] is True


def test_category_inferred_for_individual_business():
    out = ok("penalty", subject_category="", uscc=PILOT_USCC.replace("91", "92", 1))
    assert out["subject_category"] == "individual_business"
    assert ok("penalty", subject_category=None)["subject_category"] == "legal_entity"


def test_identifier_details():
    out = ok("penalty", org_code="D2143569-X", reg_no="310230001716146", tax_no="410105666007217",
             institution_cert_no="事证第141010000123号")
    assert out["ids"]["org_code"] == "D2143569X"
    assert out["ids"]["reg_no"] == "310230001716146"
    assert out["ids"]["tax_no"] == "410105666007217"
    assert out["ids"]["other"] == ["事证第141010000123号"]
    assert "org-code-mismatch" in out["id_flags"]  # the USCC embeds 666007217
    assert ok("penalty", org_code="666007217")["id_flags"] == []
    # placeholders are "absent", not bad identifiers
    assert "reg_no" not in ok("penalty", reg_no="无")["ids"]
    assert "reg_no" not in ok("penalty", reg_no=" / ")["ids"]
    # a passport goes to "other"; a 15-digit first-generation ID card names the person by its
    # 18-character form (GB 11643-1999: 19YY and a check character), flagged. Seen: the person sent
    # with either number was two subjects, and a check on the current number missed a court listing
    passport = ok("penalty", uscc=None, subject_category="自然人", person_id_type="护照", person_id_no="E12345678")
    assert passport["ids"] == {"other": ["E12345678"]}
    old = ok("penalty", uscc=None, subject_category="自然人", person_id_no="410105850312123")
    assert old["ids"] == {"resident_id": "410105198503121235"} and "resident-id-15-digit" in old["id_flags"]
    new = ok("penalty", uscc=None, subject_category="自然人", person_id_no="410105198503121235")
    assert new["ids"] == old["ids"] and "resident-id-15-digit" not in new["id_flags"]
    assert norm("penalty", uscc=None, subject_category="自然人", person_id_no="410105851332123") == Rejection(
        "bad-identifier", "person_id_no: a 15-digit resident ID without a real birth date")  # month 13
    rep = ok("penalty", legal_rep_id_no="410105850312123")
    assert rep["legal_rep"]["id_no"] == "410105198503121235" and "legal-rep-id-15-digit" in rep["id_flags"]
    # a legal representative's bad ID is flagged, the decision kept
    rep = ok("penalty", legal_rep_id_no=BAD_ID)
    assert rep["legal_rep"]["id_no"] == BAD_ID and "legal-rep-id-check-failed" in rep["id_flags"]


PERSON_ID = "410102198703154518"  # passes GB 11643


@pytest.mark.parametrize("id_type", ["公民身份号码", "居民身份号码", "身份證", "居民身份证号码", "港澳台居民居住证",
                                     "临时身份证", "身份证号", "ID_CARD"])
def test_every_name_of_the_resident_id_card_attaches_the_person_by_it(id_type):
    # the official term is 公民身份号码 (GB 11643); such a person was parked under other:<number> for ever
    out = ok("penalty", uscc=None, subject_name="张卫东", subject_category="自然人", person_id_type=id_type,
             person_id_no=PERSON_ID)
    assert out["ids"] == {"resident_id": PERSON_ID} and out["subject_category"] == "natural_person"


@pytest.mark.parametrize("id_type,number", [("外国人永久居留身份证", "USA310076050402"), ("护照", "E12345678"),
                                            ("港澳居民来往内地通行证", "H12345678")])
def test_other_documents_are_not_checked_as_resident_ids(id_type, number):
    # a foreigner's permanent residence card says 身份证 in its name but is not one: not dead-lettered
    # as a bad resident ID (the person has no resident ID: attach.plan sends no look-up for it)
    out = ok("penalty", uscc=None, subject_category="自然人", person_id_type=id_type, person_id_no=number)
    assert out["ids"] == {"other": [number]}


@pytest.mark.parametrize("field,value,flag", [("org_code", "D21435690", "org-code-check-failed"),
                                              ("reg_no", "310230001716147", "reg-no-check-failed"),
                                              ("person_id_no", BAD_ID, "person-id-check-failed")])
def test_a_secondary_number_failing_its_check_beside_a_uscc_is_flagged_and_left_out(field, value, flag):
    # RULES.md 1: a valid USCC attaches directly; a failed check is flagged and routed
    out = ok("penalty", **{field: value})
    assert out["ids"]["uscc"] == "91310110666007217T" and flag in out["id_flags"]
    assert value not in str(out["ids"])
    # without the USCC the number would name the subject: refused
    assert norm("penalty", uscc=None, **{field: value}).reason == "bad-identifier"


def test_a_persons_bad_id_number_is_refused_even_beside_a_uscc():
    # a natural person is named by the ID number: a USCC beside it does not make a bad one usable
    out = norm("penalty", subject_category="自然人", person_id_type="身份证", person_id_no=BAD_ID)
    assert isinstance(out, Rejection) and out.reason == "bad-identifier"


def test_a_resident_id_with_a_birth_date_not_yet_come_or_before_1900_is_not_valid():
    from domain.identifiers import IdKind, classify, is_valid_resident_id, resident_id_check_char

    def with_birth(birth: str) -> str:
        body = "110105" + birth + "001"
        return body + resident_id_check_char(body)

    assert is_valid_resident_id(with_birth("19491231"))
    for birth in ("20990101", "00010101", "18991231", "21500101"):
        number = with_birth(birth)
        assert not is_valid_resident_id(number), number
        assert classify(number) != (IdKind.RESIDENT_ID, True)
    out = norm("penalty", uscc=None, subject_category="自然人", person_id_no=with_birth("20990101"))
    assert isinstance(out, Rejection) and out.reason == "bad-identifier"


def test_a_required_field_of_whitespace_only_is_missing_however_long():
    for spaces in (" ", " " * 850, "\u3000" * 5000):
        out = norm("court_listing", court=spaces)
        assert isinstance(out, Rejection) and out.reason == "missing-field", len(spaces)


def test_registration():
    out = ok("registration", other_ids=["社证字第0001号", " 社证字第0001号", "X-1234", "0", "未登记"])
    assert out["kind"] == "registration" and out["doc_no"] is None and out["action_kind"] is None
    assert out["ids"]["other"] == ["X1234", "社证字第0001号"]  # a placeholder is no number (test_attach.py)
    assert "other-id-not-a-number" in out["id_flags"]
    assert out["decision_date"] == "2007-09-12"
    assert ok("registration", registered_at=None)["decision_date"] is None


def test_dates_from_json_and_int_days():
    out = ok("penalty", decision_date="2024-05-20", valid_until=(dt.date(2025, 5, 20) - dt.date(1970, 1, 1)).days)
    assert out["decision_date"] == "2024-05-20" and out["fields"]["valid_until"] == "2025-05-20"
    assert ok("penalty", decision_date="20240520")["decision_date"] == "2024-05-20"
    assert ok("penalty", fine_amount="1.23456789")["fields"]["fine_amount"] == "1.234568"
    assert ok("penalty", fine_amount=3)["fields"]["fine_amount"] == "3.000000"
    assert ok("penalty", fine_amount="999999999999.9999994")["fields"]["fine_amount"] == "999999999999.999999"


def test_a_date_time_with_a_zone_is_validated_as_its_china_date():
    assert ok("penalty", decision_date="2024-05-19T20:00:00Z")["decision_date"] == "2024-05-20"
    assert ok("penalty", decision_date=dt.datetime(2024, 5, 19, 16, tzinfo=dt.UTC))["decision_date"] == "2024-05-20"
    assert ok("penalty", decision_date="2024-05-20T23:59:00")["decision_date"] == "2024-05-20"  # naive: China time
    assert ok("penalty", decision_date="2024/05/20 10:00")["decision_date"] == "2024-05-20"


def test_future_date_boundary_is_the_arrival_date_in_china():
    """RULES.md 3a: nothing may be dated after its arrival (China date, with the clock's tolerance)."""
    assert ok("penalty", decision_date=dt.date(2024, 10, 1))["decision_date"] == "2024-10-01"
    assert norm("penalty", decision_date=dt.date(2024, 10, 2)).reason == "future-date"
    # validity ends may lie far ahead (2099-12-31 = indefinite)
    assert ok("license", valid_to=dt.date(2099, 12, 31))["fields"]["valid_to"] == "2099-12-31"


# --------------------------------------------------------------------------------------------
# hash and key


def test_content_hash_equal_for_equal_content():
    a = ok("penalty")
    b = ok("penalty", event_id="another-id-from-a-resend", subject_name="郑州市金水区恒达商贸有限公司 ")
    assert content_hash(a) == content_hash(b)
    reordered = dict(reversed(list(a.items())))
    reordered["fields"] = dict(reversed(list(a["fields"].items())))
    assert content_hash(reordered) == content_hash(a)
    assert content_hash({**a, "subject_id": "annotated later"}) == content_hash(a)
    assert len(content_hash(a)) == 32


@pytest.mark.parametrize(
    "overrides",
    [
        {"fine_amount": Decimal("6")},
        {"facts": "更正后的违法事实"},
        {"severity": "严重"},
        {"record_status": "revoked"},
        {"decision_date": dt.date(2024, 5, 21)},
        {"uscc": PILOT_USCC},
        {"remarks": "补充说明"},
    ],
)
def test_content_hash_differs_when_a_field_changes(overrides):
    assert content_hash(ok("penalty", **overrides)) != content_hash(ok("penalty"))


def test_decision_key():
    a = ok("penalty")
    assert decision_key(a) == "penalty|11410100005200036R|郑市监罚〔2024〕123号"
    assert decision_key(ok("penalty", decision_doc_no="郑市监罚（２０２４）123号")) == decision_key(a)
    assert decision_key(ok("penalty", source_unit_uscc=None)) == "penalty|郑州市市场监督管理局|郑市监罚〔2024〕123号"
    assert decision_key(ok("court_deletion")) == decision_key(ok("court_listing"))
    assert decision_key(ok("action")).startswith("action:inspection|")
    assert decision_key(ok("registration")) == "registration|91310110666007217T"


# --------------------------------------------------------------------------------------------
# property: never raises on arbitrary strings in string fields


def _string_fields(kind: str) -> list[str]:
    out = []
    for f in load_schema(schema_of(kind))["fields"]:
        t = f["type"]
        if t == "string" or t == ["null", "string"]:
            out.append(f["name"])
    return out


_VALUES = st.one_of(st.none(), st.text(max_size=30), st.text(alphabet="0123456789ABCDXYZ-　（）", max_size=20),
                    st.sampled_from(["", "无", "自然人", "撤销", "严重", "检查", "其他", PILOT_USCC, BAD_ID]))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(KINDS), st.data())
def test_normalise_event_never_raises_on_arbitrary_strings(kind, data):
    fields = _string_fields(kind)
    chosen = data.draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields)))
    overrides = {name: data.draw(_VALUES, label=name) for name in chosen}
    out = norm(kind, **overrides)
    if isinstance(out, Rejection):
        assert out.reason in REASONS
    else:
        assert isinstance(out, dict)
        orjson.dumps(out)
        content_hash(out)
        decision_key(out)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(KINDS), st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.text(), st.integers(), st.booleans(), st.floats()), max_size=8))
def test_normalise_event_never_raises_on_odd_values(kind, extra):
    rec = sample_event(kind)
    rec.update(extra)
    out = normalise_event(schema_of(kind), rec, event_time_ms=NOW_MS)
    assert isinstance(out, (dict, Rejection))
    if isinstance(out, dict):
        orjson.dumps(out)
        content_hash(out)


def test_a_date_after_the_china_date_of_the_stamp_is_future_even_minutes_before_midnight():
    # docs/events.md: a date in the record after the China date of the message timestamp is dead-lettered
    late = int(dt.datetime(2024, 10, 1, 23, 57, tzinfo=CST).timestamp() * 1000)
    out = normalise_event(schema_of("court_listing"), sample_event("court_listing", listing_date=dt.date(2024, 10, 2)),
                          event_time_ms=late)
    assert getattr(out, "reason", None) == "future-date"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_records_content_hash_is_the_blake2b_of_its_sorted_content(kind):
    # the hashes stored in every state: a change of how they are computed would make every re-send
    # after an upgrade look like a correction
    import hashlib

    from domain.validate import CONTENT_KEYS, KIND_CONTENT_KEYS

    record = normalise_event(schema_of(kind), sample_event(kind), event_time_ms=NOW_MS)
    assert not isinstance(record, Rejection)
    content = {key: record.get(key) for key in (*CONTENT_KEYS, *KIND_CONTENT_KEYS.get(record["kind"], ()))}
    expected = hashlib.blake2b(orjson.dumps(content, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
    assert content_hash(record) == expected == content_hash(record)


def test_a_unit_code_that_is_no_code_names_the_unit_by_its_name():
    """Seen: a person's name sent as source_unit_uscc was taken as the unit's code, so it became
    part of the record's key, published in the public list changes' record ids. A unit code with
    non-ASCII characters is no code: the unit is named by its name, and an objection that names the
    same in its target finds the record."""
    penalty = ok("penalty", source_unit_uscc="王五")
    assert penalty["source_unit_code"] is None and "王五" not in decision_key(penalty)
    assert decision_key(penalty) == decision_key(ok("penalty", source_unit_uscc=None))
    objection = ok("objection", target_source_unit_uscc="王五", target_source_unit=penalty["source_unit"],
                   target_doc_no=penalty["doc_no"])
    assert objection["target_key"] == decision_key(penalty), (objection["target_key"], decision_key(penalty))
