"""Department decisions (部门决定): penalties, licences, court listings and deletions, the other
publicised actions and registrations, validated and normalised into the canonical record. Pure."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from domain.fields import (
    _DATE_FIELD,
    _DOC_FIELD,
    _REQUIRED,
    _TOP_LEVEL,
    _boolean,
    _date,
    _domain,
    _enum,
    _generic,
    _Reject,
    _string,
    _unit_code,
    canonical_record,
    check_required,
)
from domain.identity import _identifiers, _infer_category
from domain.normalise import normalise_doc_no, normalise_name, normalise_text
from domain.types import Doc
from domain.vocabulary import (
    _ACTION_KIND,
    _DELETION_REASON_CODES,
    _DELETION_REASON_PHRASES,
    _LICENSE_CATEGORY,
    _LISTING_REASON_CODES,
    _LISTING_REASON_PHRASES,
    _RECORD_STATUS,
    _SEVERITY,
    _SUBJECT_CATEGORY,
)


def normalise_decision(kind: str, rec: Mapping[str, Any], latest: _dt.date) -> Doc:
    """The canonical record of a department decision (penalty, licence, court listing or deletion,
    the other actions, registration); raises ``_Reject``."""
    # 1. required fields, present and non-empty
    check_required(kind, rec)

    # 2. top-level values
    subject_name = _string("subject_name", rec.get("subject_name"), normalise_name)
    source_unit = _string("source_unit", rec.get("source_unit"), normalise_name)
    source_unit_code = _unit_code("source_unit_uscc", rec.get("source_unit_uscc"))
    doc_field = _DOC_FIELD[kind]
    doc_no = _string(doc_field, rec.get(doc_field), normalise_doc_no) if doc_field else None
    date_field = _DATE_FIELD[kind]
    decision_date = _date(date_field, rec.get(date_field), latest)
    # empty only once normalised (e.g. a document number made of separators)
    for key, normalised in (("subject_name", subject_name), ("source_unit", source_unit), (doc_field or "", doc_no)):
        if key in _REQUIRED[kind] and not normalised:
            raise _Reject("missing-field", f"{key} (empty)")

    category = _enum("subject_category", rec.get("subject_category"), _SUBJECT_CATEGORY)
    severity = _enum("severity", rec.get("severity"), _SEVERITY)
    status = _enum("record_status", rec.get("record_status"), _RECORD_STATUS) or "normal"
    domain = _domain(rec.get("domain"))
    if kind == "action":
        action_kind = _enum("action_kind", rec.get("action_kind"), _ACTION_KIND)
        if action_kind is None:
            raise _Reject("missing-field", "action_kind (empty)")
    elif kind in ("penalty", "license"):
        action_kind = kind
    else:
        action_kind = None
    simplified = _boolean("simplified_procedure", rec.get("simplified_procedure"))
    event_id = _string("event_id", rec.get("event_id"), normalise_text)

    # 3. every other field
    fields: Doc = {}
    for key, value in rec.items():
        if not isinstance(key, str) or key in _TOP_LEVEL or key == doc_field or key == date_field:
            continue
        if key == "license_category":
            value = _enum(key, value, _LICENSE_CATEGORY)
        elif key == "listing_reason":
            value = _enum(key, value, phrases=_LISTING_REASON_PHRASES, codes=_LISTING_REASON_CODES)
        elif key == "deletion_reason":
            value = _enum(key, value, phrases=_DELETION_REASON_PHRASES, codes=_DELETION_REASON_CODES)
        else:
            value = _generic(key, value, latest)
        if value is None or value == "" or value == []:
            continue
        fields[key] = value
    for key in ("listing_reason", "deletion_reason"):
        if key in _REQUIRED[kind] and key not in fields:
            raise _Reject("missing-field", f"{key} (empty)")

    # 4. identifiers
    ids, flags, legal_rep = _identifiers(rec, kind)
    if category is None:
        category = _infer_category(ids)

    return canonical_record(kind, action_kind=action_kind, source_unit=source_unit, source_unit_code=source_unit_code,
                            doc_no=doc_no, subject_name=subject_name, subject_category=category, ids=ids,
                            id_flags=flags, decision_date=decision_date, severity=severity, domain=domain,
                            revoked=status == "revoked", legal_rep=legal_rep, simplified_procedure=simplified,
                            fields=fields, event_id=event_id)
