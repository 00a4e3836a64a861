"""creditstream/host.py: the CPUs and memory a process may use, by its cgroup; and the number of
processes a replay starts by default (ops/replay.py ``default_jobs``), which must fit in them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from creditstream import host
from ops.replay import JOB_BASE_BYTES, default_jobs, job_memory, job_partitions

MIB = 1 << 20
GIB = 1 << 30


def lay_out(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def meminfo(available_kib: int) -> str:
    return f"MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:   {available_kib} kB\n"


@pytest.fixture
def affinity(monkeypatch):
    """This process's CPU affinity, as the test sets it."""
    def set_to(n: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(n)))
    return set_to


def test_cpus_follow_the_affinity_without_a_quota(tmp_path, affinity):
    affinity(16)
    assert host.cpus(tmp_path) == 16
    assert host.cpus(lay_out(tmp_path, {"sys/fs/cgroup/cpu.max": "max 100000\n"})) == 16


def test_cpus_are_bounded_by_the_cgroup_quota(tmp_path, affinity):
    affinity(16)
    assert host.cpus(lay_out(tmp_path / "v2", {"sys/fs/cgroup/cpu.max": "250000 100000\n"})) == 3
    assert host.cpus(lay_out(tmp_path / "half", {"sys/fs/cgroup/cpu.max": "50000 100000\n"})) == 1
    v1 = lay_out(tmp_path / "v1", {"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "400000\n",
                                   "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"})
    assert host.cpus(v1) == 4
    none = lay_out(tmp_path / "v1none", {"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
                                         "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"})
    assert host.cpus(none) == 16
    affinity(2)  # the affinity bounds a larger quota
    assert host.cpus(lay_out(tmp_path / "big", {"sys/fs/cgroup/cpu.max": "800000 100000\n"})) == 2


def test_memory_is_the_cgroup_room_or_the_hosts(tmp_path):
    assert host.memory_available(tmp_path) is None
    plain = lay_out(tmp_path / "host", {"proc/meminfo": meminfo(8 * 1024 * 1024)})
    assert host.memory_available(plain) == 8 * GIB
    unlimited = lay_out(tmp_path / "max", {"proc/meminfo": meminfo(8 * 1024 * 1024),
                                           "sys/fs/cgroup/memory.max": "max\n",
                                           "sys/fs/cgroup/memory.current": str(100 * MIB)})
    assert host.memory_available(unlimited) == 8 * GIB
    limited = lay_out(tmp_path / "v2", {"proc/meminfo": meminfo(8 * 1024 * 1024),
                                        "sys/fs/cgroup/memory.max": str(GIB),
                                        "sys/fs/cgroup/memory.current": str(150 * MIB)})
    assert host.memory_available(limited) == GIB - 150 * MIB
    v1 = lay_out(tmp_path / "v1", {"proc/meminfo": meminfo(8 * 1024 * 1024),
                                   "sys/fs/cgroup/memory/memory.limit_in_bytes": str(2 * GIB),
                                   "sys/fs/cgroup/memory/memory.usage_in_bytes": str(GIB)})
    assert host.memory_available(v1) == GIB
    v1_none = lay_out(tmp_path / "v1none", {"proc/meminfo": meminfo(4 * 1024 * 1024),
                                            "sys/fs/cgroup/memory/memory.limit_in_bytes": str(2**63 - 4096)})
    assert host.memory_available(v1_none) == 4 * GIB
    tight_host = lay_out(tmp_path / "tight", {"proc/meminfo": meminfo(512 * 1024),
                                              "sys/fs/cgroup/memory.max": str(GIB)})
    assert host.memory_available(tight_host) == 512 * MIB


def test_this_machine_is_read():
    assert host.cpus() >= 1
    room = host.memory_available()
    assert room is None or room > 0


def test_a_replay_in_a_1_gib_container_on_a_16_cpu_host_starts_what_fits(tmp_path, affinity):
    """docker compose run worker creditstream replay: the worker service's 1 GiB limit, on a host of
    16 CPUs and 12 partitions. One process per CPU (12) would take ~3.6 GB: killed by the kernel."""
    affinity(16)
    root = lay_out(tmp_path, {"proc/meminfo": meminfo(60 * 1024 * 1024),
                              "sys/fs/cgroup/memory.max": str(GIB),
                              "sys/fs/cgroup/memory.current": str(120 * MIB)})
    chosen = default_jobs(12, 10_000, root)
    assert chosen.bound == "memory"
    assert chosen.count == (GIB - 120 * MIB) // job_memory(10_000) == 3
    assert chosen.count * chosen.job_memory <= chosen.memory_available
    # a smaller batch takes less: one more process fits
    assert default_jobs(12, 1, root).count == (GIB - 120 * MIB) // JOB_BASE_BYTES == 4


