"""The kernel record's workload launcher: held before exec until monitoring is on."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from damo.errors import DamoError
from damo.sources import kernel
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


def test_the_workload_is_held_after_its_exec():
    """Stopped after the exec: DAMON starts on the workload's address space, not a copy of damo's."""
    workload = HeldWorkload(["sleep", "30"])
    try:
        assert workload.traced
        assert os.readlink(f"/proc/{workload.pid}/exe") == os.path.realpath(shutil.which("sleep"))
        state = Path(f"/proc/{workload.pid}/stat").read_text().rsplit(") ", 1)[1][0]
        assert state == "t"                         # stopped by its tracer (us), before its first instruction
        workload.release()
        deadline = time.monotonic() + 10
        while "TracerPid:\t0" not in Path(f"/proc/{workload.pid}/status").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # running again: sleeping or running, once any page-in it blocked on (D) is over
        while (state := Path(f"/proc/{workload.pid}/stat").read_text().rsplit(") ", 1)[1][0]) == "D":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert state in "SR"
    finally:
        workload.kill()
        workload.wait(10)


def test_with_shell_the_monitored_pid_becomes_the_last_command():
    """--shell: the shell runs the line's last command in its own place, so DAMON's pid is the workload's."""
    workload = HeldWorkload([kernel.shell_path(), "-c", "cd / && sleep 30"])
    try:
        workload.release()
        sleep = os.path.realpath(shutil.which("sleep"))
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{workload.pid}/exe") != sleep:
            assert time.monotonic() < deadline, os.readlink(f"/proc/{workload.pid}/exe")
            time.sleep(0.02)
    finally:
        workload.kill()
        workload.wait(10)


@pytest.mark.parametrize("traced", [True, False])
def test_a_workload_never_released_runs_nothing(tmp_path, monkeypatch, traced):
    if not traced:
        monkeypatch.setattr(kernel, "_PTRACE_TRACEME", -1)     # as where ptrace is not allowed
    marker = tmp_path / "ran"
    workload = HeldWorkload(["sh", "-c", f"echo ran > {marker}"])
    assert workload.traced == traced
    assert workload.wait(10) == (-9 if traced else 126)
    assert not marker.exists()


@pytest.mark.parametrize("traced", [True, False])
def test_a_failed_exec_is_one_error(tmp_path, monkeypatch, traced):
    if not traced:
        monkeypatch.setattr(kernel, "_PTRACE_TRACEME", -1)
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(DamoError, match=f"^cannot run {script}: Permission denied$"):
        workload = HeldWorkload([str(script)])
        assert not traced
        workload.release()


def test_without_ptrace_the_workload_is_held_before_its_exec(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel, "_PTRACE_TRACEME", -1)
    marker = tmp_path / "ran"
    workload = HeldWorkload(["sh", "-c", f"echo ran > {marker}; exit 4"])
    time.sleep(0.3)
    assert not workload.traced and workload.poll() is None and not marker.exists()
    workload.release()
    assert workload.wait(10) == 4 and marker.exists()


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
