"""creditstream.logs masks 15-digit legacy ID numbers and ID numbers written in groups, and leaves
USCCs, 15-digit numbers that cannot be an ID, and longer numbers alone."""

from __future__ import annotations

import io
import json

import pytest

from creditstream import logs
from creditstream.logs import mask_text

LEGACY = "110105491231002"  # Beijing Chaoyang, born 1949-12-31: a first-generation card number
LEGACY_MASKED = "110***********2"
ID = "11010519491231002X"


@pytest.fixture
def out():
    buf = io.StringIO()
    logs.configure("INFO", "json", stream=buf)
    yield buf
    logs.configure("INFO", "json")


@pytest.mark.parametrize("text, expected", [
    (LEGACY, LEGACY_MASKED),
    (f"person {LEGACY} applied", f"person {LEGACY_MASKED} applied"),
    (f"身份证号{LEGACY}，已处理", f"身份证号{LEGACY_MASKED}，已处理"),  # glued to Chinese text
    (f"id={LEGACY};", f"id={LEGACY_MASKED};"),
    (f"cs:subject:{LEGACY}", f"cs:subject:{LEGACY_MASKED}"),
    ("650102800229123", "650***********3"),  # Xinjiang, 1980-02-29 (a leap day)
    ("１１０１０５４９１２３１００２", "１１０" + "*" * 11 + "２"),  # full-width digits
])
def test_legacy_15_digit_ids_are_masked(text, expected):
    assert mask_text(text) == expected


@pytest.mark.parametrize("text", [
    "91310110666007217T",           # a USCC
    "Y110105491231002XT",           # USCC-shaped, with an ID-like 15-digit run inside: letters touch it
    "310000000012345",              # registration number: 000012 is no date
    "990105491231002",              # no province 99
    "710105491231002",              # 71 (Taiwan) never issued first-generation cards: outside 11-65
    "110105491331002",              # month 13
    "110105490230002",              # 30 February
    "110105810229002",              # 1981 is no leap year
    "1101054912310021",             # 16 digits
    "11010549123100212345",         # 20 digits: a longer number, not an ID
    "a110105491231002",             # glued to a letter: part of some other code
    "offset 123456789012345",       # province 12 (Tianjin), but 789012 is no date (month 90)
])
def test_not_legacy_ids(text):
    assert mask_text(text) == text


def test_registration_numbers_with_a_date_like_middle_are_masked_too():
    """Documented trade-off: a 15-digit business registration number (not personal data) whose
    positions 7-12 read as a date cannot be told from a legacy ID number, and is masked."""
    assert mask_text("310115400123456") == "310***********6"


@pytest.mark.parametrize("text, expected", [
    ("110105 19491231 002X", "110*** ******** ***X"),
    ("110105-19491231-002X", "110***-********-***X"),
    ("110105 - 19491231 - 002x", "110*** - ******** - ***x"),
    ("110105  19491231  0021", "110***  ********  ***1"),
    ("身份证：110105－19491231－002X。", "身份证：110***－********－***X。"),
    ("110105 491231 002", "110*** ****** **2"),
    ("110105-491231-002", "110***-******-**2"),
    (f"{ID} and 110105 19491231 002X and {LEGACY}",
     "110**************X and 110*** ******** ***X and " + LEGACY_MASKED),
])
def test_grouped_ids_are_masked(text, expected):
    assert mask_text(text) == expected


@pytest.mark.parametrize("text", [
    "990105 19491231 002X",   # not an ID: no province, fails the check
    "110105 19491331 002X",   # month 13
    "2024-05-21 10:00:00",    # a date and time
    "1110105 19491231 002X",  # a first group of 7 digits: not the ID's grouping
])
def test_grouped_non_ids(text):
    assert mask_text(text) == text


def test_18_digit_masking_unchanged():
    assert mask_text(ID) == "110**************X"
    assert mask_text("91310110666007217T") == "91310110666007217T"


def test_in_log_lines_and_ints(out):
    log = logs.get_logger("creditstream.test")
    log.info(f"legacy {LEGACY}", legacy=LEGACY, as_int=int(LEGACY), grouped="110105-19491231-002X",
             nested={"ids": ["110105 491231 002"]}, uscc="91310110666007217T", reg_no="310000000012345",
             offset=123456789012345)
    line = json.loads(out.getvalue().splitlines()[-1])
    text = out.getvalue()
    assert LEGACY not in text and "19491231" not in text and "491231" not in text
    assert line["event"] == f"legacy {LEGACY_MASKED}"
    assert line["legacy"] == LEGACY_MASKED and line["as_int"] == LEGACY_MASKED
    assert line["grouped"] == "110***-********-***X"
    assert line["nested"] == {"ids": ["110*** ****** **2"]}
    assert line["uscc"] == "91310110666007217T" and line["reg_no"] == "310000000012345"
    assert line["offset"] == 123456789012345
