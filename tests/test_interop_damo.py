"""Interop proof against the real damo 2.6.4 (installed from PyPI into its own cached virtualenv).

- damo's ``report raw`` on perf_script trace files prints exactly what ours prints;
- files we write as json_compressed / json give damo the same ``report raw`` as ours;
- json_compressed written by damo itself reads correctly in ours.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from bench.synth import synth_record
from damo.formats import read_record, write_record
from damo.model import RecordBuilder, RecordMeta

from conftest import make_record, run_cli
from perf_fixture import perf_script_text

pytestmark = pytest.mark.interop

VERSION = "2.6.4"


@pytest.fixture(scope="module")
def peer():
    from bench.peers import PeerUnavailable, peer_damo, peer_module_dir, peer_python
    try:
        return {"damo": peer_damo(VERSION), "python": peer_python(VERSION), "modules": peer_module_dir(VERSION)}
    except PeerUnavailable as err:
        pytest.skip(str(err))


def damo_raw(peer, path, *options, cwd) -> str:
    proc = subprocess.run([*peer["damo"], "report", "raw", "-i", str(path), *options], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def our_raw(path, *options) -> str:
    proc = run_cli("report", "raw", "-i", str(path), *options)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# damo 2.6.4 picks the reader from `file -b`, which calls JSON text "JSON text data" on current
# systems, so its CLI cannot open plain json there; this runs its own json reader and raw printer.
DAMO_JSON_RAW = r"""
import sys
sys.path.insert(0, sys.argv[1])
import _damo_records, damo_report_access
records = _damo_records.parse_json_file(sys.argv[2])
damo_report_access.pr_records_raw_form(records, len(sys.argv) > 3)
"""


def damo_json_raw(peer, path, raw_number=False, cwd=None) -> str:
    args = [peer["python"], "-I", "-c", DAMO_JSON_RAW, peer["modules"], str(path)] + (["raw"] if raw_number else [])
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


OPTION_SETS = [(), ("--raw_number",), ("--duration", "0.35", "1.2")]


@pytest.mark.parametrize("with_age", [True, False], ids=["10-field", "9-field"])
def test_perf_script_report_raw_matches_damo(peer, tmp_path, with_age):
    record = synth_record(25, 40, seed=11, nr_targets=2)
    path = tmp_path / "perf.data.script"
    path.write_text(perf_script_text(record, with_age=with_age))
    for options in OPTION_SETS:
        assert our_raw(path, *options) == damo_raw(peer, path, *options, cwd=tmp_path), options


def test_short_perf_script_matches_damo(peer, tmp_path):
    """A few lines only: damo's print adds its final newline (no pager) and so must we."""
    record = synth_record(3, 2, seed=4)
    path = tmp_path / "short.script"
    path.write_text(perf_script_text(record, noise=False))
    ours = our_raw(path)
    assert ours == damo_raw(peer, path, cwd=tmp_path)
    assert ours.endswith("\n\n\n")


@pytest.mark.parametrize("fmt", ["json_compressed", "perf_script"])
def test_files_we_write_give_damo_our_report(peer, tmp_path, fmt):
    record = make_record(nr_snapshots=30, nr_regions=25, nr_targets=2)
    path = tmp_path / f"ours.{fmt}"
    write_record(record, path, fmt)
    for options in OPTION_SETS:
        assert damo_raw(peer, path, *options, cwd=tmp_path) == our_raw(path, *options), options
    assert damo_raw(peer, path, "--json", cwd=tmp_path) == our_raw(path, "--json")


def test_json_we_write_gives_damo_our_report(peer, tmp_path):
    record = synth_record(20, 30, seed=5)
    path = tmp_path / "ours.json"
    write_record(record, path, "json")
    assert damo_json_raw(peer, path, cwd=tmp_path) == our_raw(path)
    assert damo_json_raw(peer, path, raw_number=True, cwd=tmp_path) == our_raw(path, "--raw_number")


def test_unknown_ages_and_single_snapshot_targets(peer, tmp_path):
    builder = RecordBuilder(RecordMeta(sample_us=5000, aggr_us=100000, update_us=1000000))
    builder.add(1, 10**9, 11 * 10**8, [4096, 1 << 30], [1 << 21, (1 << 30) + (1 << 40)], [0, 20], [-1, -1])
    builder.add(2, 10**9, 12 * 10**8, [0], [1 << 12], [5], [7])
    builder.add(1, 11 * 10**8, 12 * 10**8, [4096], [1 << 21], [3], [-1])
    record = builder.build()
    for fmt in ("json_compressed", "perf_script"):
        path = tmp_path / fmt
        write_record(record, path, fmt)
        assert damo_raw(peer, path, cwd=tmp_path) == our_raw(path), fmt


def test_damo_written_json_compressed_reads_correctly(peer, tmp_path):
    """damo converts a perf_script to json_compressed (and json); we read it as the trace itself."""
    record = synth_record(30, 50, seed=8, nr_targets=2)
    script = tmp_path / "perf.data.script"
    script.write_text(perf_script_text(record))
    from_trace = read_record(script)
    for fmt in ("json_compressed", "json"):
        out = tmp_path / f"damo.{fmt}"
        proc = subprocess.run([*peer["damo"], "convert_record_format", "--record_file", str(script),
                               "--format", fmt, "--output_file", str(out)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        back = read_record(out)
        assert np.array_equal(back.start, from_trace.start) and np.array_equal(back.age, from_trace.age)
        assert np.array_equal(back.nr_accesses, from_trace.nr_accesses)
        assert np.array_equal(back.end_ns, from_trace.end_ns)
        assert np.array_equal(back.start_ns[2:], from_trace.start_ns[2:])  # damo's first starts are floats
        assert np.all(np.abs(back.start_ns - from_trace.start_ns) <= 1)
        assert back.target_ids() == from_trace.target_ids()
    # damo's adjust re-aggregates and writes json_compressed; both tools then print the same report.
    adjusted = tmp_path / "damon.adjusted.data"
    proc = subprocess.run([*peer["damo"], "adjust", "-i", str(script), "--aggregate_interval", "500000",
                           "--skip", "0", "-o", str(adjusted)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert our_raw(adjusted) == damo_raw(peer, adjusted, cwd=tmp_path)


def test_our_json_is_byte_identical_to_damos_writer(peer, tmp_path):
    """damo re-writing our json file (its reader, then its writer) gives back the same bytes."""
    record = make_record(nr_snapshots=5, nr_regions=7, nr_targets=2)
    path = tmp_path / "ours.json"
    write_record(record, path, "json")
    script = ("import sys\nsys.path.insert(0, sys.argv[1])\nimport _damo_records as r\n"
              "r.write_json(r.parse_json_file(sys.argv[2]), sys.argv[3])\n")
    subprocess.run([peer["python"], "-I", "-c", script, peer["modules"], str(path), str(tmp_path / "damo.json")],
                   check=True, cwd=tmp_path, timeout=300)
    assert (tmp_path / "damo.json").read_bytes() == path.read_bytes()
