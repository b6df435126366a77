"""damo.selection: each selection against a hand-built record whose answer is known."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from damo import selection
from damo.errors import DamoError
from damo.model import RecordBuilder


def interleaved_record():
    """Targets 7 and 3 alternate (7 first); snapshot k covers [k s, k+1 s) with one region."""
    builder = RecordBuilder()
    for k in range(6):
        tid = 7 if k % 2 == 0 else 3
        builder.add(tid, k * 10**9, (k + 1) * 10**9, [0x1000 * (k + 1)], [0x1000 * (k + 3)], [k])
    return builder.build()


def test_targets_are_numbered_in_first_seen_order_and_ranked_within_their_target():
    rec = interleaved_record()
    assert selection.target_order(rec).tolist() == [0, 1, 0, 1, 0, 1]
    assert selection.snapshot_rank(rec).tolist() == [0, 0, 1, 1, 2, 2]
    assert selection.skip_first_mask(rec, 2).tolist() == [False, False, False, False, True, True]


def test_select_target_keeps_only_its_snapshots_and_names_a_missing_one():
    rec = interleaved_record()
    three = selection.select_target(rec, 3)
    assert three.start_ns.tolist() == [10**9, 3 * 10**9, 5 * 10**9]
    assert three.nr_accesses.tolist() == [1, 3, 5]
    with pytest.raises(DamoError, match="no target 9 in the record"):
        selection.select_target(rec, 9)
    single = three.for_target(3)
    assert selection.select_target(single, 3) is single


@pytest.mark.parametrize("exclude, nr, skipped", [(20, 30, 20), (20, 5, 5), (0, 5, 0), (-2, 5, 3), (-9, 5, 0)])
def test_nr_skipped_follows_the_python_slice(exclude, nr, skipped):
    assert selection.nr_skipped(nr, exclude) == skipped == nr - len(range(nr)[exclude:])


def test_duration_window_starts_at_from_and_stops_at_the_first_snapshot_past_to():
    offsets = np.array([0.0, 0.5, 1.0, 2.5, 1.5, 3.0])
    assert selection.duration_window(offsets, (0.5, 2.0)).tolist() == [1, 2]     # 1.5 comes after 2.5
    assert selection.duration_window(offsets, (0.0, 9.0)).tolist() == [0, 1, 2, 3, 4, 5]


def test_clip_addresses_cuts_regions_and_rejects_a_reversed_range():
    rec = interleaved_record()
    clipped = selection.clip_addresses(rec, (0x2000, 0x4000))
    assert clipped.nr_snapshots == rec.nr_snapshots
    assert [(int(s), int(e)) for s, e in zip(clipped.start, clipped.end)] == [
        (0x2000, 0x3000), (0x2000, 0x4000), (0x3000, 0x4000)]
    assert clipped.regions_per_snapshot().tolist() == [1, 1, 1, 0, 0, 0]
    with pytest.raises(DamoError, match=r"--address_range: START \(16\) must be below END \(16\)"):
        selection.clip_addresses(rec, (16, 16))


def test_option_builders_parse_hex_addresses_and_show_their_defaults():
    parser = argparse.ArgumentParser()
    selection.add_target_option(parser, "the first")
    selection.add_time_range_option(parser, "the whole record")
    selection.add_address_range_option(parser, "count only these (default: all)")
    selection.add_exclude_samples_option(parser, 20)
    args = parser.parse_args(["--tid", "3", "--address_range", "0x1000", "8192", "--time_range", "1", "2"])
    assert (args.tid, args.address_range, args.time_range, args.exclude_samples) == (3, [4096, 8192], [1, 2], 20)
    assert all("default" in action.help for action in parser._actions if action.dest != "help")


@pytest.mark.parametrize("seed", range(5))
def test_a_rate_or_age_range_as_bounds_on_the_raw_column_equals_the_transformed_compare(seed):
    """_monotone_mask compares nr_accesses/age themselves; the result must equal comparing damo's
    access rate and age in us, at every boundary (unknown age -1 included, and huge spans)."""
    from damo.selection import _monotone_mask, access_percent, age_us

    rng = np.random.default_rng(seed)
    nr = rng.integers(0, 21, size=2000)
    age = rng.integers(-1, 50, size=2000)
    if seed == 4:
        age[0] = 1 << 30                       # a span too wide for the table: the direct path
    rate = lambda n: access_percent(n, 5000, 100000)
    usec = lambda a: age_us(a, 100000)
    for low, high in [(0, 100), (5, 5), (5, 6), (4, 96), (101, 200), (0, 0), (-5, 3)]:
        assert np.array_equal(_monotone_mask(nr, rate, low, high), (rate(nr) >= low) & (rate(nr) <= high))
    for low, high in [(0, 0), (0, 100000), (100000, 4_900_000), (150000, 150000), (1, 99999)]:
        assert np.array_equal(_monotone_mask(age, usec, low, high), (usec(age) >= low) & (usec(age) <= high))
