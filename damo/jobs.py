"""When a report may use a second process (fork) beside this one.

The heatmap draws half of a big map's rows in a forked child (damo.heatmap). A fork is
worth it, and safe, only with a second CPU to run on and no other thread in this process (a fork
copies one thread; a lock that another thread held would stay held in the child forever).
``DAMO_JOBS=1`` keeps every report in one process.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Callable

JOBS_ENV = "DAMO_JOBS"


def may_fork() -> bool:
    """Whether a second process may take half of a big job now."""
    if not hasattr(os, "fork") or os.environ.get(JOBS_ENV, "") == "1":
        return False
    if threading.active_count() > 1:
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except (AttributeError, OSError):
        return False


def half_in_child(child: Callable[[], bytes], here: Callable[[], None]) -> bytes | None:
    """Run ``child`` in a forked child and ``here`` in this process at the same time; the bytes
    ``child`` returned, or None if it failed in any way (the caller then does its part itself).

    The child leaves by os._exit, so nothing of this process's (buffered output, atexit) runs
    twice. If ``here`` raises (or Ctrl-C comes), the child is killed and reaped: it never
    outlives the call.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(rfd)
            view = memoryview(child())
            while view:
                view = view[os.write(wfd, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    reaped = False
    try:
        here()
        with os.fdopen(rfd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        reaped = True
        return payload if os.waitstatus_to_exitcode(status) == 0 else None
    finally:
        if not reaped:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
