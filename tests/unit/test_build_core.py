"""The compiled rules core (ops/build_core.py) is used only while it was built from the sources on
disk, for this interpreter (domain/__init__.py); otherwise the pure Python core runs, with a warning
when a build exists but is stale."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import domain
from ops import build_core

ROOT = Path(__file__).resolve().parents[2]


def test_a_build_is_used_only_while_it_matches_the_sources(tmp_path, monkeypatch):
    sources = sorted(p for p in (ROOT / "domain").glob("*.py") if p.name not in build_core.NOT_COMPILED)
    sources += [ROOT / "streams" / "avro_reader.py", ROOT / "streams" / "avro_writer.py", ROOT / "streams" / "murmur2.py"]
    assert build_core.sources() == sources
    lines = [f"abi {sys.implementation.cache_tag}-{sys.platform}"]
    lines += [f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.relative_to(ROOT).as_posix()}" for p in sources]
    (tmp_path / "SOURCES").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(domain, "_BUILD", tmp_path)
    monkeypatch.delenv("CREDITSTREAM_PURE_PYTHON", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert domain._current_build() == tmp_path  # current: used, no warning

    # one source differs from what was compiled: the pure Python core, and a warning
    stale = list(lines)
    stale[-1] = "0" * 64 + " streams/murmur2.py"
    (tmp_path / "SOURCES").write_text("\n".join(stale) + "\n")
    with pytest.warns(RuntimeWarning, match="other sources"):
        assert domain._current_build() is None
    # built for another interpreter
    (tmp_path / "SOURCES").write_text("\n".join(["abi cpython-39-linux", *lines[1:]]) + "\n")
    with pytest.warns(RuntimeWarning):
        assert domain._current_build() is None
    # a source compiled then deleted
    (tmp_path / "SOURCES").write_text("\n".join([*lines, "0" * 64 + " domain/gone.py"]) + "\n")
    with pytest.warns(RuntimeWarning):
        assert domain._current_build() is None
    # a build made before streams/ was compiled with the core (names without their package)
    bare = [f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.name}" for p in sources[:-2]]
    (tmp_path / "SOURCES").write_text("\n".join([lines[0], *bare]) + "\n")
    with pytest.warns(RuntimeWarning):
        assert domain._current_build() is None
    # never built: pure Python, quietly
    monkeypatch.setattr(domain, "_BUILD", tmp_path / "nothing")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert domain._current_build() is None
    # the build's own manifest is made the same way
    assert build_core.manifest(sources) == "\n".join(lines) + "\n"


def test_the_pure_python_core_can_be_forced():
    env = dict(os.environ, CREDITSTREAM_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", "import domain, domain.engine; print(domain.COMPILED, "
                          "domain.engine.__file__.endswith('.py'))"], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_the_compiled_core_is_what_runs_when_it_is_current():
    if not build_core.is_current() or os.environ.get("CREDITSTREAM_PURE_PYTHON") == "1":
        pytest.skip("no current compiled build here (make install builds it)")
    import domain.engine
    import domain.events
    import domain.rulebook

    assert domain.COMPILED
    assert domain.engine.__file__.endswith(".so")
    assert domain.events.__file__.endswith(".py")  # its msgspec Structs stay Python
    import streams.avro_reader
    import streams.avro_writer
    import streams.codec

    assert streams.avro_reader.__file__.endswith(".so") and streams.avro_writer.__file__.endswith(".so")
    assert streams.codec.__file__.endswith(".py")  # the rest of streams/ is not compiled
    assert domain.rulebook.load_rulebook().version  # the default rules file is found beside it


_FOLD_DIGEST = """
import hashlib, random, domain
from bench import train_state_dict as t
fold = t.Fold()
rng = random.Random(t.SEED)
t.organisations(fold, rng, 400, start=700_000)
t.persons(fold, rng, 100)
t.synthetic(fold, t.SEED, 1500)
h = hashlib.sha256()
for s in sorted(fold.states):
    h.update(t.orjson.dumps(fold.states[s], option=t.orjson.OPT_SORT_KEYS))
print(domain.COMPILED, fold.n, fold.rejected, len(fold.states), h.hexdigest())
"""


def test_the_compiled_core_gives_the_same_states_as_the_python_one():
    """Differential: every kind of input the state trainer makes (penalties of every severity and
    domain, licences, court listings and deletions, listing decisions, objections, repairs,
    registrations, persons, links to legal representatives, feedback, ticks), folded by the compiled
    core and by the pure Python one: the same states, byte for byte, and the same rejections. mypyc
    checks annotations at run time: a value of another type than declared would raise here."""
    if not build_core.is_current():
        pytest.skip("no current compiled build here (make install builds it)")
    runs = {}
    for pure in ("1", "0"):
        env = dict(os.environ, CREDITSTREAM_PURE_PYTHON=pure)
        runs[pure] = subprocess.run([sys.executable, "-c", _FOLD_DIGEST], env=env, cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout.split()
    assert runs["1"][0] == "False" and runs["0"][0] == "True"
    assert int(runs["1"][1]) > 1000 and len(runs["1"]) == 5
    assert runs["1"][1:] == runs["0"][1:]


def test_the_avro_modules_run_pure_with_the_pure_core():
    env = dict(os.environ, CREDITSTREAM_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", "import streams.avro_reader as r, streams.avro_writer as w; "
                          "print(r.__file__.endswith('.py'), w.__file__.endswith('.py'))"], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True"]


def test_the_build_sees_mypys_settings_and_no_project_table():
    """mypyc builds through the venv's setuptools (the interpreter's, older than the one `pip install`
    uses): it validated pyproject.toml's [project] table and failed on the licence as an SPDX
    expression, and the core fell back to pure Python. The build's copy holds mypy's tables only."""
    import tomllib

    text = (ROOT / "pyproject.toml").read_text()
    settings = tomllib.loads(build_core.mypy_settings(text))
    assert settings == {"tool": {"mypy": tomllib.loads(text)["tool"]["mypy"]}}
    assert settings["tool"]["mypy"]["strict"] is True
