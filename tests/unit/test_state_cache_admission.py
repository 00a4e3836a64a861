"""sinks/redis_state.py StateCache: once full, a state comes in only for a subject touched again
while it is remembered as recently declined (a busy subject), not for every subject touched once."""

from __future__ import annotations

from sinks.redis_state import StateCache

STATE_BYTES = 1000


def cache_of(states: int) -> StateCache:
    cache = StateCache(states * STATE_BYTES * 4)  # the cache counts 4 bytes of memory per JSON byte
    assert cache.max_json_bytes == states * STATE_BYTES
    return cache


def write(cache: StateCache, position: int, *sids: str) -> None:
    cache.written({0: position}, {sid: (0, {"id": sid}, STATE_BYTES) for sid in sids})


def test_everything_comes_in_while_there_is_room():
    cache = cache_of(10)
    write(cache, 1, *(f"s{i}" for i in range(10)))
    assert len(cache) == 10 and cache.declined == 0
    assert cache.get("s3", 0) == {"id": "s3"}


def test_once_full_a_subject_comes_in_on_its_second_touch():
    cache = cache_of(10)
    write(cache, 1, *(f"s{i}" for i in range(10)))
    write(cache, 2, "busy")  # full: declined, remembered
    assert cache.get("busy", 0) is None and cache.declined == 1
    write(cache, 3, "busy")  # touched again: in, the least recently used out
    assert cache.get("busy", 0) == {"id": "busy"}
    assert len(cache) == 10 and cache.get("s0", 0) is None
    write(cache, 4, "busy")  # held: replaced in place, nothing declined
    assert cache.declined == 1


def test_subjects_touched_once_do_not_churn_a_full_cache():
    cache = cache_of(10)
    write(cache, 1, *(f"s{i}" for i in range(10)))
    for n in range(5000):
        write(cache, 2 + n, f"once{n}")
    assert cache.declined == 5000
    assert all(cache.get(f"s{i}", 0) is not None for i in range(10))  # what it held stays


def test_the_memory_of_declined_subjects_is_bounded():
    cache = cache_of(10)
    write(cache, 1, *(f"s{i}" for i in range(10)))
    for n in range(20_000):
        write(cache, 2 + n, f"once{n}")
    recent = cache._recent  # noqa: SLF001
    assert len(recent._new) + len(recent._old) <= 2 * recent.size  # noqa: SLF001
    write(cache, 30_000, "once0")  # declined long ago: forgotten, declined again
    assert cache.get("once0", 0) is None
