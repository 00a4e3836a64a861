"""The rules core: pure functions over typed data (no Faust, Kafka or Redis import).

Its modules run compiled by mypyc when ``make install`` built them (ops/build_core.py) from exactly
the sources on disk: this package then looks for its modules in ``.build/core/domain`` first. A
source edited since the build, another interpreter, or ``CREDITSTREAM_PURE_PYTHON=1`` give the pure
Python modules (the reference; the compiled ones run the same code). ``COMPILED`` says which. The
same build holds streams/avro_reader.py and avro_writer.py (ops/build_core.py ``ALSO_COMPILED``):
``streams/__init__.py`` loads them from it exactly when this package loads the core.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_BUILD = _HERE.parent / ".build" / "core"


def _current_build() -> Path | None:
    """The compiled build, if it was made from the sources on disk for this interpreter."""
    if os.environ.get("CREDITSTREAM_PURE_PYTHON") == "1":
        return None
    try:
        lines = (_BUILD / "SOURCES").read_text().splitlines()
    except OSError:
        return None  # never built here: pure Python
    stale = not lines or lines[0] != f"abi {sys.implementation.cache_tag}-{sys.platform}"
    for line in lines[1:]:
        if stale:
            break
        digest, _, path = line.partition(" ")  # the source's path in the checkout: domain/engine.py
        try:
            stale = "/" not in path or hashlib.sha256((_HERE.parent / path).read_bytes()).hexdigest() != digest
        except OSError:
            stale = True
    if stale:
        warnings.warn("the compiled rules core in .build/core was built from other sources than domain/ "
                      "and streams/avro_*.py (or for another Python): the pure Python core runs; "
                      "`make install` compiles it again",
                      RuntimeWarning, stacklevel=2)
        return None
    return _BUILD


_build = _current_build()
COMPILED = _build is not None
if _build is not None:
    __path__.insert(0, str(_build / "domain"))  # noqa: F821 - the package's own search path
    if str(_build) not in sys.path:
        sys.path.append(str(_build))  # mypyc's shared library of the compiled modules
