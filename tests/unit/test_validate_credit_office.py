"""domain.validate for the credit office's inputs: objections, repairs, listing decisions, feedback."""

from __future__ import annotations

import datetime as dt
import hashlib

import orjson
import pytest

from domain.validate import (
    CONTENT_KEYS,
    REASONS,
    Rejection,
    content_hash,
    decision_key,
    normalise_event,
)
from streams.samples import COMPANY_USCC, sample_event, schema_of

CST = dt.timezone(dt.timedelta(hours=8))
NOW_MS = int(dt.datetime(2024, 10, 1, 23, 30, tzinfo=CST).timestamp() * 1000)

PILOT_USCC = "91350211M00013FA1N"  # well shaped, fails its check character
PERSON_ID = "410102198703154518"
BAD_ID = "410105198503121236"

NEW_KINDS = ("objection", "repair", "listing_decision", "feedback")


def norm(kind: str, **overrides):
    return normalise_event(schema_of(kind), sample_event(kind, **overrides), event_time_ms=NOW_MS)


def ok(kind: str, **overrides) -> dict:
    out = norm(kind, **overrides)
    assert isinstance(out, dict), out
    return out


# --------------------------------------------------------------------------------------------
# every kind normalises


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_sample_normalises(kind):
    out = ok(kind)
    assert out["kind"] == kind
    assert orjson.loads(orjson.dumps(out)) == out
    assert out["ids"] == {"uscc": COMPANY_USCC} and out["id_flags"] == []
    assert out["doc_no"] and out["source_unit"] and out["decision_date"]
    assert out["revoked"] is False and out["action_kind"] is None
    assert all(v not in (None, "", []) for v in out["fields"].values())
    assert decision_key(out) == f"{kind}|{out['source_unit_code']}|{out['doc_no']}"
    assert len(content_hash(out)) == 32


def test_objection_canonical_record():
    out = ok("objection")
    assert out["objection_id"] == out["doc_no"] == "ZZXY-YY-2024-0087"
    assert out["source_unit"] == "郑州市信用中心" and out["source_unit_code"] == "12410100MB1P38506K"
    assert out["subject_name"] == "郑州市金水区恒达商贸有限公司"
    assert out["subject_category"] == "legal_entity"
    assert out["status"] == "filed"
    assert out["filed"] == out["decision_date"] == "2024-06-10"
    assert out["resolved"] is None
    assert out["provider_verification"] is True
    assert out["outcome"] is None
    assert out["fields"] == {
        "target_kind": "penalty",
        "target_source_unit": "郑州市市场监督管理局",
        "target_source_unit_uscc": "11410100005200036R",
        "target_doc_no": "郑市监罚〔2024〕123号",
        "remarks": "主体称罚款金额录入有误",
    }
    for lifted in ("status", "filed_date", "resolved_date", "outcome", "objection_id", "handling_unit", "uscc"):
        assert lifted not in out["fields"]


def test_objection_resolved():
    out = ok("objection", status="属实", resolved_date=dt.date(2024, 6, 18), outcome="更正")
    assert (out["status"], out["resolved"], out["outcome"]) == ("upheld", "2024-06-18", "corrected")
    out = ok("objection", status="不属实", resolved_date="2024-06-12", provider_verification=False)
    assert (out["status"], out["resolved"], out["provider_verification"]) == ("rejected", "2024-06-12", False)
    assert ok("objection", status="upheld", outcome="revoked")["outcome"] == "revoked"
    assert ok("objection", provider_verification=None)["provider_verification"] is False
    # the same day is fine
    assert ok("objection", status="rejected", resolved_date=dt.date(2024, 6, 10))["resolved"] == "2024-06-10"


@pytest.mark.parametrize(
    "raw,expected",
    [("受理", "filed"), ("已受理", "filed"), ("filed", "filed"), ("属实", "upheld"), ("异议属实", "upheld"),
     ("Upheld", "upheld"), ("不属实", "rejected"), ("异议不属实", "rejected"), ("rejected", "rejected")],
)
def test_objection_status(raw, expected):
    assert ok("objection", status=raw)["status"] == expected


def test_repair_canonical_record():
    out = ok("repair")
    assert out["repair_id"] == out["doc_no"] == "郑信修〔2024〕015号"
    assert out["approved"] is True
    assert out["decision_date"] == "2024-09-02"
    assert out["source_unit"] == "郑州市信用中心"
    assert out["target_key"] == "penalty|11410100005200036R|郑市监罚〔2024〕123号"
    assert ok("repair", approved=False)["approved"] is False
    assert ok("repair", repair_id="郑信修（２０２４）015 号")["repair_id"] == "郑信修〔2024〕015号"


