"""creditstream.cli: a command's answer reaches its reader whole, even when the pipe behind standard
output was left non-blocking (uvloop does that to descriptors it watches; Python 3.11's buffered
writer then drops, with exit status 0, what the pipe cannot take at once: a CI run got a
``dlq redrive --json`` answer cut at 65,536 bytes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

ANSWER = 300_000  # bytes: several times a pipe's 64 KiB

# The child runs the CLI's entry point (which must install the guard), then writes a long answer,
# as a command does after its event loop has ended.
def _after_main(stream: str) -> str:
    return textwrap.dedent(f"""
        import sys
        from creditstream import cli
        cli.main(["config", "check"])  # its exit status does not matter here
        sys.{stream}.write("x" * {ANSWER} + "\\n")
        sys.{stream}.flush()
    """)


def _without_guard(stream: str) -> str:
    return textwrap.dedent(f"""
        import sys
        sys.{stream}.write("x" * {ANSWER} + "\\n")
        sys.{stream}.flush()
    """)


def _read_slowly(code: str, stream: str = "stdout") -> tuple[int, bytes]:
    """Run ``code`` with ``stream`` a non-blocking pipe whose reader starts late."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # the flag belongs to the pipe: the child shares it
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITSTREAM_")}
    pipes = {"stdout": write_end, "stderr": subprocess.DEVNULL} if stream == "stdout" else \
        {"stdout": subprocess.DEVNULL, "stderr": write_end}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, **pipes)
    os.close(write_end)
    time.sleep(1.0)  # the child fills the pipe and would block
    data = bytearray()
    while chunk := os.read(read_end, 1 << 16):
        data += chunk
    os.close(read_end)
    return child.wait(timeout=60), bytes(data)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_long_answer_arrives_whole_through_a_non_blocking_pipe(stream):
    _, data = _read_slowly(_after_main(stream), stream)
    assert data.endswith(b"\n" + b"x" * ANSWER + b"\n"), f"{len(data)} bytes"


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="the loss is Python's; a later Python may not have it")
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_without_the_guard_the_same_answer_is_cut(stream):
    """The condition the guard is for: the same write, without the CLI, loses its tail."""
    _, data = _read_slowly(_without_guard(stream), stream)
    assert len(data) < ANSWER


@pytest.mark.parametrize("items", [[], [{"ref": "0:1", "target": {"topic": "t", "offset": 3}, "note": "中文"}],
                                   [{"a": 1}, {"b": [1, 2], "c": None}]])
def test_items_printed_one_by_one_read_as_the_answer_printed_whole(items, capsys):
    """`dlq redrive --json` prints each letter once its chunk is done, never holding them all; its
    answer is the very text the whole report printed at once was."""
    from creditstream.cli import _JsonItems, _print_json

    for head in ({"dry_run": False}, None):  # dlq redrive's object, dlq list's list
        _print_json({**head, "items": items} if head is not None else items)
        whole = capsys.readouterr().out
        out = _JsonItems(head)
        for item in items:
            out.add(item)
        out.end()
        assert capsys.readouterr().out == whole
