"""``creditstream worker`` that stops itself (SIGSTOP) at one chosen instant: right after the subject
agent's fenced state write (sinks/redis_state.py ``SubjectStateSink.commit``, the MULTI/EXEC) and
before the batch's list changes are produced, the first time the file ``PAUSE_FLAG`` names exists
(it is removed). What an operator's SIGSTOP, a frozen VM or a long GC pause landing at that instant
does; a pause anywhere else is what tests/reliability/test_fencing.py does with signals alone.
Run as ``python -m tests.reliability.paused_worker [worker args]``."""

from __future__ import annotations

import os
import signal
import sys

from sinks import redis_state

_commit = redis_state.SubjectStateSink.commit


async def _commit_then_pause(self, *args, **kwargs):
    written = await _commit(self, *args, **kwargs)
    flag = os.environ.get("PAUSE_FLAG", "")
    if written and flag and os.path.exists(flag):
        os.unlink(flag)
        print("PAUSED after the state write, before producing", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
        print("RESUMED: producing the batch's messages", file=sys.stderr, flush=True)
    return written


redis_state.SubjectStateSink.commit = _commit_then_pause  # type: ignore[method-assign]

if __name__ == "__main__":
    from creditstream.cli import main

    sys.exit(main(["worker", *sys.argv[1:]]))
