"""domain.lists: blacklists, court debtors, escalation, red list, publicity, objections, repairs.

Every rule is checked with dates: holidays and make-up working days, leap days, the day before and
the day of an expiry, decisions either side of a regime change."""

from __future__ import annotations

import copy
import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.calendar import WorkingCalendar
from domain.lists import apply_objection, apply_repair, change_id, earliest_repair, evaluate, list_changes
from domain.rulebook import load_rulebook
from domain.subject import apply_record, new_state
from domain.validate import content_hash, decision_key

RULES = load_rulebook()
CAL = WorkingCalendar()
ORG = "91310110666007217T"
PERSON = "11010519491231002X"
UNIT = "11410100005200036R"

_origins = itertools.count()


def D(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


def record(kind, doc, date, *, severity=None, domain=None, category="legal_entity", simplified=False,
           revoked=False, action_kind=None, **fields):
    """A canonical record (domain.validate's format)."""
    if kind in ("penalty", "license"):
        action_kind = kind
    return {
        "kind": kind,
        "action_kind": action_kind,
        "source_unit": "某单位",
        "source_unit_code": UNIT,
        "doc_no": doc,
        "subject_name": "某公司",
        "subject_category": category,
        "ids": {"resident_id": PERSON} if category == "natural_person" else {"uscc": ORG},
        "id_flags": [],
        "decision_date": date,
        "severity": severity,
        "domain": domain,
        "revoked": revoked,
        "legal_rep": None,
        "simplified_procedure": simplified,
        "fields": fields,
        "event_id": None,
    }


def feed(state, rec, origin=None):
    """Apply a record as the subject agent does; returns (state, key, outcome)."""
    event = {"origin": origin or f"o-{next(_origins)}", "subject": ORG, "id_kind": "uscc", "record": rec,
             "hash": content_hash(rec), "event_ms": 1_700_000_000_000}
    state, outcome = apply_record(state, event)
    return state, decision_key(rec), outcome


def build(*records):
    state, keys = new_state(ORG, "uscc"), []
    for rec in records:
        state, key, _ = feed(state, rec)
        keys.append(key)
    return state, keys


def pen(doc, date, severity="severe", domain="environment", **kw):
    return record("penalty", doc, date, severity=severity, domain=domain, **kw)


def court(doc, date, reason="evade", **fields):
    return record("court_listing", doc, date, listing_reason=reason, court="某法院", **fields)


def listing(doc, date, list_domain, action="list", period_years=None):
    fields = {"list_domain": list_domain, "action": action}
    if period_years is not None:
        fields["period_years"] = period_years
    return record("listing_decision", doc, date, **fields)


def objection(oid, key, status, filed, resolved=None, *, provider=False, outcome=None, origin=None):
    return {"type": "objection", "objection_id": oid, "record_key": key, "status": status, "filed": filed,
            "resolved": resolved, "provider_verification": provider, "outcome": outcome,
            "origin": origin or f"obj-{next(_origins)}", "event_ms": 1_700_000_000_000}


def repair(key, approved, doc_no="修复〔2024〕1号", origin=None, **kw):
    return {"type": "repair", "record_key": key, "approved": approved, "doc_no": doc_no,
            "origin": origin or f"rep-{next(_origins)}", "event_ms": 1_700_000_000_000, **kw}


def ev(state, as_of):
    return evaluate(state, as_of, RULES, CAL)


def transitions(before, after, effective):
    return [(c["list"], c["transition"], c["effective_date"]) for c in list_changes(ORG, before, after, effective)]


# ============================================================================== objection deadlines


@pytest.mark.parametrize(
    "filed, provider, deadline",
    [
        # Fri 2024-09-27, National Day: Sun 09-29 is a make-up working day, Oct 1-7 off
        ("2024-09-27", False, "2024-10-08"),  # 09-29, 09-30, 10-08
        ("2024-09-27", True, "2024-10-12"),  # ... 10-09, 10-10, 10-11, Sat 10-12 (make-up day)
        ("2024-09-28", False, "2024-10-08"),  # filed on a Saturday: count from the next days
        # Spring Festival 2025: Jan 28 - Feb 4 off, Sun Jan 26 a make-up working day
        ("2025-01-24", False, "2025-02-05"),  # 01-26, 01-27, 02-05
        ("2024-03-04", False, "2024-03-07"),  # an ordinary week
        ("2024-03-07", False, "2024-03-12"),  # across a weekend
    ],
)
def test_objection_deadline_counts_working_days(filed, provider, deadline):
    state, (key,) = build(pen("P1", "2024-01-10"))
    state, outcome = apply_objection(state, objection("OB1", key, "filed", filed, provider=provider))
    assert outcome == "objection-filed"
    on_deadline, after = ev(state, deadline), ev(state, D(deadline) + dt.timedelta(days=1))
    assert on_deadline["overdue_objections"] == []
    assert on_deadline["next_due"] <= (D(deadline) + dt.timedelta(days=1)).isoformat()
    assert after["overdue_objections"] == ["OB1"]
    assert after["objection_records"] == {"OB1": key}
    changes = list_changes(ORG, on_deadline, after, D(deadline) + dt.timedelta(days=1))
    assert [(c["list"], c["transition"], c["causes"]) for c in changes] == [
        ("objection:OB1", "objection_overdue", [key])]


def test_resolved_objection_is_never_overdue():
    state, (key,) = build(pen("P1", "2024-01-10"))
    state, _ = apply_objection(state, objection("OB1", key, "filed", "2024-09-27"))
    state, outcome = apply_objection(state, objection("OB1", key, "rejected", "2024-09-27", "2024-10-15"))
    assert outcome == "objection-rejected"
    assert ev(state, "2024-10-20")["overdue_objections"] == []
    # as of a date before the resolution, it was pending (and overdue)
    assert ev(state, "2024-10-10")["overdue_objections"] == ["OB1"]


# ============================================================================== publicity and regimes


@pytest.mark.parametrize(
    "decided, severity, domain, repair_from, publicity_end",
    [
        # 2019 regime
        ("2023-04-30", "general", "market", "2023-07-30", "2024-04-30"),
        ("2023-04-30", "severe", "market", "2023-10-30", "2026-04-30"),
        # 2023 regime (NDRC order 58, from 2023-05-01)
        ("2023-05-01", "general", "market", "2023-08-01", "2026-05-01"),
        ("2023-05-01", "severe", "market", "2023-08-01", "2026-05-01"),
        ("2023-06-15", "general", "fire", "2024-06-15", "2026-06-15"),
        ("2026-03-31", "severe", "market", "2026-06-30", "2029-03-31"),  # month end clamped
        # 2025 regime (NDRC order 36, in force 2026-04-01)
        ("2026-04-01", "severe", "market", "2027-04-01", "2029-04-01"),
        ("2026-04-01", "general", "market", "2026-07-01", "2027-04-01"),
        ("2026-05-10", "minor", "market", "2026-05-10", "2026-08-10"),
        # leap day: + 12 months is Feb 28
        ("2024-02-29", "general", "market", "2024-05-29", "2027-02-28"),
        ("2020-02-29", "general", "market", "2020-05-29", "2021-02-28"),
        ("2020-02-29", "severe", "market", "2020-08-29", "2023-02-28"),
        # non-repairable: stop business order in food/drug: no early repair
        ("2024-03-01", "severe", "food_drug", "2027-03-01", "2027-03-01"),
    ],
)
def test_publicity_periods(decided, severity, domain, repair_from, publicity_end):
    category = "责令停产停业" if domain == "food_drug" else "罚款"
    state, (key,) = build(pen("P1", decided, severity, domain, penalty_category=category))
    out = ev(state, decided)["publicity"][key]
    assert (out["repair_from"], out["publicity_end"]) == (repair_from, publicity_end)
    assert out["repaired"] is False
    expected = "repair_eligible" if repair_from == decided else "published"
    assert out["state"] == expected


def test_publicity_states_at_boundaries():
    state, (key,) = build(pen("P1", "2020-02-29", "general", "market"))  # 2019 regime: 3-12 months
    table = [
        ("2020-05-28", "published"),
        ("2020-05-29", "repair_eligible"),
        ("2021-02-27", "repair_eligible"),
        ("2021-02-28", "ended"),
    ]
    for as_of, expected in table:
        assert ev(state, as_of)["publicity"][key]["state"] == expected, as_of
    assert ev(state, "2020-03-01")["next_due"] == "2020-05-29"
    assert ev(state, "2020-05-29")["next_due"] == "2021-02-28"
    assert ev(state, "2021-02-28")["next_due"] == "2023-02-28"  # red list eligibility
    assert transitions(ev(state, "2020-05-28"), ev(state, "2020-05-29"), "2020-05-29") == [
        (f"publicity:{key}", "repair_eligible", "2020-05-29")]
    assert transitions(ev(state, "2021-02-27"), ev(state, "2021-03-03"), "2021-03-03") == [
        (f"publicity:{key}", "publicity_expired", "2021-02-28")]


def test_revoked_penalty_is_not_published():
    state, (key,) = build(pen("P1", "2024-03-01", "general", "market"))
    state, _, outcome = feed(state, pen("P1", "2024-03-01", "general", "market", revoked=True))
    assert outcome == "revocation"
    assert ev(state, "2024-04-01")["publicity"] == {}


# ============================================================================== blacklists


def test_rule_based_blacklist_boundaries():
    state, (key,) = build(pen("P1", "2024-03-01"))
    table = [
        ("2024-02-29", None),  # before the decision
        ("2024-03-01", ("2024-03-01", "2027-03-01")),
        ("2027-02-28", ("2024-03-01", "2027-03-01")),  # the day before expiry
        ("2027-03-01", None),  # the day of expiry
    ]
    for as_of, expected in table:
        got = ev(state, as_of)["lists"].get("blacklist:environment")
        assert (got and (got["since"], got["until"])) == (expected or None), as_of
    day_before = ev(state, "2027-02-28")
    assert day_before["next_due"] == "2027-03-01"
    # a time-based exit takes effect on the `until` date, even when noticed later
    assert transitions(day_before, ev(state, "2027-03-05"), "2027-03-05") == [
        ("blacklist:environment", "exited", "2027-03-01"),
        (f"publicity:{key}", "publicity_expired", "2027-03-01"),
        ("red_list", "red_list_entered", "2027-03-01"),  # 3 clean years, off the list
    ]
    assert transitions(ev(state, "2024-02-29"), ev(state, "2024-03-01"), "2024-03-03")[0] == (
        "blacklist:environment", "entered", "2024-03-01")


def test_leap_day_listing():
    state, _ = build(pen("P1", "2024-02-29"))
    assert ev(state, "2027-02-27")["lists"]["blacklist:environment"]["until"] == "2027-02-28"
    assert "blacklist:environment" not in ev(state, "2027-02-28")["lists"]


@pytest.mark.parametrize(
    "rec, listed",
    [
        (pen("P1", "2024-03-01", "severe", "environment"), True),
        (pen("P1", "2024-03-01", "general", "environment"), False),
        (pen("P1", "2024-03-01", "severe", "market"), False),
        (pen("P1", "2024-03-01", "severe", "environment", category="natural_person"), True),
        # Henan §13: simplified procedure on a natural person is never a basis
        (pen("P1", "2024-03-01", "severe", "environment", category="natural_person", simplified=True), False),
        (pen("P1", "2024-03-01", "severe", "environment", simplified=True), True),
    ],
)
def test_rule_basis(rec, listed):
    state, _ = build(rec)
    assert ("blacklist:environment" in ev(state, "2024-06-01")["lists"]) is listed


def test_correction_removing_the_basis_exits():
    state, (key,) = build(pen("P1", "2024-03-01"))
    before = ev(state, "2024-05-01")
    state, _, outcome = feed(state, pen("P1", "2024-03-01", "general"))
    assert outcome == "correction"
    after = ev(state, "2024-05-01")
    assert "blacklist:environment" not in after["lists"]
    assert transitions(before, after, "2024-05-01") == [("blacklist:environment", "exited", "2024-05-01")]


def test_listing_decisions_list_and_remove():
    state, keys = build(listing("L1", "2024-01-10", "taxation"), listing("L2", "2024-01-10", "procurement", period_years=5))
    lists = ev(state, "2024-02-01")["lists"]
    assert lists["blacklist:taxation"]["until"] == "2027-01-10"  # the domain's default period
    assert lists["blacklist:procurement"]["until"] == "2029-01-10"  # the decision's period
    before = ev(state, "2024-02-29")
    state, _, _ = feed(state, listing("L3", "2024-03-01", "taxation", action="remove"))
    assert ev(state, "2024-02-29")["lists"]["blacklist:taxation"]["until"] == "2024-03-01"
    after = ev(state, "2024-03-01")
    assert "blacklist:taxation" not in after["lists"]
    assert ("blacklist:taxation", "exited", "2024-03-01") in transitions(before, after, "2024-03-01")
    # a later listing in the same domain is not touched by the earlier removal
    state, _, _ = feed(state, listing("L4", "2024-06-01", "taxation"))
    assert ev(state, "2024-06-01")["lists"]["blacklist:taxation"]["since"] == "2024-06-01"


def test_two_bases_merge_into_one_membership():
    state, keys = build(pen("P1", "2024-03-01"), listing("L1", "2025-01-10", "environment"))
    m = ev(state, "2025-02-01")["lists"]["blacklist:environment"]
    assert (m["since"], m["until"], m["causes"]) == ("2024-03-01", "2028-01-10", sorted(keys))
    # the first basis expires: still listed on the second, no exit
    before, after = ev(state, "2027-02-28"), ev(state, "2027-03-01")
    assert after["lists"]["blacklist:environment"]["causes"] == [keys[1]]
    assert [t for t in transitions(before, after, "2027-03-01") if t[0] == "blacklist:environment"] == []


# ============================================================================== court debtors


@pytest.mark.parametrize(
    "listed, fields, until",
    [
        ("2024-01-15", {"listing_reason": "evade"}, "2026-01-15"),
        ("2024-01-15", {"listing_reason": "obstruct", "aggravated": True, "aggravation_years": 2}, "2028-01-15"),
        ("2024-01-15", {"listing_reason": "false_report", "aggravated": True, "aggravation_years": 3}, "2029-01-15"),
        ("2024-02-29", {"listing_reason": "evade"}, "2026-02-28"),
        ("2024-01-15", {"listing_reason": "refuse_with_ability"}, None),
    ],
)
def test_court_debtor_periods(listed, fields, until):
    reason = fields.pop("listing_reason")
    state, (key,) = build(court("(2023)豫01执1号", listed, reason, **fields))
    m = ev(state, listed)["lists"]["court_debtor"]
    assert (m["list"], m["domain"], m["since"], m["until"], m["causes"]) == (
        "court_debtor", "court_enforcement", listed, until, [key])
    if until is not None:
        day_before = D(until) - dt.timedelta(days=1)
        assert "court_debtor" in ev(state, day_before)["lists"]
        assert ev(state, day_before)["next_due"] == until
        assert "court_debtor" not in ev(state, until)["lists"]
    else:
        assert "court_debtor" in ev(state, "2040-01-01")["lists"]


def test_court_deletion_exits():
    state, (key,) = build(court("(2023)豫01执1号", "2024-01-15", "refuse_with_ability"))
    before = ev(state, "2024-06-01")
    deletion = record("court_deletion", "(2023)豫01执1号", "2024-06-03", deletion_reason="performed", court="某法院")
    state, _, outcome = feed(state, deletion)
    assert outcome == "deletion"
    after = ev(state, "2024-06-03")
    assert "court_debtor" not in after["lists"]
    assert transitions(before, after, "2024-06-03") == [("court_debtor", "exited", "2024-06-03")]
    assert earliest_repair(state["records"][key], RULES) == (None, "record-not-active")


# ============================================================================== escalation


def test_escalation_then_de_escalation():
    state, keys = build(pen("P1", "2024-03-01"), court("(2024)豫01执9号", "2024-06-01"))
    one = ev(state, "2024-05-31")
    two = ev(state, "2024-06-01")
    esc = two["lists"]["escalated"]
    assert "escalated" not in one["lists"]
    # two domains from 2024-06-01; it drops below two when the court listing ends
    assert (esc["since"], esc["until"], esc["causes"], esc["domain"]) == ("2024-06-01", "2026-06-01", sorted(keys), None)
    assert transitions(one, two, "2024-06-01") == [
        ("court_debtor", "entered", "2024-06-01"),
        ("escalated", "escalated", "2024-06-01"),
        (f"publicity:{keys[0]}", "repair_eligible", "2024-06-01"),  # 2023 regime: 3 months
    ]
    before, after = ev(state, "2026-05-31"), ev(state, "2026-06-01")
    assert transitions(before, after, "2026-06-01") == [
        ("court_debtor", "exited", "2026-06-01"),
        ("escalated", "de-escalated", "2026-06-01"),
    ]
    assert "blacklist:environment" in after["lists"]


def test_same_domain_twice_does_not_escalate():
    state, _ = build(listing("L1", "2024-01-10", "court_enforcement"), court("(2024)豫01执9号", "2024-02-01"))
    lists = ev(state, "2024-03-01")["lists"]
    assert {"blacklist:court_enforcement", "court_debtor"} <= set(lists)
    assert "escalated" not in lists


# ============================================================================== red list


def test_red_list_after_three_clean_years_and_exit_on_adverse_record():
    lic = record("license", "许可1", "2020-01-10")
    state, _ = build(lic)
    assert "red_list" not in ev(state, "2023-01-09")["lists"]
    assert ev(state, "2022-06-01")["next_due"] == "2023-01-10"
    red = ev(state, "2023-01-10")["lists"]["red_list"]
    assert (red["since"], red["until"], red["causes"], red["suspended"]) == ("2023-01-10", None, [], False)
    assert transitions(ev(state, "2023-01-09"), ev(state, "2023-01-10"), "2023-01-10") == [
        ("red_list", "red_list_entered", "2023-01-10")]
    # a minor penalty is not adverse
    state, _, _ = feed(state, pen("P0", "2024-05-01", "minor", "market"))
    assert "red_list" in ev(state, "2024-05-20")["lists"]
    before = ev(state, "2024-05-20")
    state, _, _ = feed(state, pen("P1", "2024-05-20", "general", "market"))
    after = ev(state, "2024-05-20")
    assert "red_list" not in after["lists"]
    assert ("red_list", "red_list_exited", "2024-05-20") in transitions(before, after, "2024-05-20")
    assert "red_list" not in ev(state, "2027-05-19")["lists"]
    assert ev(state, "2027-05-20")["lists"]["red_list"]["since"] == "2027-05-20"


def test_red_list_waits_for_the_blacklist_to_end():
    # listed 2020-02-29 for 3 years (until 2023-02-28); clean 3 years from the same date
    state, _ = build(pen("P1", "2020-02-29"), listing("L1", "2020-06-01", "environment"))
    assert "red_list" not in ev(state, "2023-05-31")["lists"]
    red = ev(state, "2023-06-01")["lists"]["red_list"]
    assert red["since"] == "2023-06-01"


def test_red_list_until_a_known_future_adverse_record():
    state, _ = build(record("license", "许可1", "2019-01-10"), pen("P1", "2024-05-20", "general", "market"))
    red = ev(state, "2024-01-01")["lists"]["red_list"]
    assert red["until"] == "2024-05-20"


def test_no_records_no_red_list():
    assert ev(new_state(ORG, "uscc"), "2030-01-01") == {
        "lists": {}, "publicity": {}, "overdue_objections": [], "objection_records": {}, "next_due": None}


# ============================================================================== linked records


def linked_entry(org_record, via=ORG):
    return {"kind": "linked", "status": "active", "decision_date": org_record["decision_date"],
            "severity": org_record["severity"], "domain": org_record["domain"], "content": org_record,
            "via": via, "hash": content_hash(org_record), "version": 1}


def test_legal_representative_linked_record():
    state = new_state(PERSON, "resident_id")
    state["category"] = "natural_person"
    org_penalty = pen("P1", "2024-03-01")
    key = f"linked|{ORG}|{decision_key(org_penalty)}"
    state["records"][key] = linked_entry(org_penalty)
    out = ev(state, "2024-04-01")
    m = out["lists"]["blacklist:environment"]
    assert (m["since"], m["until"], m["causes"]) == ("2024-03-01", "2027-03-01", [key])
    assert out["publicity"] == {}  # published on the organisation, not the person
    # the person's own simplified-procedure penalty is no basis; the linked record still is
    own = pen("P9", "2024-03-05", category="natural_person", simplified=True, domain="taxation")
    state, own_key, _ = feed(state, own)
    lists = ev(state, "2024-04-01")["lists"]
    assert "blacklist:taxation" not in lists
    assert lists["blacklist:environment"]["causes"] == [key]
    # an adverse record for the red list too
    assert "red_list" not in ev(state, "2026-04-01")["lists"]
    # a linked listing decision lists the person in that domain
    state["records"]["linked|x"] = linked_entry(listing("L1", "2024-05-01", "wage_arrears"))
    assert "blacklist:wage_arrears" in ev(state, "2024-06-01")["lists"]
    assert "escalated" in ev(state, "2024-06-01")["lists"]


# ============================================================================== objections


def test_suspension_resume_and_exit_on_upheld_revocation():
    state, (key,) = build(pen("P1", "2024-03-01"))
    listed = ev(state, "2024-04-01")
    assert listed["lists"]["blacklist:environment"]["suspended"] is False

    state, outcome = apply_objection(state, objection("OB1", key, "filed", "2024-04-02"))
    assert outcome == "objection-filed"
    assert ev(state, "2024-04-01")["lists"]["blacklist:environment"]["suspended"] is False  # not yet filed
    suspended = ev(state, "2024-04-02")
    assert suspended["lists"]["blacklist:environment"]["suspended"] is True
    assert transitions(listed, suspended, "2024-04-02") == [("blacklist:environment", "suspended", "2024-04-02")]

    state, outcome = apply_objection(state, objection("OB1", key, "rejected", "2024-04-02", "2024-04-05"))
    assert outcome == "objection-rejected"
    resumed = ev(state, "2024-04-05")
    assert resumed["lists"]["blacklist:environment"]["suspended"] is False
    assert transitions(suspended, resumed, "2024-04-05") == [("blacklist:environment", "resumed", "2024-04-05")]

    state, _ = apply_objection(state, objection("OB2", key, "filed", "2024-05-06", provider=True))
    pending = ev(state, "2024-05-06")
    assert pending["lists"]["blacklist:environment"]["suspended"] is True
    state, outcome = apply_objection(state, objection("OB2", key, "upheld", "2024-05-06", "2024-05-13",
                                                      provider=True, outcome="revoked"))
    assert outcome == "objection-revoked"
    assert state["records"][key]["status"] == "revoked"
    assert state["records"][key]["revocation"]["objection_id"] == "OB2"
    gone = ev(state, "2024-05-13")
    assert gone["lists"] == {} and gone["publicity"] == {}
    assert transitions(pending, gone, "2024-05-13") == [("blacklist:environment", "exited", "2024-05-13")]


def test_objection_corrected_takes_the_record_out_until_the_correction():
    state, (key,) = build(pen("P1", "2024-03-01"))
    state, _ = apply_objection(state, objection("OB1", key, "filed", "2024-04-02"))
    state, outcome = apply_objection(state, objection("OB1", key, "upheld", "2024-04-02", "2024-04-03",
                                                      outcome="corrected"))
    assert outcome == "objection-corrected"
    assert state["records"][key]["status"] == "active"
    assert ev(state, "2024-04-03")["lists"] == {}
    # the provider's correction (a normal correction record): in force again, as corrected
    state, _, outcome = feed(state, pen("P1", "2024-03-01", "general"))
    assert outcome == "correction"
    out = ev(state, "2024-04-03")
    assert out["lists"] == {} and out["publicity"][key]["state"] == "published"
    state, _, _ = feed(state, pen("P1", "2024-03-01", "severe", penalty_category="罚款"))
    assert "blacklist:environment" in ev(state, "2024-04-03")["lists"]


def test_re_resolving_an_objection_undoes_its_effect():
    state, (key,) = build(pen("P1", "2024-03-01"))
    state, _ = apply_objection(state, objection("OB1", key, "upheld", "2024-04-02", "2024-04-03", outcome="revoked"))
    assert state["records"][key]["status"] == "revoked"
    state, outcome = apply_objection(state, objection("OB1", key, "rejected", "2024-04-02", "2024-04-08"))
    assert outcome == "objection-rejected"
    assert state["records"][key]["status"] == "active"
    assert "revocation" not in state["records"][key]
    assert "blacklist:environment" in ev(state, "2024-04-08")["lists"]


def test_one_disputed_basis_of_two_does_not_suspend():
    state, keys = build(pen("P1", "2024-03-01"), pen("P2", "2024-03-05"))
    state, _ = apply_objection(state, objection("OB1", keys[0], "filed", "2024-04-02"))
    assert ev(state, "2024-04-02")["lists"]["blacklist:environment"]["suspended"] is False
    state, _ = apply_objection(state, objection("OB2", keys[1], "filed", "2024-04-02"))
    assert ev(state, "2024-04-02")["lists"]["blacklist:environment"]["suspended"] is True


def test_escalation_suspended_when_fewer_than_two_domains_are_in_force():
    state, keys = build(pen("P1", "2024-03-01"), pen("P2", "2024-03-05", domain="taxation"))
    state, _ = apply_objection(state, objection("OB1", keys[0], "filed", "2024-04-02"))
    lists = ev(state, "2024-04-02")["lists"]
    assert lists["blacklist:environment"]["suspended"] is True
    assert lists["blacklist:taxation"]["suspended"] is False
    assert lists["escalated"]["suspended"] is True


def test_objection_idempotence():
    state, (key,) = build(pen("P1", "2024-03-01"))
    event = objection("OB1", key, "filed", "2024-04-02", origin="objections/0/7")
    once, outcome = apply_objection(state, event)
    assert outcome == "objection-filed"
    twice, outcome = apply_objection(once, event)
    assert (twice, outcome) == (once, "redelivered")
    resent, outcome = apply_objection(once, dict(event, origin="objections/0/9"))
    assert outcome == "duplicate"
    assert {k: v for k, v in resent["objections"]["OB1"].items() if k != "seen"} == {
        k: v for k, v in once["objections"]["OB1"].items() if k != "seen"}
    resolved, _ = apply_objection(once, objection("OB1", key, "rejected", "2024-04-02", "2024-04-03"))
    stale, outcome = apply_objection(resolved, objection("OB1", key, "filed", "2024-04-02"))
    assert outcome == "stale"
    assert stale["objections"]["OB1"]["status"] == "rejected"
    assert "objections" not in state or "OB1" not in state["objections"]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "objection", "record_key": "k", "status": "filed", "filed": "2024-04-02"},
        {"type": "objection", "objection_id": "OB", "record_key": "k", "status": "pending", "filed": "2024-04-02"},
        {"type": "objection", "objection_id": "OB", "record_key": "k", "status": "filed", "filed": "2024-02-30"},
        {"type": "objection", "objection_id": "OB", "record_key": "k", "status": "filed"},
        {"type": "objection", "objection_id": "OB", "record_key": "k", "status": "upheld", "filed": "2024-04-02",
         "resolved": "2024-04-01", "outcome": "revoked"},
        {"type": "objection", "objection_id": "OB", "record_key": "k", "status": "upheld", "filed": "2024-04-02",
         "resolved": "2024-04-03", "outcome": "deleted"},
        {"type": "objection", "objection_id": "OB", "record_key": None, "status": "filed", "filed": "2024-04-02"},
    ],
)
def test_invalid_objection_changes_nothing(event):
    state, _ = build(pen("P1", "2024-03-01"))
    assert apply_objection(state, event) == (state, "invalid")


