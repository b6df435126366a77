"""``damo record --damon_interface debugfs`` on the shared kernel, and agreement between backends.

Runs inside the VM that tests/test_oldkern_vm.py boots with ../shared/kernels' kernel.
"""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from damo.formats import read_record
from damo.kernel.debugfs import DamonDebugfs
from tests.kernel.test_record_kernel import HOT_SIZE, RUN_TIMEOUT, children, damo, damo_cmd, env, wait_for
from tests.oldkern.test_page_idle_kernel import check_hot_record

pytestmark = pytest.mark.oldkern
REPO = Path(__file__).resolve().parents[2]
DEBUGFS = DamonDebugfs()
AGREEMENT = 0.10


@pytest.fixture(autouse=True)
def debugfs_left_as_found():
    assert DEBUGFS.present(), "the shared kernel has DAMON's debugfs files"
    attrs = DEBUGFS.read("attrs")
    assert not DEBUGFS.monitor_on() and DEBUGFS.kdamond_pid() is None
    yield
    assert not DEBUGFS.monitor_on() and DEBUGFS.kdamond_pid() is None
    assert DEBUGFS.read("attrs") == attrs
    assert not list(Path("/sys/kernel/tracing/instances").glob("damo-*"))


def test_debugfs_record_finds_the_hot_region(debugfs_record):
    record = read_record(debugfs_record[0])
    assert record.meta.extra["damon_interface"] == "debugfs" and record.meta.extra["collector"] == "tracefs"
    p50 = check_hot_record(debugfs_record)
    print(f"debugfs: wss p50 within masim's mappings {p50} B ({p50 / HOT_SIZE:.3f}x the hot region)")


def test_debugfs_and_sysfs_agree_on_the_wss(debugfs_record, sysfs_record):
    debugfs_p50, sysfs_p50 = check_hot_record(debugfs_record), check_hot_record(sysfs_record)
    assert abs(debugfs_p50 - sysfs_p50) <= AGREEMENT * sysfs_p50, (debugfs_p50, sysfs_p50)
    print(f"wss p50: debugfs {debugfs_p50} B, sysfs {sysfs_p50} B")


def test_page_idle_and_kernel_damon_agree_on_the_wss(page_idle_record, sysfs_record):
    page_idle_p50, sysfs_p50 = check_hot_record(page_idle_record), check_hot_record(sysfs_record)
    assert abs(page_idle_p50 - sysfs_p50) <= AGREEMENT * sysfs_p50, (page_idle_p50, sysfs_p50)
    print(f"wss p50: page_idle {page_idle_p50} B, kernel DAMON (sysfs) {sysfs_p50} B")


def test_a_foreign_debugfs_monitor_is_refused_and_left_running(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    attrs = DEBUGFS.read("attrs")
    try:
        Path(DEBUGFS.root, "target_ids").write_text(f"{sleeper.pid}\n")
        Path(DEBUGFS.root, DEBUGFS.monitor_on_name).write_text("on\n")
        wait_for(lambda: DEBUGFS.kdamond_pid() is not None, 30, "the foreign kdamond")
        pid = DEBUGFS.kdamond_pid()
        before = {name: DEBUGFS.read(name) for name in ("attrs", "target_ids", "kdamond_pid")}
        result = damo("record", "--damon_interface", "debugfs", "-o", str(tmp_path / "f.data"), "--", "sleep", "1")
        assert (result.returncode, result.stderr) == (
            2, f"damo: error: DAMON's debugfs interface is in use (kdamond pid {pid}) by someone else; damo will "
               f"not touch it. Use --vm or the simulator (damo record zigzag, a bundled masim config).\n")
        assert {name: DEBUGFS.read(name) for name in before} == before and DEBUGFS.monitor_on()
        assert not (tmp_path / "f.data").exists()
    finally:
        if DEBUGFS.monitor_on():
            Path(DEBUGFS.root, DEBUGFS.monitor_on_name).write_text("off\n")
        wait_for(lambda: DEBUGFS.kdamond_pid() is None, 30, "the foreign kdamond to stop")
        sleeper.kill()
        sleeper.wait()
        Path(DEBUGFS.root, "target_ids").write_text("\n")
        assert DEBUGFS.read("attrs") == attrs


def test_ctrl_c_turns_monitoring_off_and_restores_the_files(tmp_path):
    out = tmp_path / "c.data"
    before = {name: DEBUGFS.read(name) for name in ("attrs", "target_ids")}
    proc = subprocess.Popen(damo_cmd("record", "--damon_interface", "debugfs", "-s", "10000", "-a", "200000",
                                     "-o", str(out), "--", "sleep", "120"),
                            cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: DEBUGFS.monitor_on() or proc.poll() is not None, what="our debugfs monitor")
        assert proc.poll() is None, proc.communicate()
        (sleeper,) = children(proc.pid)
        assert DEBUGFS.read("target_ids").split() == [str(sleeper)]
        assert DEBUGFS.read("attrs").split() == ["10000", "200000", "1000000", "10", "1000"]
        wait_for(lambda: out.exists() and out.stat().st_size > 0, what="the record file")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert not DEBUGFS.monitor_on() and DEBUGFS.kdamond_pid() is None
    assert {name: DEBUGFS.read(name) for name in before} == before
    assert read_record(out).nr_snapshots >= 1
    assert not Path(f"/proc/{sleeper}").exists()