def test_listing_decision_canonical_record():
    out = ok("listing_decision")
    assert out["doc_no"] == "郑环失信〔2024〕006号"
    assert out["decision_date"] == "2024-07-15"
    assert out["domain"] == "environment"
    assert out["fields"]["list_domain"] == "environment"
    assert out["fields"]["action"] == "list"
    assert out["fields"]["period_years"] == 3
    assert out["fields"]["reason"].startswith("篡改")
    assert out["legal_rep"] == {"name": "李建国", "id_no": "410105198503121235"}
    assert out["source_unit_code"] == "11410100MB1P372890"
    assert decision_key(out) == "listing_decision|11410100MB1P372890|郑环失信〔2024〕006号"


@pytest.mark.parametrize(
    "overrides,domain,action",
    [
        ({"action": "移出", "period_years": None}, "environment", "remove"),
        ({"action": "remove"}, "environment", "remove"),
        ({"list_domain": "税务"}, "taxation", "list"),
        ({"list_domain": "安全生产领域"}, "work_safety", "list"),
        ({"list_domain": "拖欠农民工工资"}, "wage_arrears", "list"),
        ({"list_domain": "其他"}, "other", "list"),
        ({"list_domain": "Court-Enforcement"}, "court_enforcement", "list"),
    ],
)
def test_listing_decision_enums(overrides, domain, action):
    out = ok("listing_decision", **overrides)
    assert (out["domain"], out["fields"]["list_domain"], out["fields"]["action"]) == (domain, domain, action)


def test_listing_decision_period_and_natural_person():
    assert "period_years" not in ok("listing_decision", period_years=None)["fields"]
    assert ok("listing_decision", period_years="5")["fields"]["period_years"] == 5
    out = ok("listing_decision", uscc=None, subject_name="张卫东", subject_category=None, person_id_no=PERSON_ID,
             legal_rep_name=None, legal_rep_id_no=None)
    assert out["subject_category"] == "natural_person" and out["ids"] == {"resident_id": PERSON_ID}
    assert out["legal_rep"] is None


def test_feedback_canonical_record():
    out = ok("feedback")
    assert out["feedback_id"] == out["doc_no"] == "ZZCZ-FK-2024-0031"
    assert out["change_id"] == "lc-91310110666007217T-blacklist:environment-entered-2024-07-15"
    assert out["subject_id"] == COMPANY_USCC and out["ids"] == {"uscc": COMPANY_USCC}
    assert out["subject_name"] is None
    assert out["source_unit"] == "郑州市财政局" and out["source_unit_code"] == "11410100005200028Y"
    assert out["decision_date"] == "2024-07-22"
    assert out["fields"]["measure"] == "限制参与政府采购活动"
    assert out["fields"]["measure_date"] == "2024-07-22"
    assert "subject_id" not in out["fields"] and "change_id" not in out["fields"]


def test_feedback_subjects():
    person = ok("feedback", subject_id=PERSON_ID)
    assert person["ids"] == {"resident_id": PERSON_ID} and person["subject_category"] == "natural_person"
    assert person["subject_id"] == PERSON_ID
    pilot = ok("feedback", subject_id=PILOT_USCC.lower())
    assert pilot["subject_id"] == PILOT_USCC and pilot["ids"] == {"uscc": PILOT_USCC}
    assert pilot["id_flags"] == ["uscc-check-failed"]
    spaced = ok("feedback", subject_id=" ９１３１ ０１１０ ６６６００７２１７ｔ ")
    assert spaced["subject_id"] == COMPANY_USCC


# --------------------------------------------------------------------------------------------
# the target key: exactly the decision key of the disputed record


def _canonical(kind: str, **overrides) -> dict:
    return ok(kind, **overrides)


def test_objection_target_key_is_the_penalty_decision_key():
    penalty = _canonical("penalty")
    assert ok("objection")["target_key"] == decision_key(penalty)
    assert ok("repair")["target_key"] == decision_key(penalty)


def test_target_key_normalises_like_the_target():
    penalty = _canonical("penalty")
    messy = ok("objection", target_doc_no=" 郑市监罚（２０２４）123 号", target_source_unit_uscc="11410100-005200036r",
               target_source_unit="郑州市 市场监督管理局", target_kind="行政处罚")
    assert messy["target_key"] == decision_key(penalty)
    assert messy["fields"]["target_doc_no"] == "郑市监罚〔2024〕123号"
    assert messy["fields"]["target_source_unit_uscc"] == "11410100005200036R"
    # no unit code on either side: both fall back to the unit name
    no_code = _canonical("penalty", source_unit_uscc=None)
    assert ok("objection", target_source_unit_uscc=None)["target_key"] == decision_key(no_code)
    assert ok("objection", target_source_unit_uscc="无")["target_key"] == decision_key(no_code)


