"""List rules (RULES.md 3-5): blacklists, court debtors, escalation, red list, publicity, objections.

Pure and deterministic: plain dicts in and out, no I/O, no clock. The subject agent keeps the
subject state (``domain.subject``) and calls:

* ``apply_objection(state, event)`` / ``apply_repair(state, event, rules)``: fold an objection or a
  repair decision of the credit office into the state (like ``subject.apply_record``: the state
  passed in is not modified, redelivery and duplicates change nothing, never raises);
* ``evaluate(state, as_of, rules, cal)``: the subject's list situation on a date;
* ``list_changes(subject_id, before, after, effective)``: what changed between two evaluations.

State used (besides ``state["records"]``, see ``domain.subject``)::

    state["objections"] = {objection_id: {"record_key", "filed", "provider_verification", "status",
                           "resolved", "outcome", "record_hash", "seen"}}
    state["repairs"] = {record_key: {"approved", "doc_no", "seen"}}
    state["repair_refused"] = {record_key: {"approved", "doc_no", "reason", "earliest", "seen"}}

and on a record entry: ``revocation`` ({"reason": "objection", "objection_id", "date",
"prior_status"}) when an upheld objection revoked it, ``correction_pending`` ({"objection_id",
"date", "hash"}) while a record found wrong awaits the provider's correction (the correction, a
normal correction record, rebuilds the entry and so clears it).

Dates are ISO strings in the state and in the output; ``evaluate`` honours the dates it knows
(a listing that starts or ends, a repair or a removal decision dated after ``as_of`` is not in
force yet), so the answer only changes at the dates it collects into ``next_due``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import lru_cache
from typing import Any

from domain.calendar import WorkingCalendar, add_months, add_years
from domain.rulebook import Rulebook, default_rulebook
from domain.subject import new_state

__all__ = [
    "apply_objection",
    "apply_repair",
    "earliest_repair",
    "evaluate",
    "list_changes",
    "change_id",
    "TRANSITIONS",
]

SEEN_KEPT = 32
OBJECTION_STATUSES = ("filed", "upheld", "rejected")
OBJECTION_OUTCOMES = ("corrected", "revoked")
TRANSITIONS = (
    "entered",
    "exited",
    "suspended",
    "resumed",
    "escalated",
    "de-escalated",
    "red_list_entered",
    "red_list_exited",
    "publicity_expired",
    "repair_eligible",
    "objection_overdue",
)
# list kind -> (entry transition, exit transition)
_ENTER_EXIT = {
    "blacklist": ("entered", "exited"),
    "court_debtor": ("entered", "exited"),
    "escalated": ("escalated", "de-escalated"),
    "red_list": ("red_list_entered", "red_list_exited"),
}
_ONE_DAY = dt.timedelta(days=1)
_CST = dt.timezone(dt.timedelta(hours=8))


# -------------------------------------------------------------------------------------------- helpers


@lru_cache(maxsize=65536)
def _parse(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return _parse(value)


def _iso_or_none(value: Any) -> str | None:
    """A date (or ISO string) as "YYYY-MM-DD"; None for None; ValueError if not a date."""
    if value is None or value == "":
        return None
    return _date(value).isoformat()


def _attr(entry: dict, name: str) -> Any:
    value = entry.get(name)
    if value is None:
        value = (entry.get("content") or {}).get(name)
    return value


def _counts(entry: dict) -> bool:
    """The record is in force: active, and not found wrong pending the provider's correction."""
    if entry.get("status") != "active":
        return False
    pending = entry.get("correction_pending")
    return not (pending and pending.get("hash") == entry.get("hash"))


def _penalty_dates(entry: dict, rules: Rulebook) -> tuple[dt.date, dt.date] | None:
    """(repair_from, natural publicity end) of a penalty-like record (RULES.md 3)."""
    decided = _attr(entry, "decision_date")
    if not decided:
        return None
    d = _date(decided)
    domain = _attr(entry, "domain")
    low, high = rules.publicity_months(d, _attr(entry, "severity"), domain)
    end = min(add_months(d, high), add_years(d, rules.henan_max_disclosure_years))
    start = min(add_months(d, low), end)
    fields = (entry.get("content") or {}).get("fields")
    if rules.is_non_repairable(domain, fields):
        start = end
    return start, end


