"""The stored form of a subject's state (sinks/state_codec.py): compact round trips, the legacy JSON
form still reads, anything else is refused by name, and the shipped dictionary is the one recorded."""

from __future__ import annotations

import hashlib
import json
import random
import struct

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.train_state_dict import Fold, organisations, persons, sample_states, synthetic, train
from sinks import state_codec
from sinks.state_codec import (
    CURRENT,
    DICTIONARIES,
    HEADER,
    LARGE,
    StateFormatError,
    decode_state,
    encode_state,
    state_json,
)


@pytest.fixture(scope="module")
def states() -> list[dict]:
    """States built through the rules core, with another seed than the dictionary's: organisations
    with every kind of record, natural persons, linked legal representatives, big histories."""
    fold = Fold()
    rng = random.Random(7)
    organisations(fold, rng, 120, start=300_000)
    persons(fold, rng, 40)
    synthetic(fold, 7, 400)
    return [fold.states[s] for s in sorted(fold.states)]


def test_round_trip_of_states_built_by_the_rules_core(states):
    kinds = {s["id_kind"] for s in states}
    assert kinds == {"uscc", "resident_id"}, kinds  # organisations and natural persons
    assert any(r["kind"] == "linked" for s in states for r in s["records"].values())
    assert any(s.get("objections") for s in states) and any(s.get("repairs") for s in states)
    assert max(len(orjson.dumps(s)) for s in states) > 50_000  # big histories too
    for state in states:
        raw = encode_state(state)
        assert raw[:2] == HEADER
        assert decode_state(raw) == orjson.loads(orjson.dumps(state))  # what JSON storage gave back


def test_compact_is_much_smaller_than_json(states):
    text = sum(len(orjson.dumps(s)) for s in states)
    packed = sum(len(encode_state(s)) for s in states)
    assert packed < text / 5, (packed, text)


def test_chinese_text_and_unicode_survive():
    state = {"id": "91310110666007217T", "names": ["郑州市金水区恒达商贸有限公司", "𠮷野家（河南）餐饮"],
             "records": {"penalty|x|郑市监罚〔2024〕123号": {"facts": "当事人于2024年3月销售…", "fine": 5.0}},
             "emoji": "✓ \u2028 \x00", "n": [1, 2.5, None, True, -3]}
    raw = encode_state(state)
    assert "郑州".encode() not in raw  # compressed, not stored as text
    assert decode_state(raw) == state


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8")),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=8))
def test_round_trip_of_any_json_object(state):
    assert decode_state(encode_state(state)) == orjson.loads(orjson.dumps(state))
    assert decode_state(encode_state(state, "json")) == orjson.loads(orjson.dumps(state))


