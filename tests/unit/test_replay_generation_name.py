"""``creditstream replay --generation NAME``: a name that a key pattern would misread (a space, ``*``,
``?``, ``:``) is refused before anything is read or written; docs/operations.md deletes an old
generation's keys with ``redis-cli --scan --pattern "cs:<name>:*"``, which such a name would widen."""

from __future__ import annotations

import pytest

from creditstream.settings import Settings
from ops.replay import GENERATION_NAME, replay


@pytest.mark.parametrize("name", ["bad name*", "a:b", "x?", "[ab]", "", "-a", "a" * 65])
async def test_a_name_a_key_pattern_would_misread_is_refused(name):
    with pytest.raises(ValueError, match="letters, digits"):
        await replay(Settings(pseudonym_key="k", redis_url="redis://127.0.0.1:1/0"), generation=name)


@pytest.mark.parametrize("name", ["replay-1796595324970", "rules.2027_v2", "a"])
def test_the_names_replay_gives_and_plain_ones_pass(name):
    assert GENERATION_NAME.fullmatch(name)
