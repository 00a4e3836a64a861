"""domain.checks: which measures of the catalogue apply to a subject, for a matter, at an instant
(issue 15, 3). Subject states are built by folding inputs with the real rules core."""

from __future__ import annotations

import datetime as dt
import random

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.checks import OUTCOMES, UnknownMatter, check, to_builtins
from domain.memberships import intervals
from domain.rulebook import rulebook_from_dict
from domain.validate import decision_key
from tests.builders import objection, record, record_event, repair
from tests.unit.list_inputs import DATES, RULES, TODAY, list_inputs, run

PEN = record("penalty", "环罚〔2024〕1号", "2024-02-05", severity="severe", domain="environment")
KEY = decision_key(PEN)


def ids(measures):
    return [m.id for m in measures]


def test_before_during_and_after_a_blacklisting():
    state = run([record_event(PEN, "2024-02-06")])  # 2023 regime: listed 3 years, to 2027-02-05
    before = check(state, "government_procurement", "2024-02-04", RULES)
    assert (before.outcome, before.measures, before.basis) == ("clear", (), ())
    during = check(state, "government_procurement", "2024-02-05", RULES)
    assert during.outcome == "restricted"
    assert ids(during.measures) == ["procurement.exclude"]
    (m,) = during.measures
    assert m.effect == "prohibit" and "政府采购法" in m.source and m.triggered_by == ("blacklist:environment",)
    (basis,) = during.basis
    assert (basis.list, basis.since, basis.until, basis.until_projected, basis.suspended) == (
        "blacklist:environment", "2024-02-05", "2027-02-05", True, False)
    (rec,) = basis.records
    assert (rec.record_key, rec.kind, rec.doc_no, rec.source_unit_code, rec.decision_date, rec.domain,
            rec.severity, rec.disputed_by) == (KEY, "penalty", "环罚〔2024〕1号", PEN["source_unit_code"],
                                               "2024-02-05", "environment", "severe", None)
    assert (during.as_of, during.projected, during.rules_version, during.lists_rules_version) == (
        "2024-02-06", False, RULES.version, RULES.version)
    # the expiry lies after the subject's clock: answered, flagged projected
    after = check(state, "honours", "2027-02-05", RULES)
    assert (after.outcome, after.basis, after.projected) == ("clear", (), True)
    assert check(state, "honours", "2027-02-04", RULES).outcome == "restricted"
    # off the list is not yet honest (RULES.md 4: three clean years): no incentive on the exit day
    assert ids(check(state, "government_procurement", "2027-02-05", RULES).incentives) == []
    # three years after the stay on the list ended the red list begins (projected too): bonus points
    red = check(state, "government_procurement", "2030-02-05", RULES)
    assert (red.outcome, ids(red.incentives), red.measures) == ("incentive", ["trading.credit_bonus"], ())
    assert check(state, "government_procurement", "2030-02-04", RULES).outcome == "clear"


def test_a_blacklisted_subject_is_restricted_from_internet_information_services():
    """RULES.md 8: the punishment of seriously dishonest subjects includes restrictions "on internet
    information services" (an audit found no matter or measure for it in the catalogue)."""
    state = run([record_event(PEN, "2024-02-06")])
    during = check(state, "internet_information_services", "2024-06-01", RULES)
    assert (during.outcome, ids(during.measures)) == ("restricted", ["internet_information_services.restrict"])
    assert "豫政〔2016〕65号" in during.measures[0].source
    assert check(state, "internet_information_services", "2024-02-04", RULES).outcome == "clear"


def test_review_only_for_licensing_and_nothing_for_high_consumption():
    state = run([record_event(PEN, "2024-02-06")])
    lic = check(state, "administrative_licensing", "2024-06-01", RULES)
    assert (lic.outcome, ids(lic.measures)) == ("review", ["licensing.extra_review"])
    high = check(state, "high_consumption", "2024-06-01", RULES)
    assert (high.outcome, high.measures, high.basis) == ("clear", (), ())


def test_suspended_during_an_objection_and_applied_again_after_it():
    state = run([record_event(PEN, "2024-02-06"),
                 objection("OB-1", KEY, "filed", "2024-03-04", arrived="2024-03-04"),
                 objection("OB-1", KEY, "rejected", "2024-03-04", "2024-03-08", arrived="2024-03-08")])
    during = check(state, "bidding", "2024-03-05", RULES)
    assert during.outcome == "suspended"
    assert during.measures == () and ids(during.suspended) == ["bidding.exclude"]
    (basis,) = during.basis
    assert basis.suspended and basis.objection == "OB-1" and basis.records[0].disputed_by == "OB-1"
    after = check(state, "bidding", "2024-03-08", RULES)
    assert (after.outcome, ids(after.measures), after.suspended) == ("restricted", ["bidding.exclude"], ())
    assert after.basis[0].records[0].disputed_by is None
    assert check(state, "bidding", "2024-03-03", RULES).outcome == "restricted"


