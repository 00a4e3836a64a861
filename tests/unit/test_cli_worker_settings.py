"""``creditstream worker`` with a rules or calendar file that does not load: one line each, exit 2
(bad settings), before Faust starts. It logged two tracebacks and Faust's "We experienced a crash!",
exit 1. Nothing is reached: no broker or Redis is needed to refuse."""

from __future__ import annotations

import os
import subprocess
import sys


def run_worker(tmp_path, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CREDITSTREAM_")}
    full.update(CREDITSTREAM_RUN_DIR=str(tmp_path / "run"), CREDITSTREAM_PSEUDONYM_KEY="k", **env)
    return subprocess.run([sys.executable, "-m", "creditstream.cli", "worker"], env=full, capture_output=True,
                          text=True, timeout=120)


def test_a_rules_file_that_is_not_toml_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "rules.toml"
    bad.write_text("[nonsense\n", encoding="utf-8")
    done = run_worker(tmp_path, CREDITSTREAM_RULES_FILE=str(bad))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "crash" not in done.stderr, done.stderr[-2000:]
    assert f"creditstream: bad settings: rules_file: {bad}: not valid TOML" in done.stderr


def test_a_calendar_file_with_a_misspelt_table_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "calendar.toml"
    bad.write_text('[holiday]\n2030 = ["2030-01-01"]\n', encoding="utf-8")
    done = run_worker(tmp_path, CREDITSTREAM_CALENDAR_FILE=str(bad))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "unknown table(s) [holiday]" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
