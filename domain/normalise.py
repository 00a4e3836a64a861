"""Text normalisation for comparing names, document numbers and free text.

RULES.md section 1: names are normalised before any comparison: full-width to
half-width (全角转半角), Chinese and Latin parentheses unified, whitespace removed.

Pure functions, no I/O. Every function here is idempotent: f(f(x)) == f(x).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["to_half_width", "normalise_name", "is_blank_name", "normalise_doc_no", "normalise_text"]

# Full-width ASCII block U+FF01..U+FF5E maps to U+0021..U+007E; the ideographic
# space U+3000 (全角空格) maps to an ordinary space.
_HALF_WIDTH: Final = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_HALF_WIDTH[0x3000] = 0x20

# Zero-width characters are not str.isspace() but are invisible separators too.
_ZERO_WIDTH: Final = frozenset("\u200b\u200c\u200d\u2060\ufeff")

# A year in brackets inside a document number (文号), e.g. 豫市监罚(2024)12号.
# Openers/closers: 〔〕 (official), [] (also from full-width ［］), 【】, () (also
# from full-width （）), and the brackets typed for 〔〕: the small tortoise-shell ﹝﹞, the white
# lenticular 〖〗 (seen: a re-export under 〖2024〗 was a second record, and a revocation under 〔2024〕
# left the first on its blacklist) and the white tortoise-shell 〘〙.
# The official 〔yyyy〕 itself, which most numbers already use, is not matched: nothing to rewrite.
_YEAR_IN_OTHER_BRACKETS: Final = re.compile(r"[\[【(﹝〖〘](\d{4})[〕\]】)﹞〗〙]|〔(\d{4})[\]】)﹞〗〙]")

# Dashes typed for the hyphen in a document number: hyphen, non-breaking hyphen, figure dash, en and
# em dash, horizontal bar, minus sign, small hyphen-minus (the full-width one is mapped to ASCII with
# the other full-width characters).
_DASHES: Final = {ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63"}
_DASH_CHAR: Final = re.compile("[\u2010-\u2015\u2212\ufe63]")


def _official_year(m: re.Match[str]) -> str:
    return f"〔{m.group(1) or m.group(2)}〕"


_FULL_WIDTH_CHAR: Final = re.compile("[\uff01-\uff5e\u3000]")
# str.isspace() characters and the zero-width ones (str.isspace() is False for those).
_SPACE_CHARS: Final = re.compile("[\\s\x1c-\x1f\x85\u200b\u200c\u200d\u2060\ufeff]+")


def to_half_width(raw: str) -> str:
    """Map full-width ASCII (全角) characters and U+3000 to their half-width forms."""
    # translate() looks up every character; most names have no full-width character at all
    return raw.translate(_HALF_WIDTH) if _FULL_WIDTH_CHAR.search(raw) else raw


# Other parenthesis forms seen in typed names: small form ﹙﹚ (U+FE59/FE5A), vertical ︵︶
# (U+FE35/FE36), superscript ⁽⁾ and subscript ₍₎. Names only: a document number keeps its brackets
# (normalise_doc_no), so a stored record's key does not change.
_NAME_PARENS: Final = {0xFE59: 0x28, 0xFE5A: 0x29, 0xFE35: 0x28, 0xFE36: 0x29,
                       0x207D: 0x28, 0x207E: 0x29, 0x208D: 0x28, 0x208E: 0x29}
_NAME_PAREN_CHAR: Final = re.compile("[\ufe59\ufe5a\ufe35\ufe36\u207d\u207e\u208d\u208e]")


def _remove_whitespace(text: str) -> str:
    return _SPACE_CHARS.sub("", text)


def normalise_name(raw: str) -> str:
    """Normalise a subject name (主体名称) for comparison.

    Full-width ASCII becomes half-width, so the Chinese parentheses （） become
    Latin ``(`` ``)``; all whitespace (spaces, U+3000, NBSP, tabs, newlines and
    zero-width spaces) is removed. Latin letters keep their case: names are
    compared as registered (codes, unlike names, are upper-cased by
    ``domain.identifiers.normalise_code``).

    >>> normalise_name("郑州 某某（集团）有限公司")
    '郑州某某(集团)有限公司'
    >>> normalise_name("郑州某某﹙集团﹚有限公司")
    '郑州某某(集团)有限公司'
    """
    text = to_half_width(raw)
    if _NAME_PAREN_CHAR.search(text):
        text = text.translate(_NAME_PARENS)
    return _remove_whitespace(text)


# a character -> whether normalise_name keeps it (is_blank_name); at most _KEPT_SIZE of them
_KEPT: Final[dict[str, bool]] = {}
_KEPT_SIZE: Final = 1 << 16


def is_blank_name(raw: str) -> bool:
    """``normalise_name(raw) == ""``, without normalising the whole text when its first character
    stays: normalise_name maps each character on its own (to half width, then whitespace removed),
    so its result is empty exactly when every character is removed. Every required field of every
    record asks this (domain/fields.py ``check_required``); normalising them whole cost a tenth of
    the validation (issue 13)."""
    if raw:
        first = raw[0]
        kept = _KEPT.get(first)
        if kept is None:
            kept = normalise_name(first) != ""
            if len(_KEPT) < _KEPT_SIZE:
                _KEPT[first] = kept
        if kept:
            return False
    return normalise_name(raw) == ""


def normalise_doc_no(raw: str) -> str:
    """Normalise a decision document number (决定书文号), e.g. ``豫市监罚〔2024〕12号``.

    Full-width ASCII becomes half-width, the brackets around the year
    (〔〕 [] ［］ 【】 () （） ﹝﹞ 〖〗 〘〙) become the official 〔〕, every dash (— – ‐ − ...)
    becomes ``-``, and all whitespace is removed. Brackets that do not enclose a four-digit year
    are left as they are (after the width mapping).

    >>> normalise_doc_no("豫市监罚 （２０２４） 12 号")
    '豫市监罚〔2024〕12号'
    """
    text = _remove_whitespace(to_half_width(raw))
    if _DASH_CHAR.search(text):
        text = text.translate(_DASHES)
    return _YEAR_IN_OTHER_BRACKETS.sub(_official_year, text)


def normalise_text(raw: str) -> str:
    """Normalise a free-text field (facts, legal basis, remarks).

    Full-width ASCII becomes half-width, every run of whitespace becomes one
    space, and leading/trailing whitespace is stripped.
    """
    return " ".join(to_half_width(raw).split())
