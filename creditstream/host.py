"""The share of the machine this process may use: CPUs and memory, as its container allows.

``os.cpu_count()`` and ``/proc/meminfo`` describe the host. Inside a container (docker-compose.yml
limits a worker, and so ``docker compose run worker creditstream replay``, to 1 GiB), the process
may use less: its CPU affinity and the CPU quota and memory limit of its cgroup (v2: ``cpu.max``,
``memory.max``, ``memory.current``; v1: ``cpu/cpu.cfs_quota_us``, ``memory/memory.limit_in_bytes``,
``memory/memory.usage_in_bytes``; under ``/sys/fs/cgroup``, in the directory ``/proc/self/cgroup``
names where there is one, as for a systemd service with ``MemoryMax=``). ``creditstream replay`` sizes
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


def _cgroup(root: Path, controller: str | None = None) -> Path:
    """This process's cgroup directory (v2; or v1's ``controller`` hierarchy): the path
    ``/proc/self/cgroup`` names, where it exists under ``/sys/fs/cgroup`` (a systemd service's
    ``MemoryMax=``), else the mount's root (a container sees its own cgroup there)."""
    base = root / "sys" / "fs" / "cgroup"
    if controller is not None:
        base = base / controller
    for line in (_read(root / "proc" / "self" / "cgroup") or "").splitlines():
        _, names, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        if (controller is None and names == "") or (controller is not None and controller in names.split(",")):
            here = base / path.lstrip("/")
            if path.strip("/") and here.is_dir():
                return here
    return base


def cpus(root: Path = Path("/")) -> int:
    """The CPUs this process may keep busy: its affinity, bounded by its cgroup's CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = period = None
    v2 = _read(_cgroup(root) / "cpu.max")
    if v2 is not None:
        q, _, p = v2.partition(" ")
        quota, period = _number(q), _number(p)
    else:
        v1 = _cgroup(root, "cpu")
        quota, period = _number(_read(v1 / "cpu.cfs_quota_us")), _number(_read(v1 / "cpu.cfs_period_us"))  # -1: none
    if quota and period:
        n = min(n, max(1, math.ceil(quota / period)))
    return max(1, n)


def memory_available(root: Path = Path("/")) -> int | None:
    """Bytes this process may still take: its cgroup's limit less what the cgroup uses, or, without a
    limit, the host's ``MemAvailable``; None if neither can be read."""
    v2 = _cgroup(root)
    limit = _number(_read(v2 / "memory.max"))  # "max": none
    used = _number(_read(v2 / "memory.current"))
    if limit is None:
        v1 = _cgroup(root, "memory")
        limit = _number(_read(v1 / "memory.limit_in_bytes"))
        used = _number(_read(v1 / "memory.usage_in_bytes"))
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


def oom_kills(root: Path = Path("/")) -> int | None:
    """How many processes the kernel's out-of-memory killer has killed in this process's cgroup
    (v2: ``oom_kill`` in ``memory.events``; v1: in ``memory/memory.oom_control``, kernels 4.13+);
    None if neither can be read. Read before and after a process died, it tells whether the kernel
    killed it for memory, which its exit status (SIGKILL) alone does not."""
    for path in (_cgroup(root) / "memory.events", _cgroup(root, "memory") / "memory.oom_control"):
        for line in (_read(path) or "").splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return _number(value.strip())
    return None
