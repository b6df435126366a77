"""The intervals goal on a kernel that has sysfs ``intervals_goal`` (Linux 6.15+; the VM's 6.17):
the goal is written as damo 3.4.3 writes it, the kernel tunes the sampling interval, the record
keeps each snapshot's own interval and the reports use it."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from damo.formats import read_record
from damo.kernel.sysfs import INTERVALS_GOAL_FILES
from tests.kernel.test_record_kernel import (HOT_CONFIG, RUN_TIMEOUT, children, damo, damo_cmd, stop, wait_for,
                                             workload_argv)

pytestmark = pytest.mark.newkern

GOAL_DIR = Path("/sys/kernel/mm/damon/admin/kdamonds/0/contexts/0/monitoring_attrs/intervals/intervals_goal")
# A goal far above what masim's 8 MiB hot buffer gives over a whole Python process's address space
# (a few %): the kernel lengthens the sampling interval every 2 aggregations, up to 80 ms.
GOAL = ("50%", "2", "5ms", "80ms")
GOAL_FILES = {"access_bp": "5000", "aggrs": "2", "min_sample_us": "5000", "max_sample_us": "80000"}
AUTOTUNE_FILES = {"access_bp": "400", "aggrs": "3", "min_sample_us": "5000", "max_sample_us": "10000000"}


def test_the_guest_kernel_is_6_15_or_later_without_damon_stat():
    release = tuple(int(x) for x in os.uname().release.split("-")[0].split("+")[0].split(".")[:2])
    assert release >= (6, 15), os.uname().release
    # Debian's 6.17 starts DAMON_STAT at boot, exclusively; the VM boots it off (GUEST_CMDLINE).
    enabled = Path("/sys/module/damon_stat/parameters/enabled")
    assert not enabled.exists() or enabled.read_text().strip() == "N"


def record_with_goal(tmp: Path, *goal_options: str) -> tuple[Path, dict[str, str]]:
    """Record masim's hot.cfg (12 s) with the goal options; the record and the intervals_goal
    files as the running kdamond has them."""
    out, status = tmp / "goal.data", tmp / "status.jsonl"
    proc = subprocess.Popen(damo_cmd("record", "-n", "100", "-o", str(out), *goal_options, "--",
                                     *workload_argv(status, HOT_CONFIG)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: status.exists() and status.read_text().strip() or proc.poll() is not None,
                 timeout=600, what="the workload's status line")
        assert proc.poll() is None, proc.communicate()
        assert len(children(proc.pid)) == 1
        written = {name: (GOAL_DIR / name).read_text().strip() for name in INTERVALS_GOAL_FILES}
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        stop(proc)
    assert proc.returncode == 0, stderr
    return out, written


@pytest.fixture(scope="module")
def goal_record(tmp_path_factory):
    return record_with_goal(tmp_path_factory.mktemp("goal"), "--monitoring_intervals_goal", *GOAL)


def test_goal_is_written_to_sysfs(goal_record):
    _, written = goal_record
    assert written == GOAL_FILES


def test_the_kernel_tunes_the_sampling_interval_and_the_record_keeps_it(goal_record):
    out, _ = goal_record
    record = read_record(out)
    assert record.meta.intervals_goal == {k: int(v) for k, v in GOAL_FILES.items()}
    sample_us = record.snapshot_sample_us
    assert sample_us is not None
    print(f"{record.nr_snapshots} snapshots; sampling intervals (us) seen: {np.unique(sample_us).tolist()}")
    assert ((sample_us >= 5000) & (sample_us <= 80000)).all()
    # Far below the goal, the kernel lengthens the interval: the record's last intervals are longer.
    assert len(np.unique(sample_us)) > 1 and sample_us[-1] > sample_us[0]
    # nr_accesses counts samples of the snapshot's own aggregation: never more than aggr / sample.
    assert (record.nr_accesses <= record.meta.max_nr_accesses).all()


def test_the_access_report_uses_each_snapshots_interval(goal_record):
    out, _ = goal_record
    result = damo("report", "access", "-i", str(out))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("intervals: ")]
    record = read_record(out)
    # One "intervals:" line per snapshot, with that snapshot's own sampling interval.
    assert len(lines) == record.nr_snapshots
    assert len(set(lines)) == len(np.unique(record.snapshot_sample_us)), sorted(set(lines))
    assert lines[0].startswith(f"intervals: sample {record.snapshot_sample_us[0] // 1000} ms")


def test_autotune_writes_damos_goal(tmp_path):
    out, written = record_with_goal(tmp_path, "--monitoring_intervals_autotune")
    assert written == AUTOTUNE_FILES
    record = read_record(out)
    assert record.snapshot_sample_us is not None and record.nr_snapshots > 0
    assert (record.snapshot_sample_us >= 5000).all()
