"""Instructions per input, counted rather than timed (``make bench-instructions``).

On a shared machine the same code's timings move by a third within minutes (docs/performance.md,
thirteenth session: the hot subject's cost per 1,000 inputs measured 140-290 us run to run), so a
change worth 5-10% cannot be seen by timing it. The number of instructions a run executes is the same
on every run of the same code over the same inputs (the hash seed fixed), whatever else the machine
does. It is not time (cache misses, branch mispredictions and the memory hierarchy are not in it),
but work removed shows in it, and where: valgrind's callgrind counts them function by function.

Each measurement runs this module's child twice under callgrind, over more and fewer inputs of the
same generated set; the difference divided by the inputs between is the cost per input of those
inputs alone (start-up, imports and generating the inputs cancel out):

* **stages**: the worker's stages in process (bench/core.py ``core_stages``) over the first N and
  the first 2N of 2N generated inputs (N subjects: two inputs each on average, as ``make bench``);
* **new subjects** (``--new``): the same stages over the first N and 2N of 2N generated inputs
  whose subjects are (nearly) all different, so that each input's subject, and its names and codes,
  are new to the validation's caches and to the state: what every input costs at a million
  subjects, where the caches hold a small part of them (issue 13: the cost per input as subjects
  grow);
* **hot subject**: one subject fed the first N - 1,000 and N, and the first 1,000 and 2,000, of
  the same N inputs (bench/core.py ``hot_subject``, without its summary of the state at the end):
  the cost of an input at the end of its history against one near its start.

The rules core's compiled functions are named in the counts (``CPyDef_<module>___<function>``);
Python functions are not (they all run in the interpreter's loop), so the stages are reported as a
whole, with the rules core's largest functions (inclusive: with what they call) beside them.

Needs valgrind (Debian: ``apt-get install valgrind``). A run takes a few minutes: callgrind runs the
code 30-60 times slower. Prints a table, then one line of JSON (the last line).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = 12  # the rules core's largest functions reported

_TOTAL = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+PROGRAM TOTALS")
_LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(?:\S*:)?(CPyDef_\S+?)(?:'\d+)?(?:\s|$)")


def parse_annotate(text: str) -> tuple[int, dict[str, int]]:
    """(the program's instructions, the rules core's compiled functions' inclusive instructions) from
    ``callgrind_annotate --inclusive=yes`` output. A function listed more than once (recursion:
    ``name'2``) counts at its largest."""
    total = 0
    functions: dict[str, int] = {}
    for line in text.splitlines():
        m = _TOTAL.match(line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = _LINE.match(line)
        if m:
            name, n = m.group(2), int(m.group(1).replace(",", ""))
            functions[name] = max(functions.get(name, 0), n)
    return total, functions


def readable(name: str) -> str:
    """``CPyDef_history___list_tracks`` -> ``history.list_tracks``."""
    module, _, function = name.removeprefix("CPyDef_").partition("___")
    return f"{module}.{function.replace('___', '.')}" if function else module


def _count(what: str, n: int, total: int, workdir: Path) -> tuple[int, dict[str, int]]:
    out = workdir / f"callgrind.{what}.{n}"
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m", "bench.instructions",
           "--child", what, str(n), str(total)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"callgrind run failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    annotated = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
                               capture_output=True, text=True, check=True).stdout
    return parse_annotate(annotated)


def per_input(fewer: tuple[int, dict[str, int]], more: tuple[int, dict[str, int]], inputs: int) -> dict:
    """Instructions per input of the inputs between two runs: the whole, and by rules-core function."""
    functions = {readable(k): round((v - fewer[1].get(k, 0)) / inputs) for k, v in more[1].items()}
    top = dict(sorted(functions.items(), key=lambda kv: -kv[1])[:TOP])
    return {"instructions_per_input": round((more[0] - fewer[0]) / inputs), "rules_core_functions": top}


NEW_SUBJECTS_PER_INPUT = 100


def child(what: str, n: int, total: int) -> None:
    """One counted run: the stages over the first ``n`` of ``total`` generated inputs, or the hot
    subject fed ``n`` inputs."""
    from bench.core import core_stages, hot_subject, hot_subject_inputs

    if what in ("stages", "new"):
        from bench.inputs import generate

        # "new": a hundred subjects for every input, so every input but the re-sends and corrections is its
        # subject's first
        core_stages(generate(total, total // 2 if what == "stages" else total * NEW_SUBJECTS_PER_INPUT)[:n])
    else:
        hot_subject(n, made=hot_subject_inputs(total)[:n], summary=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", type=int, default=4000, metavar="N",
                        help="the stages' inputs counted: those after the first N of 2N (default 4000; 0: skip)")
    parser.add_argument("--new", type=int, default=0, metavar="N",
                        help="the stages over inputs whose subjects are all new (as at a million subjects): "
                             "those after the first N of 2N (default 0: skip)")
    parser.add_argument("--hot", type=int, default=10000, metavar="N",
                        help="the hot subject's inputs: its last 1,000 of N against inputs 1,001-2,000 "
                             "(default 10000; 0: skip)")
    parser.add_argument("--child", nargs=3, metavar=("WHAT", "N", "TOTAL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        what, n, total = args.child
        child(what, int(n), int(total))
        return 0
    missing = [tool for tool in ("valgrind", "callgrind_annotate") if shutil.which(tool) is None]
    if missing:
        print(f"{' and '.join(missing)} not found: install valgrind (Debian: apt-get install valgrind)",
              file=sys.stderr)
        return 2
    if args.hot and args.hot < 3000:
        parser.error("--hot: at least 3000 inputs (its last 1,000 are compared with inputs 1,001-2,000)")
    result: dict = {"counted": "instructions (valgrind callgrind), PYTHONHASHSEED=0"}
    runs: list[tuple[str, int, int]] = []  # (what, inputs counted, inputs generated)
    if args.stages:
        runs += [("stages", args.stages, 2 * args.stages), ("stages", 2 * args.stages, 2 * args.stages)]
    if args.new:
        runs += [("new", args.new, 2 * args.new), ("new", 2 * args.new, 2 * args.new)]
    if args.hot:
        runs += [("hot", n, args.hot) for n in (1000, 2000, args.hot - 1000, args.hot)]
    jobs = os.cpu_count() or 1
    print(f"counting {len(runs)} runs under callgrind, {jobs} at a time (30-60x slower than a plain run)",
          file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="creditstream-instructions-") as tmp, \
            ThreadPoolExecutor(max_workers=jobs) as pool:
        work = Path(tmp)
        # the counts do not depend on what else runs: the runs go side by side
        counted = dict(zip(runs, pool.map(lambda r: _count(r[0], r[1], r[2], work), runs)))
    if args.stages:
        n = args.stages
        result["stages"] = per_input(counted[("stages", n, 2 * n)], counted[("stages", 2 * n, 2 * n)], n)
        result["stages"]["inputs"] = n
    if args.new:
        n = args.new
        result["new_subjects"] = per_input(counted[("new", n, 2 * n)], counted[("new", 2 * n, 2 * n)], n)
        result["new_subjects"]["inputs"] = n
    if args.hot:
        n = args.hot
        result["hot_subject_early"] = per_input(counted[("hot", 1000, n)], counted[("hot", 2000, n)], 1000)
        result["hot_subject_late"] = per_input(counted[("hot", n - 1000, n)], counted[("hot", n, n)], 1000)
        result["hot_subject_inputs"] = n
    for part, label in (("stages", "the worker's stages in process, per input"),
                        ("new_subjects", "the same, every input about a new subject, per input"),
                        ("hot_subject_early", "hot subject, inputs 1,001-2,000, per input"),
                        ("hot_subject_late", f"hot subject, its last 1,000 of {args.hot:,} inputs, per input")):
        if part not in result:
            continue
        r = result[part]
        print(f"{label}: {r['instructions_per_input']:,} instructions; the rules core's largest (inclusive):")
        for name, v in r["rules_core_functions"].items():
            print(f"  {name:<40} {v:>10,}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