@pytest.mark.parametrize(
    "target,target_kind,unit_field,code_field,doc_field",
    [
        ("license", "license", "source_unit", "source_unit_uscc", "license_doc_no"),
        ("license", "行政许可", "source_unit", "source_unit_uscc", "license_doc_no"),
        ("court_listing", "court_listing", "source_unit", "source_unit_uscc", "case_no"),
        ("court_listing", "失信被执行人", "source_unit", "source_unit_uscc", "case_no"),
        ("action", "action:inspection", "source_unit", "source_unit_uscc", "decision_doc_no"),
        ("action", "行政检查", "source_unit", "source_unit_uscc", "decision_doc_no"),
        ("action", "action:检查", "source_unit", "source_unit_uscc", "decision_doc_no"),
        ("listing_decision", "listing_decision", "source_unit", "source_unit_uscc", "doc_no"),
    ],
)
@pytest.mark.parametrize("kind", ("objection", "repair"))
def test_target_key_for_every_target_kind(kind, target, target_kind, unit_field, code_field, doc_field):
    raw = sample_event(target)
    target_record = _canonical(target)
    out = ok(kind, target_kind=target_kind, target_source_unit=raw[unit_field],
             target_source_unit_uscc=raw[code_field], target_doc_no=raw[doc_field])
    assert out["target_key"] == decision_key(target_record)


def test_court_deletion_names_the_same_listing():
    raw = sample_event("court_listing")
    out = ok("objection", target_kind="court_listing", target_source_unit=raw["source_unit"],
             target_source_unit_uscc=raw["source_unit_uscc"], target_doc_no=raw["case_no"])
    assert out["target_key"] == decision_key(_canonical("court_deletion"))


# --------------------------------------------------------------------------------------------
# rejections

REJECTIONS = [
    # (kind, overrides, reason)
    # missing target / required fields
    ("objection", {"target_doc_no": None}, "missing-field"),
    ("objection", {"target_doc_no": " \u3000 "}, "missing-field"),
    ("objection", {"target_source_unit": ""}, "missing-field"),
    ("objection", {"target_kind": None}, "missing-field"),
    ("objection", {"objection_id": None}, "missing-field"),
    ("objection", {"status": ""}, "missing-field"),
    ("objection", {"filed_date": None}, "missing-field"),
    ("objection", {"handling_unit": None}, "missing-field"),
    ("objection", {"subject_name": None}, "missing-field"),
    ("repair", {"target_doc_no": None}, "missing-field"),
    ("repair", {"target_source_unit": None}, "missing-field"),
    ("repair", {"approved": None}, "missing-field"),
    ("repair", {"deciding_unit": "  "}, "missing-field"),
    ("listing_decision", {"doc_no": None}, "missing-field"),
    ("listing_decision", {"action": None}, "missing-field"),
    ("listing_decision", {"list_domain": ""}, "missing-field"),
    ("listing_decision", {"source_unit": None}, "missing-field"),
    ("feedback", {"change_id": None}, "missing-field"),
    ("feedback", {"subject_id": None}, "missing-field"),
    ("feedback", {"subject_id": "无"}, "missing-field"),
    ("feedback", {"measure": " "}, "missing-field"),
    ("feedback", {"implementing_unit": None}, "missing-field"),
    # bad dates
    ("objection", {"filed_date": "2024-02-30"}, "bad-date"),
    ("objection", {"filed_date": dt.date(1949, 9, 30)}, "bad-date"),
    ("objection", {"resolved_date": "soon"}, "bad-date"),
    ("objection", {"resolved_date": dt.date(2024, 6, 9)}, "bad-date"),  # before filed_date
    ("repair", {"decision_date": "02/09/2024"}, "bad-date"),
    ("listing_decision", {"decision_date": "yesterday"}, "bad-date"),
    ("feedback", {"measure_date": "2024-13-01"}, "bad-date"),
    ("objection", {"filed_date": dt.date(2024, 10, 3)}, "future-date"),
    ("objection", {"resolved_date": dt.date(2025, 1, 1)}, "future-date"),
    ("repair", {"decision_date": dt.date(2030, 1, 1)}, "future-date"),
    ("listing_decision", {"decision_date": dt.date(2024, 10, 3)}, "future-date"),
    ("feedback", {"measure_date": dt.date(2024, 10, 3)}, "future-date"),
    # enumerations
    ("objection", {"status": "pending"}, "unknown-enum"),
    ("objection", {"status": "撤回"}, "unknown-enum"),
    ("objection", {"outcome": "forgiven"}, "unknown-enum"),
    ("objection", {"target_kind": "action"}, "unknown-enum"),  # which action record?
    ("objection", {"target_kind": "行政处分"}, "unknown-enum"),
    ("repair", {"target_kind": "registration"}, "unknown-enum"),
    ("repair", {"approved": "maybe"}, "unknown-enum"),
    ("objection", {"provider_verification": "perhaps"}, "unknown-enum"),
    ("listing_decision", {"action": "暂停"}, "unknown-enum"),
    ("listing_decision", {"list_domain": "消防"}, "unknown-enum"),
    ("listing_decision", {"list_domain": "astrology"}, "unknown-enum"),
    ("listing_decision", {"subject_category": "公司"}, "unknown-enum"),
    # numbers
    ("listing_decision", {"period_years": 0}, "bad-number"),
    ("listing_decision", {"period_years": "three"}, "bad-number"),
    ("listing_decision", {"period_years": -1}, "negative-amount"),
    # identifiers
    ("objection", {"uscc": None}, "no-identifier"),
    ("repair", {"uscc": "9131011066600721"}, "bad-identifier"),
    ("listing_decision", {"uscc": None, "person_id_no": BAD_ID}, "bad-identifier"),
    ("feedback", {"subject_id": "666007217"}, "bad-identifier"),  # an organisation code is not a subject id
    ("feedback", {"subject_id": "NOT-A-SUBJECT"}, "bad-identifier"),
    # lengths
    ("objection", {"subject_name": "郑" * 201}, "field-too-long"),
    ("objection", {"target_doc_no": "号" * 201}, "field-too-long"),
    ("feedback", {"measure": "限" * 4001}, "field-too-long"),
]


