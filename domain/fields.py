"""What validation knows of a field: limits, rejection reasons, the role of each field, the helpers
that normalise one value, the canonical record's constructor and a decision's key. Pure. (The
enumerations' terms are in domain/vocabulary.py.)

A value helper raises ``_Reject(reason, detail)``; ``normalise_event`` (domain/validate.py) turns it
into a ``Rejection``.
"""

from __future__ import annotations

import datetime as _dt
import decimal
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final, NamedTuple

from domain import identifiers as _ids
from domain.clock import china_date, date_of_ms, date_of_text
from domain.kinds import KIND_OF_SCHEMA  # the catalogue of event kinds
from domain.normalise import is_blank_name, normalise_doc_no, normalise_name, normalise_text
from domain.types import Doc
from domain.vocabulary import _BOOL_WORDS, _DOMAIN, _NOT_RESIDENT_ID_WORDS, _RESIDENT_ID_TYPES, _RESIDENT_ID_WORDS

NAME_LIMIT: Final = 200  # names, codes, document numbers, enum values
TEXT_LIMIT: Final = 4000  # free text
EARLIEST_DATE: Final = _dt.date(1949, 10, 1)

REASONS: Final = (
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

_KIND_BY_SHORT: Final = {name.rsplit(".", 1)[1]: kind for name, kind in KIND_OF_SCHEMA.items()}

_DOC_FIELD: Final[dict[str, str | None]] = {
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
_DATE_FIELD: Final = {
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
_REQUIRED: Final = {
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
_UNIT_FIELDS: Final = {
    "objection": ("handling_unit", "handling_unit_uscc"),
    "repair": ("deciding_unit", "deciding_unit_uscc"),
    "listing_decision": ("source_unit", "source_unit_uscc"),
    "feedback": ("implementing_unit", "implementing_unit_uscc"),
}

_NAME_FIELDS: Final = frozenset(
    "subject_name legal_rep_name source_unit deciding_authority licensing_authority court "
    "certificate_name doc_name enforcement_basis_unit target_source_unit handling_unit deciding_unit "
    "implementing_unit".split()
)
_CODE_FIELDS: Final = frozenset(
    "uscc reg_no org_code tax_no institution_cert_no social_org_cert_no legal_rep_id_no person_id_no "
    "source_unit_uscc deciding_authority_uscc licensing_authority_uscc court_uscc target_source_unit_uscc "
    "handling_unit_uscc deciding_unit_uscc implementing_unit_uscc subject_id".split()
)
_DOC_FIELDS: Final = frozenset(
    "decision_doc_no license_doc_no case_no enforcement_basis_no license_no target_doc_no doc_no objection_id "
    "repair_id feedback_id change_id".split()
)
_DATE_FIELDS: Final = frozenset(
    "decision_date valid_until publicity_end_date valid_from valid_to listing_date publish_date "
    "deletion_date registered_at filed_date resolved_date measure_date".split()
)
# Dates of the event itself: these cannot lie in the future (validity ends can: 2099-12-31).
_NOT_FUTURE: Final = frozenset(
    "decision_date listing_date deletion_date publish_date registered_at filed_date resolved_date "
    "measure_date".split()
)
_DECIMAL_FIELDS: Final = frozenset(("fine_amount", "confiscated_amount"))
_BOOL_FIELDS: Final = frozenset(("simplified_procedure", "aggravated", "adverse", "provider_verification", "approved"))
_ENUM_FIELDS: Final = frozenset(
    "subject_category severity license_category action_kind listing_reason deletion_reason record_status "
    "target_kind outcome list_domain".split()
)
# Fields lifted to the top level of the canonical record (everything else goes to "fields").
_TOP_LEVEL: Final = frozenset(
    "subject_name subject_category uscc reg_no org_code tax_no institution_cert_no social_org_cert_no "
    "person_id_no other_ids legal_rep_name legal_rep_id_no severity domain record_status source_unit "
    "source_unit_uscc simplified_procedure action_kind event_id".split()
)
# What departments write in an empty identifier column.
_PLACEHOLDERS: Final = frozenset(("无", "暂无", "空", "不详", "NULL", "NONE", "NA", "NAN"))

_CST: Final = _dt.timezone(_dt.timedelta(hours=8))
_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_EPOCH_DATE: Final = _dt.date(1970, 1, 1)
_SIX_PLACES: Final = decimal.Decimal("0.000001")
_MAX_AMOUNT: Final = decimal.Decimal(10) ** 12  # decimal(18, 6): 12 integer digits
_DEC_CTX: Final = decimal.Context(prec=40)


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


def _scrubbed(normaliser: Callable[[str], str]) -> Callable[[str], str]:
    """``normaliser`` applied after lone surrogates are replaced (what ``_s`` does for a str)."""
    def run(text: str) -> str:
        return normaliser(text if text.isascii() else _s(text) or "")
    return run


def _string(key: str, value: Any, normaliser: Callable[[str], str]) -> str | None:
    s: str | None = value if value.__class__ is str else _s(value)  # a str's lone surrogates: below
    if s is None:
        return None
    limit = _LIMITS.get(key)
    if limit is None:
        limit = _LIMITS[key] = _limit_for(key)
    if len(s) > 4 * limit + 64:  # hopeless before normalising: don't spend time on it
        raise _Reject("field-too-long", f"{key}: {len(s)} chars (limit {limit})")
    if len(s) <= _CACHED_LEN:
        # unit names, authorities, categories, legal bases repeat across records: normalise once
        cached = _CACHED_NORMALISERS.get(normaliser)
        if cached is None:
            cached = _CACHED_NORMALISERS[normaliser] = lru_cache(maxsize=_ids.MEMO_ENTRIES)(_scrubbed(normaliser))
        out = cached(s)
    else:
        out = _scrubbed(normaliser)(s)
    if len(out) > limit:
        raise _Reject("field-too-long", f"{key}: {len(out)} chars (limit {limit})")
    return out or None


_CACHED_LEN: Final = 256
_CACHED_NORMALISERS: Final[dict[Callable[[str], str], Callable[[str], str]]] = {}
_LIMITS: Final[dict[str, int]] = {}  # field -> its length limit (_limit_for), looked up once


# The checks are pure; the resident-ID one looks the division up in stdnum's table (slow).
_valid_resident_id: Final = lru_cache(maxsize=_ids.MEMO_ENTRIES)(_ids.is_valid_resident_id)
_valid_uscc: Final = _ids.is_valid_uscc  # cached there already (a second cache only doubled the misses' work)
_valid_org_code: Final = lru_cache(maxsize=_ids.MEMO_ENTRIES)(_ids.is_valid_org_code)
_valid_reg_no: Final = lru_cache(maxsize=_ids.MEMO_ENTRIES)(_ids.is_valid_reg_no)
_uscc_shape_ok: Final = _ids.uscc_shape_ok


def _code(key: str, value: Any) -> str | None:
    code = _string(key, value, _ids.normalise_code)  # its own fast path for ASCII codes
    if code is None or code in _PLACEHOLDERS or _filler(code):
        return None
    return code


def _unit_code(key: str, value: Any) -> str | None:
    """A unit's code (``source_unit_uscc``, ``target_source_unit_uscc``), part of a decision's key:
    one with non-ASCII characters is no code (a name put there, seen: a person's, then published in
    the record's key), so the unit is named by its name, as without a code."""
    code = _code(key, value)
    return code if code is None or code.isascii() else None


def _filler(code: str) -> bool:
    """A code of one character repeated (``000000000000000000``, ``00000000-0``): what a form gets
    when the department has no code. ``000000000000000000`` even passes the USCC check (and
    ``000000000`` the organisation code's), so taken as a code it would merge every subject sent
    without one into a single subject, and teach the registry that every legacy number is it."""
    return len(code) > 1 and code.count(code[0]) == len(code)


def _parse_date(value: Any) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return china_date(value)
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _EPOCH_DATE + _dt.timedelta(days=value)
    if isinstance(value, str):
        text = normalise_text(value)
        if len(text) > 10 and text[10] in "T ":
            if text[4] == "-":  # ISO: an aware date-time counts by its China date
                return date_of_text(text)
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
        d = d.quantize(_SIX_PLACES, rounding=decimal.ROUND_HALF_UP, context=_DEC_CTX)
        if d >= _MAX_AMOUNT:  # after rounding: 999999999999.9999995 rounds to 13 integer digits
            raise ValueError("more than 12 integer digits")
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
    """The last acceptable event date: the China date of the arrival time. Ingest has already
    refused arrival stamps in the future of the wall clock (beyond the producer clocks' tolerance),
    so no decision can be dated after today (RULES.md 3a). The tolerance is not added here: a
    stamp at 23:57 would have let a decision dated tomorrow in."""
    try:
        return _dt.date.fromisoformat(date_of_ms(int(event_time_ms)))
    except (OverflowError, ValueError, TypeError):
        return _dt.date.max


def _is_resident_type(id_type: str | None) -> bool:
    """An ID type (证件类型) whose number is a resident ID number (GB 11643); no type given: assumed."""
    if id_type is None:
        return True
    t = id_type.upper().replace(" ", "")
    if t in _RESIDENT_ID_TYPES:
        return True
    if any(word in t for word in _NOT_RESIDENT_ID_WORDS):
        return False
    return any(word in t for word in _RESIDENT_ID_WORDS)


# --------------------------------------------------------------------------------------------
# the canonical record


def canonical_record(kind: str, *, source_unit: str | None, source_unit_code: str | None, doc_no: str | None,
                     subject_name: str | None, subject_category: str | None, ids: Doc, id_flags: list[str],
                     decision_date: str | None, fields: Doc, event_id: str | None, action_kind: str | None = None,
                     severity: str | None = None, domain: str | None = None, revoked: bool = False,
                     legal_rep: Doc | None = None, simplified_procedure: bool = False,
                     extra: Doc | None = None) -> Doc:
    """The one shape every input becomes (domain/validate.py describes it); the credit office's
    inputs add their own keys (``extra``)."""
    record: Doc = {
        "kind": kind,
        "action_kind": action_kind,
        "source_unit": source_unit,
        "source_unit_code": source_unit_code,
        "doc_no": doc_no,
        "subject_name": subject_name,
        "subject_category": subject_category,
        "ids": ids,
        "id_flags": id_flags,
        "decision_date": decision_date,
        "severity": severity,
        "domain": domain,
        "revoked": revoked,
        "legal_rep": legal_rep,
        "simplified_procedure": simplified_procedure,
        "fields": fields,
        "event_id": event_id,
    }
    if extra:
        record.update(extra)
    return record


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
    if "|" in unit:  # (a name typed with ｜: the key's parts stay apart, domain/state.py resolve_key)
        unit = unit.replace("|", "¦")
    return f"{kind}|{unit}|{record.get('doc_no') or ''}"


def check_required(kind: str, rec: Mapping[str, Any]) -> None:
    """Every field ``kind`` requires is present and not empty once normalised."""
    for key in _REQUIRED[kind]:
        value = rec.get(key)
        if value is None:
            raise _Reject("missing-field", key)
        if isinstance(value, str) and is_blank_name(value):  # (at its first character unless blank)
            raise _Reject("missing-field", f"{key} (empty)")
