"""Builders of canonical records and subject events for the rules-core tests."""

from __future__ import annotations

import itertools

from domain import events as ev
from domain.clock import due_ms

ORG = "91310110666007217T"
PERSON = "11010519491231002X"
UNIT = "11410100005200036R"
_origins = itertools.count()


def record(kind, doc, date, *, severity=None, domain=None, category="legal_entity", simplified=False,
           revoked=False, action_kind=None, **fields):
    """A canonical record (domain.validate's format)."""
    if kind in ("penalty", "license"):
        action_kind = kind
    return {
        "kind": kind, "action_kind": action_kind, "source_unit": "某单位", "source_unit_code": UNIT,
        "doc_no": doc, "subject_name": "某公司", "subject_category": category,
        "ids": {"resident_id": PERSON} if category == "natural_person" else {"uscc": ORG},
        "id_flags": [], "decision_date": date, "severity": severity, "domain": domain, "revoked": revoked,
        "legal_rep": None, "simplified_procedure": simplified, "fields": fields, "event_id": None,
    }


def origin() -> str:
    return f"creditstream.penalty/0/{next(_origins)}"


def arrival(date: str, hour: int = 10) -> int:
    return due_ms(date) + hour * 3_600_000


def record_event(rec: dict, arrived: str, *, subject: str = ORG, at: str | None = None, ms: int | None = None):
    return ev.of_record(subject, "resident_id" if subject == PERSON else "uscc", at or origin(), rec,
                        ms if ms is not None else arrival(arrived))


def objection(oid, target_key, status, filed, resolved=None, *, arrived, outcome=None, pv=False, subject=ORG,
              at=None, target_unit=None):
    """``target_unit``: the (name, code) the office named the record's unit with (its audit record's
    ``target_source_unit``, ``target_source_unit_uscc``), which the subject's state learns."""
    return ev.ObjectionEvent(origin=at or origin(), subject=subject, event_ms=arrival(arrived), objection_id=oid,
                             record_key=target_key, status=status, filed=filed, resolved=resolved,
                             provider_verification=pv, outcome=outcome, record=_office_record(target_unit))


def repair(target_key, approved, *, arrived, granted=True, subject=ORG, at=None, doc_no=None, target_unit=None):
    return ev.RepairEvent(origin=at or origin(), subject=subject, event_ms=arrival(arrived), record_key=target_key,
                          decision_date=approved, approved=granted, doc_no=doc_no, record=_office_record(target_unit))


def _office_record(target_unit):
    if target_unit is None:
        return None
    name, code = target_unit
    return {"fields": {"target_source_unit": name, **({"target_source_unit_uscc": code} if code else {})}}


def tick(due: str, subject=ORG):
    return ev.tick(subject, due)


def token_file(tmp_path, public_token: str, personal_token: str, *, public_client: str = "publicity-site",
               personal_client: str = "joint-punishment") -> str:
    """An API token file (creditstream/access.py): the public token given by its SHA-256 digest, the
    personal one in clear (the two forms the file takes)."""
    import hashlib

    path = tmp_path / "tokens.toml"
    path.write_text(f"""
[[token]]
client = "{public_client}"
role = "public"
sha256 = "{hashlib.sha256(public_token.encode()).hexdigest()}"

[[token]]
client = "{personal_client}"
role = "personal"
token = "{personal_token}"
""", encoding="utf-8")
    return str(path)
