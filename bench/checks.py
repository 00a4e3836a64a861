"""The check API under load (part of ``make bench``; alone: ``make bench-checks``): ``GET /check``
latency at a fixed offered rate.

A ``creditstream api`` process is started against a pipeline run's state (its Redis namespace,
built by the real worker), then driven open-loop: request ``i`` is scheduled at ``t0 + i / rate``
whatever the answers before it did, and its latency is measured from that scheduled instant to the
end of its answer (so a stall delays every request scheduled during it, as real callers would see;
no coordinated omission). The subjects asked about are a random sample of the stored organisations
and 10% codes no subject has (``no_record``), over four matters, at the default instant (now).
Every check is also recorded on the check-audit topic by the API, as in production.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import orjson

from creditstream.settings import Settings
from ops.processes import cpu_seconds, free_port_from

MATTERS = ("government_procurement", "bidding", "administrative_licensing", "fiscal_subsidies")
UNKNOWN = ("91310115591693856A", "91350100M000100Y43", "91350211MA0000000X")


async def _subjects(s: Settings, sample: int, seed: int) -> list[str]:
    from creditstream.connections import redis_client
    from sinks.keys import is_pseudonym, resolve_keys

    redis = redis_client(s)
    try:
        keys = await resolve_keys(redis, s.namespace)
        members = [m.decode() for m in await redis.srandmember(keys.subjects, sample)]
    finally:
        await redis.aclose()
    known = [m for m in members if not is_pseudonym(m)]  # organisations: asked by their USCC
    if not known:
        raise RuntimeError(f"no stored organisations under namespace {s.namespace}: seed the state first")
    rng = random.Random(seed)
    return [rng.choice(UNKNOWN) if rng.random() < 0.1 else rng.choice(known) for _ in range(sample)]


async def _wait_up(base: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"creditstream api exited with {proc.returncode}")
            try:
                async with session.get(base + "/health") as resp:
                    await resp.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
    raise TimeoutError("creditstream api did not answer within 60 s")


async def _drive(session: aiohttp.ClientSession, base: str, codes: list[str], rate: int, seconds: float,
                 latencies: list[float] | None) -> tuple[Counter[str], float]:
    """Offer ``rate`` checks/s for ``seconds``, open loop; (errors by status or exception, seconds taken)."""
    n = int(rate * seconds)
    errors: Counter[str] = Counter()
    pending: set[asyncio.Task] = set()

    async def one(i: int, scheduled: float) -> None:
        params = {"subject": codes[i % len(codes)], "matter": MATTERS[i % len(MATTERS)]}
        try:
            async with session.get(base + "/check", params=params) as resp:
                body = await resp.read()
                error = None if resp.status == 200 else f"{resp.status} {orjson.loads(body).get('error')}"
        except (aiohttp.ClientError, ValueError) as exc:
            error = type(exc).__name__
        if error is not None:
            errors[error] += 1
        elif latencies is not None:
            latencies.append((time.perf_counter() - scheduled) * 1000)

    t0 = time.perf_counter() + 0.05
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=30)
    return errors, time.perf_counter() - t0


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def check_run(s: Settings, env: dict, log_path: Path, *, rate: int = 500, seconds: float = 10.0,
                    warmup_s: float = 2.0, sample: int = 5000, seed: int = 11) -> dict:
    """Start ``creditstream api`` on the state of ``s`` (``env``: its environment), drive ``rate``
    checks/s for ``seconds`` after a warm-up, stop it: ``check_p50_ms``, ``check_p99_ms``, ..."""
    codes = await _subjects(s, sample, seed)
    port = free_port_from(set())
    base = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "creditstream.cli", "api", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    latencies: list[float] = []
    try:
        await _wait_up(base, proc)
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            await _drive(session, base, codes, rate, warmup_s, None)
            cpu_before = cpu_seconds(proc.pid)
            errors, took = await _drive(session, base, codes, rate, seconds, latencies)
            cpu_after = cpu_seconds(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    audit = await _audit_counts(s)
    return {"check_p50_ms": _pct(latencies, 0.5), "check_p90_ms": _pct(latencies, 0.9),
            "check_p95_ms": _pct(latencies, 0.95), "check_p99_ms": _pct(latencies, 0.99),
            "check_max_ms": max(latencies) if latencies else None, "check_samples": len(latencies),
            "check_errors": sum(errors.values()), "check_error_kinds": dict(errors), "check_offered_rate": rate,
            "check_achieved_rate": len(latencies) / took if took > 0 else None,
            "check_audit_recorded": audit["recorded"], "check_audit_dropped": audit["dropped"],
            # the API process's own CPU per answer: steadier than the p99 on a shared machine
            "check_api_cpu_ms": None if cpu_before is None or cpu_after is None or not latencies
            else round((cpu_after - cpu_before) / len(latencies) * 1000, 3)}


async def _audit_counts(s: Settings) -> dict:
    from creditstream.connections import redis_client
    from sinks.check_audit import check_counts

    redis = redis_client(s)
    try:
        counts = await check_counts(redis, s.namespace)
    finally:
        await redis.aclose()
    return {"recorded": sum(sum(o.values()) for o in counts["by_matter"].values()), "dropped": counts["dropped"]}
