"""bench/instructions.py: instructions per input counted under callgrind (``make bench-instructions``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from bench.core import hot_subject, hot_subject_inputs
from bench.instructions import ROOT, parse_annotate, per_input, readable

ANNOTATED = """\
--------------------------------------------------------------------------------
Ir
--------------------------------------------------------------------------------
7,580,903,115 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                     file:function
--------------------------------------------------------------------------------
   884,284,915 (11.66%)  /tmp/b/__native_1.c:CPyDef_engine___step [/work/main/.build/core/x.so]
   585,721,922 ( 7.73%)  /tmp/b/__native_1.c:CPyDef_history___advance [/work/main/.build/core/x.so]
   109,037,215 ( 1.44%)  /tmp/b/__native_1.c:CPyDef_history____red_list'2 [/work/main/.build/core/x.so]
    18,077,996 ( 0.24%)  /root/include/python3.11/object.h:CPyDef_history___advance [/work/main/.build/core/x.so]
    12,000,000 ( 0.16%)  /tmp/b/__native_1.c:CPyDef_record_maps___DatedPairs___count [/work/main/.build/core/x.so]
   713,859,728 ( 9.42%)  ???:_PyEval_EvalFrameDefault'2 [/root/lib/libpython3.11.so.1.0]
"""


def test_the_annotated_counts_are_read_per_compiled_function():
    total, functions = parse_annotate(ANNOTATED)
    assert total == 7_580_903_115
    assert functions == {"CPyDef_engine___step": 884_284_915, "CPyDef_history___advance": 585_721_922,
                         "CPyDef_history____red_list": 109_037_215,
                         "CPyDef_record_maps___DatedPairs___count": 12_000_000}
    assert readable("CPyDef_history____red_list") == "history._red_list"
    assert readable("CPyDef_record_maps___DatedPairs___count") == "record_maps.DatedPairs.count"


def test_the_cost_per_input_is_the_difference_between_two_runs():
    fewer = (1_000_000, {"CPyDef_engine___step": 200_000})
    more = (3_000_000, {"CPyDef_engine___step": 1_200_000, "CPyDef_facts___change_id": 50_000})
    r = per_input(fewer, more, 1000)
    assert r["instructions_per_input"] == 2000
    assert r["rules_core_functions"] == {"engine.step": 1000, "facts.change_id": 50}


def test_the_hot_subjects_first_inputs_are_the_same_whatever_their_number():
    few, many = hot_subject_inputs(150), hot_subject_inputs(400)
    assert [(e.origin, e.hash) for e in few] == [(e.origin, e.hash) for e in many[:150]]
    assert hot_subject(150, made=few, summary=False) == {"hot_subject_inputs": 150}


def test_the_new_subjects_inputs_are_nearly_all_about_new_subjects():
    from bench.inputs import generate
    from bench.instructions import NEW_SUBJECTS_PER_INPUT
    from creditstream.connections import make_codec
    from creditstream.settings import Settings

    codec = make_codec(Settings())

    def subjects(inputs):
        names = []
        for _kind, raw in inputs:
            try:
                names.append(codec.decode(raw)[1].get("subject_name"))
            except Exception:  # noqa: BLE001 - the generated malformed inputs
                pass
        return len(set(names)) / len(names)

    # as bench/instructions.py child() makes them: "stages" two inputs a subject, "new" a hundred subjects an input
    assert subjects(generate(800, 400)[:400]) < 0.8
    assert subjects(generate(800, 800 * NEW_SUBJECTS_PER_INPUT)[:400]) > 0.9  # but re-sends and corrections


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_the_stages_are_counted_under_callgrind():
    done = subprocess.run([sys.executable, "-m", "bench.instructions", "--stages", "60", "--hot", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["stages"]["inputs"] == 60
    assert result["stages"]["instructions_per_input"] > 100_000
    assert "engine.step" in result["stages"]["rules_core_functions"]
