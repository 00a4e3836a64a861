"""domain.rulebook: the rules as data (RULES.md 3-5), loading and validation."""

from __future__ import annotations

import copy
import datetime as dt
import re
import tomllib

import pytest

from domain.rulebook import DEFAULT_PATH, RulebookError, load_rulebook, rulebook_from_dict


@pytest.fixture(scope="module")
def rules():
    return load_rulebook()


@pytest.fixture(scope="module")
def raw():
    with open(DEFAULT_PATH, "rb") as f:
        return tomllib.load(f)


def test_default_file_loads(rules):
    assert rules.version == "2026-12-07.2"
    assert [r.name for r in rules.regimes] == ["2019", "2023", "2025"]
    assert [r.minor_is_adverse for r in rules.regimes] == [True, True, False]  # 轻微 as 一般 before 2025
    assert rules.henan_max_disclosure_years == 5
    assert rules.escalation_min_domains == 2
    assert rules.red_list_clean_years == 3
    assert rules.court_debtor.period_years == 2
    assert rules.court_debtor.domain == "court_enforcement"
    assert load_rulebook(str(DEFAULT_PATH)) == rules


@pytest.mark.parametrize(
    "decision_date, regime",
    [
        ("2010-06-30", "2019"),  # older decisions: the earliest regime
        ("2019-07-16", "2019"),
        ("2023-04-30", "2019"),  # the day before NDRC order 58
        ("2023-05-01", "2023"),
        ("2025-06-21", "2023"),  # the day before 国办发〔2025〕22号
        ("2025-06-22", "2025"),  # 国办发〔2025〕22号 (RULES.md 3: the default start)
        ("2026-03-31", "2025"),  # before NDRC order 36 is in force: already the 2025 tiers
        ("2026-04-01", "2025"),
        (dt.date(2030, 1, 1), "2025"),
        (dt.datetime(2023, 5, 1, 8, 0), "2023"),
    ],
)
def test_regime_for(rules, decision_date, regime):
    assert rules.regime_for(decision_date).name == regime


@pytest.mark.parametrize(
    "decision_date, severity, domain, months",
    [
        # 2019: 一般 3-12, 严重 6-36; 轻微 and unknown count as 一般
        ("2023-04-30", "general", "market", (3, 12)),
        ("2023-04-30", "severe", "market", (6, 36)),
        ("2023-04-30", "minor", "market", (3, 12)),
        ("2023-04-30", None, "market", (3, 12)),
        ("2023-04-30", "severe", "fire", (6, 36)),  # no domain override before 2023-05-01
        # 2023: tiers (check): all 3-36; special equipment, work safety, fire: min 12 months
        ("2023-05-01", "general", "market", (3, 36)),
        ("2023-05-01", "severe", None, (3, 36)),
        ("2023-05-01", "minor", "market", (3, 36)),
        ("2023-05-01", "general", "fire", (12, 36)),
        ("2024-02-29", "severe", "work_safety", (12, 36)),
        ("2025-06-21", "general", "special_equipment", (12, 36)),
        # 2025 (from 2025-06-22): 轻微 0-3, 一般 3-12, 严重 12-36
        ("2025-06-22", "general", "market", (3, 12)),
        ("2025-06-22", "general", "special_equipment", (3, 12)),
        ("2026-04-01", "minor", "market", (0, 3)),
        ("2026-04-01", "general", "market", (3, 12)),
        ("2026-04-01", "severe", "market", (12, 36)),
        ("2026-04-01", "general", "fire", (3, 12)),
    ],
)
def test_publicity_months(rules, decision_date, severity, domain, months):
    assert rules.publicity_months(decision_date, severity, domain) == months


@pytest.mark.parametrize(
    "domain, category, expected",
    [
        ("food_drug", "责令停产停业", True),
        ("environment", "罚款;责令停产停业", True),
        ("construction", "吊销许可证", True),
        ("work_safety", "吊销营业执照", True),
        ("fire", ["罚款", "吊销执照"], True),
        ("environment", "Revoke licence", True),
        ("food_drug", "罚款;没收违法所得", False),
        ("market", "吊销营业执照", False),  # not one of the listed domains
        (None, "责令停产停业", False),
        ("food_drug", None, False),
    ],
)
def test_non_repairable(rules, domain, category, expected):
    fields = {"penalty_category": category} if category is not None else {}
    assert rules.is_non_repairable(domain, "severe", fields) is expected