def test_objection_for_an_unknown_record_is_kept():
    state = new_state(ORG, "uscc")
    state, outcome = apply_objection(state, objection("OB1", "penalty|x|y", "upheld", "2024-04-02", "2024-04-03",
                                                      outcome="revoked"))
    assert outcome == "objection-revoked"
    assert state["objections"]["OB1"]["record_hash"] is None
    state, outcome = apply_objection(None, objection("OB1", "penalty|x|y", "filed", "2024-04-02"))
    assert outcome == "objection-filed" and state["objections"]["OB1"]["status"] == "filed"


# ============================================================================== repairs


def test_repair_ends_publicity_early():
    state, (key,) = build(pen("P1", "2024-03-01", "general", "market"))  # 2019: repair from 2024-06-01
    refused, outcome = apply_repair(state, repair(key, "2024-05-31"))
    assert outcome == "repair-refused"
    assert refused["repair_refused"][key]["reason"] == "before-earliest"
    assert refused["repair_refused"][key]["earliest"] == "2024-06-01"
    assert "repairs" not in refused or key not in refused["repairs"]
    assert ev(refused, "2024-06-15")["publicity"][key]["state"] == "repair_eligible"

    before = ev(state, "2024-05-31")
    state, outcome = apply_repair(state, repair(key, "2024-06-01"))
    assert outcome == "repair"
    pub = ev(state, "2024-06-01")["publicity"][key]
    assert pub == {"repair_from": "2024-06-01", "publicity_end": "2024-06-01", "repaired": True, "state": "ended"}
    assert ev(state, "2024-05-31")["publicity"][key]["repaired"] is False
    assert transitions(before, ev(state, "2024-06-03"), "2024-06-03") == [
        (f"publicity:{key}", "publicity_expired", "2024-06-01")]


