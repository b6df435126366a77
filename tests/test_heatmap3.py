"""damo report heatmap (damo 3.x): exact heat math against a slow model, text, options, images, errors.

The interop file compares with the real damo 3.4.3; these run without it.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from damo import heatmap, jobs
from damo.formats import write_record
from damo.model import Record, RecordBuilder, RecordMeta

from conftest import assert_reaped, make_record, run_cli
from reports_support import ANSI, check_golden
from test_reports_interop import gappy_record


def reference_heatmap(targets, tmin, tmax, amin, amax, tres, ares):
    """A slow model of damo 3.x's heat math: every (snapshot, region, pixel) with Python numbers."""
    tunit, aunit = (tmax - tmin) // tres, (amax - amin) // ares
    heat = [[None] * ares for _ in range(tres)]
    last_end = None
    for t in targets:
        rec = t.rec
        for i in range(rec.nr_snapshots):
            snap = rec.snapshot(i)
            s_start = t.first_start if i == 0 else snap.start_ns
            for start, end, acc, age in zip(snap.start.tolist(), snap.end.tolist(), snap.nr_accesses.tolist(),
                                            snap.age.tolist()):
                if end < amin or amin + aunit * ares < start:
                    continue
                seen_from = s_start
                if t.aggr_us is not None:
                    seen_from -= max(age, 0) * t.aggr_us * 1000
                if last_end is not None and seen_from < last_end:
                    seen_from = last_end
                value = acc / (t.aggr_us / 1e6) if t.aggr_us is not None else acc
                account_from = seen_from if t.aggr_us is not None else s_start
                for row in range(int((seen_from - tmin) / tunit), int((snap.end_ns - tmin) / tunit) + 1):
                    if not 0 <= row < tres:
                        continue
                    pt = int(tmin + row * tunit)
                    for col in range(int((start - amin) / aunit), int((end - amin) / aunit) + 1):
                        if not 0 <= col < ares:
                            continue
                        pa = amin + col * aunit
                        v = value * (min(snap.end_ns, pt + tunit) - max(account_from, pt)) * (
                            min(end, pa + aunit) - max(start, pa))
                        old = heat[row][col] or 0
                        heat[row][col] = float(v + old * (tunit * aunit)) / (tunit * aunit)
            last_end = snap.end_ns
    return heat


def odd_record(seed: int, gaps: bool = True) -> Record:
    """Regions with ages, a gap between snapshots, regions crossing pixel edges, some outside."""
    rng = np.random.default_rng(seed)
    meta = RecordMeta(target_kind="vaddr", sample_us=5000, aggr_us=100000, update_us=1000000)
    b = RecordBuilder(meta)
    t = 1_000_000_000
    for i in range(25):
        n = int(rng.integers(2, 9))
        bounds = np.sort(rng.choice(np.arange(1, 4000), n + 1, replace=False)) * 4096 + (1 << 30)
        dur = 100_000_000 + int(rng.integers(-3000, 3000))
        if gaps and i == 12:
            t += 250_000_000            # a pause: the next snapshot reaches back by age
        b.add(3, t, t + dur, bounds[:-1], bounds[1:], rng.integers(0, 21, n), rng.integers(0, 6, n))
        t += dur
    return b.build()


def targets_of(*records, paths=None):
    out = []
    for k, rec in enumerate(records):
        has = rec.meta.aggr_us is not None
        out.append(heatmap.TargetRecord(0, 0, None, int(rec.target_id[0]), rec.meta.aggr_us if has else None,
                                        rec.meta.sample_us if has else None, rec, int(rec.start_ns[0]), f"f{k}"))
    return out


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("resol", [(7, 9), (40, 80), (3, 200)])
def test_heats_equal_a_slow_model(seed, resol):
    rec = odd_record(seed)
    ts = targets_of(rec)
    g = heatmap.guides3(ts)[0]
    for arange in (g.hottest_area(), (g.areas[0][0] + 12345, g.areas[0][1] - 99999)):
        hm = heatmap.heatmap3(ts, (g.start_time, g.end_time), arange, resol)
        ref = reference_heatmap(ts, g.start_time, g.end_time, *arange, *resol)
        assert hm.touched.tolist() == [[v is not None for v in row] for row in ref]
        assert np.where(hm.touched, hm.heats, 0).tolist() == [[v or 0 for v in row] for row in ref]