@pytest.mark.parametrize(
    "severity, category, content, expected",
    [
        # RULES.md 3: "some severe cases cannot be repaired early": a general one can
        ("general", "吊销许可证", None, False),
        ("minor", "责令停产停业", None, False),
        ("severe", "吊销许可证", None, True),
        # the statutory category names a suspension and a revocation at once: its content says which
        # (seen: a general food penalty "暂扣或者吊销许可证" refused its repair, as non-repairable)
        ("severe", "暂扣或者吊销许可证", None, False),
        ("severe", "暂扣或者吊销许可证", "暂扣食品经营许可证三个月", False),
        ("severe", "暂扣或者吊销许可证", "吊销食品经营许可证", True),
        ("severe", "暂扣或者吊销执照", "吊销营业执照", True),
        ("severe", "罚款", "责令停产停业六个月", True),
        (None, "吊销许可证", None, False),  # no tier given: the rules' unknown_severity_tier, general
    ],
)
def test_non_repairable_only_severe_and_by_what_was_decided(rules, severity, category, content, expected):
    fields = {"penalty_category": category, "penalty_content": content}
    assert rules.is_non_repairable("food_drug", severity, fields) is expected


def test_non_repairable_tiers_are_checked(raw):
    doc = copy.deepcopy(raw)
    doc["non_repairable"]["severities"] = ["grave"]
    with pytest.raises(RulebookError, match="non_repairable.severities: 'grave'"):
        rulebook_from_dict(doc)
    doc["non_repairable"]["severities"] = ["general", "severe"]
    assert rulebook_from_dict(doc).is_non_repairable("food_drug", "general", {"penalty_category": "吊销许可证"})


@pytest.mark.parametrize(
    "domain, period",
    [
        ("wage_arrears", (3, 6)),
        ("work_safety", (3, 12)),
        ("environment", (3, None)),
        ("procurement", (3, None)),
        ("something_new", (3, None)),
        (None, (3, None)),
    ],
)
def test_listing_period(rules, domain, period):
    assert rules.listing_period(domain) == period


def _record(kind="penalty", severity="severe", domain="environment", *, category="legal_entity", simplified=False):
    return {"kind": kind, "severity": severity, "domain": domain, "subject_category": category,
            "simplified_procedure": simplified, "fields": {}}


@pytest.mark.parametrize(
    "record, list_domain",
    [
        (_record(), "environment"),
        (_record(domain="work_safety"), "work_safety"),
        (_record(domain="food_drug"), "food_drug"),
        (_record(domain="taxation"), "taxation"),
        (_record(domain="wage_arrears"), "wage_arrears"),
        (_record(severity="general"), None),
        (_record(domain="market"), None),
        (_record(domain=None), None),
        (_record(kind="action"), None),
        (_record(kind="license"), None),
        # Henan §13: simplified-procedure penalties on natural persons are never a basis
        (_record(category="natural_person", simplified=True), None),
        (_record(category="natural_person"), "environment"),
        (_record(simplified=True), "environment"),
        # a state entry: a linked record counts by its content's kind
        ({"kind": "linked", "severity": "severe", "domain": "environment", "content": _record()}, "environment"),
        ({"kind": "penalty", "severity": None, "domain": None, "content": _record()}, "environment"),
    ],
)
def test_blacklist_rule_for(rules, record, list_domain):
    rule = rules.blacklist_rule_for(record)
    assert (rule.list_domain if rule else None) == list_domain
    if rule:
        assert rules.rule_period_years(rule) == 3


@pytest.mark.parametrize(
    "fields, years",
    [
        ({"listing_reason": "evade"}, 2),
        ({"listing_reason": "false_report", "aggravation_years": 0}, 2),
        ({"listing_reason": "obstruct", "aggravated": True, "aggravation_years": 1}, 3),
        ({"listing_reason": "obstruct", "aggravated": True, "aggravation_years": 3}, 5),
        ({"listing_reason": "obstruct", "aggravated": True, "aggravation_years": 7}, 5),  # capped at +3
        ({"listing_reason": "obstruct", "aggravated": True}, 3),  # aggravated, years unknown: +1
        # not aggravated: the fixed 2 years, whatever aggravation_years says (it counted)
        ({"listing_reason": "obstruct", "aggravated": False, "aggravation_years": 2}, 2),
        ({"listing_reason": "evade", "aggravation_years": 3}, 2),
        ({"listing_reason": "refuse_with_ability"}, None),
        ({"listing_reason": "refuse_with_ability", "aggravation_years": 2}, None),
        ({}, 2),
    ],
)
def test_court_period_years(rules, fields, years):
    assert rules.court_period_years(fields) == years


