"""The processes the embedded stack starts (Tansu, redis-server, Apache Kafka nodes): which of
them are still alive, still ours, paused; reaping them. Linux /proc based.

An *entry* is what the stack records of a process it started: ``{"pid", "starttime", "cmd",
"cmdline"}``. A PID alone is not enough (PIDs are reused): a process is ours only with the same
start time and command line."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Popen objects of processes started by this Python process: kept so they are reaped (no
zombies, no 'subprocess still running' warnings)."""


def proc_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [p.decode(errors="replace") for p in raw.split(b"\0")[:-1]] if raw else []


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 on), None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, None if there is none."""
    rest = _stat_fields(pid)
    return None if rest is None else (rest[0], int(rest[19]))


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, None if there is none."""
    rest = _stat_fields(pid)
    return None if rest is None else (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reap(pid: int) -> None:
    child = CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            CHILDREN.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(entry: dict[str, Any] | None) -> bool:
    """The recorded process is running (or stopped) with the recorded start time."""
    if not entry or not entry.get("pid"):
        return False
    pid = int(entry["pid"])
    reap(pid)
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return entry.get("starttime") is None or stat[1] == entry["starttime"]


def is_ours(entry: dict[str, Any] | None) -> bool:
    """The recorded process is alive and is the one we started (same command line; "cmdline" is
    what /proc showed right after the start, which differs from "cmd" for a script)."""
    if not is_alive(entry):
        return False
    cmdline = proc_cmdline(int(entry["pid"]))  # type: ignore[index]
    return bool(cmdline) and cmdline in (list(entry.get("cmd") or []), list(entry.get("cmdline") or []))  # type: ignore[union-attr]


def is_paused(entry: dict[str, Any] | None) -> bool:
    stat = proc_stat(int(entry["pid"])) if entry and entry.get("pid") else None
    return stat is not None and stat[0] == "T"


# --- ports, signals, logs ----------------------------------------------------------------

LISTEN_PORTS_FROM = 20000
"""The lowest port a server of the embedded stack listens on (see :func:`free_port_from`)."""


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of ports for the local end of outgoing connections (Linux's
    ``ip_local_port_range``; its default where that is not readable)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port_from(taken: set[int]) -> int:
    """A port nothing listens on, not in ``taken`` (added to it), for a server of the embedded stack.

    Chosen below the kernel's ephemeral range: a port from that range (what ``bind(port 0)`` gives)
    can be taken at any moment as the local end of some process's outgoing connection, so a server
    killed and started again on its recorded port found it in use now and then (seen with the test
    legs side by side), came back on another port and changed its URL. A port below the range is
    never given to an outgoing connection. Falls back to ``bind(port 0)`` if none is free there."""
    low = LISTEN_PORTS_FROM
    high = min(ephemeral_ports()[0], 65536) - 1
    rng = random.SystemRandom()
    for _ in range(200 if high > low else 0):
        port = rng.randint(low, high)
        if port not in taken and port_is_free(port):
            taken.add(port)
            return port
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port


def port_is_free(port: int) -> bool:
    """Nothing listens on the port. SO_REUSEADDR, as the JVM's server sockets have: connections
    of a node stopped a moment ago, left in TIME_WAIT, don't count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_frees(port: int, timeout: float) -> bool:
    """Whether ``port`` is free, or becomes free within ``timeout`` seconds (a server killed a
    moment ago may still hold it briefly)."""
    deadline = time.monotonic() + timeout
    while not port_is_free(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def signal_if_ours(entry: dict[str, Any] | None, sig: int) -> bool:
    if not is_ours(entry):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(entry["pid"]), sig)  # type: ignore[index]
    return True


def terminate_all(entries: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """SIGTERM every recorded process that is ours (all at once: a KRaft node shutting down alone
    waits for the others' quorum), SIGKILL what is left after ``timeout``. Returns the ones that
    were running."""
    running = [e for e in entries if is_ours(e)]
    for e in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(e["pid"]), signal.SIGTERM)
            os.kill(int(e["pid"]), signal.SIGCONT)  # a paused JVM only sees SIGTERM once continued
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_alive(e) for e in running):
        time.sleep(0.05)
    for e in running:
        if is_alive(e):
            signal_if_ours(e, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(is_alive(e) for e in running):
        time.sleep(0.02)
    return running


def file_tail(path: Path, lines: int = 40, marker: str | None = None) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    if marker and marker in text:
        text = text[text.rfind(marker):]
    return "\n".join(text.strip().splitlines()[-lines:]) if text.strip() else "(log is empty)"
