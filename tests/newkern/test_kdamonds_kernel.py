"""Several kdamonds in one record (damo 3.x's --kdamond markers) on the real kernel: two masim
processes, each watched by a kdamond of its own, each found where its own /proc maps put its
hot buffer. (Not a 6.15 feature; it runs in this VM to spare CI a boot.)"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from damo.formats import read_record
from damo.kernel.sysfs import DamonSysfs
from tests.kernel.test_record_kernel import RUN_TIMEOUT, coverage, damo_cmd, stop, wait_for, workload_argv

pytestmark = pytest.mark.newkern

HOT_LONG = Path(__file__).resolve().parents[1] / "oldkern" / "hot_long.cfg"   # 60 s of an 8 MiB hot buffer
RECORD_SECONDS = 25


def test_two_kdamonds_each_record_their_own_process(tmp_path):
    statuses = [tmp_path / f"status{k}.jsonl" for k in (0, 1)]
    # Repeated (5 x 60 s, ended below once the record is done): damo started 75 s after the
    # workloads in the first run of this test (its start under emulation at load 5), and a
    # target that exits stays a zombie, which DAMON keeps monitoring with no accesses.
    workloads = [subprocess.Popen(workload_argv(s, HOT_LONG, "--quiet", "--repeat", "5")) for s in statuses]
    try:
        wait_for(lambda: all(s.exists() and s.read_text().strip() for s in statuses),
                 timeout=600, what="the workloads' status lines")
        hot = [json.loads(s.read_text().splitlines()[0])["regions"]["hot"] for s in statuses]
        out = tmp_path / "two.data"
        pids = [str(w.pid) for w in workloads]
        proc = subprocess.Popen(damo_cmd("record", "-n", "100", "--timeout", str(RECORD_SECONDS), "-o", str(out),
                                         "--kdamond", "--target_pid", pids[0], "--kdamond", "--damon_ctx",
                                         "--target_pid", pids[1]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            sysfs = DamonSysfs()
            wait_for(lambda: proc.poll() is not None or (sysfs.nr_kdamonds() == 2 and
                                                         all(k.running for k in sysfs.kdamonds())),
                     what="two running kdamonds")
            assert proc.poll() is None, proc.communicate()
            kdamond_pids = [k.pid for k in sysfs.kdamonds()]
            _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            stop(proc)
        assert proc.returncode == 0, stderr
    finally:
        for w in workloads:
            w.terminate()
            w.wait()
    record = read_record(out)
    info = record.meta.targets_info()
    assert {tid: (v["pid"], v["kdamond_idx"], v["context_idx"]) for tid, v in info.items()} == {
        0: (workloads[0].pid, 0, 0), 1: (workloads[1].pid, 1, 0)}
    assert record.meta.extra["kdamond_pids"] == kdamond_pids
    for tid, region in enumerate(hot):
        own = record.for_target(tid)
        lo, hi = region["address"], region["address"] + region["size"]
        seen = coverage(own, lo, hi)
        print(f"target {tid} (pid {info[tid]['pid']}, kdamond {tid}): {own.nr_snapshots} snapshots, "
              f"median accessed coverage of its hot buffer {np.median(seen):.2f}")
        assert own.nr_snapshots >= 10 and np.median(seen[len(seen) // 2:]) >= 0.8
