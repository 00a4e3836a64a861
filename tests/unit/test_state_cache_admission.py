"""sinks/redis_state.py StateCache: once full, a state comes in only for a subject touched again
while it is remembered as recently declined (a busy subject), not for every subject touched once."""

from __future__ import annotations

from sinks.redis_state import StateCache, memory_of

STATE_BYTES = 1000


def cache_of(states: int) -> StateCache:
    """Room for ``states`` states held as objects (about 4 bytes of memory per JSON byte)."""
    return StateCache(states * memory_of(STATE_BYTES))


def write(cache: StateCache, position: int, *sids: str) -> None:
    cache.written({0: position}, {sid: (0, {"id": sid}, STATE_BYTES) for sid in sids})


def test_everything_comes_in_while_there_is_room():
    cache = cache_of(10)
    write(cache, 1, *(f"s{i}" for i in range(10)))
    assert len(cache) == 10 and cache.declined == 0
    assert cache.held("s3", 0) == {"id": "s3"}


def test_once_full_a_subject_comes_in_on_its_second_touch():
    cache = cache_of(10)
    write(cache, 1, *(f"s{i}" for i in range(10)))
    write(cache, 2, "busy")  # full: declined, remembered
    assert cache.held("busy", 0) is None and cache.declined == 1
    write(cache, 3, "busy")  # touched again: in, the least recently used out
    assert cache.held("busy", 0) == {"id": "busy"}
    assert len(cache) == 10 and cache.held("s0", 0) is None
    write(cache, 4, "busy")  # held: replaced in place, nothing declined
    assert cache.declined == 1


def test_subjects_touched_once_do_not_churn_a_full_cache():
    cache = cache_of(10)
    write(cache, 1, *(f"s{i}" for i in range(10)))
    for n in range(5000):
        write(cache, 2 + n, f"once{n}")
    assert cache.declined == 5000
    assert all(cache.held(f"s{i}", 0) is not None for i in range(10))  # what it held stays


def test_the_memory_of_declined_subjects_is_bounded():
    cache = cache_of(10)
    write(cache, 1, *(f"s{i}" for i in range(10)))
    for n in range(20_000):
        write(cache, 2 + n, f"once{n}")
    recent = cache._recent  # noqa: SLF001
    assert len(recent._new) + len(recent._old) <= 2 * recent.size  # noqa: SLF001
    write(cache, 30_000, "once0")  # declined long ago: forgotten, declined again
    assert cache.held("once0", 0) is None


def test_a_state_written_whole_is_not_held_and_drops_the_older_state_held():
    # a state stored whole is not held (sinks/redis_state.py, module doc: it saved only its share of
    # the batch's one read); the state held for its subject while it was stored split is older than
    # the one just written, and must not be served to the next batch
    cache = cache_of(10)
    cache.written({0: 1}, {"hot": (0, {"id": "hot", "n": 1}, STATE_BYTES)})
    assert cache.held("hot", 0) == {"id": "hot", "n": 1}
    assert cache.written({0: 2}, {"hot": (0, None, STATE_BYTES)}) == []
    assert cache.held("hot", 0) is None and len(cache) == 0 and cache._bytes == 0  # noqa: SLF001
    cache.written({0: 3}, {"s1": (0, None, STATE_BYTES)})
    assert len(cache) == 0 and cache.declined == 0


def test_a_state_grown_past_the_budget_leaves_the_cache_with_its_older_state():
    # a state larger than the whole budget is not held (read from Redis when needed); the older
    # state held for the subject must go with it: served to the next batch, that batch applied its
    # inputs to it and wrote the result over every record since (found with a hot subject)
    cache = cache_of(10)
    cache.written({0: 1}, {"hot": (0, {"id": "hot", "n": 1}, STATE_BYTES)})
    assert cache.held("hot", 0) == {"id": "hot", "n": 1}
    too_large = cache.max_bytes // 4 + 1  # JSON bytes whose objects take more than the budget
    reported = cache.written({0: 2}, {"hot": (0, {"id": "hot", "n": 2}, too_large)})
    assert cache.held("hot", 0) is None and len(cache) == 0
    assert reported == [("hot", memory_of(too_large))]
    reported = cache.written({0: 3}, {"hot": (0, {"id": "hot", "n": 3}, STATE_BYTES)})  # small again: held again
    assert cache.held("hot", 0) == {"id": "hot", "n": 3} and reported == []


def test_a_large_state_comes_in_when_its_subject_is_touched_again_and_the_others_make_room():
    cache = cache_of(10)
    write(cache, 1, *(f"s{i}" for i in range(10)))
    large = STATE_BYTES * 4  # its objects: about 4 of the 10 states' room, over a quarter of the budget
    cache.written({0: 2}, {"hot": (0, {"id": "hot", "n": 1}, large)})
    assert cache.held("hot", 0) is None and cache.declined == 1  # touched once: not taken in
    cache.written({0: 3}, {"hot": (0, {"id": "hot", "n": 2}, large)})  # its next batch: a hot subject
    assert cache.held("hot", 0) == {"id": "hot", "n": 2}
    assert cache.held("s0", 0) is None and cache.held("s9", 0) == {"id": "s9"}  # the oldest went first
    assert cache._bytes <= cache.max_bytes  # noqa: SLF001
    cache.written({0: 4}, {"hot": (0, {"id": "hot", "n": 3}, large)})  # held: replaced at once
    assert cache.held("hot", 0) == {"id": "hot", "n": 3}