def earliest_repair(entry: dict | None, rules: Rulebook) -> tuple[dt.date | None, str | None]:
    """The earliest date a repair of this record can be approved, or (None, reason).

    penalty / adverse action: the publicity minimum (the publicity end when non-repairable);
    listing decision: listing date + the domain's early-removal months (none: not early);
    court listing: never (courts delete listings); a linked record by its content's kind."""
    if entry is None:
        return None, "unknown-record"
    if not _counts(entry):
        return None, "record-not-active"
    kind = entry.get("kind")
    content = entry.get("content") or {}
    if kind == "linked":
        kind = content.get("kind")
    fields = content.get("fields") or {}
    if kind == "penalty" or (kind == "action" and fields.get("adverse")):
        dates = _penalty_dates(entry, rules)
        return (dates[0], None) if dates else (None, "no-decision-date")
    if kind == "listing_decision":
        if fields.get("action") != "list":
            return None, "not-adverse"
        decided = _attr(entry, "decision_date")
        early = rules.listing_period(fields.get("list_domain"))[1]
        if not decided or early is None:
            return None, "no-early-removal"
        return add_months(_date(decided), early), None
    if kind == "court_listing":
        return None, "court-listing"
    return None, "not-adverse"


def change_id(subject_id: str, list_name: str, transition: str, effective_date: str, causes: list[str]) -> str:
    blob = "|".join((subject_id, list_name, transition, effective_date, ",".join(causes)))
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=16).hexdigest()


def _copy_for_write(state: dict, *parts: str) -> dict:
    out = dict(state)
    for part in parts:
        out[part] = dict(state.get(part) or {})
    return out


def _touch(state: dict, event: dict) -> None:
    event_ms = event.get("event_ms")
    if isinstance(event_ms, int) and not isinstance(event_ms, bool):
        state["updated_ms"] = max(state.get("updated_ms") or 0, event_ms)
    state["version"] = (state.get("version") or 0) + 1


def _with_origin(seen: list | None, origin: Any) -> list:
    seen = list(seen or ())
    if origin is not None:
        seen.append(origin)
    return seen[-SEEN_KEPT:]


def _ms_date(event_ms: Any) -> str | None:
    if not isinstance(event_ms, int) or isinstance(event_ms, bool):
        return None
    try:
        return dt.datetime.fromtimestamp(event_ms / 1000, _CST).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return None


# -------------------------------------------------------------------------------------------- objections


def apply_objection(state: dict | None, event: dict) -> tuple[dict, str]:
    """Fold an objection (异议) event into the state; returns (new state, outcome).

    ``event``: ``{"type": "objection", "objection_id": str, "record_key": str (decision key of the
    disputed record), "status": "filed" | "upheld" | "rejected", "filed": "YYYY-MM-DD",
    "resolved": "YYYY-MM-DD" | None, "provider_verification": bool, "outcome": "corrected" |
    "revoked" | None (when upheld; missing: corrected), "origin": str, "event_ms": int}``.
    Dates may also be ``datetime.date``. A resolution without a date takes the event's date
    (China Standard Time), else the filing date.

    Outcomes: ``objection-filed``, ``objection-rejected``, ``objection-revoked``,
    ``objection-corrected``; ``redelivered`` (origin already applied), ``duplicate`` (same
    content), ``stale`` (a "filed" after the resolution: ignored), ``invalid`` (unusable event:
    state unchanged). Upheld + revoked withdraws the record (status ``revoked``, reason
    objection); upheld + corrected takes it out of force until the provider's correction arrives.
    Re-resolving an objection undoes its earlier effect first."""
    parsed = _parse_objection(event)
    if parsed is None:
        return state, "invalid"
    if state is None:
        state = new_state(event.get("subject") or "", event.get("id_kind") or "uscc")
    oid, content = parsed
    origin = event.get("origin")
    objections = state.get("objections") or {}
    current = objections.get(oid)

    if current is not None:
        if origin is not None and origin in (current.get("seen") or ()):
            return state, "redelivered"
        same = all(current.get(k) == v for k, v in content.items())
        stale = current.get("status") != "filed" and content["status"] == "filed"
        if same or stale:
            out = _copy_for_write(state, "objections")
            kept = dict(current)
            kept["seen"] = _with_origin(current.get("seen"), origin)
            out["objections"][oid] = kept
            return out, "duplicate" if same else "stale"

    out = _copy_for_write(state, "objections", "records")
    records = out["records"]
    if current is not None:
        _undo_objection(records, current.get("record_key"), oid)

    key = content["record_key"]
    entry = records.get(key)
    record_hash = current.get("record_hash") if current is not None and current.get("record_key") == key else None
    if record_hash is None and entry is not None:
        record_hash = entry.get("hash")

    status = content["status"]
    if status == "upheld" and entry is not None:
        entry = dict(entry)
        if content["outcome"] == "revoked":
            if entry.get("status") != "revoked":
                entry["revocation"] = {
                    "reason": "objection",
                    "objection_id": oid,
                    "date": content["resolved"],
                    "prior_status": entry.get("status"),
                }
                entry["status"] = "revoked"
        elif entry.get("hash") == record_hash:
            entry["correction_pending"] = {"objection_id": oid, "date": content["resolved"], "hash": record_hash}
        records[key] = entry

    stored = dict(content)
    stored["record_hash"] = record_hash
    stored["seen"] = _with_origin(current.get("seen") if current else None, origin)
    out["objections"][oid] = stored
    _touch(out, event)
    if status == "upheld":
        return out, f"objection-{content['outcome']}"
    return out, f"objection-{status}"


