"""``damo report heatmap`` against the real damo 3.4.3, byte for byte (colour codes included).

Records: a simulator record (stairs, intervals so heats in Hz), a perf_script trace (no
intervals: heats in samples, a fractional first start time) and a two-target record. damo reads
our json_compressed copy (or the perf_script text itself); we read our native file. Each damo
run costs about half a second.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from damo.formats import write_record
from damo.model import MonitoringAttrs
from damo.recording import RecordRequest
from damo.sources.sim import simulate

from conftest import make_record, run_cli
from perf_fixture import perf_script_text
from reports_support import peer_or_skip
from test_reports_interop import gappy_record

pytestmark = pytest.mark.interop
STAIRS = Path(__file__).resolve().parent.parent / "masim" / "configs" / "stairs.cfg"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    d = tmp_path_factory.mktemp("heatmap3")
    sim, _ = simulate(RecordRequest(target=[str(STAIRS)], attrs=MonitoringAttrs(), seed=3, timeout=15))
    out = {}
    for name, rec in [("sim", sim), ("multi", make_record(nr_snapshots=40, nr_regions=20, seed=5, nr_targets=2))]:
        native, theirs = d / f"{name}.data", d / f"{name}.json_compressed"
        write_record(rec, native)
        write_record(rec, theirs, "json_compressed")
        out[name] = (native, theirs)
    perf = d / "gappy.perf_script"      # the same text for both: damo parses it, we detect it
    perf.write_text(perf_script_text(gappy_record()))
    out["perf"] = (perf, perf)
    return out


def peer_343() -> list[str]:
    """damo 3.4.3's argv; it reads record files only where the `file` command exists."""
    peer = peer_or_skip("3.4.3")
    if not shutil.which("file"):
        if os.environ.get("CI") == "true":
            pytest.fail("damo 3.4.3 needs the `file` command (.ci/run installs it)")
        pytest.skip("damo 3.4.3 needs the `file` command: apt-get install file")
    return peer


def run_both(records, name: str, args: list[str], ours_native: bool = True):
    peer = peer_343()
    native, damo_file = records[name]
    theirs = subprocess.run([*peer, "report", "heatmap", *args, "-i", str(damo_file)], capture_output=True,
                            text=True, timeout=300)
    assert theirs.returncode == 0, theirs.stderr
    ours = run_cli("report", "heatmap", *args, "--color", "always", "-i", str(native if ours_native else damo_file))
    assert ours.returncode == 0, ours.stderr
    return ours.stdout, theirs.stdout


CASES = {
    "default": [],
    "resol_20x60": ["--resol", "20", "60"],
    "resol_7x33": ["--resol", "7", "33"],
    "raw_9x11": ["--output", "raw", "--resol", "9", "11"],
    "raw_abs": ["--output", "raw", "--resol", "5", "4", "--abs_time", "--abs_addr"],
    "guide": ["--guide"],
    "guide_human": ["--guide_human"],
    "draw_range_all": ["--draw_range", "all", "--resol", "10", "30"],
    "flame_no_example": ["--stdout_colorset", "flame", "--stdout_skip_colorset_example", "--resol", "10", "20"],
}
SIM_ONLY = {
    "sort_temperature": ["--sort_temperature", "--resol", "15", "40"],
    "temperature_weights": ["--sort_temperature", "--temperature_weights", "2", "0.5", "--output", "raw",
                            "--resol", "4", "6"],
    "time_range_guided": ["--time_range", "2s", "9s", "guided", "--resol", "10", "40"],
    "time_range_fraction_raw": ["--time_range", "1.5s", "20.25s", "--output", "raw", "--resol", "4", "3"],
    "time_range_guided_end": ["--time_range", " -6s", "0", "guided_end", "--resol", "10", "40"],
    "address_range_guided": ["--draw_range", "all", "--address_range", "0", "4096", "guided",
                             "--address_range", "10M", "50M", "guided", "--resol", "10", "40"],
    "indexes": ["--kdamond_idx", "0", "--context_idx", "0", "--tid", "0", "--resol", "6", "20"],
}


@pytest.mark.parametrize("record_name", ["sim", "perf", "multi"])
@pytest.mark.parametrize("case", list(CASES))
def test_heatmap_matches_damo_343(records, record_name, case):
    ours, theirs = run_both(records, record_name, CASES[case])
    assert ours == theirs


@pytest.mark.parametrize("case", list(SIM_ONLY))
def test_heatmap_options_match_damo_343(records, case):
    ours, theirs = run_both(records, "sim", SIM_ONLY[case])
    assert ours == theirs


def test_second_target_and_our_json_compressed_reader(records):
    ours, theirs = run_both(records, "multi", ["--tid", "1", "--output", "raw", "--resol", "6", "7"],
                            ours_native=False)
    assert ours == theirs


def test_several_inputs(records, tmp_path):
    """Two records of the same target are one timeline; the second file's snapshots follow."""
    peer = peer_343()
    sim_native, sim_json = records["sim"]
    args = ["--output", "raw", "--resol", "8", "9"]
    theirs = subprocess.run([*peer, "report", "heatmap", *args, "-i", str(sim_json), str(sim_json)],
                            capture_output=True, text=True, timeout=300)
    ours = run_cli("report", "heatmap", *args, "-i", str(sim_native), str(sim_native))
    assert ours.returncode == 0 and ours.stdout == theirs.stdout
