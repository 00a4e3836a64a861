"""What departments really put in the identifier columns (RULES.md 1, 7): a filler code where they
have none, a natural person's ID number in the USCC column."""

from __future__ import annotations

import pytest

from domain.attach import Attached, NeedsLookup, learned_pairs, plan
from domain.validate import Rejection
from tests.unit.test_validate import norm, ok

PERSON_ID = "410102198703154518"


@pytest.mark.parametrize("filler", ["000000000000000000", "00000000-0000000000", "111111111111111111"])
def test_a_filler_uscc_names_no_subject(filler):
    # 000000000000000000 passes the USCC check: taken as a code, every subject sent without one
    # would be the same subject, and the registry would learn that every legacy number is it
    first = ok("penalty", subject_name="甲公司", uscc=filler, reg_no="310230001716146")
    assert "uscc" not in first["ids"]
    assert plan(first) == NeedsLookup(("reg_no:310230001716146",))
    assert learned_pairs(first["ids"]) == []
    second = ok("penalty", subject_name="乙公司", uscc=filler, org_code="D2143569-X")
    assert plan(second) == NeedsLookup(("org:D2143569X",))


@pytest.mark.parametrize("ids", [{"uscc": "000000000000000000"}, {"uscc": None, "org_code": "00000000-0"},
                                 {"uscc": None, "reg_no": "000000000000000"}])
def test_a_record_named_only_by_fillers_is_a_dead_letter_with_a_reason(ids):
    out = norm("penalty", **ids)
    assert isinstance(out, Rejection) and out.reason == "no-identifier", out


def test_a_filler_source_unit_code_does_not_key_the_decision():
    # the decision is keyed by its unit's code when it has one: a filler would key every unit's
    # decision of one number alike
    a = ok("penalty", source_unit_uscc="000000000000000000", source_unit="郑州市市场监督管理局")
    b = ok("penalty", source_unit_uscc="000000000000000000", source_unit="开封市市场监督管理局")
    assert a["source_unit_code"] is None and b["source_unit_code"] is None


def test_a_persons_id_number_in_the_uscc_column_names_the_person():
    out = ok("penalty", subject_name="张卫东", subject_category="自然人", uscc=PERSON_ID,
             legal_rep_name=None, legal_rep_id_no=None, legal_rep_id_type=None)
    assert out["ids"] == {"resident_id": PERSON_ID}
    assert "resident-id-in-uscc-field" in out["id_flags"] and "uscc-check-failed" not in out["id_flags"]
    assert out["subject_category"] == "natural_person"
    assert plan(out) == Attached(PERSON_ID, "resident_id")


def test_an_id_number_in_the_uscc_column_without_a_category_is_a_person_too():
    # it fails the USCC check and passes the resident ID's: it is not an organisation's code
    out = ok("penalty", subject_name="张卫东", subject_category=None, uscc=PERSON_ID,
             legal_rep_name=None, legal_rep_id_no=None, legal_rep_id_type=None)
    assert plan(out) == Attached(PERSON_ID, "resident_id")
    assert out["subject_category"] == "natural_person"


def test_a_valid_uscc_stays_an_organisations_code():
    out = ok("penalty", uscc="91310110666007217T")
    assert plan(out) == Attached("91310110666007217T", "uscc")
    assert "resident-id-in-uscc-field" not in out["id_flags"]
