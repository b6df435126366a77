"""Processes as DAMON targets: a task's descendants, whether it lives, its command line (read-only /proc).

Children are found through ``/proc/PID/task/TID/children`` (CONFIG_PROC_CHILDREN, in every
distribution kernel): one small read per thread of each watched process, so a poll every half
second costs microseconds. damo 3.4.3 runs ``ps --ppid`` once per watched process instead,
which forks and scans all of /proc each time; on a tree of 100 processes that is most of a
CPU. Where the file is missing, one scan of ``/proc/*/stat`` finds the children by parent pid.

A task that forks a child and exits before the next poll hands that child to init (or a
subreaper): it is not found then, and only the children of live watched tasks are.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

PROC = Path("/proc")


def process_alive(pid: int, proc: Path = PROC) -> bool:
    """Is ``pid`` a live process? A zombie (exited, not yet reaped) is not: it has no memory to monitor."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself hold ')'.
    state = stat[stat.rfind(")") + 2:][:1]
    return state not in ("Z", "X", "x", "")


def _children_files(pid: int, proc: Path) -> list[Path]:
    try:
        return [t / "children" for t in (proc / str(pid) / "task").iterdir()]
    except OSError:
        return []


def children_of(pid: int, proc: Path = PROC) -> list[int] | None:
    """The children of every thread of ``pid``; None where the kernel has no ``children`` files."""
    files = _children_files(pid, proc)
    found: list[int] = []
    missing = 0
    for path in files:
        try:
            found += [int(x) for x in path.read_text().split()]
        except FileNotFoundError:
            missing += 1
        except OSError:
            continue          # the thread exited meanwhile
    if files and missing == len(files) and (proc / str(pid)).exists():
        return None
    return found


def _children_by_scan(pids: set[int], proc: Path) -> dict[int, list[int]]:
    """Parent pid -> children, for ``pids``, from one pass over ``/proc/*/stat``."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        if ppid in pids:
            out.setdefault(ppid, []).append(int(entry.name))
    return out


def children(pid: int, proc: Path = PROC) -> list[int]:
    """The children of ``pid``, from its ``children`` files or, where the kernel has none, a scan."""
    kids = children_of(pid, proc)
    return kids if kids is not None else _children_by_scan({pid}, proc).get(pid, [])


def descendants(roots: Iterable[int], proc: Path = PROC, known: set[int] | frozenset = frozenset()) -> list[int]:
    """Every live descendant of ``roots`` (children of children too), parents before children;
    those in ``known`` are the caller's to check for life (it already does), not read again."""
    seen: set[int] = set(roots)
    order: list[int] = []
    frontier = list(seen)
    while frontier:
        found: list[int] = []
        scan = None
        for pid in frontier:
            kids = children_of(pid, proc)
            if kids is None:
                if scan is None:
                    scan = _children_by_scan(set(frontier), proc)
                kids = scan.get(pid, [])
            found += [k for k in kids if k not in seen]
        found = sorted(set(found))
        seen.update(found)
        order += found
        frontier = found
    return [pid for pid in order if pid in known or process_alive(pid, proc)]


def command_line(pid: int, proc: Path = PROC, comm: bool = True) -> str:
    """``/proc/PID/cmdline`` as one line (words joined by spaces), or (``comm``) the ``comm`` name
    where it is empty: a kernel thread, or a task that has just exited."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    if words or not comm:
        return " ".join(words)
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""
