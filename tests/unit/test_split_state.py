"""A hot subject's state stored split (sinks/state_codec.py): a head and one part per record, only
the parts an input touched re-written. Two things must hold for every input the rules core takes:

* the record keys the core says an input touched (``Step.touched``) cover every part that changed,
  so writing only those keeps the stored state equal to the one in memory;
* head + parts read back (``join``) give the state itself, its basis (not stored) included.

Checked over the rules core's own states: organisations with every kind of input (penalties,
licences, actions, corrections, court listings and deletions, listing decisions, objections filed
and resolved, repairs, feedback, ticks, links to legal representatives), split from 2 records on,
and the benchmark's hot subject at the shipped threshold."""

from __future__ import annotations

import random

import orjson
import pytest

from bench.core import hot_subject
from bench.train_state_dict import Fold, organisations, persons
from domain.engine import step
from sinks import state_codec
from sinks.state_codec import StateFormatError, decode_state, encode_stored, is_split, join


class StoredFold(Fold):
    """The rules core over inputs, each new state stored as the subject agent stores it, and checked."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, tuple[bytes, dict[str, bytes], bool]] = {}
        self.steps = 0
        self.split_steps = 0
        self.touched_steps = 0

    def apply(self, event) -> None:
        queue = [event]
        while queue:
            ev = queue.pop(0)
            base = self.states.get(ev.subject)
            result = step(base, ev, self.rules, self.cal)
            if result.outcome in ("redelivered", "invalid"):
                continue
            self.states[ev.subject] = result.state
            self._store(ev.subject, base, result)
            queue += result.links

    def _store(self, sid: str, base: dict | None, result) -> None:
        head, parts, was_split = self.stored.get(sid, (b"", {}, False))
        new = result.state
        stored = encode_stored(new, base, base_split=was_split, changed=result.touched)
        if was_split and stored.split:
            diffed = encode_stored(new, base, base_split=True)  # every part that differs, found by comparing
            missed = set(diffed.parts) - set(stored.parts)
            assert not missed, f"{result.outcome}: parts changed but not named touched: {sorted(missed)}"
            assert set(diffed.removed) <= set(stored.removed)
            self.split_steps += 1
            self.touched_steps += result.touched is not None
        parts = dict(parts) if stored.split else {}
        for key in stored.removed:
            parts.pop(key, None)
        parts.update(stored.parts)
        self.stored[sid] = (stored.head, parts, stored.split)
        self.steps += 1
        if self.steps % 7 == 0:
            assert self.read(sid) == orjson.loads(orjson.dumps(new))

    def read(self, sid: str) -> dict:
        head, parts, _ = self.stored[sid]
        state = decode_state(head)
        return join(state, {k.encode(): v for k, v in parts.items()})[0] if is_split(state) else state


@pytest.fixture
def split_early(monkeypatch):
    monkeypatch.setattr(state_codec, "SPLIT_RECORDS", 2)


def test_touched_parts_cover_every_change_and_split_states_read_back(split_early):
    fold = StoredFold()
    rng = random.Random(11)
    organisations(fold, rng, 150, start=700_000)
    persons(fold, rng, 30)
    assert fold.split_steps > 500, fold.split_steps
    assert fold.touched_steps > fold.split_steps // 2  # most inputs name their records; the rest are diffed
    split = [s for s, (_, _, was) in fold.stored.items() if was]
    assert len(split) > 50
    assert any(fold.states[s].get("objections") for s in split) and any(fold.states[s].get("repairs") for s in split)
    for sid in fold.states:
        assert fold.read(sid) == orjson.loads(orjson.dumps(fold.states[sid])), sid


def test_every_head_is_told_from_a_whole_state_by_its_text_alone(split_early):
    """``may_be_split`` looks for the head's marker in the text's last bytes only (sinks/state_codec.py):
    every head the rules core's states give is found (with every section a state can have), and no
    state stored whole of the same subjects is taken for one (each would be decoded to tell)."""
    fold = StoredFold()
    organisations(fold, random.Random(13), 60, start=750_000)
    persons(fold, random.Random(14), 10)
    heads = [state_codec.state_json(head) for head, _, was in fold.stored.values() if was]
    whole = [state_codec.state_json(head) for head, _, was in fold.stored.values() if not was]
    assert len(heads) > 20 and len(whole) > 5
    assert max(len(orjson.loads(h)["split"]["has"]) for h in heads) >= 5  # records, facts, basis, publicity...
    for text in heads:
        assert state_codec.may_be_split(text)
        assert text.rfind(b'"split"') > len(text) - state_codec.HEAD_MARK_WITHIN // 2  # the marker comes last
    assert not any(state_codec.may_be_split(text) for text in whole)
    # a head shorter than the window, and a whole state naming the word elsewhere
    assert state_codec.may_be_split(orjson.dumps({"id": "x", "split": {"parts": 70, "has": ["records"]}}))
    assert not state_codec.may_be_split(orjson.dumps({"id": "x", "note": "split", "split": 1}))


def test_a_split_state_with_a_part_missing_is_refused(split_early):
    fold = StoredFold()
    organisations(fold, random.Random(3), 40, start=800_000)
    sid = next(s for s, (_, parts, was) in fold.stored.items() if was and len(parts) > 2)
    head, parts, _ = fold.stored[sid]
    parts.pop(sorted(parts)[0])
    with pytest.raises(StateFormatError, match="record parts"):
        fold.read(sid)


def test_small_states_are_stored_whole_as_before():
    fold = StoredFold()
    organisations(fold, random.Random(5), 30, start=900_000)
    for sid, (head, parts, was_split) in fold.stored.items():
        if len(fold.states[sid]["records"]) <= state_codec.SPLIT_RECORDS:
            assert not was_split and not parts
            assert decode_state(head) == orjson.loads(orjson.dumps(fold.states[sid]))


def test_the_hot_subject_writes_a_bounded_amount_per_input():
    out = hot_subject(1500, window=200)
    # past the threshold an input writes the head and the part of the record it touched, not the state
    assert out["hot_subject_written_bytes_last"] < 4096 < out["hot_subject_stored_kib"] * 1024


def test_a_split_state_is_counted_whole_in_the_state_cache_budget():
    """The state cache's budget counts a state's JSON size; a split state writes only a few parts,
    but is held whole in memory."""
    import datetime as dt

    from bench.core import SUBJECT, penalty
    from domain import events
    from domain.clock import due_ms

    fold = Fold()
    for i in range(300):
        fold.apply(events.of_record(SUBJECT, "uscc", f"creditstream.penalty/0/{i}",
                                    penalty(i, dt.date(2021, 1, 4) + dt.timedelta(days=i)), due_ms("2026-11-30")))
    big = fold.states[SUBJECT]
    whole = len(orjson.dumps(big))
    estimate = encode_stored(big, big, base_split=True, changed=[next(iter(big["records"]))]).json_bytes
    assert whole / 2 < estimate < whole * 2, (estimate, whole)


def test_a_split_state_reads_back_the_derivation_that_wrote_it(split_early):
    """Seen: a split state's basis is built again when read, and it took the reader's derivation
    (domain/facts.py BASIS_VERSION): a state an earlier derivation wrote looked current, so neither its
    next input nor ``creditstream rederive`` derived it again after an upgrade (domain/engine.py
    ``derived_otherwise``). A head written before the derivation was kept in it reads as unknown."""
    from domain.engine import derived_by, derived_otherwise
    from domain.facts import BASIS_VERSION

    fold = StoredFold()
    organisations(fold, random.Random(5), 40, start=820_000)
    sid = next(s for s, (_, parts, was) in fold.stored.items() if was and len(parts) > 2)
    state = fold.states[sid]
    assert derived_by(fold.read(sid)) == BASIS_VERSION
    earlier = dict(state, basis=dict(state["basis"], v=BASIS_VERSION - 1))
    stored = encode_stored(earlier)
    read = join(decode_state(stored.head), {k.encode(): v for k, v in stored.parts.items()})[0]
    assert derived_by(read) == BASIS_VERSION - 1 and derived_otherwise(read, fold.rules.version)
    head = decode_state(stored.head)
    head["split"].pop("derivation")  # a head written before
    read = join(head, {k.encode(): v for k, v in stored.parts.items()})[0]
    assert derived_by(read) is None and derived_otherwise(read, fold.rules.version)
