"""bench/sink.py: the subject agent's Redis sink measured alone, against a real redis-server."""

from __future__ import annotations

import orjson
import pytest

from bench.sink import PHASES, fresh_copies, measure, subject_states, without_decision_texts
from domain.record_maps import json_default
from sinks.keys import Keys
from sinks.redis_state import read_states

pytestmark = pytest.mark.integration


def as_json(state):
    return orjson.loads(orjson.dumps(state, default=json_default))


async def test_the_sink_bench_times_every_phase_and_writes_every_state(settings, redis):
    states = subject_states(400)
    assert len(states) > 100
    rounds = await measure(redis, states, rounds=2, batch=50, namespace=settings.namespace)
    assert len(rounds) == 2
    assert all(row[p] > 0 for row in rounds for p in PHASES), rounds
    stored = await read_states(redis, Keys(settings.namespace), list(states))
    assert [as_json(s) for s in stored] == [as_json(s) for s in states.values()]


def test_the_states_without_decision_texts_lose_those_texts_and_nothing_else():
    states = subject_states(400)
    cut = without_decision_texts(states)
    assert cut.keys() == states.keys()
    for sid, state in states.items():
        whole = as_json(state)
        for record in whole["records"].values():
            assert "content" in record  # the benchmark's records all have a decision text
            record.pop("content")
            record.pop("others", None)
        assert as_json(cut[sid]) == whole


def test_fresh_copies_are_the_same_states_made_again():
    states = subject_states(400)
    expected = {sid: as_json(state) for sid, state in states.items()}
    copies = fresh_copies(dict(states))
    assert copies == expected
    assert all(copies[sid] is not states[sid] for sid in states)
