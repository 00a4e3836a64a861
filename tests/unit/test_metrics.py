"""Metrics (creditstream/metrics.py): produced messages are counted per topic once acknowledged;
process and runtime metrics are exported; every metric is used by the code and documented; the
alerting rules (deploy/prometheus-rules.yml) and the dashboard (deploy/grafana-dashboard.json)
name only metrics that exist."""

from __future__ import annotations

import ast
import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram, Summary, generate_latest

from creditstream import metrics
from sinks.kafka import KafkaSink
from tests.promtool import promtool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus-rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"


# --- produced messages ---------------------------------------------------------------------
class FakeBatch:
    def __init__(self, room: int = 1000):
        self.room = room

    def append(self, **_kw):
        if self.room == 0:
            return None
        self.room -= 1
        return object()


class FakeProducer:
    """Enough of AIOKafkaProducer for KafkaSink.flush: batches, acks (or a failure), partitions."""

    def __init__(self, fail: bool = False, room: int = 1000):
        self.fail = fail
        self.room = room
        self.sent: list[tuple[str, int]] = []

    @staticmethod
    def _partitioner(key, all_partitions, available):
        return all_partitions[len(key or b"") % len(all_partitions)]

    def create_batch(self):
        return FakeBatch(self.room)

    async def partitions_for(self, topic):
        return {0, 1, 2}

    async def send_batch(self, batch, topic, partition):
        self.sent.append((topic, partition))
        fut = asyncio.get_running_loop().create_future()
        if self.fail:
            fut.set_exception(ConnectionError("broker went away"))
        else:
            fut.set_result(None)
        return fut


def out_count(topic: str) -> float:
    return metrics.REGISTRY.get_sample_value("creditstream_events_out_total", {"topic": topic}) or 0.0


async def test_events_out_counts_acknowledged_messages_per_topic():
    sink = KafkaSink(FakeProducer(room=2))  # 2 a batch: several batches per partition
    for i in range(5):
        sink.add("m.list-changes", b"v", key=b"k" * i)
    for _ in range(3):
        sink.add("m.subject-events", b"v", key=b"s", partition=1)
    before = out_count("m.list-changes"), out_count("m.subject-events")
    assert await sink.flush() == 8
    assert out_count("m.list-changes") - before[0] == 5
    assert out_count("m.subject-events") - before[1] == 3


async def test_events_out_counts_nothing_when_the_flush_fails():
    sink = KafkaSink(FakeProducer(fail=True))
    sink.add("m.failing", b"v", key=b"k")
    with pytest.raises(ConnectionError):
        await sink.flush()
    assert out_count("m.failing") == 0
    assert len(sink) == 1  # kept for the retry


async def test_a_collecting_sink_produces_nothing_and_counts_nothing():
    sink = KafkaSink(None)
    sink.add("m.collected", b"v")
    assert await sink.flush() == 1
    assert out_count("m.collected") == 0


def test_process_and_runtime_metrics_are_exported():
    text = generate_latest(metrics.REGISTRY).decode()
    assert "python_info{" in text
    if Path("/proc/self/stat").exists():  # ProcessCollector reads /proc
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                     "process_start_time_seconds"):
            assert re.search(rf"^{name} ", text, re.M), name


# --- the metrics and where they are used -----------------------------------------------------
METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}


def defined_metrics() -> dict[str, str]:
    """Variable name -> metric name of every metric creditstream/metrics.py defines."""
    tree = ast.parse((ROOT / "creditstream" / "metrics.py").read_text())
    out = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) in METRIC_TYPES):
            out[node.targets[0].id] = node.value.args[0].value
    return out


def source_files():
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in (".venv", "tests", "build") or rel.parts[0].startswith("."):
            continue
        if rel == Path("creditstream/metrics.py"):
            continue
        yield path


def test_every_metric_is_used_by_the_code():
    code = "\n".join(p.read_text(encoding="utf-8") for p in source_files())
    unused = [var for var in defined_metrics()
              if not re.search(rf"\bmetrics\.{var}\b", code)
              and not re.search(rf"from creditstream\.metrics import [^\n]*\b{var}\b", code)]
    assert not unused, f"metrics defined in creditstream/metrics.py but never updated: {unused}"


def test_every_metric_is_in_the_registry_and_documented():
    section = OPERATIONS.read_text(encoding="utf-8").split("## Metrics and alerts", 1)[1].split("\n## ", 1)[0]
    for var, name in defined_metrics().items():
        obj = getattr(metrics, var)
        assert isinstance(obj, (Counter, Gauge, Histogram, Summary))
        assert f"`{name}`" in section, f"{name} is not in docs/operations.md, Metrics and alerts"


