"""The unit pass that says it runs on the compiled rules core does (seen: a pyproject.toml the venv's
setuptools could not read made mypyc fail; `make install` went on with the pure Python core, 20-25%
slower, and every pass was green)."""

from __future__ import annotations

import os
import shutil

import pytest

import domain

COMPILER = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


@pytest.mark.skipif(os.environ.get("CREDITSTREAM_PURE_PYTHON") == "1", reason="the pure Python pass")
@pytest.mark.skipif(COMPILER is None, reason="no C compiler: the pure Python core runs by design")
def test_the_rules_core_runs_compiled_where_a_compiler_is():
    assert domain.COMPILED, ("the rules core runs as pure Python although a C compiler is here: `make install` "
                             "did not compile it (its [build-core] lines say why), or domain/ changed since "
                             "(`python -m ops.build_core --check`)")
