"""Compile the rules core (domain/) to C extension modules with mypyc (``make install`` runs it).

The rules core is pure, typed Python (mypy checks it). mypyc, the compiler mypy itself is built
with, turns those modules into C extensions that run the same code 1.3-1.4x faster (the benchmark's
hot subject and the state trainer's inputs, in one process; docs/performance.md). Nothing else
changes: the sources stay the reference, and ``domain/__init__.py`` loads the compiled modules
only while they were built from exactly the sources on disk.

* The build goes to ``.build/core/`` (never beside the sources, where a stale extension module
  would shadow an edited ``.py``): the per-module extensions in ``.build/core/domain/`` (and
  ``.build/core/streams/`` for :data:`ALSO_COMPILED`), mypyc's shared library in ``.build/core/``,
  and ``SOURCES``, the sha256 of every source compiled, with the interpreter it was built for.
* ``domain/__init__.py`` puts ``.build/core/domain`` first on the package's path when ``SOURCES``
  matches the sources and the interpreter; otherwise (a source edited since, another Python, no
  build) the package is the pure Python one, with a warning when a build exists but is stale.
  ``CREDITSTREAM_PURE_PYTHON=1`` forces the pure Python core (a debugger, a profiler that should
  see the core's functions, the tests that spy on calls inside a module).
* ``domain/events.py`` stays Python: its msgspec Structs are tagged by class keywords that mypyc
  does not keep.
* A failed build (no C compiler, say) leaves the pure Python core in use and says so; it does not
  fail the install.

``python -m ops.build_core`` builds (``--check``: says whether the build in place is current).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "domain"
BUILD = ROOT / ".build" / "core"
NOT_COMPILED = frozenset({"__init__.py", "events.py"})
ALSO_COMPILED = ("streams/avro_reader.py", "streams/avro_writer.py", "streams/murmur2.py")
"""Compiled with the core, in the same group: the Avro reader of department inputs and the writer
of list changes (about 3x faster compiled: docs/performance.md, twenty-seventh session), and
Kafka's murmur2 of a message key (sinks/kafka.py ``key_hash``). Pure
functions over bytes, typed, stdlib only (murmur2 also names ``mypy_extensions.i64``, plain ``int``
uncompiled); ``streams/__init__.py`` loads them from the build when ``domain/__init__.py`` loads the
core."""
DATA = ("rules_default.toml",)  # read next to the module that reads it (rulebook.DEFAULT_PATH)


def abi_tag() -> str:
    """The interpreter a build is for: an extension module loads only into the Python it was built for."""
    return f"{sys.implementation.cache_tag}-{sys.platform}"


def sources() -> list[Path]:
    return sorted(p for p in SOURCE.glob("*.py") if p.name not in NOT_COMPILED) + [ROOT / m for m in ALSO_COMPILED]


def mypy_settings(pyproject: str) -> str:
    """The ``[tool.mypy]`` tables of ``pyproject`` (the text of pyproject.toml), and nothing else: mypyc
    builds through setuptools, and the setuptools of the venv (the interpreter's, older than the one
    ``pip install`` builds the package with) validates a ``[project]`` table it finds and failed on
    the licence as an SPDX expression; the build then fell back to the pure Python core."""
    kept: list[str] = []
    keep = False
    for line in pyproject.splitlines():
        if line.startswith("["):
            keep = line.lstrip("[").startswith("tool.mypy")
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"


def manifest(paths: list[Path]) -> str:
    """``SOURCES``: the interpreter, then the sha256 of each source compiled and its path in the
    checkout (``domain/engine.py``)."""
    lines = [f"abi {abi_tag()}"]
    lines += [f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.relative_to(ROOT).as_posix()}" for p in paths]
    return "\n".join(lines) + "\n"


def is_current() -> bool:
    marker = BUILD / "SOURCES"
    return marker.exists() and marker.read_text() == manifest(sources())


def build() -> int:
    """Compile the core into BUILD; returns a process exit code (0 also when it fell back to Python)."""
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        print("[build-core] no C compiler found: the rules core runs as pure Python", file=sys.stderr)
        return 0
    paths = sources()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="creditstream-core-") as tmp:
        work = Path(tmp)
        (work / "domain").mkdir()
        for p in SOURCE.glob("*.py"):
            shutil.copy2(p, work / "domain" / p.name)
        for name in ALSO_COMPILED:
            (work / name).parent.mkdir(exist_ok=True)
            (work / name).parent.joinpath("__init__.py").touch()  # a package for mypy, not compiled
            shutil.copy2(ROOT / name, work / name)
        if (ROOT / "pyproject.toml").exists():  # mypy's settings for the core (a checkout)
            (work / "pyproject.toml").write_text(mypy_settings((ROOT / "pyproject.toml").read_text()))
        else:  # an installed package (the image): the types were checked in the checkout already
            (work / "mypy.ini").write_text("[mypy]\nignore_missing_imports = True\n")
        names = [p.relative_to(ROOT).as_posix() for p in paths]
        print(f"[build-core] compiling {len(names)} modules of domain/ and streams/ with mypyc (about a minute)",
              file=sys.stderr)
        proc = subprocess.run([sys.executable, "-m", "mypyc", *names], cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            print(f"[build-core] mypyc failed; the rules core runs as pure Python:\n{tail}", file=sys.stderr)
            return 0
        shutil.rmtree(BUILD, ignore_errors=True)
        for package in sorted({Path(n).parts[0] for n in names}):
            (BUILD / package).mkdir(parents=True)
            for so in (work / package).glob("*.so"):
                shutil.move(str(so), BUILD / package / so.name)
        for so in work.glob("*.so"):  # mypyc's shared library of the group
            shutil.move(str(so), BUILD / so.name)
    for name in DATA:
        (BUILD / "domain" / name).symlink_to(SOURCE / name)
    (BUILD / "SOURCES").write_text(manifest(paths))
    print(f"[build-core] compiled in {time.monotonic() - t0:.0f} s into {BUILD.relative_to(ROOT)}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.build_core", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="say whether the build in place matches the sources")
    parser.add_argument("--if-stale", action="store_true", help="build only if the build in place is not current")
    args = parser.parse_args(argv)
    if args.check:
        current = is_current()
        print("compiled core: current" if current else "compiled core: missing or stale (pure Python in use)")
        return 0 if current else 1
    if args.if_stale and is_current():
        return 0
    return build()


if __name__ == "__main__":
    sys.exit(main())
