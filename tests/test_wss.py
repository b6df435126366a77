"""damo report wss and nr_regions: numbers against brute force, damo's text, plots."""
from __future__ import annotations

import json

import numpy as np
import pytest

from damo.model import RecordBuilder, RecordMeta
from damo.nr_regions import format_nr_regions, nr_regions_distributions
from damo.wss import (aggregated_wss, format_wss, percentile_values, wss_distributions, wss_per_snapshot,
                      wss_percentiles)

from conftest import make_record, run_cli
from reports_support import check_golden


def gappy_record(seed: int = 5, nr_snapshots: int = 60):
    """Regions with changing gaps and coverage, so re-aggregation has to add new pieces."""
    rng = np.random.default_rng(seed)
    b = RecordBuilder(RecordMeta(sample_us=5000, aggr_us=100000))
    for t in range(nr_snapshots):
        n = int(rng.integers(5, 40))
        pts = np.sort(rng.choice(np.arange(0, 4000), 2 * n, replace=False)) * 4096 + 0x100000
        keep = rng.random(n) < 0.8
        b.add(7, t * 100_000_000, (t + 1) * 100_000_000 + int(rng.integers(0, 1000)),
              pts[0::2][keep], pts[1::2][keep], rng.integers(0, 6, int(keep.sum())))
    return b.build()


def damo_adjust_wss(snapshots, acc_thres, sz_thres):
    """A slow, literal model of damo's snapshot aggregation, from its documented behaviour."""
    pieces = []                                   # [start, end, nr_accesses]
    for regions in snapshots:
        bonus = {}
        def add(start, end, acc):
            for i, p in enumerate(pieces):
                if p[1] <= start or end <= p[0]:
                    continue
                bonus[i] = max(bonus.get(i, 0), acc)
                if start < p[0]:
                    add(start, p[0], acc)
                if p[1] < end:
                    add(p[1], end, acc)
                return
            pieces.append([start, end, acc])
        for start, end, acc in regions:
            add(start, end, acc)
        for i, extra in bonus.items():
            pieces[i][2] += extra
    return sum(e - s for s, e, a in pieces if a >= acc_thres and e - s >= sz_thres)


def test_wss_per_snapshot_matches_brute_force():
    rec = make_record(nr_snapshots=25, nr_regions=30, seed=3)
    got = wss_per_snapshot(rec, acc_thres=2, sz_thres=100_000)
    for i, snap in enumerate(rec.snapshots()):
        sizes = (snap.end - snap.start).astype(np.int64)
        assert got[i] == sizes[(snap.nr_accesses >= 2) & (sizes >= 100_000)].sum()


def test_wss_handles_empty_snapshots():
    b = RecordBuilder()
    b.add(0, 0, 10, [0], [4096], [1])
    b.add(0, 10, 20, [], [], [])
    b.add(0, 20, 30, [0, 8192], [4096, 16384], [0, 3])
    assert wss_per_snapshot(b.build()).tolist() == [4096, 0, 8192]


@pytest.mark.parametrize("group", [(0, 2), (3, 9), (10, 30), (40, 60)])
def test_aggregation_matches_literal_model(group):
    rec = gappy_record()
    first, stop = group
    snaps = [list(zip(s.start.tolist(), s.end.tolist(), s.nr_accesses.tolist()))
             for s in (rec.snapshot(i) for i in range(first, stop))]
    for acc_thres, sz_thres in [(1, 1), (3, 1), (1, 20000), (6, 1)]:
        assert aggregated_wss(rec, first, stop, acc_thres, sz_thres) == damo_adjust_wss(snaps, acc_thres, sz_thres)


def test_percentile_rule():
    dist = np.arange(10) * 10
    assert percentile_values(dist, [0, 25, 50, 99, 100]).tolist() == [0, 20, 50, 90, 90]
    assert percentile_values(np.array([5]), [0, 100]).tolist() == [5, 5]