@pytest.mark.parametrize(
    "kind,overrides,reason", REJECTIONS, ids=[f"{r[2]}:{r[0]}:{','.join(r[1])}" for r in REJECTIONS]
)
def test_rejections(kind, overrides, reason):
    out = norm(kind, **overrides)
    assert isinstance(out, Rejection), out
    assert out.reason == reason, out
    assert out.reason in REASONS and out.detail


def test_missing_key_is_missing_field():
    rec = sample_event("objection")
    del rec["target_doc_no"]
    assert normalise_event(schema_of("objection"), rec, event_time_ms=NOW_MS) == Rejection("missing-field", "target_doc_no")


def test_bare_action_target_says_why():
    out = norm("objection", target_kind="action")
    assert out.reason == "unknown-enum" and "action kind" in out.detail


# --------------------------------------------------------------------------------------------
# content hash


def test_objection_status_change_is_new_content():
    filed = ok("objection")
    upheld = ok("objection", status="属实", resolved_date=dt.date(2024, 6, 18), outcome="revoked")
    assert content_hash(filed) != content_hash(upheld)
    assert content_hash(ok("objection", outcome="corrected", status="upheld")) != content_hash(
        ok("objection", outcome="revoked", status="upheld"))
    assert content_hash(ok("objection", provider_verification=False)) != content_hash(filed)
    # a re-send (new event id, same content) is the same content
    assert content_hash(ok("objection", event_id="resend-1", status="filed")) == content_hash(filed)


def test_repair_and_feedback_own_values_are_content():
    assert content_hash(ok("repair", approved=False)) != content_hash(ok("repair"))
    other = "lc-91310110666007217T-blacklist:taxation-entered-2024-07-15"
    assert content_hash(ok("feedback", change_id=other)) != content_hash(ok("feedback"))


def test_hash_of_the_other_kinds_is_unchanged():
    """The credit-office keys count for their own kinds only: the hashes of penalties etc. are
    what they were before these kinds existed."""
    penalty = ok("penalty")
    blob = orjson.dumps({key: penalty.get(key) for key in CONTENT_KEYS}, option=orjson.OPT_SORT_KEYS)
    assert content_hash(penalty) == hashlib.blake2b(blob, digest_size=16).hexdigest()
    assert content_hash({**penalty, "status": "annotated", "target_key": "x"}) == content_hash(penalty)


def test_a_zero_listing_period_is_refused_with_what_empty_does():
    # an empty period_years gives the domain's default period (domain/facts.py), never "no fixed
    # term": the refusal of 0 said otherwise, and so did the schema's doc
    import json
    from pathlib import Path

    from domain.rulebook import load_rulebook

    out = norm("listing_decision", period_years=0)
    assert isinstance(out, Rejection) and out.reason == "bad-number"
    assert "leave it empty for the domain's default period" in out.detail and "no fixed term" not in out.detail
    assert "period_years" not in ok("listing_decision", period_years=None)["fields"]
    assert load_rulebook().listing_period("environment")[0] >= 1  # what empty gives
    schema = json.loads((Path(__file__).parents[2] / "schemas" / "listing_decision.avsc").read_text("utf-8"))
    (field,) = [f for f in schema["fields"] if f["name"] == "period_years"]
    assert "default listing period" in field["doc"] and ", or no fixed term" not in field["doc"]
