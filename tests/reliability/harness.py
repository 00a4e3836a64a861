"""Shared pieces of the reliability suite: scale, results, quiescence, comparisons with the oracle.

Scale comes from the environment so that CI runs a shorter setting of the same suite:
``RELIABILITY_EVENTS`` (default 3000), ``RELIABILITY_KILLS`` (3), ``RELIABILITY_FUZZ`` (1000),
``RELIABILITY_OUTAGE_S`` (3). ``make reliability`` sets the full scale (20000 / 20 / 10000 / 10).
Each test adds its figures to ``RELIABILITY_RESULTS`` (a JSON file); tests/reliability/summary.py
prints the one-line summary from it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

from domain.identifiers import is_valid_resident_id

EVENTS = int(os.environ.get("RELIABILITY_EVENTS", "3000"))
KILLS = int(os.environ.get("RELIABILITY_KILLS", "3"))
FUZZ = int(os.environ.get("RELIABILITY_FUZZ", "1000"))
OUTAGE_S = float(os.environ.get("RELIABILITY_OUTAGE_S", "3"))
RESULTS = Path(os.environ.get("RELIABILITY_RESULTS", ".run/reliability.json"))

_ID_CANDIDATE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")


def record(**counts: int) -> None:
    """Add these figures to the results file (created on first use)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for key, value in counts.items():
        data[key] = data.get(key, 0) + value
    RESULTS.write_text(json.dumps(data, sort_keys=True))


def crashes(test: str, log: str) -> int:
    """The worker crashes in ``log`` (lines at level critical); when there are any, the log's lines
    around each (the traceback before it) are kept beside the results file, in
    ``reliability-<test>-crashes.log``, for the post-mortem: a test's temporary directory does
    not outlive the next runs."""
    lines = log.splitlines()
    at = [i for i, line in enumerate(lines) if '"level":"critical"' in line]
    if at:
        kept = []
        for i in at:
            kept.extend(lines[max(0, i - 60):i + 5])
            kept.append("-" * 40)
        out = RESULTS.parent / f"reliability-{test}-crashes.log"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(kept) + "\n")
    return len(at)


async def produce(department, gen, n: int) -> None:
    """Send the next ``n`` synthetic department events of ``gen`` and wait for their acks."""
    from streams.samples import SCHEMA_OF_KIND

    for _ in range(n):
        kind, rec = next(gen)
        topic = department.topics.for_kind(kind)
        await department.producer.send(topic, department.codec.encode(SCHEMA_OF_KIND[kind], rec, topic=topic))
    await department.producer.flush()


def pii_leaks(text: str) -> list[str]:
    """Resident ID numbers in clear in ``text`` (valid check character: not a USCC or a count)."""
    return [m for m in _ID_CANDIDATE.findall(text) if is_valid_resident_id(m.upper())]


async def log_size(settings, topic: str) -> int:
    from ops.replay import _log_size

    return await _log_size(settings, topic)


async def quiescent(settings, redis, *, timeout: float = 120.0, still_s: float = 1.5) -> None:
    """Wait until the pipeline has nothing left to do: every department input accounted for
    (applied, parked or dead-lettered), every subject event applied (each partition's recorded
    position at its log's end: the legal representatives' links and the ticks are no department
    inputs, and a rebalance could hold them unapplied for longer than ``still_s`` with nothing
    moving), no due instant pending, and the subject-event log and the counters unchanged for
    ``still_s``."""
    from ops.report import progress
    from sinks.keys import resolve_keys
    from streams.topics import Topics

    topics = Topics(settings)
    keys = await resolve_keys(redis, settings.namespace)
    inputs_total = 0
    for name in topics.ingest_sources:
        inputs_total += await log_size(settings, name)
    deadline = time.monotonic() + timeout
    last = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        done = await progress(settings)
        due = await redis.zcount(keys.due, "-inf", int(time.time() * 1000))
        snapshot = (done, await log_size(settings, topics.subject_events),
                    await redis.hget(keys.stats, "outcome:tick"), await redis.hlen(keys.stats))
        if done >= inputs_total and due == 0 and snapshot == last \
                and await _subject_events_applied(settings, redis, keys):
            if time.monotonic() - since >= still_s:
                return
        else:
            since = time.monotonic()
        last = snapshot
        await asyncio.sleep(0.3)
    raise AssertionError(f"not quiescent after {timeout}s: {done} of {inputs_total} inputs, {due} due; "
                         f"{await _positions_behind(settings)}")


async def _subject_events_applied(settings, redis, keys) -> bool:
    """Whether the position Redis records for each subject-event partition is its log's end."""
    from streams import kafka
    from streams.topics import Topics

    ends = await kafka.log_ends(settings, Topics(settings).subject_events)
    if not ends:
        return False
    parts = sorted(ends)
    recorded = await redis.mget([keys.position(p) for p in parts])
    return all(int(v or 0) >= ends[p] for p, v in zip(parts, recorded))