def _undo_objection(records: dict, key: str | None, oid: str) -> None:
    entry = records.get(key) if key else None
    if entry is None:
        return
    revocation = entry.get("revocation")
    pending = entry.get("correction_pending")
    undo_revocation = bool(revocation) and revocation.get("objection_id") == oid
    undo_pending = bool(pending) and pending.get("objection_id") == oid
    if not (undo_revocation or undo_pending):
        return
    entry = dict(entry)
    if undo_revocation:
        entry["status"] = revocation.get("prior_status") or "active"
        del entry["revocation"]
    if undo_pending:
        del entry["correction_pending"]
    records[key] = entry


def _parse_objection(event: dict) -> tuple[str, dict] | None:
    try:
        oid = event.get("objection_id")
        key = event.get("record_key")
        status = event.get("status")
        if not isinstance(oid, str) or not oid or not isinstance(key, str) or not key:
            return None
        if status not in OBJECTION_STATUSES:
            return None
        resolved = _iso_or_none(event.get("resolved"))
        filed = _iso_or_none(event.get("filed")) or resolved
        if filed is None:
            return None
        outcome = event.get("outcome")
        if status == "filed":
            resolved, outcome = None, None
        else:
            resolved = resolved or _ms_date(event.get("event_ms")) or filed
            if resolved < filed:
                return None
            if status == "rejected":
                outcome = None
            elif outcome is None:
                outcome = "corrected"
            elif outcome not in OBJECTION_OUTCOMES:
                return None
    except (ValueError, TypeError, AttributeError):
        return None
    return oid, {
        "record_key": key,
        "status": status,
        "filed": filed,
        "resolved": resolved,
        "provider_verification": bool(event.get("provider_verification")),
        "outcome": outcome,
    }


# -------------------------------------------------------------------------------------------- repairs


def apply_repair(state: dict | None, event: dict, rules: Rulebook | None = None) -> tuple[dict, str]:
    """Fold a credit-repair decision (信用修复) into the state; returns (new state, outcome).

    ``event``: ``{"type": "repair", "record_key": str, "approved": "YYYY-MM-DD" (the approval
    date), "doc_no": str | None, "granted": bool (optional, default True: a decision that refuses
    the repair is recorded as refused), "origin": str, "event_ms": int}``. ``rules``: None -> the
    default rulebook.

    Outcomes: ``repair`` (applied), ``correction`` (a changed repair of the same record),
    ``repair-refused`` (not applied; ``state["repair_refused"][record_key]`` says why: unknown-record,
    record-not-active, court-listing, not-adverse, no-early-removal, not-granted, before-earliest
    with the earliest date), ``redelivered``, ``duplicate``, ``invalid`` (state unchanged).
    Never raises."""
    rules = rules or default_rulebook()
    if state is None:
        state = new_state(event.get("subject") or "", event.get("id_kind") or "uscc")
    try:
        key = event.get("record_key")
        approved = _iso_or_none(event.get("approved"))
    except (ValueError, TypeError, AttributeError):
        return state, "invalid"
    if not isinstance(key, str) or not key or approved is None:
        return state, "invalid"
    doc_no = event.get("doc_no")
    doc_no = doc_no if isinstance(doc_no, str) else None
    granted = event.get("granted", True) is not False
    origin = event.get("origin")

    current = (state.get("repairs") or {}).get(key)
    refused = (state.get("repair_refused") or {}).get(key)
    if origin is not None and any(origin in (r.get("seen") or ()) for r in (current, refused) if r):
        return state, "redelivered"
    if granted and current is not None and current.get("approved") == approved and current.get("doc_no") == doc_no:
        out = _copy_for_write(state, "repairs")
        out["repairs"][key] = dict(current, seen=_with_origin(current.get("seen"), origin))
        return out, "duplicate"

    # Judged again on every non-identical delivery: a repair refused because its record was not
    # known yet is applied when it is re-sent after the record.
    reason, earliest = None, None
    if not granted:
        reason = "not-granted"
    else:
        earliest, reason = earliest_repair((state.get("records") or {}).get(key), rules)
        if earliest is not None and _date(approved) < earliest:
            reason = "before-earliest"
    if reason is not None:
        refusal = {
            "approved": approved,
            "doc_no": doc_no,
            "reason": reason,
            "earliest": earliest.isoformat() if earliest else None,
        }
        out = _copy_for_write(state, "repair_refused")
        same = refused is not None and all(refused.get(k) == v for k, v in refusal.items())
        refusal["seen"] = _with_origin(refused.get("seen") if refused else None, origin)
        out["repair_refused"][key] = refusal
        if same:
            return out, "duplicate"
        _touch(out, event)
        return out, "repair-refused"

    out = _copy_for_write(state, "repairs")
    out["repairs"][key] = {
        "approved": approved,
        "doc_no": doc_no,
        "seen": _with_origin(current.get("seen") if current else None, origin),
    }
    _touch(out, event)
    return out, "correction" if current is not None else "repair"


