"""Operations killed with SIGKILL half-way and run again: nothing is lost, nothing multiplied.

* ``creditstream dlq redrive --reason ...`` killed mid-way, then rerun: every dead letter is
  re-driven, each recorded once in the audit hash; the rerun re-drives neither the ones done before
  the kill nor the copies that failed again (idempotent by original position); at most the one
  in flight at the kill went out twice, and the pipeline drops such a re-send as a duplicate.
* ``creditstream replay`` killed mid-way, then rerun: the rerun builds a complete generation equal
  to the live state (``--verify``); the killed one stays ``running`` only until its alive key
  expires, after which the next replay marks it abandoned (tests/integration/test_replay.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from sinks.keys import Keys
from streams import samples
from streams.samples import sample_event, schema_of
from streams.synthetic import uscc as synthetic_uscc
from tests.conftest import eventually
from tests.workers import run_to_end

pytestmark = pytest.mark.integration

PENALTY = schema_of("penalty")


def _env(settings) -> dict:
    env = dict(os.environ)
    for name in ("broker_url", "broker_kind", "redis_url", "topic_prefix", "namespace", "run_dir",
                 "session_timeout_ms", "pseudonym_key"):
        value = getattr(settings, name, None)
        if value is not None:
            env[f"CREDITSTREAM_{name.upper()}"] = str(value)
    env.pop("CREDITSTREAM_SETTINGS", None)
    env["CREDITSTREAM_LOG_FORMAT"] = "json"
    return env


def _start(settings, *argv) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "creditstream.cli", *argv], env=_env(settings),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


async def _run(settings, *argv, timeout: float = 120) -> tuple[int, str, str]:
    """Run a command to its end without blocking this process's event loop (the test's pipeline
    runs in it: a blocked loop misses its consumer-group heartbeats)."""
    code, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", *argv], env=_env(settings),
                                      timeout=timeout)
    return code, out.decode(), err.decode()


def _json(out: str):
    """A command's ``--json`` answer; if it does not parse, the failure shows the text around the
    fault (a CI run once got an answer that broke at char 196,608, exactly 3 x 64 KiB)."""
    try:
        return orjson.loads(out)
    except orjson.JSONDecodeError as exc:
        at = exc.pos
        raise AssertionError(f"not JSON ({exc}); {len(out)} chars; around the fault: "
                             f"{out[max(at - 300, 0):at + 300]!r}") from None


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux)."""
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def _kill_when(proc: subprocess.Popen, ready, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        if await ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never reached the point to kill it")


async def test_a_killed_redrive_rerun_redrives_each_dead_letter_once(pipeline, department, settings, redis):
    total = 400
    for n in range(total):
        await department.send(PENALTY, sample_event("penalty", decision_doc_no=f"郑市监罚〔2024〕{9000 + n}号",
                                                    fine_amount=samples.Decimal("-1")))
    from ops.dlq import list_dead_letters

    async def all_dead():
        letters = await list_dead_letters(settings, reason="negative-amount")
        return letters if len(letters) >= total else None

    originals = {d["ref"] for d in await eventually(all_dead, timeout=60)}
    audit = Keys(settings.namespace).dlq_redriven

    async def some_redriven():
        return 20 <= await redis.hlen(audit) < total - 20

    # one at a time: sent, its acknowledgement awaited and recorded (default 500: over at once). With 5
    # at a time, a CI run under load saw all 400 re-driven before the kill ("finished before it could
    # be killed"; likely while this test's loop was busy with the pipeline applying the re-driven inputs)
    proc = _start(settings, "dlq", "redrive", "--reason", "negative-amount", "--window", "1")
    await _kill_when(proc, some_redriven)
    done_before = {k.decode() for k in await redis.hkeys(audit)}
    assert 0 < len(done_before) < total

    code, out, err = await _run(settings, "dlq", "redrive", "--reason", "negative-amount", "--json")
    assert code == 0, err
    report = _json(out)
    actions = {}
    for item in report["items"]:
        actions.setdefault(item["action"], set()).add(item["ref"])
    assert actions["redriven"] == originals - done_before  # the rest, and only the rest
    assert done_before <= actions["skipped"]  # done before the kill: skipped, not sent again

    entries = {k.decode(): orjson.loads(v) for k, v in (await redis.hgetall(audit)).items()}
    assert set(entries) == originals
    assert all("earlier" not in e for e in entries.values())  # each recorded once

    # what reached the source topic: one re-drive per original, plus at most the window in flight
    # when the redrive was killed (sent, not yet recorded)
    from ops.dlq import REDRIVEN_FROM_HEADER
    from streams import kafka

    by_original: dict[str, int] = {}
    async for batch in kafka.read_to_end(settings, department.topics.penalty):
        for msg in batch:
            origin = dict(msg.headers or ()).get(REDRIVEN_FROM_HEADER)
            if origin is not None:
                by_original[origin.decode()] = by_original.get(origin.decode(), 0) + 1
    assert len(by_original) == total
    assert sum(by_original.values()) - total <= 5, {k: v for k, v in by_original.items() if v > 1}

    # each fails again (the amount is still negative): a new dead letter per original (at least once)
    async def copies():
        letters = await list_dead_letters(settings, reason="negative-amount")
        again = {d["redriven_from"] for d in letters if d.get("redriven_from")}
        return again if len(again) >= total else None

    assert len(await eventually(copies, timeout=60)) == total

    code, out, err = await _run(settings, "dlq", "redrive", "--reason", "negative-amount", "--json")
    assert code == 0, err
    assert {i["action"] for i in _json(out)["items"]} == {"skipped"}  # a third run: nothing to do


async def test_a_killed_replay_rerun_builds_the_whole_state(pipeline, department, settings, redis):
    from ops.report import progress

    subjects = 300
    for n in range(subjects * 4):
        sid = samples.COMPANY_USCC if n % subjects == 0 else None
        fields = {"decision_doc_no": f"郑市监罚〔2025〕{n}号"}
        if sid is None:
            from streams.synthetic import uscc

            fields["uscc"] = uscc(20000 + n % subjects)
        await department.send(PENALTY, sample_event("penalty", **fields))

    async def processed():
        return await progress(settings) >= subjects * 4

    await eventually(processed, timeout=90)
    await pipeline.stop()  # the log is complete: the live state is what a replay must rebuild

    keys = Keys(settings.namespace)

    async def replaying():
        found = [k async for k in redis.scan_iter(match=keys.replay_pattern)]
        for key in found:
            generation = key.decode()[len(keys.replay_progress("")):]
            if await redis.hget(key, "status") == b"running" and await redis.exists(
                    Keys(settings.namespace, generation).subjects):
                return True
        return False

    proc = _start(settings, "replay")
    jobs: list[int] = []

    async def replaying_in_processes():
        if not await replaying():
            return False
        jobs[:] = _children(proc.pid)  # the replay's job processes (one per CPU, at most one per partition)
        return True

    await _kill_when(proc, replaying_in_processes)
    # its job processes end with it: nobody would read what they rebuild
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in jobs) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not [pid for pid in jobs if _alive(pid)], f"job processes {jobs} outlived the killed replay"
    [killed] = [k.decode()[len(keys.replay_progress("")):] async for k in redis.scan_iter(match=keys.replay_pattern)]
    assert await redis.hget(keys.replay_progress(killed), "status") == b"running"
    assert 0 < await redis.ttl(keys.replay_alive(killed)) <= 15  # expires: the next replay then marks it abandoned

    code, out, err = await _run(settings, "replay", "--verify")
    assert code == 0, out + err
    assert "verify: 0 differences with the live state" in out and "list-change ids identical" in out, out + err
    statuses = {k.decode(): await redis.hget(k, "status") async for k in redis.scan_iter(match=keys.replay_pattern)}
    assert statuses.pop(keys.replay_progress(killed)) == b"running"
    assert set(statuses.values()) == {b"complete"}


