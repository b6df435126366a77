"""The kernel record's workload launcher: held before exec until monitoring is on."""
from __future__ import annotations

import subprocess
import time

from damo.sources.kernel import HeldWorkload, process_alive


def test_the_workload_runs_only_once_released(tmp_path):
    marker = tmp_path / "ran"
    workload = HeldWorkload(["sh", "-c", f"echo ran > {marker}; exit 3"])
    time.sleep(0.3)
    assert workload.poll() is None and process_alive(workload.pid)
    assert not marker.exists()                  # held: nothing of the command has run yet
    workload.release()
    assert workload.wait(10) == 3
    assert marker.read_text() == "ran\n"


def test_a_workload_never_released_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    workload = HeldWorkload(["sh", "-c", f"echo ran > {marker}"])
    assert workload.wait(10) == 126
    assert not marker.exists()


def test_signals_and_exit_codes_as_popen_reports_them():
    workload = HeldWorkload(["sleep", "60"])
    workload.release()
    workload.send_signal(15)
    assert workload.wait(10) == -15
    workload.kill()                             # already reaped: a no-op, as Popen's


def test_a_zombie_is_not_alive():
    exited = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while process_alive(exited.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process_alive(exited.pid)
    exited.wait()
    assert not process_alive(exited.pid)        # reaped: no /proc entry at all
