"""The storage id (sinks/keys.py): natural persons' ID numbers only as keyed pseudonyms, organisations'
USCCs as they are (RULES.md 7)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.identifiers import resident_id_check_char, uscc_check_char
from sinks.keys import Keys, PseudonymKeyMissing, is_pseudonym, storage_id
from streams import samples

KEY = "k" * 40
USCCS = [samples.COMPANY_USCC, "91350211M00013FA1N", "91310110000000000X", samples.DEV_ZZ_USCC,
         "913101106660072171"]  # the last: all digits, but no ID shape and no province code
PERSON_IDS = [samples.PERSON_ID, samples.LEGAL_REP_ID, "11010519491231002X",
              "410102870315451",      # a first-generation 15-digit card
              "410102198713454518",   # ID-shaped with an impossible day: still personal
              "410102198703154519",   # a mistyped check char: still personal
              "11999999999999999X"]   # no date, but a province code: treated as personal


@pytest.mark.parametrize("uscc", USCCS)
def test_an_organisations_uscc_is_stored_as_it_is(uscc):
    assert storage_id(uscc, KEY) == uscc
    assert storage_id(uscc, "") == uscc  # needs no key
    assert Keys("cs", "live").subject(uscc) == f"cs:live:subject:{uscc}"


@pytest.mark.parametrize("person", PERSON_IDS)
def test_a_persons_id_becomes_its_hmac(person):
    stored = storage_id(person, KEY)
    expected = hmac.new(KEY.encode(), person.encode(), hashlib.sha256).hexdigest()[:32]
    assert stored == "p." + expected
    assert is_pseudonym(stored) and not is_pseudonym(person)
    assert person not in stored


def test_the_pseudonym_is_deterministic_keyed_and_idempotent():
    a = storage_id(samples.PERSON_ID, KEY)
    assert a == storage_id(samples.PERSON_ID, "k" * 40)  # same key, same pseudonym
    assert a != storage_id(samples.PERSON_ID, KEY + "!")  # another key, another one
    assert a != storage_id(samples.LEGAL_REP_ID, KEY)
    assert storage_id(a, KEY) == a == storage_id(a, "")  # a member read back from a set maps to itself
    keys = Keys("cs", "live", KEY)
    assert keys.subject(samples.PERSON_ID) == keys.subject(a) == f"cs:live:subject:{a}"
    assert keys.with_generation("replay-1").storage_id(samples.PERSON_ID) == a
    assert KEY not in repr(keys)


def test_a_person_without_a_key_is_refused():
    with pytest.raises(PseudonymKeyMissing, match="pseudonym_key"):
        storage_id(samples.PERSON_ID, "")
    with pytest.raises(PseudonymKeyMissing):
        Keys("cs").subject(samples.PERSON_ID)


@st.composite
def resident_ids(draw) -> str:
    division = draw(st.integers(110000, 659999))
    born = draw(st.dates(dt.date(1900, 1, 1), dt.date(2025, 12, 31)))
    body = f"{division}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return body + resident_id_check_char(body)


@given(resident_ids())
def test_no_valid_resident_id_is_ever_stored_in_clear(person):
    stored = storage_id(person, KEY)
    assert is_pseudonym(stored) and person not in stored
    assert storage_id(person[:6] + person[8:17], KEY) != person[:6] + person[8:17]  # its 15-digit form


@given(st.text("0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=17, max_size=17).filter(
    lambda body: any(c.isalpha() for c in body[:17])))
def test_a_uscc_with_a_letter_is_never_pseudonymised(body):
    uscc = body + uscc_check_char(body)
    assert storage_id(uscc, KEY) == uscc


def test_list_changes_are_keyed_as_docs_events_md_says():
    """docs/events.md told downstream the list-changes key is "the subject id (USCC or resident ID
    number)"; a person's key is its pseudonym, and the subject is the record's subject_id."""
    import re
    from pathlib import Path

    from sinks.kafka import KafkaSink
    from sinks.list_changes import ListChangeWriter
    from streams.codec import AvroCodec

    sink = KafkaSink(None)
    writer = ListChangeWriter(sink, AvroCodec(), "cs.list-changes", Keys(pseudonym_key=KEY))
    for subject, kind in ((samples.COMPANY_USCC, "uscc"), (samples.PERSON_ID, "resident_id")):
        writer.add({"change_id": f"c-{kind}", "subject": subject, "list": "court_debtor", "kind": "court_debtor",
                    "transition": "entered", "effective_date": "2024-07-15", "causes": [],
                    "event_ms": 1721008800000}, kind, 1721008800000)
    org, person = sink._buffer  # noqa: SLF001 - what would be produced
    codec = AvroCodec()
    assert org.key.decode() == samples.COMPANY_USCC == codec.decode(org.value)[1]["subject_id"]
    assert re.fullmatch(r"p\.[0-9a-f]{32}", person.key.decode())
    assert codec.decode(person.value)[1]["subject_id"] == samples.PERSON_ID

    doc = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text(encoding="utf-8")
    row = next(line for line in doc.splitlines() if line.startswith("| `list-changes` |"))
    assert "pseudonym" in row and "key = subject id" not in row
    reading = doc[doc.index("## Reading list changes"):doc.index("- `effective_date`")]
    assert "USCC or resident ID number" not in reading
    assert "pseudonym" in reading and "`subject_id`" in reading
