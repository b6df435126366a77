"""What damo records beside the accesses (``--do_record``): memory footprints, VMAs, process stats.

Each sample is one entry of damo 3.4.3's sidecar JSON (``<out>.mem_footprint``, ``<out>.vmas``,
``<out>.proc_stats``), in the same shape, so the record writer can keep them inside a native
record and write damo's files for ``json_compressed``. damo samples once a second while it
records; so does ``SideSampler``. A process that is gone reads as damo reads it: zeros for
statm, no VMAs, no stat fields.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

from damo.model import MEMINFO_FIELDS, MEMINFO_KEYS, STATM_FIELDS

SIDE_KINDS = ("mem_footprint", "vmas", "proc_stats")      # --do_record values beside "access"
DO_RECORD_CHOICES = ("access", *SIDE_KINDS)
SAMPLE_SECONDS = 1.0            # damo samples every second


def read_statm(pid: int) -> list[int]:
    """The seven fields of /proc/PID/statm in pages; zeros for a process that is gone (as damo)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            fields = [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return [0] * len(STATM_FIELDS)
    return (fields + [0] * len(STATM_FIELDS))[:len(STATM_FIELDS)]


def read_meminfo(path: str = "/proc/meminfo") -> dict:
    """The /proc/meminfo fields damo keeps, in KiB (None for one the kernel lacks)."""
    values = dict.fromkeys(MEMINFO_FIELDS)
    with open(path, "rb") as f:
        for line in f:
            fields = line.split()
            key = MEMINFO_KEYS.get(fields[0].decode()) if fields else None
            if key:
                values[key] = int(fields[1])
    return values


def mem_footprint_entry(pids: Iterable[int], now: float, meminfo: dict | None = None) -> dict:
    """One ``.mem_footprint`` snapshot: each process's statm, then the system's (pid null)."""
    footprints = [{"pid": pid, "footprint": dict(zip(STATM_FIELDS, read_statm(pid)))} for pid in pids]
    footprints.append({"pid": None, "footprint": meminfo if meminfo is not None else read_meminfo()})
    return {"time": now, "footprints": footprints}


def read_vmas(pid: int) -> list[dict]:
    """/proc/PID/maps as damo keeps it: start, end and the line's last word (empty if gone)."""
    vmas = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                fields = line.split()
                start, _, end = fields[0].partition("-")
                vmas.append({"start": int(start, 16), "end": int(end, 16), "name": fields[-1]})
    except (OSError, ValueError, IndexError):
        return []
    return vmas


def vmas_entry(pids: Iterable[int], now: float) -> dict:
    return {"time": now, "procvmas": [{"pid": pid, "vmas": read_vmas(pid)} for pid in pids]}


def read_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat split on blanks, as damo keeps it (None if the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()
    except OSError:
        return None


def proc_stats_entry(pids: Iterable[int], now: float) -> dict:
    return {"time": now, "proc_stats": [{"fields": read_stat(pid)} for pid in pids]}


class SideSampler:
    """Samples the ``kinds`` of ``--do_record`` at most once a ``period`` into ``sink.append_side``.

    ``pids`` is asked at each sample, so targets that come and go are followed; ``kdamond_pid``
    heads the process stats, as in damo.
    """

    def __init__(self, sink, kinds: Iterable[str], pids: Callable[[], list[int]],
                 kdamond_pid: int | None = None, clock: Callable[[], float] = time.time,
                 period: float = SAMPLE_SECONDS):
        self.sink = sink
        self.kinds = [k for k in SIDE_KINDS if k in set(kinds)]
        self.pids = pids
        self.kdamond_pid = kdamond_pid
        self.clock = clock
        self.period = period
        self.next_time: float | None = None

    def maybe_sample(self) -> bool:
        """Take a sample if one is due; whether one was taken."""
        if not self.kinds:
            return False
        now = self.clock()
        if self.next_time is not None and now < self.next_time:
            return False
        self.next_time = now + self.period
        self.sample(now)
        return True

    def sample(self, now: float) -> None:
        pids = list(self.pids())
        if "mem_footprint" in self.kinds:
            self.sink.append_side("mem_footprint", mem_footprint_entry(pids, now))
        if "vmas" in self.kinds:
            self.sink.append_side("vmas", vmas_entry(pids, now))
        if "proc_stats" in self.kinds:
            stat_pids = ([self.kdamond_pid] if self.kdamond_pid and self.kdamond_pid > 0 else []) + pids
            self.sink.append_side("proc_stats", proc_stats_entry(stat_pids, now))
