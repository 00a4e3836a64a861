"""Long operations (replay, report, rederive, produce, dlq redrive) show their progress on stderr: a bar
on a terminal, and (seen: a replay run in a pipe said nothing until it ended) a plain line every few
seconds elsewhere."""

from __future__ import annotations

import io

import ops.replay as replay
from ops.replay import Progress


def test_outside_a_terminal_a_progress_line_comes_every_few_seconds(monkeypatch):
    err = io.StringIO()  # (not a terminal)
    monkeypatch.setattr("sys.stderr", err)
    clock = [100.0]
    monkeypatch.setattr(replay.time, "monotonic", lambda: clock[0])
    bar = Progress(1000, label="replay", unit="ev")
    bar.advance(100)
    assert err.getvalue() == ""  # not at once
    clock[0] += replay.PROGRESS_LINE_S
    bar.advance(150)
    clock[0] += 1
    bar.advance(10)  # not again within the interval
    bar.close()
    assert err.getvalue() == "replay: 250 of 1,000 ev (25%), 25 ev/s, ETA 30 s\n"


def test_progress_turned_off_says_nothing_and_a_terminal_gets_the_bar(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    clock = [0.0]
    monkeypatch.setattr(replay.time, "monotonic", lambda: clock[0])
    quiet = Progress(10, enabled=False)
    clock[0] += 60
    quiet.advance(5)
    assert err.getvalue() == ""
    bar = Progress(10, enabled=True)
    clock[0] += 1
    bar.advance(10)
    bar.close()
    assert err.getvalue().startswith("\rreplay [") and err.getvalue().endswith("\n")


def test_a_total_not_known_is_not_shown(monkeypatch):
    # seen: `produce -` (standard input) printed "produce: 800 of 1 ev (100%) ... ETA 0 s"
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    clock = [0.0]
    monkeypatch.setattr(replay.time, "monotonic", lambda: clock[0])
    bar = Progress(0, label="produce")
    clock[0] += replay.PROGRESS_LINE_S
    bar.advance(800)
    assert err.getvalue() == "produce: 800 ev, 80 ev/s\n"