def test_objection_workdays(rules):
    assert rules.objection_workdays(False) == 3
    assert rules.objection_workdays(True) == 7


# ------------------------------------------------------------------------------- custom rule sets


def test_custom_file_with_a_new_regime(tmp_path):
    text = re.sub(r'(?m)^version = ".*"$', 'version = "2027-01-01"', DEFAULT_PATH.read_text(encoding="utf-8"))
    text += '\n[[regime]]\nname = "2027"\nfrom = 2027-01-01\n' \
            'tiers = { minor = { min_months = 0, max_months = 0 }, general = { min_months = 1, max_months = 6 },' \
            ' severe = { min_months = 6, max_months = 24 } }\n'
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    rules = load_rulebook(path)
    assert rules.version == "2027-01-01"
    assert rules.regime_for("2026-12-31").name == "2025"
    assert rules.regime_for("2027-01-01").name == "2027"  # TOML dates are accepted as well
    assert rules.publicity_months("2027-01-01", "general", "fire") == (1, 6)


def test_2025_regime_from_2025_06_22_and_movable(rules, tmp_path):
    """RULES.md 3: the 2025 tiers apply to decisions on or after 2025-06-22 (国办发〔2025〕22号);
    an operator may move the start (a province dating them from 2026-04-01) in a rules file."""
    # a 一般 (general) penalty of 2025-12-01: the 2025 tiers, at most 12 months (not the 2023 regime's 36)
    assert rules.regime_for("2025-12-01").name == "2025"
    assert rules.publicity_months("2025-12-01", "general", "market") == (3, 12)
    # decided the day before: the previous (2023) regime
    assert rules.regime_for("2025-06-21").name == "2023"
    assert rules.publicity_months("2025-06-21", "general", "market") == (3, 36)
    assert rules.regime_for("2025-06-21").source == "NDRC order 58"
    assert "国办发〔2025〕22号" in rules.regime_for("2025-06-22").source

    # the same file with only the 2025 regime's start moved to 2026-04-01
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    assert text.count('from = "2025-06-22"') == 1
    path = tmp_path / "rules_2026.toml"
    path.write_text(text.replace('from = "2025-06-22"', 'from = "2026-04-01"'), encoding="utf-8")
    moved = load_rulebook(path)
    assert moved.regime_for("2025-12-01").name == "2023"
    assert moved.publicity_months("2025-12-01", "general", "market") == (3, 36)
    assert moved.regime_for("2026-03-31").name == "2023"
    assert moved.regime_for("2026-04-01").name == "2025"
    assert moved.publicity_months("2026-04-01", "general", "market") == (3, 12)


def _set(doc, path, value):
    target = doc
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("version",), _DELETE, "version"),
        (("version",), "", "version"),
        (("regime",), [], "regime"),
        (("regime", 0, "from"), "2019-13-01", "from"),
        (("regime", 0, "from"), _DELETE, "from"),
        (("regime", 1, "from"), "1949-10-01", "same start date"),
        (("regime", 1, "name"), "2019", "duplicate names"),
        (("regime", 0, "tiers", "severe"), {"min_months": 40, "max_months": 36}, "min_months 40 > max_months 36"),
        (("regime", 0, "tiers", "severe"), {"min_months": 6}, "max_months"),
        (("regime", 0, "tiers", "severe"), _DELETE, "tiers.severe"),
        (("regime", 0, "tiers", "grave"), {"min_months": 1, "max_months": 2}, "unknown tier"),
        (("regime", 0, "tiers", "general", "min_months"), -1, "< 0"),
        (("regime", 0, "tiers", "general", "min_months"), "3", "not a whole number"),
        (("regime", 0, "tiers", "general", "min_months"), True, "not a whole number"),
        (("regime", 1, "domain_min_months", "fire"), 1.5, "fire"),
        (("regime", 0, "typo"), 1, "unknown key"),
        (("regime", 0, "minor_is_adverse"), "yes", "minor_is_adverse: true or false"),
        (("unknown_severity_tier",), "grave", "unknown_severity_tier"),
        (("henan_max_disclosure_years",), 0, "henan_max_disclosure_years"),
        (("non_repairable", "markers"), [], "markers"),
        (("non_repairable", "domains"), "food_drug", "not a list"),
        (("blacklist_default", "period_years"), 0, "period_years"),
        (("blacklist_domain", "wage_arrears", "early_removal_months"), 36, "not shorter"),
        (("blacklist_domain", "wage_arrears", "early"), 6, "unknown key"),
        (("blacklist_rule", 0, "kinds"), ["penalty", "fine"], "kinds"),
        (("blacklist_rule", 0, "kinds"), [], "kinds"),
        (("blacklist_rule", 0, "severity"), "grave", "severity"),
        (("blacklist_rule", 0, "domain"), _DELETE, "domain"),
        (("blacklist_rule", 0, "period_years"), 0, "period_years"),
        (("court_debtor",), _DELETE, "court_debtor"),
        (("court_debtor", "period_years"), _DELETE, "court_debtor.period_years"),
        (("escalation", "min_domains"), 1, "min_domains"),
        (("red_list",), _DELETE, "red_list"),
        (("objection", "platform_workdays"), 0, "platform_workdays"),
    ],
)
def test_validation_errors(raw, path, value, message):
    doc = copy.deepcopy(raw)
    _set(doc, path, value)
    with pytest.raises(RulebookError, match=message):
        rulebook_from_dict(doc)


