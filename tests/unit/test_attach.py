"""domain.attach: which subject a canonical record belongs to, and what the identifier index learns.

Records are canonical records built by ``normalise_event`` from sample Avro records, as the ingest
agent builds them.
"""

from __future__ import annotations

import datetime as dt

import pytest
from stdnum.cn import uscc as std_uscc

from domain.attach import LOOKUP_KINDS, Attached, NeedsLookup, learned_pairs, legacy_lookup_keys, lookup_key, plan
from domain.identifiers import is_valid_uscc
from domain.validate import Rejection, normalise_event
from streams import samples
from streams.samples import sample_event, schema_of

CST = dt.timezone(dt.timedelta(hours=8))
NOW_MS = int(dt.datetime(2024, 10, 1, 12, 0, tzinfo=CST).timestamp() * 1000)

PILOT_USCC = "91350211M00013FA1N"  # real early-pilot code that fails its check character
USCC = samples.COMPANY_USCC
ORG = samples.COMPANY_ORG_CODE
REG_NO = samples.COMPANY_REG_NO
TAX_NO = "410105666007217"
OTHER = "事证第141010000123号"
# an individual business (个体工商户, category 92) with a USCC that passes its check
BUSINESS_USCC = "92410105MA9F0R1X7" + std_uscc.calc_check_digit("92410105MA9F0R1X7")

NO_SUBJECT_IDS = {"uscc": None, "legal_rep_name": None, "legal_rep_id_type": None, "legal_rep_id_no": None}


def penalty(**overrides) -> dict:
    rec = normalise_event(schema_of("penalty"), sample_event("penalty", **overrides), event_time_ms=NOW_MS)
    assert isinstance(rec, dict), rec
    return rec


PLANS = [
    ("uscc", {}, Attached(USCC, "uscc"), []),
    ("pilot uscc: flagged, attached", {"uscc": PILOT_USCC}, Attached(PILOT_USCC, "uscc"), ["uscc-check-failed"]),
    ("uscc beside legacy numbers", {"org_code": "66600721-7", "reg_no": REG_NO}, Attached(USCC, "uscc"), []),
    ("natural person by resident id",
     {**NO_SUBJECT_IDS, "subject_name": samples.PERSON, "subject_category": "自然人",
      "person_id_type": "身份证", "person_id_no": samples.PERSON_ID},
     Attached(samples.PERSON_ID, "resident_id"), []),
    ("natural person inferred from a lone resident id",
     {**NO_SUBJECT_IDS, "subject_name": samples.PERSON, "subject_category": None, "person_id_no": samples.PERSON_ID},
     Attached(samples.PERSON_ID, "resident_id"), []),
    ("individual business: its uscc, not the owner's id",
     {"subject_category": "个体工商户", "uscc": BUSINESS_USCC, "person_id_type": "身份证",
      "person_id_no": samples.PERSON_ID},
     Attached(BUSINESS_USCC, "uscc"), []),
    ("org code only (printed form)", {"uscc": None, "org_code": "66600721-7"},
     NeedsLookup((f"org:{ORG}",)), []),
    ("reg no only", {"uscc": None, "reg_no": REG_NO}, NeedsLookup((f"reg_no:{REG_NO}",)), []),
    ("tax no only", {"uscc": None, "tax_no": TAX_NO}, NeedsLookup((f"tax_no:{TAX_NO}",)), []),
    ("every legacy number, in lookup order",
     {"uscc": None, "institution_cert_no": OTHER, "tax_no": TAX_NO, "reg_no": REG_NO, "org_code": ORG},
     NeedsLookup((f"org:{ORG}", f"reg_no:{REG_NO}", f"tax_no:{TAX_NO}", f"other:{OTHER}")), []),
]


@pytest.mark.parametrize("overrides,expected,flags", [p[1:] for p in PLANS], ids=[p[0] for p in PLANS])
def test_plan(overrides, expected, flags):
    rec = penalty(**overrides)
    assert plan(rec) == expected
    for flag in flags:
        assert flag in rec["id_flags"]
    if isinstance(expected, Attached) and expected.subject_id == USCC:
        assert "uscc-check-failed" not in rec["id_flags"]


def test_no_identifier_is_rejected_before_attaching():
    rec = normalise_event(schema_of("penalty"), sample_event("penalty", **NO_SUBJECT_IDS), event_time_ms=NOW_MS)
    assert rec == Rejection("no-identifier", rec.detail)