# -------------------------------------------------------------------------------------------- evaluate


def evaluate(state: dict, as_of: dt.date | str, rules: Rulebook, cal: WorkingCalendar) -> dict:
    """The subject's list situation on ``as_of`` (a pure function of state and date).

    Returns ``{"lists": {name: {"list", "domain", "since", "until", "causes", "suspended"}},
    "publicity": {record_key: {"repair_from", "publicity_end", "repaired", "state"}},
    "overdue_objections": [objection ids], "objection_records": {overdue objection id: record key},
    "next_due": "YYYY-MM-DD" | None}``. List names: ``blacklist:<domain>``, ``court_debtor``,
    ``escalated``, ``red_list``. A membership is suspended while every record it rests on is
    disputed by a pending objection (RULES.md 5: measures based on the disputed information)."""
    as_of = _date(as_of)
    records = state.get("records") or {}
    repairs = state.get("repairs") or {}
    court_rule = rules.court_debtor
    due: set[dt.date] = set()

    candidates: list[list] = []  # [list kind, domain, since, until, record key]
    removals: dict[str, list[dt.date]] = {}
    publicity: dict[str, dict] = {}
    first: dt.date | None = None
    last_adverse: dt.date | None = None
    next_adverse: dt.date | None = None

    for key, entry in records.items():
        status = entry.get("status")
        if status == "revoked":
            continue
        decided = _attr(entry, "decision_date")
        if not decided:
            continue
        d = _date(decided)
        if first is None or d < first:
            first = d
        if d > as_of:
            due.add(d)
        in_force = _counts(entry)
        kind = entry.get("kind")
        content = entry.get("content") or {}
        fields = content.get("fields") or {}
        adverse = False

        if kind == "court_listing":
            deletion = entry.get("deletion") or {}
            if status == "deleted":
                adverse = deletion.get("reason") not in court_rule.wrongful_deletion_reasons
            elif in_force:
                adverse = True
                years = rules.court_period_years(fields)
                until = add_years(d, years) if years is not None else None
                candidates.append(["court_debtor", court_rule.domain, d, until, key])
        elif in_force:
            base = content.get("kind") if kind == "linked" else kind
            adverse = kind == "linked"
            if base == "listing_decision":
                list_domain = fields.get("list_domain")
                action = fields.get("action")
                if list_domain and action == "list":
                    adverse = True
                    years = fields.get("period_years")
                    if not isinstance(years, int) or isinstance(years, bool) or years <= 0:
                        years = rules.listing_period(list_domain)[0]
                    candidates.append(["blacklist", list_domain, d, add_years(d, years), key])
                elif list_domain and action == "remove":
                    removals.setdefault(list_domain, []).append(d)
            elif base != "court_listing":  # a linked court listing: not the person's own listing
                if base == "penalty":
                    adverse = adverse or _attr(entry, "severity") != "minor"
                    if kind == "penalty" and d <= as_of:
                        publicity[key] = _publicity(entry, repairs.get(key), as_of, rules, due)
                elif base == "action" and fields.get("adverse"):
                    adverse = True
                rule = rules.blacklist_rule_for(entry)
                if rule is not None:
                    candidates.append(["blacklist", rule.list_domain, d,
                                       add_years(d, rules.rule_period_years(rule)), key])
        if adverse:
            if d <= as_of:
                if last_adverse is None or d > last_adverse:
                    last_adverse = d
            elif next_adverse is None or d < next_adverse:
                next_adverse = d

    # exits: an approved repair of the basis (early removal where the domain has it), removals
    for cand in candidates:
        kind, domain, since, until, key = cand
        repair = repairs.get(key)
        if repair is not None and kind == "blacklist":
            earliest, _ = earliest_repair(records.get(key), rules)
            approved = _date(repair["approved"])
            if earliest is not None and approved >= earliest:
                early = rules.listing_period(domain)[1]
                leave = max(approved, add_months(since, early)) if early is not None else approved
                until = leave if until is None else min(until, leave)
        if kind == "blacklist":
            for removed in removals.get(domain, ()):
                if since <= removed and (until is None or removed < until):
                    until = removed
        cand[3] = until

    # disputed records and objection deadlines
    disputed: set[str] = set()
    overdue: list[str] = []
    objection_records: dict[str, str] = {}
    for oid, objection in (state.get("objections") or {}).items():
        filed = _date(objection["filed"])
        if filed > as_of:
            due.add(filed)
            continue
        resolved = objection.get("resolved")
        if objection.get("status") != "filed":
            if not resolved or _date(resolved) <= as_of:
                continue
            due.add(_date(resolved))
        disputed.add(objection["record_key"])
        deadline = cal.add_workdays(filed, rules.objection_workdays(bool(objection.get("provider_verification"))))
        if as_of > deadline:
            overdue.append(oid)
            objection_records[oid] = objection["record_key"]
        else:
            due.add(deadline + _ONE_DAY)

    # memberships
    lists: dict[str, dict] = {}
    last_list_end: dt.date | None = None
    for kind, domain, since, until, key in candidates:
        if until is not None and until <= since:
            continue  # removed before it began
        if since > as_of:
            due.add(since)
            continue
        if until is not None and until <= as_of:
            if last_list_end is None or until > last_list_end:
                last_list_end = until
            continue
        if until is not None:
            due.add(until)
        name = "court_debtor" if kind == "court_debtor" else f"blacklist:{domain}"
        m = lists.get(name)
        if m is None:
            lists[name] = {"list": kind, "domain": domain, "since": since, "until": until, "causes": [key]}
        else:
            m["since"] = min(m["since"], since)
            m["until"] = None if m["until"] is None or until is None else max(m["until"], until)
            m["causes"].append(key)
    by_domain: dict[str, list] = {}  # domain -> [since, until, suspended, causes]
    for m in lists.values():
        m["causes"].sort()
        m["suspended"] = all(c in disputed for c in m["causes"])
        slot = by_domain.get(m["domain"])
        if slot is None:
            by_domain[m["domain"]] = [m["since"], m["until"], m["suspended"], list(m["causes"])]
        else:
            slot[0] = min(slot[0], m["since"])
            slot[1] = None if slot[1] is None or m["until"] is None else max(slot[1], m["until"])
            slot[2] = slot[2] and m["suspended"]
            slot[3].extend(m["causes"])

    k = rules.escalation_min_domains
    escalated = None
    if len(by_domain) >= k:
        slots = list(by_domain.values())
        since = sorted(s[0] for s in slots)[k - 1]
        ends = sorted((s[1] for s in slots), key=lambda u: (u is None, u), reverse=True)
        causes = sorted({c for s in slots for c in s[3]})
        escalated = {"list": "escalated", "domain": None, "since": since, "until": ends[k - 1],
                     "causes": causes, "suspended": sum(1 for s in slots if not s[2]) < k}

    red = None
    if not lists and first is not None:
        if first > as_of:
            pass  # the first record's date is already due
        else:
            clean = rules.red_list_clean_years
            eligible = add_years(first, clean)
            if last_adverse is not None:
                eligible = max(eligible, add_years(last_adverse, clean))
            if last_list_end is not None:
                eligible = max(eligible, last_list_end)
            if eligible <= as_of:
                red = {"list": "red_list", "domain": None, "since": eligible, "until": next_adverse,
                       "causes": [], "suspended": False}
            else:
                due.add(eligible)

    out_lists = {}
    for name, m in lists.items():
        out_lists[name] = _membership(m)
    if escalated is not None:
        out_lists["escalated"] = _membership(escalated)
    if red is not None:
        out_lists["red_list"] = _membership(red)
    overdue.sort()
    future = [d for d in due if d > as_of]
    return {
        "lists": dict(sorted(out_lists.items())),
        "publicity": dict(sorted(publicity.items())),
        "overdue_objections": overdue,
        "objection_records": dict(sorted(objection_records.items())),
        "next_due": min(future).isoformat() if future else None,
    }


