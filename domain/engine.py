"""One step of a subject's log: an input in, the new state and what it causes out.

``step(state, event, rules, cal)`` is the whole of the subject agent's logic, pure and
deterministic, so the agent, a replay and the reliability suite's oracle all compute the same
states and the same list changes from the same subject-event log:

1. fold the input into the state (``domain.subject`` for records and registrations,
   ``domain.lists`` for objections and repair decisions; a ``tick`` only moves time);
2. move the subject's clock to the input's event date (never backwards: ``as_of``);
3. evaluate the lists on that date and diff with the previous evaluation: the list changes;
4. derive follow-ups: a severe record of an organisation is linked onto the personal record of
   its legal representative (a ``linked`` event for that person's log), and the timeliness of a
   new decision against the 7-working-day publication rule.

Event types on the subject-event log: ``record`` (a canonical record, see domain/validate.py),
``objection``, ``repair``, ``feedback``, ``linked``, ``tick`` (a due instant passed; written by the
timer agent).

Joint punishment runs trigger - push - feedback (RULES.md 4): every list change that starts a
measure (entered, escalated) waits for the implementing units' feedback; ``awaiting_feedback``
holds them (change id -> effective date) until a feedback names the change id.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from domain.calendar import WorkingCalendar
from domain.identifiers import is_valid_resident_id
from domain.lists import apply_objection, apply_repair, evaluate, list_changes
from domain.rulebook import Rulebook
from domain.subject import apply_record, new_state
from domain.validate import content_hash, decision_key

CHINA = dt.timezone(dt.timedelta(hours=8))
PUBLICATION_WORKDAYS = 7  # 双公示: published within 7 working days of the decision date
TIMELINESS_KINDS = frozenset({"penalty", "license"})
NO_CHANGE = frozenset({"redelivered", "duplicate", "stale", "invalid", "stale-tick"})


class Step(NamedTuple):
    state: dict
    outcome: str
    changes: list[dict]
    links: list[dict]  # linked events for other subjects' logs
    timeliness: tuple[str, int] | None  # (source unit, working days from decision to arrival)


def event_date(event_ms: int) -> str:
    return dt.datetime.fromtimestamp(event_ms / 1000, CHINA).date().isoformat()


def step(state: dict | None, event: dict, rules: Rulebook, cal: WorkingCalendar) -> Step:
    kind = event.get("type", "record")
    if state is None:
        state = new_state(event["subject"], event.get("id_kind") or "uscc")
    if kind == "record":
        new, outcome = apply_record(state, event)
    elif kind == "linked":
        new, outcome = apply_linked(state, event)
    elif kind == "objection":
        new, outcome = apply_objection(state, event)
    elif kind == "repair":
        new, outcome = apply_repair(state, _repair_event(event), rules)
    elif kind == "feedback":
        new, outcome = apply_feedback(state, event)
        return Step(new, outcome, [], [], None)
    elif kind == "tick":
        new, outcome = state, ("tick" if event["due"] > (state.get("as_of") or "") else "stale-tick")
    else:
        return Step(state, "invalid", [], [], None)

    if outcome in NO_CHANGE:
        return Step(new, outcome, [], [], None)

    when = event["due"] if kind == "tick" else event_date(event["event_ms"])
    as_of = max(when, new.get("as_of") or when)
    before = new.get("evaluation")
    after = evaluate(new, as_of, rules, cal)
    # input-caused changes take effect on the input's own date; time-based ones on their due date
    changes = list_changes(new["id"], before, after, when)
    if new is state:
        new = dict(state)
    new["evaluation"] = after
    new["as_of"] = as_of
    for change in changes:
        change["event_ms"] = event["event_ms"]
        change["rules_version"] = rules.version
        if change["transition"] in FEEDBACK_TRANSITIONS and change["kind"] in FEEDBACK_KINDS:
            awaiting = dict(new.get("awaiting_feedback") or {})
            if change["change_id"] not in (new.get("feedback") or {}):
                awaiting[change["change_id"]] = change["effective_date"]
            new["awaiting_feedback"] = awaiting

    links = _links(new, event, outcome) if kind == "record" else []
    timeliness = None
    if kind == "record" and outcome == "new" and event["record"]["kind"] in TIMELINESS_KINDS:
        record = event["record"]
        decided = dt.date.fromisoformat(record["decision_date"])
        arrived = dt.date.fromisoformat(event_date(event["event_ms"]))
        timeliness = (record.get("source_unit") or "?", cal.workdays_between(decided, arrived))
    return Step(new, outcome, changes, links, timeliness)


FEEDBACK_KINDS = frozenset({"blacklist", "court_debtor", "escalated"})
FEEDBACK_TRANSITIONS = frozenset({"entered", "escalated"})
FEEDBACK_KEPT = 200


def apply_feedback(state: dict, event: dict) -> tuple[dict, str]:
    """An implementing unit's feedback on a list change: what measure it took, and when.

    ``event``: ``{"type": "feedback", "change_id", "feedback_id", "unit", "measure", "measure_date",
    "origin", "event_ms"}``. Recorded under ``state["feedback"][change_id]`` (one entry per unit);
    the change stops awaiting feedback."""
    feedback = state.get("feedback") or {}
    cid = event["change_id"]
    entries = feedback.get(cid) or []
    if any(event["origin"] in e.get("seen", ()) for e in entries):
        return state, "redelivered"
    entry = {"feedback_id": event.get("feedback_id"), "unit": event.get("unit"), "measure": event.get("measure"),
             "measure_date": event.get("measure_date"), "seen": [event["origin"]]}
    same = next((e for e in entries if {k: v for k, v in e.items() if k != "seen"}
                 == {k: v for k, v in entry.items() if k != "seen"}), None)
    new = dict(state)
    new["feedback"] = dict(feedback)
    if same is not None:
        same = dict(same, seen=(same["seen"] + [event["origin"]])[-8:])
        new["feedback"][cid] = [same if e is not None and e.get("feedback_id") == same.get("feedback_id") else e
                                for e in entries]
        return new, "duplicate"
    new["feedback"][cid] = (entries + [entry])[-FEEDBACK_KEPT:]
    awaiting = dict(state.get("awaiting_feedback") or {})
    awaiting.pop(cid, None)
    new["awaiting_feedback"] = awaiting
    return new, "feedback"


def overdue_feedback(state: dict, today: str, workdays: int, cal: WorkingCalendar) -> list[tuple[str, str]]:
    """(change id, effective date) of the changes still without feedback ``workdays`` working days
    after they took effect."""
    today_d = dt.date.fromisoformat(today)
    return sorted((cid, eff) for cid, eff in (state.get("awaiting_feedback") or {}).items()
                  if cal.workdays_between(dt.date.fromisoformat(eff), today_d) > workdays)


def is_late(workdays: int) -> bool:
    return workdays > PUBLICATION_WORKDAYS


def _repair_event(event: dict) -> dict:
    """The subject-event of a repair decision in the shape domain.lists.apply_repair takes."""
    out = dict(event)
    out["approved"] = event.get("decision_date")
    out["granted"] = bool(event.get("approved", True))
    return out


def apply_linked(state: dict, event: dict) -> tuple[dict, str]:
    """A severe record of an organisation, linked onto its legal representative's personal record.

    The entry has kind ``linked``, its content is the organisation's record and ``via`` names the
    organisation; the person's names and identifiers are not touched by the organisation's."""
    org_record = event["record"]
    person = {
        "kind": "linked",
        "source_unit": org_record.get("source_unit"),
        "source_unit_code": org_record.get("source_unit_code"),
        "doc_no": org_record.get("doc_no"),
        "decision_date": org_record.get("decision_date"),
        "severity": org_record.get("severity"),
        "domain": org_record.get("domain"),
        "revoked": org_record.get("revoked", False),
        "subject_name": event.get("person_name"),
        "subject_category": "natural_person",
        "ids": {"resident_id": event["subject"]},
    }
    new, outcome = apply_record(state, dict(event, record=person))
    if outcome not in NO_CHANGE:
        key = decision_key(person)
        entry = dict(new["records"][key])
        entry["content"] = org_record
        entry["via"] = event["via"]
        new["records"][key] = entry
    return new, outcome


def _links(state: dict, event: dict, outcome: str) -> list[dict]:
    """Linked events for the legal representative of an organisation whose severe record changed."""
    record = event["record"]
    if state.get("id_kind") != "uscc" or record.get("kind") == "registration":
        return []
    rep = record.get("legal_rep") or {}
    rep_id = rep.get("id_no")
    if not rep_id or not is_valid_resident_id(rep_id):
        return []
    if record.get("severity") != "severe" and record.get("kind") != "court_listing":
        return []
    return [{
        "type": "linked",
        "origin": f"link:{state['id']}:{event['origin']}",
        "subject": rep_id,
        "id_kind": "resident_id",
        "person_name": rep.get("name"),
        "via": state["id"],
        "record": record,
        "hash": content_hash(record),
        "event_ms": event["event_ms"],
    }]