@pytest.mark.parametrize("record", [{"ids": {}}, {"ids": None}, {}], ids=["empty ids", "ids None", "no ids"])
def test_plan_without_any_identifier_has_nothing_to_look_up(record):
    # the ingest agent dead-letters these as 'no-identifier'
    assert plan(record) == NeedsLookup(())


def test_lookup_keys_use_the_index_kinds():
    keys = legacy_lookup_keys({"org_code": ORG, "reg_no": REG_NO, "tax_no": TAX_NO, "other": [OTHER, "X1"]})
    assert [k.split(":", 1)[0] for k in keys] == ["org", "reg_no", "tax_no", "other", "other"]
    assert {k.split(":", 1)[0] for k in keys} <= set(LOOKUP_KINDS)
    assert lookup_key("reg_no", REG_NO) == f"reg_no:{REG_NO}"


# --------------------------------------------------------------------------------------------
# learned_pairs: only a USCC that passes its check teaches the index


def test_valid_uscc_teaches_its_embedded_org_code():
    assert is_valid_uscc(USCC)
    assert learned_pairs({"uscc": USCC}) == [(f"org:{ORG}", USCC)]


def test_valid_uscc_teaches_every_legacy_number_once():
    rec = penalty(org_code=ORG, reg_no=REG_NO, tax_no=TAX_NO, institution_cert_no=OTHER)
    assert learned_pairs(rec["ids"]) == [
        (f"org:{ORG}", USCC),  # the embedded code; the given org_code equals it: taught once
        (f"reg_no:{REG_NO}", USCC),
        (f"tax_no:{TAX_NO}", USCC),
        (f"other:{OTHER}", USCC),
    ]


def test_registration_teaches_like_a_record():
    rec = normalise_event(schema_of("registration"), sample_event("registration"), event_time_ms=NOW_MS)
    assert learned_pairs(rec["ids"]) == [
        (f"org:{ORG}", USCC), (f"reg_no:{REG_NO}", USCC), (f"tax_no:{TAX_NO}", USCC)]


@pytest.mark.parametrize("ids", [
    {"uscc": PILOT_USCC, "reg_no": REG_NO},  # pilot code: attached, but teaches nothing
    {"uscc": USCC[:-1] + ("0" if USCC[-1] != "0" else "1"), "reg_no": REG_NO},  # wrong check character
    {"org_code": ORG, "reg_no": REG_NO},  # no USCC at all
    {"resident_id": samples.PERSON_ID},
    {"uscc": None},
    {},
], ids=["pilot", "bad check", "no uscc", "person", "uscc None", "empty"])
def test_invalid_or_missing_uscc_teaches_nothing(ids):
    assert learned_pairs(ids) == []


def test_pilot_record_attaches_but_teaches_nothing():
    rec = penalty(uscc=PILOT_USCC, reg_no=REG_NO)
    assert plan(rec) == Attached(PILOT_USCC, "uscc")
    assert rec["id_flags"] == ["uscc-check-failed"]
    assert learned_pairs(rec["ids"]) == []


def test_an_organisation_code_other_than_the_embedded_one_teaches_nothing():
    # the record says org-code-mismatch: one of the two numbers is wrong, and the index must not
    # learn from it that D2143569X (another company's code) belongs to this USCC
    rec = penalty(org_code="D2143569X", reg_no=REG_NO)
    assert "org-code-mismatch" in rec["id_flags"]
    assert learned_pairs(rec["ids"]) == [(f"org:{ORG}", USCC), (f"reg_no:{REG_NO}", USCC)]


def test_a_number_that_is_a_persons_id_number_teaches_nothing():
    person_id = samples.PERSON_ID
    assert learned_pairs({"uscc": USCC, "other": [person_id, OTHER], "tax_no": person_id}) == [
        (f"org:{ORG}", USCC), (f"other:{OTHER}", USCC)]


def test_a_natural_person_without_a_resident_id_is_looked_up_nowhere():
    # a passport or a foreigner's card: the registry maps numbers to organisations' USCCs, so the
    # record would be parked for ever (its number in clear in a key name) or attached to a company
    rec = penalty(uscc=None, subject_category="自然人", person_id_type="护照", person_id_no="E12345678")
    assert rec["subject_category"] == "natural_person"
    assert plan(rec) == NeedsLookup(())