def test_repair_of_a_basis_exits_the_blacklist():
    state, (key,) = build(pen("P1", "2023-06-01", penalty_category="罚款"))  # 2023 regime: repair from 09-01
    state, outcome = apply_repair(state, repair(key, "2023-09-01"))
    assert outcome == "repair"
    assert ev(state, "2023-08-31")["lists"]["blacklist:environment"]["until"] == "2023-09-01"
    assert ev(state, "2023-09-01")["lists"] == {}


def test_early_removal_wage_arrears_listing():
    state, (key,) = build(listing("L1", "2024-01-10", "wage_arrears"))
    assert ev(state, "2024-02-01")["lists"]["blacklist:wage_arrears"]["until"] == "2027-01-10"
    refused, outcome = apply_repair(state, repair(key, "2024-07-09"))  # 6 months not yet passed
    assert outcome == "repair-refused"
    assert refused["repair_refused"][key]["earliest"] == "2024-07-10"
    assert "blacklist:wage_arrears" in ev(refused, "2024-08-01")["lists"]
    before = ev(state, "2024-07-09")
    state, outcome = apply_repair(state, repair(key, "2024-07-10"))
    assert outcome == "repair"
    after = ev(state, "2024-07-10")
    assert "blacklist:wage_arrears" not in after["lists"]
    assert transitions(before, after, "2024-07-10") == [("blacklist:wage_arrears", "exited", "2024-07-10")]


