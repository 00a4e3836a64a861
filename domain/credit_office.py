"""The credit office's inputs (信用中心): objections (异议), repair decisions (信用修复), listing
decisions and joint-punishment feedback (联合惩戒反馈), validated and normalised into the canonical
record (with the additions domain/validate.py describes). Pure."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any, Final

from domain import identifiers as _ids
from domain.fields import (
    _DATE_FIELD,
    _DOC_FIELD,
    _UNIT_FIELDS,
    _boolean,
    _code,
    _count,
    _date,
    _domain,
    _enum,
    _generic,
    _Reject,
    _string,
    _unit_code,
    canonical_record,
    check_required,
    decision_key,
)
from domain.identity import _identifiers, _infer_category
from domain.normalise import normalise_doc_no, normalise_name, normalise_text
from domain.types import Doc
from domain.vocabulary import (
    _ACTION_KIND,
    _LIST_ACTION,
    _LIST_DOMAINS,
    _OBJECTION_OUTCOME,
    _OBJECTION_STATUS,
    _SUBJECT_CATEGORY,
    _TARGET_KIND,
)

CREDIT_OFFICE_KINDS: Final = frozenset(("objection", "repair", "listing_decision", "feedback"))
# The subject block: lifted to subject_name / subject_category / ids / legal_rep.
_SUBJECT_BLOCK: Final = frozenset(
    "subject_name subject_category uscc reg_no org_code tax_no institution_cert_no social_org_cert_no "
    "person_id_no other_ids legal_rep_name legal_rep_id_no".split()
)
# Lifted to the top level per kind (besides the unit, the document/id field and the date field).
_LIFTED: Final = {
    "objection": frozenset(("status", "outcome", "provider_verification", "resolved_date")),
    "repair": frozenset(("approved",)),
    "listing_decision": frozenset(),
    "feedback": frozenset(("change_id", "subject_id")),
}


def _target_kind(value: Any) -> tuple[str, str | None] | None:
    """(record kind, action kind) of the record an objection or repair names: ``penalty``,
    ``license``, ``court_listing``, ``listing_decision`` (or their Chinese names), or an action
    record as ``action:<action_kind>`` / its Chinese name (``行政检查``). A bare ``action`` does not
    say which action record, so it cannot name one: unknown-enum."""
    text = _string("target_kind", value, normalise_text)
    if text is None:
        return None
    compact = text.replace(" ", "")
    code = compact.lower().replace("-", "_")
    hit = _TARGET_KIND.get(compact) or _TARGET_KIND.get(code)
    if hit is not None:
        return hit, None
    sub = compact[len("action:"):] if code.startswith("action:") else compact
    action_kind = _ACTION_KIND.get(sub) or _ACTION_KIND.get(sub.lower())
    if action_kind is None and sub.startswith("行政"):
        action_kind = _ACTION_KIND.get(sub[2:])
    if action_kind is not None:
        return "action", action_kind
    if code in ("action", "action:"):
        raise _Reject("unknown-enum",
                      "target_kind: 'action' without its action kind (e.g. action:inspection, 行政检查)")
    raise _Reject("unknown-enum", f"target_kind: {text[:60]!r}")


def target_key(kind: str, action_kind: str | None, unit: str | None, unit_code: str | None, doc_no: str | None) -> str:
    """The decision_key of the record with these (already normalised) parts."""
    return decision_key(
        {"kind": kind, "action_kind": action_kind, "source_unit": unit, "source_unit_code": unit_code, "doc_no": doc_no}
    )


def _target(rec: Mapping[str, Any]) -> tuple[str, Doc]:
    """The target's decision key, and its normalised parts for "fields". The unit code and the
    document number get exactly the normalisation the target record's own get."""
    parsed = _target_kind(rec.get("target_kind"))
    unit = _string("target_source_unit", rec.get("target_source_unit"), normalise_name)
    unit_code = _unit_code("target_source_unit_uscc", rec.get("target_source_unit_uscc"))
    doc_no = _string("target_doc_no", rec.get("target_doc_no"), normalise_doc_no)
    for key, value in (("target_kind", parsed), ("target_source_unit", unit), ("target_doc_no", doc_no)):
        if not value:
            raise _Reject("missing-field", f"{key} (empty)")
    assert parsed is not None  # checked just above
    kind, action_kind = parsed
    parts = {
        "target_kind": f"action:{action_kind}" if action_kind else kind,
        "target_source_unit": unit,
        "target_source_unit_uscc": unit_code,
        "target_doc_no": doc_no,
    }
    return target_key(kind, action_kind, unit, unit_code, doc_no), parts


def _subject_of_feedback(rec: Mapping[str, Any]) -> tuple[str, Doc, list[str], str | None]:
    """The subject id of a feedback (a USCC, or a resident ID for a natural person)."""
    subject_id = _code("subject_id", rec.get("subject_id"))
    if subject_id is None:
        raise _Reject("missing-field", "subject_id (empty)")
    id_kind, check_ok = _ids.classify(subject_id)
    if id_kind == _ids.IdKind.RESIDENT_ID:
        return subject_id, {"resident_id": subject_id}, [], "natural_person"
    if id_kind == _ids.IdKind.USCC:
        return subject_id, {"uscc": subject_id}, ([] if check_ok else ["uscc-check-failed"]), None
    if len(subject_id) == 15 and subject_id.isascii() and subject_id.isdigit():
        # a first-generation ID card keys a natural person's state (domain/attach.py)
        return subject_id, {"resident_id": subject_id}, ["resident-id-15-digit"], "natural_person"
    raise _Reject("bad-identifier", f"subject_id: neither a USCC nor a resident ID ({len(subject_id)} chars)")


