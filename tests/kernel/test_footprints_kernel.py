"""Footprints recorded with the kernel backend follow the workload's resident set (in the test VM)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from damo.formats import read_record
from damo.footprints import footprint_values
from damo.kernel.sysfs import DamonSysfs

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
STEPS_CONFIG = Path(__file__).parent / "steps.cfg"
STEP_BYTES = 16 << 20
RUN_TIMEOUT = 900


@pytest.fixture(autouse=True)
def in_vm_only():
    if os.environ.get("DAMO_TEST_IN_VM") != "1":
        pytest.skip("kernel tests run inside the test VM only (tests/test_kernel_vm.py boots it)")
    assert DamonSysfs().nr_kdamonds() == 0
    yield
    assert DamonSysfs().nr_kdamonds() == 0


def test_recorded_rss_follows_the_workloads_steps(tmp_path):
    """masim writes one more 16 MiB region per phase; at each phase's end it reports its VmRSS
    (from /proc). Every footprint sample taken within a phase is within 5% of that phase's RSS."""
    out, status = tmp_path / "steps.data", tmp_path / "status.jsonl"
    workload = [sys.executable, "-m", "masim", str(STEPS_CONFIG), "--status_out", str(status)]
    proc = subprocess.Popen([sys.executable, "-m", "damo", "record", "-o", str(out), "--do_record",
                             "access,mem_footprint", "--", *workload], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[tuple[float, dict]] = []          # (when the line appeared, masim's status)
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            lines = status.read_text().splitlines() if status.exists() else []
            for line in lines[len(seen):]:
                seen.append((time.time(), json.loads(line)))
            time.sleep(0.05)
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert [s["event"] for _, s in seen] == ["start", "phase", "phase", "phase"]
    rss = [s["vm_rss_kb"] * 1024 for _, s in seen]
    steps = [b - a for a, b in zip(rss[1:], rss[2:])]
    assert all(0.9 * STEP_BYTES <= d <= 1.1 * STEP_BYTES for d in steps), rss

    footprints = read_record(out).footprints
    recorded = footprint_values(footprints, "rss", sort=False)
    compared = 0
    for k in range(1, 4):
        begin, end = seen[k - 1][0], seen[k][0]
        # samples well inside the phase: its region was written within its first milliseconds
        inside = (footprints.time > begin + 0.5) & (footprints.time < end - 0.2)
        for value in recorded[inside].tolist():
            assert abs(value - rss[k]) <= 0.05 * rss[k], (k, value, rss[k])
            compared += 1
    assert compared >= 3