@pytest.mark.parametrize(
    "domain, decided, approved, exit_date",
    [
        # wage arrears: early removal 6 months after the listing, even if repaired before that
        ("wage_arrears", "2023-06-01", "2023-09-15", "2023-12-01"),
        ("wage_arrears", "2023-06-01", "2024-01-15", "2024-01-15"),
        # work safety: repair from 12 months (2023 domain override), early removal after 12 months
        ("work_safety", "2023-06-01", "2024-06-01", "2024-06-01"),
        # environment: no early-removal rule: the approved repair lifts it
        ("environment", "2023-06-01", "2023-09-01", "2023-09-01"),
    ],
)
def test_repair_of_a_rule_basis_per_domain(domain, decided, approved, exit_date):
    state, (key,) = build(pen("P1", decided, domain=domain, penalty_category="罚款"))
    state, outcome = apply_repair(state, repair(key, approved))
    assert outcome == "repair"
    name = f"blacklist:{domain}"
    assert ev(state, D(exit_date) - dt.timedelta(days=1))["lists"][name]["until"] == exit_date
    assert name not in ev(state, exit_date)["lists"]
    assert ev(state, approved)["publicity"][key]["repaired"] is True


def test_non_repairable_case_refused():
    state, (key,) = build(pen("P1", "2024-03-01", domain="food_drug", penalty_category="罚款;责令停产停业"))
    assert earliest_repair(state["records"][key], RULES) == (D("2027-03-01"), None)
    out, outcome = apply_repair(state, repair(key, "2024-09-01"))
    assert outcome == "repair-refused"
    assert out["repair_refused"][key]["reason"] == "before-earliest"
    assert out["repair_refused"][key]["earliest"] == "2027-03-01"
    evaluated = ev(out, "2024-09-01")
    assert evaluated["lists"]["blacklist:food_drug"]["until"] == "2027-03-01"
    assert evaluated["publicity"][key] == {"repair_from": "2027-03-01", "publicity_end": "2027-03-01",
                                           "repaired": False, "state": "published"}
    # the same decision re-sent: a duplicate, not a second refusal
    again, outcome = apply_repair(out, repair(key, "2024-09-01"))
    assert outcome == "duplicate"
    assert again["version"] == out["version"]


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: build(court("(2024)豫01执9号", "2024-01-15")), "court-listing"),
        (lambda: build(record("license", "许可1", "2024-01-15")), "not-adverse"),
        (lambda: build(listing("L1", "2024-01-10", "environment")), "no-early-removal"),
        (lambda: (new_state(ORG, "uscc"), ["penalty|nobody|1"]), "unknown-record"),
    ],
)
def test_repair_refusal_reasons(make, reason):
    state, (key,) = make()
    out, outcome = apply_repair(state, repair(key, "2026-01-15"))
    assert outcome == "repair-refused"
    assert out["repair_refused"][key]["reason"] == reason


