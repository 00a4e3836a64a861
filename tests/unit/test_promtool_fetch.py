"""ops/promtool.py: the promtool make test fetches for the alerting rules' tests (tests/unit/test_metrics.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ops import promtool
from ops.debian_files import Unavailable


def test_a_binary_that_is_not_promtool_is_not_taken(tmp_path):
    fake = tmp_path / "promtool"
    fake.write_text("#!/bin/sh\necho 'prometheus, version 2'\n")
    fake.chmod(0o755)
    assert not promtool.runs(fake)
    assert not promtool.runs(tmp_path / "missing")


def test_a_promtool_already_fetched_is_used_without_fetching_again(tmp_path, monkeypatch):
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not found:
        pytest.skip("no promtool here (make test fetches one: python -m ops.promtool)")
    shutil.copy(found, tmp_path / "promtool")

    def no_fetch(*_a, **_k):
        raise AssertionError("fetched again")

    monkeypatch.setattr(promtool, "unpack", no_fetch)
    assert promtool.fetch(tmp_path) == tmp_path / "promtool"
    assert promtool.runs(tmp_path / "promtool")


def test_without_it_main_says_why_and_exits_1(tmp_path, monkeypatch, capsys):
    def unavailable(*_a, **_k):
        raise Unavailable("apt-get download needs root and apt-get (prometheus)")

    monkeypatch.setattr(promtool, "unpack", unavailable)
    assert promtool.main([str(tmp_path / "dest")]) == 1
    assert "no promtool: apt-get download needs root" in capsys.readouterr().err
    assert not Path(tmp_path / "dest" / "promtool").exists()