async def test_a_replay_whose_process_is_killed_stops_with_one_line(settings, redis):
    """Seen: a replay process killed with SIGKILL (what the kernel's out-of-memory killer sends, in a
    container too small for --jobs N) ended `creditstream replay` with the process pool's traceback,
    "BrokenProcessPool: A process in the process pool was terminated abruptly ...". It exits 1 with
    one line: which process ended and how, whether the OOM killer acted, what to run next; the
    generation is marked failed, and the rerun the line advises completes."""
    from streams import kafka

    # a subject-event log with partitions: the replay runs jobs. Each is killed as soon as it exists
    # (tests/unit/test_replay_process_died.py kills one at work in a pool of its own)
    await kafka.ensure_topics(settings)
    keys = Keys(settings.namespace)
    for attempt in range(4):
        proc = _start(settings, "replay", "--jobs", "2")
        deadline = time.monotonic() + 60
        jobs: list[int] = []
        while not jobs and time.monotonic() < deadline:  # its job processes, as soon as they exist
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            jobs = [pid for pid in _children(proc.pid) if b"spawn_main" in _cmdline(pid)]
            await asyncio.sleep(0.005)
        assert jobs, "no job process started"
        os.kill(jobs[0], signal.SIGKILL)
        out, err = (b.decode() for b in await asyncio.to_thread(proc.communicate, timeout=60))
        if proc.returncode == 0:  # done before the kill: again
            continue
        assert proc.returncode == 1, (attempt, proc.returncode, err[-3000:])
        assert "Traceback" not in err and "BrokenProcessPool" not in err, err[-3000:]
        [line] = [x for x in err.splitlines() if x.startswith("creditstream: ")]
        assert "stopped: one of its 2 processes ended before its part of the rebuild" in line, line
        assert f"pid {jobs[0]} killed by SIGKILL" in line, line
        assert "the generation is marked failed" in line and "run it again" in line, line
        [generation] = re.findall(r"generation '([^']+)'", line)
        progress = await redis.hgetall(keys.replay_progress(generation))
        assert progress[b"status"] == b"failed" and b"ReplayProcessDied" in progress[b"error"], progress
        break
    else:
        pytest.fail("every replay finished before its process could be killed")
    code, out, err = await _run(settings, "replay", "--jobs", "1")
    assert code == 0 and "replayed" in out, out + err


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