def test_repair_not_granted_and_refused_then_record_known():
    state, (key,) = build(pen("P1", "2024-03-01", "general", "market"))
    out, outcome = apply_repair(state, repair(key, "2024-07-01", granted=False))
    assert (outcome, out["repair_refused"][key]["reason"]) == ("repair-refused", "not-granted")
    # a repair refused because the record was unknown is applied when re-sent after the record
    empty = new_state(ORG, "uscc")
    early, outcome = apply_repair(empty, repair(key, "2024-07-01", origin="r/1"))
    assert outcome == "repair-refused"
    early["records"] = state["records"]
    later, outcome = apply_repair(early, repair(key, "2024-07-01", origin="r/2"))
    assert outcome == "repair"


def test_repair_idempotence():
    state, (key,) = build(pen("P1", "2024-03-01", "general", "market"))
    event = repair(key, "2024-07-01", origin="repairs/0/3")
    once, outcome = apply_repair(state, event)
    assert outcome == "repair"
    assert apply_repair(once, event) == (once, "redelivered")
    dup, outcome = apply_repair(once, dict(event, origin="repairs/0/4"))
    assert outcome == "duplicate"
    changed, outcome = apply_repair(once, repair(key, "2024-08-01", origin="repairs/0/5"))
    assert outcome == "correction"
    assert changed["repairs"][key]["approved"] == "2024-08-01"
    assert key not in (state.get("repairs") or {})  # the input state is untouched


