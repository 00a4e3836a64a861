"""creditstream/holdings.py: what a worker holds in memory, holder by holder, in /metrics and in
the worker's last log line."""
from __future__ import annotations

import gc
import json

from prometheus_client import generate_latest

from bench import bench
from creditstream import holdings, metrics
from domain.identifiers import MEMO_ENTRIES, is_valid_uscc
from sinks.keys import STORAGE_IDS_KEPT, storage_id
from sinks.redis_state import StateCache


class _Owner:
    def __init__(self, n: int):
        self.items = list(range(n))


def test_the_memo_caches_and_storage_ids_are_reported_with_their_bounds():
    is_valid_uscc("91350100M000100Y43")
    storage_id("91350100M000100Y43", "k")
    held = holdings.held()
    assert held["is_valid_uscc"].entries >= 1 and held["is_valid_uscc"].capacity == MEMO_ENTRIES
    assert held["storage_ids"].entries >= 1 and held["storage_ids"].capacity == STORAGE_IDS_KEPT
    assert {"due_ms", "iso_dates", "months_added", "date_of_day"} <= set(held)
    assert all(h.capacity is None or h.entries <= h.capacity for h in held.values())


def test_an_owner_is_reported_while_it_lives():
    owner = _Owner(3)
    holdings.hold("test_owner", owner, lambda o: holdings.Held(len(o.items), 10))
    assert holdings.held()["test_owner"] == holdings.Held(3, 10)
    owner.items.append(4)
    assert holdings.summary()["test_owner"] == 4
    del owner
    gc.collect()
    assert "test_owner" not in holdings.held()


def test_the_state_cache_reports_its_entries_and_bytes_in_metrics():
    cache = StateCache(1 << 20)
    cache.written({0: 5}, {"s1": (0, {"id": "s1"}, 100), "s2": (0, {"id": "s2"}, 100)})
    value = metrics.REGISTRY.get_sample_value
    assert value("creditstream_worker_held_entries", {"holder": "subject_states"}) == 2
    assert value("creditstream_worker_held_capacity", {"holder": "subject_state_bytes"}) == 1 << 20
    assert 0 < value("creditstream_worker_held_entries", {"holder": "subject_state_bytes"}) <= 1 << 20
    assert value("creditstream_worker_held_capacity", {"holder": "subject_states"}) is None  # bounded in bytes
    text = generate_latest(metrics.REGISTRY).decode()
    assert "# TYPE creditstream_worker_held_entries gauge" in text
    del cache


def test_the_bench_reads_what_the_workers_held_from_their_last_log_line(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RUN_DIR", tmp_path)
    (tmp_path / "t").mkdir()
    for i, n in enumerate((10, 32)):
        lines = [json.dumps({"event": "agent started"}),
                 json.dumps({"event": "pipeline stopped", "took_s": 0.2, "held": {"storage_ids": n, "due_ms": 1}})]
        (tmp_path / "t" / f"worker{i}.log").write_text("\n".join(lines) + "\n")
    assert bench.worker_held("t") == {"storage_ids": 42, "due_ms": 2}
    assert bench.worker_held("absent") == {}
