"""creditstream/check_api.py ``public_view``: a check answer for a client without the personal role
is exactly what domain.privacy.redact_personal makes of it; the redaction is skipped only where it
would change nothing (checked here against the redaction itself, including a hypothesis search)."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from creditstream.check_api import public_view
from domain.checks import check, to_builtins
from domain.privacy import redact_personal
from tests.builders import record, record_event
from tests.unit.list_inputs import RULES, run

PERSON_ID = "410102198703154518"
LEGACY_ID = "410102870315451"  # first generation: 15 digits, born 1987-03-15


def answer(**record_fields) -> dict:
    pen = record("penalty", record_fields.pop("doc_no", "环罚〔2024〕1号"), "2024-02-05", severity="severe",
                 domain="environment", **record_fields)
    state = run([record_event(pen, "2024-02-06")])
    doc = to_builtins(check(state, "government_procurement", "2024-06-03", RULES))
    doc.update(check_id="0" * 32, checked_at="2024-06-03T10:00:00.000+08:00")
    return doc


def test_an_organisations_answer_is_not_rescanned_and_equals_the_redaction():
    doc = answer()
    assert doc["outcome"] == "restricted" and doc["basis"][0]["records"]
    assert public_view(doc, natural_person=False) is doc  # skipped ...
    assert redact_personal(doc) == doc                    # ... because it changes nothing


def test_id_numbers_anywhere_take_the_redaction():
    for number in (PERSON_ID, PERSON_ID[:-1] + "X", LEGACY_ID, "４１０１０２１９８７０３１５４５１８"):
        doc = answer()
        doc["basis"][0]["records"][0]["doc_no"] = f"豫执{number}号"
        doc["subject"] = number
        view = public_view(copy.deepcopy(doc), natural_person=False)
        assert view == redact_personal(doc) and view != doc, number
        assert number not in str(view)


def test_a_natural_persons_answer_is_always_redacted():
    doc = answer()
    doc["subject"] = PERSON_ID
    assert public_view(doc, natural_person=True) == redact_personal(doc, natural_person=True)
    assert public_view(doc, natural_person=True)["subject"] != PERSON_ID


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789Xx０１２３４５６７８９Ｘ-〔〕号豫 ", max_size=40))
def test_the_skip_never_differs_from_the_redaction(text):
    doc = answer()
    doc["basis"][0]["records"][0]["doc_no"] = text
    doc["basis"][0]["records"][0]["record_key"] = "penalty|11410100005200036R|" + text
    assert public_view(copy.deepcopy(doc), natural_person=False) == redact_personal(doc)


def test_id_numbers_written_in_groups_take_the_redaction():
    """The shortcut looks at runs of 15 digits and more; an ID number written in groups has none,
    and must not be skipped (RULES.md 7)."""
    for number in ("410102 19870315 4518", "410102-19870315-4518", "410102\t19870315\t4518",
                   "410102\u300019870315\u30004518", "410102 - 870315 - 451", "４１０１０２－１９８７０３１５－４５１８"):
        doc = answer()
        doc["basis"][0]["records"][0]["doc_no"] = f"豫执 {number} 号"
        view = public_view(copy.deepcopy(doc), natural_person=False)
        assert view == redact_personal(doc) and view != doc, number
        assert number not in str(view) and "870315" not in str(view) and "８７０３１５" not in str(view)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789Xx０１２３４５６７８９Ｘ-－—〔〕号豫 \t\u3000\\", max_size=40),
       st.sampled_from(["", "410102 19870315 4518", "110105-491231-002", "410102\t19870315\t451"]))
def test_the_skip_never_differs_from_the_redaction_with_grouped_numbers(text, number):
    doc = answer()
    doc["basis"][0]["records"][0]["doc_no"] = text + number + text
    doc["basis"][0]["records"][0]["record_key"] = "penalty|11410100005200036R|" + number + text
    assert public_view(copy.deepcopy(doc), natural_person=False) == redact_personal(doc)
