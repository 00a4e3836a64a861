"""The credit rules as data: publicity regimes, blacklist rules, list periods, deadlines.

``load_rulebook(path)`` reads a TOML file (``rules_default.toml`` beside this module when ``path``
is None) and validates it: a malformed rule set raises ``RulebookError`` naming the bad key, so a
bad deployment fails at start, not on the first record. The rulebook is immutable and pure: the
lists core (``domain.lists``) asks it questions, it never looks at Kafka, Redis or the clock.

Rules in force by date (RULES.md 3): ``regime_for(decision_date)`` picks the regime whose ``from``
is the latest on or before the decision date (the earliest regime also covers older decisions).

The measures catalogue (奖惩措施清单, RULES.md 8): the matters a credit check can be asked about
(``[matter.<name>]``) and the measures (``[[measure]]``) each list triggers for them, with the policy
source of each; ``measures_for(matter)`` answers them (domain/checks.py applies them at an instant).
A measure's ``lists`` name its triggers (see ``TRIGGER_FORMS``); an unknown list, matter or effect,
or a measure without a source, is a ``RulebookError``.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from os import PathLike
from pathlib import Path
from typing import Any, Final

from domain.types import Doc, View
from domain.vocabulary import LIST_DOMAINS, LISTING_REASONS

__all__ = [
    "DEFAULT_PATH",
    "TIERS",
    "RULE_KINDS",
    "Rulebook",
    "RulebookError",
    "Regime",
    "Tier",
    "BlacklistRule",
    "CourtDebtorRule",
    "EFFECTS",
    "Matter",
    "Measure",
    "TRIGGER_FORMS",
    "load_rulebook",
    "default_rulebook",
]

DEFAULT_PATH: Final = Path(__file__).with_name("rules_default.toml")
TIERS: Final = ("minor", "general", "severe")
# Record kinds an operator rule can match (listing decisions and court listings are lists already).
RULE_KINDS: Final = frozenset(("penalty", "action", "license"))
# What a measure does: restrict / prohibit (punishment), review (extra review conditions, focused
# supervision), incentive (red list).
EFFECTS: Final = ("prohibit", "restrict", "review", "incentive")
# The lists a measure can name as its triggers.
TRIGGER_FORMS: Final = (
    "blacklist",                   # on the blacklist of any domain (严重失信主体名单)
    "blacklist:<domain>",          # on that domain's blacklist
    "court_debtor",                # on the court-debtor list (失信被执行人)
    "court_debtor:<reason>",       # ... by a listing with that reason (refuse_with_ability: 有履行能力而拒不履行)
    "escalated",                   # on blacklists of escalation.min_domains domains or more
    "red_list",                    # three clean years (守信激励); incentives only
)


class RulebookError(ValueError):
    """The rule set is malformed; the message names the key."""


@dataclass(frozen=True)
class Tier:
    min_months: int
    max_months: int


@dataclass(frozen=True)
class Regime:
    name: str
    start: dt.date
    tiers: dict[str, Tier]
    domain_min_months: dict[str, int] = field(default_factory=dict)
    source: str = ""
    minor_is_adverse: bool = False
    """A 轻微 (minor) penalty of this regime is an adverse record (it ends a red list): where the
    regime treats 轻微 as 一般 (2019, 2023)."""


@dataclass(frozen=True)
class BlacklistRule:
    domain: str
    severity: str | None  # None: any severity
    kinds: frozenset[str]
    period_years: int | None  # None: the list domain's period
    list_domain: str  # the blacklist the subject enters (default: the record's domain)


@dataclass(frozen=True)
class CourtDebtorRule:
    domain: str
    period_years: int
    max_aggravation_years: int
    no_fixed_term_reasons: frozenset[str]
    wrongful_deletion_reasons: frozenset[str]


@dataclass(frozen=True)
class Matter:
    """A matter a credit check is made for (事项): government procurement, licensing, ..."""

    name: str
    zh: str
    en: str


@dataclass(frozen=True)
class Measure:
    """One entry of the measures catalogue: what ``lists`` trigger for ``matters``, and why."""

    id: str
    matters: tuple[str, ...]
    effect: str              # one of EFFECTS
    lists: tuple[str, ...]   # triggers, see TRIGGER_FORMS
    description_zh: str
    description_en: str
    source: str              # the policy text it rests on


@dataclass(frozen=True)
class Rulebook:
    version: str
    regimes: tuple[Regime, ...]  # sorted by start
    unknown_severity_tier: str
    henan_max_disclosure_years: int
    non_repairable_domains: frozenset[str]
    non_repairable_fields: tuple[str, ...]
    non_repairable_markers: tuple[str, ...]  # lower-cased
    blacklist_default_years: int
    blacklist_domains: dict[str, tuple[int, int | None]]  # domain -> (years, early months)
    blacklist_rules: tuple[BlacklistRule, ...]
    court_debtor: CourtDebtorRule
    escalation_min_domains: int
    red_list_clean_years: int
    objection_platform_workdays: int
    objection_provider_workdays: int
    source: str = ""
    non_repairable_severities: frozenset[str] = frozenset(TIERS)
    non_repairable_ambiguous: tuple[str, ...] = ()  # lower-cased; removed before the markers are sought
    matters: dict[str, Matter] = field(default_factory=dict)
    measures: tuple[Measure, ...] = ()

    # ---------------------------------------------------------------------------- publicity

    def regime_for(self, decision_date: dt.date | str) -> Regime:
        """The regime in force on ``decision_date`` (the earliest one for older dates)."""
        d = _to_date(decision_date)
        chosen = self.regimes[0]
        for regime in self.regimes:
            if regime.start <= d:
                chosen = regime
            else:
                break
        return chosen

    def tier_of(self, severity: str | None) -> str:
        return severity if severity in TIERS else self.unknown_severity_tier

    def publicity_months(self, decision_date: dt.date | str, severity: str | None,
                         domain: str | None) -> tuple[int, int]:
        """(min_months, max_months) of publicity for one penalty (one record = one tier).

        min: credit repair possible from then; max: publication ends. A domain override of the
        regime raises the minimum (and the maximum with it if it would fall below)."""
        regime = self.regime_for(decision_date)
        tier = regime.tiers[self.tier_of(severity)]
        low, high = tier.min_months, tier.max_months
        override = regime.domain_min_months.get(domain) if domain else None
        if override is not None and override > low:
            low = override
            high = max(high, low)
        return low, high

    def is_non_repairable(self, domain: str | None, severity: str | None, fields: Doc | None) -> bool:
        """A severe stop-business / revoked-licence penalty in a listed domain: no early repair
        (RULES.md 3: "some severe cases"). The statutory category that names a suspension and a
        revocation at once (暂扣或者吊销许可证) is no marker by itself: its phrase is removed before
        the markers are sought, so the decision's content says which it was."""
        if domain not in self.non_repairable_domains or not fields \
                or self.tier_of(severity) not in self.non_repairable_severities:
            return False
        for name in self.non_repairable_fields:
            value = fields.get(name)
            if not value:
                continue
            text = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            text = text.lower()
            for phrase in self.non_repairable_ambiguous:
                text = text.replace(phrase, " ")
            if any(marker in text for marker in self.non_repairable_markers):
                return True
        return False

    # ---------------------------------------------------------------------------- lists

    def listing_period(self, domain: str | None) -> tuple[int, int | None]:
        """(listing years, early-removal months or None) of a domain's blacklist."""
        if domain is None:
            return self.blacklist_default_years, None
        return self.blacklist_domains.get(domain, (self.blacklist_default_years, None))

    def blacklist_rule_for(self, record: View) -> BlacklistRule | None:
        """The first operator rule that the record matches, or None.

        ``record``: a canonical record or a subject-state entry (``kind``, ``severity``,
        ``domain``, ``content``). A linked record (kind ``linked``) counts by its content's kind.
        Simplified-procedure penalties on natural persons are never a basis (Henan §13)."""
        content = record.get("content") or record
        kind = record.get("kind")
        if kind == "linked":
            kind = content.get("kind")
        domain = record.get("domain") or content.get("domain")
        if not domain:
            return None
        severity = record.get("severity") or content.get("severity")
        if content.get("simplified_procedure") and content.get("subject_category") == "natural_person":
            return None
        for rule in self.blacklist_rules:
            if rule.domain == domain and kind in rule.kinds and (
                    rule.severity is None or rule.severity == severity):
                return rule
        return None

    def rule_period_years(self, rule: BlacklistRule) -> int:
        return rule.period_years if rule.period_years is not None else self.listing_period(rule.list_domain)[0]

    def court_period_years(self, fields: Doc | None) -> int | None:
        """Listing period of a court debtor listing: 2 years, + aggravation (capped) when the
        listing is ``aggravated``, None for a reason with no fixed term. ``aggravated`` without a
        number of years adds 1; ``aggravation_years`` of a listing not aggravated add nothing."""
        fields = fields or {}
        rule = self.court_debtor
        if fields.get("listing_reason") in rule.no_fixed_term_reasons:
            return None
        if fields.get("aggravated") is not True:
            return rule.period_years
        extra = fields.get("aggravation_years")
        if not isinstance(extra, int) or isinstance(extra, bool) or extra <= 0:
            extra = 1
        return rule.period_years + min(extra, rule.max_aggravation_years)

    def objection_workdays(self, provider_verification: bool) -> int:
        return self.objection_provider_workdays if provider_verification else self.objection_platform_workdays

    # ---------------------------------------------------------------------------- measures

    def measures_for(self, matter: str) -> tuple[Measure, ...]:
        """The catalogue's measures for one matter, in file order. Raises ``KeyError`` for a matter
        the catalogue does not know (the caller says which matters it knows)."""
        if matter not in self.matters:
            raise KeyError(matter)
        return tuple(m for m in self.measures if matter in m.matters)


