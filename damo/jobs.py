"""When a report may use a second process (fork) beside this one.

The native reader and the heatmap split their work with a forked child on big records. A fork is
worth it, and safe, only with a second CPU to run on and no other thread in this process (a fork
copies one thread; a lock that another thread held would stay held in the child forever).
``DAMO_JOBS=1`` keeps every report in one process.
"""
from __future__ import annotations

import os
import threading

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