@pytest.mark.parametrize(
    "event",
    [
        {"type": "repair", "approved": "2024-07-01"},
        {"type": "repair", "record_key": "k", "approved": None},
        {"type": "repair", "record_key": "k", "approved": "2024-13-01"},
        {"type": "repair", "record_key": "k", "approved": 20240701},
    ],
)
def test_invalid_repair_changes_nothing(event):
    state, _ = build(pen("P1", "2024-03-01"))
    assert apply_repair(state, event) == (state, "invalid")


# ============================================================================== change ids


def test_change_ids_are_deterministic():
    state, _ = build(pen("P1", "2024-03-01"), court("(2024)豫01执9号", "2024-06-01"))
    before, after = ev(state, "2024-05-31"), ev(state, "2024-06-01")
    first = list_changes(ORG, before, after, "2024-06-01")
    again = list_changes(ORG, copy.deepcopy(before), copy.deepcopy(after), dt.date(2024, 6, 1))
    assert first == again
    for c in first:
        assert c["change_id"] == change_id(ORG, c["list"], c["transition"], c["effective_date"], c["causes"])
        assert len(c["change_id"]) == 32
    assert len({c["change_id"] for c in first}) == len(first)
    other = list_changes("91350100M000100Y43", before, after, "2024-06-01")
    assert {c["change_id"] for c in other}.isdisjoint(c["change_id"] for c in first)


