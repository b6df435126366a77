"""damo report heats/heatmap: exact heat math, the guide, text, colours, images, --all."""
from __future__ import annotations

import json

import numpy as np
import pytest

from damo import heats
from damo.errors import DamoError
from damo.formats import write_record
from damo.model import RecordBuilder, RecordMeta

from conftest import make_record, run_cli
from reports_support import ANSI, check_golden
from test_reports_interop import gappy_record


def reference_heats(rec, tmin, tmax, amin, amax, tres, ares):
    """A slow model of damo 2.x's heat math: one region fragment at a time, Python floats."""
    tunit, aunit = (tmax - tmin) // tres, (amax - amin) // ares
    tmax, amax = tmin + tunit * tres, amin + aunit * ares
    tu, au = float(tunit), float(aunit)
    pixel_sz = tu * au
    grid = [[0.0] * ares for _ in range(tres)]
    for snap in list(rec.snapshots())[1:]:
        t, t_end = snap.start_ns, min(snap.end_ns, tmax)
        row = int(float(t - tmin) / tu)
        while t < t_end:
            t_next = min((row + 1) * tu + tmin, t_end)
            if row >= 0:
                for start, end, acc in zip(snap.start.tolist(), snap.end.tolist(), snap.nr_accesses.tolist()):
                    a, a_end = max(start, amin), min(end, amax)
                    col = int(float(a - amin) / au) if a < a_end else 0
                    while a < a_end:
                        a_next = min((col + 1) * au + amin, a_end)
                        total = acc * (t_next - t) * (a_next - a) + grid[row][col] * pixel_sz
                        grid[row][col] = float(total) / pixel_sz
                        a, col = a_next, col + 1
            t, row = t_next, row + 1
    return np.array(grid)


@pytest.mark.parametrize("resol", [(7, 9), (40, 13), (3, 50)])
def test_pixel_heats_are_damos_floats(resol):
    rec = make_record(nr_snapshots=12, nr_regions=15, seed=2)
    tmin, tmax = int(rec.end_ns[0]), int(rec.end_ns[-1])
    amin, amax = int(rec.start.min()) + 12345, int(rec.end.max()) - 999
    grid = heats.heat_grid(rec, 0, (tmin, tmax), (amin, amax), resol)
    ref = reference_heats(rec, tmin, tmax, amin, amax, *resol)
    assert grid.heats.tolist() == ref.tolist()          # bit for bit
    assert grid.tmax - grid.tmin == grid.tunit * resol[0] and grid.amax - grid.amin == grid.aunit * resol[1]


def test_time_range_inside_the_record():
    rec = make_record(nr_snapshots=20, nr_regions=10, seed=3)
    tmin, tmax = 550_000_000, 1_430_000_000          # cuts snapshots on both ends
    amin, amax = int(rec.start.min()), int(rec.end.max())
    grid = heats.heat_grid(rec, 0, (tmin, tmax), (amin, amax), (11, 6))
    assert grid.heats.tolist() == reference_heats(rec, tmin, tmax, amin, amax, 11, 6).tolist()


def test_chunking_keeps_damos_order(monkeypatch):
    rec = make_record(nr_snapshots=30, nr_regions=40, seed=4)
    args = (rec, 0, (int(rec.end_ns[0]), int(rec.end_ns[-1])), (int(rec.start.min()), int(rec.end.max())), (5, 7))
    whole = heats.heat_grid(*args).heats
    monkeypatch.setattr(heats, "CHUNK_REGIONS", 37)
    assert heats.heat_grid(*args).heats.tolist() == whole.tolist()


@pytest.mark.parametrize("python_step, round_cost", [(1.0, 0.0), (0.0, 1.0)])
def test_both_accumulation_methods_are_exact(monkeypatch, python_step, round_cost):
    """Pixel by pixel in Python floats, or in vectorised rounds: the same floats as damo."""
    monkeypatch.setattr(heats, "SECONDS_PER_PYTHON_STEP", python_step)
    monkeypatch.setattr(heats, "SECONDS_PER_ROUND", round_cost)
    rec = make_record(nr_snapshots=15, nr_regions=30, seed=9)
    tmin, tmax = int(rec.end_ns[0]), int(rec.end_ns[-1])
    amin, amax = int(rec.start.min()), int(rec.end.max())
    for resol in [(2, 3), (9, 11)]:
        grid = heats.heat_grid(rec, 0, (tmin, tmax), (amin, amax), resol)
        assert grid.heats.tolist() == reference_heats(rec, tmin, tmax, amin, amax, *resol).tolist()


