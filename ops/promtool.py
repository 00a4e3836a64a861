"""Prometheus's ``promtool``, for the tests of the alerting rules (``make test`` fetches it).

tests/unit/test_metrics.py checks deploy/prometheus-rules.yml with ``promtool check rules`` and runs
the rules' own unit tests (tests/unit/prometheus_rules_test.yml: series in, alerts out) with
``promtool test rules``. Without a promtool they were skipped, so nothing ran them. Debian's
``prometheus`` package carries it (one static binary): the package is downloaded and unpacked into
``DEST`` (``.run/promtool`` by default) by ops/debian_files.py, never installed, and only
``DEST/promtool`` is kept. It is Debian 12's 2.42; production's Prometheus is 2.55 (docker-compose.yml),
which evaluates these rules the same way (they use nothing added between them).

``python -m ops.promtool [DEST]`` prints its path, or says on standard error why there is none (not
root, no apt-get, the package not served) and exits 1: those tests then skip, unless
``REQUIRE_PROMTOOL`` is set (``make test`` sets it with ``REQUIRE_KAFKA``, as CI does): then they fail.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ops.debian_files import Unavailable, command, unpack

PACKAGE = "prometheus"


def runs(binary: Path) -> bool:
    """Whether ``binary`` is a promtool that runs here."""
    try:
        said = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return said.returncode == 0 and (said.stdout + said.stderr).startswith("promtool")


def fetch(dest: Path) -> Path:
    """``dest/promtool``, fetched and unpacked if it is not there yet (:class:`Unavailable` else)."""
    binary = dest / "promtool"
    if binary.exists() and runs(binary):
        return binary
    unpacked = dest / "root"
    unpack((PACKAGE,), unpacked)
    found = unpacked / "usr" / "bin" / "promtool"
    if not found.exists():
        raise Unavailable(f"Debian's {PACKAGE} package has no usr/bin/promtool")
    shutil.move(str(found), binary)
    shutil.rmtree(unpacked, ignore_errors=True)  # the server and its web assets: not needed
    if not runs(binary):
        raise Unavailable(f"{binary} does not run")
    return binary


def main(argv: list[str] | None = None) -> int:
    return command(fetch, argv, dest=".run/promtool", missing="promtool",
                   skipped="the alerting rules' promtool tests are skipped")


if __name__ == "__main__":
    raise SystemExit(main())