def test_exit_and_re_entry_between_two_evaluations():
    state, keys = build(court("(2020)豫01执1号", "2020-01-15"), court("(2022)豫01执2号", "2022-03-01"))
    before = ev(state, "2021-06-01")
    after = ev(state, "2022-03-01")
    assert transitions(before, after, "2022-03-01") == [
        ("court_debtor", "entered", "2022-03-01"),
        ("court_debtor", "exited", "2022-01-15"),
    ]


# ============================================================================== properties

DOMAINS = ["environment", "taxation", "wage_arrears", "work_safety", "food_drug", "market", "fire"]
KEYS = [f"k{i}" for i in range(6)]
dates = st.dates(min_value=dt.date(2018, 1, 1), max_value=dt.date(2029, 12, 31))


@st.composite
def entries(draw):
    kind = draw(st.sampled_from(["penalty", "license", "court_listing", "action", "listing_decision", "linked"]))
    decided = draw(dates).isoformat()
    severity = draw(st.sampled_from(["minor", "general", "severe", None]))
    domain = draw(st.sampled_from(DOMAINS + [None]))
    fields = {}
    content_kind = kind
    if kind == "court_listing":
        fields = {"listing_reason": draw(st.sampled_from(["evade", "refuse_with_ability", "obstruct"])),
                  "aggravation_years": draw(st.integers(0, 3))}
    elif kind == "listing_decision":
        fields = {"list_domain": draw(st.sampled_from(DOMAINS)), "action": draw(st.sampled_from(["list", "remove"])),
                  "period_years": draw(st.sampled_from([None, 1, 3, 5]))}
    elif kind == "action":
        fields = {"adverse": draw(st.booleans())}
    elif kind in ("penalty", "linked"):
        content_kind = "penalty"
        fields = {"penalty_category": draw(st.sampled_from(["罚款", "责令停产停业", "吊销许可证"]))}
    content = {"kind": content_kind, "decision_date": decided, "severity": severity, "domain": domain,
               "fields": fields, "simplified_procedure": draw(st.booleans()),
               "subject_category": draw(st.sampled_from(["legal_entity", "natural_person"]))}
    entry = {"kind": kind, "status": draw(st.sampled_from(["active", "active", "active", "revoked", "deleted"])),
             "decision_date": decided, "severity": severity, "domain": domain, "content": content,
             "hash": draw(st.sampled_from(["h1", "h2"]))}
    if kind == "court_listing" and entry["status"] == "deleted":
        entry["deletion"] = {"reason": draw(st.sampled_from(["performed", "listing_revoked"])), "date": decided}
    return entry