def test_optional_parts_have_defaults(raw):
    doc = copy.deepcopy(raw)
    for key in ("blacklist_rule", "blacklist_domain", "blacklist_default", "non_repairable"):
        del doc[key]
    rules = rulebook_from_dict(doc)
    assert rules.blacklist_rules == ()
    assert rules.listing_period("wage_arrears") == (3, None)
    assert not rules.is_non_repairable("food_drug", "severe", {"penalty_category": "责令停产停业"})


def test_file_errors(tmp_path):
    with pytest.raises(RulebookError, match="cannot read"):
        load_rulebook(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = \n", encoding="utf-8")
    with pytest.raises(RulebookError, match="not valid TOML"):
        load_rulebook(bad)


def test_rulebook_is_immutable(rules):
    with pytest.raises(AttributeError):
        rules.version = "x"  # type: ignore[misc]


# ------------------------------------------------------------------------------- measures catalogue (issue 15, 1)

REQUIRED_MATTERS = {"government_procurement", "bidding", "administrative_licensing", "fiscal_subsidies", "honours",
                    "financing", "public_resource_trading", "high_consumption", "exit_control",
                    "internet_information_services"}


def test_catalogue_loads(rules):
    assert REQUIRED_MATTERS <= set(rules.matters)
    assert rules.matters["government_procurement"].zh == "政府采购"
    assert all(m.source and m.description_zh and m.description_en for m in rules.measures)
    assert len({m.id for m in rules.measures}) == len(rules.measures)
    # every matter has a measure; every list kind triggers something
    assert all(rules.measures_for(name) for name in rules.matters)
    triggers = {t for m in rules.measures for t in m.lists}
    assert {"blacklist", "court_debtor", "court_debtor:refuse_with_ability", "escalated", "red_list"} <= triggers
    high = rules.measures_for("high_consumption")
    assert [(m.id, m.effect, m.lists) for m in high] == [
        ("high_consumption.restrict", "prohibit", ("court_debtor:refuse_with_ability",))]
    assert "法释〔2017〕7号" in high[0].source
    # the general blacklist measures reach every court debtor (docs/checks.md), the financing ones too
    general = [m for m in rules.measures if "blacklist" in m.lists and m.effect != "incentive"]
    assert general and all("court_debtor" in m.lists for m in general), \
        [m.id for m in general if "court_debtor" not in m.lists]
    lic = rules.measures_for("administrative_licensing")
    assert {m.effect for m in lic} == {"review", "prohibit", "incentive"}
    green = next(m for m in lic if m.effect == "incentive")
    assert green.lists == ("red_list",) and "容缺受理" in green.description_zh
    with pytest.raises(KeyError):
        rules.measures_for("procurement")


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("measure", 0, "lists"), ["blacklist", "greylist"], "unknown list 'greylist'"),
        (("measure", 0, "lists"), ["blacklist:space"], "no blacklist domain 'space'"),
        (("measure", 0, "lists"), ["court_debtor:rich"], "no court listing reason 'rich'"),
        (("measure", 0, "lists"), ["escalated:taxation"], "unknown list 'escalated:taxation'"),
        (("measure", 0, "lists"), [], "lists: missing or empty"),
        (("measure", 0, "lists"), _DELETE, "lists: missing or empty"),
        (("measure", 0, "matters"), ["administrative_licensing", "parking"], r"unknown matter\(s\) \['parking'\]"),
        (("measure", 0, "matters"), [], "matters: missing or empty"),
        (("measure", 0, "source"), _DELETE, "source: missing"),
        (("measure", 0, "source"), "  ", "source: missing"),
        (("measure", 0, "effect"), "fine", "effect: 'fine' is not one of"),
        (("measure", 0, "effect"), "incentive", "incentive is triggered by the red list only"),
        (("measure", 0, "lists"), ["red_list"], "the red list triggers incentives only"),
        (("measure", 1, "id"), "licensing.extra_review", "duplicate id"),
        (("measure", 0, "id"), _DELETE, r"measure\[0\].id"),
        (("measure", 0, "description_en"), _DELETE, "description_en"),
        (("measure", 0, "typo"), 1, "unknown key"),
        (("matter", "honours", "zh"), _DELETE, "matter.honours.zh"),
        (("matter", "honours", "note"), "x", "unknown key"),
        (("matter", "honours"), "评优评先", "not a table"),
        (("matter",), _DELETE, "no \\[matter"),
        (("measure",), {"id": "x"}, "array of tables"),
    ],
)
def test_catalogue_validation_errors(raw, path, value, message):
    doc = copy.deepcopy(raw)
    _set(doc, path, value)
    with pytest.raises(RulebookError, match=message):
        rulebook_from_dict(doc)


