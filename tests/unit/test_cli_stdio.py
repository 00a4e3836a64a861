"""creditstream/cli.py ``complete_stdio``: the standard streams it wraps (writes that always complete)
still say what they are. On a terminal, a command shows its progress bars and console logs; that is
decided by ``sys.stderr.isatty()``, so the wrapper must answer it as the descriptor does."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

PROBE = ("import sys; from creditstream.cli import complete_stdio; before = sys.stderr.isatty(); "
         "complete_stdio(); print(before, sys.stderr.isatty(), sys.stdout.isatty())")


def test_a_terminal_is_still_a_terminal_after_the_streams_are_wrapped():
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], stdin=follower, stdout=subprocess.PIPE,
                              stderr=follower, timeout=60, check=True, text=True)
    finally:
        os.close(follower)
        os.close(leader)
    assert done.stdout.split() == ["True", "True", "False"]  # stderr a terminal, stdout a pipe


def test_a_pipe_is_still_not_a_terminal():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, timeout=60, check=True, text=True)
    assert done.stdout.split() == ["False", "False", "False"]
