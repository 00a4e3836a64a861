"""Subject identifiers: recognise, validate and mask (RULES.md sections 1 and 7).

Kinds of identifier:

- USCC (统一社会信用代码, GB 32100-2015): 18 chars from ``USCC_ALPHABET``.
  Layout: pos 1 registering authority (登记管理部门码), pos 2 category (机构类别码),
  pos 3-8 admin division (行政区划码), pos 9-17 organisation code, pos 18 check.
- Organisation code (组织机构代码, GB 11714): 8 body chars + check, printed ``XXXXXXXX-X``.
- Resident ID (居民身份证号码, GB 11643): 6 division + 8 birth date + 3 sequence + check.
- Business registration number (工商注册号), legacy: 15 digits, ISO 7064 MOD 11,10.

Every public function accepts printed forms: input goes through ``normalise_code``
first. A failed check is reported, never raised: real data holds codes that fail
their check (e.g. the early pilot USCC ``91350211M00013FA1N``) and those records are
flagged and routed, not dropped.

Pure module, no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from functools import lru_cache
from typing import Final

from stdnum.cn import ric
from stdnum.iso7064 import mod_11_10

from domain import clock
from domain.normalise import to_half_width

__all__ = [
    "IdKind",
    "USCC_ALPHABET",
    "ID_PATTERN",
    "normalise_code",
    "is_valid_uscc",
    "is_valid_org_code",
    "is_valid_resident_id",
    "is_valid_reg_no",
    "may_be_resident_id",
    "uscc_shape_ok",
    "classify",
    "org_code_of_uscc",
    "division_of_uscc",
    "category_of_uscc",
    "mask_id",
    "mask_ids_in_text",
    "mask_legacy_ids_in_text",
    "GROUPED_ID",
    "GROUPED_LEGACY_ID",
    "GROUPED_VIEW",
    "grouped_id_spans",
    "mask_spans",
    "mask_grouped_ids_in_text",
    "mask_id_numbers_in_text",
]


class IdKind(str, Enum):
    USCC = "USCC"
    ORG_CODE = "ORG_CODE"
    RESIDENT_ID = "RESIDENT_ID"
    REG_NO = "REG_NO"  # 15-digit business registration number (工商注册号)
    UNKNOWN = "UNKNOWN"


USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 chars, no I O S V Z
_USCC_CHARS: Final = frozenset(USCC_ALPHABET)
# a character's value by its code point (-1: not in the alphabet), and the weights 3^(i-1) mod 31; Final, so
# that the compiled core reads them without looking the names up (~0.15 against ~1.5 us a check)
_USCC_VALUE: Final[list[int]] = [USCC_ALPHABET.find(chr(o)) for o in range(128)]
_USCC_WEIGHTS: Final[list[int]] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]

_ORG_CODE_SHAPE: Final = re.compile(r"[0-9A-Z]{8}[0-9X]")
_ORG_CODE_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)

# 6 division digits, birth date 19xx/20xx (month and day plausible, not checked
# against the calendar), 3 sequence digits, check digit or X.
_ID_BODY: Final = (
    r"\d{6}(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
)
ID_PATTERN: Final = re.compile(_ID_BODY, re.ASCII)
"""Resident-ID-looking 18-char substrings (half-width). See ``mask_ids_in_text``."""

# Every start position of an ID-looking window, overlapping ones included.
_ID_WINDOWS: Final = re.compile(f"(?=({_ID_BODY}))", re.ASCII)

# First two digits of a resident ID: province-level division (GB/T 2260), plus
# 81/82/83 used by residence permits of Hong Kong, Macao and Taiwan residents.
_PROVINCES: Final = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82 83".split()
)

# Full-width digits and X map to ASCII one char to one char, so positions in the
# mapped text are positions in the original text.
_ID_SEARCH_VIEW: Final = {0xFF10 + i: 0x30 + i for i in range(10)} | {0xFF38: 0x58, 0xFF58: 0x78}


def normalise_code(raw: str) -> str:
    """Canonical form of a printed code.

    Full-width to half-width, upper-case, and every character that is not a
    letter or digit (spaces, hyphens, dots, slashes, other separators) removed:
    ``" d2143569－x "`` -> ``"D2143569X"``.
    """
    if raw.isascii() and raw.isalnum():  # already canonical but for case: the common case
        return raw.upper()
    return "".join(c for c in to_half_width(raw).upper() if c.isalnum())


MEMO_ENTRIES: Final = 4096
"""Entries of each memo cache of a check or normaliser over the values records carry (here and in
domain/fields.py). The values that repeat across subjects (source units, authorities, categories,
free text such as legal bases) are found within a few thousand; those that name one subject (its
code, name, ID number, a document number) come back only with that subject's next input, which at
a realistic number of subjects lies past any cache of this size. At 65,536 entries the caches held
~90 MB of those one-subject values from 100,000 subjects up: peak RSS 354,380 against 265,160 KiB
in process over 200,000 inputs (``python -m bench.core --stages 200000``), 364 against 273 MiB for
a worker at a million subjects, with the same CPU per input within this machine's noise
(docs/performance.md, forty-first session). What the larger caches bought was a hit on a subject's
next input within 65,536."""


@lru_cache(maxsize=MEMO_ENTRIES)
def uscc_shape_ok(code: str) -> bool:
    """True if ``code`` is 18 chars from the USCC alphabet, whatever its check char.

    Recognises a USCC-shaped code that fails only its check, like the pilot code
    ``91350211M00013FA1N``.
    """
    code = normalise_code(code)
    return len(code) == 18 and all(c in _USCC_CHARS for c in code)


@lru_cache(maxsize=MEMO_ENTRIES)
def is_valid_uscc(code: str) -> bool:
    """USCC shape and check character (GB 32100).

    The shape test is ``uscc_shape_ok``; unlike ``stdnum.cn.uscc.is_valid`` it
    does not require pos 1-2 to be digits, so authority codes such as ``A``,
    ``N`` and ``Y`` are accepted; pos 3-8 (the division) must be digits.
    """
    code = normalise_code(code)
    # characters 3-8 are the registering division (GB/T 2260): digits (a letter there fails, as in
    # ``stdnum.cn.uscc``; such a code attaches flagged, as one whose check character fails)
    return uscc_shape_ok(code) and code[2:8].isdigit() and _uscc_check(code) == code[17]


def _uscc_check(code: str) -> str:
    """The check character of a code whose first 17 characters are from ``USCC_ALPHABET``: the
    sum of value x weight, then ``alphabet[(31 - sum mod 31) mod 31]`` (RULES.md section 1).

    ``stdnum.cn.uscc.calc_check_digit`` computes the same (tests/unit/test_identifiers.py compares
    them), but costs ~5 us a call (65,600 instructions per input counted over inputs about new
    subjects: it cleans the text again and looks every character up with ``str.index`` in a
    generator); this is on every record of a subject the validation's cache has not seen, so at a
    million subjects on nearly every record (issue 13, docs/performance.md fourteenth session)."""
    total = 0
    for i in range(17):
        total += _USCC_VALUE[ord(code[i])] * _USCC_WEIGHTS[i]
    return USCC_ALPHABET[(31 - total % 31) % 31]


def org_code_check_char(body: str) -> str:
    """GB 11714 check character of an 8-character organisation-code body."""
    total = sum(int(c, 36) * w for c, w in zip(body, _ORG_CODE_WEIGHTS))
    c = 11 - total % 11
    return {10: "X", 11: "0"}.get(c, str(c))


def uscc_check_char(body17: str) -> str:
    """GB 32100 check character of the first 17 USCC characters (printed forms accepted, as by
    ``stdnum.cn.uscc.calc_check_digit``); ValueError for a character outside ``USCC_ALPHABET``."""
    body = normalise_code(body17)[:17]
    if len(body) < 17 or any(c not in _USCC_CHARS for c in body):
        raise ValueError(f"not a USCC body: {body17!r}")
    return _uscc_check(body)


def is_valid_org_code(code: str) -> bool:
    """Organisation code (组织机构代码, GB 11714), with or without the hyphen.

    Body chars are 0-9 and A-Z (A=10 .. Z=35), weights 3 7 9 10 5 8 4 2,
    c = 11 - sum mod 11, written ``X`` for 10 and ``0`` for 11.
    """
    code = normalise_code(code)
    return bool(_ORG_CODE_SHAPE.fullmatch(code)) and org_code_check_char(code[:8]) == code[8]


def _ric_ok(code: str) -> bool:
    """Shape, a real birth date and the GB 11643 check character (``stdnum.cn.ric``'s own
    calculation). stdnum's ``is_valid`` also requires the birth division to be in its table, which
    rejects real numbers from divisions it lacks or that were renamed since (e.g. 410702): a
    division is not part of the check, so it is not required here."""
    if len(code) != 18 or not code[:17].isascii() or not code[:17].isdigit() or code[17] not in "0123456789X":
        return False
    # a real birth date: one of the calendar, from 1900 (as ``ID_PATTERN``) and not after today
    if not "19000101" <= code[6:14] <= clock.latest_acceptable_date().strftime("%Y%m%d"):
        return False
    try:
        ric.get_birth_date(code)
    except Exception:  # noqa: BLE001 - stdnum raises on impossible dates
        return False
    return resident_id_check_char(code[:17]) == code[17]


_RIC_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id_check_char(body17: str) -> str:
    """GB 11643 check character of the first 17 digits."""
    return "10X98765432"[sum(int(c) * w for c, w in zip(body17, _RIC_WEIGHTS)) % 11]


def is_valid_resident_id(code: str) -> bool:
    """Resident ID (GB 11643): 18 chars, a real birth date, and the check character."""
    return _ric_ok(normalise_code(code))


def is_valid_reg_no(code: str) -> bool:
    """15-digit business registration number (工商注册号), ISO 7064 MOD 11,10."""
    code = normalise_code(code)
    return len(code) == 15 and code.isascii() and code.isdigit() and mod_11_10.is_valid(code)


def classify(code: str) -> tuple[IdKind, bool]:
    """Kind of identifier by shape (after ``normalise_code``), and whether its check passes.

    - 18 chars: RESIDENT_ID if ID-shaped and valid as an ID, else USCC if
      USCC-shaped (check may fail), else UNKNOWN.
    - 9 chars of 0-9/A-Z (last 0-9/X): ORG_CODE.
    - 15 digits: REG_NO (a legacy 15-digit ID card number also lands here).
    - anything else: UNKNOWN, False.

    Never raises on str input.
    """
    code = normalise_code(code)
    if len(code) == 18:
        if ID_PATTERN.fullmatch(code) and _ric_ok(code):
            return IdKind.RESIDENT_ID, True
        if uscc_shape_ok(code):
            return IdKind.USCC, is_valid_uscc(code)
    elif len(code) == 9 and _ORG_CODE_SHAPE.fullmatch(code):
        return IdKind.ORG_CODE, is_valid_org_code(code)
    elif len(code) == 15 and code.isascii() and code.isdigit():
        return IdKind.REG_NO, is_valid_reg_no(code)
    return IdKind.UNKNOWN, False


def code_problem(code: str) -> str | None:
    """Why no subject can have ``code``, for an answer that found none (a check's ``no_record``), or
    None for a well-formed code. A typo in a check character reads otherwise as "nothing against this
    subject". A 15-digit number whose registration check fails is not flagged: it may be a
    first-generation ID number, which has no check digit."""
    code = normalise_code(code)
    if len(code) > 1 and code.count(code[0]) == len(code):
        # seen: 000000000000000000 (which passes the USCC check) answered with no problem; a code of
        # one repeated character is what a form gets when there is none, never a subject's
        return "one character repeated: what a form holds when it has no code; no subject is named by it"
    kind, valid = classify(code)
    if valid or kind is IdKind.REG_NO:
        return None
    if len(code) == 18 and code[:17].isascii() and code[:17].isdigit() \
            and resident_id_check_char(code[:17]) == code[17]:
        # the check character is a resident ID number's: what is wrong is elsewhere (seen: month 13
        # answered "its check character does not match", pointing the client at the wrong character)
        return ("its check character is a resident ID number's (居民身份证号码), but its birth date (characters "
                "7-14) is no real date, or lies before 1900 or after today: a typo?")
    if kind is IdKind.USCC:
        return ("its check character does not match: not a valid USCC (统一社会信用代码) or resident ID number; "
                "a typo?")
    if kind is IdKind.ORG_CODE:
        return "its check character does not match: not a valid organisation code (组织机构代码); a typo?"
    return ("not the shape of a USCC, resident ID number, organisation code (9 characters) or registration "
            "number (15 digits)")


def _uscc_part(code: str, part: slice) -> str:
    code = normalise_code(code)
    if not uscc_shape_ok(code):
        raise ValueError("not a USCC-shaped code")
    return code[part]


def org_code_of_uscc(code: str) -> str:
    """The organisation code embedded in a USCC (chars 9-17). Raises ValueError if not USCC-shaped."""
    return _uscc_part(code, slice(8, 17))


def division_of_uscc(code: str) -> str:
    """The admin-division code (行政区划码, GB/T 2260) of a USCC (chars 3-8)."""
    return _uscc_part(code, slice(2, 8))


def category_of_uscc(code: str) -> str:
    """Authority + category chars of a USCC (chars 1-2): e.g. ``91`` enterprise,
    ``92`` individual business (个体工商户), ``93`` farmers' cooperative."""
    return _uscc_part(code, slice(0, 2))


def resident_id_of_legacy(digits: str) -> str | None:
    """The 18-character resident ID number of a first-generation (15-digit) one, or None if the 15
    digits have no real birth date: GB 11643-1999 gave every holder the same number with the year
    of birth in full (19YY) and a check character, so a person sent with either number is one
    subject. ``digits``: normalised (:func:`normalise_code`)."""
    if len(digits) != 15 or not (digits.isascii() and digits.isdigit()):
        return None
    body = digits[:6] + "19" + digits[6:]
    code = body + resident_id_check_char(body)
    return code if _ric_ok(code) else None


def may_be_resident_id(code: str) -> bool:
    """True if ``code`` (as given: not normalised) is, or may be, a natural person's ID number: 15
    digits (a first-generation ID card), or 17 digits and a digit or X that pass the GB 11643 check,
    look like an ID (``ID_PATTERN``: a plausible birth date) or start with a province code. Errs on
    the side of yes, as the log mask does (a mistyped ID is still personal); a code with a letter
    before its last character (most USCCs) is never one. The storage layout keeps such codes out of
    Redis key names and Kafka message keys (sinks/keys.py)."""
    if len(code) == 15:
        return code.isascii() and code.isdigit()
    if len(code) != 18 or not (code[:17].isascii() and code[:17].isdigit()) or code[17] not in "0123456789Xx":
        return False
    return bool(ID_PATTERN.fullmatch(code)) or _ric_ok(code.upper()) or code[:2] in _PROVINCES


def looks_like_legacy_id(digits: str) -> bool:
    """True if 15 ASCII digits read as a first-generation (15-digit) resident ID number: a
    province-level division code, then (after the other 4 division digits) a real birth date
    19YYMMDD. Business registration numbers share the shape; callers that know a field holds one
    skip it. The one test of this shape for the log mask, the personal-data redaction and the API."""
    if len(digits) != 15 or not (digits.isascii() and digits.isdigit()) or digits[:2] not in _LEGACY_PROVINCES:
        return False
    try:
        dt.date(1900 + int(digits[6:8]), int(digits[8:10]), int(digits[10:12]))
    except ValueError:
        return False
    return True


# the first-generation cards were issued in the province-level divisions 11-65 only (the 71 / 81-83
# codes came with the 18-digit cards and residence permits)
_LEGACY_PROVINCES: Final = frozenset(p for p in _PROVINCES if p <= "65")
_FULL_WIDTH_DIGITS: Final = {0xFF10 + i: 0x30 + i for i in range(10)}
_FIFTEEN_DIGITS: Final = re.compile(r"(?<![0-9])\d{15}(?![0-9])", re.ASCII)


def mask_legacy_ids_in_text(text: str) -> str:
    """Mask every first-generation (15-digit) resident ID number in ``text`` (full-width digits
    too): a run of exactly 15 digits that :func:`looks_like_legacy_id`."""
    view = text.translate(_FULL_WIDTH_DIGITS)
    spans = [m.span() for m in _FIFTEEN_DIGITS.finditer(view) if looks_like_legacy_id(m.group())]
    if not spans:
        return text
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        out.append(mask_id(text[start:end]))
        last = end
    out.append(text[last:])
    return "".join(out)


def mask_id(code: str) -> str:
    """Mask an ID number for logs: keep the first 3 and the last char, same length.

    ``11010519491231002X`` -> ``110**************X``. Strings of 4 chars or fewer
    are masked entirely.
    """
    if len(code) <= 4:
        return "*" * len(code)
    return code[:3] + "*" * (len(code) - 4) + code[-1]


def _should_mask(candidate: str) -> bool:
    # Digit-only USCCs can look like IDs: mask what passes the ID check, and
    # anything else starting with a province code (a mistyped ID is still personal).
    return _ric_ok(candidate.upper()) or candidate[:2] in _PROVINCES


def mask_ids_in_text(text: str) -> str:
    """Replace every resident-ID-looking number in ``text`` by ``mask_id`` of it.

    Looks at every 18-char window (overlapping windows and full-width digits
    included, no word boundary needed, so an ID glued to other digits or letters is
    still found). A window matching ``ID_PATTERN`` is masked if it passes the ID
    check or starts with a province code; USCCs with letters never match. Errs on
    the side of masking too much. Where windows overlap, a char hidden by any of
    them stays hidden.
    """
    view = text.translate(_ID_SEARCH_VIEW)
    hidden = bytearray(len(text))  # 1 = replace by '*'
    for m in _ID_WINDOWS.finditer(view):
        if _should_mask(m.group(1)):
            start = m.start()
            hidden[start + 3 : start + 17] = b"\x01" * 14  # as mask_id: keep 3 + 1
    if not any(hidden):
        return text
    return "".join("*" if h else c for c, h in zip(text, bytes(hidden)))


# ID numbers written in groups (RULES.md 7): ``110105 19491231 002X``, ``110105-19491231-002X``, and
# the first-generation ``110105 491231 002``. Searched in a view of the text (:data:`GROUPED_VIEW`:
# full-width digits, X and dash as ASCII, one character for one, so positions in the view are
# positions in the text). Between two groups: one or two spaces (tab, ideographic space), or a dash
# (ASCII or U+2010-U+2015) with a space either side or not. A group touching another ASCII letter or
# digit is part of something else (a 7-digit first group is not the ID's grouping).
_GROUP_SEP: Final = r"(?:[ \t\u3000]{1,2}|[ ]?[-\u2010-\u2015][ ]?)"
_NOT_ALNUM_BEFORE: Final = r"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER: Final = r"(?![0-9A-Za-z])"
GROUPED_ID: Final = re.compile(
    _NOT_ALNUM_BEFORE + rf"(\d{{6}}){_GROUP_SEP}(\d{{8}}){_GROUP_SEP}(\d{{3}}[0-9Xx])" + _NOT_ALNUM_AFTER, re.ASCII)
"""An 18-character ID number written 6 + 8 + 4, its groups captured (search :data:`GROUPED_VIEW` of a text)."""
GROUPED_LEGACY_ID: Final = re.compile(
    _NOT_ALNUM_BEFORE + rf"(\d{{6}}){_GROUP_SEP}(\d{{6}}){_GROUP_SEP}(\d{{3}})" + _NOT_ALNUM_AFTER, re.ASCII)
"""A first-generation 15-digit ID number written 6 + 6 + 3, its groups captured."""
GROUPED_VIEW: Final = _ID_SEARCH_VIEW | {0xFF0D: 0x2D}
"""Translation table: full-width digits, X and hyphen-minus to ASCII, one character for one."""
# The cheap test before the searches, which run on every string of every public answer: no 6 digits
# (any script's: full-width ones too) followed by what starts a separator, no ID number written in
# groups. ~0.3 us a string, against ~2-5 us for the view and the searches.
_GROUPED_HINT: Final = re.compile(r"\d{6}(?:[ \t\u3000]|[ ]?[-\u2010-\u2015\uff0d])")
_SHORTEST_GROUPED: Final = 17  # 15 digits and two separators


def grouped_id_spans(view: str, *, legacy: bool = True) -> list[tuple[int, int]]:
    """The (start, end) spans of the ID numbers written in groups in ``view`` (a text translated
    with :data:`GROUPED_VIEW`): 18-character ones that :func:`mask_ids_in_text` would mask written
    without separators, and (``legacy``) 15-digit ones that :func:`looks_like_legacy_id`."""
    spans: list[tuple[int, int]] = []
    if legacy:
        for m in GROUPED_LEGACY_ID.finditer(view):
            if looks_like_legacy_id(m.group(1) + m.group(2) + m.group(3)):
                spans.append(m.span())
    for m in GROUPED_ID.finditer(view):
        compact = m.group(1) + m.group(2) + m.group(3)
        if ID_PATTERN.fullmatch(compact) and _should_mask(compact):
            spans.append(m.span())
    return spans


def mask_spans(text: str, view: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with the ID numbers at ``spans`` masked as :func:`mask_id` does, separators kept:
    in each span the letters and digits (read in ``view``, the text's one-for-one translation) but
    the first 3 and the last become ``*``: ``110105-19491231-002X`` -> ``110***-********-***X``."""
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        positions = [i for i in range(start, end) if view[i].isalnum()]
        for i in positions[3:-1]:
            chars[i] = "*"
    return "".join(chars)


def mask_grouped_ids_in_text(text: str, *, legacy: bool = True) -> str:
    """``text`` with every ID number written in groups (:func:`grouped_id_spans`) masked, separators
    kept. Cheap for a text without 6 digits in a row followed by a space or a dash: returned as it
    is without a search."""
    if len(text) < _SHORTEST_GROUPED or _GROUPED_HINT.search(text) is None:
        return text
    view = text if text.isascii() else text.translate(GROUPED_VIEW)
    return mask_spans(text, view, grouped_id_spans(view, legacy=legacy))


def mask_id_numbers_in_text(text: str, *, legacy: bool = True) -> str:
    """``text`` with every natural person's ID number masked (RULES.md 7): 18-character ones
    (:func:`mask_ids_in_text`), first-generation 15-digit ones (:func:`mask_legacy_ids_in_text`;
    unless not ``legacy``: a field that holds a business registration number, which shares their
    shape) and both written in groups with spaces or dashes (:func:`mask_grouped_ids_in_text`)."""
    text = mask_ids_in_text(text)
    if legacy:
        text = mask_legacy_ids_in_text(text)
    return mask_grouped_ids_in_text(text, legacy=legacy)