# -------------------------------------------------------------------------------------------- loading


def load_rulebook(path: str | PathLike[str] | None = None) -> Rulebook:
    """Read and validate a rule set; ``None``: the default file beside this module."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise RulebookError(f"{path}: cannot read: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise RulebookError(f"{path}: not valid TOML: {e}") from e
    return rulebook_from_dict(data, source=str(path))


@lru_cache(maxsize=1)
def default_rulebook() -> Rulebook:
    """The default rule set, loaded once."""
    return load_rulebook(None)


def rulebook_from_dict(data: Doc, *, source: str = "") -> Rulebook:
    """Validate a parsed rule set (the TOML document as a dict)."""
    if not isinstance(data, dict):
        raise RulebookError("rule set: not a table")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise RulebookError("version: missing (a string, e.g. \"2026-11-01\")")

    regimes = _regimes(data.get("regime"))
    unknown_tier = data.get("unknown_severity_tier", "general")
    if unknown_tier not in TIERS:
        raise RulebookError(f"unknown_severity_tier: {unknown_tier!r} is not one of {TIERS}")

    nr = _table(data, "non_repairable", required=False)
    nr_domains = _str_list(nr, "non_repairable.domains", "domains", default=[])
    nr_fields = _str_list(nr, "non_repairable.fields", "fields", default=["penalty_category"])
    nr_markers = _str_list(nr, "non_repairable.markers", "markers", default=[])
    if nr_domains and not nr_markers:
        raise RulebookError("non_repairable.markers: empty, but domains are listed")
    # a rules file that names no tiers keeps what it meant before the key existed: every tier (the
    # shipped file names ["severe"]); a file's meaning never changes under it with its version unchanged
    nr_severities = _str_list(nr, "non_repairable.severities", "severities", default=list(TIERS))
    for name in nr_severities:
        if name not in TIERS:
            raise RulebookError(f"non_repairable.severities: {name!r} is not one of {TIERS}")
    nr_ambiguous = _str_list(nr, "non_repairable.ambiguous", "ambiguous", default=[])

    default_table = _table(data, "blacklist_default", required=False)
    default_years = _int(default_table, "blacklist_default.period_years", "period_years", minimum=1, default=3)
    domains: dict[str, tuple[int, int | None]] = {}
    for name, table in _table(data, "blacklist_domain", required=False).items():
        where = f"blacklist_domain.{name}"
        if not isinstance(table, dict):
            raise RulebookError(f"{where}: not a table")
        _only(table, where, {"period_years", "early_removal_months"})
        years = _int(table, f"{where}.period_years", "period_years", minimum=1, default=default_years)
        early = _int(table, f"{where}.early_removal_months", "early_removal_months", minimum=0, default=None)
        if early is not None and early >= years * 12:
            raise RulebookError(f"{where}.early_removal_months: {early} is not shorter than the period")
        domains[name] = (years, early)

    rules = []
    raw_rules = data.get("blacklist_rule", [])
    if not isinstance(raw_rules, list):
        raise RulebookError("blacklist_rule: not an array of tables ([[blacklist_rule]])")
    for i, table in enumerate(raw_rules):
        where = f"blacklist_rule[{i}]"
        if not isinstance(table, dict):
            raise RulebookError(f"{where}: not a table")
        _only(table, where, {"domain", "severity", "kinds", "period_years", "list_domain"})
        domain = _str(table, f"{where}.domain", "domain")
        severity = table.get("severity")
        if severity is not None and severity not in TIERS:
            raise RulebookError(f"{where}.severity: {severity!r} is not one of {TIERS}")
        kinds = _str_list(table, f"{where}.kinds", "kinds", default=["penalty"])
        bad = sorted(set(kinds) - RULE_KINDS)
        if bad or not kinds:
            raise RulebookError(f"{where}.kinds: {bad or 'empty'} (known: {sorted(RULE_KINDS)})")
        period = _int(table, f"{where}.period_years", "period_years", minimum=1, default=None)
        list_domain = table.get("list_domain", domain)
        if not isinstance(list_domain, str) or not list_domain:
            raise RulebookError(f"{where}.list_domain: not a non-empty string")
        rules.append(BlacklistRule(domain, severity, frozenset(kinds), period, list_domain))

    court = _table(data, "court_debtor", required=True)
    court_rule = CourtDebtorRule(
        domain=_str(court, "court_debtor.domain", "domain", default="court_enforcement"),
        period_years=_int(court, "court_debtor.period_years", "period_years", minimum=1),
        max_aggravation_years=_int(court, "court_debtor.max_aggravation_years", "max_aggravation_years",
                                   minimum=0, default=3),
        no_fixed_term_reasons=frozenset(_str_list(court, "court_debtor.no_fixed_term_reasons",
                                                  "no_fixed_term_reasons", default=[])),
        wrongful_deletion_reasons=frozenset(_str_list(court, "court_debtor.wrongful_deletion_reasons",
                                                      "wrongful_deletion_reasons", default=[])),
    )

    henan_years = _int(data, "henan_max_disclosure_years", "henan_max_disclosure_years", minimum=1)
    for regime in regimes:
        for tier_name, tier in sorted(regime.tiers.items()):
            if tier.max_months > 12 * henan_years:
                # RULES.md 3: past the cap, disclosure runs on only while the subject is on a list, a
                # dependency between records the rules core does not model: refused, never applied wrong
                raise RulebookError(
                    f"regime {regime.name!r}, tier {tier_name}: max_months {tier.max_months} is past "
                    f"henan_max_disclosure_years ({henan_years} years): disclosure past it would have to run "
                    f"on only while the subject is on a list, which is not supported; keep the maximum at "
                    f"or below {12 * henan_years} months")
        for domain, months in sorted(regime.domain_min_months.items()):
            if months > 12 * henan_years:
                # a domain's minimum raises the maximum with it (publicity_months): past the cap it
                # would be cut back to the cap and leave no time for a repair; refused as a tier's
                raise RulebookError(
                    f"regime {regime.name!r}, domain_min_months.{domain}: {months} months is past "
                    f"henan_max_disclosure_years ({henan_years} years): the minimum raises the maximum with "
                    f"it, and disclosure past the cap would have to run on only while the subject is on a "
                    f"list, which is not supported; keep it at or below {12 * henan_years} months")

    escalation = _table(data, "escalation", required=True)
    red_list = _table(data, "red_list", required=True)
    objection = _table(data, "objection", required=True)
    matters = _matters(data)
    known_domains = LIST_DOMAINS | set(domains) | {r.list_domain for r in rules} | {court_rule.domain}
    measures = _measures(data, matters, known_domains)
    return Rulebook(
        version=version.strip(),
        regimes=regimes,
        unknown_severity_tier=unknown_tier,
        henan_max_disclosure_years=henan_years,
        non_repairable_domains=frozenset(nr_domains),
        non_repairable_fields=tuple(nr_fields),
        non_repairable_markers=tuple(m.lower() for m in nr_markers),
        non_repairable_severities=frozenset(nr_severities),
        non_repairable_ambiguous=tuple(a.lower() for a in nr_ambiguous),
        blacklist_default_years=default_years,
        blacklist_domains=domains,
        blacklist_rules=tuple(rules),
        court_debtor=court_rule,
        escalation_min_domains=_int(escalation, "escalation.min_domains", "min_domains", minimum=2),
        red_list_clean_years=_int(red_list, "red_list.clean_years", "clean_years", minimum=1),
        objection_platform_workdays=_int(objection, "objection.platform_workdays", "platform_workdays", minimum=1),
        objection_provider_workdays=_int(objection, "objection.provider_verification_workdays",
                                         "provider_verification_workdays", minimum=1),
        source=source,
        matters=matters,
        measures=measures,
    )


def _matters(data: Doc) -> dict[str, Matter]:
    out = {}
    for name, table in _table(data, "matter", required=False).items():
        where = f"matter.{name}"
        if not isinstance(table, dict):
            raise RulebookError(f"{where}: not a table (zh, en)")
        _only(table, where, {"zh", "en"})
        out[name] = Matter(name, _str(table, f"{where}.zh", "zh"), _str(table, f"{where}.en", "en"))
    return out


def _measures(data: Doc, matters: dict[str, Matter], known_domains: set[str] | frozenset[str]
              ) -> tuple[Measure, ...]:
    raw = data.get("measure", [])
    if not isinstance(raw, list):
        raise RulebookError("measure: not an array of tables ([[measure]])")
    if raw and not matters:
        raise RulebookError("measure: measures are listed but no [matter.<name>] is")
    out: list[Measure] = []
    seen: set[str] = set()
    for i, table in enumerate(raw):
        if not isinstance(table, dict):
            raise RulebookError(f"measure[{i}]: not a table")
        mid = _str(table, f"measure[{i}].id", "id").strip()
        where = f"measure {mid!r}"
        if mid in seen:
            raise RulebookError(f"{where}: duplicate id")
        seen.add(mid)
        _only(table, where, {"id", "matters", "effect", "lists", "description_zh", "description_en", "source"})
        names = _str_list(table, f"{where}.matters", "matters", default=[])
        if not names:
            raise RulebookError(f"{where}.matters: missing or empty (known: {sorted(matters)})")
        unknown = sorted(set(names) - set(matters))
        if unknown:
            raise RulebookError(f"{where}.matters: unknown matter(s) {unknown} (known: {sorted(matters)}; "
                                f"add a [matter.<name>] table)")
        effect = table.get("effect")
        if effect not in EFFECTS:
            raise RulebookError(f"{where}.effect: {effect!r} is not one of {EFFECTS}")
        lists = _str_list(table, f"{where}.lists", "lists", default=[])
        if not lists:
            raise RulebookError(f"{where}.lists: missing or empty (forms: {', '.join(TRIGGER_FORMS)})")
        for name in lists:
            problem = _trigger_problem(name, known_domains)
            if problem:
                raise RulebookError(f"{where}.lists: unknown list {name!r}: {problem}")
        if effect == "incentive" and set(lists) != {"red_list"}:
            raise RulebookError(f"{where}: an incentive is triggered by the red list only, not {lists}")
        if effect != "incentive" and "red_list" in lists:
            raise RulebookError(f"{where}: the red list triggers incentives only, not effect {effect!r}")
        if "source" not in table or not isinstance(table["source"], str) or not table["source"].strip():
            raise RulebookError(f"{where}.source: missing (name the policy text the measure rests on, "
                                f"e.g. \"豫政〔2016〕65号\")")
        out.append(Measure(
            id=mid, matters=tuple(dict.fromkeys(names)), effect=effect, lists=tuple(dict.fromkeys(lists)),
            description_zh=_str(table, f"{where}.description_zh", "description_zh").strip(),
            description_en=_str(table, f"{where}.description_en", "description_en").strip(),
            source=table["source"].strip()))
    return tuple(out)


def _trigger_problem(name: str, known_domains: set[str] | frozenset[str]) -> str | None:
    """Why a measure's trigger is not a list the rules know (None: it is)."""
    head, sep, tail = name.partition(":")
    if not sep and head in ("blacklist", "court_debtor", "escalated", "red_list"):
        return None
    if sep and head == "blacklist":
        return None if tail in known_domains else f"no blacklist domain {tail!r} (known: {sorted(known_domains)})"
    if sep and head == "court_debtor":
        return None if tail in LISTING_REASONS else \
            f"no court listing reason {tail!r} (known: {sorted(LISTING_REASONS)})"
    return f"forms: {', '.join(TRIGGER_FORMS)}"


