"""``damo report access`` against the real damo 3.4.3, on the same records (json_compressed for damo).

With ``--color always`` our text must equal 3.4.3's byte for byte (damo always colours), down to
the final newline that damo's pager drops from long text; without colour it must equal 3.4.3's
text with the ANSI codes stripped.

Known, documented differences (docs/reports.md) are asserted as such: after a size, access-rate or
age filter 3.4.3 still prints the unfiltered snapshot's "total size"; ours is the regions shown.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from damo.formats import write_record
from damo.model import MonitoringAttrs

from access_records import gappy_record, multi_target_record, plain_record
from conftest import REPO, run_cli
from reports_support import peer_or_skip, strip_ansi

pytestmark = pytest.mark.interop


def masim_record(config: str, seconds: float):
    from damo.recording import RecordRequest
    from damo.sources.sim import simulate

    request = RecordRequest(target=[str(REPO / "masim" / "configs" / config)], attrs=MonitoringAttrs(),
                            timeout=seconds)
    return simulate(request)[0]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    d = tmp_path_factory.mktemp("access_interop")
    out = {}
    for name, rec in [("plain", plain_record()), ("multi", multi_target_record()), ("gappy", gappy_record()),
                      ("stairs", masim_record("stairs.cfg", 2.0)), ("zigzag", masim_record("zigzag.cfg", 2.0))]:
        native, theirs = d / f"{name}.data", d / f"{name}.json_compressed"
        write_record(rec, native)
        write_record(rec, theirs, "json_compressed")
        out[name] = (native, theirs)
    return out


STYLE_CASES = [(name, ["--style", style]) for name, style in [
    ("plain", "detailed"), ("stairs", "detailed"), ("zigzag", "detailed"), ("gappy", "detailed"),
    ("multi", "detailed"), ("gappy", "simple-boxes"), ("stairs", "temperature-sz-hist"),
    ("gappy", "recency-sz-hist"), ("plain", "cold-memory-tail"), ("gappy", "recency-percentiles"),
    ("plain", "idle-time-percentiles"), ("stairs", "temperature-percentiles"),
    ("multi", "temperature-percentiles"), ("gappy", "cold"), ("zigzag", "hot")]]

OPTION_CASES = [
    ("plain", ["--raw_number"]),
    ("gappy", ["--raw_number", "--style", "temperature-percentiles"]),
    ("plain", ["--total_sz_only"]),
    ("gappy", ["--sort_regions_by", "temperature", "--sort_regions_dsc", "temperature"]),
    ("plain", ["--sort_regions_by", "access_rate", "age"]),
    ("gappy", ["--temperature_weights", "1", "2", "3"]),
    ("plain", ["--percentiles_range", "0", "101", "10", "--style", "temperature-percentiles"]),
    ("gappy", ["--hist_cumulate", "--style", "temperature-sz-hist"]),
    ("gappy", ["--hist_logscale", "--style", "recency-sz-hist"]),
    ("gappy", ["--snapshot_heatmap_width", "30", "--snapshot_heatmap_colorset", "flame"]),
    ("gappy", ["--snapshot_heatmap_static"]),
    ("plain", ["--format", "set", "region", "<index> <end address> <access rate> <temperature> <size>"]),
    ("multi", ["--format", "set", "record_head", "<target id> <duration> <abs start time> <intervals>",
               "--format", "append", "snapshot_tail",
               "\\n<number of regions> <abs end time> <positive access samples ratio>"]),
    ("plain", ["--format", "set", "snapshot_head", "<intervals tuning status>|<region box colors>"]),
    ("multi", ["--json"]),
    ("gappy", ["--json", "--raw_number"]),
    ("gappy", ["--raw_form"]),
    ("plain", ["--raw_form", "--raw_number"]),
    ("multi", ["--raw_form", "--age", "200ms", "max"]),      # several targets, some regions filtered out
    ("plain", ["--style", "simple-boxes", "--region_box_values", "size", "age", "access_rate",
               "--region_box_scales", "linear", "log", "linear"]),
]

FILTER_CASES = [
    ("plain", ["--sz_region", "10M", "50M"]),
    ("gappy", ["--access_rate", "50", "100"]),
    ("gappy", ["--age", "2s", "4s"]),
    ("gappy", ["--address", str(0x7f00_0000_0000 + (10 << 20)), str(0x7f00_0000_0000 + (90 << 20)),
               "--address", str(0x7ffd_0000_0000), str(0x7ffd_0000_0000 + (1 << 20))]),
    ("gappy", ["--sz_snapshot", "0", "300M"]),
    ("gappy", ["--snapshot_time", "5s", "9s"]),
    ("plain", ["--snapshot_idx", "1", "2", "--snapshot_idx", "4", "4"]),
    ("multi", ["--snapshot_idx", "1", "1"]),
    ("gappy", ["--temperature", "-1000000000", "0", "--temperature", "500000000", "700000000"]),
    ("gappy", ["--access_rate", "10", "max", "--address", str(0x7f00_0000_0000), str(0x7f00_1000_0000),
               "--temperature", "0", "600000000", "--style", "temperature-percentiles"]),
    ("plain", ["--sz_region", "1", "2"]),                       # matches nothing: empty snapshots
    ("plain", ["--snapshot_idx", "100", "200"]),                # matches no snapshot
]

# Filters after which 3.4.3 keeps printing the file's unfiltered total size.
PATTERN_FILTERS = ("--sz_region", "--access_rate", "--age")


def peer_343() -> list[str]:
    """damo 3.4.3's argv; it also needs `file` (record type detection) and `less` (its pager)."""
    import os
    import shutil
    for tool in ("file", "less"):
        if not shutil.which(tool):
            if os.environ.get("CI") == "true":
                pytest.fail(f"damo 3.4.3 needs `{tool}`; .ci/run installs it")
            pytest.skip(f"damo 3.4.3 needs `{tool}`, which is not installed")
    return peer_or_skip("3.4.3")


