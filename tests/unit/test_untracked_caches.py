"""The worker's per-subject cache outside the rules core (sinks/keys.py ``storage_id``) holds only
atoms, so CPython's collector never walks it: a collector round (creditstream/heap.py) walks what is
young, and ``functools.lru_cache`` keyed it by new tuples, which made a cache of 65,536 entries young
again in every round (12-17 ms a round at 100,000 subjects)."""

from __future__ import annotations

import gc

from creditstream.heap import collect_and_freeze, thaw
from sinks import keys


def _young_dicts_larger_than(n: int) -> int:
    return sum(1 for o in gc.get_objects(generation=0) if type(o) is dict and len(o) > n)


def test_a_round_after_new_subjects_does_not_walk_the_cache():
    collect_and_freeze()
    gc.disable()
    try:
        for i in range(3000):
            keys.storage_id(f"9141{i:014d}", "a-pseudonym-key")
        collect_and_freeze()
        for i in range(3000, 6000):  # more subjects, after a round
            keys.storage_id(f"9141{i:014d}", "a-pseudonym-key")
        assert _young_dicts_larger_than(2000) == 0
        assert not gc.is_tracked(keys._STORAGE_IDS["a-pseudonym-key"])  # noqa: SLF001
    finally:
        thaw()


def test_the_cache_answers_as_the_function_and_stays_bounded(monkeypatch):
    monkeypatch.setattr(keys, "STORAGE_IDS_KEPT", 100)
    monkeypatch.setattr(keys, "_STORAGE_IDS", {})
    for i in range(1000):
        person = f"11010519491231{i % 1000:03d}X"
        assert keys.storage_id(person, "k") == keys._storage_id(person, "k")  # noqa: SLF001
        assert keys.storage_id(person, "k").startswith(keys.PSEUDONYM_PREFIX)
    assert len(keys._STORAGE_IDS["k"]) <= 100  # noqa: SLF001
    # one key's pseudonyms are not another's
    assert keys.storage_id("110105194912310021", "k") != keys.storage_id("110105194912310021", "other")
