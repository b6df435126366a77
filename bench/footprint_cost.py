"""CPU cost of ``--do_record mem_footprint,vmas,proc_stats`` with a 100-process tree.

A Python parent (numpy imported, so each process has a realistic ~100 mappings) forks 99 idle
children; the sampler (damo.sources.proc_sampler.SideSampler) then takes samples of all 100
pids into a native record writer, whose flush timer runs on a virtual clock of one second per
sample, as at damo's rate of one sample a second. The cost is the recorder's CPU time
(process_time: user + system) per sample, i.e. the share of one CPU at one sample a second, in
the steady state: the first sample (every process's maps read and stored) is timed apart.

    python -m bench.footprint_cost [--quick]      (or as part of: python -m bench)
"""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

NR_PROCESSES = 100
GOAL_CPU_SHARE = 0.01          # at most 1% of one CPU at one sample a second


def spawn_tree(nr: int) -> list[int]:
    """``nr`` processes: this one's fork parent and ``nr - 1`` children, all idle; their pids."""
    import numpy  # noqa: F401  (the mappings a real Python workload has)

    pids = []
    for _ in range(nr):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            while True:
                time.sleep(3600)
        pids.append(pid)
    return pids


def reap(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def measure(nr_samples: int, kinds=("mem_footprint", "vmas", "proc_stats")) -> dict:
    from damo.formats.native import Writer
    from damo.model import RecordMeta
    from damo.recording import SnapshotSink
    from damo.sources.proc_sampler import SideSampler

    pids = spawn_tree(NR_PROCESSES)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "fp.data"
            writer = Writer(path, RecordMeta())
            virtual = [0.0]
            writer.set_clock(lambda: virtual[0])
            sink = SnapshotSink(writer, progress=None)
            sampler = SideSampler(sink, kinds, lambda: pids, kdamond_pid=os.getpid(), clock=lambda: virtual[0])
            # The first sample reads every process's maps and its chunk carries them: a start-up
            # cost, measured apart from the steady state.
            start_cpu = time.process_time()
            sampler.maybe_sample()
            writer.flush()
            start_cost = time.process_time() - start_cpu
            maps_lines = sum(1 for _ in open(f"/proc/{pids[0]}/maps"))
            load_before = os.getloadavg()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(nr_samples):
                virtual[0] += 1.0
                sampler.maybe_sample()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            writer.close()
            size = path.stat().st_size
    finally:
        reap(pids)
    per_sample = cpu / nr_samples
    return {"processes": NR_PROCESSES, "kinds": ",".join(kinds), "maps_lines_per_process": maps_lines,
            "samples": nr_samples, "first_sample_cpu_ms": round(start_cost * 1000, 1),
            "cpu_ms_per_sample": round(per_sample * 1000, 3),
            "wall_ms_per_sample": round(wall / nr_samples * 1000, 3),
            "cpu_share_at_1_sample_per_s": round(per_sample, 5),
            "record_bytes_per_sample": round(size / (nr_samples + 1)),
            "load_average_before": " ".join(f"{v:.1f}" for v in load_before)}


def run(quick: bool = False) -> dict:
    nr = 5 if quick else 60
    every = measure(nr)
    footprint_only = measure(nr, ("mem_footprint",))
    share = every["cpu_share_at_1_sample_per_s"]
    return {
        "headline": [{"figure": "footprint sampling (mem_footprint, vmas, proc_stats) of a 100-process tree",
                      "value": f"{share:.2%} of one CPU at damo's one sample a second (goal <= 1 %)"}],
        "tables": [{"title": "Sampler CPU per sample, 100 processes", "columns": list(every),
                    "rows": [list(every.values()), list(footprint_only.values())]}],
        "notes": ["CPU time is the recorder's own (user + system), so other load on the machine inflates the "
                  "wall time, not the figure; the load average before each run is in the table."],
    }


def main(argv: list[str] | None = None) -> dict:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    result = run(quick)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
