"""make test's passes and lanes (ops/test_passes.py): together the passes select what the two legs
of old selected, each test once per broker; the lanes run every pass once; the runner prints every
pass's report and exit status, fails when one fails, and stops every lane when it is stopped."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from _pytest.mark.expression import Expression

from ops import test_passes
from ops.test_passes import Pass, lanes, passes, redis_server_lanes, run

MARKS = ("integration", "reliability", "slow", "kafka", "browser", "tansu_only", "kafka_only")
ROOT = Path(__file__).resolve().parents[2]


def _selects(one: Pass, marks: set[str], in_unit: bool) -> bool:
    """Whether the pass's pytest arguments select a test of these marks in tests/unit (or not)."""
    argv = list(one.argv)
    expression = argv[len(argv) - 1 - argv[::-1].index("-m") + 1]  # pytest's -m (the last; python's comes first)
    folders = [a for a in argv if a.startswith("tests")]
    if "tests/unit" in folders and not in_unit:
        return False
    if "--ignore=tests/unit" in argv and in_unit:
        return False
    return Expression.compile(expression).evaluate(lambda name, **_: name in marks)


def _combinations():
    for n in range(len(MARKS) + 1):
        for marks in itertools.combinations(MARKS, n):
            for in_unit in (False, True):
                yield set(marks), in_unit


def test_the_passes_select_what_the_two_legs_did_each_test_once_per_broker():
    by_name = passes("python", [])
    tansu = [by_name[n] for n in ("tansu-unit", "tansu-integration", "tansu-reliability")]
    kafka = [by_name[n] for n in ("kafka-integration", "kafka-reliability")]
    checked = 0
    for marks, in_unit in _combinations():
        old_tansu = "slow" not in marks and "kafka" not in marks
        old_kafka = bool(marks & {"integration", "reliability"}) and not marks & {"slow", "browser"}
        assert sum(_selects(p, marks, in_unit) for p in tansu) == int(old_tansu), (marks, in_unit)
        assert sum(_selects(p, marks, in_unit) for p in kafka) == int(old_kafka), (marks, in_unit)
        assert _selects(by_name["pure-unit"], marks, in_unit) == (in_unit and "slow" not in marks)
        checked += 1
    assert checked == 2 ** (len(MARKS) + 1)


def test_the_check_tells_a_pass_that_selects_twice():
    """The partition check above fails when two passes overlap (here: reliability left in the
    integration pass)."""
    by_name = passes("python", [])
    wrong = Pass("x", "", tuple(a.replace(" and not reliability", "") for a in by_name["tansu-integration"].argv))
    assert _selects(wrong, {"reliability", "integration"}, False)
    assert _selects(by_name["tansu-reliability"], {"reliability", "integration"}, False)


def test_every_pass_runs_once_in_any_plan():
    by_name = passes("python", ["-x"], kafka_redis="/r/redis-server", require_browser=True)
    for kafka, serial in itertools.product((True, False), repeat=2):
        plan = lanes(by_name, kafka=kafka, serial=serial)
        names = [p.name for lane in plan for p in lane]
        expected = set(by_name) - (set() if kafka else {"kafka-integration", "kafka-reliability"})
        assert sorted(names) == sorted(expected)
        assert len(plan) == (1 if serial else 4 if kafka else 3)
    assert by_name["kafka-reliability"].env["CREDITSTREAM_REDIS_SERVER"] == "/r/redis-server"
    assert by_name["tansu-integration"].env["REQUIRE_BROWSER"] == "1"
    assert all(p.argv[-1] == "-x" for p in by_name.values())
    assert by_name["pure-unit"].env == {"CREDITSTREAM_PURE_PYTHON": "1"}


def _fake(name: str, code: str) -> Pass:
    return Pass(name, f"the {name} pass", (sys.executable, "-c", code))