def run_both(records, name, args, color=True):
    peer = peer_343()
    native, damo_file = records[name]
    theirs = subprocess.run([*peer, "report", "access", "-i", str(damo_file), *args], capture_output=True,
                            text=True, timeout=600)
    assert theirs.returncode == 0, theirs.stderr
    ours = run_cli("report", "access", "-i", str(native), *args,
                   *(["--color", "always"] if color else []), env={"NO_COLOR": "1"})
    assert ours.returncode == 0, ours.stderr
    return ours.stdout, theirs.stdout


def compare(records, name, args):
    ours, theirs = run_both(records, name, args)
    if any(a in PATTERN_FILTERS for a in args):
        ours_lines, theirs_lines = ours.split("\n"), theirs.split("\n")
        assert len(ours_lines) == len(theirs_lines)
        for a, b in zip(ours_lines, theirs_lines):
            if not a.startswith("total size:"):
                assert a == b
        return
    assert ours == theirs


@pytest.mark.parametrize("name,args", STYLE_CASES, ids=[f"{n}-{a[1]}" for n, a in STYLE_CASES])
def test_styles_match_damo_343(records, name, args):
    compare(records, name, args)


@pytest.mark.parametrize("name,args", OPTION_CASES, ids=[f"{n}-{'_'.join(a)[:40]}" for n, a in OPTION_CASES])
def test_options_match_damo_343(records, name, args):
    compare(records, name, args)


@pytest.mark.parametrize("name,args", FILTER_CASES, ids=[f"{n}-{'_'.join(a)[:40]}" for n, a in FILTER_CASES])
def test_filters_match_damo_343(records, name, args):
    compare(records, name, args)


def test_without_color_is_damo_text_without_ansi(records):
    ours, theirs = run_both(records, "gappy", ["--style", "simple-boxes"], color=False)
    assert "\x1b" not in ours
    assert ours == strip_ansi(theirs)


def test_pattern_filter_total_is_the_shown_regions(records):
    """Where we differ on purpose: the total size line sums the regions left after the filter."""
    from damo.formats import read_record
    from damo.selection import AccessFilter, apply_access_filter

    native, _ = records["plain"]
    ours = run_cli("report", "access", "-i", str(native), "--sz_region", "10M", "50M",
                   "--format", "set", "snapshot_tail", "<total bytes>", "--raw_number")
    shown = apply_access_filter(read_record(native), AccessFilter(sz_region=(10 << 20, 50 << 20)))
    totals = [int(v) for v in np.add.reduceat((shown.end - shown.start).astype(np.int64), shown.offsets[:-1])]
    lines = [ln for ln in ours.stdout.splitlines() if ln.isdigit()]
    assert [int(v) for v in lines] == totals


def test_perf_script_raw_form_and_missing_intervals(tmp_path):
    """perf_script files carry no monitoring intervals: 3.4.3 lists them with --raw_form, as we do,
    and refuses the other styles; we refuse with one error line naming the file, exit code 2."""
    peer = peer_343()
    path = tmp_path / "p.perf_script"
    write_record(plain_record(), path, "perf_script")
    theirs = subprocess.run([*peer, "report", "access", "-i", str(path), "--raw_form"], capture_output=True,
                            text=True, timeout=600)
    ours = run_cli("report", "access", "-i", str(path), "--raw_form")
    assert ours.returncode == 0 and theirs.returncode == 0
    assert ours.stdout == theirs.stdout
    theirs = subprocess.run([*peer, "report", "access", "-i", str(path)], capture_output=True, text=True,
                            timeout=600)
    assert "lack the intervals" in theirs.stdout
    ours = run_cli("report", "access", "-i", str(path))
    assert ours.returncode == 2 and str(path) in ours.stderr and "intervals" in ours.stderr
