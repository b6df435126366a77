"""`damo record` on the simulator: the CLI, the record file, determinism, and the Done-when bounds."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli
from damo.accuracy import compare, damo_percentiles, record_heatmap, snapshot_wss
from damo.cli import main
from damo.formats import read_record
from damo.model import MonitoringAttrs, RecordBuilder, RecordMeta
from damo.recording import RecordRequest
from damo.sources import sim

CONFIGS = REPO / "masim" / "configs"


def wss_p50(path) -> int:
    """damo report wss's p50: skip the first 20 snapshots, sort, index int(0.5 * len)."""
    return damo_percentiles(snapshot_wss(read_record(path)), (50,))[50]


@pytest.fixture(scope="module")
def stairs(tmp_path_factory):
    out = tmp_path_factory.mktemp("stairs") / "s.data"
    proc = run_cli("record", str(CONFIGS / "stairs_30secs.cfg"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_stairs_30secs_p50_wss_within_damon_tests_bounds(stairs):
    out, _ = stairs
    assert 9_000_000 <= wss_p50(out) <= 11_000_000


def test_stairs_30secs_report_wss_raw_number(stairs):
    out, _ = stairs
    proc = run_cli("report", "wss", "--raw_number", "-r", "50", "51", "1", "-i", str(out))
    assert proc.returncode == 0, proc.stderr
    row = [line for line in proc.stdout.splitlines() if line.startswith(" 50")]
    assert len(row) == 1
    value = int(row[0].split()[1])
    assert value == wss_p50(out)
    assert 9_000_000 <= value <= 11_000_000


def test_record_file_and_metadata(stairs):
    out, proc = stairs
    assert (out.stat().st_mode & 0o777) == 0o600
    record = read_record(out)
    meta = record.meta
    assert record.nr_snapshots == 300
    assert (meta.target_kind, meta.target) == ("sim", str(CONFIGS / "stairs_30secs.cfg"))
    assert (meta.sample_us, meta.aggr_us, meta.update_us, meta.min_nr_regions, meta.max_nr_regions) == \
        (5000, 100000, 1000000, 10, 1000)
    assert meta.start_time == 0.0 and meta.extra["seed"] == 0 and meta.extra["clock"] == "virtual"
    assert meta.tool_version
    # snapshots tile the virtual clock: [0, 100 ms), [100 ms, 200 ms), ...
    assert record.start_ns.tolist() == [i * 100_000_000 for i in range(300)]
    assert record.end_ns.tolist() == [(i + 1) * 100_000_000 for i in range(300)]
    assert record.nr_accesses.max() <= 20 and record.nr_accesses.min() >= 0
    assert f"wrote 300 snapshots ({record.nr_regions_total} regions) to {out}" in proc.stderr


def test_zigzag_30secs_p50_wss_within_damon_tests_bounds(tmp_path):
    out = tmp_path / "z.data"
    assert main(["record", str(CONFIGS / "zigzag_30secs.cfg"), "-o", str(out)]) == 0
    assert 90_000_000 <= wss_p50(out) <= 110_000_000


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    cfg = str(CONFIGS / "zigzag.cfg")
    paths = [tmp_path / name for name in ("a", "b", "c")]
    for path, seed in zip(paths, ("3", "3", "4")):
        assert main(["record", cfg, "-o", str(path), "--seed", seed, "--timeout", "20"]) == 0
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b
    assert a != c


def test_deterministic_chunking_does_not_follow_the_wall_clock(tmp_path, monkeypatch):
    """The native writer's flush timer runs on the virtual clock: a slow machine writes the same bytes."""
    import damo.formats.native as native

    cfg = str(CONFIGS / "stairs_30secs.cfg")
    assert main(["record", cfg, "-o", str(tmp_path / "fast")]) == 0
    ticks = iter(range(10**9))
    monkeypatch.setattr(native.time, "monotonic", lambda: float(next(ticks)) * 10)   # 10 s per call
    assert main(["record", cfg, "-o", str(tmp_path / "slow")]) == 0
    assert (tmp_path / "fast").read_bytes() == (tmp_path / "slow").read_bytes()


def test_cli_zigzag_exits_0_and_rotates_the_old_output(tmp_path):
    cfg = str(CONFIGS / "zigzag.cfg")
    proc = run_cli("record", cfg, "-o", "x", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    first = (tmp_path / "x").read_bytes()
    assert read_record(tmp_path / "x").nr_snapshots == 700
    proc = run_cli("record", cfg, "-o", "x", "--timeout", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "x.old").read_bytes() == first
    assert read_record(tmp_path / "x").nr_snapshots == 20


def test_options_before_or_after_target_and_ops_sim(tmp_path):
    cfg = CONFIGS / "stairs_30secs.cfg"
    renamed = tmp_path / "stairs.txt"
    renamed.write_text(cfg.read_text())
    assert main(["record", "-s", "10000", "-a", "200000", str(cfg), "--timeout", "4", "-o", str(tmp_path / "a")]) == 0
    record = read_record(tmp_path / "a")
    assert (record.meta.sample_us, record.meta.aggr_us, record.nr_snapshots) == (10000, 200000, 20)
    assert record.nr_accesses.max() <= 20
    assert main(["record", "--ops", "sim", str(renamed), "--timeout", "1", "-o", str(tmp_path / "b")]) == 0
    assert read_record(tmp_path / "b").meta.target_kind == "sim"


def test_bad_config_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("a, 4096\n\nphase\n100\nb, 0, 4096, 1\n")
    proc = run_cli("record", str(bad), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"damo: error: {bad}:5:")
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("record", str(tmp_path / "missing.cfg"), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = run_cli("record", str(CONFIGS / "zigzag.cfg"), "-n", "2", "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "min_nr_regions" in proc.stderr


def test_ctrl_c_leaves_a_readable_record(tmp_path, monkeypatch):
    real = sim.snapshots

    def interrupted(*args, **kwargs):
        for i, snap in enumerate(real(*args, **kwargs)):
            if i == 37:
                raise KeyboardInterrupt
            yield snap

    monkeypatch.setattr(sim, "snapshots", interrupted)
    out = tmp_path / "int.data"
    assert main(["record", str(CONFIGS / "zigzag.cfg"), "-o", str(out)]) == 0
    record = read_record(out)
    assert record.nr_snapshots == 37
    assert record.end_ns[-1] == 37 * 100_000_000


def test_accuracy_against_truth():
    record, model = sim.simulate(RecordRequest(target=[str(CONFIGS / "zigzag_30secs.cfg")],
                                               attrs=MonitoringAttrs(), seed=0))
    acc = compare(record, model)
    for p in (25, 50, 75):
        assert abs(acc.wss_error(p)) < 0.05
    assert acc.heatmap_mean_abs_error < 0.02
    assert acc.nr_regions_within_bounds


def test_record_heatmap_averages_by_overlap():
    builder = RecordBuilder(RecordMeta(sample_us=5000, aggr_us=100000))
    # two snapshots of 10 ns each; address space 0..80 in 4 columns of 20
    builder.add(0, 0, 10, [0, 30], [30, 80], [10, 0], [0, 0])
    builder.add(0, 10, 20, [0, 40], [40, 80], [0, 20], [0, 0])
    heat = record_heatmap(builder.build(), 0, 20, 0, 80, rows=2, cols=4)
    assert heat.tolist() == [[10.0, 5.0, 0.0, 0.0], [0.0, 0.0, 20.0, 20.0]]
    heat = record_heatmap(builder.build(), 0, 20, 0, 80, rows=1, cols=2)
    # cell (0..20 ns, 0..40): 10 * 30 bytes * 10 ns / (20 * 40) ; (40..80): 20 * 40 * 10 / 800
    assert heat.tolist() == [[3.75, 10.0]]


def test_damo_percentiles_pick_like_damo():
    values = np.arange(100, 0, -1)
    assert damo_percentiles(values, (0, 50, 100), exclude=20) == {0: 1, 50: 41, 100: 80}


def test_a_masim_command_line_is_not_simulated():
    """`damo record "masim X.cfg"` runs masim for real under the kernel (or --vm); a lone X.cfg is simulated."""
    from damo.model import MonitoringAttrs
    from damo.record import pick_source
    from damo.recording import RecordRequest

    def source(*target):
        return pick_source(RecordRequest(target=list(target), attrs=MonitoringAttrs()), use_vm=False)

    assert source("masim/configs/zigzag.cfg") == "sim"
    assert source("masim masim/configs/zigzag.cfg") == "kernel"
    assert source("masim", "masim/configs/zigzag.cfg") == "kernel"


def test_bundled_configs_go_by_name(tmp_path):
    """After a plain install the configs are not in the cwd: `damo record zigzag` still finds them."""
    by_name = run_cli("record", "-o", str(tmp_path / "name.data"), "zigzag", cwd=tmp_path)
    assert by_name.returncode == 0, by_name.stderr
    by_file = run_cli("record", "-o", str(tmp_path / "file.data"), "zigzag.cfg", cwd=tmp_path)
    assert by_file.returncode == 0, by_file.stderr
    by_path = run_cli("record", "-o", str(tmp_path / "path.data"), str(REPO / "masim/configs/zigzag.cfg"))
    assert by_path.returncode == 0, by_path.stderr
    assert (tmp_path / "name.data").read_bytes() == (tmp_path / "path.data").read_bytes()
    assert (tmp_path / "file.data").read_bytes() == (tmp_path / "path.data").read_bytes()
    listed = subprocess.run([sys.executable, "-m", "masim", "--list"], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=tmp_path)
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert listed.returncode == 0 and "zigzag" in names and "stairs_30secs" in names
    assert all(Path(line.split()[1]).is_file() for line in listed.stdout.splitlines())


def test_a_report_without_a_record_says_how_to_make_one(tmp_path):
    done = run_cli("report", "wss", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, "damo: error: damon.data: no such file (make a record with "
                                                 "`damo record zigzag`, the bundled simulator, or name another "
                                                 "file with -i)\n")