def test_a_large_state_is_compressed_fast_and_round_trips(states):
    big = max(states, key=lambda s: len(orjson.dumps(s)))
    state = dict(big, padding=[big["records"]] * (LARGE // len(orjson.dumps(big["records"])) + 1))
    text = orjson.dumps(state)
    assert len(text) > LARGE
    raw = encode_state(state)
    assert len(raw) < len(text) / 5
    assert decode_state(raw) == orjson.loads(text)


def test_the_legacy_json_form_is_read():
    state = {"id": "91310110666007217T", "names": ["某公司"], "records": {}}
    legacy = orjson.dumps(state)
    assert decode_state(legacy) == state
    assert state_json(legacy) is legacy  # not copied, not re-encoded
    assert decode_state(b'  \n{"id": "x"}') == {"id": "x"}
    assert encode_state(state, "json") == legacy  # what state_format = "json" writes


def test_state_json_gives_the_text_of_either_form():
    state = {"id": "410102198703154518", "names": ["张卫东"]}
    assert state_json(encode_state(state)) == orjson.dumps(state) == state_json(encode_state(state, "json"))


def other_dictionary(dict_id: int) -> zstandard.ZstdCompressionDict:
    samples = [orjson.dumps({"id": i, "names": [f"公司{i}"], "x": "ab" * (i % 40)}) for i in range(400)]
    return zstandard.ZstdCompressionDict(zstandard.train_dictionary(2048, samples, k=64, d=8, dict_id=dict_id).as_bytes())


@pytest.mark.parametrize("raw, says", [
    (b"", "empty"),
    (b"\xff", "format version none"),
    (b"\xff\x02" + b"\x28\xb5\x2f\xfd", "format version 2; this version of creditstream reads version 1"),
    (b"\xff\x01not a frame", "not a zstd frame"),
    (b"[1, 2]", "starts with byte 0x5b"),
    (b"\x28\xb5\x2f\xfd\x00", "starts with byte 0x28"),
])
def test_unknown_forms_are_refused_with_a_clear_error(raw, says):
    with pytest.raises(StateFormatError, match=says.replace("(", r"\(")):
        decode_state(raw)


def test_an_unknown_dictionary_is_named():
    frame = zstandard.ZstdCompressor(dict_data=other_dictionary(0x4353BEEF)).compress(b'{"id": "x"}')
    with pytest.raises(StateFormatError, match="dictionary id 0x4353beef, which this version of creditstream "
                                                "does not know"):
        decode_state(HEADER + frame)


def test_a_frame_without_dictionary_is_refused():
    frame = zstandard.ZstdCompressor().compress(b'{"id": "x"}')
    with pytest.raises(StateFormatError, match="dictionary id 0x0"):
        decode_state(HEADER + frame)


def test_corrupt_bytes_are_caught_by_the_checksum():
    raw = bytearray(encode_state({"id": "91310110666007217T", "names": ["某公司"] * 20}))
    raw[-6] ^= 0x40
    with pytest.raises(StateFormatError, match="corrupt"):
        decode_state(bytes(raw))


def test_an_older_dictionary_stays_readable(monkeypatch):
    """A state compressed with the current dictionary still reads once another one becomes current."""
    old = encode_state({"id": "91310110666007217T", "names": ["某公司"]})
    new_id = CURRENT + 1
    new = other_dictionary(new_id)
    monkeypatch.setitem(DICTIONARIES, new_id, state_codec.Dictionary(f"state-v{new_id & 0xFFFF}.zdict", "unused"))
    monkeypatch.setitem(state_codec._dicts, new_id, new)
    monkeypatch.setattr(state_codec, "CURRENT", new_id)
    monkeypatch.setattr(state_codec, "_compressors", {})
    monkeypatch.setattr(state_codec, "_decompressors", {})
    written = encode_state({"id": "x"})
    assert zstandard.get_frame_parameters(written[2:]).dict_id == new_id
    assert decode_state(written) == {"id": "x"}
    assert decode_state(old) == {"id": "91310110666007217T", "names": ["某公司"]}


def test_the_shipped_dictionaries_are_the_recorded_ones():
    assert CURRENT in DICTIONARIES
    for dict_id, entry in DICTIONARIES.items():
        data = (state_codec._DIR / entry.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256, entry.file
        magic, embedded = struct.unpack("<II", data[:8])  # a zstd dictionary's header: magic, id
        assert magic == 0xEC30A437 and embedded == dict_id, (entry.file, hex(embedded))
        assert 0x8000 <= dict_id < 2**31  # outside zstd's reserved id ranges


def test_a_changed_dictionary_file_is_refused(monkeypatch):
    monkeypatch.setitem(DICTIONARIES, CURRENT, DICTIONARIES[CURRENT]._replace(sha256="0" * 64))
    with pytest.raises(StateFormatError, match="not the one shipped"):
        state_codec.dictionary_bytes(CURRENT)


def test_training_is_deterministic():
    """The same sample states and parameters give the same dictionary (fixed seed, parameters, id,
    one thread), so ``python -m bench.train_state_dict --check`` can reproduce the shipped file."""
    small = dict(organisations_n=60, persons_n=20, synthetic_n=200)
    first, second = sample_states(11, **small), sample_states(11, **small)
    assert first == second
    assert train(first, 9) == train(second, 9)
    assert struct.unpack("<I", train(first, 9)[4:8])[0] == 0x43530009


def test_states_written_with_the_first_shipped_dictionary_stay_readable():
    """Version 1 (trained before the rules core's basis kept sorted date pairs) is no longer the
    current dictionary; what it compressed is read as before."""
    assert CURRENT != 0x43530001
    v1 = zstandard.ZstdCompressionDict(state_codec.dictionary_bytes(0x43530001),
                                       dict_type=zstandard.DICT_TYPE_FULLDICT)
    text = b'{"id":"91310110666007217T","names":["\xe6\x9f\x90\xe5\x85\xac\xe5\x8f\xb8"]}'
    frame = zstandard.ZstdCompressor(level=3, dict_data=v1, write_checksum=True, write_content_size=True,
                                     write_dict_id=True).compress(text)
    assert zstandard.get_frame_parameters(frame).dict_id == 0x43530001
    assert decode_state(HEADER + frame) == {"id": "91310110666007217T", "names": ["某公司"]}


def test_awaiting_feedback_is_read_without_parsing_a_state_that_has_none(states):
    """sinks/state_codec.py ``awaiting_feedback``: the same as a decode, in every form a state has:
    compact or JSON (also with spaces, as another writer may leave it), the key absent, empty, or
    named in a string or a nested object."""
    made = [dict(s) for s in states[:50]]
    made += [dict(states[0], awaiting_feedback={}), dict(states[1], awaiting_feedback={"c1": "2024-03-01"}),
             dict(states[2], names=['"awaiting_feedback":{}'], awaiting_feedback={"c2": "2024-03-04"}),
             dict(states[3], awaiting_feedback={}, extra={"awaiting_feedback": {"c3": "2024-03-05"}}),
             {k: v for k, v in states[4].items() if k != "awaiting_feedback"}]
    assert any(s.get("awaiting_feedback") for s in made) and any(not s.get("awaiting_feedback") for s in made)
    for state in made:
        want = state.get("awaiting_feedback") or {}
        for raw in (encode_state(state), encode_state(state, "json"),
                    json.dumps(state, default=str, ensure_ascii=False, indent=1).encode()):
            assert state_codec.awaiting_feedback(raw) == want