def test_an_upheld_objection_revoking_the_record_clears_it_for_good():
    state = run([record_event(PEN, "2024-02-06"),
                 objection("OB-2", KEY, "upheld", "2024-03-04", "2024-03-06", outcome="revoked", arrived=TODAY)])
    for day in ("2024-02-05", "2024-03-05", "2025-01-01"):
        assert check(state, "bidding", day, RULES).outcome == "clear"


def test_a_repaired_record_is_no_basis_after_the_repair():
    state = run([record_event(PEN, "2024-02-06"), repair(KEY, "2024-08-01", arrived="2024-08-01")])
    assert check(state, "fiscal_subsidies", "2024-07-31", RULES).outcome == "restricted"
    after = check(state, "fiscal_subsidies", "2024-08-01", RULES)
    assert (after.outcome, after.basis) == ("clear", ())


def test_court_debtor_able_but_refusing_high_consumption():
    refuses = record("court_listing", "(2025)豫01执3号", "2025-03-03", listing_reason="refuse_with_ability")
    state = run([record_event(refuses, TODAY)])
    high = check(state, "high_consumption", "2026-01-05", RULES)
    assert (high.outcome, ids(high.measures)) == ("restricted", ["high_consumption.restrict"])
    assert "法释〔2015〕17号" in high.measures[0].source
    (basis,) = high.basis
    assert (basis.list, basis.until, basis.records[0].listing_reason, basis.records[0].doc_no) == (
        "court_debtor", None, "refuse_with_ability", "(2025)豫01执3号")
    assert check(state, "exit_control", "2026-01-05", RULES).outcome == "restricted"
    assert check(state, "high_consumption", "2025-03-02", RULES).outcome == "clear"
    # deleted when the debtor performs: no longer restricted from then
    deletion = record("court_deletion", "(2025)豫01执3号", "2026-02-02", deletion_reason="performed")
    state = run([record_event(deletion, TODAY)], state)
    assert check(state, "high_consumption", "2026-02-01", RULES).outcome == "restricted"
    assert check(state, "high_consumption", "2026-02-02", RULES).outcome == "clear"


def test_other_court_debtors_are_not_restricted_in_consumption_but_in_procurement():
    other = record("court_listing", "(2025)豫01执4号", "2025-03-03", listing_reason="other")
    state = run([record_event(other, TODAY)])
    assert check(state, "high_consumption", "2026-01-05", RULES).outcome == "clear"
    proc = check(state, "government_procurement", "2026-01-05", RULES)
    assert (proc.outcome, proc.measures[0].triggered_by) == ("restricted", ("court_debtor",))
    assert check(state, "government_procurement", "2027-03-03", RULES).outcome == "clear"  # 2 years


def test_a_disputed_able_but_refusing_listing_suspends_the_consumption_restriction():
    refuses = record("court_listing", "(2025)豫01执5号", "2025-03-03", listing_reason="refuse_with_ability")
    state = run([record_event(refuses, TODAY),
                 objection("OB-3", decision_key(refuses), "filed", "2026-01-05", arrived=TODAY)])
    result = check(state, "high_consumption", "2026-01-06", RULES)
    assert (result.outcome, ids(result.suspended)) == ("suspended", ["high_consumption.restrict"])


def test_escalation_adds_heavier_measures():
    tax = record("listing_decision", "税黑〔2024〕1号", "2024-06-03", list_domain="taxation", action="list")
    state = run([record_event(PEN, TODAY), record_event(tax, TODAY)])
    one = check(state, "administrative_licensing", "2024-06-02", RULES)
    assert (one.outcome, ids(one.measures)) == ("review", ["licensing.extra_review"])
    two = check(state, "administrative_licensing", "2024-06-03", RULES)
    assert (two.outcome, ids(two.measures)) == ("restricted",
                                                ["licensing.extra_review", "escalation.combined_prohibition"])
    esc = next(b for b in two.basis if b.list == "escalated")
    assert esc.lists == ("blacklist:environment", "blacklist:taxation")
    assert {r.record_key for r in esc.records} == {KEY, decision_key(tax)}
    assert {r.domain for r in esc.records} == {"environment", "taxation"}
    # the environment listing expires 2027-02-05: one domain left, escalation over
    later = check(state, "administrative_licensing", "2027-02-05", RULES)
    assert (later.outcome, ids(later.measures), later.projected) == ("review", ["licensing.extra_review"], True)


