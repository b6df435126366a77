"""What damo records beside the accesses (``--do_record``): memory footprints, VMAs, process stats.

Each sample is one entry of damo 3.4.3's sidecar JSON (``<out>.mem_footprint``, ``<out>.vmas``,
``<out>.proc_stats``), in the same shape, so the record writer can keep them inside a native
record and write damo's files for ``json_compressed``. damo samples once a second while it
records; so does ``SideSampler``. A process that is gone reads as damo reads it: zeros for
statm, no VMAs, no stat fields.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Iterable

from damo.formats.native import MAPS_TEXT, STAT_TEXT, VMAS_SAME
from damo.model import MEMINFO_FIELDS, MEMINFO_KEYS, STATM_FIELDS

SIDE_KINDS = ("mem_footprint", "vmas", "proc_stats")      # --do_record values beside "access"
DO_RECORD_CHOICES = ("access", *SIDE_KINDS)
SAMPLE_SECONDS = 1.0            # damo samples every second
# /proc/PID/maps costs the kernel about 0.25 ms per 200 mappings to print, 2.5% of a CPU for 100
# processes a second: a process's maps are read again only when its size (statm) changed, and
# at least this often; whenever they did not change, they are recorded as unchanged (VMAS_SAME).
VMAS_REFRESH_SECONDS = 10.0
READ_BYTES = 1 << 16


def read_bytes(path: str) -> bytes | None:
    """A /proc file's content (unbuffered: a third of open()'s cost), None if it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, READ_BYTES):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_statm(pid: int) -> list[int]:
    """The seven fields of /proc/PID/statm in pages; zeros for a process that is gone (as damo)."""
    data = read_bytes(f"/proc/{pid}/statm")
    try:
        fields = [int(x) for x in data.split()] if data else []
    except ValueError:
        fields = []
    if not fields:
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
    """One ``.mem_footprint`` snapshot: each process's statm, then the system's (pid null). A
    process's footprint is the statm list (STATM_FIELDS order), which is cheaper to store than
    damo's object; damo.model.MemFootprints reads both."""
    footprints = [{"pid": pid, "footprint": read_statm(pid)} for pid in pids]
    footprints.append({"pid": None, "footprint": meminfo if meminfo is not None else read_meminfo()})
    return {"time": now, "footprints": footprints}


def read_text(path: str) -> str | None:
    data = read_bytes(path)
    return None if data is None else data.decode("utf-8", "replace")


def vmas_entry(pids: Iterable[int], now: float) -> dict:
    """One ``.vmas`` snapshot as the recorder keeps it: each pid's /proc/PID/maps text, which the
    reader turns into damo's VMA list (damo.formats.native.expand_vmas); parsing is not the
    recorder's job."""
    return {"time": now, "procvmas": [{"pid": pid, MAPS_TEXT: read_text(f"/proc/{pid}/maps") or ""} for pid in pids]}


def proc_stats_entry(pids: Iterable[int], now: float) -> dict:
    """One ``.proc_stats`` snapshot: each pid's /proc/PID/stat text (damo's split fields on reading)."""
    return {"time": now, "proc_stats": [{STAT_TEXT: read_text(f"/proc/{pid}/stat")} for pid in pids]}


class SideSampler:
    """Samples the ``kinds`` of ``--do_record`` at most once a ``period`` into ``sink.append_side``.

    ``pids`` is asked at each sample, so targets that come and go are followed; ``kdamond_pid``
    heads the process stats, as in damo.
    """

    def __init__(self, sink, kinds: Iterable[str], pids: Callable[[], list[int]],
                 kdamond_pid: int | None = None, clock: Callable[[], float] = time.time,
                 period: float = SAMPLE_SECONDS, vmas_refresh: float = VMAS_REFRESH_SECONDS):
        self.sink = sink
        self.kinds = [k for k in SIDE_KINDS if k in set(kinds)]
        self.pids = pids
        self.kdamond_pid = kdamond_pid
        self.clock = clock
        self.period = period
        self.next_time: float | None = None
        self.vmas_refresh = vmas_refresh
        # pid -> (statm size, when its maps were read, hash of that text)
        self._maps_read: dict[int, tuple[int, float, int]] = {}

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
        footprint = None
        if "mem_footprint" in self.kinds:
            footprint = mem_footprint_entry(pids, now)
            self.sink.append_side("mem_footprint", footprint)
        if "vmas" in self.kinds:
            sizes = ([fp["footprint"][0] for fp in footprint["footprints"][:len(pids)]] if footprint
                     else [read_statm(pid)[0] for pid in pids])
            self.sink.append_side("vmas", {"time": now, "procvmas": [self._vmas(pid, size, now)
                                                                       for pid, size in zip(pids, sizes)]})
        if "proc_stats" in self.kinds:
            stat_pids = ([self.kdamond_pid] if self.kdamond_pid and self.kdamond_pid > 0 else []) + pids
            self.sink.append_side("proc_stats", proc_stats_entry(stat_pids, now))

    def _vmas(self, pid: int, size: int, now: float) -> dict:
        """The pid's procvmas entry: its maps if they may have changed, else VMAS_SAME."""
        last = self._maps_read.get(pid)
        if last is not None and last[0] == size and now - last[1] < self.vmas_refresh:
            return {"pid": pid, VMAS_SAME: True}
        text = read_text(f"/proc/{pid}/maps") or ""
        digest = hash(text)
        self._maps_read[pid] = (size, now, digest)
        if last is not None and last[2] == digest:
            return {"pid": pid, VMAS_SAME: True}
        return {"pid": pid, MAPS_TEXT: text}
