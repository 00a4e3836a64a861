"""Identifiers (身份): the subject's USCC, resident ID and legacy numbers of a decision, checked and
flagged (RULES.md 1); the legal representative; the subject category they imply. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from domain.fields import (
    _code,
    _enum,
    _is_resident_type,
    _Reject,
    _string,
    _uscc_shape_ok,
    _valid_org_code,
    _valid_reg_no,
    _valid_resident_id,
    _valid_uscc,
)
from domain.identifiers import resident_id_of_legacy
from domain.normalise import normalise_name, normalise_text
from domain.types import Doc
from domain.vocabulary import _SUBJECT_CATEGORY

# --------------------------------------------------------------------------------------------
# identifiers


def _identifiers(rec: Mapping[str, Any], kind: str) -> tuple[Doc, list[str], Doc | None]:
    ids: Doc = {}
    flags: list[str] = []
    other: list[str] = []

    uscc = _code("uscc", rec.get("uscc"))
    id_in_uscc: str | None = None
    if uscc is not None and _valid_resident_id(uscc) and (_names_a_person(rec) or not _valid_uscc(uscc)):
        # a natural person's ID number sent in the USCC column (it has a USCC's shape): the person
        # is named by it (RULES.md 1), never made an organisation, whose name would be public (7)
        id_in_uscc, uscc = uscc, None
        flags.append("resident-id-in-uscc-field")
    if uscc is not None:
        if not _uscc_shape_ok(uscc):
            raise _Reject("bad-identifier", f"uscc: not a USCC ({len(uscc)} chars)")
        if not _valid_uscc(uscc):
            flags.append("uscc-check-failed")
        ids["uscc"] = uscc

    # a legacy number that fails its check: rejected when the record has no other way to name its
    # subject; beside a USCC, which names it (RULES.md 1: "A valid USCC attaches directly", "a failed
    # check is flagged and routed"), it is flagged and left out (never looked up, never learned)
    org = _code("org_code", rec.get("org_code"))
    if org is not None:
        if _valid_org_code(org):
            ids["org_code"] = org
            if uscc is not None and uscc[8:17] != org:
                flags.append("org-code-mismatch")
        elif uscc is not None:
            flags.append("org-code-check-failed")
        else:
            raise _Reject("bad-identifier", "org_code: fails the GB 11714 check")

    reg = _code("reg_no", rec.get("reg_no"))
    if reg is not None:
        if _valid_reg_no(reg):
            ids["reg_no"] = reg
        elif uscc is not None:
            flags.append("reg-no-check-failed")
        else:
            raise _Reject("bad-identifier", "reg_no: fails the 15-digit MOD 11,10 check")

    unusable: list[str] = []  # fields whose text is no number (a placeholder): never a key
    tax = _code("tax_no", rec.get("tax_no"))
    if tax is not None:
        if _tax_number(tax):
            ids["tax_no"] = tax
        else:
            unusable.append("tax_no")
            flags.append("tax-no-not-a-number")

    for key in ("institution_cert_no", "social_org_cert_no"):
        code = _code(key, rec.get(key))
        if code is not None:
            if _other_number(code):
                other.append(code)
            else:
                unusable.append(key)

    person = _code("person_id_no", rec.get("person_id_no"))
    if person is not None:
        id_type = _string("person_id_type", rec.get("person_id_type"), normalise_text)
        explicit = id_type is not None and _is_resident_type(id_type)
        if _is_resident_type(id_type) and len(person) == 18:
            if _valid_resident_id(person):
                ids["resident_id"] = person
            elif uscc is not None and not _names_a_person(rec):
                flags.append("person-id-check-failed")  # an organisation's record, named by its USCC
            else:
                raise _Reject("bad-identifier", "person_id_no: resident ID fails its check")
        elif _is_resident_type(id_type) and len(person) == 15 and person.isascii() and person.isdigit():
            # a first-generation card: the person's number is its 18-character form, whichever a
            # department sends (one subject, found by either: RULES.md 1, converting legacy identifiers)
            current = resident_id_of_legacy(person)
            if current is not None:
                ids["resident_id"] = current
                flags.append("resident-id-15-digit")
            elif uscc is not None and not _names_a_person(rec):
                flags.append("person-id-check-failed")
            else:
                raise _Reject("bad-identifier", "person_id_no: a 15-digit resident ID without a real birth date")
        elif explicit:
            raise _Reject("bad-identifier", f"person_id_no: not a resident ID ({len(person)} chars)")
        elif _other_number(person):
            other.append(person)
        else:
            unusable.append("person_id_no")

    if id_in_uscc is not None:
        if "resident_id" not in ids:
            ids["resident_id"] = id_in_uscc
        elif ids["resident_id"] != id_in_uscc:
            flags.append("resident-id-mismatch")  # the person_id_no column names the person

    raw_other = rec.get("other_ids")
    if raw_other:
        if isinstance(raw_other, (str, bytes)) or not isinstance(raw_other, (list, tuple)):
            raw_other = [raw_other]
        for value in raw_other:
            code = _code("other_ids", value)
            if code is not None:
                if _other_number(code):
                    other.append(code)
                elif "other_ids" not in unusable:
                    unusable.append("other_ids")
    if other:
        ids["other"] = sorted(set(other))
    if any(key != "tax_no" for key in unusable):
        flags.append("other-id-not-a-number")

    rep_name = _string("legal_rep_name", rec.get("legal_rep_name"), normalise_name)
    rep_id = _code("legal_rep_id_no", rec.get("legal_rep_id_no"))
    legal_rep = None
    if rep_name is not None or rep_id is not None:
        if rep_id is not None:
            rep_type = _string("legal_rep_id_type", rec.get("legal_rep_id_type"), normalise_text)
            if _is_resident_type(rep_type) and len(rep_id) == 18 and not _valid_resident_id(rep_id):
                flags.append("legal-rep-id-check-failed")
            elif _is_resident_type(rep_type) and len(rep_id) == 15 \
                    and (current := resident_id_of_legacy(rep_id)) is not None:
                rep_id = current  # a first-generation number: the person's file is under the 18-character one
                flags.append("legal-rep-id-15-digit")
        legal_rep = {"name": rep_name, "id_no": rep_id}

    if not ids:
        raise _Reject("no-identifier", "no USCC, organisation code, registration no., tax no., ID or other number"
                      + (f" ({', '.join(unusable)}: no number, a placeholder)" if unusable else ""))
    return ids, flags, legal_rep


TAX_NUMBER_LENGTHS: Final = range(15, 21)
"""A tax registration number (税务登记号) is 15 to 20 letters and digits: the division and organisation
code (15), the USCC (18), an ID number and two more (20; 17 for a first-generation one)."""

OTHER_NUMBER_DIGITS: Final = 4
"""The digits a certificate or other number has at least to name a subject."""


def _tax_number(code: str) -> bool:
    """Whether a ``tax_no`` (normalised: separators gone) can be one. Real exports fill the column with
    words and marks when there is none (``0``, ``未登记``, ``同统一社会信用代码``, ``见营业执照``): taken as
    a number, a record with a USCC taught the index that the placeholder was that company's, and
    every later record of another company that carried only the placeholder was attached to it, a
    court listing with its list (seen). Such a value is no key, never learned nor looked up."""
    return code.isascii() and len(code) in TAX_NUMBER_LENGTHS and sum(c.isdigit() for c in code) >= 6


def _other_number(code: str) -> bool:
    """Whether a certificate number or other identifier can name a subject: one with fewer than
    :data:`OTHER_NUMBER_DIGITS` digits (``0``, ``未登记``, ``无此项``) is a placeholder
    (:func:`_tax_number`)."""
    return sum("0" <= c <= "9" for c in code) >= OTHER_NUMBER_DIGITS


def _names_a_person(rec: Mapping[str, Any]) -> bool:
    """The record says its subject is a natural person (自然人), whose key is the ID number."""
    try:
        return _enum("subject_category", rec.get("subject_category"), _SUBJECT_CATEGORY) == "natural_person"
    except _Reject:
        return False  # rejected where the category is read


def _infer_category(ids: Doc) -> str:
    if "resident_id" in ids and not ({"uscc", "org_code", "reg_no"} & ids.keys()):
        return "natural_person"
    if ids.get("uscc", "").startswith("92"):
        return "individual_business"
    return "legal_entity"
