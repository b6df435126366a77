"""Memory footprints (--do_record), report footprints, and their files (native side chunks, damo sidecars)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from damo.footprints import footprint_values, format_footprints, load_footprints
from damo.formats import native, read_record
from damo.model import MemFootprints, MonitoringAttrs
from damo.recording import RecordRequest
from damo.sources import proc_sampler
from damo.sources.sim import simulate
from reports_support import peer_or_skip

REPO = Path(__file__).resolve().parent.parent

# Three regions swept in turn, each phase adding one (a sequential stride-4096 sweep touches
# every page of a few MB within its first millisecond at masim's 80k accesses/ms).
STEPS_CFG = """\
a, 4000000
b, 8000000
c, 2000000

first
2000
a, 0, 4096, 1

second
2000
a, 0, 4096, 1
b, 0, 4096, 1

third
2000
b, 0, 4096, 1
c, 0, 4096, 1
"""
PHASE_MS = 2000
PAGE = 4096


def pages(size: int) -> int:
    return -(-size // PAGE)


def expected_rss(t_s: int) -> int:
    """The truth: every region a phase started before t_s sweeps is wholly resident at t_s."""
    phases = [["a"], ["a", "b"], ["b", "c"]]
    sizes = {"a": 4000000, "b": 8000000, "c": 2000000}
    touched = set()
    for i, regions in enumerate(phases):
        if i * PHASE_MS < t_s * 1000:
            touched.update(regions)
    return sum(pages(sizes[r]) for r in touched) * PAGE


@pytest.fixture(scope="module")
def steps_cfg(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "steps.cfg"
    path.write_text(STEPS_CFG)
    return path


def test_sim_footprint_is_the_model_truth(steps_cfg):
    record, model = simulate(RecordRequest(target=[str(steps_cfg)], attrs=MonitoringAttrs()))
    fp = record.footprints
    assert fp.time.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    rss = footprint_values(fp, "rss", sort=False)
    assert rss.tolist() == [expected_rss(t) for t in range(7)]
    assert rss.tolist() == [0, pages(4000000) * PAGE, pages(4000000) * PAGE, 12005376, 12005376,
                            14008320, 14008320]
    mapped = (pages(4000000) + pages(8000000) + pages(2000000)) * PAGE + 2 * 132 * 1024
    assert footprint_values(fp, "vsz", sort=False).tolist() == [mapped] * 7
    # No simulated system: sys_used is 0, as damo prints for samples without a system entry.
    assert footprint_values(fp, "sys_used").tolist() == [0] * 7


def test_native_record_keeps_footprints_and_reads_back(steps_cfg, tmp_path):
    out = tmp_path / "steps.data"
    result = run_cli("record", str(steps_cfg), "-o", str(out))
    assert result.returncode == 0, result.stderr
    record = read_record(out)
    assert record.footprints == simulate(RecordRequest(target=[str(steps_cfg)], attrs=MonitoringAttrs()))[0].footprints
    assert out.read_bytes()[8:10] == b"\x03\x00"          # side chunks: version 3
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    # --do_record access: no side chunk, the file stays version 2 (older readers read it)
    plain = tmp_path / "plain.data"
    assert run_cli("record", str(steps_cfg), "-o", str(plain), "--do_record", "access").returncode == 0
    assert plain.read_bytes()[8:10] == b"\x02\x00"
    assert read_record(plain).footprints is None
    assert read_record(plain).same_data(record)


def test_old_native_file_still_reads():
    record = read_record(REPO / "tests" / "data" / "vm_stairs_30secs.data")
    assert record.nr_snapshots > 0 and record.footprints is None and record.snapshot_sample_us is None


def test_cut_native_record_keeps_the_footprints_before_the_cut(steps_cfg, tmp_path):
    """A recorder killed mid-write: every prefix reads, footprints and snapshots up to the cut."""
    out = tmp_path / "steps.data"
    meta_request = RecordRequest(target=[str(steps_cfg)], attrs=MonitoringAttrs(), out=str(out))
    record, _ = simulate(meta_request)
    with native.Writer(out, record.meta) as writer:
        for i, snap in enumerate(record.snapshots()):
            writer.append(snap.target_id, snap.start_ns, snap.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age)
            if i % 10 == 0:
                writer.append_side("mem_footprint", record.footprints.to_damo()[i // 10])
                writer.flush()
    data = out.read_bytes()
    _, first_chunk = native.read_meta(out)
    nr_seen = []
    for cut in [*range(first_chunk, len(data), max(len(data) // 97, 1)), len(data)]:
        part = tmp_path / "cut.data"
        part.write_bytes(data[:cut])
        got = read_record(part)
        nr = got.footprints.nr_samples if got.footprints is not None else 0
        assert got.footprints is None or got.footprints == MemFootprints.from_damo(record.footprints.to_damo()[:nr])
        nr_seen.append(nr)
    assert nr_seen == sorted(nr_seen) and nr_seen[-1] == record.nr_snapshots // 10 == 6


def test_bad_side_chunk_is_one_error(steps_cfg, tmp_path):
    out = tmp_path / "steps.data"
    assert run_cli("record", str(steps_cfg), "-o", str(out)).returncode == 0
    data = bytearray(out.read_bytes())
    pos = data.index(b"SIDE")
    data[pos + 30] ^= 0xFF                # inside the first side chunk's payload: its CRC fails
    out.write_bytes(bytes(data))
    result = run_cli("report", "footprints", "-i", str(out))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "corrupt native record" in result.stderr


def test_proc_sampler_reads_this_process():
    entry = proc_sampler.mem_footprint_entry([os.getpid(), 1 << 30], 12.5)
    mine, gone, system = entry["footprints"]
    statm = [int(x) for x in Path(f"/proc/{os.getpid()}/statm").read_text().split()]
    assert mine["pid"] == os.getpid() and mine["footprint"][0] == pytest.approx(statm[0], rel=0.05)
    assert gone["footprint"] == [0] * 7              # gone: damo's zeros
    # damo's object shape on reading
    assert MemFootprints.from_damo([entry]).statm[1].tolist() == [0] * 7
    meminfo = {line.split()[0]: int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()}
    assert system["pid"] is None and system["footprint"]["total"] == meminfo["MemTotal:"]
    vmas = native.expand_vmas([proc_sampler.vmas_entry([os.getpid()], 1.0)])[0]["procvmas"][0]["vmas"]
    assert any(v["start"] <= id(entry) < v["end"] for v in vmas)        # this object's heap mapping
    stats = native.expand_proc_stats([proc_sampler.proc_stats_entry([os.getpid(), 1 << 30], 1.0)])[0]
    assert stats["proc_stats"][0]["fields"][0] == str(os.getpid()) and stats["proc_stats"][1] == {"fields": None}


def test_vmas_are_read_again_only_when_the_size_changes(monkeypatch):
    """Unchanged processes are marked, not re-read; the reader gives damo's full lists back."""
    maps_reads = []
    real_read_text = proc_sampler.read_text

    def counting_read_text(path):
        if path.endswith("/maps"):
            maps_reads.append(clock[0])
        return real_read_text(path)

    monkeypatch.setattr(proc_sampler, "read_text", counting_read_text)
    clock = [0.0]
    sink = _Sink()
    sampler = proc_sampler.SideSampler(sink, ("mem_footprint", "vmas"), lambda: [os.getpid()], clock=lambda: clock[0],
                                       vmas_refresh=5.0)
    grown = None
    for second in range(8):
        if second == 2:
            grown = bytearray(64 << 20)       # a new anonymous mapping: statm's size changes
        sampler.maybe_sample()
        clock[0] += 1.0
    entries = [e for k, e in sink.side if k == "vmas"]
    marks = [("maps" in e["procvmas"][0], e["procvmas"][0].get("unchanged", False)) for e in entries]
    assert marks[0] == (True, False) and marks[1] == (False, True) and marks[2] == (True, False)
    assert maps_reads == [0.0, 2.0, 7.0]     # the first, the size change, the refresh 5 s later
    assert marks[7] == (False, True)          # ... which found them unchanged
    expanded = native.expand_vmas(entries)
    assert expanded[1]["procvmas"][0]["vmas"] is expanded[0]["procvmas"][0]["vmas"]
    assert len(expanded[2]["procvmas"][0]["vmas"]) >= 1 and grown is not None
    assert any(v["end"] - v["start"] >= 64 << 20 for v in expanded[2]["procvmas"][0]["vmas"])


