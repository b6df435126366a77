"""``record ongoing`` and ``report damon`` against fake sysfs and tracefs trees: bad input, stopping,
and the status text. (The real kernel's: tests/test_ongoing_host.py.)"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import run_cli
from damo.damon_report import render
from damo.errors import DamoError
from damo.formats import read_record
from damo.kernel.status import read_status
from damo.kernel.sysfs import DamonSysfs
from damo.sources import ongoing
from damo.sources.ongoing import OngoingRecorder, choose_kdamonds, open_tracefs, preflight

KDAMOND_FILES = {
    "state": "on", "pid": "77", "refresh_ms": "0",
    "contexts/nr_contexts": "1",
    "contexts/0/operations": "paddr", "contexts/0/addr_unit": "1",
    "contexts/0/monitoring_attrs/intervals/sample_us": "500000",
    "contexts/0/monitoring_attrs/intervals/aggr_us": "5000000",
    "contexts/0/monitoring_attrs/intervals/update_us": "60000000",
    "contexts/0/monitoring_attrs/intervals/intervals_goal/access_bp": "400",
    "contexts/0/monitoring_attrs/intervals/intervals_goal/aggrs": "3",
    "contexts/0/monitoring_attrs/intervals/intervals_goal/min_sample_us": "5000",
    "contexts/0/monitoring_attrs/intervals/intervals_goal/max_sample_us": "10000000",
    "contexts/0/monitoring_attrs/nr_regions/min": "1024",
    "contexts/0/monitoring_attrs/nr_regions/max": "8192",
    "contexts/0/targets/nr_targets": "1",
    "contexts/0/targets/0/pid_target": "0",
    "contexts/0/targets/0/regions/nr_regions": "1",
    "contexts/0/targets/0/regions/0/start": "4294967296",
    "contexts/0/targets/0/regions/0/end": "11140071424",
    "contexts/0/schemes/nr_schemes": "1",
    "contexts/0/schemes/0/action": "pageout",
    "contexts/0/schemes/0/apply_interval_us": "0",
    "contexts/0/schemes/0/target_nid": "-1",
    "contexts/0/schemes/0/access_pattern/sz/min": "0",
    "contexts/0/schemes/0/access_pattern/sz/max": str(2**64 - 1),
    "contexts/0/schemes/0/access_pattern/nr_accesses/min": "0",
    "contexts/0/schemes/0/access_pattern/nr_accesses/max": "1",
    "contexts/0/schemes/0/access_pattern/age/min": "12",
    "contexts/0/schemes/0/access_pattern/age/max": str(2**32 - 1),
    "contexts/0/schemes/0/quotas/ms": "50", "contexts/0/schemes/0/quotas/bytes": "134217728",
    "contexts/0/schemes/0/quotas/reset_interval_ms": "1000",
    "contexts/0/schemes/0/quotas/effective_bytes": "0",
    "contexts/0/schemes/0/quotas/weights/sz_permil": "0",
    "contexts/0/schemes/0/quotas/weights/nr_accesses_permil": "0",
    "contexts/0/schemes/0/quotas/weights/age_permil": "1000",
    "contexts/0/schemes/0/quotas/goals/nr_goals": "1",
    "contexts/0/schemes/0/quotas/goals/0/target_metric": "some_mem_psi_us",
    "contexts/0/schemes/0/quotas/goals/0/target_value": "1000",
    "contexts/0/schemes/0/quotas/goals/0/current_value": "12",
    "contexts/0/schemes/0/watermarks/metric": "none", "contexts/0/schemes/0/watermarks/interval_us": "0",
    "contexts/0/schemes/0/watermarks/high": "0", "contexts/0/schemes/0/watermarks/mid": "0",
    "contexts/0/schemes/0/watermarks/low": "0",
    "contexts/0/schemes/0/ops_filters/nr_filters": "2",
    "contexts/0/schemes/0/ops_filters/0/type": "anon", "contexts/0/schemes/0/ops_filters/0/matching": "Y",
    "contexts/0/schemes/0/ops_filters/0/allow": "N",
    "contexts/0/schemes/0/ops_filters/1/type": "memcg", "contexts/0/schemes/0/ops_filters/1/matching": "N",
    "contexts/0/schemes/0/ops_filters/1/allow": "Y", "contexts/0/schemes/0/ops_filters/1/memcg_path": "/workload",
    "contexts/0/schemes/0/stats/nr_tried": "1234", "contexts/0/schemes/0/stats/sz_tried": "5242880",
    "contexts/0/schemes/0/stats/nr_applied": "3", "contexts/0/schemes/0/stats/sz_applied": "4096",
    "contexts/0/schemes/0/stats/sz_ops_filter_passed": "0", "contexts/0/schemes/0/stats/qt_exceeds": "2",
    "contexts/0/schemes/0/tried_regions/total_bytes": "8192",
    "contexts/0/schemes/0/tried_regions/0/start": "4294967296",
    "contexts/0/schemes/0/tried_regions/0/end": "4294975488",
    "contexts/0/schemes/0/tried_regions/0/nr_accesses": "0",
    "contexts/0/schemes/0/tried_regions/0/age": "15",
}

EXPECTED_TEXT = """\
kdamond 0
    state: on, pid: 77
    context 0
        ops: paddr
        target 0
            pid: 0
            region [4,294,967,296, 11,140,071,424) (6.375 GiB)
        intervals
            sample 500 ms, aggr 5 s, update 1 m
            target 4 % accesses per 3 aggrs, [5 ms, 10 s] sampling interval
        nr_regions: [1,024, 8,192]
        scheme 0
            action: pageout per aggr interval
            target access pattern
                sz: [0 B, max]
                nr_accesses: [0 samples, 1 samples]
                age: [12 aggr_intervals, 4,294,967,295 aggr_intervals]
            quotas
                50 ms / 128.000 MiB / 0 B per 1 s
                goal 0: metric some_mem_psi_us target 1,000 current 12
                priority: sz 0 %, nr_accesses 0 %, age 100 %
            watermarks
                metric none, interval 0 ns
                0 %, 0 %, 0 %
            filter 0
                reject anon
            filter 1
                allow none memcg /workload
            statistics
                tried 1,234 times (5.000 MiB)
                applied 3 times (4.000 KiB)
                0 B passed filters
                quota exceeded 2 times
            tried regions (8.000 KiB)
                [4,294,967,296, 4,294,975,488) (8.000 KiB): nr_accesses: 0 samples, age: 15 aggr_intervals
