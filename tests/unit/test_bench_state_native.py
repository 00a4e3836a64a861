"""bench/state_roundtrip.py (``make bench-state``): a stored state read and written in Python and
natively, over the same states, doing the same work (every form writes back the bytes it read)."""

from __future__ import annotations

import shutil

import orjson
import pytest

from bench import state_roundtrip as rt
from sinks import state_codec


@pytest.fixture(scope="module")
def texts():
    got = rt.state_texts(600)
    assert len(got) > 200
    return got


def test_the_states_file_gives_back_every_text(tmp_path, texts):
    path = tmp_path / "states.bin"
    rt.write_states(texts, path)
    assert rt.read_states(path) == texts


def test_the_python_form_writes_back_what_it_read_and_compresses_as_the_sink_does(texts):
    row = rt.python_round(texts, batch=100)
    assert row["identical_share"] == 1.0
    assert all(row[f"{p}_us"] > 0 for p in rt.PHASES), row
    # the same zstd frames as the sink's own compact form (its header aside)
    stored = [len(state_codec.compact(t)) - len(state_codec.HEADER) for t in texts]
    assert row["compressed_mean_b"] == pytest.approx(sum(stored) / len(stored))


def test_a_state_cut_down_loses_its_decision_texts_and_nothing_else(texts):
    whole = orjson.loads(texts[0])
    cut = orjson.loads(rt.cut_down(texts[0], timeline_too=False))
    assert all("content" not in r and "others" not in r for r in cut["records"].values())
    for key, record in whole["records"].items():
        record.pop("content", None)
        record.pop("others", None)
        assert cut["records"][key] == record
    assert {k: v for k, v in cut.items() if k != "records"} == {k: v for k, v in whole.items() if k != "records"}
    assert "timeline" in whole and "timeline" not in orjson.loads(rt.cut_down(texts[0], timeline_too=True))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cargo") is None, reason="the native forms are built with Rust's cargo")
def test_the_native_forms_write_back_every_state_byte_for_byte(tmp_path, texts):
    program = rt.build_native()
    path = tmp_path / "states.bin"
    rt.write_states(texts, path)
    rows = rt.native_round(program, path, batch=100)
    assert [r["form"] for r in rows] == ["rust serde_json::Value", "rust typed structs"]
    for row in rows:
        assert row["states"] == len(texts)
        assert row["identical_share"] == 1.0, row
        assert all(row[f"{p}_us"] > 0 for p in rt.PHASES), row