def _membership(m: dict) -> dict:
    return {
        "list": m["list"],
        "domain": m["domain"],
        "since": m["since"].isoformat(),
        "until": m["until"].isoformat() if m["until"] is not None else None,
        "causes": m["causes"],
        "suspended": m["suspended"],
    }


def _publicity(entry: dict, repair: dict | None, as_of: dt.date, rules: Rulebook, due: set) -> dict:
    start, end = _penalty_dates(entry, rules)  # decision date checked by the caller
    repaired = False
    if repair is not None:
        approved = _date(repair["approved"])
        if approved >= start:
            repaired = approved <= as_of
            end = min(end, approved)
            if approved > as_of:
                due.add(approved)
    if start > as_of:
        due.add(start)
    if end > as_of:
        due.add(end)
    if as_of >= end:
        state = "ended"
    elif as_of >= start:
        state = "repair_eligible"
    else:
        state = "published"
    return {"repair_from": start.isoformat(), "publicity_end": end.isoformat(), "repaired": repaired, "state": state}


# -------------------------------------------------------------------------------------------- changes


def list_changes(subject_id: str, before: dict | None, after: dict | None, effective: dt.date | str) -> list[dict]:
    """The list changes between two evaluations, sorted by list name then transition.

    Each change: ``{"change_id", "subject", "list", "kind", "domain", "transition",
    "effective_date", "causes"}``. Entries take effect on the membership's ``since``; an exit
    at or after its known ``until`` is time-based and takes effect on ``until``; anything else on
    ``effective`` (the date of the input that caused it). Publicity changes use the list name
    ``publicity:<record key>`` (kind publicity), overdue objections ``objection:<id>`` (kind
    objection). ``change_id`` hashes subject, list, transition, effective date and causes, so a
    replay gives the same ids."""
    effective = _date(effective).isoformat()
    before = before or {}
    after = after or {}
    changes: list[dict] = []

    def add(name: str, kind: str, domain: str | None, transition: str, when: str, causes: list[str]) -> None:
        changes.append({
            "change_id": change_id(subject_id, name, transition, when, causes),
            "subject": subject_id,
            "list": name,
            "kind": kind,
            "domain": domain,
            "transition": transition,
            "effective_date": when,
            "causes": list(causes),
        })

    b_lists = before.get("lists") or {}
    a_lists = after.get("lists") or {}
    for name in sorted(set(b_lists) | set(a_lists)):
        b, a = b_lists.get(name), a_lists.get(name)
        kind = (a or b)["list"]
        enter, leave = _ENTER_EXIT.get(kind, ("entered", "exited"))
        restarted = b is not None and a is not None and b["until"] is not None and b["until"] <= a["since"]
        if b is not None and (a is None or restarted):
            until = b["until"]
            add(name, kind, b["domain"], leave, until if until is not None and until <= effective else effective,
                b["causes"])
        if a is not None and (b is None or restarted):
            add(name, kind, a["domain"], enter, a["since"], a["causes"])
        elif a is not None and b is not None and a["suspended"] != b["suspended"]:
            add(name, kind, a["domain"], "suspended" if a["suspended"] else "resumed", effective, a["causes"])

    b_pub = before.get("publicity") or {}
    for key, a in (after.get("publicity") or {}).items():
        b = b_pub.get(key)
        if b is None or a["state"] == b["state"]:
            continue
        if a["state"] == "ended":
            add(f"publicity:{key}", "publicity", None, "publicity_expired", a["publicity_end"], [key])
        elif a["state"] == "repair_eligible" and b["state"] == "published":
            add(f"publicity:{key}", "publicity", None, "repair_eligible", a["repair_from"], [key])

    was_overdue = set(before.get("overdue_objections") or ())
    records_of = after.get("objection_records") or {}
    for oid in after.get("overdue_objections") or ():
        if oid not in was_overdue:
            key = records_of.get(oid)
            add(f"objection:{oid}", "objection", None, "objection_overdue", effective, [key] if key else [])

    changes.sort(key=lambda c: (c["list"], c["transition"]))
    return changes
