"""The event loop the processes run on: uvloop (libuv) by default, or asyncio's own.

Set once, before a command creates its loop (creditstream/cli.py, for every command that reads the
settings; each process of a replay for itself): ``asyncio.run`` and the Faust worker then create
loops of that kind. ``event_loop = "uvloop"`` (the default) uses uvloop when it is installed (a
dependency on Linux and macOS) and falls back to asyncio's loop, with one warning, where it is not;
``"asyncio"`` always uses asyncio's. Measured (docs/performance.md, twelfth session, `make
bench-checks` alternated): the check API's process spends 0.89 ms of CPU per answer on uvloop
against 1.09 ms on asyncio's loop (medians of 4); the worker's throughput is the same on both.
"""

from __future__ import annotations

import asyncio
import warnings

EVENT_LOOPS = ("uvloop", "asyncio")


def problem(kind: str) -> str | None:
    """What is wrong with ``kind`` as the setting ``event_loop`` (None: nothing), in the words of
    the settings' other problems."""
    return None if kind in EVENT_LOOPS else f"event_loop: {kind!r} is not uvloop or asyncio"


def install(kind: str) -> str:
    """Make ``kind`` (one of :data:`EVENT_LOOPS`) the loop that asyncio creates from now on, and
    return the kind in use: ``asyncio`` when uvloop was asked for but cannot be imported."""
    wrong = problem(kind)
    if wrong is not None:
        raise ValueError(wrong)
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            warnings.warn(f"event_loop = uvloop, but uvloop cannot be imported ({exc}): asyncio's own event "
                          f"loop runs (pip install uvloop, or set event_loop = asyncio)", RuntimeWarning,
                          stacklevel=2)
            asyncio.set_event_loop_policy(None)
            return "asyncio"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    asyncio.set_event_loop_policy(None)  # asyncio's default policy
    return "asyncio"


def running() -> str:
    """The kind of the running loop (``uvloop`` or ``asyncio``), for the start-up logs."""
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
