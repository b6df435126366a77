"""Wall time and peak RSS of one command, run in a fresh process.

Every heavy benchmark measurement goes through ``measure`` so that all figures are taken the same
way. The peak RSS comes from ``wait4`` on that very child: unlike
``getrusage(RUSAGE_CHILDREN)``, which keeps the largest child this process ever waited for, it
cannot be inflated by an earlier, bigger measurement. The kernel folds the peaks of the child's own
waited-for descendants in, so a launcher script that execs or waits for python is measured whole.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
STDERR_TAIL_CHARS = 2000


def measure(argv: Sequence[str], *, cwd: str | os.PathLike | None = None, env: dict | None = None,
            timeout: float | None = None, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) -> dict:
    """Run ``argv`` and return ``{seconds, peak_rss_bytes, returncode, stderr_tail}``.

    ``stdout`` defaults to /dev/null so that printing a big report costs the command what it costs
    in a pipe, not what a pipe buffer in this process would. On a timeout the command is killed and
    ``returncode`` is None. ``stderr_tail`` holds the last characters of its stderr, for explaining
    a failure.
    """
    err_path = _scratch_file()
    try:
        with open(err_path, "w+b") as err:
            begin = time.perf_counter()
            proc = subprocess.Popen(list(map(str, argv)), cwd=cwd, env=env, stdin=stdin, stdout=stdout,
                                    stderr=err, start_new_session=True)
            timed_out = threading.Event()
            timer = None
            if timeout is not None:
                timer = threading.Timer(timeout, _kill_group, (proc, timed_out))
                timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                if timer is not None:
                    timer.cancel()
            seconds = time.perf_counter() - begin
            proc.returncode = os.waitstatus_to_exitcode(status)   # Popen must not wait again
            err.seek(0)
            tail = err.read()[-STDERR_TAIL_CHARS:].decode(errors="replace")
    finally:
        os.unlink(err_path)
    return {
        "seconds": seconds,
        "peak_rss_bytes": usage.ru_maxrss * 1024,     # Linux reports KiB
        "returncode": None if timed_out.is_set() else proc.returncode,
        "stderr_tail": tail,
    }


def python_argv(*args: str) -> list[str]:
    """``python ARGS`` with this interpreter, e.g. ``python_argv("-m", "damo", "report", "wss")``."""
    return [sys.executable, *args]


def repo_env(**extra: str) -> dict:
    """The environment for running this checkout's ``damo``/``masim`` packages as subprocesses."""
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{path}" if path else str(REPO), **extra)


def _kill_group(proc: subprocess.Popen, flag: threading.Event) -> None:
    flag.set()
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass


def _scratch_file() -> str:
    import tempfile

    fd, path = tempfile.mkstemp(prefix="bench-stderr-")
    os.close(fd)
    return path
