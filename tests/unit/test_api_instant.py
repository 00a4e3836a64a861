"""``at`` on the API's routes: an offset's '+' typed in a URL reaches the service as a space (a query
string's '+' means one); the 400 says how to write it instead of only that the instant is malformed."""

from __future__ import annotations

import pytest

from creditstream.check_api import CheckApi, Refused


def test_an_offset_whose_plus_became_a_space_is_explained():
    with pytest.raises(Refused) as refused:
        CheckApi._instant("2026-03-02T10:00:00 08:00")
    assert refused.value.status == 400 and "must be written %2B in a URL" in refused.value.message


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-01"])
def test_other_malformed_instants_get_no_such_hint(raw):
    with pytest.raises(Refused) as refused:
        CheckApi._instant(raw)
    assert "%2B" not in refused.value.message


def test_a_written_plus_is_an_instant():
    assert CheckApi._instant("2026-03-02T01:00:00+08:00") == "2026-03-02"
