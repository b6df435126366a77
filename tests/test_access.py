"""``report access``, ``times``, ``record_info`` and the access-pattern filters, without the peer damo.

Golden files hold our text (checked against damo 3.4.3 by test_access_interop.py); regenerate them
with DAMO_UPDATE_GOLDEN=1. The filter tests compare a filtered report with the same report on a
record filtered by hand, region by region, and pin every range boundary.
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from damo.access import AccessFormat, format_report
from damo.cli import main
from damo.formats import read_record, write_record
from damo.model import RecordBuilder, RecordMeta
from damo.record_info import format_record_info
from damo.selection import (AccessFilter, access_percent, apply_access_filter, filter_from_args,
                            parse_size, parse_time_ns, temperatures)
from damo.times import format_times, matching_times

from access_records import FULL_META, filter_by_hand, gappy_record, multi_target_record, plain_record
from conftest import run_cli
from reports_support import check_golden


def report(record, style="detailed", format_args=None, **fmt):
    return format_report(record, AccessFormat(**fmt), style, format_args, target_ids=record.target_ids())


# --- golden text ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,record_fn,style", [
    ("access_gappy_detailed.txt", gappy_record, "detailed"),
    ("access_multi_detailed.txt", multi_target_record, "detailed"),
    ("access_gappy_simple_boxes.txt", gappy_record, "simple-boxes"),
    ("access_plain_temperature_percentiles.txt", plain_record, "temperature-percentiles"),
    ("access_gappy_recency_sz_hist.txt", gappy_record, "recency-sz-hist"),
])
def test_golden_text(name, record_fn, style):
    check_golden(name, report(record_fn(), style) + "\n")


def test_golden_color_codes_are_damos():
    text = report(plain_record(), color=True)
    assert "\x1b[48;5;232m\x1b[38;5;255m9\x1b[0m" in text        # gray colorset, level 9
    check_golden("access_plain_detailed_color.txt", text + "\n")


def test_golden_times_and_record_info():
    rec = gappy_record()
    check_golden("access_gappy_times.txt", format_times(matching_times(rec, AccessFilter(access_rate=(50, 100)))))
    check_golden("access_gappy_record_info.txt", format_record_info(rec) + "\n")


# --- numbers ----------------------------------------------------------------------------------

def test_temperature_is_weighted_sum_negated_when_idle():
    size = np.array([4096, 8192, 4096])
    pct = np.array([50, 0, 100])
    age = np.array([1_000_000, 2_000_000, 0])
    t = temperatures(size, pct, age, (1, 100, 100))
    assert t.tolist() == [4096 + 5000 + 100_000_000, -(8192 + 0 + 200_000_000), 4096 + 10000]


def test_access_percent_truncates_like_damo():
    # 7 of 20 samples: 35 %; 1 of 3 samples (sample 3 us, aggr 10 us): int(33.33) = 33
    assert access_percent(np.array([7]), 5000, 100000).tolist() == [35]
    assert access_percent(np.array([1]), 3, 10).tolist() == [30]


def test_units():
    assert parse_size("4K") == 4096 and parse_size("2MiB") == 2 << 20 and parse_size("1,024") == 1024
    assert parse_size("max") == 2**64 - 1 and parse_size("min") == 0
    assert parse_time_ns("100ms") == 100_000_000 and parse_time_ns("1 m 3 s") == 63 * 10**9
    assert parse_time_ns("3", 10**9) == 3 * 10**9


# --- filters: against a record filtered by hand --------------------------------------------------

def sizes_of(rec, i, j):
    s = rec.snapshot(i)
    return int(s.end[j] - s.start[j])


def check_same_report(rec, filt, keep):
    ours = apply_access_filter(rec, filt)
    hand = filter_by_hand(rec, keep)
    assert ours.same_data(hand)
    assert report(ours) == report(hand)


@pytest.mark.parametrize("low,high", [(10 << 20, 50 << 20), (0, 1), ("exact", "exact")])
def test_sz_region_filter_equals_hand_filter(low, high):
    rec = plain_record()
    if low == "exact":                            # both ends exactly on a region's size: inclusive
        low = high = sizes_of(rec, 0, 3)
    check_same_report(rec, AccessFilter(sz_region=(low, high)),
                      lambda i, j: low <= sizes_of(rec, i, j) <= high)


@pytest.mark.parametrize("low,high", [(0, 0), (1, 100), (50, 100), (100, 100), (5, 9)])
def test_access_rate_filter_boundaries(low, high):
    rec = gappy_record()
    pct = lambda i, j: int(rec.snapshot(i).nr_accesses[j]) * 5      # 20 samples per aggregation
    check_same_report(rec, AccessFilter(access_rate=(low, high)), lambda i, j: low <= pct(i, j) <= high)


@pytest.mark.parametrize("low,high", [(0, 0), (2_000_000, 4_000_000), (2_000_001, 3_999_999)])
def test_age_filter_boundaries(low, high):
    rec = gappy_record()
    age_us = lambda i, j: int(rec.snapshot(i).age[j]) * 100_000
    check_same_report(rec, AccessFilter(age_us=(low, high)), lambda i, j: low <= age_us(i, j) <= high)


@pytest.mark.parametrize("weights", [(0, 100, 100), (1, 2, 3)])
def test_temperature_filter_boundaries(weights):
    rec = gappy_record()

    def temp(i, j):
        s = rec.snapshot(i)
        size, pct, age = int(s.end[j] - s.start[j]), int(s.nr_accesses[j]) * 5, int(s.age[j]) * 100_000
        t = size * weights[0] + pct * weights[1] + age * weights[2]
        return t if pct > 0 else -t

    edge = temp(2, 1)
    for low, high in [(edge, edge), (edge + 1, 10**12), (-10**12, edge - 1)]:
        check_same_report(rec, AccessFilter(temperature=[(low, high)], temperature_weights=weights),
                          lambda i, j: low <= temp(i, j) <= high)


def test_address_filter_cuts_regions_at_the_range_ends():
    rec = plain_record()
    snap = rec.snapshot(0)
    lo, hi = int(snap.start[2]) + 4096, int(snap.end[4])        # inside region 2, exactly at region 4's end
    out = apply_access_filter(rec, AccessFilter(address=[(lo, hi)]))
    first = out.snapshot(0)
    assert int(first.start[0]) == lo and int(first.end[-1]) == hi
    assert first.nr_regions == 3
    assert first.nr_accesses.tolist() == snap.nr_accesses[2:5].tolist()


def test_snapshot_filters_are_inclusive():
    rec = gappy_record()
    t0, t1 = int(rec.start_ns[2]), int(rec.end_ns[3])
    out = apply_access_filter(rec, AccessFilter(snapshot_time=[(t0, t1)]))
    assert out.start_ns.tolist() == rec.start_ns[2:4].tolist()
    out = apply_access_filter(rec, AccessFilter(snapshot_time=[(t0, t1 - 1)]))
    assert out.start_ns.tolist() == rec.start_ns[2:3].tolist()
    out = apply_access_filter(rec, AccessFilter(snapshot_idx=[(1, 2), (5, 5)]))
    assert out.start_ns.tolist() == rec.start_ns[[1, 2, 5]].tolist()
    total = int((rec.end[rec.offsets[0]:rec.offsets[1]] - rec.start[rec.offsets[0]:rec.offsets[1]]).sum())
    out = apply_access_filter(rec, AccessFilter(sz_snapshot=[(total, total)]))
    assert total in [int((s.end - s.start).sum()) for s in out.snapshots()]


def test_snapshot_idx_counts_per_target():
    rec = multi_target_record()
    out = apply_access_filter(rec, AccessFilter(snapshot_idx=[(1, 1)]))
    assert out.target_id.tolist() == [0, 1] and out.start_ns.tolist() == [100_000_000, 100_000_000]


def test_filter_matching_nothing_prints_empty_snapshots():
    rec = plain_record()
    text = report(apply_access_filter(rec, AccessFilter(sz_region=(1, 2))))
    assert text.count("heatmap: n/a (no region)") == rec.nr_snapshots
    assert text.count("total size: 0 B") == rec.nr_snapshots
    assert text.endswith("record DAMON intervals: sample 5 ms, aggr 100 ms")


def test_zero_size_regions_have_no_heatmap():
    b = RecordBuilder(RecordMeta(**FULL_META))
    b.add(0, 0, 100_000_000, [4096, 8192], [4096, 8192], [3, 0], [1, 2])
    text = report(b.build())
    assert "heatmap: n/a (no region has a size)" in text and "total size: 0 B" in text


def test_record_without_intervals_is_one_error_line(tmp_path):
    b = RecordBuilder(RecordMeta(target_kind="vaddr"))
    b.add(0, 0, 100_000_000, [4096], [8192], [3])
    path = tmp_path / "r.data"
    write_record(b.build(), path)
    out = run_cli("report", "access", "-i", str(path))
    assert out.returncode == 2 and str(path) in out.stderr and "intervals" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args,words", [
    (["--access_rate", "80", "20"], ["--access_rate", "reversed"]),
    (["--sz_region", "1X", "2"], ["--sz_region", "1X"]),
    (["--age", "5s", "1s"], ["--age", "reversed"]),
    (["--address", "100", "50"], ["--address", "reversed"]),
    (["--address", "0", "100", "--address", "50", "200"], ["--address", "overlap"]),
    (["--temperature", "a", "1"], ["--temperature"]),
    (["--style", "fancy"], ["--style", "fancy"]),
    (["--format", "set", "region", "<index> <bogus>"], ["--format", "<bogus>", "<index>"]),
    (["--format", "set", "nowhere", "x"], ["--format", "record_head"]),
    (["--format", "set", "region"], ["--format"]),
])
def test_bad_options_one_line_exit_2(tmp_path, args, words):
    path = tmp_path / "r.data"
    write_record(plain_record(), path)
    out = run_cli("report", "access", "-i", str(path), *args)
    assert out.returncode == 2, out.stdout
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    for word in words:
        assert word in out.stderr


def test_filter_from_args_defaults_to_no_filter():
    ns = argparse.Namespace(sz_region=None, access_rate=None, age=None, address=None, sz_snapshot=None,
                            snapshot_time=None, snapshot_idx=None, temperature=None)
    assert filter_from_args(ns).is_empty()


# --- command line -----------------------------------------------------------------------------

def test_cli_times_record_info_and_convert_record_format(tmp_path, capsys):
    rec = gappy_record()
    path = tmp_path / "g.data"
    write_record(rec, path)
    assert main(["report", "times", "-i", str(path), "--access_rate", "50", "100"]) == 0
    assert capsys.readouterr().out == format_times(matching_times(rec, AccessFilter(access_rate=(50, 100))))
    assert main(["report", "record_info", "-i", str(path)]) == 0
    assert capsys.readouterr().out == format_record_info(rec) + "\n"
    assert main(["convert_record_format", "--record_file", str(path)]) == 0
    assert (path.stat().st_mode & 0o777) == 0o600
    assert read_record(path).same_data(rec)
    assert path.read_bytes()[:1] == b"x"                 # zlib: json_compressed, in place
    assert main(["report", "access", "-i", str(path), "--color", "never"]) == 0
    text = report(rec)
    assert text.count("\n") > 50
    assert capsys.readouterr().out == text           # long text: no final newline, as damo's pager


def test_times_joins_consecutive_snapshots():
    b = RecordBuilder(RecordMeta(**FULL_META))
    for t in (0, 1, 2, 5, 6):
        b.add(0, t * 10**8, (t + 1) * 10**8, [0], [4096], [20 if t != 1 else 0])
    rec = b.build()
    assert matching_times(rec, AccessFilter()) == [(0, 3 * 10**8), (5 * 10**8, 7 * 10**8)]
    assert matching_times(rec, AccessFilter(access_rate=(1, 100))) == [
        (0, 10**8), (2 * 10**8, 3 * 10**8), (5 * 10**8, 7 * 10**8)]
    assert format_times([(0, 10**8)]) == "0.000000-0.100000\n# (seconds)\n"


def test_the_heatmap_walk_ends_where_float_steps_cannot_advance():
    """A small region high in a 64-bit space: a pixel (51.2 bytes) is below float64's step there
    (2048), so damo 3.4.3's walk never ends; ours says so on the heatmap line."""
    start = 2**64 - 2**40
    b = RecordBuilder(RecordMeta(**FULL_META))
    b.add(0, 0, 100_000_000, [start], [start + 4096], [3], [1])
    text = report(b.build())
    assert "heatmap: n/a (a pixel is below float64's step at these addresses)" in text
    assert "total size: 4.000 KiB" in text
