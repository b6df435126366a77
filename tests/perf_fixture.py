"""Realistic ``perf script`` / tracefs text of damon_aggregated events, for format tests.

``perf script`` right-aligns the command in 16 columns, then pid, ``[cpu]`` and the timestamp
(seconds with µs); old kernels print no age field (9 fields instead of 10). tracefs prints
``comm-pid [cpu] flags timestamp: damon_aggregated: ...``. A few unrelated events are mixed
in, as a real trace of several events would have.
"""
from __future__ import annotations

import numpy as np

from damo.model import Record


def _timestamp(ns: int) -> str:
    return "%d.%06d" % (ns // 1_000_000_000, ns % 1_000_000_000 // 1000)


def perf_script_text(record: Record, with_age: bool = True, style: str = "perf", seed: int = 0,
                     noise: bool = True) -> str:
    """The trace text a kernel would have produced for ``record`` (end times must be whole µs)."""
    rng = np.random.default_rng(seed)
    lines = []
    pid = 4452
    for i in range(record.nr_snapshots):
        snap = record.snapshot(i)
        ts = _timestamp(snap.end_ns)
        cpu = int(rng.integers(0, 4))
        if style == "perf":
            prefix = "%16s %6d [%03d] %s: damon:damon_aggregated: target_id=%d nr_regions=%d " % (
                "kdamond.0", pid, cpu, ts, snap.target_id, snap.nr_regions)
        else:
            prefix = "%16s-%-7d [%03d] ..... %12s: damon_aggregated: target_id=%d nr_regions=%d " % (
                "kdamond.0", pid, cpu, ts, snap.target_id, snap.nr_regions)
        for s, e, nr, age in zip(snap.start.tolist(), snap.end.tolist(), snap.nr_accesses.tolist(),
                                 snap.age.tolist()):
            fields = "%d-%d: %d" % (s, e, nr)
            lines.append(prefix + fields + (" %d" % age if with_age else ""))
        if noise and rng.random() < 0.2:
            lines.append("%16s %6d [%03d] %s: sched:sched_switch: prev_comm=kdamond.0 prev_pid=%d" % (
                "kdamond.0", pid, cpu, ts, pid))
    return "\n".join(lines) + "\n"