@st.composite
def states(draw):
    records = draw(st.dictionaries(st.sampled_from(KEYS), entries(), max_size=5))
    objections = {}
    for i in range(draw(st.integers(0, 2))):
        filed = draw(dates)
        status = draw(st.sampled_from(["filed", "upheld", "rejected"]))
        resolved = None if status == "filed" else (filed + dt.timedelta(days=draw(st.integers(0, 20)))).isoformat()
        objections[f"ob{i}"] = {"record_key": draw(st.sampled_from(KEYS)), "filed": filed.isoformat(),
                                "provider_verification": draw(st.booleans()), "status": status,
                                "resolved": resolved, "outcome": None, "record_hash": None, "seen": []}
    repairs = {}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3, unique=True)):
        repairs[key] = {"approved": draw(dates).isoformat(), "doc_no": "r", "seen": []}
    state = new_state(ORG, "uscc")
    state.update(records=records, objections=objections, repairs=repairs)
    return state


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(states(), dates)
def test_evaluate_is_deterministic_and_does_not_touch_the_state(state, as_of):
    snapshot = copy.deepcopy(state)
    first = evaluate(state, as_of, RULES, CAL)
    assert state == snapshot
    assert evaluate(copy.deepcopy(state), as_of.isoformat(), RULES, CAL) == first
    assert list_changes(ORG, first, first, as_of) == []
    if first["next_due"] is not None:
        assert first["next_due"] > as_of.isoformat()


@FAST
@given(states(), dates, st.integers(1, 400))
def test_nothing_changes_before_next_due(state, as_of, step):
    """next_due is the earliest change: any date before it gives the same answer."""
    first = evaluate(state, as_of, RULES, CAL)
    nxt = D(first["next_due"]) if first["next_due"] else as_of + dt.timedelta(days=step + 1)
    probe = min(as_of + dt.timedelta(days=step), nxt - dt.timedelta(days=1))
    if probe <= as_of:
        return
    later = evaluate(state, probe, RULES, CAL)
    assert later == first


@FAST
@given(states(), dates, dates)
def test_change_ids_stable(state, a, b):
    before, after = evaluate(state, a, RULES, CAL), evaluate(state, b, RULES, CAL)
    one = list_changes(ORG, before, after, b)
    two = list_changes(ORG, copy.deepcopy(before), copy.deepcopy(after), b.isoformat())
    assert one == two
    assert [(c["list"], c["transition"]) for c in one] == sorted((c["list"], c["transition"]) for c in one)
    for c in one:
        assert c["transition"] in (
            "entered", "exited", "suspended", "resumed", "escalated", "de-escalated", "red_list_entered",
            "red_list_exited", "publicity_expired", "repair_eligible", "objection_overdue")


@FAST
@given(states(), st.sampled_from(KEYS), dates, st.integers(0, 20),
       st.sampled_from(["filed", "upheld", "rejected"]), st.sampled_from([None, "corrected", "revoked"]),
       st.booleans())
def test_objection_event_twice_equals_once(state, key, filed, days, status, outcome, provider):
    event = objection("OBX", key, status, filed.isoformat(), (filed + dt.timedelta(days=days)).isoformat(),
                      provider=provider, outcome=outcome, origin="objections/1/1")
    snapshot = copy.deepcopy(state)
    once, first = apply_objection(state, event)
    assert state == snapshot
    twice, second = apply_objection(once, event)
    assert twice == once
    assert second in ("redelivered", "invalid")
    # the same content again from another message: the state's meaning is unchanged
    again, third = apply_objection(once, dict(event, origin="objections/1/2"))
    if first != "invalid":
        assert third == "duplicate"
        assert evaluate(again, filed, RULES, CAL) == evaluate(once, filed, RULES, CAL)


@FAST
@given(states(), st.sampled_from(KEYS), dates, st.booleans())
def test_repair_event_twice_equals_once(state, key, approved, granted):
    event = repair(key, approved.isoformat(), origin="repairs/1/1", granted=granted)
    snapshot = copy.deepcopy(state)
    once, first = apply_repair(state, event, RULES)
    assert state == snapshot
    assert first in ("repair", "correction", "repair-refused", "duplicate")
    twice, second = apply_repair(once, event, RULES)
    assert (twice, second) == (once, "redelivered")
    again, third = apply_repair(once, dict(event, origin="repairs/1/2"), RULES)
    assert third == "duplicate"
    assert evaluate(again, approved, RULES, CAL) == evaluate(once, approved, RULES, CAL)