# --- rules and dashboard ---------------------------------------------------------------------
def known_series() -> set[str]:
    """Every series name the workers export (and Prometheus's own ``up``)."""
    names = {"up"}
    for family in metrics.REGISTRY.collect():
        names |= {s.name for s in family.samples}
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type in ("histogram", "summary"):
            names |= {family.name + s for s in ("_bucket", "_sum", "_count", "_created")}
        else:
            names.add(family.name)
    return names


_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan", "Inf", "NaN"}


def series_in(expr: str) -> set[str]:
    """The series names a PromQL expression selects (strings, label matchers, groupings, ranges,
    numbers and functions left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group(0) in _KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def test_series_in():
    assert series_in('sum by (le, agent) (rate(a_bucket{job="x",le="+Inf"}[5m])) > 2e9 and on(x) b_total') == \
        {"a_bucket", "b_total"}
    assert series_in("time() - process_start_time_seconds{job=\"$job\"}") == {"process_start_time_seconds"}


def rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_rules_name_only_existing_metrics():
    known = known_series()
    assert rules()
    for rule in rules():
        assert rule.get("alert") and rule.get("expr"), rule
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        names = series_in(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, f"{rule['alert']}: unknown series {sorted(names - known)}"


def test_rules_cover_the_alerts_asked_for():
    exprs = {rule["alert"]: rule["expr"] for rule in rules()}
    wanted = {
        "creditstream_fenced_batches_total": "increase(",
        "creditstream_rewinds_total": "increase(",
        "creditstream_clock_skew_seconds": "> 30",
        "creditstream_consumer_lag_messages": ">",
        "creditstream_dead_letters_total": "rate(",
        "creditstream_due_timer_backlog": "> 0",
        "creditstream_batch_retries_total": "increase(",
        "up": "== 0",
    }
    for series, shape in wanted.items():
        assert any(series in series_in(e) and shape in e for e in exprs.values()), series
    # every alert of docs/operations.md's table is there, by its expression's series
    section = OPERATIONS.read_text(encoding="utf-8").split("## Metrics and alerts", 1)[1].split("\n## ", 1)[0]
    rule_series = set().union(*(series_in(e) for e in exprs.values()))
    for doc_expr in re.findall(r"^\|[^|]+\| `([^`]+)`", section, re.M):
        assert series_in(doc_expr) <= rule_series, doc_expr


def test_every_alert_has_a_promtool_case():
    """Each alert of deploy/prometheus-rules.yml is evaluated by tests/unit/prometheus_rules_test.yml,
    firing at least once (an expression that never fires passes every check but that one)."""
    cases = yaml.safe_load(Path(__file__).with_name("prometheus_rules_test.yml").read_text(encoding="utf-8"))
    fired = {t["alertname"] for group in cases["tests"] for t in group["alert_rule_test"] if t["exp_alerts"]}
    assert {rule["alert"] for rule in rules()} - fired == set()


def test_promtool_checks_the_rules():
    proc = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_rule_unit_tests():
    """tests/unit/prometheus_rules_test.yml: the fenced, clock-skew, rewind, timer, lag, stalled,
    worker-down and dead-letter alerts fire (and stay quiet) on sample series."""
    tests = Path(__file__).with_name("prometheus_rules_test.yml")
    proc = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def dashboard_exprs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for v in node.values() for e in dashboard_exprs(v)]
    if isinstance(node, list):
        return [e for v in node for e in dashboard_exprs(v)]
    return []


def test_dashboard_names_only_existing_metrics():
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["title"] and board["uid"] and board["panels"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    exprs = dashboard_exprs(board["panels"])
    known = known_series()
    shown = set()
    for expr in exprs:
        names = series_in(expr)
        assert names and names <= known, f"{expr}: unknown series {sorted(names - known)}"
        shown |= names
    # the main figures are on it
    for series in ("creditstream_events_in_total", "creditstream_events_out_total",
                   "creditstream_consumer_lag_messages", "creditstream_dead_letters_total",
                   "creditstream_processing_latency_seconds_bucket", "creditstream_batch_retries_total",
                   "creditstream_due_timer_backlog", "creditstream_clock_skew_seconds",
                   "creditstream_fenced_batches_total", "creditstream_rewinds_total",
                   "process_resident_memory_bytes"):
        assert series in shown, series


def test_promtool_parses_every_dashboard_query(tmp_path):
    """Each query of the dashboard, its ``$job`` variable set, is valid PromQL: given to ``promtool
    check rules`` as a recording rule (a query Grafana could not run shows only as an empty panel)."""
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    assert exprs
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$job", "creditstream-worker")}
        for i, expr in enumerate(exprs)]}]}))
    proc = subprocess.run([promtool(), "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout, proc.stdout