def _regimes(raw: Any) -> tuple[Regime, ...]:
    if not isinstance(raw, list) or not raw:
        raise RulebookError("regime: at least one [[regime]] is needed")
    out = []
    for i, table in enumerate(raw):
        if not isinstance(table, dict):
            raise RulebookError(f"regime[{i}]: not a table")
        name = _str(table, f"regime[{i}].name", "name")
        where = f"regime {name!r}"
        _only(table, where, {"name", "from", "source", "tiers", "domain_min_months", "note", "minor_is_adverse"})
        minor_is_adverse = table.get("minor_is_adverse", False)
        if not isinstance(minor_is_adverse, bool):
            raise RulebookError(f"{where}.minor_is_adverse: true or false, not {minor_is_adverse!r}")
        start = table.get("from")
        if isinstance(start, str):
            try:
                start = dt.date.fromisoformat(start)
            except ValueError:
                raise RulebookError(f"{where}.from: {start!r} is not a date (YYYY-MM-DD)") from None
        elif isinstance(start, dt.datetime) or not isinstance(start, dt.date):
            raise RulebookError(f"{where}.from: missing or not a date (YYYY-MM-DD)")
        tiers_raw = table.get("tiers")
        if not isinstance(tiers_raw, dict):
            raise RulebookError(f"{where}.tiers: missing (minor, general, severe)")
        tiers = {}
        for tier in TIERS:
            t = tiers_raw.get(tier)
            if not isinstance(t, dict):
                raise RulebookError(f"{where}.tiers.{tier}: missing")
            _only(t, f"{where}.tiers.{tier}", {"min_months", "max_months"})
            low = _int(t, f"{where}.tiers.{tier}.min_months", "min_months", minimum=0)
            high = _int(t, f"{where}.tiers.{tier}.max_months", "max_months", minimum=0)
            if low > high:
                raise RulebookError(f"{where}.tiers.{tier}: min_months {low} > max_months {high}")
            tiers[tier] = Tier(low, high)
        extra = set(tiers_raw) - set(TIERS)
        if extra:
            raise RulebookError(f"{where}.tiers: unknown tier(s) {sorted(extra)}")
        overrides_raw = table.get("domain_min_months", {})
        if not isinstance(overrides_raw, dict):
            raise RulebookError(f"{where}.domain_min_months: not a table")
        overrides = {d: _int(overrides_raw, f"{where}.domain_min_months.{d}", d, minimum=0) for d in overrides_raw}
        source = table.get("source", "")
        out.append(Regime(name, start, tiers, overrides, source if isinstance(source, str) else "", minor_is_adverse))
    out.sort(key=lambda r: r.start)
    for a, b in zip(out, out[1:]):
        if a.start == b.start:
            raise RulebookError(f"regime {a.name!r} and {b.name!r}: same start date {a.start}")
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise RulebookError(f"regime: duplicate names {sorted(names)}")
    return tuple(out)