def test_a_registration_of_an_early_pilot_code_teaches_its_numbers():
    # the registration authority's own record (RULES.md 1: real data holds such codes); a
    # department's record with the same code still teaches nothing (above)
    assert learned_pairs({"uscc": PILOT_USCC, "reg_no": REG_NO}, registration=True) == [
        (f"org:{PILOT_USCC[8:17]}", PILOT_USCC), (f"reg_no:{REG_NO}", PILOT_USCC)]
    assert learned_pairs({"uscc": "9131011066600721", "reg_no": REG_NO}, registration=True) == []  # 17 chars


def test_a_registration_teaches_a_tax_number_that_reads_like_an_old_id_number():
    # a 15-digit tax number (division 410105 + organisation code 850312000) reads as a first-generation
    # ID number (born 1985-03-12): a department's record never teaches it (it may be a person's), but
    # the registration authority names it the organisation's, and records are parked on it
    tax = "410105850312000"
    assert NeedsLookup((f"tax_no:{tax}",)) == plan(penalty(uscc=None, org_code=None, reg_no=None, tax_no=tax))
    assert (f"tax_no:{tax}", USCC) in learned_pairs({"uscc": USCC, "tax_no": tax}, registration=True)
    assert (f"tax_no:{tax}", USCC) not in learned_pairs({"uscc": USCC, "tax_no": tax})


def test_a_registration_never_teaches_an_18_character_resident_id_number_as_a_tax_number():
    """Seen: a registration whose tax_no was a resident ID number (passing its check) put it in the
    index (`cs:idx` field `tax_no:<the ID number>`); docs/operations.md says the index never learns
    one. A 15-digit tax number that reads as an old ID number is still taught (above)."""
    person_id = samples.PERSON_ID
    assert learned_pairs({"uscc": USCC, "tax_no": person_id, "other": [person_id]}, registration=True) == [
        (f"org:{ORG}", USCC)]


def test_a_resident_id_number_given_as_a_legacy_number_is_never_a_lookup_key():
    """Seen: an organisation's record whose tax_no was a person's resident ID number was parked under
    `cs:parked:tax_no:<the number>`: the index never learns such a number, so it waited for ever, the
    number in clear in a key's name. A 15-digit tax number that reads as an old ID number stays a key
    (a registration teaches it)."""
    person_id = samples.PERSON_ID
    assert plan(penalty(uscc=None, org_code=None, reg_no=None, tax_no=person_id, institution_cert_no=person_id)) \
        == NeedsLookup(())
    assert plan(penalty(uscc=None, org_code=None, reg_no=None, tax_no=person_id, institution_cert_no=OTHER)) \
        == NeedsLookup((f"other:{OTHER}",))
    assert plan(penalty(uscc=None, org_code=None, reg_no=None, tax_no="410105850312000")) \
        == NeedsLookup(("tax_no:410105850312000",))


@pytest.mark.parametrize("field,placeholder", [
    ("tax_no", "同统一社会信用代码"), ("tax_no", "0"), ("tax_no", "未登记"), ("tax_no", "见营业执照"),
    ("tax_no", "123"), ("social_org_cert_no", "未登记"), ("institution_cert_no", "0"),
    ("institution_cert_no", "无此项")])
def test_a_placeholder_in_a_number_column_is_never_a_key(field, placeholder):
    """Seen (an audit from a department's side): a record with a USCC and `tax_no` "0" (or 同统一社会
    信用代码, 未登记 in a certificate column) taught the index that the placeholder was that company's,
    and every later record of another company carrying only the placeholder was attached to it, a
    severe environment penalty and a court listing with their lists. A placeholder is no number: the
    first record keeps its USCC and is flagged; the second names no subject (a dead letter)."""
    first = penalty(**{field: placeholder})
    assert first["ids"] == {"uscc": USCC} and learned_pairs(first["ids"]) == [(f"org:{ORG}", USCC)]
    flag = "tax-no-not-a-number" if field == "tax_no" else "other-id-not-a-number"
    assert flag in first["id_flags"]
    other = normalise_event(schema_of("penalty"), sample_event(
        "penalty", uscc=None, org_code=None, reg_no=None, subject_name="河南乙公司", **{field: placeholder}),
        event_time_ms=NOW_MS)
    assert isinstance(other, Rejection) and other.reason == "no-identifier", other
    assert field in other.detail


def test_a_tax_number_of_each_real_shape_is_a_key():
    # 15 (division + organisation code), 17 (a first-generation ID number + 2), 18 (the USCC), 20 (an ID + 2)
    for tax in ("410105666007217", "41010587031545101", USCC, "41010219870315451800"):
        assert penalty(uscc=None, org_code=None, reg_no=None, tax_no=tax)["ids"]["tax_no"] == tax
