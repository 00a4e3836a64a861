"""The test suite's own layout: every module of tests/integration/ is marked ``integration``; no two
test modules share a file name.

Seen: two modules (test_index_tail_loss.py, test_key_indexes.py) carried no mark; `make test`'s
Kafka leg selects ``-m "(integration or reliability) ..."``, so they ran on Tansu only, and tests
written for what Apache Kafka does (a commit's metadata kept) never ran there."""

from __future__ import annotations

import ast
from pathlib import Path

INTEGRATION = Path(__file__).resolve().parent.parent / "integration"


def _marks(path: Path) -> set[str]:
    """The names of the marks in the module's ``pytestmark`` (``pytest.mark.x`` or a list of them)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                for t in node.targets):
            return {n.attr for n in ast.walk(node.value) if isinstance(n, ast.Attribute)
                    and isinstance(n.value, ast.Attribute) and n.value.attr == "mark"}
    return set()


def test_every_integration_module_is_marked_integration():
    modules = sorted(INTEGRATION.glob("test_*.py"))
    assert len(modules) > 30
    unmarked = [p.name for p in modules if "integration" not in _marks(p)]
    assert unmarked == [], f"not selected by the Kafka passes (-m integration): {unmarked}"


def test_the_check_reads_both_forms_of_pytestmark(tmp_path):
    one, several, none = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    one.write_text("import pytest\npytestmark = pytest.mark.integration\n")
    several.write_text("import pytest\npytestmark = [pytest.mark.integration, pytest.mark.kafka_only]\n")
    none.write_text("import pytest\nx = pytest.mark.integration\n")
    assert _marks(one) == {"integration"} and _marks(several) == {"integration", "kafka_only"}
    assert _marks(none) == set()


def test_no_two_test_modules_share_a_name():
    """tests/ has no packages (no __init__.py): pytest imports each test module by its file name, so
    two of one name in different folders fail to collect, and the whole run stops there (seen in CI:
    tests/unit/test_origin_order.py beside tests/integration/test_origin_order.py)."""
    from collections import Counter

    tests = INTEGRATION.parent
    names = Counter(p.name for p in tests.rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []
