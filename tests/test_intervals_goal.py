"""The intervals goal (--monitoring_intervals_goal, --monitoring_intervals_autotune): the simulator
engine converging, the sysfs writes, per-snapshot sampling intervals in the files, bad input."""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from damo.errors import DamoError
from damo.formats import read_record, write_record
from damo.kernel.sysfs import DamonSysfs, KdamondSetup, OwnedKdamond
from damo.model import MonitoringAttrs
from damo.recording import RecordRequest
from damo.sources.sim import simulate
from fake_damon import FakeDamon

CTX = "kdamonds/0/contexts/0"
# Random accesses over a large region: the share of a region's pages hit in one sampling
# interval, hence the access ratio DAMON measures, grows with the interval, so the goal has one
# sampling interval that meets it (about 13 ms for 40% of 8 GB, 12 ms for 20% of 16 GB at
# masim's 80k accesses/ms).
RANDOM_CFG = """\
a, {size}

random
30000
a, 1, 4096, 1
"""


def access_ratio_bp(record) -> np.ndarray:
    """Per snapshot, DAMON's measured access ratio: size-weighted nr_accesses over its maximum."""
    sizes = (record.end - record.start).astype(float)
    index = record.snapshot_index()
    events = np.bincount(index, sizes * record.nr_accesses)
    possible = np.bincount(index, sizes) * record.meta.max_nr_accesses
    return events / possible * 10000


