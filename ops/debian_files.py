"""Debian packages' files, unpacked for the tests, never installed (ops/tls_redis.py, ops/promtool.py).

``apt-get download`` fetches the ``.deb`` files into a temporary directory and ``dpkg -x`` unpacks
them into a directory of the work tree: no package is installed, no service started, nothing outside
the work tree changes. It needs root and apt-get (``apt-get update`` runs first, as Debian's
package lists of a fresh machine are empty).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


class Unavailable(RuntimeError):
    """The packages cannot be fetched here; the reason."""


def unpack(packages: tuple[str, ...], root: Path) -> None:
    """``packages``' files under ``root`` (emptied first), as ``dpkg -x`` lays them out."""
    if os.geteuid() != 0 or not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise Unavailable(f"apt-get download needs root and apt-get ({' '.join(packages)})")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as debs:
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "download", "-qq", *packages]):
            done = subprocess.run(cmd, cwd=debs, capture_output=True, text=True)
            if done.returncode != 0:
                raise Unavailable(f"{' '.join(cmd)} failed: {(done.stderr or done.stdout).strip()[-300:]}")
        for deb in sorted(Path(debs).glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, capture_output=True)


def command(fetch: Callable[[Path], Path], argv: list[str] | None, *, dest: str, missing: str, skipped: str) -> int:
    """``python -m ops.<module> [DEST]``: print the path ``fetch(DEST)`` gives (``dest`` by default),
    or say on standard error why there is none, ``no <missing>: <why>; <skipped>``, and exit 1."""
    args = sys.argv[1:] if argv is None else argv
    try:
        print(fetch(Path(args[0] if args else dest).resolve()))
    except (Unavailable, OSError, subprocess.SubprocessError) as exc:
        print(f"no {missing}: {exc}; {skipped}", file=sys.stderr)
        return 1
    return 0
