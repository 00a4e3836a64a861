"""A subject's live state (主体信用档案) and how one input changes it: dedupe, correction, revocation.

Pure and deterministic: ``apply_record(state, event)`` depends on nothing but its arguments, so the
subject-event log replayed from the start gives the same states and the same outcomes.

Identity of a decision (RULES.md section 2): source unit + document number + subject (the subject
is the state's own id; the record kind keeps a penalty and a licence with the same number apart).
* same identity, content identical to any version seen -> ``duplicate`` (dropped);
* same identity, changed content -> ``correction`` (a new version of the same record);
* ``revoked`` set -> ``revocation`` (the record is withdrawn, kept as history);
* a court's deletion (失信被执行人删除) withdraws the listing of the same case -> ``deletion``.

Redelivery: every event carries the id of the message it came from (its *origin*: topic,
partition, offset of the department message). An origin already applied to the record is
``redelivered`` and changes nothing, so at-least-once delivery never applies anything twice, and a
worker that re-sends old versions after a crash cannot flip a corrected record back.
"""

from __future__ import annotations

from typing import Any

from domain.validate import decision_key

SEEN_ORIGINS_KEPT = 32
NAMES_KEPT = 8

APPLIED = frozenset({"new", "correction", "revocation", "deletion", "registration"})


def new_state(subject_id: str, id_kind: str) -> dict[str, Any]:
    return {
        "id": subject_id,
        "id_kind": id_kind,
        "names": [],
        "ids": {},
        "category": None,
        "flags": [],
        "records": {},
        "updated_ms": 0,
        "version": 0,
    }


def apply_record(state: dict | None, event: dict) -> tuple[dict, str]:
    """Apply one subject event of type ``record``; returns the new state and the outcome.

    ``event``: ``{"origin": str, "subject": str, "id_kind": str, "record": canonical record,
    "hash": content hash, "event_ms": int}``. The state passed in is not modified.
    """
    if state is None:
        state = new_state(event["subject"], event.get("id_kind", "uscc"))
    record = event["record"]
    if record["kind"] == "registration":
        return apply_registration(state, record, event["event_ms"], event["origin"])
    key = decision_key(record)
    origin = event["origin"]
    current = state["records"].get(key)

    if current is not None and origin in current["seen"]:
        return state, "redelivered"

    kind = record["kind"]
    digest = event["hash"]
    if current is not None and digest in current["hashes"]:
        # Identical to a version already seen (a re-send, or a stale re-export of an old version,
        # a deletion included): it cannot flip a corrected record back.
        status, outcome = current["status"], "duplicate"
    elif kind == "court_deletion":
        outcome = "duplicate" if current is not None and current["status"] == "deleted" else "deletion"
        status = "deleted"
    elif record.get("revoked"):
        status, outcome = "revoked", "revocation"
    elif current is None:
        status, outcome = "active", "new"
    else:
        status, outcome = "active", "correction"

    state = _copy_for_write(state, key)
    seen = (current["seen"] if current else []) + [origin]
    if outcome == "duplicate":
        entry = dict(current)
        entry["seen"] = seen[-SEEN_ORIGINS_KEPT:]
        state["records"][key] = entry
        return state, outcome

    if kind == "court_deletion" and current is not None:
        entry = dict(current)
        entry["deletion"] = {
            "reason": record.get("fields", {}).get("deletion_reason"),
            "date": record.get("decision_date"),
            "doc_no": record.get("doc_no"),
        }
    else:
        entry = {
            "kind": kind,
            "action_kind": record.get("action_kind"),
            "doc_no": record.get("doc_no"),
            "source_unit": record.get("source_unit"),
            "source_unit_code": record.get("source_unit_code"),
            "decision_date": record.get("decision_date"),
            "severity": record.get("severity"),
            "domain": record.get("domain"),
            "content": record,
            "version": 0,
            "first_ms": event["event_ms"],
        }
        if current is not None:
            entry["version"] = current["version"]
            entry["first_ms"] = current["first_ms"]
    entry["status"] = status
    entry["hash"] = digest
    entry["hashes"] = ((current or {}).get("hashes", []) + [digest])[-SEEN_ORIGINS_KEPT:]
    entry["version"] = entry["version"] + 1
    entry["updated_ms"] = event["event_ms"]
    entry["seen"] = seen[-SEEN_ORIGINS_KEPT:]
    state["records"][key] = entry

    _merge_identity(state, record)
    state["updated_ms"] = max(state["updated_ms"], event["event_ms"])
    state["version"] += 1
    return state, outcome


def apply_registration(state: dict, record: dict, event_ms: int, origin: str) -> tuple[dict, str]:
    """A registration teaches names and identifiers only; a redelivered one (same origin) or one
    that teaches nothing new changes nothing."""
    seen = state.get("registrations_seen") or []
    if origin in seen:
        return state, "redelivered"
    updated = _copy_for_write(state, None)
    updated["registrations_seen"] = (seen + [origin])[-SEEN_ORIGINS_KEPT:]
    _merge_identity(updated, record)
    if (updated["names"], updated["ids"], updated["category"], updated["flags"]) == (
            state["names"], state["ids"], state["category"], state["flags"]):
        return updated, "duplicate"
    updated["updated_ms"] = max(state["updated_ms"], event_ms)
    updated["version"] += 1
    return updated, "registration"


def _copy_for_write(state: dict, key: str | None) -> dict:
    """A shallow copy whose parts this transition writes are copies too (callers keep the old)."""
    out = dict(state)
    out["records"] = dict(state["records"])
    out["names"] = list(state["names"])
    out["ids"] = {k: (list(v) if isinstance(v, list) else v) for k, v in state["ids"].items()}
    out["flags"] = list(state["flags"])
    return out


def _merge_identity(state: dict, record: dict) -> None:
    name = record.get("subject_name")
    if name and name not in state["names"]:
        state["names"].append(name)
        del state["names"][:-NAMES_KEPT]
    for kind, value in (record.get("ids") or {}).items():
        if kind == "other":
            others = state["ids"].setdefault("other", [])
            for v in value:
                if v not in others:
                    others.append(v)
        elif value:
            state["ids"][kind] = value
    if record.get("subject_category"):
        state["category"] = record["subject_category"]
    for flag in record.get("id_flags") or ():
        if flag not in state["flags"]:
            state["flags"].append(flag)


def active_records(state: dict) -> list[dict]:
    return [r for r in state["records"].values() if r["status"] == "active"]