def test_without_a_memory_bound_the_cpus_or_the_partitions_decide(tmp_path, affinity):
    affinity(16)
    roomy = lay_out(tmp_path, {"proc/meminfo": meminfo(60 * 1024 * 1024)})
    assert (default_jobs(12, 10_000, roomy).count, default_jobs(12, 10_000, roomy).bound) == (12, "partitions")
    affinity(2)
    assert (default_jobs(12, 10_000, roomy).count, default_jobs(12, 10_000, roomy).bound) == (2, "cpus")
    assert default_jobs(12, 10_000, tmp_path / "nothing-readable").bound == "cpus"


def test_too_little_memory_for_two_replays_in_the_command_itself(tmp_path, affinity):
    affinity(8)
    root = lay_out(tmp_path, {"proc/meminfo": meminfo(200 * 1024)})
    assert (default_jobs(12, 10_000, root).count, default_jobs(12, 10_000, root).bound) == (1, "memory")


def test_job_partitions_share_round_robin():
    assert job_partitions([0, 1, 2, 3, 4], 2) == [[0, 2, 4], [1, 3]]
    assert job_partitions([0, 1], 8) == [[0], [1]]
    assert job_partitions([0, 1, 2], 1) == [[0, 1, 2]]


def test_a_service_in_a_nested_cgroup_is_bounded_by_its_own(tmp_path, affinity):
    """A systemd service (MemoryMax=, CPUQuota=) on a cgroup v2 host: /proc/self/cgroup names its
    directory; the root's files are the host's."""
    affinity(8)
    root = lay_out(tmp_path, {"proc/meminfo": meminfo(16 * 1024 * 1024),
                              "proc/self/cgroup": "0::/system.slice/creditstream-replay.service\n",
                              "sys/fs/cgroup/cpu.max": "max 100000\n",
                              "sys/fs/cgroup/system.slice/creditstream-replay.service/cpu.max": "200000 100000\n",
                              "sys/fs/cgroup/system.slice/creditstream-replay.service/memory.max": str(2 * GIB),
                              "sys/fs/cgroup/system.slice/creditstream-replay.service/memory.current": str(GIB)})
    assert host.cpus(root) == 2
    assert host.memory_available(root) == GIB
    v1 = lay_out(tmp_path / "v1", {"proc/self/cgroup": "5:cpu,cpuacct:/svc\n4:memory:/svc\n",
                                   "sys/fs/cgroup/cpu/svc/cpu.cfs_quota_us": "300000\n",
                                   "sys/fs/cgroup/cpu/svc/cpu.cfs_period_us": "100000\n",
                                   "sys/fs/cgroup/memory/svc/memory.limit_in_bytes": str(GIB),
                                   "sys/fs/cgroup/memory/svc/memory.usage_in_bytes": str(GIB // 2)})
    assert host.cpus(v1) == 3
    assert host.memory_available(v1) == GIB // 2
    # a container's /proc/self/cgroup may name a path its mount does not have: the mount's root counts
    docker_v1 = lay_out(tmp_path / "docker", {"proc/self/cgroup": "4:memory:/docker/0123abcd\n",
                                              "sys/fs/cgroup/memory/memory.limit_in_bytes": str(GIB),
                                              "sys/fs/cgroup/memory/memory.usage_in_bytes": "0\n"})
    assert host.memory_available(docker_v1) == GIB


def test_the_oom_killers_count_is_read_from_the_own_cgroup(tmp_path):
    """What tells a replay process killed for memory from one killed by someone (both SIGKILL)."""
    assert host.oom_kills(tmp_path) is None
    v2 = lay_out(tmp_path / "v2", {"sys/fs/cgroup/memory.events": "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\n"})
    assert host.oom_kills(v2) == 2
    v1 = lay_out(tmp_path / "v1", {"sys/fs/cgroup/memory/memory.oom_control":
                                   "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n"})
    assert host.oom_kills(v1) == 5
    nested = lay_out(tmp_path / "nested", {"proc/self/cgroup": "0::/system.slice/replay.service\n",
                                           "sys/fs/cgroup/memory.events": "oom_kill 40\n",
                                           "sys/fs/cgroup/system.slice/replay.service/memory.events":
                                           "oom 1\noom_kill 1\n"})
    assert host.oom_kills(nested) == 1  # the service's own, not the host's
    old_kernel = lay_out(tmp_path / "old", {"sys/fs/cgroup/memory/memory.oom_control":
                                            "oom_kill_disable 0\nunder_oom 0\n"})
    assert host.oom_kills(old_kernel) is None
