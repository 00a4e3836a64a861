import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.normalise import is_blank_name, normalise_doc_no, normalise_name, normalise_text, to_half_width


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("郑州某某（集团）有限公司", "郑州某某(集团)有限公司"),
        ("郑州某某(集团)有限公司", "郑州某某(集团)有限公司"),
        (" 郑州\u3000某某 \t(集团)\n有限公司 ", "郑州某某(集团)有限公司"),
        ("ＡＢＣ有限公司", "ABC有限公司"),
        ("Abc 有限公司", "Abc有限公司"),  # names keep their case
        ("某某\u00a0公司\u200b", "某某公司"),  # NBSP and zero-width space
        ("【某某】公司", "【某某】公司"),  # only round brackets are unified
        ("郑州某某﹙集团﹚有限公司", "郑州某某(集团)有限公司"),  # small form parentheses
        ("郑州某某︵集团︶有限公司", "郑州某某(集团)有限公司"),  # vertical forms
        ("郑州某某⁽集团₎有限公司", "郑州某某(集团)有限公司"),  # superscript / subscript
        ("", ""),
    ],
)
def test_normalise_name(raw, expected):
    assert normalise_name(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("豫市监罚〔2024〕12号", "豫市监罚〔2024〕12号"),
        ("豫市监罚[2024]12号", "豫市监罚〔2024〕12号"),
        ("豫市监罚［２０２４］１２号", "豫市监罚〔2024〕12号"),
        ("豫市监罚【2024】12号", "豫市监罚〔2024〕12号"),
        ("豫市监罚（2024）12号", "豫市监罚〔2024〕12号"),
        ("豫市监罚(2024)12号", "豫市监罚〔2024〕12号"),
        ("豫市监罚﹝2024﹞12号", "豫市监罚〔2024〕12号"),
        (" 豫市监罚 〔 2024 〕 12 号 ", "豫市监罚〔2024〕12号"),
        ("郑政〔2015〕32号(补)", "郑政〔2015〕32号(补)"),  # not a year: left alone
        ("", ""),
    ],
)
def test_normalise_doc_no(raw, expected):
    assert normalise_doc_no(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  违反《食品安全法》\u3000第 ３４ 条\n\n  ", "违反《食品安全法》 第 34 条"),
        ("a\t\tb", "a b"),
        ("", ""),
    ],
)
def test_normalise_text(raw, expected):
    assert normalise_text(raw) == expected


def test_to_half_width():
    assert to_half_width("！～（）\u3000Ａｚ０") == "!~() Az0"


ANY_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.sampled_from("（）()〔〕[]【】［］﹝﹞\u3000\u00a0\u200b \t\n２０２４2024豫罚号"),
    )
)


@given(ANY_TEXT)
def test_normalise_name_idempotent_without_whitespace(raw):
    once = normalise_name(raw)
    assert normalise_name(once) == once
    assert not any(c.isspace() for c in once)
    assert "（" not in once and "）" not in once


@given(ANY_TEXT)
def test_normalise_doc_no_idempotent_without_whitespace(raw):
    once = normalise_doc_no(raw)
    assert normalise_doc_no(once) == once
    assert not any(c.isspace() for c in once)


@given(ANY_TEXT)
def test_normalise_text_idempotent_and_collapsed(raw):
    once = normalise_text(raw)
    assert normalise_text(once) == once
    assert once == once.strip()
    assert "  " not in once
    assert not any(c.isspace() and c != " " for c in once)


# whitespace of every kind normalise_name removes, characters it keeps, and what maps to either
_BLANKISH = st.text(alphabet=st.sampled_from(
    [" ", "\t", "\n", "\u3000", "\u00a0", "\u200b", "\ufeff", "\x1c", "\x85", "\u2028", "a", "（", "Ａ", "郑", "-"]),
    max_size=8)


@given(st.one_of(_BLANKISH, st.text(max_size=8)))
def test_is_blank_name_is_normalise_name_empty(raw):
    assert is_blank_name(raw) == (normalise_name(raw) == "")
    assert is_blank_name(raw) == (normalise_name(raw) == "")  # the second time from the remembered characters


@pytest.mark.parametrize("raw, blank", [("", True), ("\u3000 \u200b\t", True), ("\u3000郑", False), ("郑 ", False),
                                        ("\ufeff", True), ("Ａ", False)])
def test_is_blank_name(raw, blank):
    assert is_blank_name(raw) is blank


def test_a_document_number_typed_with_other_brackets_or_dashes_is_the_same_number():
    """Seen (an audit from a department's side): 郑环罚〖2024〗E01号, a re-export of 郑环罚〔2024〕E01号,
    was a second record, and a revocation under 〔2024〕 left the first on its blacklist; the dashes
    —, –, ‐ likewise made numbers apart from the one with -."""
    from domain.normalise import normalise_doc_no

    official = normalise_doc_no("郑环罚〔2024〕E01号")
    for typed in ("郑环罚〖2024〗E01号", "郑环罚〘2024〙E01号", "郑环罚【2024〗E01号", "郑环罚 〖２０２４〗 E01号"):
        assert normalise_doc_no(typed) == official, typed
    hyphened = normalise_doc_no("豫环罚-2024-01")
    for typed in ("豫环罚—2024—01", "豫环罚–2024–01", "豫环罚‐2024‐01", "豫环罚−2024−01", "豫环罚－2024－01"):
        assert normalise_doc_no(typed) == hyphened == "豫环罚-2024-01", typed
    assert normalise_doc_no("郑环罚〖甲〗1号") == "郑环罚〖甲〗1号"  # no year inside: left as it is