DAMON_STAT: not in this kernel (no /sys/module/damon_stat)
note: scheme statistics and tried regions are as the kernel last updated them: kdamond 0 has refresh_ms 0, \
and this report never asks for an update"""


def fake_admin(tmp_path: Path, nr_kdamonds: int = 1, **overrides: str) -> DamonSysfs:
    admin = tmp_path / "admin"
    files = {"kdamonds/nr_kdamonds": str(nr_kdamonds)}
    for i in range(nr_kdamonds):
        files.update({f"kdamonds/{i}/{rel}": value for rel, value in KDAMOND_FILES.items()})
    files.update(overrides)
    for rel, value in files.items():
        path = admin / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return DamonSysfs(admin)


def fake_stat_module(tmp_path: Path, enabled: str = "Y") -> Path:
    params = tmp_path / "module" / "damon_stat" / "parameters"
    params.mkdir(parents=True)
    (params / "enabled").write_text(enabled + "\n")
    (params / "estimated_memory_bandwidth").write_text("1073741824\n")
    (params / "memory_idle_ms_percentiles").write_text(",".join(str(10 * p) for p in range(101)) + "\n")
    (params / "aggr_interval_us").write_text("100000\n")
    return tmp_path / "module"


def test_report_damon_text_follows_damo_layout(tmp_path):
    status = read_status(fake_admin(tmp_path), modules_dir=tmp_path / "no-modules")
    assert render(status) == EXPECTED_TEXT


def test_report_damon_shows_damon_stat_where_it_exists(tmp_path):
    status = read_status(fake_admin(tmp_path), modules_dir=fake_stat_module(tmp_path))
    assert status["damon_stat"]["memory_idle_ms_percentiles"][50] == 500
    assert render(status).splitlines()[-5:-1] == [
        "DAMON_STAT: on",
        "    estimated memory bandwidth: 1024.000 MiB per second",     # damo: a unit only above it
        "    memory idle time percentiles: p0 0 ns, p25 250 ms, p50 500 ms, p75 750 ms, p90 900 ms, p99 990 ms, "
        "p100 1 s",
        "    aggr interval: 100 ms"]


def test_report_damon_on_this_machine_is_read_only_and_one_line_errors():
    result = run_cli("report", "damon", "--json")
    if os.geteuid() != 0 or not Path("/sys/kernel/mm/damon/admin").is_dir():
        pytest.skip("needs root and DAMON sysfs")
    assert result.returncode == 0, result.stderr
    assert run_cli("status").stdout.splitlines()[:1] == run_cli("report", "damon").stdout.splitlines()[:1]


# --- choosing kdamonds, and what is missing -------------------------------------------------------

def test_a_missing_kdamond_is_named_with_what_exists(tmp_path):
    status = read_status(fake_admin(tmp_path), modules_dir=tmp_path)
    with pytest.raises(DamoError, match=r"^--kdamond 7: no such kdamond \(this machine has: 0; running kdamonds: 0; "
                                        r"see damo report damon\)$"):
        choose_kdamonds(status, ["7"])


def test_a_stopped_kdamond_is_refused(tmp_path):
    status = read_status(fake_admin(tmp_path, 2, **{"kdamonds/1/state": "off", "kdamonds/1/pid": "-1"}),
                         modules_dir=tmp_path)
    with pytest.raises(DamoError, match=r"^--kdamond 1: kdamond 1 is not running \(state off\); running kdamonds: 0$"):
        choose_kdamonds(status, ["1"])
    assert [f.name for f in choose_kdamonds(status, [])] == ["kdamond 0"]


def test_two_kdamonds_get_distinct_record_target_ids(tmp_path):
    status = read_status(fake_admin(tmp_path, 2, **{"kdamonds/1/pid": "78"}), modules_dir=tmp_path)
    chosen = choose_kdamonds(status, [])
    assert [(f.pid, f.target_ids) for f in chosen] == [(77, {0: 0}), (78, {0: 1})]


def test_nothing_running_and_no_damon_stat(tmp_path):
    status = read_status(fake_admin(tmp_path, **{"kdamonds/0/state": "off"}), modules_dir=tmp_path)
    with pytest.raises(DamoError, match="no kdamond is running, so there is nothing ongoing to record"):
        choose_kdamonds(status, [])
    with pytest.raises(DamoError, match=r"--kdamond stat: DAMON_STAT is not in this kernel"):
        choose_kdamonds(status, ["stat"])


def test_damon_stat_kdamond_is_found_by_its_thread(tmp_path, monkeypatch):
    status = read_status(fake_admin(tmp_path, **{"kdamonds/0/state": "off"}), modules_dir=fake_stat_module(tmp_path))
    monkeypatch.setattr(ongoing.status_mod, "module_kdamond_pids", lambda exclude: [4242])
    (chosen,) = choose_kdamonds(status, [])
    assert (chosen.name, chosen.pid, chosen.setup["contexts"][0]["intervals"]["aggr_us"]) == ("DAMON_STAT", 4242, 100000)


def test_preflight_names_root_and_tracefs(tmp_path):
    with pytest.raises(DamoError, match=r"^record ongoing needs root privileges .* damo report damon still works"):
        preflight(is_root=False)
    filesystems = tmp_path / "filesystems"
    filesystems.write_text("nodev\tsysfs\nnodev\tproc\n")
    with pytest.raises(DamoError, match=r"^this kernel has no tracefs .*; damo report damon still works$"):
        preflight(is_root=True, filesystems=str(filesystems))


def test_a_kernel_without_the_tracepoint(tmp_path):
    (tmp_path / "instances").mkdir()
    with pytest.raises(DamoError, match=r"no damon:damon_aggregated tracepoint .*damo report damon still works$"):
        open_tracefs(tmp_path)


def test_cli_bad_kdamond_is_one_line_exit_2():
    result = run_cli("record", "ongoing", "--kdamond", "x")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    result = run_cli("record", "sleep 1", "--kdamond", "0")
    assert result.stderr == "damo: error: --kdamond goes with 'damo record ongoing'\n"


# --- following, stopping, cleaning up (fake trace instance) ----------------------------------------

def _line(t: float, nr: int, i: int, pid: int = 77) -> bytes:
    return (b"kdamond.0-%d [000] ..... %.6f: damon_aggregated: target_id=0 nr_regions=%d %d-%d: %d 3\n"
            % (pid, t, nr, 4096 * (i + 1), 4096 * (i + 2), i))


class FakeInstance:
    """Stands in for TraceInstance: hands out prepared trace text, then runs ``on_empty``."""

    opened: list["FakeInstance"] = []

    def __init__(self, root, name, event_filter=None, clock=None):
        self.name, self.event_filter, self.clock, self.closed = name, event_filter, clock, False
        self.chunks: list[bytes] = [b"".join(_line(100 + k * 5, 3, i) for i in range(3)) for k in range(4)]
        self.on_open = self.on_empty = lambda: None
        FakeInstance.opened.append(self)

    def open(self):
        self.on_open()

    def read(self, timeout):
        if self.chunks:
            return self.chunks.pop(0)
        self.on_empty()
        return b""

    def disable(self):
        pass

    def close(self):
        self.closed = True


def _recorder(tmp_path, sysfs, monkeypatch, setup):
    FakeInstance.opened = []

    def make(*args, **kwargs):
        instance = FakeInstance(*args, **kwargs)
        setup(instance)
        return instance

    monkeypatch.setattr(ongoing, "TraceInstance", make)
    monkeypatch.setattr(ongoing, "open_tracefs", lambda root: tmp_path)
    monkeypatch.setattr(ongoing, "STATE_CHECK_SECONDS", 0.0)
    from damo.recording import RecordRequest, finish, open_sink
    from damo.model import MonitoringAttrs

    request = RecordRequest(target=["ongoing"], attrs=MonitoringAttrs(), out=str(tmp_path / "o.data"))
    return OngoingRecorder([], 30, open_sink=lambda meta: open_sink(request, meta),
                           finish=lambda sink, interrupted: finish(sink, request, interrupted=interrupted),
                           sysfs=sysfs, modules_dir=tmp_path / "none"), request


def test_the_record_keeps_everything_until_the_kdamond_stops(tmp_path, monkeypatch, capsys):
    sysfs = fake_admin(tmp_path)
    stop = lambda: (sysfs.root / "kdamonds/0/state").write_text("off\n")     # noqa: E731
    recorder, request = _recorder(tmp_path, sysfs, monkeypatch, lambda inst: setattr(inst, "on_empty", stop))
    assert recorder.run() == 0
    record = read_record(request.out)
    assert record.nr_snapshots == 4 and record.end_ns.tolist() == [100e9, 105e9, 110e9, 115e9]
    assert record.start_ns[0] == 95e9 and record.meta.aggr_us == 5000000
    assert record.meta.extra["kdamonds"][0]["pid"] == 77
    assert FakeInstance.opened[0].event_filter == "common_pid == 77" and FakeInstance.opened[0].closed
    assert FakeInstance.opened[0].clock == "mono"        # the stamps of damo record's, for lining up
    assert "kdamond 0 stopped (state off); the record keeps the snapshots up to then" in capsys.readouterr().err
    assert oct(os.stat(request.out).st_mode & 0o777) == "0o600"


def test_a_kdamond_stopping_during_start_up_is_one_error_and_no_instance_is_left(tmp_path, monkeypatch):
    sysfs = fake_admin(tmp_path)
    stop = lambda: (sysfs.root / "kdamonds/0/state").write_text("off\n")     # noqa: E731
    recorder, request = _recorder(tmp_path, sysfs, monkeypatch, lambda inst: setattr(inst, "on_open", stop))
    with pytest.raises(DamoError, match=r"^kdamond 0 stopped \(state off\) while recording was starting; nothing "
                                        r"was recorded \(damo report damon still works\)$"):
        recorder.run()
    assert FakeInstance.opened[0].closed and not Path(request.out).exists()


def test_ctrl_c_keeps_the_record_and_removes_the_instance(tmp_path, monkeypatch):
    sysfs = fake_admin(tmp_path)

    def interrupt():
        raise KeyboardInterrupt

    recorder, request = _recorder(tmp_path, sysfs, monkeypatch, lambda inst: setattr(inst, "on_empty", interrupt))
    assert recorder.run() == 130
    assert read_record(request.out).nr_snapshots == 4 and FakeInstance.opened[0].closed


def test_report_damon_without_permission_is_one_line(tmp_path, monkeypatch):
    sysfs = fake_admin(tmp_path)

    def refused():
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sysfs, "nr_kdamonds", refused)
    with pytest.raises(DamoError, match=rf"^reading {sysfs.kdamonds_dir} needs root privileges \(run damo as root\)\.$"):
        read_status(sysfs, modules_dir=tmp_path)


def test_instances_of_killed_records_are_removed_and_live_ones_kept(tmp_path):
    instances = tmp_path / "instances"
    dead, alive, other = (instances / f"damo-ongoing-{2**22 + 12345}", instances / f"damo-ongoing-{os.getpid()}",
                          instances / "someone-elses")
    for path in (dead, alive, other):
        path.mkdir(parents=True)
    assert ongoing.remove_stale_instances(tmp_path) == [dead.name]
    assert not dead.exists() and alive.exists() and other.exists()