@pytest.mark.parametrize("seed", [3, 4])
def test_one_row_path_equals_the_general_path(seed, monkeypatch):
    """The one-row shortcut (most snapshots) gives the general path's heats to the bit, and is taken."""
    rec = odd_record(seed)
    ts = targets_of(rec)
    g = heatmap.guides3(ts)[0]
    lo, hi = g.areas[0][0], g.areas[-1][1]
    cases = [(arange, resol) for arange in ((lo, hi), (lo + 12345, hi - 99999), (lo + (hi - lo) // 3, hi))
             for resol in ((7, 9), (40, 80), (3, 200), (100, 3))]
    taken = []
    shortcut = heatmap._Grid.add_one_row_regions
    monkeypatch.setattr(heatmap._Grid, "add_one_row_regions",
                        lambda self, *a: taken.append(shortcut(self, *a)) or taken[-1])
    fast = [heatmap.heatmap3(ts, (g.start_time, g.end_time), arange, resol) for arange, resol in cases]
    assert any(taken)
    monkeypatch.setattr(heatmap._Grid, "add_one_row_regions", lambda self, *a: False)
    for (arange, resol), hm in zip(cases, fast):
        ref = heatmap.heatmap3(ts, (g.start_time, g.end_time), arange, resol)
        assert hm.touched.tolist() == ref.touched.tolist()
        assert hm.heats.tobytes() == ref.heats.tobytes()

def _map_cases():
    a, b = odd_record(5), odd_record(6, gaps=False)
    shift = int(a.end_ns[-1]) + 50_000_000 - int(b.start_ns[0])     # b continues a's timeline after a pause
    b.start_ns += shift
    b.end_ns += shift
    for ts in (targets_of(a), targets_of(a, b)):
        g = heatmap.guides3(ts)[0]
        lo, hi = g.areas[0][0], g.areas[-1][1]
        for trange in ((g.start_time, g.end_time), (g.start_time - 300_000_000, g.end_time - 900_000_000)):
            for arange in ((lo, hi), (lo + 12345, hi - 99999)):
                for resol in ((7, 9), (40, 80), (3, 200), (100, 3), (2, 5)):
                    yield ts, trange, arange, resol
        # the split row's start inside the pause: the snapshot after it reaches back across the split
        ends, starts = ts[0].rec.end_ns, ts[0].rec.start_ns
        gap = int(np.argmax(starts[1:] - ends[:-1])) + 1
        middle = (int(ends[gap - 1]) + int(starts[gap])) // 2
        for resol in ((2, 5), (4, 7)):
            yield ts, (middle - 600_000_000, middle + 600_000_000), (lo, hi), resol


def test_two_processes_draw_the_map_one_process_draws(monkeypatch, recorded_forks):
    """Big maps are drawn in two processes (rows split between them): bit for bit the same heats
    and unknown pixels, with reach-back by age, a gap, two inputs and runs cut mid-row."""
    import os

    cases = list(_map_cases())
    monkeypatch.setenv(jobs.JOBS_ENV, "1")
    alone = [heatmap.heatmap3(*case) for case in cases]
    monkeypatch.delenv(jobs.JOBS_ENV)
    monkeypatch.setattr(heatmap, "PARALLEL_MIN_REGIONS", 0)
    monkeypatch.setattr(heatmap, "RUN_REGIONS", 5)       # runs of a snapshot or two: rows are skipped
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(jobs.threading, "active_count", lambda: 1)     # an earlier test's thread may linger
    forks = recorded_forks
    for case, ref in zip(cases, alone):
        hm = heatmap.heatmap3(*case)
        assert hm.touched.tobytes() == ref.touched.tobytes(), case[1:]
        assert hm.heats.tobytes() == ref.heats.tobytes(), case[1:]
    assert len(forks) == len(cases)


def test_no_second_process_beside_other_threads_or_when_told(monkeypatch):
    import os
    import threading

    ts = targets_of(odd_record(5))
    monkeypatch.setattr(heatmap, "PARALLEL_MIN_REGIONS", 0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    count, lingering = threading.active_count, threading.active_count() - 1     # an earlier test's threads
    monkeypatch.setattr(threading, "active_count", lambda: count() - lingering)
    assert heatmap._split_row(ts, 40) == 20
    assert heatmap._split_row(ts, 1) is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert heatmap._split_row(ts, 40) is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setenv(jobs.JOBS_ENV, "1")
    assert heatmap._split_row(ts, 40) is None
    monkeypatch.delenv(jobs.JOBS_ENV)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert heatmap._split_row(ts, 40) is None      # a fork would copy only this thread
    finally:
        stop.set()
        other.join()


def test_a_failing_second_process_leaves_the_map_right(monkeypatch, recorded_forks):
    """If the child that draws the later rows fails, this process draws them, and no child is left."""
    import os

    cases = list(_map_cases())[::7]
    monkeypatch.setenv(jobs.JOBS_ENV, "1")
    alone = [heatmap.heatmap3(*case) for case in cases]
    monkeypatch.delenv(jobs.JOBS_ENV)
    monkeypatch.setattr(heatmap, "PARALLEL_MIN_REGIONS", 0)
    monkeypatch.setattr(heatmap, "RUN_REGIONS", 5)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(jobs.threading, "active_count", lambda: 1)
    forks = recorded_forks
    parent, fill = os.getpid(), heatmap._fill

    def failing_in_child(grid, targets):
        if os.getpid() != parent:
            raise MemoryError("the child fails")
        fill(grid, targets)

    monkeypatch.setattr(heatmap, "_fill", failing_in_child)
    for case, ref in zip(cases, alone):
        hm = heatmap.heatmap3(*case)
        assert hm.touched.tobytes() == ref.touched.tobytes()
        assert hm.heats.tobytes() == ref.heats.tobytes()
    assert len(forks) == len(cases)
    assert_reaped(forks)


def test_samples_two_inputs_and_a_time_range_before_the_record():
    """No intervals: samples, not Hz; a second input continues the timeline; rows before the
    record's start are still drawn from its first snapshot the way damo truncates indexes."""
    a = odd_record(3)
    a.meta.aggr_us = a.meta.update_us = a.meta.sample_us = None
    b = odd_record(4, gaps=False)
    b.meta.aggr_us = b.meta.update_us = b.meta.sample_us = None
    ts = targets_of(a, b)
    assert ts[0].aggr_us is None
    g = heatmap.guides3(ts)[0]
    for trange in ((g.start_time, g.end_time), (g.start_time - 7_000_000, g.start_time + 900_000_000)):
        hm = heatmap.heatmap3(ts, trange, g.hottest_area(), (11, 13))
        ref = reference_heatmap(ts, *trange, *g.hottest_area(), 11, 13)
        assert np.where(hm.touched, hm.heats, 0).tolist() == [[v or 0 for v in row] for row in ref]
        assert hm.heat_unit == "samples"


@pytest.mark.parametrize("nr_pixels", [50, 100_000])     # one 16-bit radix pass, and two
def test_apply_in_order_rounds_like_one_by_one(nr_pixels):
    from damo.heats import apply_in_order

    rng = np.random.default_rng(0)
    key = np.concatenate([rng.integers(0, nr_pixels, 3000), np.zeros(5000, dtype=np.int64),    # one deep pixel
                          np.full(700, nr_pixels - 1), rng.integers(nr_pixels // 2, nr_pixels, 900)])
    value = rng.random(len(key)) * 1e9
    heat = np.zeros(nr_pixels)
    apply_in_order(heat, key, value, 12345.0)
    expect = [0.0] * nr_pixels
    for k, v in zip(key.tolist(), value.tolist()):
        expect[k] = (v + expect[k] * 12345.0) / 12345.0
    assert heat.tolist() == expect


@pytest.fixture
def files(tmp_path):
    gappy, sim = tmp_path / "gappy.data", tmp_path / "sim.data"
    write_record(gappy_record(), gappy)
    write_record(make_record(nr_snapshots=30, nr_regions=12, seed=4, nr_targets=2), sim)
    return {"gappy": gappy, "sim": sim, "dir": tmp_path}


def test_golden_heatmap_text(files):
    """damo 3.4.3's text, checked against damo itself when the goldens were made (interop tests)."""
    for name, args in [("heatmap3_default.txt", []), ("heatmap3_raw_6x5.txt", ["--output", "raw", "--resol", "6", "5"]),
                       ("heatmap3_guide.txt", ["--guide"])]:
        out = run_cli("report", "heatmap", *args, "-i", str(files["gappy"]))
        assert out.returncode == 0, out.stderr
        check_golden(name, out.stdout)
    hz = run_cli("report", "heatmap", "--resol", "10", "20", "-i", str(files["sim"]))
    check_golden("heatmap3_hz_10x20.txt", hz.stdout)
    assert "hz)" in hz.stdout.splitlines()[-4]


def test_colour_codes_and_unknown_pixels(files):
    forced = run_cli("report", "heatmap", "--color", "always", "--resol", "40", "80", "--address_range",
                     "0", "100M", "guided", "-i", str(files["gappy"]))
    lines = forced.stdout.splitlines()
    # the range runs past the hottest area into the gap: unknown pixels are blanks in level-4 colours
    assert "\x1b[48;5;232m\x1b[38;5;245m " in lines[0] and lines[0].endswith("\x1b[0m")
    plain = run_cli("report", "heatmap", "--resol", "40", "80", "--address_range", "0", "100M", "guided",
                    "-i", str(files["gappy"]))
    assert "\x1b[" not in plain.stdout and ANSI.sub("", forced.stdout) == plain.stdout
    assert plain.stdout.splitlines()[0].endswith(" ")
    raw = run_cli("report", "heatmap", "--output", "raw", "--resol", "4", "8", "--address_range", "0", "100M",
                  "guided", "-i", str(files["gappy"]))
    assert raw.stdout.splitlines()[-1].endswith("\tNaN")


def test_draw_range_all_and_several_address_ranges(files, capsys):
    _, out, _ = run_main(capsys, "report", "heatmap", "--draw_range", "all", "--resol", "5", "10",
                         "-i", str(files["gappy"]))
    assert out.count("# x-axis") == 3
    code, _, err = run_main(capsys, "report", "heatmap", "--address_range", "0", "1M", "guided", "--address_range",
                            "1M", "2M", "guided", "--resol", "5", "10", "-i", str(files["gappy"]))
    assert code == 2 and "no guided range #1" in err


def test_json(files, capsys):
    data = json.loads(run_main(capsys, "report", "heatmap", "--json", "--resol", "3", "4", "-i", str(files["sim"]))[1])
    assert data["resolution"] == [3, 4] and data["heat_unit"] == "hz" and len(data["heats"]) == 3


def test_images(files, monkeypatch, tmp_path):
    from damo import heats
    from damo.cli import main

    seen = []
    real = heats.draw_heatmap
    monkeypatch.setattr(heats, "draw_heatmap", lambda *a, **k: seen.append(real(*a, **k)))
    png = tmp_path / "h.png"
    assert main(["report", "heatmap", "--draw_range", "all", "--output", str(png), "--resol", "20", "30",
                 "-i", str(files["gappy"])]) == 0
    assert png.exists() and (tmp_path / "h.1.png").exists() and (tmp_path / "h.2.png").exists()
    assert len(seen) == 3 and seen[0]["colorbar"] == "accesses per aggregation interval"
    assert np.isnan(seen[0]["image"]).sum() == 0
    svg = tmp_path / "t.svg"
    assert main(["report", "heatmap", "--sort_temperature", "--output", str(svg), "--resol", "20", "30",
                 "-i", str(files["sim"]), str(files["sim"])]) == 0
    assert seen[-1]["ylabel"].startswith("size (") and "{unit}" not in seen[-1]["ylabel"] and seen[-1]["colorbar"] == "access rate (Hz)"
    assert svg.read_text().startswith("<?xml")


def test_sort_temperature_lays_regions_out_coldest_first():
    rec = odd_record(5, gaps=False)
    ts = targets_of(rec)
    g = heatmap.guides3(ts)[0]
    sorted_ts = heatmap.sort_by_temperature(ts, [g.hottest_area()], (1.0, 1.0))
    out = sorted_ts[0].rec
    for i in range(out.nr_snapshots):
        s = out.snapshot(i)
        assert s.start[0] == g.hottest_area()[0] and np.all(s.start[1:] == s.end[:-1])
        pct = np.trunc(s.nr_accesses * 100.0 / 20)
        temp = np.where(pct > 0, pct + s.age * 100000, -(pct + s.age * 100000))
        assert np.all(np.diff(temp) >= 0)


def run_main(capsys, *args):
    """``damo ARGS`` in this process (a subprocess costs a second): (exit code, stdout, stderr)."""
    from damo.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_bad_input(files, tmp_path, capsys):
    gappy = str(files["gappy"])
    cases = [
        (["--kdamond_idx", "3"], "--kdamond_idx 3: no such record"),
        (["--tid", "9"], "--tid 9: no such record"),
        (["--time_range", "0", "10"], "outside the record's time"),
        (["--address_range", "0", "4096"], "outside the record's addresses"),
        (["--df_passed"], "--df_passed"),
        (["--interactive_edit"], "--interactive_edit is not supported"),
        (["--time_range", "5s"], "--time_range: give START END [BASE]"),
        (["--address_range", "1", "2", "3", "4"], "--address_range: give START END [BASE]"),
        (["--resol", "0", "5"], "must be positive"),
        (["--output", str(tmp_path / "x.gif")], "unsupported image type"),
    ]
    for args, message in cases:
        code, _, err = run_main(capsys, "report", "heatmap", *args, "-i", gappy)
        assert code == 2, args
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)
    plain = make_record(nr_snapshots=5, nr_regions=4)
    plain.meta.update_us = None         # no intervals: damo reads it in samples
    p = tmp_path / "plain.data"
    write_record(plain, p)
    code, _, err = run_main(capsys, "report", "heatmap", "-i", str(files["sim"]), str(p))
    assert code == 2 and "some inputs have monitoring intervals and some not" in err
    other = make_record(nr_snapshots=5, nr_regions=4, seed=8)
    other.target_id[:] = 5
    write_record(other, tmp_path / "other.data")
    code, _, err = run_main(capsys, "report", "heatmap", "-i", str(files["sim"]), str(tmp_path / "other.data"))
    assert code == 2 and f"-i {tmp_path / 'other.data'}: no records of target 0" in err and "target(s) 5" in err
    code, _, err = run_main(capsys, "report", "heatmap", "--sort_temperature", "-i", gappy)
    assert code == 2 and "needs the monitoring intervals" in err


def test_all_is_our_banded_view(files, capsys):
    code, ours, _ = run_main(capsys, "report", "heatmap", "--all", "--resol", "20", "60", "-i", str(files["gappy"]))
    _, heats_all, _ = run_main(capsys, "report", "heats", "--heatmap", "stdout", "--all", "--resol", "20", "60",
                               "-i", str(files["gappy"]))
    assert code == 0 and ours == heats_all and "band 2" in ours


def test_time_and_size_units():
    assert heatmap.parse_time("1.5s") == 1_500_000_000 and heatmap.parse_time("200 ms") == 200_000_000
    assert heatmap.parse_time("42") == 42
    assert heatmap.parse_bytes("4 KiB") == 4096 and heatmap.parse_bytes("0x1000") == 4096
    assert heatmap.parse_bytes("10M") == 10 << 20
    assert math.isclose(heatmap.parse_time("0.5us"), 500)


def test_access_rate_against_the_simulators_truth():
    """Pixels in Hz against the model's true access rate: close in the median, hot cells near 200 Hz."""
    from pathlib import Path

    from damo.accuracy import heatmap_hz_error
    from damo.model import MonitoringAttrs
    from damo.recording import RecordRequest
    from damo.sources.sim import simulate

    cfg = Path(__file__).resolve().parent.parent / "masim" / "configs" / "stairs.cfg"
    rec, model = simulate(RecordRequest(target=[str(cfg)], attrs=MonitoringAttrs(), seed=1, timeout=30))
    err = heatmap_hz_error(rec, model)
    assert err.peak_truth_hz == pytest.approx(200, rel=0.01)       # 1 access per 5 ms sample
    assert err.median_abs_hz < 10 and err.worst_abs_hz < 0.4 * err.peak_truth_hz
    assert err.default_range_worst_abs_hz >= err.worst_abs_hz * 0.9
    ts = targets_of(rec)
    g = heatmap.guides3(ts)[0]
    hm = heatmap.heatmap3(ts, (int(rec.start_ns[0]), int(rec.end_ns[-1])), g.hottest_area(), (30, 80))
    assert hm.heats.max() == pytest.approx(200, rel=0.1)


def test_a_lone_area_is_not_weighed_and_several_are():
    """damo 3.x's guide weighs areas only to pick the hottest; a record with one area skips the pass."""
    b = RecordBuilder(RecordMeta(target_kind="vaddr", sample_us=5000, aggr_us=100000, update_us=1000000))
    for i in range(3):      # one area: regions end to end
        b.add(0, i * 100_000_000, (i + 1) * 100_000_000, [1 << 20, 2 << 20], [2 << 20, 3 << 20], [0, 5], [1, 1])
    g = heatmap.guides3(targets_of(b.build()))[0]
    assert g.areas == [(1 << 20, 3 << 20)] and g.heats == [None] and g.hottest_area() == g.areas[0]
    b = RecordBuilder(RecordMeta(target_kind="vaddr", sample_us=5000, aggr_us=100000, update_us=1000000))
    for i in range(3):      # two areas, a gap between them; the upper one is accessed
        b.add(0, i * 100_000_000, (i + 1) * 100_000_000, [1 << 20, 1 << 30], [2 << 20, (1 << 30) + 4096], [0, 5],
              [1, 1])
    g = heatmap.guides3(targets_of(b.build()))[0]
    assert len(g.areas) == 2 and g.heats[1] is not None
    assert g.hottest_area() == g.areas[1]
