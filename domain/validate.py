"""Validate a decoded department event and turn it into the canonical, normalised record.

Pure: no Kafka, Redis or asyncio. ``normalise_event`` takes the Avro record (as fastavro decodes it,
or as ``streams.codec.from_json`` builds it; ints for dates and numeric strings are tolerated too)
and returns either the canonical record, a JSON-serialisable dict::

    {"kind": "penalty" | "license" | "court_listing" | "court_deletion" | "action" | "registration"
             | "objection" | "repair" | "listing_decision" | "feedback",
     "action_kind": "penalty" | "license" | "enforcement" | ... | "inspection" | None,
     "source_unit": str | None, "source_unit_code": str | None,
     "doc_no": str | None,                     # decision_doc_no / license_doc_no / case_no
     "subject_name": str,
     "subject_category": "legal_entity" | "natural_person" | "individual_business",
     "ids": {"uscc", "org_code", "reg_no", "tax_no", "resident_id": str, "other": [str]},  # only present ones
     "id_flags": [str],                         # e.g. "uscc-check-failed"
     "decision_date": "YYYY-MM-DD" | None,     # decision / listing / deletion / registration date
     "severity": "minor" | "general" | "severe" | None,
     "domain": str | None,
     "revoked": bool,
     "legal_rep": {"name": str | None, "id_no": str | None} | None,
     "simplified_procedure": bool,
     "fields": {...every other non-empty field, normalised; dates ISO, decimals "0.000000"...},
     "event_id": str | None}                   # the producer's id: not content (see content_hash)

The credit office's inputs (信用中心: objections, repairs, listing decisions, joint-punishment
feedback) give the same shape, with these differences and additions::

    objection:  source_unit(_code) = handling unit; doc_no = objection_id; decision_date = filed;
                "objection_id": str, "status": "filed" | "upheld" | "rejected",
                "filed": "YYYY-MM-DD", "resolved": "YYYY-MM-DD" | None,
                "provider_verification": bool, "outcome": "corrected" | "revoked" | None,
                "target_key": str        # decision_key of the disputed record (see target_key)
    repair:     source_unit(_code) = deciding unit; doc_no = repair_id;
                "repair_id": str, "approved": bool, "target_key": str
    listing_decision: doc_no, decision_date, domain = list_domain,
                fields {"list_domain", "action": "list" | "remove", "period_years": int (if given), ...}
    feedback:   no subject block: subject_name None, ids {"uscc" | "resident_id": subject_id};
                source_unit(_code) = implementing unit; doc_no = feedback_id;
                decision_date = measure_date; "feedback_id", "change_id", "subject_id": str;
                fields {"measure", "measure_date", ...}

Objection and repair ``fields`` keep the target as given (target_kind normalised, unit, code and
document number normalised like the target record's own).

or a ``Rejection(reason, detail)``. RULES.md section 1: a USCC that is well shaped but fails its
check character (real early-pilot codes do) is kept and flagged, never rejected.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import hashlib
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from domain import identifiers as _ids
from domain.clock import FUTURE_TOLERANCE_MS, date_of_ms
from domain.kinds import KIND_OF_SCHEMA  # the catalogue of event kinds
from domain.normalise import normalise_doc_no, normalise_name, normalise_text
from domain.types import Doc

__all__ = [
    "Rejection",
    "REASONS",
    "KIND_OF_SCHEMA",
    "normalise_event",
    "content_hash",
    "decision_key",
    "target_key",
    "NAME_LIMIT",
    "TEXT_LIMIT",
]

NAME_LIMIT = 200  # names, codes, document numbers, enum values
TEXT_LIMIT = 4000  # free text
EARLIEST_DATE = _dt.date(1949, 10, 1)

REASONS = (
    "missing-field",
    "bad-date",
    "future-date",
    "negative-amount",
    "bad-number",
    "unknown-enum",
    "bad-identifier",
    "no-identifier",
    "field-too-long",
)


class Rejection(NamedTuple):
    reason: str
    detail: str


class _Reject(Exception):
    def __init__(self, reason: str, detail: str):
        self.rejection = Rejection(reason, detail)


# --------------------------------------------------------------------------------------------
# schema -> kind, and the role of each field

_KIND_BY_SHORT = {name.rsplit(".", 1)[1]: kind for name, kind in KIND_OF_SCHEMA.items()}

_DOC_FIELD: dict[str, str | None] = {
    "penalty": "decision_doc_no",
    "license": "license_doc_no",
    "action": "decision_doc_no",
    "court_listing": "case_no",
    "court_deletion": "case_no",
    "registration": None,
    "objection": "objection_id",
    "repair": "repair_id",
    "listing_decision": "doc_no",
    "feedback": "feedback_id",
}
_DATE_FIELD = {
    "penalty": "decision_date",
    "license": "decision_date",
    "action": "decision_date",
    "court_listing": "listing_date",
    "court_deletion": "deletion_date",
    "registration": "registered_at",
    "objection": "filed_date",
    "repair": "decision_date",
    "listing_decision": "decision_date",
    "feedback": "measure_date",
}
_REQUIRED = {
    "penalty": ("subject_name", "decision_doc_no", "decision_date", "source_unit"),
    "license": ("subject_name", "license_doc_no", "decision_date", "source_unit"),
    "action": ("action_kind", "subject_name", "decision_doc_no", "decision_date", "source_unit"),
    "court_listing": ("subject_name", "case_no", "court", "listing_reason", "listing_date", "source_unit"),
    "court_deletion": ("subject_name", "case_no", "court", "deletion_reason", "deletion_date", "source_unit"),
    "registration": ("uscc", "subject_name"),
    "objection": ("objection_id", "subject_name", "target_source_unit", "target_doc_no", "target_kind", "status",
                  "filed_date", "handling_unit"),
    "repair": ("repair_id", "subject_name", "target_source_unit", "target_doc_no", "target_kind", "approved",
               "decision_date", "deciding_unit"),
    "listing_decision": ("doc_no", "subject_name", "list_domain", "action", "decision_date", "source_unit"),
    "feedback": ("feedback_id", "change_id", "subject_id", "implementing_unit", "measure", "measure_date"),
}
# The unit that reports a credit office input (its source unit, in the decision key), by kind.
_UNIT_FIELDS = {
    "objection": ("handling_unit", "handling_unit_uscc"),
    "repair": ("deciding_unit", "deciding_unit_uscc"),
    "listing_decision": ("source_unit", "source_unit_uscc"),
    "feedback": ("implementing_unit", "implementing_unit_uscc"),
}

_NAME_FIELDS = frozenset(
    "subject_name legal_rep_name source_unit deciding_authority licensing_authority court "
    "certificate_name doc_name enforcement_basis_unit target_source_unit handling_unit deciding_unit "
    "implementing_unit".split()
)
_CODE_FIELDS = frozenset(
    "uscc reg_no org_code tax_no institution_cert_no social_org_cert_no legal_rep_id_no person_id_no "
    "source_unit_uscc deciding_authority_uscc licensing_authority_uscc court_uscc target_source_unit_uscc "
    "handling_unit_uscc deciding_unit_uscc implementing_unit_uscc subject_id".split()
)
_DOC_FIELDS = frozenset(
    "decision_doc_no license_doc_no case_no enforcement_basis_no license_no target_doc_no doc_no objection_id "
    "repair_id feedback_id change_id".split()
)
_DATE_FIELDS = frozenset(
    "decision_date valid_until publicity_end_date valid_from valid_to listing_date publish_date "
    "deletion_date registered_at filed_date resolved_date measure_date".split()
)
# Dates of the event itself: these cannot lie in the future (validity ends can: 2099-12-31).
_NOT_FUTURE = frozenset(
    "decision_date listing_date deletion_date publish_date registered_at filed_date resolved_date "
    "measure_date".split()
)
_DECIMAL_FIELDS = frozenset(("fine_amount", "confiscated_amount"))
_BOOL_FIELDS = frozenset(("simplified_procedure", "aggravated", "adverse", "provider_verification", "approved"))
_ENUM_FIELDS = frozenset(
    "subject_category severity license_category action_kind listing_reason deletion_reason record_status "
    "target_kind outcome list_domain".split()
)
# Fields lifted to the top level of the canonical record (everything else goes to "fields").
_TOP_LEVEL = frozenset(
    "subject_name subject_category uscc reg_no org_code tax_no institution_cert_no social_org_cert_no "
    "person_id_no other_ids legal_rep_name legal_rep_id_no severity domain record_status source_unit "
    "source_unit_uscc simplified_procedure action_kind event_id".split()
)
# What departments write in an empty identifier column.
_PLACEHOLDERS = frozenset(("无", "暂无", "空", "不详", "NULL", "NONE", "NA", "NAN"))

# --------------------------------------------------------------------------------------------
# enumerations: the Chinese term or the English code

_SUBJECT_CATEGORY = {
    "法人及非法人组织": "legal_entity",
    "法人和非法人组织": "legal_entity",
    "法人、非法人组织": "legal_entity",
    "法人或非法人组织": "legal_entity",
    "法人": "legal_entity",
    "非法人组织": "legal_entity",
    "自然人": "natural_person",
    "个体工商户": "individual_business",
    "legal_entity": "legal_entity",
    "natural_person": "natural_person",
    "individual_business": "individual_business",
}
_SEVERITY = {
    "轻微": "minor",
    "一般": "general",
    "严重": "severe",
    "minor": "minor",
    "general": "general",
    "severe": "severe",
}
_LICENSE_CATEGORY = {
    "普通": "ordinary",
    "特许": "special",
    "认可": "recognition",
    "核准": "approval",
    "登记": "registration",
    "其他": "other",
    **{c: c for c in ("ordinary", "special", "recognition", "approval", "registration", "other")},
}
_ACTION_KIND = {
    "强制": "enforcement",
    "确认": "confirmation",
    "征收": "levy",
    "给付": "payment",
    "裁决": "adjudication",
    "补偿": "compensation",
    "奖励": "reward",
    "检查": "inspection",
    **{
        c: c
        for c in (
            "enforcement",
            "confirmation",
            "levy",
            "payment",
            "adjudication",
            "compensation",
            "reward",
            "inspection",
        )
    },
}
_LISTING_REASON_CODES = ("refuse_with_ability", "obstruct", "false_report", "evade", "other")
# Chinese: the situations of the 2017 court rule, matched by a key phrase (first hit wins).
_LISTING_REASON_PHRASES = (
    ("有履行能力", "refuse_with_ability"),
    ("拒不履行", "refuse_with_ability"),
    ("财产报告", "false_report"),
    ("虚假报告", "false_report"),
    ("规避", "evade"),
    ("妨碍", "obstruct"),
    ("抗拒", "obstruct"),
    ("限制消费", "other"),
    ("执行和解", "other"),
    ("其他", "other"),
)
_DELETION_REASON_CODES = (
    "performed",
    "settlement_performed",
    "creditor_request",
    "enforcement_ended",
    "listing_revoked",
    "term_expired",
)
_DELETION_REASON_PHRASES = (
    ("和解", "settlement_performed"),
    ("申请执行人", "creditor_request"),
    ("申请删除", "creditor_request"),
    ("终结", "enforcement_ended"),
    ("中止", "enforcement_ended"),
    ("不予执行", "enforcement_ended"),
    ("撤销", "listing_revoked"),
    ("纳入错误", "listing_revoked"),
    ("届满", "term_expired"),
    ("到期", "term_expired"),
    ("履行", "performed"),
)
_RECORD_STATUS = {
    "正常": "normal",
    "有效": "normal",
    "撤销": "revoked",
    "已撤销": "revoked",
    "撤回": "revoked",
    "normal": "normal",
    "revoked": "revoked",
}
_DOMAIN = {
    "税务": "taxation",
    "税收": "taxation",
    "安全生产": "work_safety",
    "生态环境": "environment",
    "环境保护": "environment",
    "环保": "environment",
    "政府采购": "procurement",
    "拖欠工资": "wage_arrears",
    "拖欠农民工工资": "wage_arrears",
    "欠薪": "wage_arrears",
    "食品药品": "food_drug",
    "食品": "food_drug",
    "药品": "food_drug",
    "市场监管": "market",
    "市场监督管理": "market",
    "消防": "fire",
    "特种设备": "special_equipment",
    "建筑": "construction",
    "建设": "construction",
    "法院执行": "court_enforcement",
}
# Credit office inputs.
_OBJECTION_STATUS = {
    "受理": "filed",
    "已受理": "filed",
    "受理中": "filed",
    "核查中": "filed",
    "核实中": "filed",
    "处理中": "filed",
    "属实": "upheld",
    "异议属实": "upheld",
    "异议成立": "upheld",
    "不属实": "rejected",
    "异议不属实": "rejected",
    "异议不成立": "rejected",
    "不予受理": "rejected",
    "驳回": "rejected",
    **{c: c for c in ("filed", "upheld", "rejected")},
}
_OBJECTION_OUTCOME = {
    "更正": "corrected",
    "已更正": "corrected",
    "修改": "corrected",
    "撤销": "revoked",
    "已撤销": "revoked",
    "删除": "revoked",
    "已删除": "revoked",
    **{c: c for c in ("corrected", "revoked")},
}
_LIST_ACTION = {
    "列入": "list",
    "纳入": "list",
    "认定": "list",
    "列入名单": "list",
    "移出": "remove",
    "移除": "remove",
    "移出名单": "remove",
    "退出": "remove",
    **{c: c for c in ("list", "remove")},
}
_LIST_DOMAINS = frozenset(
    "taxation work_safety environment procurement wage_arrears food_drug market court_enforcement other".split()
)
# The kind part of the decision key of a record an objection or a repair names (action records:
# "action:<action_kind>", see _target_kind).
_TARGET_KIND = {
    "行政处罚": "penalty",
    "处罚": "penalty",
    "行政许可": "license",
    "许可": "license",
    "失信被执行人": "court_listing",
    "严重失信主体名单": "listing_decision",
    "严重失信主体名单认定": "listing_decision",
    "失信主体名单": "listing_decision",
    **{c: c for c in ("penalty", "license", "court_listing", "listing_decision")},
}
_BOOL_WORDS = {"true": True, "1": True, "是": True, "yes": True, "false": False, "0": False, "否": False, "no": False}
_RESIDENT_ID_TYPES = frozenset(("身份证", "居民身份证", "01", "1", "111", "RESIDENT_ID", "ID_CARD", "IDCARD"))

_CST = _dt.timezone(_dt.timedelta(hours=8))
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_EPOCH_DATE = _dt.date(1970, 1, 1)
_SIX_PLACES = decimal.Decimal("0.000001")
_MAX_AMOUNT = decimal.Decimal(10) ** 12  # decimal(18, 6): 12 integer digits
_DEC_CTX = decimal.Context(prec=40)


# --------------------------------------------------------------------------------------------
# value helpers


def _s(value: Any) -> str | None:
    """A string field's value as str (numbers from JSON tolerated), lone surrogates replaced."""
    if value is None:
        return None
    if value.__class__ is str and value.isascii():  # the common fast path: nothing to replace
        return str(value)
    if not isinstance(value, str):
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        else:
            value = str(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return str(value)


def _limit_for(key: str) -> int:
    if key in _NAME_FIELDS or key in _CODE_FIELDS or key in _DOC_FIELDS or key in _ENUM_FIELDS:
        return NAME_LIMIT
    return TEXT_LIMIT


def _string(key: str, value: Any, normaliser: Callable[[str], str]) -> str | None:
    s = _s(value)
    if s is None:
        return None
    limit = _limit_for(key)
    if len(s) > 4 * limit + 64:  # hopeless before normalising: don't spend time on it
        raise _Reject("field-too-long", f"{key}: {len(s)} chars (limit {limit})")
    if len(s) <= _CACHED_LEN:
        # unit names, authorities, categories, legal bases repeat across records: normalise once
        cached = _CACHED_NORMALISERS.get(normaliser)
        if cached is None:
            cached = _CACHED_NORMALISERS[normaliser] = lru_cache(maxsize=1 << 16)(normaliser)
        out = cached(s)
    else:
        out = normaliser(s)
    if len(out) > limit:
        raise _Reject("field-too-long", f"{key}: {len(out)} chars (limit {limit})")
    return out or None


_CACHED_LEN = 256
_CACHED_NORMALISERS: dict[Callable[[str], str], Callable[[str], str]] = {}


def _normalise_code(raw: str) -> str:
    if raw.isascii() and raw.isalnum():  # the common case, same result as normalise_code
        return raw.upper()
    return _ids.normalise_code(raw)


# The checks are pure; the resident-ID one looks the division up in stdnum's table (slow).
_valid_resident_id = lru_cache(maxsize=1 << 16)(_ids.is_valid_resident_id)
_valid_uscc = lru_cache(maxsize=1 << 16)(_ids.is_valid_uscc)
_valid_org_code = lru_cache(maxsize=1 << 16)(_ids.is_valid_org_code)
_valid_reg_no = lru_cache(maxsize=1 << 16)(_ids.is_valid_reg_no)
_uscc_shape_ok = _ids.uscc_shape_ok


def _code(key: str, value: Any) -> str | None:
    code = _string(key, value, _normalise_code)
    if code is None or code in _PLACEHOLDERS:
        return None
    return code


def _parse_date(value: Any) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _EPOCH_DATE + _dt.timedelta(days=value)
    if isinstance(value, str):
        text = normalise_text(value)
        if len(text) > 10 and text[10] in "T ":
            text = text[:10]
        if len(text) == 8 and text.isdigit():
            text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
        elif len(text) == 10 and text[4] in "/." and text[7] == text[4]:
            text = f"{text[:4]}-{text[5:7]}-{text[8:]}"
        return _dt.date.fromisoformat(text)
    raise TypeError(type(value).__name__)


def _date(key: str, value: Any, latest: _dt.date) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        d = _parse_date(value)
    except (TypeError, ValueError, OverflowError):
        shown = _s(value) or ""
        raise _Reject("bad-date", f"{key}: not a date: {shown[:40]!r}") from None
    if d < EARLIEST_DATE:
        raise _Reject("bad-date", f"{key}: {d.isoformat()} is before {EARLIEST_DATE.isoformat()}")
    if key in _NOT_FUTURE and d > latest:
        raise _Reject("future-date", f"{key}: {d.isoformat()} is after {latest.isoformat()}")
    return d.isoformat()


def _amount(key: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if isinstance(value, bool):
            raise TypeError("bool")
        if isinstance(value, float):
            value = repr(value)
        d = decimal.Decimal(normalise_text(value) if isinstance(value, str) else value)
        if not d.is_finite():
            raise ValueError("not finite")
        if d < 0:
            raise _Reject("negative-amount", f"{key}: {d} < 0")
        if d >= _MAX_AMOUNT:
            raise ValueError("more than 12 integer digits")
        d = d.quantize(_SIX_PLACES, rounding=decimal.ROUND_HALF_UP, context=_DEC_CTX)
    except _Reject:
        raise
    except (TypeError, ValueError, ArithmeticError):
        shown = _s(value) or ""
        raise _Reject("bad-number", f"{key}: not an amount: {shown[:40]!r}") from None
    return format(d, "f")


def _boolean(key: str, value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    word = normalise_text(_s(value) or "").lower()
    if word in _BOOL_WORDS:
        return _BOOL_WORDS[word]
    raise _Reject("unknown-enum", f"{key}: not a boolean: {word[:40]!r}")


def _count(key: str, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise _Reject("bad-number", f"{key}: not a whole number: {value!r}")
    if isinstance(value, str):
        text = normalise_text(value)
        if not text.lstrip("-").isdigit() or len(text) > 6:
            raise _Reject("bad-number", f"{key}: not a whole number: {text[:40]!r}")
        value = int(text)
    if not isinstance(value, int):
        raise _Reject("bad-number", f"{key}: not a whole number: {(_s(value) or '')[:40]!r}")
    if value < 0:
        raise _Reject("negative-amount", f"{key}: {value} < 0")
    if value > 99:
        raise _Reject("bad-number", f"{key}: {value} is not a plausible number of years")
    return value


def _enum(key: str, value: Any, table: dict[str, str] | None = None, *,
          phrases: tuple[tuple[str, str], ...] = (), codes: tuple[str, ...] = ()) -> str | None:
    text = _string(key, value, normalise_text)
    if text is None:
        return None
    lowered = text.lower()
    if table is not None:
        hit = table.get(text) or table.get(lowered) or table.get(lowered.replace(" ", "_").replace("-", "_"))
        if hit is None and text.startswith("行政"):  # 行政强制, 行政检查, ...
            hit = table.get(text[2:])
    else:
        code = lowered.replace(" ", "_").replace("-", "_")
        hit = code if code in codes else None
        if hit is None:
            compact = text.replace(" ", "")
            hit = next((c for phrase, c in phrases if phrase in compact), None)
    if hit is None:
        raise _Reject("unknown-enum", f"{key}: {text[:60]!r}")
    return hit


def _domain(value: Any) -> str | None:
    text = _string("domain", value, normalise_text)
    if text is None:
        return None
    text = text.replace(" ", "")
    if text in _DOMAIN:
        return _DOMAIN[text]
    if text.endswith("领域") and text[:-2] in _DOMAIN:
        return _DOMAIN[text[:-2]]
    return text.lower().replace("-", "_")


def _generic(key: str, value: Any, latest: _dt.date) -> Any:
    """Normalise a field that is not lifted to the top level (the record's "fields")."""
    if value is None:
        return None
    if key in _DATE_FIELDS:
        return _date(key, value, latest)
    if key in _DECIMAL_FIELDS:
        return _amount(key, value)
    if key in _BOOL_FIELDS:
        return _boolean(key, value)
    if key == "aggravation_years":
        return _count(key, value)
    if key in _CODE_FIELDS:
        return _code(key, value)
    if key in _DOC_FIELDS:
        return _string(key, value, normalise_doc_no)
    if key in _NAME_FIELDS:
        return _string(key, value, normalise_name)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**53) <= value <= 2**53 else str(value)
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, decimal.Decimal):
        return _amount(key, value)
    if isinstance(value, (_dt.date, _dt.datetime)):
        return _date(key, value, _dt.date.max)
    if isinstance(value, (list, tuple)):
        items = [_string(key, v, normalise_text) for v in value]
        return [v for v in items if v] or None
    return _string(key, value, normalise_text)


def _latest_date(event_time_ms: int) -> _dt.date:
    """The last acceptable event date: the China date of the arrival time (plus the clock's small
    tolerance). Ingest has already refused arrival stamps in the future of the wall clock, so no
    decision can be dated after today (RULES.md 3a)."""
    try:
        return _dt.date.fromisoformat(date_of_ms(int(event_time_ms) + FUTURE_TOLERANCE_MS))
    except (OverflowError, ValueError, TypeError):
        return _dt.date.max


def _is_resident_type(id_type: str | None) -> bool:
    if id_type is None:
        return True
    t = id_type.upper()
    return t in _RESIDENT_ID_TYPES or "身份证" in t


# --------------------------------------------------------------------------------------------
# identifiers


def _identifiers(rec: Mapping[str, Any], kind: str) -> tuple[Doc, list[str], Doc | None]:
    ids: Doc = {}
    flags: list[str] = []
    other: list[str] = []

    uscc = _code("uscc", rec.get("uscc"))
    if uscc is not None:
        if not _uscc_shape_ok(uscc):
            raise _Reject("bad-identifier", f"uscc: not a USCC ({len(uscc)} chars)")
        if not _valid_uscc(uscc):
            flags.append("uscc-check-failed")
        ids["uscc"] = uscc

    org = _code("org_code", rec.get("org_code"))
    if org is not None:
        if not _valid_org_code(org):
            raise _Reject("bad-identifier", "org_code: fails the GB 11714 check")
        ids["org_code"] = org
        if uscc is not None and uscc[8:17] != org:
            flags.append("org-code-mismatch")

    reg = _code("reg_no", rec.get("reg_no"))
    if reg is not None:
        if not _valid_reg_no(reg):
            raise _Reject("bad-identifier", "reg_no: fails the 15-digit MOD 11,10 check")
        ids["reg_no"] = reg

    tax = _code("tax_no", rec.get("tax_no"))
    if tax is not None:
        ids["tax_no"] = tax

    for key in ("institution_cert_no", "social_org_cert_no"):
        code = _code(key, rec.get(key))
        if code is not None:
            other.append(code)

    person = _code("person_id_no", rec.get("person_id_no"))
    if person is not None:
        id_type = _string("person_id_type", rec.get("person_id_type"), normalise_text)
        explicit = id_type is not None and _is_resident_type(id_type)
        if _is_resident_type(id_type) and len(person) == 18:
            if not _valid_resident_id(person):
                raise _Reject("bad-identifier", "person_id_no: resident ID fails its check")
            ids["resident_id"] = person
        elif _is_resident_type(id_type) and len(person) == 15 and person.isascii() and person.isdigit():
            ids["resident_id"] = person  # first-generation 15-digit card: no check digit
            flags.append("resident-id-15-digit")
        elif explicit:
            raise _Reject("bad-identifier", f"person_id_no: not a resident ID ({len(person)} chars)")
        else:
            other.append(person)

    raw_other = rec.get("other_ids")
    if raw_other:
        if isinstance(raw_other, (str, bytes)) or not isinstance(raw_other, (list, tuple)):
            raw_other = [raw_other]
        for value in raw_other:
            code = _code("other_ids", value)
            if code is not None:
                other.append(code)
    if other:
        ids["other"] = sorted(set(other))

    rep_name = _string("legal_rep_name", rec.get("legal_rep_name"), normalise_name)
    rep_id = _code("legal_rep_id_no", rec.get("legal_rep_id_no"))
    legal_rep = None
    if rep_name is not None or rep_id is not None:
        legal_rep = {"name": rep_name, "id_no": rep_id}
        if rep_id is not None:
            rep_type = _string("legal_rep_id_type", rec.get("legal_rep_id_type"), normalise_text)
            if _is_resident_type(rep_type) and len(rep_id) == 18 and not _valid_resident_id(rep_id):
                flags.append("legal-rep-id-check-failed")

    if not ids:
        raise _Reject("no-identifier", "no USCC, organisation code, registration no., tax no., ID or other number")
    return ids, flags, legal_rep


def _infer_category(ids: Doc) -> str:
    if "resident_id" in ids and not ({"uscc", "org_code", "reg_no"} & ids.keys()):
        return "natural_person"
    if ids.get("uscc", "").startswith("92"):
        return "individual_business"
    return "legal_entity"


# --------------------------------------------------------------------------------------------
# the canonical record


def _kind_of(schema_name: str) -> str:
    kind = KIND_OF_SCHEMA.get(schema_name) or _KIND_BY_SHORT.get(schema_name)
    if kind is None:
        raise ValueError(f"not a department event schema: {schema_name!r}")
    return kind


def normalise_event(schema_name: str, rec: Doc, *, event_time_ms: int) -> Doc | Rejection:
    """The canonical record of a decoded event, or the reason it is rejected.

    ``schema_name``: full (``creditstream.AdministrativePenalty``) or short name; an unknown name
    is a programming error (ValueError). ``event_time_ms``: when the event arrived (Kafka
    timestamp); event dates after its China date (domain/clock.py tolerance) are ``future-date``.
    """
    kind = _kind_of(schema_name)
    if not isinstance(rec, Mapping):
        return Rejection("missing-field", f"record is a {type(rec).__name__}, not a mapping")
    try:
        if kind in _CREDIT_OFFICE_KINDS:
            return _normalise_credit_office(kind, rec, _latest_date(event_time_ms))
        return _normalise(kind, rec, _latest_date(event_time_ms))
    except _Reject as r:
        return r.rejection


def _normalise(kind: str, rec: Mapping[str, Any], latest: _dt.date) -> Doc:
    # 1. required fields, present and non-empty
    for key in _REQUIRED[kind]:
        value = rec.get(key)
        if value is None:
            raise _Reject("missing-field", key)
        if isinstance(value, str) and len(value) <= 4 * NAME_LIMIT and not normalise_name(value):
            raise _Reject("missing-field", f"{key} (empty)")

    # 2. top-level values
    subject_name = _string("subject_name", rec.get("subject_name"), normalise_name)
    source_unit = _string("source_unit", rec.get("source_unit"), normalise_name)
    source_unit_code = _code("source_unit_uscc", rec.get("source_unit_uscc"))
    doc_field = _DOC_FIELD[kind]
    doc_no = _string(doc_field, rec.get(doc_field), normalise_doc_no) if doc_field else None
    date_field = _DATE_FIELD[kind]
    decision_date = _date(date_field, rec.get(date_field), latest)
    # empty only once normalised (e.g. a document number made of separators)
    for key, value in (("subject_name", subject_name), ("source_unit", source_unit), (doc_field or "", doc_no)):
        if key in _REQUIRED[kind] and not value:
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

    return {
        "kind": kind,
        "action_kind": action_kind,
        "source_unit": source_unit,
        "source_unit_code": source_unit_code,
        "doc_no": doc_no,
        "subject_name": subject_name,
        "subject_category": category,
        "ids": ids,
        "id_flags": flags,
        "decision_date": decision_date,
        "severity": severity,
        "domain": domain,
        "revoked": status == "revoked",
        "legal_rep": legal_rep,
        "simplified_procedure": simplified,
        "fields": fields,
        "event_id": event_id,
    }


# --------------------------------------------------------------------------------------------
# the credit office's inputs: objections, repairs, listing decisions, joint-punishment feedback

_CREDIT_OFFICE_KINDS = frozenset(("objection", "repair", "listing_decision", "feedback"))
# The subject block: lifted to subject_name / subject_category / ids / legal_rep.
_SUBJECT_BLOCK = frozenset(
    "subject_name subject_category uscc reg_no org_code tax_no institution_cert_no social_org_cert_no "
    "person_id_no other_ids legal_rep_name legal_rep_id_no".split()
)
# Lifted to the top level per kind (besides the unit, the document/id field and the date field).
_LIFTED = {
    "objection": frozenset(("status", "outcome", "provider_verification", "resolved_date")),
    "repair": frozenset(("approved",)),
    "listing_decision": frozenset(),
    "feedback": frozenset(("change_id", "subject_id")),
}


def _check_required(kind: str, rec: Mapping[str, Any]) -> None:
    for key in _REQUIRED[kind]:
        value = rec.get(key)
        if value is None:
            raise _Reject("missing-field", key)
        if isinstance(value, str) and len(value) <= 4 * NAME_LIMIT and not normalise_name(value):
            raise _Reject("missing-field", f"{key} (empty)")


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
    unit_code = _code("target_source_unit_uscc", rec.get("target_source_unit_uscc"))
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


def _normalise_credit_office(kind: str, rec: Mapping[str, Any], latest: _dt.date) -> Doc:
    # 1. required fields, present and non-empty
    _check_required(kind, rec)

    # 2. the reporting unit, the record's own id or document number, its date
    unit_field, unit_code_field = _UNIT_FIELDS[kind]
    source_unit = _string(unit_field, rec.get(unit_field), normalise_name)
    source_unit_code = _code(unit_code_field, rec.get(unit_code_field))
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
                raise _Reject("bad-number", "period_years: 0 (leave it empty for no fixed term)")
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
    for key, value in rec.items():
        if not isinstance(key, str) or key in skip:
            continue
        value = _generic(key, value, latest)
        if value is None or value == "" or value == []:
            continue
        fields[key] = value
    if kind == "feedback" and not fields.get("measure"):
        raise _Reject("missing-field", "measure (empty)")

    if kind != "feedback":
        ids, flags, legal_rep = _identifiers(rec, kind)
        if category is None:
            category = _infer_category(ids)

    return {
        "kind": kind,
        "action_kind": None,
        "source_unit": source_unit,
        "source_unit_code": source_unit_code,
        "doc_no": doc_no,
        "subject_name": subject_name,
        "subject_category": category,
        "ids": ids,
        "id_flags": flags,
        "decision_date": decision_date,
        "severity": None,
        "domain": domain,
        "revoked": False,
        "legal_rep": legal_rep,
        "simplified_procedure": False,
        "fields": fields,
        "event_id": event_id,
        **extra,
    }


# --------------------------------------------------------------------------------------------
# identity and content

# The keys that make up a record's content. Not event_id (a re-send carries a new one), and not
# anything a later step adds to the record.
CONTENT_KEYS = (
    "kind",
    "action_kind",
    "source_unit",
    "source_unit_code",
    "doc_no",
    "subject_name",
    "subject_category",
    "ids",
    "id_flags",
    "decision_date",
    "severity",
    "domain",
    "revoked",
    "legal_rep",
    "simplified_procedure",
    "fields",
)


# What the credit office's inputs carry beside CONTENT_KEYS (content too: an objection going from
# filed to upheld is a new version, not a duplicate). Only the record's own kind's keys count, so
# the hash of the other kinds is what it always was, and keys a later step adds never count.
KIND_CONTENT_KEYS = {
    "objection": ("objection_id", "status", "filed", "resolved", "provider_verification", "outcome", "target_key"),
    "repair": ("repair_id", "approved", "target_key"),
    "feedback": ("feedback_id", "change_id", "subject_id"),
}


def content_hash(record: Doc) -> str:
    """Stable hash of a canonical record's content (32 hex chars): equal for a re-send with the
    same content, different for a correction. The producer's event_id is not content."""
    content = {key: record.get(key) for key in CONTENT_KEYS}
    kind = record.get("kind")
    kind_keys = KIND_CONTENT_KEYS.get(kind) if isinstance(kind, str) else None
    for key in kind_keys or ():
        content[key] = record.get(key)
    try:
        blob = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not a canonical record (e.g. a huge int from elsewhere): fall back
        import json

        blob = json.dumps(content, sort_keys=True, ensure_ascii=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def decision_key(record: Doc) -> str:
    """Identity of a decision, without the subject (the attaching step adds it):
    ``kind|source unit code (or name)|document number``. Action records use
    ``action:<action_kind>``; a court deletion uses ``court_listing`` so that it names the listing
    it deletes; a registration is keyed by its USCC."""
    kind = record.get("kind")
    if kind == "registration":
        return f"registration|{(record.get('ids') or {}).get('uscc', '')}"
    if kind == "action":
        kind = f"action:{record.get('action_kind')}"
    elif kind == "court_deletion":
        kind = "court_listing"
    unit = record.get("source_unit_code") or record.get("source_unit") or ""
    return f"{kind}|{unit}|{record.get('doc_no') or ''}"
