"""The processes' event loop (creditstream/eventloop.py): uvloop by default, asyncio's on request or
where uvloop is missing."""

from __future__ import annotations

import asyncio
import builtins
import subprocess
import sys

import pytest

from creditstream import eventloop


@pytest.fixture
def default_policy_after():
    yield
    asyncio.set_event_loop_policy(None)


async def _kind() -> str:
    return eventloop.running()


def test_uvloop_is_the_loop_asyncio_run_creates(default_policy_after):
    assert eventloop.install("uvloop") == "uvloop"
    assert asyncio.run(_kind()) == "uvloop"


def test_asyncio_gives_asyncios_own_loop_again(default_policy_after):
    eventloop.install("uvloop")
    assert eventloop.install("asyncio") == "asyncio"
    assert asyncio.run(_kind()) == "asyncio"


def test_without_uvloop_asyncios_loop_runs_with_a_warning(default_policy_after, monkeypatch):
    real_import = builtins.__import__

    def no_uvloop(name, *args, **kwargs):
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    with pytest.warns(RuntimeWarning, match="uvloop cannot be imported"):
        assert eventloop.install("uvloop") == "asyncio"
    assert asyncio.run(_kind()) == "asyncio"


def test_an_unknown_loop_is_refused():
    with pytest.raises(ValueError, match="event_loop: 'tokio'"):
        eventloop.install("tokio")


@pytest.mark.parametrize("setting, expected", [(None, "uvloop"), ("asyncio", "asyncio")])
def test_the_command_line_installs_the_loop_its_settings_name(tmp_path, setting, expected):
    """Every command reads its settings through the CLI's one settings step, which installs the loop
    before the command creates one (`creditstream config` needs no service)."""
    env = {"CREDITSTREAM_RUN_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    if setting:
        env["CREDITSTREAM_EVENT_LOOP"] = setting
    code = ("import argparse, asyncio; from creditstream import cli; "
            "cli._settings(argparse.Namespace(func=cli.cmd_config)); "
            "print(type(asyncio.new_event_loop()).__module__)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split(".")[0] == expected, out.stdout


def test_a_bad_event_loop_setting_stops_a_command_in_one_line(tmp_path):
    env = {"CREDITSTREAM_RUN_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "CREDITSTREAM_EVENT_LOOP": "tokio"}
    out = subprocess.run([sys.executable, "-m", "creditstream.cli", "subject", "91350211MA0000000X"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out
    assert out.stderr.strip() == "creditstream: bad settings: event_loop: 'tokio' is not uvloop or asyncio"
