"""The layering, as a checked contract (every import counts, those inside functions too):

* domain/ (the rules core) imports nothing of the project's I/O, and no Kafka, Redis or Faust;
* sinks/ and streams/ never import agents/ or the composition root (creditstream/app.py);
* ops/ never imports the composition root;
* the product never imports the test data (streams/samples.py, streams/synthetic.py);
* no module imports another that imports it back (no cycles).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("creditstream", "domain", "streams", "agents", "sinks", "ops", "schemas", "bench")
ROOT_MODULE = "creditstream.app"


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).glob("*.py")):
            out[pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"] = path
    return out


def imports_of(path: Path) -> set[str]:
    """Every module name an import statement in ``path`` names (``from a import b``: a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


MODULES = modules()
GRAPH = {m: {n for n in imports_of(p) if n in MODULES and n != m} for m, p in MODULES.items()}
EXTERNAL = {m: {n.split(".")[0] for n in imports_of(p)} for m, p in MODULES.items()}


def offenders(importers: str, forbidden) -> list[str]:
    return sorted(f"{m} imports {n}" for m in GRAPH if m.split(".")[0] == importers
                  for n in GRAPH[m] if forbidden(n))


def test_the_rules_core_imports_no_io():
    project_io = offenders("domain", lambda n: n.split(".")[0] != "domain")
    libraries = sorted(f"{m} imports {lib}" for m in GRAPH if m.startswith("domain")
                       for lib in EXTERNAL[m] & {"aiokafka", "redis", "faust", "mode", "aiohttp", "confluent_kafka",
                                                 "structlog", "prometheus_client", "asyncio", "socket"})
    assert project_io + libraries == []


@pytest.mark.parametrize("layer", ["sinks", "streams"])
def test_sinks_and_streams_never_import_agents_or_the_root(layer):
    assert offenders(layer, lambda n: n.split(".")[0] == "agents" or n == ROOT_MODULE) == []


def test_ops_never_imports_the_composition_root():
    assert offenders("ops", lambda n: n == ROOT_MODULE) == []


TEST_DATA = {"streams.samples", "streams.synthetic"}


def test_the_product_never_imports_test_data():
    """Sample and synthetic events are for tests, the demo data and the benchmark, not the product."""
    product = ("creditstream", "domain", "agents", "sinks", "ops", "streams")
    assert sorted(f"{m} imports {n}" for m in GRAPH if m.split(".")[0] in product and m not in TEST_DATA
                  for n in GRAPH[m] & TEST_DATA) == []


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_contract_sees_the_imports_it_checks():
    """The checks above are only as good as the graph: it must see top-level and local imports."""
    assert "creditstream.connections" in GRAPH["ops.inspect"]
    assert "agents.subject" in GRAPH["ops.replay"]  # imported inside a function
    assert "domain.engine" in GRAPH["agents.subject"]