def test_the_reports_follow_the_live_lane_and_the_last_line_gives_every_status(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    plan = [[_fake("a", "print('a says')")],
            [_fake("b", "print('b says')"),
             _fake("c", "import sys; print('c fails'); print('FAILED tests/t.py::test_x - boom'); sys.exit(1)")],
            [_fake("d", "print('d says')")]]
    assert run(plan, narrowed=False) == 1
    out = capfd.readouterr().out
    assert out.index("a says") < out.index("== b (ran beside a)") < out.index("b says") < out.index("c fails")
    assert out.index("c fails") < out.index("d says")
    lines = out.strip().splitlines()
    assert lines[-3:-1] == ["make test: c failed:", "  FAILED tests/t.py::test_x - boom"]
    assert lines[-1].startswith("make test: exit status by pass: a 0 (")
    assert "b 0 (" in lines[-1] and "c 1 (" in lines[-1] and "d 0 (" in lines[-1]
    assert (tmp_path / ".run" / "test-b.log").read_text() == "b says\n"
    assert (tmp_path / ".run" / "test-a.log").read_text() == "a says\n"  # the live pass's, kept too


def test_all_passing_is_0_and_none_selected_counts_only_when_narrowed(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    ok = [[_fake("a", "pass")], [_fake("b", "pass")]]
    assert run(ok, narrowed=False) == 0
    none = [[_fake("a", "pass")], [_fake("b", f"import sys; sys.exit({test_passes.NONE_SELECTED})")]]
    assert run(none, narrowed=False) == 1
    assert run(none, narrowed=True) == 0
    capfd.readouterr()
    live_fails = [[_fake("a", "import sys; print('ERROR tests/t.py::test_y - setup'); sys.exit(1)")],
                  [_fake("b", "pass")]]
    assert run(live_fails, narrowed=False) == 1
    out = capfd.readouterr().out
    assert "make test: a failed:\n  ERROR tests/t.py::test_y - setup\n" in out


def test_a_stopped_run_stops_every_lane_and_starts_no_other_pass(tmp_path):
    """SIGTERM to the runner (a CI runner's stop; Ctrl-C does the same): the live pass and the lanes'
    passes get SIGTERM, the passes after them never start, and the runner exits 130."""
    script = tmp_path / "runner.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from ops.test_passes import Pass, run
        def sleeper(name):
            code = ("import os, time, pathlib; pathlib.Path('{tmp_path}/' + {{!r}} + '.pid').write_text(str(os.getpid()));"
                    " time.sleep(120)").format(name)
            return Pass(name, name, (sys.executable, "-c", code))
        never = Pass("never", "never", (sys.executable, "-c", "open('{tmp_path}/never', 'w')"))
        sys.exit(run([[sleeper("live")], [sleeper("lane"), never]], narrowed=False))
    """))
    runner = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    pids = [tmp_path / "live.pid", tmp_path / "lane.pid"]
    deadline = time.monotonic() + 30
    while not all(p.exists() and p.read_text() for p in pids):
        assert time.monotonic() < deadline and runner.poll() is None
        time.sleep(0.05)
    runner.send_signal(signal.SIGTERM)
    out, _ = runner.communicate(timeout=30)
    assert runner.returncode == 130
    assert "live interrupted" in out and "never not run" in out
    assert not (tmp_path / "never").exists()
    for pid in (int(p.read_text()) for p in pids):
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
            assert time.monotonic() < deadline, f"pass {pid} still running"
            time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rfind(")") + 2]


def test_make_test_runs_the_passes_through_the_runner():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\ntest: "):makefile.index("\n\n", makefile.index("\ntest: "))]
    assert "-m ops.test_passes" in recipe and "-- $(PYTEST_ARGS)" in recipe


def test_make_test_redis_selects_what_it_did_on_each_server_once():
    """make test-redis ran ``-m "(integration or reliability) and not slow and not kafka and not
    browser"`` on each server; its two passes per server select that, each test once."""
    plan = redis_server_lanes("python", [], {"redis-8.2": "/a/redis-server", "valkey-9.1": "/b/valkey-server"})
    assert [p.name for lane in plan for p in lane] == ["redis-8.2-integration", "redis-8.2-reliability",
                                                       "valkey-9.1-integration", "valkey-9.1-reliability"]
    assert all(len(lane) == 1 for lane in plan)
    for server, binary in (("redis-8.2", "/a/redis-server"), ("valkey-9.1", "/b/valkey-server")):
        mine = [p for lane in plan for p in lane if p.name.startswith(server)]
        assert all(p.env["CREDITSTREAM_REDIS_SERVER"] == p.env["CREDITSTREAM_TEST_REDIS_SERVER"] == binary
                   for p in mine)
        assert len({p.env.get("RELIABILITY_RESULTS") for p in mine}) == 2  # no two passes share a results file
        for marks, in_unit in _combinations():
            old = bool(marks & {"integration", "reliability"}) and not marks & {"slow", "kafka", "browser"}
            assert sum(_selects(p, marks, in_unit) for p in mine) == int(old), (server, marks)
    assert len(redis_server_lanes("python", [], {"x": "/x"}, serial=True)) == 1


def test_a_process_a_live_pass_left_holding_its_output_does_not_hold_the_run(tmp_path, monkeypatch, capfd):
    """The live pass's output is read through a pipe: a process it left running with that pipe as
    its output (a server a test session failed to stop) kept the pipe open, and the run waited for
    it. Now the copy is waited for ``COPY_GRACE_S`` after the pass ends."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(test_passes, "COPY_GRACE_S", 0.5)
    left = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']);"
            " open('left.pid', 'w').write(str(p.pid)); print('pass done')")
    started = time.monotonic()
    try:
        assert run([[_fake("a", left)]], narrowed=False) == 0
        assert time.monotonic() - started < 10
        assert "pass done" in capfd.readouterr().out
    finally:
        if (tmp_path / "left.pid").exists():
            os.kill(int((tmp_path / "left.pid").read_text()), signal.SIGKILL)