class _Sink:
    def __init__(self):
        self.side = []

    def append_side(self, kind, entry):
        self.side.append((kind, entry))


def test_side_sampler_rate_and_kinds():
    clock = [100.0]
    sink = _Sink()
    sampler = proc_sampler.SideSampler(sink, ("access", "mem_footprint", "proc_stats"), lambda: [os.getpid()],
                                       kdamond_pid=1, clock=lambda: clock[0])
    for step in range(30):                 # 3 s in 0.1 s steps: samples at 100, 101, 102
        sampler.maybe_sample()
        clock[0] += 0.1
    assert [k for k, _ in sink.side] == ["mem_footprint", "proc_stats"] * 3
    assert sink.side[1][1]["proc_stats"][0]["stat"].split()[0] == "1"   # the kdamond heads the stats, as in damo


# --- damo 3.4.3 interop ---------------------------------------------------------------------

FOOTPRINT_CASES = [[], ["rss", "--sortby", "time", "--raw_number"], ["vsz", "-r", "0", "101", "10", "--nr_cols_bar", "20"],
                   ["all", "--all_footprint"], ["sys_used", "--nr_cols_bar", "0"]]


@pytest.fixture(scope="module")
def json_record(steps_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("json") / "steps.data"
    result = run_cli("record", str(steps_cfg), "-o", str(out), "--output_type", "json_compressed")
    assert result.returncode == 0, result.stderr
    return out


def test_json_compressed_writes_damos_sidecar(json_record):
    sidecar = Path(f"{json_record}.mem_footprint")
    assert oct(sidecar.stat().st_mode & 0o777) == "0o600"
    value = json.loads(sidecar.read_text())
    assert value[1] == {"time": 1.0, "footprints": [{"pid": 0, "footprint": {
        "size": value[1]["footprints"][0]["footprint"]["size"], "resident": pages(4000000), "shared": 0, "trs": 0,
        "lrs": 0, "drs": 0, "dt": 0}}]}
    assert read_record(json_record).footprints == load_footprints(str(sidecar))


@pytest.mark.parametrize("args", FOOTPRINT_CASES, ids=lambda a: " ".join(a) or "default")
def test_report_footprints_matches_damo_343_on_our_sidecar(json_record, args):
    peer = peer_or_skip("3.4.3")
    theirs = subprocess.run([*peer, "report", "footprints", "-i", f"{json_record}.mem_footprint", *args],
                            capture_output=True, text=True, timeout=300)
    assert theirs.returncode == 0, theirs.stderr
    for source in (str(json_record), f"{json_record}.mem_footprint"):
        ours = run_cli("report", "footprints", "-i", source, *args)
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout == theirs.stdout


DAMO_WRITES_SIDECAR = """
import json, os, sys, time
sys.path.insert(0, sys.argv[2])
import _damo_records
snaps = []
for _ in range(3):
    snaps.append(_damo_records.MemFootprintsSnapshot([os.getpid(), os.getppid()]))
    time.sleep(0.01)
_damo_records.save_mem_footprint(snaps, sys.argv[1], 0o600)
"""


def test_report_footprints_on_a_damo_written_sidecar(tmp_path):
    from bench.peers import peer_module_dir, peer_python

    peer = peer_or_skip("3.4.3")
    sidecar = tmp_path / "damon.data.mem_footprint"
    made = subprocess.run([peer_python("3.4.3"), "-c", DAMO_WRITES_SIDECAR, str(sidecar), peer_module_dir("3.4.3")],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    for args in FOOTPRINT_CASES:
        theirs = subprocess.run([*peer, "report", "footprints", "-i", str(sidecar), *args], capture_output=True,
                                text=True, timeout=300)
        ours = run_cli("report", "footprints", "-i", str(sidecar), *args)
        assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
        assert ours.stdout == theirs.stdout
    fp = load_footprints(str(sidecar))
    assert fp.nr_samples == 3 and fp.has_sys.all() and (fp.sys_used_kib() > 0).all()


def test_report_footprints_json_plot_and_errors(json_record, tmp_path):
    fp = load_footprints(str(json_record))
    text = format_footprints({"rss": footprint_values(fp, "rss")}, [0, 50, 100])
    assert text.splitlines()[0] == "# <percentile> <rss>"
    result = run_cli("report", "footprints", "rss", "-i", str(json_record), "--json")
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert value["metrics"]["rss"]["percentiles"]["100"] == 14008320
    assert value["metrics"]["rss"]["nr_samples"] == 7
    png = tmp_path / "rss.png"
    assert run_cli("report", "footprints", "-i", str(json_record), "--plot", str(png)).returncode == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    plain = tmp_path / "plain.data"
    assert run_cli("record", "zigzag", "-o", str(plain), "--do_record", "access", "--timeout", "1").returncode == 0
    for args, problem in ((["-i", str(plain)], "holds no memory footprints"),
                          (["-i", str(tmp_path / "none")], "no such file"),
                          (["-i", str(json_record), "-r", "0", "101", "0"], "--range")):
        result = run_cli("report", "footprints", *args)
        assert result.returncode == 2 and problem in result.stderr and result.stderr.count("\n") == 1
    bad = tmp_path / "bad.mem_footprint"
    bad.write_text('[{"time": 1}]')
    result = run_cli("report", "footprints", "-i", str(bad))
    assert result.returncode == 2 and "not damo's mem_footprint JSON" in result.stderr


def test_do_record_option_errors(steps_cfg, tmp_path):
    result = run_cli("record", str(steps_cfg), "-o", str(tmp_path / "x.data"), "--do_record", "access,cpu")
    assert result.returncode == 2 and "--do_record" in result.stderr and result.stderr.count("\n") == 1


def test_convert_keeps_the_footprints(steps_cfg, tmp_path):
    native_file, json_file, back = tmp_path / "a.data", tmp_path / "b.data", tmp_path / "c.data"
    assert run_cli("record", str(steps_cfg), "-o", str(native_file)).returncode == 0
    assert run_cli("convert", "-i", str(native_file), "-o", str(json_file), "--format", "json_compressed").returncode == 0
    assert Path(f"{json_file}.mem_footprint").exists()
    assert run_cli("convert", "-i", str(json_file), "-o", str(back)).returncode == 0
    original, converted = read_record(native_file), read_record(back)
    assert converted.footprints == original.footprints and converted.same_data(original)
    # perf_script holds no footprints: recording into it drops them quietly
    perf = tmp_path / "p.data"
    result = run_cli("record", str(steps_cfg), "-o", str(perf), "--output_type", "perf_script")
    assert result.returncode == 0, result.stderr
    assert read_record(perf).footprints is None


def test_sim_footprint_of_a_huge_region_stays_cheap(tmp_path):
    """A 1 TiB region is judged by 65,536 evenly spaced pages: the sequential sweep's resident
    prefix (80,000 pages per ms at masim's rate) comes out within their spacing."""
    import time

    from masim.config import load_config
    from masim.model import AccessModel

    cfg = tmp_path / "huge.cfg"
    cfg.write_text("a, 1099511627776\n\nsweep\n3000\na, 0, 4096, 1\n")
    model = AccessModel(load_config(str(cfg)))
    started = time.process_time()
    resident = [model.resident_bytes(t * 10**9) for t in (1, 2, 3)]
    assert time.process_time() - started < 5
    nr_pages = (1 << 40) // 4096
    for t, value in zip((1, 2, 3), resident):
        expected = min(80_000 * 1000 * t, nr_pages) * 4096
        assert abs(value - expected) <= (nr_pages // 65536 + 1) * 4096, (t, value, expected)
