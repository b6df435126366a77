"""Wall time and peak RSS of one command, run in a fresh process.

Every heavy benchmark measurement goes through ``measure`` so that all figures are taken the same
way. The peak RSS comes from ``wait4`` on that very child: unlike
``getrusage(RUSAGE_CHILDREN)``, which keeps the largest child this process ever waited for, it
cannot be inflated by an earlier, bigger measurement. The kernel folds the peaks of the child's own
waited-for descendants in, so a launcher script that execs or waits for python is measured whole.

The command is not forked from this process directly: a forked child starts out with its parent's
resident pages, and Linux keeps that high-water mark across exec, so a benchmark that holds a big
record would see every command it measures "use" at least that much. A tiny launcher (python -S -I,
a few MiB) forks the command instead and reports the command's own wait4 figures.
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


def compile_sources() -> None:
    """Write the bytecode of this checkout's packages, once per process, before anything is timed.

    A user's installed damo runs from bytecode (pip compiles on install; an editable install
    writes it on the first run). With PYTHONDONTWRITEBYTECODE set, as on some CI machines and
    this project's, every timed command would compile each changed module from source again,
    15 ms for damo/heatmap.py alone, and the figures would measure the compiler.
    """
    global _compiled
    if _compiled:
        return
    import compileall

    for package in ("damo", "masim", "bench"):
        if (REPO / package).is_dir():
            compileall.compile_dir(str(REPO / package), quiet=1)
    _compiled = True


_compiled = False


def measure(argv: Sequence[str], *, cwd: str | os.PathLike | None = None, env: dict | None = None,
            timeout: float | None = None, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) -> dict:
    """Run ``argv`` and return ``{seconds, peak_rss_bytes, returncode, stderr_tail}``.

    ``stdout`` defaults to /dev/null so that printing a big report costs the command what it costs
    in a pipe, not what a pipe buffer in this process would. On a timeout the command is killed and
    ``returncode`` is None. ``stderr_tail`` holds the last characters of its stderr, for explaining
    a failure.
    """
    compile_sources()
    err_path = _scratch_file()
    report_r, report_w = os.pipe()
    try:
        with open(err_path, "w+b") as err:
            begin = time.perf_counter()
            launcher = [sys.executable, "-S", "-I", "-c", _LAUNCHER, str(report_w), *map(str, argv)]
            proc = subprocess.Popen(launcher, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=err,
                                    start_new_session=True, pass_fds=(report_w,))
            os.close(report_w)
            report_w = -1
            timed_out = threading.Event()
            timer = None
            if timeout is not None:
                timer = threading.Timer(timeout, _kill_group, (proc, timed_out))
                timer.start()
            try:
                _, launcher_status, _ = os.wait4(proc.pid, 0)
            finally:
                if timer is not None:
                    timer.cancel()
            seconds = time.perf_counter() - begin
            proc.returncode = os.waitstatus_to_exitcode(launcher_status)   # Popen must not wait again
            report = _read_all(report_r).split()
            err.seek(0)
            tail = err.read()[-STDERR_TAIL_CHARS:].decode(errors="replace")
    finally:
        os.close(report_r)
        if report_w >= 0:
            os.close(report_w)
        os.unlink(err_path)
    cpu_seconds = None
    if len(report) == 4:
        status, maxrss_kib, seconds = int(report[0]), int(report[1]), float(report[2])
        cpu_seconds = float(report[3])
        returncode = os.waitstatus_to_exitcode(status)
    else:                       # the launcher itself died (killed on timeout, or could not start)
        maxrss_kib, returncode = 0, proc.returncode
    return {
        "seconds": seconds,
        "peak_rss_bytes": maxrss_kib * 1024,     # Linux reports KiB
        "cpu_seconds": cpu_seconds,              # user + system: not inflated by other load
        "returncode": None if timed_out.is_set() else returncode,
        "stderr_tail": tail,
    }


# argv: report fd, then the command.
# Reports "<wait status> <ru_maxrss KiB> <seconds> <user + system CPU seconds>" on the fd.
_LAUNCHER = """
import os, sys, time
fd, argv = int(sys.argv[1]), sys.argv[2:]
begin = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.close(fd)
    try:
        os.execvp(argv[0], argv)
    except OSError as err:
        os.write(2, ("cannot run %s: %s\\n" % (argv[0], err)).encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
os.write(fd, ("%d %d %r %r" % (status, usage.ru_maxrss, time.perf_counter() - begin,
                                usage.ru_utime + usage.ru_stime)).encode())
"""


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


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