def test_heat_is_mean_access_frequency():
    """A region accessed 10 times per aggregation over the whole map gives heat 10 everywhere."""
    b = RecordBuilder(RecordMeta(aggr_us=100000, sample_us=5000))
    for t in range(5):
        b.add(1, t * 10**8, (t + 1) * 10**8, [0, 1 << 20], [1 << 20, 2 << 20], [10, 0])
    grid = heats.heat_grid(b.build(), 1, (10**8, 5 * 10**8), (0, 1 << 20), (4, 8))
    assert np.allclose(grid.heats, 10.0)


def test_guide_areas_and_hottest():
    rec = gappy_record()
    (g,) = heats.guides(rec)
    assert g.target_id == 42
    assert g.start_time == int(rec.end_ns[0]) and g.end_time == int(rec.end_ns[-1])
    assert g.areas == [(0x55550000_0000, 0x55550000_0000 + (40 << 20)),
                       (0x7f00_0000_0000, 0x7f00_0000_0000 + (300 << 20)),
                       (0x7ffd_0000_0000, 0x7ffd_0000_0000 + (1 << 20))]
    # heats: size * samples of every accessed region touching the area
    sizes = (rec.end - rec.start).astype(np.int64) * rec.nr_accesses
    in_first = (rec.start < np.uint64(g.areas[0][1])) & (rec.nr_accesses != 0)
    assert g.heats[0] == int(sizes[in_first].sum())
    per_byte = [g.heat_per_byte(i) for i in range(3)]
    assert g.hottest_area() == g.areas[per_byte.index(max(per_byte))]


def test_guide_text_and_targets_order():
    rec = make_record(nr_snapshots=5, nr_regions=4, nr_targets=2, seed=1)
    text = heats.format_guides(heats.guides(rec))
    lines = text.splitlines()
    assert lines[0] == "target_id:0" and lines[1] == "time: 100000000-500000000 (400 ms)"
    assert lines[2] == "region\t 0: 00000139637976727552-00000139638245163008 (256.000 MiB)"
    assert lines[3] == "target_id:1"


def test_guide_narrows_gaps_like_damo():
    """Gaps seen in every snapshot shrink to their common part; the areas grow accordingly."""
    b = RecordBuilder()
    b.add(3, 0, 10, [1000, 5000], [2000, 9000], [1, 1])        # gap 2000-5000
    b.add(3, 10, 20, [1000, 3000], [2500, 9000], [1, 0])       # gap 2500-3000
    b.add(3, 20, 30, [1000, 4000], [2000, 9000], [0, 1])       # gap 2000-4000
    (g,) = heats.guides(b.build())
    assert g.areas == [(1000, 2500), (3000, 9000)]
    assert g.heats == [1000 + 1500, 4000 + 5000]


def test_digits_and_plain_text():
    grid = heats.HeatGrid(0, 0, 20, 0, 4096 * 3, 10, 4096, np.array([[0.0, 1.0, 2.0], [10.0, 5.0, 0.5]]))
    assert heats.heat_digits(grid.heats).tolist() == [[0, 0, 1], [8, 4, 0]]
    assert heats.format_stdout_heatmap(grid, color=False) == "\n".join([
        "001", "840", "# access_frequency: 0123456789",
        "# x-axis: space (0-12288: 12.000 KiB)", "# y-axis: time (0-20: 20 ns)",
        "# resolution: 3x2 (4.000 KiB and 10 ns for each character)"])
    colored = heats.format_stdout_heatmap(grid, "flame", color=True)
    assert colored.splitlines()[0] == ("\x1b[48;5;232m\x1b[38;5;239m0" * 2 + "\x1b[48;5;1m\x1b[38;5;235m1"
                                       + "\x1b[0m")
    assert ANSI.sub("", colored) == heats.format_stdout_heatmap(grid, color=False)
    assert heats.format_raw(grid).splitlines() == ["0\t0\t0.0", "0\t4096\t1.0", "0\t8192\t2.0",
                                                   "10\t0\t10.0", "10\t4096\t5.0", "10\t8192\t0.5"]
    assert heats.format_raw(grid, abs_time=True, abs_addr=True).splitlines()[4] == "10\t4096\t5.0"


@pytest.fixture
def gappy_file(tmp_path):
    path = tmp_path / "gappy.data"
    write_record(gappy_record(), path)
    return path


def test_golden_heats(gappy_file):
    for name, args in [("heats_stdout_30x70.txt", ["heats", "--heatmap", "stdout", "--resol", "30", "70"]),
                       ("heats_stdout_40x80.txt", ["heats", "--heatmap", "stdout", "--resol", "40", "80"]),
                       ("heats_guide.txt", ["heats", "--guide"]),
                       ("heats_raw_8x6.txt", ["heats", "--resol", "8", "6"]),
                       ("heats_all_20x60.txt", ["heats", "--heatmap", "stdout", "--resol", "20", "60", "--all"])]:
        out = run_cli("report", *args, "-i", str(gappy_file))
        assert out.returncode == 0, out.stderr
        check_golden(name, out.stdout)