def test_distributions_collapse_sorted_targets():
    rec = make_record(nr_snapshots=30, nr_targets=2, seed=4)
    per = wss_distributions(rec, exclude_samples=3, collapse_targets=False)
    assert list(per) == [0, 1]
    for tid, dist in per.items():
        expect = np.sort(wss_per_snapshot(rec.for_target(tid))[3:])
        assert dist.tolist() == expect.tolist()
    collapsed = wss_distributions(rec, exclude_samples=3)
    assert list(collapsed) == [0] and collapsed[0].tolist() == (per[0] + per[1]).tolist()
    by_time = wss_distributions(rec, exclude_samples=3, sort=False, collapse_targets=False)
    assert by_time[1].tolist() == wss_per_snapshot(rec.for_target(1))[3:].tolist()


def test_wss_percentiles_api():
    rec = make_record(nr_snapshots=41, seed=6)
    sizes = np.sort(wss_per_snapshot(rec)[20:])
    got = wss_percentiles(rec, [0, 50, 100])
    assert got[0].tolist() == [sizes[0], sizes[10], sizes[-1]]


def test_wss_text_exact():
    b = RecordBuilder()
    for t, (hot, cold) in enumerate([(1, 0), (2, 1), (0, 0), (3, 1)]):
        b.add(0, t * 10**8, (t + 1) * 10**8, [0, 1 << 20, 3 << 20], [1 << 20, 3 << 20, 7 << 20], [hot, cold, 1])
    dists = wss_distributions(b.build(), exclude_samples=0)
    assert format_wss(dists, [0, 50, 100]) == (
        "# target_id\t0\n"
        "# <percentile> <wss>\n"
        "# avr:\t5.750 MiB\n"
        "  0       4.000 MiB |" + "*" * 33 + " " * 26 + "|\n"
        " 50       7.000 MiB |" + "*" * 59 + "|\n"
        "100       7.000 MiB |" + "*" * 59 + "|")
    assert format_wss(dists, [0, 100], raw_number=True, nr_cols_bar=0).splitlines()[2:] == [
        "# avr:\t6029312", "  0         4194304", "100         7340032"]
    assert format_wss(dists, [], all_wss=True).splitlines()[3:] == [
        "0 4.000 MiB", "1 5.000 MiB", "2 7.000 MiB", "3 7.000 MiB"]
    assert format_wss({0: np.zeros(0, dtype=np.int64)}, [0]) == "# target_id\t0\n# <percentile> <wss>\n# no snapshot"


def test_clip_cuts_regions_to_the_address_range():
    b = RecordBuilder()
    b.add(0, 0, 1, [0, 100, 300], [100, 200, 400], [1, 2, 3], [4, 5, 6])
    b.add(0, 1, 2, [500], [600], [7])                       # wholly outside: left empty
    b.add(0, 2, 3, [50, 150], [150, 350], [8, 9])
    clipped = b.build().clip(80, 320)
    assert clipped.offsets.tolist() == [0, 3, 3, 5]
    assert clipped.start.tolist() == [80, 100, 300, 80, 150]
    assert clipped.end.tolist() == [100, 200, 320, 150, 320]
    assert clipped.nr_accesses.tolist() == [1, 2, 3, 8, 9]
    assert clipped.age.tolist()[:3] == [4, 5, 6]
    assert clipped.start_ns.tolist() == [0, 1, 2]


def test_wss_of_an_address_range(tmp_path):
    from damo.formats import write_record
    b = RecordBuilder()
    for t, (hot, cold) in enumerate([(1, 0), (2, 1), (0, 0), (3, 1)]):
        b.add(0, t * 10**8, (t + 1) * 10**8, [0, 1 << 20, 3 << 20], [1 << 20, 3 << 20, 7 << 20], [hot, cold, 1])
    write_record(b.build(), tmp_path / "r.data")
    # [512 KiB, 4 MiB): half of the first region, the second, a quarter of the third.
    out = run_cli("report", "wss", "-i", str(tmp_path / "r.data"), "--exclude_samples", "0", "--raw_number",
                  "--nr_cols_bar", "0", "-r", "0", "101", "50", "--address_range", str(512 << 10), str(4 << 20))
    assert out.returncode == 0, out.stderr
    # Per snapshot: 1.5 MiB, 3.5 MiB, 1 MiB, 3.5 MiB.
    assert out.stdout.splitlines()[2:] == [
        "# avr:\t2490368", "  0         1048576", " 50         3670016", "100         3670016"]
    hexadecimal = run_cli("report", "wss", "-i", str(tmp_path / "r.data"), "--exclude_samples", "0", "--raw_number",
                          "--nr_cols_bar", "0", "-r", "0", "101", "50", "--address_range", "0x80000", "0x400000")
    assert hexadecimal.stdout == out.stdout
    out = run_cli("report", "wss", "-i", str(tmp_path / "r.data"), "--address_range", "0x10", "zz")
    assert (out.returncode, out.stderr.splitlines()[-1]) == (
        2, "damo: error: damo report wss: argument --address_range: invalid address value: 'zz'")
    out = run_cli("report", "wss", "-i", str(tmp_path / "r.data"), "--address_range", "10", "10")
    assert (out.returncode, out.stderr) == (
        2, "damo: error: --address_range: START (10) must be below END (10), both not negative\n")