async def _positions_behind(settings) -> str:
    """Where each agent's partitions stand that are not at their log's end (``creditstream positions``:
    the position Redis records, the group's commit, the log end): which agent and partition a
    pipeline that stopped short stopped on."""
    from ops.positions import show

    try:
        rows = await asyncio.wait_for(show(settings), 30)
    except Exception as exc:  # noqa: BLE001 - the failure being reported matters more
        return f"positions unknown ({type(exc).__name__}: {exc})"
    behind = [f"{r.agent} {r.topic}[{r.partition}] redis={r.redis} committed={r.committed} end={r.end}"
              for r in rows if r.behind]
    return "partitions behind their log end: " + ("; ".join(behind) if behind else "none")


async def redis_states(redis, settings) -> dict[str, dict]:
    """Every subject's state by subject id. The subjects set holds storage ids (a natural person's
    ID number only as its pseudonym, sinks/keys.py): a state names its subject in clear."""
    from ops.replay import without_sequence
    from sinks.keys import resolve_keys
    from sinks.redis_state import read_states

    keys = await resolve_keys(redis, settings.namespace)
    ids = sorted(s.decode() for s in await redis.smembers(keys.subjects))
    out = {}
    for i in range(0, len(ids), 1000):
        chunk = ids[i:i + 1000]
        for stored, state in zip(chunk, await read_states(redis, keys, chunk)):
            out[state["id"] if state else stored] = without_sequence(state)  # (the oracle has none)
    return out


async def divergence(settings, redis) -> list[str]:
    """Where Redis and the list-change topic differ from the oracle (empty: identical)."""
    from ops.replay import live_changes, per_subject
    from sinks.keys import storage_id
    from tests.reliability.oracle import fold

    states, changes, _ = await fold(settings)
    live = await redis_states(redis, settings)
    out = [f"state of {sid}" for sid in sorted(set(states) | set(live)) if states.get(sid) != live.get(sid)]
    # (stale copies, below their subject's highest sequence, are what a paused or frozen worker sends
    # late: a subscriber skips them, and so does per_subject; test_fencing.py shows one such fold)
    sent = await live_changes(settings)
    # the list-change topic is keyed by storage id
    changes = {storage_id(sid, settings.pseudonym_key): ids for sid, ids in changes.items()}
    topic = per_subject(sent)
    out += [f"list changes of {sid}" for sid in sorted(set(changes) | set(topic))
            if changes.get(sid, []) != topic.get(sid, [])]
    return out


async def difference(settings, redis, diverged: list[str], limit: int = 3) -> str:
    """What differs in the first diverged states: the top-level fields, and within ``records`` the
    record keys and their differing fields (oracle vs Redis), so that a failure says what to look
    for; and each subject-event partition's position (the next offset the state has applied).
    Folds the log again: only called once a check has failed."""
    from sinks.keys import resolve_keys
    from tests.reliability.oracle import fold

    states, _, _ = await fold(settings)
    live = await redis_states(redis, settings)
    lines = []
    for item in [d for d in diverged if d.startswith("state of ")][:limit]:
        sid = item.removeprefix("state of ")
        want, got = states.get(sid) or {}, live.get(sid) or {}
        fields = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        line = f"{sid}: fields {fields}"
        if "records" in fields:
            w, g = want.get("records") or {}, got.get("records") or {}
            for rk in sorted(k for k in set(w) | set(g) if w.get(k) != g.get(k))[:3]:
                a, b = w.get(rk) or {}, g.get(rk) or {}
                sub = {f: (repr(a.get(f))[:80], repr(b.get(f))[:80])
                       for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f) and f not in ("content", "others")}
                line += f"; record {rk!r} (oracle, redis): {sub}"
        lines.append(line)
    keys = await resolve_keys(redis, settings.namespace)
    positions = {p: await redis.get(keys.position(p)) for p in range(settings.partitions)}
    lines.append(f"positions {({p: int(v) for p, v in positions.items() if v is not None})}")
    return " | ".join(lines)


async def lost_inputs(settings, redis) -> list[str]:
    """Department messages neither applied to a subject, nor parked, nor dead-lettered."""
    from domain import events
    from ops.dlq import list_dead_letters
    from sinks.keys import Keys, resolve_keys
    from sinks.registry_index import RegistryIndex
    from streams import kafka
    from streams.topics import Topics

    # applied: every subject event below the position its partition's state records
    keys = await resolve_keys(redis, settings.namespace)
    topics = Topics(settings)
    accounted: set[str] = set()
    positions: dict[int, int] = {}
    async for batch in kafka.read_to_end(settings, topics.subject_events):
        for msg in batch:
            if msg.partition not in positions:
                raw = await redis.get(keys.position(msg.partition))
                positions[msg.partition] = int(raw) if raw is not None else 0
            if msg.offset < positions[msg.partition]:
                try:
                    accounted.add(events.decode(msg.value).origin)
                except events.BadEvent:
                    pass
    for d in await list_dead_letters(settings):
        accounted.add(f"{d['source_topic']}/{d['source_partition']}/{d['source_offset']}")
    for p in await RegistryIndex(redis, Keys(settings.namespace)).parked_records(limit=10 ** 9):
        accounted.add(p["event"]["origin"])
    lost = []
    for topic in topics.ingest_sources:
        async for batch in kafka.read_to_end(settings, topic):
            for msg in batch:
                origin = f"{msg.topic}/{msg.partition}/{msg.offset}"
                if origin not in accounted:
                    lost.append(origin)
    return lost