async def test_ctrl_c_on_a_replay_in_processes_ends_it_without_a_traceback(department, settings):
    """Seen: Ctrl-C on `creditstream replay --jobs 2` (the terminal's SIGINT reaches the command and
    its job processes) exited 130 but printed, about every other time, a traceback at interpreter exit
    ("Exception ignored in: <module 'threading'> ... OSError: [Errno 9] Bad file descriptor", the
    process pool's wake-up pipe) or "_GatheringFuture exception was never retrieved ...
    BrokenProcessPool". Ctrl-C ends it with status 130 and nothing after."""
    from streams import kafka

    await kafka.ensure_topics(settings)  # a subject-event log with partitions: the replay runs jobs
    for n in range(40):
        await department.send(PENALTY, sample_event("penalty", decision_doc_no=f"郑市监罚〔2025〕{n}号"))
    for attempt, wait_s in enumerate((0.2, 0.4, 0.6, 0.8, 1.0, 1.2)):
        proc = _start(settings, "replay", "--jobs", "2")
        deadline = time.monotonic() + 60
        err = b""
        while b"replay in processes" not in err and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            await asyncio.sleep(0.01)
            err += os.read(proc.stderr.fileno(), 65536) if _readable(proc.stderr) else b""
        await asyncio.sleep(wait_s)
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the command's whole process group
        out, rest = await asyncio.to_thread(proc.communicate, timeout=60)
        text = (err + rest).decode()
        if proc.returncode == 0:  # done before the signal
            continue
        assert proc.returncode in (130, -signal.SIGINT), (attempt, proc.returncode, text[-3000:])
        assert "Traceback" not in text and "never retrieved" not in text, (attempt, wait_s, text[-3000:])


def _readable(stream) -> bool:
    import select

    return bool(select.select([stream], [], [], 0)[0])


