"""The share of the machine this process may use: CPUs and memory, as its container allows.

``os.cpu_count()`` and ``/proc/meminfo`` describe the host. Inside a container (docker-compose.yml
limits a worker, and so ``docker compose run worker creditstream replay``, to 1 GiB), the process
may use less: its CPU affinity and the CPU quota and memory limit of its cgroup (v2:
``/sys/fs/cgroup/cpu.max``, ``memory.max``, ``memory.current``; v1: ``cpu/cpu.cfs_quota_us``,
``memory/memory.limit_in_bytes``, ``memory/memory.usage_in_bytes``). ``creditstream replay`` sizes
its default number of processes by both (ops/replay.py ``default_jobs``): a replay that starts one
process per host CPU in a 1 GiB container would be killed by the kernel (at ~250 MiB each).

``root`` is ``/`` but for the tests, which lay out cgroup files of their own.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_NO_LIMIT = 1 << 60  # cgroup v1 writes a number near 2**63 for "no limit"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def cpus(root: Path = Path("/")) -> int:
    """The CPUs this process may keep busy: its affinity, bounded by its cgroup's CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    cgroup = root / "sys" / "fs" / "cgroup"
    quota = period = None
    v2 = _read(cgroup / "cpu.max")
    if v2 is not None:
        q, _, p = v2.partition(" ")
        quota, period = _number(q), _number(p)
    else:
        q1 = _read(cgroup / "cpu" / "cpu.cfs_quota_us")  # -1: none
        quota, period = _number(q1), _number(_read(cgroup / "cpu" / "cpu.cfs_period_us"))
    if quota and period:
        n = min(n, max(1, math.ceil(quota / period)))
    return max(1, n)


def memory_available(root: Path = Path("/")) -> int | None:
    """Bytes this process may still take: its cgroup's limit less what the cgroup uses, or, without a
    limit, the host's ``MemAvailable``; None if neither can be read."""
    cgroup = root / "sys" / "fs" / "cgroup"
    limit = _number(_read(cgroup / "memory.max"))  # "max": none
    used = _number(_read(cgroup / "memory.current"))
    if limit is None:
        limit = _number(_read(cgroup / "memory" / "memory.limit_in_bytes"))
        used = _number(_read(cgroup / "memory" / "memory.usage_in_bytes"))
        if limit is not None and limit >= _NO_LIMIT:
            limit = None
    host = None
    for line in (_read(root / "proc" / "meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            host = _number(line.split()[1])
            host = host * 1024 if host is not None else None
    if limit is None:
        return host
    room = max(0, limit - (used or 0))
    return room if host is None else min(room, host)