def test_colour_only_when_asked_or_on_a_terminal(gappy_file):
    piped = run_cli("report", "heats", "--heatmap", "stdout", "--resol", "40", "80", "-i", str(gappy_file))
    assert "\x1b[" not in piped.stdout and piped.stdout.splitlines()[-1].startswith("# resolution: 80x40")
    forced = run_cli("report", "heats", "--heatmap", "stdout", "--resol", "40", "80", "--color", "always",
                     "-i", str(gappy_file))
    assert forced.stdout.count("\x1b[0m") == 41 and ANSI.sub("", forced.stdout) == piped.stdout
    assert heats.use_color("auto") is False                  # pytest captures stdout: not a terminal


def test_no_color_env_wins_on_a_terminal(monkeypatch):
    class Tty:
        def isatty(self):
            return True
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert heats.use_color("auto", Tty()) is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert heats.use_color("auto", Tty()) is False


def test_json_grid(gappy_file):
    out = run_cli("report", "heats", "--json", "--resol", "4", "5", "-i", str(gappy_file))
    data = json.loads(out.stdout)
    rec = gappy_record()
    g = heats.guides(rec)[0]
    grid = heats.heat_grid(rec, 42, (g.start_time, g.end_time), g.hottest_area(), (4, 5))
    assert data["heats"] == grid.heats.tolist() and data["resolution"] == [4, 5]
    assert data["address_range"] == [grid.amin, grid.amax]


def test_all_areas_bands(gappy_file):
    rec = gappy_record()
    g = heats.guides(rec)[0]
    grid = heats.compute_grid(rec, None, None, None, (20, 100), all_areas=True)
    assert [(b.start, b.col) for b in grid.bands] == [(g.areas[0][0], 0), (g.areas[1][0], grid.bands[1].col),
                                                    (g.areas[2][0], grid.bands[2].col)]
    assert sum(b.ncols for b in grid.bands) == 100 and min(b.ncols for b in grid.bands) >= 1
    for band in grid.bands:        # every band is the plain heatmap of that area
        alone = heats.heat_grid(rec, 42, (g.start_time, g.end_time), (band.start, band.end), (20, band.ncols))
        assert grid.heats[:, band.col:band.col + band.ncols].tolist() == alone.heats.tolist()
    assert heats.band_columns([10 << 20, 300 << 20, 1 << 12], 500) == [16, 479, 5]


def test_png_heatmap(gappy_file, tmp_path, monkeypatch):
    import matplotlib.image as mpimg

    seen = {}
    real = heats.draw_heatmap
    monkeypatch.setattr(heats, "draw_heatmap", lambda *a, **k: seen.update(real(*a, **k)))
    png = tmp_path / "heat.png"
    out = run_cli("report", "heats", "--heatmap", str(png), "-i", str(gappy_file))
    assert out.returncode == 0, out.stderr
    pixels = mpimg.imread(png)
    assert pixels.shape[:2] == (600, 1000)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50
    from damo.cli import main
    assert main(["report", "heats", "--heatmap", str(tmp_path / "h.svg"), "--resol", "30", "40",
                 "-i", str(gappy_file)]) == 0
    rec = gappy_record()
    g = heats.guides(rec)[0]
    grid = heats.heat_grid(rec, 42, (g.start_time, g.end_time), g.hottest_area(), (30, 40))
    assert np.array_equal(seen["image"], grid.heats.T)
    assert seen["xlabel"] == "time (s, from record start)" and seen["ylabel"].startswith("address (MiB")
    assert seen["extent"] == (0.0, (grid.tmax - grid.tmin) / 1e9, 0.0, (grid.amax - grid.amin) / (1 << 20))
    assert (tmp_path / "h.svg").read_text().startswith("<?xml")


def test_bad_options(gappy_file, tmp_path):
    out = run_cli("report", "heats", "--resol", "500", "500", "--time_range", "0", "100", "-i", str(gappy_file))
    assert out.returncode == 2 and "smaller than its resolution" in out.stderr
    out = run_cli("report", "heats", "--heatmap", str(tmp_path / "x.gif"), "-i", str(gappy_file))
    assert out.returncode == 2 and "unsupported image type" in out.stderr
    out = run_cli("report", "heats", "--tid", "7", "-i", str(gappy_file))
    assert out.returncode == 2 and "no target 7" in out.stderr
    with pytest.raises(DamoError):
        heats.heat_grid(gappy_record(), 42, (0, 10), (0, 10**9), (20, 20))
