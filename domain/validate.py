"""Validate a decoded department event and turn it into the canonical, normalised record.

Pure: no Kafka, Redis or asyncio. ``normalise_event`` takes the Avro record (as fastavro decodes it,
or as ``streams.codec.from_json`` builds it; ints for dates and numeric strings are tolerated too)
and returns either the canonical record, a JSON-serialisable dict::

    {"kind": "penalty" | "license" | "court_listing" | "court_deletion" | "action" | "registration"
             | "objection" | "repair" | "listing_decision" | "feedback",
     "action_kind": "penalty" | "license" | "enforcement" | ... | "inspection" | None,
     "source_unit": str | None, "source_unit_code": str | None,
     "doc_no": str | None,                     # decision_doc_no / license_doc_no / case_no
     "subject_name": str,
     "subject_category": "legal_entity" | "natural_person" | "individual_business",
     "ids": {"uscc", "org_code", "reg_no", "tax_no", "resident_id": str, "other": [str]},  # only present ones
     "id_flags": [str],  # uscc-check-failed, org-code-mismatch, resident-id-15-digit, legal-rep-id-check-failed;
                         # beside a USCC, a number failing its check is left out of ids and flagged:
                         # org-code-check-failed, reg-no-check-failed, person-id-check-failed;
                         # resident-id-in-uscc-field: a person's ID number sent as the USCC
                         # (it names the person; resident-id-mismatch if person_id_no differs).
                         # A code of one repeated character (000000000000000000) is no code.
     "decision_date": "YYYY-MM-DD" | None,     # decision / listing / deletion / registration date
     "severity": "minor" | "general" | "severe" | None,
     "domain": str | None,
     "revoked": bool,
     "legal_rep": {"name": str | None, "id_no": str | None} | None,
     "simplified_procedure": bool,
     "fields": {...every other non-empty field, normalised; dates ISO, decimals "0.000000"...},
     "event_id": str | None}                   # the producer's id: not content (see content_hash)

The credit office's inputs (信用中心: objections, repairs, listing decisions, joint-punishment
feedback) give the same shape, with these differences and additions::

    objection:  source_unit(_code) = handling unit; doc_no = objection_id; decision_date = filed;
                "objection_id": str, "status": "filed" | "upheld" | "rejected",
                "filed": "YYYY-MM-DD", "resolved": "YYYY-MM-DD" | None,
                "provider_verification": bool, "outcome": "corrected" | "revoked" | None,
                "target_key": str        # decision_key of the disputed record (see target_key)
    repair:     source_unit(_code) = deciding unit; doc_no = repair_id;
                "repair_id": str, "approved": bool, "target_key": str
    listing_decision: doc_no, decision_date, domain = list_domain,
                fields {"list_domain", "action": "list" | "remove", "period_years": int (if given), ...}
    feedback:   no subject block: subject_name None, ids {"uscc" | "resident_id": subject_id};
                source_unit(_code) = implementing unit; doc_no = feedback_id;
                decision_date = measure_date; "feedback_id", "change_id", "subject_id": str;
                fields {"measure", "measure_date", ...}

Objection and repair ``fields`` keep the target as given (target_kind normalised, unit, code and
document number normalised like the target record's own).

or a ``Rejection(reason, detail)``. RULES.md section 1: a USCC that is well shaped but fails its
check character (real early-pilot codes do) is kept and flagged, never rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from domain.credit_office import (
    CREDIT_OFFICE_KINDS,
    normalise_credit_office,
    target_key,  # re-exported
)
from domain.department import normalise_decision
from domain.digest import hex16
from domain.fields import (
    _KIND_BY_SHORT,
    NAME_LIMIT,  # re-exported
    REASONS,  # re-exported
    TEXT_LIMIT,  # re-exported
    Rejection,
    _latest_date,
    _Reject,
    decision_key,  # re-exported
)
from domain.kinds import KIND_OF_SCHEMA  # the catalogue of event kinds
from domain.types import Doc

__all__ = [
    "Rejection",
    "REASONS",
    "KIND_OF_SCHEMA",
    "normalise_event",
    "content_hash",
    "decision_key",
    "target_key",
    "NAME_LIMIT",
    "TEXT_LIMIT",
]


def _kind_of(schema_name: str) -> str:
    kind = KIND_OF_SCHEMA.get(schema_name) or _KIND_BY_SHORT.get(schema_name)
    if kind is None:
        raise ValueError(f"not a department event schema: {schema_name!r}")
    return kind


def normalise_event(schema_name: str, rec: Any, *, event_time_ms: int) -> Doc | Rejection:
    """The canonical record of a decoded event, or the reason it is rejected.

    ``schema_name``: full (``creditstream.AdministrativePenalty``) or short name; an unknown name
    is a programming error (ValueError). ``event_time_ms``: when the event arrived (Kafka
    timestamp); event dates after its China date (domain/clock.py tolerance) are ``future-date``.
    """
    kind = _kind_of(schema_name)
    if not isinstance(rec, Mapping):
        return Rejection("missing-field", f"record is a {type(rec).__name__}, not a mapping")
    try:
        if kind in CREDIT_OFFICE_KINDS:
            return normalise_credit_office(kind, rec, _latest_date(event_time_ms))
        return normalise_decision(kind, rec, _latest_date(event_time_ms))
    except _Reject as r:
        return r.rejection


# --------------------------------------------------------------------------------------------
# identity and content

# The keys that make up a record's content. Not event_id (a re-send carries a new one), and not
# anything a later step adds to the record.
CONTENT_KEYS: Final = (
    "kind",
    "action_kind",
    "source_unit",
    "source_unit_code",
    "doc_no",
    "subject_name",
    "subject_category",
    "ids",
    "id_flags",
    "decision_date",
    "severity",
    "domain",
    "revoked",
    "legal_rep",
    "simplified_procedure",
    "fields",
)


# What the credit office's inputs carry beside CONTENT_KEYS (content too: an objection going from
# filed to upheld is a new version, not a duplicate). Only the record's own kind's keys count, so
# the hash of the other kinds is what it always was, and keys a later step adds never count.
KIND_CONTENT_KEYS: Final = {
    "objection": ("objection_id", "status", "filed", "resolved", "provider_verification", "outcome", "target_key"),
    "repair": ("repair_id", "approved", "target_key"),
    "feedback": ("feedback_id", "change_id", "subject_id"),
}


def content_hash(record: Doc) -> str:
    """Stable hash of a canonical record's content (32 hex chars): equal for a re-send with the
    same content, different for a correction. The producer's event_id is not content."""
    content = {key: record.get(key) for key in CONTENT_KEYS}
    kind = record.get("kind")
    kind_keys = KIND_CONTENT_KEYS.get(kind) if isinstance(kind, str) else None
    for key in kind_keys or ():
        content[key] = record.get(key)
    try:
        blob = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not a canonical record (e.g. a huge int from elsewhere): fall back
        import json

        blob = json.dumps(content, sort_keys=True, ensure_ascii=True, default=str).encode()
    return hex16(blob)