@pytest.mark.parametrize("size,access_bp", [(8_000_000_000, 4000), (16_000_000_000, 2000)])
def test_simulator_autotune_converges_to_the_goal(tmp_path, size, access_bp):
    cfg = tmp_path / "random.cfg"
    cfg.write_text(RANDOM_CFG.format(size=size))
    request = RecordRequest(target=[str(cfg)], attrs=MonitoringAttrs(), do_record=("access",),
                            intervals_goal=(access_bp, 3, 5000, 10_000_000))
    record, _ = simulate(request)
    assert record.snapshot_sample_us[0] == 5000 and len(np.unique(record.snapshot_sample_us)) > 3
    converged = access_ratio_bp(record)[record.nr_snapshots // 2:]
    assert abs(converged.mean() - access_bp) <= 0.1 * access_bp
    # Untuned, the same workload is far from the goal: the tuning did the work.
    untuned, _ = simulate(RecordRequest(target=[str(cfg)], attrs=MonitoringAttrs(), do_record=("access",)))
    assert abs(access_ratio_bp(untuned).mean() - access_bp) > 0.3 * access_bp
    assert untuned.snapshot_sample_us is None
    # A tuned snapshot's aggregation interval follows its sampling interval (fixed ratio).
    durations_us = (record.end_ns - record.start_ns) // 1000
    assert np.array_equal(durations_us[1:], record.aggr_us_per_snapshot()[1:])


@pytest.fixture(scope="module")
def tuned_record(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("cfg") / "random.cfg"
    cfg.write_text(RANDOM_CFG.format(size=8_000_000_000).replace("30000", "8000"))
    record, _ = simulate(RecordRequest(target=[str(cfg)], attrs=MonitoringAttrs(), do_record=("access",),
                                       intervals_goal=(4000, 3, 5000, 10_000_000)))
    return cfg, record


def test_tuned_intervals_survive_every_format(tuned_record, tmp_path):
    cfg, record = tuned_record
    native = tmp_path / "t.data"
    result = run_cli("record", str(cfg), "-o", str(native), "--do_record", "access",
                     "--monitoring_intervals_goal", "40%", "3", "5ms", "10s")
    assert result.returncode == 0, result.stderr
    back = read_record(native)
    assert np.array_equal(back.snapshot_sample_us, record.snapshot_sample_us)
    for fmt in ("json_compressed", "json"):
        path = tmp_path / f"t.{fmt}"
        write_record(back, path, fmt)
        assert np.array_equal(read_record(path).snapshot_sample_us, record.snapshot_sample_us)
    text = zlib.decompress((tmp_path / "t.json_compressed").read_bytes()).decode()
    snapshot = json.loads(text)[0]["snapshots"][-1]
    assert snapshot["sample_interval_us"] == str(record.snapshot_sample_us[-1])
    # An untuned record's JSON is as before: no per-snapshot keys.
    plain, _ = simulate(RecordRequest(target=[str(cfg)], attrs=MonitoringAttrs(), do_record=("access",)))
    write_record(plain, tmp_path / "p.json", "json")
    assert "sample_interval_us" not in (tmp_path / "p.json").read_text()


# --- sysfs ----------------------------------------------------------------------------------

def setup_with_goal(goal=(400, 3, 5000, 10_000_000)) -> KdamondSetup:
    return KdamondSetup(ops="vaddr", attrs=MonitoringAttrs(), pid=123, intervals_goal=goal)


def test_sysfs_writes_the_goal_in_damos_order(tmp_path):
    fake = FakeDamon(tmp_path, alive_pids={123}, intervals_goal=True)
    with OwnedKdamond(DamonSysfs(fake.root, writer=fake.write), setup_with_goal()) as kdamond:
        kdamond.start()
        fake.tuned_sample_us = 7000
        assert kdamond.tuned_sample_us() == 7000
        assert fake.get(f"{CTX}/monitoring_attrs/intervals/aggr_us") == "140000"
    intervals = f"{CTX}/monitoring_attrs/intervals"
    assert fake.log[3:11] == [
        (f"{intervals}/sample_us", "5000"),
        (f"{intervals}/aggr_us", "100000"),
        (f"{intervals}/update_us", "1000000"),
        (f"{intervals}/intervals_goal/access_bp", "400"),
        (f"{intervals}/intervals_goal/aggrs", "3"),
        (f"{intervals}/intervals_goal/min_sample_us", "5000"),
        (f"{intervals}/intervals_goal/max_sample_us", "10000000"),
        (f"{CTX}/monitoring_attrs/nr_regions/min", "10"),
    ]
    assert ("kdamonds/0/state", "update_tuned_intervals") in fake.log


def test_sysfs_without_a_goal_writes_none(tmp_path):
    fake = FakeDamon(tmp_path, alive_pids={123}, intervals_goal=True)
    with OwnedKdamond(DamonSysfs(fake.root, writer=fake.write), setup_with_goal(None)) as kdamond:
        kdamond.start()
        assert kdamond.tuned_sample_us() is None
    assert not any("intervals_goal" in path or value == "update_tuned_intervals" for path, value in fake.log)


def test_kernel_without_intervals_goal_is_one_error(tmp_path):
    fake = FakeDamon(tmp_path, alive_pids={123})          # Linux 6.12, like the test VM
    with pytest.raises(DamoError, match="no sysfs intervals_goal, added in Linux 6.15"):
        with OwnedKdamond(DamonSysfs(fake.root, writer=fake.write), setup_with_goal()):
            pass
    assert fake.get("kdamonds/nr_kdamonds") == "0"         # nothing left behind


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("goal,problem", [
    (["0", "3", "5ms", "10s"], "ACCESS_BP 0 is outside"),
    (["101%", "3", "5ms", "10s"], "ACCESS_BP 101% is outside"),
    (["4%", "0", "5ms", "10s"], "AGGRS 0 is outside"),
    (["4%", "3", "10s", "5ms"], "the minimum at most the maximum"),
    (["4%", "3", "10ms", "10s"], "the sampling interval (5000 us) is outside [10000, 10000000] us"),
    (["4%", "3", "5 parsecs", "10s"], "'5 parsecs' is not a time"),
    (["four", "3", "5ms", "10s"], "--monitoring_intervals_goal"),
])
def test_goal_out_of_range_is_one_line(tmp_path, goal, problem):
    result = run_cli("record", "zigzag", "-o", str(tmp_path / "x.data"), "--monitoring_intervals_goal", *goal)
    assert result.returncode == 2
    assert problem in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "x.data").exists()


def test_autotune_is_damos_goal():
    from damo.cli import command_parser
    from damo.record import intervals_goal_from_args

    args = command_parser(["record"]).parse_args(["zigzag", "--monitoring_intervals_autotune"])
    assert intervals_goal_from_args(args, MonitoringAttrs()) == (400, 3, 5000, 10_000_000)


# --- damo 3.4.3 reads our tuned record the same --------------------------------------------------

TUNED_CASES = [("access", []), ("access", ["--style", "recency-percentiles"]), ("access", ["--json"]),
               ("access", ["--raw_number"]), ("heatmap", ["--output", "raw", "--resol", "8", "20"]), ("heatmap", ["--resol", "10", "30"])]


@pytest.fixture(scope="module")
def tuned_json(tuned_record, tmp_path_factory):
    cfg, _ = tuned_record
    out = tmp_path_factory.mktemp("tuned") / "tuned.data"
    result = run_cli("record", str(cfg), "-o", str(out), "--output_type", "json_compressed",
                     "--monitoring_intervals_goal", "40%", "3", "5ms", "10s")
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("report,args", TUNED_CASES, ids=lambda a: " ".join(a) if isinstance(a, list) else a)
def test_damo_343_reads_our_tuned_record_the_same(tuned_json, report, args):
    import re
    import subprocess

    from reports_support import peer_or_skip

    peer = peer_or_skip("3.4.3")
    theirs = subprocess.run([*peer, "report", report, "-i", str(tuned_json), *args], capture_output=True, text=True,
                            timeout=300)
    assert theirs.returncode == 0, theirs.stderr
    color = ["--color", "always"] if report == "access" else []
    ours = run_cli("report", report, "-i", str(tuned_json), *args, *color, env={"NO_COLOR": "1"})
    assert ours.returncode == 0, ours.stderr
    expected = theirs.stdout if report == "access" else re.sub(r"\x1b\[[0-9;]*m", "", theirs.stdout)
    assert ours.stdout == expected


def test_tuned_access_report_uses_each_snapshots_interval(tuned_json):
    result = run_cli("report", "access", "-i", str(tuned_json), env={"NO_COLOR": "1"})
    lines = [line for line in result.stdout.splitlines() if line.startswith("intervals: ")]
    assert lines[0] == "intervals: sample 5 ms aggr 100 ms (max access hz 200)"
    assert len(set(lines)) > 3                   # the tuned intervals change from snapshot to snapshot
    assert "# target 40 % accesses per 3 aggrs, [5 ms, 10 s] sampling interval" in result.stdout


def test_kernel_record_keeps_the_tuned_intervals_and_footprints(tmp_path, monkeypatch):
    """The whole kernel record flow on a fake 6.15 tree: the goal is written, the tuned sampling
    interval is asked for once a second and kept per snapshot, and the workload's footprint,
    VMAs and stats are sampled beside."""
    import os

    from damo.sources.kernel import KernelRecorder

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    fake = FakeDamon(tmp_path, intervals_goal=True)
    fake.tried_regions = [(1 << 20, 2 << 20, 5, 1)]
    real_write = fake.write

    def write(path, value):          # the launched workload's pid is alive for the fake kernel
        if path.name == "pid_target":
            fake.alive_pids.add(int(value))
        if value == "update_tuned_intervals":
            fake.tuned_sample_us = 7000
        real_write(path, value)

    out = tmp_path / "k.data"
    request = RecordRequest(target=["sleep 2.5"], attrs=MonitoringAttrs(), out=str(out),
                            intervals_goal=(400, 3, 5000, 10_000_000))
    assert KernelRecorder(request, sysfs=DamonSysfs(fake.root, writer=write),
                          tracefs_root=tmp_path / "no-tracefs").run() == 0
    record = read_record(out)
    assert record.meta.intervals_goal == {"access_bp": 400, "aggrs": 3, "min_sample_us": 5000,
                                          "max_sample_us": 10_000_000}
    assert set(record.snapshot_sample_us.tolist()) == {7000}
    assert ("kdamonds/0/contexts/0/monitoring_attrs/intervals/intervals_goal/access_bp", "400") in fake.log
    fp = record.footprints
    assert fp.nr_samples >= 2 and (fp.proc_total("resident") > 0).all() and fp.has_sys.all()
    assert len(record.proc_vmas) == fp.nr_samples and record.proc_vmas[0]["procvmas"][0]["vmas"]
    stats = record.proc_stats[0]["proc_stats"]
    assert len(stats) == 2 and stats[1]["fields"][1] == "(sleep)"   # the (fake, gone) kdamond's, then the workload's


def test_vm_guest_gets_the_same_do_record_and_goal():
    from damo.cli import command_parser
    from damo.record import request_from_args
    from damo.sources.vm import guest_record_argv

    host = RecordRequest(target=["masim x.cfg"], attrs=MonitoringAttrs(), do_record=("access", "vmas"),
                         intervals_goal=(400, 3, 5000, 10_000_000))
    args = command_parser(["record"]).parse_args([*guest_record_argv(host, "/tmp/out.data"), "--", "masim x.cfg"])
    guest = request_from_args(args)
    assert (guest.do_record, guest.intervals_goal) == (host.do_record, host.intervals_goal)


def test_reports_without_one_hz_scale_say_samples_for_tuned_records(tuned_json):
    import json as json_mod

    result = run_cli("report", "heats", "-i", str(tuned_json), "--json")
    assert result.returncode == 0, result.stderr
    assert json_mod.loads(result.stdout)["aggregation_interval_us"] is None
