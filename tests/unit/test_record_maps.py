"""A large subject's per-record maps kept persistent (domain/record_maps.py): the rules core must
give the same states, list changes, links and touched records whichever form it is given, keep the
form, leave the state it was given unchanged, and share the entries an input did not change instead
of copying them (what keeps a hot subject's cost per input from growing with its history: issue 13).
The stored form must not depend on it either."""

from __future__ import annotations

import datetime as dt
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


def test_date_counts_count_as_the_plain_list_does_and_a_copy_leaves_its_original_as_it_was():
    """The basis's dated parts of a large state (``DatedPairs``) against the plain sorted list the
    rules core keeps for a small one (domain/facts.py ``_count``): the same pairs, first date and
    next date after every move, chunks split as they grow, and every copy taken on the way still
    holding what it held when it was taken, whatever was moved in the copies made from it."""
    from domain.facts import _count, first_date, next_date
    from domain.record_maps import CHUNK, DatedPairs

    rng = random.Random(3)
    days = [f"20{20 + d // 365:02d}-{1 + d // 31 % 12:02d}-{1 + d % 28:02d}" for d in range(0, 2600, 2)]
    model: list = []
    counts = DatedPairs()
    kept: list[tuple[DatedPairs, list]] = []
    for n in range(6000):
        d = rng.choice(days)
        present = any(p[0] == d for p in model)
        sign = -1 if present and rng.random() < 0.3 else 1
        if rng.random() < 0.05:  # a state and the next: the copy moves on, the original must not
            kept.append((counts, [list(p) for p in model]))
            counts = counts.copy()
        _count(model, d, sign)
        counts.count(d, sign)
        if n % 97 == 0:
            assert counts == model and len(counts) == len(model)
            assert counts.first() == first_date(model)
            for probe in rng.sample(days, 20) + ["1999-01-01", "2099-12-31"]:
                assert counts.next_after(probe) == next_date(model, probe), probe
    assert counts == model and counts.pairs() == model
    assert len(counts.dates) > 5 and max(len(c) for c in counts.dates) <= 2 * CHUNK
    assert all(c[0] == f for c, f in zip(counts.dates, counts.firsts))
    assert [len(c) for c in counts.dates] == [len(c) for c in counts.values]
    assert len(kept) > 100
    for snapshot, pairs in kept:
        assert snapshot == pairs
    for _ in range(len(model)):  # counted down to nothing
        d, c = model[0]
        for _ in range(c):
            counts.count(d, -1)
            _count(model, d, -1)
    assert counts == model == [] and counts.first() is None and counts.next_after("2000-01-01") is None
    assert orjson.dumps(DatedPairs([["2024-01-02", 2]]), default=json_default) == b'[["2024-01-02",2]]'


def test_dated_pairs_of_record_keys_put_and_found_as_in_the_plain_list():
    """``basis["adverse"]`` (the record keys of each date) in both forms: the same pairs and values,
    the last date on or before a day and the next after it, after every put; earlier copies kept."""
    from domain.facts import _put, first_date, last_date_upto, next_date, value_on
    from domain.record_maps import DatedPairs

    rng = random.Random(11)
    days = [(dt.date(2019, 1, 1) + dt.timedelta(days=3 * d)).isoformat() for d in range(900)]
    model: list = []
    pairs = DatedPairs()
    kept: list[tuple[DatedPairs, list]] = []
    for n in range(4000):
        d = rng.choice(days)
        keys = value_on(model, d)
        if keys and rng.random() < 0.35:
            value = [k for k in keys if k != rng.choice(keys)] or None
        else:
            value = sorted({*(keys or []), f"penalty|{n}"})
        if rng.random() < 0.03:
            kept.append((pairs, list(model)))
            pairs = pairs.copy()
        _put(model, d, value)
        pairs.put(d, value)
        if n % 89 == 0:
            assert pairs == model and len(pairs) == len(model) and pairs.first() == first_date(model)
            for probe in rng.sample(days, 25) + ["2000-01-01", "2099-01-01"]:
                assert pairs.get(probe) == value_on(model, probe)
                assert pairs.last_upto(probe) == last_date_upto(model, probe), probe
                assert pairs.next_after(probe) == next_date(model, probe), probe
    assert pairs == model and len(pairs.dates) > 3 and len(kept) > 50
    for snapshot, expected in kept:
        assert snapshot == expected


def test_a_large_state_holds_its_basis_dates_in_shared_chunks_and_gives_the_same_results():
    """Past PERSISTENT_FROM records the worker's form of a state (``persistent``) holds the basis's
    dated parts as DatedPairs: the core keeps that form, gives what it gives on plain lists, leaves
    the state it was given as it was, and shares the chunks an input did not change."""
    from domain.record_maps import DatedPairs

    plain_state = maps_state = None
    for i in range(400):
        decided = (dt.date(2021, 1, 4) + dt.timedelta(days=3 * i)).isoformat()
        event = record_event(record("penalty", f"P{i}", decided, severity="severe" if i % 40 == 0 else "general",
                                    domain="environment"), "2026-11-30", at=f"creditstream.penalty/0/{i}")
        a, b = both(plain_state, maps_state, event)
        plain_state, maps_state = a.state, persistent(b.state)
    basis = maps_state["basis"]
    for part in ("dates", "pub_dates", "adverse"):
        assert isinstance(basis[part], DatedPairs) and len(basis[part].dates) > 2, part
    result = step(maps_state, record_event(record("penalty", "NEW", "2025-03-03"), "2026-11-30",
                                           at="creditstream.penalty/0/new"), RULES, CAL)
    after = result.state["basis"]
    for part in ("dates", "pub_dates", "adverse"):
        assert isinstance(after[part], DatedPairs), "the core changed the form of the basis"
        shared = [c for c in after[part].values if any(c is o for o in basis[part].values)]
        assert len(shared) >= len(basis[part].values) - 2, f"{part}: chunks copied, not shared"