async def test_ctrl_c_on_produce_says_what_was_sent_and_where_to_go_on(settings, tmp_path):
    """Seen: Ctrl-C on `creditstream produce` of a large file exited 130 and printed nothing: not
    how many events had been sent, nor from which line to go on. It prints the report so far, the
    lines all sent and acknowledged, and the command that sends the rest."""
    import re

    from streams import kafka
    from streams.topics import Topics

    demo = [line for line in (Path(__file__).resolve().parents[2] / "data" / "demo" / "events.jsonl")
            .read_text(encoding="utf-8").splitlines() if '"raw"' not in line]
    lines = (demo * (60_000 // len(demo) + 1))[:60_000]
    big = tmp_path / "big.jsonl"
    big.write_text("\n".join(lines) + "\n", encoding="utf-8")
    penalty = Topics(settings).for_kind("penalty")

    # the first chunk (5,000 lines) acknowledged to the command: its penalties on the broker are not
    # enough (a CI run interrupted it there, before its acknowledgements were read: "sent 0"); the
    # second chunk's first penalties are, as a chunk is taken once the one before is acknowledged
    first_chunk = sum(1 for line in lines[:5000] if '"kind": "penalty"' in line)
    proc = _start(settings, "produce", str(big))
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
        try:
            ends = await kafka.log_ends(settings, penalty) if penalty in await kafka.existing_topics(settings) else {}
        except Exception:  # noqa: BLE001 - the topic being created
            ends = {}
        if sum(ends.values()) > first_chunk:
            break
        await asyncio.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = await asyncio.to_thread(proc.communicate, timeout=60)
    out, err = out.decode(), err.decode()
    assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, out, err)
    assert "Traceback" not in err, err
    assert f"{big}: interrupted: sent" in out, (out, err)
    [resume] = re.findall(rf"to go on: tail -n \+(\d+) {re.escape(str(big))} \| creditstream produce -", out)
    done = int(resume) - 1
    assert 5000 <= done < len(lines), out
    sent_penalties = sum(1 for line in lines[:done] if '"kind": "penalty"' in line)
    assert sum((await kafka.log_ends(settings, penalty)).values()) >= sent_penalties


async def test_ctrl_c_on_a_replay_in_one_process_stops_it_and_says_so(pipeline, department, settings, redis):
    """Seen: Ctrl-C on `creditstream replay --jobs 1` in the middle of its rebuild was swallowed on
    the way (asyncio.run cancels the command's task; something below took the cancellation), and the
    replay ran to its end and exited 0. It stops at its next batch, exits 130, says what became of
    the generation (marked failed, never switched to)."""
    from ops.report import progress

    total = 1200
    for n in range(total):
        await department.send(PENALTY, sample_event("penalty", decision_doc_no=f"郑市监罚〔2026〕{n}号",
                                                    uscc=synthetic_uscc(30000 + n % 400)))

    async def processed():
        return await progress(settings) >= total

    await eventually(processed, timeout=90)
    await pipeline.stop()
    keys = Keys(settings.namespace)
    proc = subprocess.Popen([sys.executable, "-m", "creditstream.cli", "replay", "--jobs", "1"],
                            env={**_env(settings), "CREDITSTREAM_REPLAY_BATCH": "5"},  # many batches
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    # the whole rebuild takes ~0.2 s (compiled core): the replay is frozen (SIGSTOP) as soon as its
    # first batch is counted, so that the Ctrl-C lands while batches remain, whatever the machine's
    # load (a CI run sent it after the end: the test then judged nothing). One SCAN call (count) is
    # quick; the default count of 10 took a round trip per 10 of the live state's keys
    generation, applied = None, 0
    deadline = time.monotonic() + 60
    while generation is None and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        async for key in redis.scan_iter(match=keys.replay_pattern, count=100_000):
            if int(await redis.hget(key, "applied") or 0) > 0:
                os.killpg(proc.pid, signal.SIGSTOP)
                generation = key.decode()[len(keys.replay_progress("")):]
                applied = int(await redis.hget(key, "applied") or 0)
        await asyncio.sleep(0.005)
    assert generation is not None, "the rebuild never began"
    assert applied < total, f"the replay applied all {total} inputs before it could be frozen: give it more"
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C, pending until it runs again
    os.killpg(proc.pid, signal.SIGCONT)
    out, err = (b.decode() for b in await asyncio.to_thread(proc.communicate, timeout=60))
    assert proc.returncode == 130, (proc.returncode, out, err[-3000:])
    assert "replayed" not in out and "Traceback" not in err, (out, err[-3000:])
    assert "creditstream: replay interrupted: nothing was switched to" in err, err[-3000:]
    progress_now = await redis.hgetall(keys.replay_progress(generation))
    assert progress_now[b"status"] == b"failed", progress_now
    assert int(progress_now[b"applied"]) < total


@pytest.mark.kafka_only
async def test_a_line_the_broker_refuses_is_reported_and_the_run_goes_on(settings, tmp_path):
    """Seen (an audit from a department's side, Apache Kafka): a line stamped two hours ahead (the
    broker's message.timestamp.after.max.ms is 1 hour) ended `creditstream produce` with aiokafka's
    InvalidTimestampError traceback; the lines of its partition's batch were lost without a word, and
    no report said which lines to send again. The broker's refusal is the lines' own: reported by line
    number, the others sent, exit 1."""
    import datetime as dt

    demo = Path(__file__).resolve().parents[2] / "data" / "demo" / "events.jsonl"
    lines = demo.read_text(encoding="utf-8").splitlines()[:3]
    ahead = json.loads(lines[1])
    ahead["timestamp"] = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    path = tmp_path / "ahead.jsonl"
    path.write_text("\n".join([lines[0], json.dumps(ahead, ensure_ascii=False), lines[2]]) + "\n", encoding="utf-8")
    code, out, err = await _run(settings, "produce", str(path))
    assert code == 1, (code, out, err)
    assert "Traceback" not in err and "never retrieved" not in err, err[-2000:]
    assert "refused line 2: refused by the broker: InvalidTimestampError" in out, out
    [summary] = [x for x in out.splitlines() if x.startswith(str(path))]
    sent = int(re.search(r"sent (\d+) event", summary).group(1))
    assert sent >= 1 and f"refused {3 - sent}" in summary, summary  # the others of its batch are refused with it
