"""The promtool the tests of the Prometheus files run (tests/unit/test_metrics.py, test_compose.py)."""

from __future__ import annotations

import os
import shutil

import pytest


def promtool() -> str:
    """``PROMTOOL`` (make test fetches Debian's: ops/promtool.py) or the one on PATH; else skip, or
    fail where ``REQUIRE_PROMTOOL`` is set (CI)."""
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not path:
        why = "promtool is not installed (set PROMTOOL=/path/to/promtool; python -m ops.promtool fetches it)"
        if os.environ.get("REQUIRE_PROMTOOL"):
            pytest.fail(f"REQUIRE_PROMTOOL is set but {why}")
        pytest.skip(why)
    return path
