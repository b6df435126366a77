"""Record loading: time, peak RSS and bytes per region, native vs json_compressed, and damo's reader.

The record is ``bench.synth.synth_record`` (DAMON-like: persistent boundaries, a drifting hot
area): 6000 snapshots x 1000 regions = 6 M regions (300 x 1000 with ``--quick``). Each load runs
in a fresh Python process, measured by ``bench.measure.measure`` (wall time and the child's own
peak RSS); the peak RSS of a process that only imports the reader is given as the baseline.

damo 2.6.4's reader (``_damo_records.parse_records_file``: ``file -b``, zlib, json.loads, one
Python object per region) is measured on the first 1000 snapshots (1 M regions; 100 with
``--quick``) of the same record, next to ours on that same file, and, in a full run, on the whole
6 M-region file when the machine has the memory for it (it is then run under an address-space
limit, so that running out fails the measurement rather than the machine).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.measure import REPO, measure, python_argv, repo_env
from bench.synth import synth_record
from damo.formats import write_record

FULL_SHAPE = (6000, 1000)
QUICK_SHAPE = (300, 1000)
DAMO_SNAPSHOTS = {False: 1000, True: 100}
FORMATS = ("native", "json_compressed")
TIMEOUT_S = 3600

LOAD_OURS = ("import sys\nfrom damo.formats import read_record\nrecord = read_record(sys.argv[1])\n"
             "assert record.nr_regions_total == int(sys.argv[2]), record.nr_regions_total\n")
IMPORT_OURS = "import numpy\nimport damo.formats.native, damo.formats.damo_json\n"
LOAD_DAMO = ("import sys\nsys.path.insert(0, sys.argv[1])\nimport _damo_records\n"
             "records, err = _damo_records.parse_records_file(sys.argv[2])\nassert err is None, err\n"
             "n = sum(len(s.regions) for r in records for s in r.snapshots)\nassert n == int(sys.argv[3]), n\n")


def _measure(argv: list[str], repeats: int) -> dict:
    """The fastest of ``repeats`` runs and the largest peak RSS among them."""
    runs = []
    for _ in range(repeats):
        cost = measure(argv, cwd=REPO, env=repo_env(), timeout=TIMEOUT_S)
        if cost["returncode"] != 0:
            raise RuntimeError(f"{' '.join(map(str, argv[:3]))} failed: {cost['stderr_tail']}")
        runs.append(cost)
    return {"load_seconds": round(min(r["seconds"] for r in runs), 3),
            "cpu_seconds": round(min(r.get("cpu_seconds") or 0 for r in runs), 3),
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs), "runs": len(runs)}


def _load_ours(path: Path, nr_regions: int, repeats: int) -> dict:
    return _measure(python_argv("-c", LOAD_OURS, str(path), str(nr_regions)), repeats)


def _damo_reader(path: Path, nr_regions: int, limit_bytes: int | None = None) -> dict:
    from bench.peers import PeerUnavailable, peer_module_dir, peer_python
    try:
        python, modules = peer_python("2.6.4"), peer_module_dir("2.6.4")
    except PeerUnavailable as err:
        return {"not_measured": str(err)}
    argv = [python, "-I", "-c", LOAD_DAMO, modules, str(path), str(nr_regions)]
    if limit_bytes:
        argv = ["prlimit", f"--as={limit_bytes}", *argv]
    try:
        return _measure(argv, 1)
    except RuntimeError as err:
        return {"not_measured": str(err)[-300:]}


def _available_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def run(quick: bool) -> dict:
    nr_snapshots, nr_regions = QUICK_SHAPE if quick else FULL_SHAPE
    total = nr_snapshots * nr_regions
    repeats = 2 if quick else 1
    result: dict = {"record": f"synth_record({nr_snapshots}, {nr_regions}, seed=0)", "nr_regions": total,
                    "notes": [], "not_measured": {}}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        tmp = Path(tmp)
        begin = time.perf_counter()
        record = synth_record(nr_snapshots, nr_regions, seed=0)
        result["synth_seconds"] = round(time.perf_counter() - begin, 3)
        result["in_memory_column_bytes"] = int(sum(getattr(record, c).nbytes for c in (
            "target_id", "start_ns", "end_ns", "offsets", "start", "end", "nr_accesses", "age")))
        formats = {}
        for fmt in FORMATS:
            path = tmp / f"record.{fmt}"
            begin = time.perf_counter()
            write_record(record, path, fmt)
            size = os.path.getsize(path)
            formats[fmt] = {"file_bytes": size, "bytes_per_region": round(size / total, 3),
                            "write_seconds": round(time.perf_counter() - begin, 3)}
        damo_snaps = min(DAMO_SNAPSHOTS[quick], nr_snapshots)
        subset = record.select(np.arange(record.nr_snapshots) < damo_snaps)
        subset_path = tmp / "subset.json_compressed"
        write_record(subset, subset_path, "json_compressed")
        subset_regions = subset.nr_regions_total
        del record, subset

        baseline = _measure(python_argv("-c", IMPORT_OURS), 1)
        result["baseline_peak_rss_bytes"] = baseline["peak_rss_bytes"]
        for fmt in FORMATS:
            formats[fmt].update(_load_ours(tmp / f"record.{fmt}", total, repeats))
            formats[fmt]["peak_rss_above_baseline_bytes"] = (formats[fmt]["peak_rss_bytes"]
                                                             - baseline["peak_rss_bytes"])
        result["formats"] = formats

        comparison = {"nr_regions": subset_regions, "file_bytes": os.path.getsize(subset_path)}
        comparison["ours"] = _load_ours(subset_path, subset_regions, repeats)
        damo = _damo_reader(subset_path, subset_regions)
        if "not_measured" in damo:
            result["not_measured"]["damo 2.6.4 reader"] = damo["not_measured"]
        else:
            comparison["damo 2.6.4"] = damo
        result["json_compressed_vs_damo"] = comparison
        if "damo 2.6.4" in comparison and total > subset_regions:
            # damo's memory grows linearly with the regions: extrapolate, then try if it fits.
            need = comparison["damo 2.6.4"]["peak_rss_bytes"] * total / subset_regions
            available = _available_memory()
            if quick:
                why = "not tried in a quick run"
            elif need * 1.5 > available:
                why = f"needs about {need / 2**30:.1f} GiB; only {available / 2**30:.1f} GiB available"
            else:
                full = _damo_reader(tmp / "record.json_compressed", total, limit_bytes=int(need * 2))
                if "not_measured" in full:
                    why = full["not_measured"]
                else:
                    formats["json_compressed"]["damo 2.6.4"] = full
                    why = None
            if why:
                result["not_measured"]["damo 2.6.4 reader on the full record"] = (
                    f"{why} (it measured {comparison['damo 2.6.4']['peak_rss_bytes'] / 2**20:.0f} MiB "
                    f"for {subset_regions:,} regions)")
    result["notes"].append(
        "Load time is the whole `python -c` process (interpreter start, imports, read), wall and CPU (user + "
        "system; steadier than wall time on a shared machine); peak RSS is that process's ru_maxrss. Ours "
        "holds the record as numpy columns (32 bytes per region).")
    result["tables"] = _tables(result)
    result["headline"] = _headline(result)
    return result


def _mib(n) -> str:
    return f"{n / 2**20:.1f} MiB"


def _tables(result: dict) -> list[dict]:
    rows = [[fmt, f"{f['bytes_per_region']:.3f}", _mib(f["file_bytes"]), f"{f['load_seconds']:.2f} s",
             f"{f['cpu_seconds']:.2f} s", _mib(f["peak_rss_bytes"]), _mib(f["peak_rss_above_baseline_bytes"]),
             f"{f['write_seconds']:.1f} s"]
            for fmt, f in result["formats"].items()]
    damo_full = result["formats"]["json_compressed"].get("damo 2.6.4")
    if damo_full:
        rows.append(["json_compressed, damo 2.6.4's reader", rows[1][1], rows[1][2],
                     f"{damo_full['load_seconds']:.2f} s", f"{damo_full['cpu_seconds']:.2f} s",
                     _mib(damo_full["peak_rss_bytes"]),
                     _mib(damo_full["peak_rss_bytes"] - result["baseline_peak_rss_bytes"]), ""])
    tables = [{"title": f"Loading {result['nr_regions']:,} regions ({result['record']})",
               "columns": ["Format", "Bytes/region", "File", "Load time", "Load CPU", "Peak RSS",
                           "Peak RSS above imports", "Write time"],
               "rows": rows}]
    cmp_ = result["json_compressed_vs_damo"]
    cmp_rows = [["ours", f"{cmp_['ours']['load_seconds']:.2f} s", f"{cmp_['ours']['cpu_seconds']:.2f} s",
                 _mib(cmp_["ours"]["peak_rss_bytes"])]]
    if "damo 2.6.4" in cmp_:
        d = cmp_["damo 2.6.4"]
        cmp_rows.append(["damo 2.6.4", f"{d['load_seconds']:.2f} s", f"{d['cpu_seconds']:.2f} s",
                         _mib(d["peak_rss_bytes"])])
    tables.append({"title": f"The same json_compressed file of {cmp_['nr_regions']:,} regions "
                            f"({cmp_['file_bytes'] / cmp_['nr_regions']:.2f} bytes/region)",
                   "columns": ["Reader", "Load time", "Load CPU", "Peak RSS"], "rows": cmp_rows})
    return tables


def _headline(result: dict) -> list[dict]:
    n = f"{result['nr_regions'] / 1e6:g} M"
    rows = []
    for fmt, f in result["formats"].items():
        rows.append({"figure": f"Load {n} regions, {fmt}: time / peak RSS / bytes per region",
                     "ours": f"{f['load_seconds']:.2f} s / {_mib(f['peak_rss_bytes'])} / {f['bytes_per_region']:.2f} B"})
    damo_full = result["formats"]["json_compressed"].get("damo 2.6.4")
    if damo_full:
        ours = result["formats"]["json_compressed"]
        rows.append({"figure": f"Load {n} regions of json_compressed: time / peak RSS",
                     "ours": f"{ours['load_seconds']:.2f} s / {_mib(ours['peak_rss_bytes'])}",
                     "damo 2.6.4": f"{damo_full['load_seconds']:.2f} s / {_mib(damo_full['peak_rss_bytes'])}",
                     "ours/damo 2.6.4": f"{ours['load_seconds'] / damo_full['load_seconds']:.3f} / "
                                        f"{ours['peak_rss_bytes'] / damo_full['peak_rss_bytes']:.3f}"})
    cmp_ = result["json_compressed_vs_damo"]
    if "damo 2.6.4" in cmp_:
        ours, damo = cmp_["ours"], cmp_["damo 2.6.4"]
        rows.append({"figure": f"Load {cmp_['nr_regions'] / 1e6:g} M regions of json_compressed: time / peak RSS",
                     "ours": f"{ours['load_seconds']:.2f} s / {_mib(ours['peak_rss_bytes'])}",
                     "damo 2.6.4": f"{damo['load_seconds']:.2f} s / {_mib(damo['peak_rss_bytes'])}",
                     "ours/damo 2.6.4": f"{ours['load_seconds'] / damo['load_seconds']:.3f} / "
                                        f"{ours['peak_rss_bytes'] / damo['peak_rss_bytes']:.3f}"})
    return rows


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=2))
