"""Our reports against the real damo 2.6.4, on the same records (ANSI codes stripped).

Each damo run costs about a second, so the cases are few and the records small.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from damo.formats import write_record
from damo.model import RecordBuilder, RecordMeta

from conftest import make_record, run_cli
from reports_support import peer_or_skip, strip_ansi, write_damo_json_compressed

pytestmark = pytest.mark.interop


def gappy_record(seed: int = 11):
    """Three mapped areas with gaps between them, like a vaddr record; the hot spot wanders."""
    rng = np.random.default_rng(seed)
    b = RecordBuilder(RecordMeta(target_kind="vaddr", sample_us=5000, aggr_us=100000))
    areas = [(0x55550000_0000, 40 << 20), (0x7f00_0000_0000, 300 << 20), (0x7ffd_0000_0000, 1 << 20)]
    for t in range(45):
        starts, ends, acc = [], [], []
        for base, size in areas:
            n = int(rng.integers(3, 12))
            cuts = np.sort(rng.choice(np.arange(1, size >> 12), n - 1, replace=False)) << 12
            bounds = np.concatenate([[0], cuts, [size]]) + base
            starts += bounds[:-1].tolist()
            ends += bounds[1:].tolist()
            acc += rng.integers(0, 21, n).tolist()
        t0 = 7_000_000_000 + t * 100_000_000 + int(rng.integers(0, 5000))
        b.add(42, t0, t0 + 100_000_000 + int(rng.integers(0, 3000)), starts, ends, acc)
    return b.build()


CASES = {
    "heats_stdout": ["heats", "--heatmap", "stdout"],
    "heats_stdout_resol": ["heats", "--heatmap", "stdout", "--resol", "30", "70"],
    "heats_raw": ["heats"],
    "heats_raw_abs": ["heats", "--resol", "20", "30", "--abs_time", "--abs_addr"],
    "heats_guide": ["heats", "--guide"],
    # damo 2.6.4's `report heatmap` text is ours `report heats --heatmap stdout --resol 40 80`
    "heatmap": ["heatmap", "--stdout_colorset", "emotion"],
    "wss": ["wss"],
    "wss_raw": ["wss", "--raw_number", "-r", "1", "101", "1"],
    "nr_regions": ["nr_regions"],
    "perf_script_heats": ["heats", "--heatmap", "stdout", "--resol", "30", "70"],
    "perf_script_wss": ["wss", "--raw_number", "-r", "1", "101", "1"],
}


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    d = tmp_path_factory.mktemp("interop")
    out = {}
    for name, rec in [("plain", make_record(nr_snapshots=50, nr_regions=25, seed=1)), ("gappy", gappy_record())]:
        native, damo_file = d / f"{name}.data", d / f"{name}.json_compressed"
        write_record(rec, native)
        write_damo_json_compressed(rec, damo_file)
        out[name] = (native, damo_file)
    perf = d / "gappy.perf_script"          # damo reads it as text, we detect it by content
    write_record(gappy_record(), perf, "perf_script")
    out["perf_script"] = (perf, perf)
    return out


OURS = {"heatmap": ["heats", "--heatmap", "stdout", "--resol", "40", "80", "--stdout_heatmap_color", "emotion"]}


def compare(records, name, args, ours_args=None):
    peer = peer_or_skip("2.6.4")
    native, damo_file = records[name]
    theirs = subprocess.run([*peer, "report", *args, "-i", str(damo_file)], capture_output=True, text=True,
                            timeout=300)
    assert theirs.returncode == 0, theirs.stderr
    ours = run_cli("report", *(ours_args or args), "-i", str(native), env={"NO_COLOR": "1"})
    assert ours.returncode == 0, ours.stderr
    assert strip_ansi(ours.stdout) == strip_ansi(theirs.stdout)


@pytest.mark.parametrize("case", list(CASES))
def test_reports_match_damo(records, case):
    if case.startswith("perf_script"):
        name = "perf_script"
    elif case in ("wss", "heats_stdout_resol", "heats_raw_abs"):
        name = "plain"
    else:
        name = "gappy"
    compare(records, name, CASES[case], OURS.get(case))
