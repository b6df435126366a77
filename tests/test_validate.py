"""damo validate: every kind of violation, damo's error allowance, exit codes."""
from __future__ import annotations

import numpy as np
import pytest

from damo.cli import main
from damo.formats import write_record
from damo.model import RecordBuilder, RecordMeta
from damo.validate import Limits, validate_record

from conftest import make_record, run_cli

META = RecordMeta(target_kind="sim", sample_us=5000, aggr_us=100000)
MIB = 1 << 20


def good_builder(nr_snapshots: int = 50, nr_targets: int = 1) -> RecordBuilder:
    builder = RecordBuilder(META)
    for t in range(nr_snapshots):
        for target in range(nr_targets):
            starts = np.arange(10) * MIB
            builder.add(target, t * 100_000_000, (t + 1) * 100_000_000, starts, starts + MIB,
                        np.arange(10) % 21)
    return builder


def kinds(record, **limits) -> dict[str, int]:
    return {v.kind: v.count for v in validate_record(record, Limits(**limits)).violations}


def test_good_record_is_valid():
    assert kinds(good_builder().build()) == {}
    assert kinds(make_record(nr_targets=3)) == {}


def test_empty_record():
    report = validate_record(RecordBuilder(META).build())
    assert not report.ok and report.violations[0].lines == ["target snapshots is zero"]


def add_snapshot(builder, t, target=0, nr_regions=10, dur_ns=100_000_000, nr=1, starts=None, ends=None):
    if starts is None:
        starts = np.arange(nr_regions) * MIB
        ends = starts + MIB
    builder.add(target, t * 100_000_000, t * 100_000_000 + dur_ns, starts, ends, np.full(len(starts), nr))


def test_aggregation_interval_within_allowance_then_beyond():
    builder = good_builder(50)
    add_snapshot(builder, 50, dur_ns=150_000_000)    # 1 of 51: within ceil(51 * 2%) = 2
    assert kinds(builder.build()) == {}
    add_snapshot(builder, 52, dur_ns=50_000_000)     # 2 of 52: still within ceil(1.04) = 2
    assert kinds(builder.build()) == {}
    add_snapshot(builder, 54, dur_ns=79_999_000)     # 3 of 53 > ceil(1.06) = 2
    report = validate_record(builder.build())
    [v] = report.violations
    assert v.kind == "aggr" and v.count == 3
    assert v.lines[0] == ("snapshot 50 (target 0, end 5150000000 ns): aggregation interval 150000 us "
                          "out of [80000, 120000]")
    assert kinds(builder.build(), aggr_us=(50000, 150000)) == {}
    assert kinds(builder.build(), allow_error_percent=10) == {}


def test_allowance_is_per_target():
    builder = good_builder(50, nr_targets=2)
    for t in range(50, 53):
        add_snapshot(builder, t, target=1, dur_ns=200_000_000)
    found = validate_record(builder.build()).violations
    assert [(v.kind, v.count) for v in found] == [("aggr", 3)]
    assert all("target 1" in line for line in found[0].lines)


def test_nr_regions_bounds():
    builder = good_builder(10)
    add_snapshot(builder, 10, nr_regions=2)
    assert kinds(builder.build()) == {}                      # 1 of 11 is within ceil(11 * 2%) = 1
    add_snapshot(builder, 11, nr_regions=1300)
    assert kinds(builder.build()) == {"nr_regions": 2}
    assert kinds(builder.build(), allow_error_percent=0, nr_regions=(2, 1300)) == {}
    assert kinds(builder.build(), nr_regions=(5, 8)) == {"nr_regions": 12}


def test_nr_accesses_range_and_sampling_limit():
    builder = good_builder(10)
    add_snapshot(builder, 10, nr=22)       # within 0-24, but 22 > 100 ms / 5 ms = 20 samples
    add_snapshot(builder, 11, nr=-1)
    assert kinds(builder.build()) == {"nr_accesses": 10, "max_nr_accesses": 10}
    # A longer snapshot holds more samples: 105 ms -> ceil(21) = 21, 110 ms -> 22.
    builder = good_builder(10)
    add_snapshot(builder, 10, nr=22, dur_ns=110_000_000)
    assert kinds(builder.build()) == {}
    assert kinds(builder.build(), nr_accesses=(0, 21)) == {"nr_accesses": 10}


def test_sampling_limit_needs_known_sampling_interval():
    builder = RecordBuilder(RecordMeta())
    builder.add(0, 0, 100_000_000, [0, MIB, 2 * MIB], [MIB, 2 * MIB, 3 * MIB], [22, 0, 0])
    assert kinds(builder.build()) == {}