def test_nr_regions_text_exact():
    b = RecordBuilder()
    for t in range(25):
        n = 3 + t % 4
        b.add(5, t, t + 1, np.arange(n) * 10, np.arange(n) * 10 + 10, np.zeros(n))
    dists = nr_regions_distributions(b.build())
    assert dists[5].tolist() == sorted([3 + t % 4 for t in range(20, 25)])
    assert format_nr_regions(dists, [0, 50, 100]) == (
        "# <percentile> <# regions>\n# target_id\t5\n# avr:\t4\n0\t3\n50\t4\n100\t6")


@pytest.fixture
def record_file(tmp_path):
    from damo.formats import write_record
    path = tmp_path / "damon.data"
    write_record(make_record(nr_snapshots=60, nr_regions=30, seed=1), path)
    return path


def test_golden_wss_and_nr_regions(record_file):
    for name, args in [("wss_default.txt", ["wss"]),
                       ("wss_raw_1_101_1.txt", ["wss", "--raw_number", "-r", "1", "101", "1"]),
                       ("wss_work_time.txt", ["wss", "--work_time", "300000", "-s", "time"]),
                       ("nr_regions.txt", ["nr_regions"])]:
        out = run_cli("report", *args, "-i", str(record_file))
        assert out.returncode == 0, out.stderr
        check_golden(name, out.stdout)


def test_wss_json(record_file):
    out = run_cli("report", "wss", "--json", "-r", "0", "101", "50", "-i", str(record_file))
    data = json.loads(out.stdout)
    rec = make_record(nr_snapshots=60, nr_regions=30, seed=1)
    sizes = np.sort(wss_per_snapshot(rec)[20:])
    assert data["targets"][0]["percentiles"] == {"0": int(sizes[0]), "50": int(sizes[20]),
                                                 "100": int(sizes[-1])}
    out = run_cli("report", "nr_regions", "--json", "-i", str(record_file))
    assert json.loads(out.stdout)["targets"][0]["percentiles"]["50"] == 30


def test_wss_plot(record_file, tmp_path, monkeypatch):
    import matplotlib.image as mpimg
    from damo import plot
    from damo.cli import main

    seen = {}
    real = plot.plot_distributions
    def spy(*args, **kwargs):
        seen.update(real(*args, **kwargs))
        return seen
    monkeypatch.setattr(plot, "plot_distributions", spy)
    png = tmp_path / "wss.png"
    assert main(["report", "wss", "-i", str(record_file), "-p", str(png)]) == 0
    xs, ys = seen["target 0"]
    rec = make_record(nr_snapshots=60, nr_regions=30, seed=1)
    sizes = np.sort(wss_per_snapshot(rec)[20:])
    assert xs.tolist() == [0, 25, 50, 75, 100]
    assert np.allclose(ys * (1 << 20), sizes[[0, 10, 20, 30, 39]])        # MiB on the y axis
    pixels = mpimg.imread(png)
    assert pixels.shape[:2] == (500, 800)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 2
    bad = run_cli("report", "wss", "-i", str(record_file), "-p", str(tmp_path / "x.bmp"))
    assert bad.returncode == 2 and "unsupported image type" in bad.stderr


def test_nr_regions_plot(record_file, tmp_path):
    import matplotlib.image as mpimg

    png = tmp_path / "nr.png"
    out = run_cli("report", "nr_regions", "-i", str(record_file), "--plot", str(png))
    assert out.returncode == 0, out.stderr
    assert mpimg.imread(png).shape[:2] == (500, 800)