def test_an_objection_on_one_of_two_domains_suspends_the_escalation_only():
    tax = record("listing_decision", "税黑〔2024〕2号", "2024-06-03", list_domain="taxation", action="list")
    state = run([record_event(PEN, TODAY), record_event(tax, TODAY),
                 objection("OB-4", KEY, "filed", "2024-07-01", arrived=TODAY)])
    result = check(state, "administrative_licensing", "2024-07-02", RULES)
    assert result.outcome == "review"
    assert ids(result.measures) == ["licensing.extra_review"]
    assert result.measures[0].triggered_by == ("blacklist:taxation",)
    assert ids(result.suspended) == ["escalation.combined_prohibition"]
    assert {b.list: b.suspended for b in result.basis} == {
        "blacklist:environment": True, "blacklist:taxation": False, "escalated": True}


def test_red_list_green_channel_and_its_end():
    lic = record("license", "许〔2019〕1号", "2019-03-04")
    state = run([record_event(lic, "2019-03-05")])
    assert check(state, "administrative_licensing", "2022-03-03", RULES).outcome == "clear"
    green = check(state, "administrative_licensing", "2022-03-04", RULES)
    assert (green.outcome, green.measures, ids(green.incentives)) == ("incentive", (), ["licensing.green_channel"])
    assert "容缺受理" in green.incentives[0].description_zh and green.basis[0].list == "red_list"
    bonus = check(state, "bidding", "2023-01-02", RULES)
    assert ids(bonus.incentives) == ["trading.credit_bonus"]
    # an adverse record ends the red list
    state = run([record_event(record("penalty", "市监罚〔2024〕1号", "2024-05-06", severity="general",
                                     domain="market"), "2024-05-07")], state)
    assert check(state, "administrative_licensing", "2024-05-05", RULES).outcome == "incentive"
    assert check(state, "administrative_licensing", "2024-05-06", RULES).outcome == "clear"


def test_unknown_subject_and_unknown_matter():
    result = check(None, "government_procurement", "2026-01-05", RULES, subject="91350100M000100Y43")
    assert (result.outcome, result.subject, result.measures, result.basis, result.as_of) == (
        "no_record", "91350100M000100Y43", (), (), None)
    assert result.code_problem is None  # a well-formed USCC no subject has


@pytest.mark.parametrize(("code", "problem"), [
    ("91410702MA3X5QJ87D", "check character does not match: not a valid USCC"),  # ...87C, its last one mistyped
    ("410102198805051238", "check character does not match"),  # an ID number's check digit mistyped
    # its check character right, its month 13: said so, not "check character" (seen: a client looked
    # at the wrong character)
    ("410105199013022343", "but its birth date (characters 7-14) is no real date"),
    ("000000000000000000", "one character repeated"),  # passes the USCC check: never a subject (seen: null)
    ("00000000-0", "one character repeated"),
    ("12345678-9", "not a valid organisation code"),
    ("DROPTABLESUBJECTS", "not the shape of"),
    ("91410702MA3X5QJ87C", None),
    ("410102198805051237", None),
    ("410105850312123", None),  # 15 digits: a registration number, or an old ID number without a check digit
])
def test_no_record_says_why_no_subject_can_have_a_malformed_code(code, problem):
    result = check(None, "bidding", "2026-01-05", RULES, subject=code)
    assert result.outcome == "no_record"
    if problem is None:
        assert result.code_problem is None
    else:
        assert problem in (result.code_problem or ""), result.code_problem
    assert to_builtins(result)["code_problem"] == result.code_problem


def test_unknown_matter_and_instant():
    with pytest.raises(UnknownMatter, match="unknown matter 'procurement'.*government_procurement"):
        check(None, "procurement", "2026-01-05", RULES)
    with pytest.raises(ValueError, match="ISO form"):
        check(None, "bidding", "5 Jan", RULES)


def test_a_rulebook_without_a_catalogue_says_so():
    bare = rulebook_from_dict({k: v for k, v in _raw().items() if k not in ("matter", "measure")})
    with pytest.raises(UnknownMatter, match="no \\[matter"):
        check(None, "bidding", "2026-01-05", bare)


def _raw():
    import tomllib

    from domain.rulebook import DEFAULT_PATH
    with open(DEFAULT_PATH, "rb") as f:
        return tomllib.load(f)


def test_datetime_instants_are_china_dates():
    state = run([record_event(PEN, "2024-02-06")])
    # 2024-02-04 16:30 UTC is 2024-02-05 00:30 in China: listed
    assert check(state, "bidding", dt.datetime(2024, 2, 4, 16, 30, tzinfo=dt.UTC), RULES).outcome == "restricted"
    assert check(state, "bidding", "2024-02-04T15:59:00+00:00", RULES).outcome == "clear"


