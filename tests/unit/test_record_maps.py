"""A large subject's per-record maps kept persistent (domain/record_maps.py): the rules core must
give the same states, list changes, links and touched records whichever form it is given, keep the
form, leave the state it was given unchanged, and share the entries an input did not change instead
of copying them (what keeps a hot subject's cost per input from growing with its history: issue 13).
The stored form must not depend on it either."""

from __future__ import annotations

import random

import orjson
from hypothesis import HealthCheck, given, settings
from immutables import Map

from bench.train_state_dict import Fold, organisations, persons
from domain.engine import step
from domain.record_maps import json_default, persistent, plain, sections
from sinks import state_codec
from sinks.state_codec import decode_state, encode_stored
from tests.builders import record, record_event
from tests.unit.test_history import CAL, RULES, subject_inputs


def frozen(state) -> bytes:
    return orjson.dumps(state, default=json_default, option=orjson.OPT_SORT_KEYS)


def both(state_plain, state_maps, event):
    """One input stepped in both forms; the results compared; the persistent form's result."""
    given_before = frozen(state_maps)
    a = step(state_plain, event, RULES, CAL)
    b = step(state_maps, event, RULES, CAL)
    assert frozen(state_maps) == given_before, "the state given was changed"
    assert (b.outcome, b.changes, b.links, b.timeliness, b.touched) == (a.outcome, a.changes, a.links, a.timeliness,
                                                                         a.touched)
    assert plain(b.state) == a.state
    if state_maps is not None and b.state is not state_maps:
        for before, after in zip(sections(state_maps), sections(b.state)):
            assert before is None or after is None or isinstance(before, Map) == isinstance(after, Map), \
                "the core changed the form of a per-record map"
    return a, b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject_inputs())
def test_the_core_gives_the_same_results_on_persistent_maps(inputs):
    plain_state = maps_state = None
    for event in inputs:
        a, b = both(plain_state, maps_state, event)
        plain_state, maps_state = a.state, persistent(b.state, above=0)


def stored(s: state_codec.Stored) -> tuple:
    """What a write stores, decoded (a persistent map's JSON has its keys in sorted order)."""
    return (decode_state(s.head), {k: decode_state(v) for k, v in s.parts.items()}, s.removed, s.split)


class TwoForms(Fold):
    """The rules core over the state trainer's organisations and persons (every kind of input,
    links followed), each subject stepped in both forms side by side and stored split from 2 records."""

    def __init__(self) -> None:
        super().__init__()
        self.maps: dict[str, dict] = {}
        self.stored_steps = 0

    def apply(self, event) -> None:
        queue = [event]
        while queue:
            ev = queue.pop(0)
            base, base_maps = self.states.get(ev.subject), self.maps.get(ev.subject)
            a, b = both(base, base_maps, ev)
            if a.outcome in ("redelivered", "invalid"):
                continue
            self.states[ev.subject] = a.state
            self.maps[ev.subject] = persistent(b.state, above=0)
            if base is not None:
                split = state_codec.split_due(base)
                assert stored(encode_stored(b.state, base_maps, base_split=split, changed=b.touched)) == \
                    stored(encode_stored(a.state, base, base_split=split, changed=a.touched))
                self.stored_steps += 1
            queue += a.links


def test_every_kind_of_input_gives_the_same_states_and_stored_form_on_persistent_maps(monkeypatch):
    monkeypatch.setattr(state_codec, "SPLIT_RECORDS", 2)
    fold = TwoForms()
    rng = random.Random(17)
    organisations(fold, rng, 60, start=600_000)
    persons(fold, rng, 20)
    assert fold.stored_steps > 300, fold.stored_steps
    assert any(s.get("objections") for s in fold.states.values()) and any(s.get("repairs") for s in fold.states.values())
    for sid, state in fold.states.items():
        assert plain(fold.maps[sid]) == state, sid


def test_an_input_to_a_large_subject_shares_the_entries_it_did_not_change(monkeypatch):
    import domain.history as history
    from domain import record_maps

    rebuilt = []  # maps made again whole from a dict: the copy persistent maps are there to avoid

    def like(form, mapping):
        if isinstance(form, Map) and not isinstance(mapping, Map):
            rebuilt.append(len(mapping))
        return record_maps.like(form, mapping)

    monkeypatch.setattr(history, "like", like)
    state = None
    for i in range(100):
        event = record_event(record("penalty", f"P{i}", f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"), "2026-11-30",
                             at=f"creditstream.penalty/0/{i}")
        state = persistent(step(state, event, RULES, CAL).state)
    assert all(isinstance(m, Map) for m in sections(state))
    result = step(state, record_event(record("penalty", "NEW", "2025-03-03"), "2026-11-30",
                                      at="creditstream.penalty/0/new"), RULES, CAL)
    assert result.outcome == "new" and result.touched is not None and len(result.touched) == 1
    assert rebuilt == [], f"maps of {rebuilt} entries made again whole"
    (key,) = result.touched
    for before, after in zip(sections(state), sections(result.state)):
        assert isinstance(after, Map), "a per-record map was copied into a dict"
        assert key not in before
        shared = [k for k in before if k in after and after[k] is before[k]]
        assert len(shared) == len(before), f"{len(before) - len(shared)} entries not shared"