def normalise_credit_office(kind: str, rec: Mapping[str, Any], latest: _dt.date) -> Doc:
    """The canonical record of a credit-office input; raises ``_Reject``."""
    # 1. required fields, present and non-empty
    check_required(kind, rec)

    # 2. the reporting unit, the record's own id or document number, its date
    unit_field, unit_code_field = _UNIT_FIELDS[kind]
    source_unit = _string(unit_field, rec.get(unit_field), normalise_name)
    source_unit_code = _unit_code(unit_code_field, rec.get(unit_code_field))
    doc_field = _DOC_FIELD[kind] or ""  # every credit-office kind names its own id field
    doc_no = _string(doc_field, rec.get(doc_field), normalise_doc_no)
    date_field = _DATE_FIELD[kind]
    decision_date = _date(date_field, rec.get(date_field), latest)
    for key, value in ((unit_field, source_unit), (doc_field, doc_no), (date_field, decision_date)):
        if not value:
            raise _Reject("missing-field", f"{key} (empty)")
    assert decision_date is not None  # checked just above
    event_id = _string("event_id", rec.get("event_id"), normalise_text)

    extra: Doc = {}
    fields: Doc = {}
    domain = None
    skip = {unit_field, unit_code_field, doc_field, date_field, "event_id"} | _LIFTED[kind]

    # 3. the kind's own values
    if kind in ("objection", "repair"):
        key, parts = _target(rec)
        fields.update({k: v for k, v in parts.items() if v is not None})
        skip |= parts.keys()
    if kind == "objection":
        status = _enum("status", rec.get("status"), _OBJECTION_STATUS)
        if status is None:
            raise _Reject("missing-field", "status (empty)")
        resolved = _date("resolved_date", rec.get("resolved_date"), latest)
        if resolved is not None and resolved < decision_date:
            raise _Reject("bad-date", f"resolved_date: {resolved} is before filed_date {decision_date}")
        extra = {
            "objection_id": doc_no,
            "status": status,
            "filed": decision_date,
            "resolved": resolved,
            "provider_verification": _boolean("provider_verification", rec.get("provider_verification")),
            "outcome": _enum("outcome", rec.get("outcome"), _OBJECTION_OUTCOME),
            "target_key": key,
        }
    elif kind == "repair":
        approved = rec.get("approved")
        extra = {"repair_id": doc_no, "approved": _boolean("approved", approved), "target_key": key}
    elif kind == "listing_decision":
        domain = _domain(rec.get("list_domain"))
        if domain in ("其他", "其它"):
            domain = "other"
        if domain not in _LIST_DOMAINS:
            raise _Reject("unknown-enum", f"list_domain: {(domain or '')[:60]!r}")
        action = _enum("action", rec.get("action"), _LIST_ACTION)
        if action is None:
            raise _Reject("missing-field", "action (empty)")
        fields["list_domain"] = domain
        fields["action"] = action
        period = rec.get("period_years")
        if period is not None and not (isinstance(period, str) and not period.strip()):
            years = _count("period_years", period)
            if years == 0:
                raise _Reject("bad-number", "period_years: 0 (leave it empty for the domain's default period)")
            fields["period_years"] = years
        skip |= {"list_domain", "action", "period_years"}
    elif kind == "feedback":
        change_id = _string("change_id", rec.get("change_id"), normalise_text)
        if not change_id:
            raise _Reject("missing-field", "change_id (empty)")
        measure_date = decision_date
        extra = {"feedback_id": doc_no, "change_id": change_id}
        fields["measure_date"] = measure_date

    # 4. the subject
    if kind == "feedback":
        subject_id, ids, flags, category = _subject_of_feedback(rec)
        extra["subject_id"] = subject_id
        subject_name, legal_rep = None, None
    else:
        subject_name = _string("subject_name", rec.get("subject_name"), normalise_name)
        if not subject_name:
            raise _Reject("missing-field", "subject_name (empty)")
        category = _enum("subject_category", rec.get("subject_category"), _SUBJECT_CATEGORY)
        skip |= _SUBJECT_BLOCK

    # 5. every other field
    for key, given in rec.items():
        if not isinstance(key, str) or key in skip:
            continue
        value_ = _generic(key, given, latest)
        if value_ is None or value_ == "" or value_ == []:
            continue
        fields[key] = value_
    if kind == "feedback" and not fields.get("measure"):
        raise _Reject("missing-field", "measure (empty)")

    if kind != "feedback":
        ids, flags, legal_rep = _identifiers(rec, kind)
        if category is None:
            category = _infer_category(ids)

    return canonical_record(kind, source_unit=source_unit, source_unit_code=source_unit_code, doc_no=doc_no,
                            subject_name=subject_name, subject_category=category, ids=ids, id_flags=flags,
                            decision_date=decision_date, domain=domain, legal_rep=legal_rep, fields=fields,
                            event_id=event_id, extra=extra)