def test_empty_reversed_overlapping_and_unsorted_regions():
    builder = good_builder(5)
    mib = MIB
    add_snapshot(builder, 5, starts=[0, 2 * mib, 2 * mib, 5 * mib], ends=[mib, 2 * mib, 3 * mib, 4 * mib])
    add_snapshot(builder, 6, starts=[0, mib // 2, 3 * mib], ends=[mib, 2 * mib, 4 * mib])   # overlap
    add_snapshot(builder, 7, starts=[3 * mib, 0, 5 * mib], ends=[4 * mib, mib, 6 * mib])    # unsorted
    report = validate_record(builder.build())
    got = {v.kind: v for v in report.violations}
    assert got["empty_region"].count == 2
    assert got["empty_region"].lines == [
        f"snapshot 5 (target 0, end 600000000 ns): region [{2 * mib}, {2 * mib}) is empty or reversed",
        f"snapshot 5 (target 0, end 600000000 ns): region [{5 * mib}, {4 * mib}) is empty or reversed"]
    assert got["unsorted_regions"].count == 2
    assert got["unsorted_regions"].lines == [
        f"snapshot 6 (target 0, end 700000000 ns): region [{mib // 2}, {2 * mib}) starts before the "
        f"previous region's end {mib}",
        f"snapshot 7 (target 0, end 800000000 ns): region [0, {mib}) starts before the previous "
        f"region's end {4 * mib}"]
    # Touching regions are fine; regions of different snapshots never compare.
    assert set(got) == {"empty_region", "unsorted_regions"}


def test_snapshots_out_of_time_order():
    builder = RecordBuilder(META)
    starts = np.arange(5) * MIB
    for t in (0, 1, 3, 2, 4, 4):
        builder.add(0, t * 100_000_000, (t + 1) * 100_000_000, starts, starts + MIB, np.zeros(5))
    builder.add(1, 0, 100_000_000, starts, starts + MIB, np.zeros(5))   # another target may restart
    builder.add(0, 900_000_000, 800_000_000, starts, starts + MIB, np.zeros(5))
    got = {v.kind: v for v in validate_record(builder.build(), Limits(aggr_us=None)).violations}
    assert got["unsorted_snapshots"].count == 2
    assert got["unsorted_snapshots"].lines == [
        "snapshot 3 (target 0, end 300000000 ns): does not end after snapshot 2 (end 400000000 ns)",
        "snapshot 5 (target 0, end 500000000 ns): does not end after snapshot 4 (end 500000000 ns)"]
    assert got["snapshot_time"].lines == [
        "snapshot 7 (target 0, end 800000000 ns): starts at 900000000 ns, after its end"]


def test_regions_boundary():
    record = good_builder(3).build()
    assert kinds(record, regions_boundary=[(0, 10 * MIB)]) == {}
    assert kinds(record, regions_boundary=[(0, 5 * MIB), (6 * MIB, 10 * MIB)]) == {"boundary": 3}


def test_example_lines_are_limited_but_counted():
    builder = good_builder(3)
    add_snapshot(builder, 3, nr=30, nr_regions=100)
    report = validate_record(builder.build(), max_lines=4)
    v = {v.kind: v for v in report.violations}["nr_accesses"]
    assert v.count == 100 and len(v.lines) == 4


def test_cli_exit_codes_and_output(tmp_path, capsys):
    good = tmp_path / "good.data"
    write_record(good_builder(10).build(), good)
    assert main(["validate", "-i", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: valid (10 snapshots, 100 regions)\n"

    bad = tmp_path / "bad.data"
    builder = good_builder(3)
    add_snapshot(builder, 3, nr=30, nr_regions=30)
    write_record(builder.build(), bad)
    assert main(["validate", "-i", str(bad), "--max_lines", "2"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"invalid: snapshot 3 (target 0, end 400000000 ns): region [{i * MIB}, {(i + 1) * MIB}): "
                       f"nr_accesses 30 out of [0, 24]" for i in range(2)]
    assert "invalid: ... and 28 more (nr_accesses)" in out
    assert out[-1] == f"{bad}: invalid (60 violations of 2 kinds)"
    assert main(["validate", "-i", str(bad), "--nr_accesses", "0", "30", "--all"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert sum("nr_accesses 30 >" in line for line in out) == 30
    # damon-tests' chk_records.sh options
    assert main(["validate", "-i", str(good), "--aggr", "90000", "110000", "--nr_regions", "5", "1100",
                 "--nr_accesses", "0", "23"]) == 0


@pytest.mark.parametrize("args,message", [
    (["-i", "/nonexistent/x.data"], "/nonexistent/x.data: no such file"),
    (["--aggr", "5", "1"], "--aggr MIN 5 is larger than MAX 1"),
    (["--regions_boundary", "10-5"], "'10-5' is empty or reversed"),
    (["--nr_regions", "1"], "expected 2 arguments"),
])
def test_cli_bad_input_exits_2(tmp_path, capsys, args, message):
    good = tmp_path / "good.data"
    write_record(good_builder(3).build(), good)
    if "-i" not in args:
        args = ["-i", str(good), *args]
    assert main(["validate", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_subprocess(tmp_path):
    path = tmp_path / "r.data"
    write_record(make_record(), path)
    done = run_cli("validate", "-i", str(path))
    assert done.returncode == 0 and done.stdout == f"{path}: valid (30 snapshots, 600 regions)\n"


def test_vectorised_on_a_million_regions():
    """One pass of numpy per check: a million regions validate without Python loops over them."""
    n_snap, per = 1000, 1000
    starts = np.tile(np.arange(per, dtype=np.uint64) * 4096, n_snap)
    offsets = np.arange(n_snap + 1, dtype=np.int64) * per
    from damo.model import Record
    record = Record(META, np.zeros(n_snap, np.uint64), np.arange(n_snap) * 100_000_000,
                    np.arange(1, n_snap + 1) * 100_000_000, offsets, starts, starts + 4096,
                    np.full(n_snap * per, 25), np.zeros(n_snap * per, np.int64))
    got = {v.kind: v.count for v in validate_record(record).violations}
    assert got == {"nr_accesses": n_snap * per, "max_nr_accesses": n_snap * per}


def test_help():
    done = run_cli("validate", "--help")
    assert done.returncode == 0 and "--nr_accesses MIN MAX" in done.stdout
    assert "\n- regions are non-empty, sorted and non-overlapping within each snapshot;\n" in done.stdout


def slow_machine_record(interval_ms: float, aggr_us: int | None = 100000, outlier_ms: float | None = None):
    """A faithful record of a machine whose aggregations stretched to ``interval_ms`` (one to ``outlier_ms``)."""
    meta = RecordMeta(target_kind="vaddr", sample_us=5000 if aggr_us else None, aggr_us=aggr_us,
                      min_nr_regions=10, max_nr_regions=1000)
    builder = RecordBuilder(meta)
    now = 0
    for t in range(50):
        starts = np.arange(10) * MIB
        ns = int((outlier_ms if t == 25 and outlier_ms else interval_ms) * 1e6)
        builder.add(0, now, now + ns, starts, starts + MIB, np.arange(10) % 21)
        now += ns
    return builder.build()


@pytest.mark.parametrize("interval_ms, asked_us, outlier_ms, explicit, valid", [
    (150, 100000, None, [], True),            # a slow VM: 1.5x the asked interval
    (199, 100000, None, [], True),
    (350, 100000, None, [], True),            # a VM on a busy host: 3.5x, uniformly
    (150, 100000, 370, ["--allow_error", "0"], True),    # one interval 2.47x the record's median
    (150, 100000, 380, ["--allow_error", "0"], False),   # 2.53x: out of line with its own record
    (150, 100000, None, ["--aggr", "80000", "120000"], False),   # explicit limits win
    (150, None, None, [], False),             # nothing asked: damo's defaults
    (300, 200000, None, [], True),            # a record asked for 200 ms
    (150, 200000, None, [], False),           # shorter than 0.8x the asked interval
])
def test_limits_follow_what_the_record_asked_for(tmp_path, capsys, interval_ms, asked_us, outlier_ms, explicit,
                                                 valid):
    path = tmp_path / "r.data"
    write_record(slow_machine_record(interval_ms, asked_us, outlier_ms), path)
    assert main(["validate", "-i", str(path), *explicit]) == (0 if valid else 1)
    out = capsys.readouterr().out
    assert ("valid (50 snapshots" in out) == valid, out


def test_the_readme_ci_recipe_passes_on_a_vm_record(tmp_path):
    """A real `damo record --vm` of stairs_30secs, made in the QEMU TCG guest on a host at load 4
    (aggregations of 100-357 ms for 100 ms asked): validate and the README's diff gates pass."""
    from pathlib import Path
    import shutil

    record = Path(__file__).parent / "data" / "vm_stairs_30secs.data"
    for side in ("baseline", "new"):
        (tmp_path / side).mkdir()
        shutil.copy(record, tmp_path / side / "run1.data")
    done = run_cli("validate", "-i", "new/run1.data", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "new/run1.data: valid (298 snapshots, 11757 regions)\n"), done
    done = run_cli("report", "diff", "baseline/", "new/", "--fail-if", "wss.p50>+10%", "--fail-if", "hot_bytes>+5%",
                   "--markdown", "summary.md", "--json", "diff.json", "--heatmap-diff", "diff.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert all((tmp_path / name).stat().st_size > 0 for name in ("summary.md", "diff.json", "diff.png"))