_MISSING: Final = object()


def _table(data: Doc, key: str, *, required: bool) -> Doc:
    value = data.get(key)
    if value is None:
        if required:
            raise RulebookError(f"[{key}]: missing")
        return {}
    if not isinstance(value, dict):
        raise RulebookError(f"{key}: not a table")
    return value


def _only(table: Doc, where: str, allowed: set[str]) -> None:
    extra = set(table) - allowed
    if extra:
        raise RulebookError(f"{where}: unknown key(s) {sorted(extra)} (known: {sorted(allowed)})")


def _int(table: Doc, where: str, key: str, *, minimum: int, default: Any = _MISSING) -> Any:
    value = table.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise RulebookError(f"{where}: missing (a whole number)")
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise RulebookError(f"{where}: {value!r} is not a whole number")
    if value < minimum:
        raise RulebookError(f"{where}: {value} < {minimum}")
    return value


def _str(table: Doc, where: str, key: str, *, default: Any = _MISSING) -> str:
    value = table.get(key, _MISSING)
    if value is _MISSING and default is not _MISSING:
        return str(default)
    if not isinstance(value, str) or not value.strip():
        raise RulebookError(f"{where}: missing or not a non-empty string")
    return value


def _str_list(table: Doc, where: str, key: str, *, default: list[str]) -> list[str]:
    value = table.get(key, _MISSING)
    if value is _MISSING:
        return list(default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RulebookError(f"{where}: not a list of non-empty strings")
    return value


def _to_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return _parse(value)


@lru_cache(maxsize=8192)
def _parse(value: str) -> dt.date:
    return dt.date.fromisoformat(value)