def test_catalogue_accepts_every_trigger_form(raw):
    doc = copy.deepcopy(raw)
    doc["measure"][0]["lists"] = ["blacklist", "blacklist:wage_arrears", "blacklist:market", "court_debtor",
                                  "court_debtor:evade", "escalated"]
    rules = rulebook_from_dict(doc)
    assert rules.measures[0].lists[-1] == "escalated"


def test_catalogue_is_optional_but_then_knows_no_matter(raw):
    doc = copy.deepcopy(raw)
    del doc["matter"], doc["measure"]
    rules = rulebook_from_dict(doc)
    assert rules.matters == {} and rules.measures == ()
    with pytest.raises(KeyError):
        rules.measures_for("bidding")


def test_a_publicity_maximum_past_the_henan_cap_is_refused(raw):
    # RULES.md 3: past 5 years disclosure runs on only while the subject is on a list, which the
    # rules core does not model: a regime that needs it is refused, with the reason, not applied wrong
    import copy

    data = copy.deepcopy(raw)
    data["regime"].append({"name": "long", "from": "2027-01-01",
                           "tiers": {t: {"min_months": 6, "max_months": 84} for t in ("minor", "general", "severe")}})
    with pytest.raises(RulebookError, match="max_months 84 is past henan_max_disclosure_years"):
        rulebook_from_dict(data)
    data["regime"][-1]["tiers"] = {t: {"min_months": 6, "max_months": 60} for t in ("minor", "general", "severe")}
    assert rulebook_from_dict(data).regimes[-1].name == "long"


def test_a_domain_minimum_past_the_henan_cap_is_refused(raw):
    # a domain's minimum raises the maximum with it (publicity_months): one past the cap was accepted
    # and, cut back to the cap, made the penalty unrepairable (repair_from == the end of publicity);
    # refused as a tier's maximum past the cap is, naming the key and the cap
    import copy

    data = copy.deepcopy(raw)
    (regime,) = [r for r in data["regime"] if r["name"] == "2023"]
    regime["domain_min_months"]["fire"] = 72
    with pytest.raises(RulebookError, match=r"regime '2023', domain_min_months\.fire: 72 months is past "
                                            r"henan_max_disclosure_years \(5 years\).*at or below 60 months"):
        rulebook_from_dict(data)
    regime["domain_min_months"]["fire"] = 60  # at the cap: accepted (repair at the end, as a tier's 60/60)
    rules = rulebook_from_dict(data)
    assert rules.publicity_months("2024-03-01", "severe", "fire") == (60, 60)


def test_a_rules_file_without_the_newer_keys_keeps_its_meaning(raw):
    """Seen in an upgrade: an operator's rules file (copied from the earlier default, its version
    unchanged) had its non-repairable cases narrowed to severe ones by the new code's default, so
    subjects derived before and after the upgrade disagreed for good. Without `severities`, every
    tier; without `ambiguous`, no phrase taken out; `fields` as it says."""
    doc = copy.deepcopy(raw)
    for key in ("severities", "ambiguous"):
        del doc["non_repairable"][key]
    doc["non_repairable"]["fields"] = ["penalty_category"]
    rules = rulebook_from_dict(doc)
    assert rules.is_non_repairable("food_drug", "general", {"penalty_category": "吊销许可证"})
    assert rules.is_non_repairable("food_drug", "general", {"penalty_category": "暂扣或者吊销许可证"})
    assert not rules.is_non_repairable("food_drug", "general", {"penalty_content": "吊销许可证"})