def test_the_result_is_json():
    state = run([record_event(PEN, "2024-02-06")])
    result = check(state, "government_procurement", "2024-06-03", RULES)
    doc = msgspec.json.decode(msgspec.json.encode(result))
    assert doc == to_builtins(result)
    assert doc["outcome"] == "restricted" and doc["at"] == "2024-06-03"
    assert doc["measures"][0]["id"] == "procurement.exclude"
    assert doc["basis"][0]["records"][0]["doc_no"] == "环罚〔2024〕1号"
    assert "subject_name" not in str(doc)  # no personal names in a check answer


# ----------------------------------------------------------------------------------- properties

MATTERS = ["government_procurement", "administrative_licensing", "high_consumption", "supervision"]


def answers(state):
    return {(matter, day): to_builtins(check(state, matter, day, RULES)) for matter in MATTERS
            for day in DATES + [TODAY, "2029-01-01"]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(list_inputs(), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_intervals_and_answers(inputs, rnd: random.Random):
    first = run(inputs)
    expected_intervals, expected_answers = intervals(first), answers(first)
    for result in expected_answers.values():
        assert result["outcome"] in OUTCOMES
        assert (result["outcome"] == "clear") == (not result["measures"] and not result["suspended"]
                                                  and not result["incentives"])
    for _ in range(2):
        order = list(inputs)
        rnd.shuffle(order)
        other = run(order)
        assert intervals(other) == expected_intervals
        assert answers(other) == expected_answers


def test_no_green_channel_the_day_a_subject_leaves_the_court_debtors_list():
    # RULES.md 4: three consecutive clean years. Listed 2019, deleted as performed 2025: its listing
    # was in force until then, so the red list waits three years from the deletion
    listing = record("court_listing", "执R", "2019-03-04", listing_reason="refuse_with_ability")
    deletion = record("court_deletion", "执R", "2025-03-03", deletion_reason="performed")
    state = run([record_event(listing, "2019-03-05"), record_event(deletion, "2025-03-04")])
    assert check(state, "administrative_licensing", "2025-03-02", RULES).outcome == "review"
    assert check(state, "administrative_licensing", "2025-03-03", RULES).outcome == "clear"
    assert check(state, "administrative_licensing", "2028-03-02", RULES).outcome == "clear"
    green = check(state, "administrative_licensing", "2028-03-03", RULES)
    assert green.outcome == "incentive" and ids(green.incentives) == ["licensing.green_channel"]


def test_a_repair_approved_while_an_objection_has_the_record_out_of_force_ends_nothing():
    # RULES.md 3: an approved repair ends publication and lifts joint punishment: both, or neither.
    # A repair approved after an upheld objection found the record wrong, before its correction,
    # ended the blacklist for good while the corrected penalty stayed published
    from domain.validate import decision_key
    from tests.builders import objection, repair

    penalty = record("penalty", "环罚G", "2024-02-05", severity="severe", domain="environment")
    key = decision_key(penalty)
    base = [record_event(penalty, "2024-02-06"),
            objection("OBG", key, "upheld", "2024-05-06", "2024-05-10", outcome="corrected", arrived="2024-05-10"),
            record_event(dict(penalty, fields={"fine_amount": "0.500000"}), "2024-07-01")]
    without = run(base)
    state = run(base + [repair(key, "2024-06-03", arrived="2024-06-03")])
    assert check(state, "bidding", "2024-07-01", RULES).outcome == check(without, "bidding", "2024-07-01", RULES).outcome
    assert check(state, "bidding", "2024-07-01", RULES).outcome == "restricted"
    assert state["evaluation"]["repairs"][key]["applied"] is False
    assert state["evaluation"]["repairs"][key]["reason"] == "record-out-of-force"
    assert state["evaluation"]["publicity"][key]["repaired"] is False


@pytest.mark.parametrize("decided, adverse", [("2019-06-03", True), ("2024-05-06", True), ("2025-08-04", False)])
def test_a_minor_penalty_ends_the_green_channel_where_its_regime_treats_it_as_general(decided, adverse):
    # RULES.md 4 (an adverse record ends the red list) and the rules file: the 2019 and 2023 regimes
    # treat 轻微 as 一般 (published as one); the 2025 tiers make it a tier of its own
    licence = record("license", "许1", "2015-03-04")
    minor = record("penalty", "罚1", decided, severity="minor", domain="market")
    state = run([record_event(licence, "2015-03-05"), record_event(minor, decided)])
    answer = check(state, "administrative_licensing", decided, RULES)
    assert (answer.outcome == "incentive") is not adverse, answer
