"""`damo record ongoing` of a kdamond that a foreign user started by hand in the test VM.

The test plays the foreign user: it writes DAMON's sysfs files itself (as `echo` would) to
monitor masim's hot.cfg workload, then checks that damo's own `record` refuses that kdamond,
and that `record ongoing` of it holds one snapshot per aggregation and the hot region's working
set within the bounds that damo's own record of the same workload meets (test_record_kernel.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from damo.formats import read_record
from damo.kernel.sysfs import DamonSysfs
from test_record_kernel import (HOT_BOUNDS, REPO, accessed_bytes, damo, env, hot_phase, wait_for,
                                workload_argv)

pytestmark = pytest.mark.kernel

ADMIN = Path("/sys/kernel/mm/damon/admin")
SAMPLE_US, AGGR_US, UPDATE_US = 20000, 400000, 1000000     # as the own record's test uses


def echo(rel: str, value) -> None:
    """A foreign user's write into DAMON's sysfs (not damo's writer)."""
    (ADMIN / rel).write_text(f"{value}\n")


@pytest.fixture
def foreign_kdamond(tmp_path):
    if os.environ.get("DAMO_TEST_IN_VM") != "1":
        pytest.skip("kernel tests run inside the test VM only (tests/test_kernel_vm.py boots it)")
    assert DamonSysfs().nr_kdamonds() == 0
    status = tmp_path / "status.jsonl"
    workload = subprocess.Popen(workload_argv(status), cwd=REPO, env=env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: status.exists() and status.read_text().strip() or workload.poll() is not None,
                 what="the workload's status line")
        ctx = "kdamonds/0/contexts/0"
        echo("kdamonds/nr_kdamonds", 1)
        echo("kdamonds/0/contexts/nr_contexts", 1)
        echo(f"{ctx}/operations", "vaddr")
        for name, value in (("sample_us", SAMPLE_US), ("aggr_us", AGGR_US), ("update_us", UPDATE_US)):
            echo(f"{ctx}/monitoring_attrs/intervals/{name}", value)
        echo(f"{ctx}/monitoring_attrs/nr_regions/min", 100)
        echo(f"{ctx}/targets/nr_targets", 1)
        echo(f"{ctx}/targets/0/pid_target", workload.pid)
        echo("kdamonds/0/state", "on")
        yield workload, status
    finally:
        if workload.poll() is None:
            workload.kill()
        workload.wait()
        wait_for(lambda: (ADMIN / "kdamonds/0/state").read_text().strip() == "off", timeout=30,
                 what="the kdamond to stop with its target")
        echo("kdamonds/nr_kdamonds", 0)


def test_record_ongoing_follows_a_hand_started_kdamond(foreign_kdamond, tmp_path):
    workload, status = foreign_kdamond
    pid = int((ADMIN / "kdamonds/0/pid").read_text())
    own = damo("record", "-o", str(tmp_path / "own.data"), "sleep 1")
    assert own.returncode == 2
    assert f"kdamond 0 (pid {pid}) is already running and belongs to someone else" in own.stderr
    started = time.monotonic()
    # Until the kdamond stops with its workload (the timeout only bounds a hang).
    result = damo("record", "ongoing", "--timeout", "150", "-o", str(tmp_path / "ongoing.data"))
    duration = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "kdamond 0 stopped" in result.stderr
    record = read_record(tmp_path / "ongoing.data")
    print(f"record ongoing: {record.nr_snapshots} snapshots in {duration:.1f} s")
    expected = duration / (AGGR_US / 1e6)
    assert abs(record.nr_snapshots - expected) <= 0.1 * expected + 1
    assert (record.meta.sample_us, record.meta.aggr_us, record.meta.target_kind) == (SAMPLE_US, AGGR_US, "vaddr")
    regions = json.loads(status.read_text().splitlines()[0])["regions"]
    first, last = hot_phase(record, regions)
    index = np.arange(record.nr_snapshots)
    phase = record.select((index >= first) & (index < last))
    lo = min(r["address"] for r in regions.values())
    hi = max(r["address"] + r["size"] for r in regions.values())
    inside = accessed_bytes(phase, lo, hi)
    print(f"hot phase: snapshots {first}-{last}, median working set {np.median(inside) / 2**20:.2f} MiB")
    assert HOT_BOUNDS[0] <= np.median(inside) <= HOT_BOUNDS[1], inside
