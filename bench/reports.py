"""Report speed and memory on big records: ours against damo 2.6.4 and 3.4.3.

The same synthetic DAMON-like records (bench.synth) of 0.3 M, 1 M and 6 M regions are written
as our native file and as damo's json_compressed file. Each report then runs in a fresh process,
one at a time, and we take its wall time and the peak RSS of that very child:

- ours on the native file (a user's real path: our record read by our report);
- ours on the json_compressed file (the same input damo reads);
- damo 2.6.4 and damo 3.4.3 on the json_compressed file.

Reports: ``report heats --heatmap stdout`` (500x500, damo 2.6.4's), ``report heatmap`` (damo
3.4.3's, 40x80), damo 2.6.4's ``report heatmap`` (ours: ``heats --heatmap stdout --resol 40 80``),
``report wss`` and ``report raw`` (3.x: ``report access --raw_form``). Where a damo prints the
same report as we do, the outputs are compared (ANSI codes stripped), so the speed-up is for
identical results. ``--quick`` runs a 0.1 M file,
ours only.

damo's runs take minutes and gigabytes on the big files, so each is measured once and kept in
``~/.cache/damo-peers/bench-reports.json`` with a hash of its (ANSI-stripped) output, keyed by
version, arguments and input; the synthetic input is deterministic. ``DAMO_BENCH_REMEASURE=1``
measures them again. Wall times depend on the other load of the machine (noted with each run);
CPU seconds (user + system of the child) do not.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path

from bench.measure import REPO, measure, python_argv, repo_env

# label -> (snapshots, regions per snapshot)
SIZES = {"0.3M": (300, 1000), "1M": (1000, 1000), "6M": (6000, 1000)}
QUICK_SIZES = {"0.1M": (100, 1000)}
PEERS = ("2.6.4", "3.4.3")
PEER_TIMEOUT_S = 3600
ANSI = re.compile(rb"\x1b\[[0-9;]*m")
CACHE_FORMAT = 1

INPUT = "{input}"             # where a damo command takes its input file other than as ``-i FILE``
# report -> (our args, damo 2.6.4 args, damo 3.4.3 args); None: that damo has no such report.
# The order is the order damo is measured in (the figures the goals hang on first).
REPORTS = {
    "raw": (["raw"], ["raw"], ["access", "--raw_form"]),
    "access --raw_form": (["access", "--raw_form"], None, ["access", "--raw_form"]),
    "access": (["access"], None, ["access"]),
    "access --style temperature-percentiles": (["access", "--style", "temperature-percentiles"], None,
                                               ["access", "--style", "temperature-percentiles"]),
    "times": (["times"], None, ["times", "--inputs", INPUT, INPUT]),   # 3.4.3's times has no -i
    "heatmap": (["heatmap"], None, ["heatmap"]),
    "wss": (["wss"], ["wss"], ["wss"]),
    "nr_regions": (["nr_regions"], ["nr_regions"], ["nr_regions"]),
    "heats --heatmap stdout": (["heats", "--heatmap", "stdout"], ["heats", "--heatmap", "stdout"], None),
    "heatmap (2.6.4 text)": (["heats", "--heatmap", "stdout", "--resol", "40", "80"], ["heatmap"], None),
    # damo's footprints reads a memory-footprint profile, which a DAMON record file does not hold
    "footprints": (["footprints"], None, None),
}
# reports whose text is damo 3.4.3's (the others are damo 2.6.4's)
SAME_TEXT_AS_343 = {"heatmap", "access", "access --style temperature-percentiles", "access --raw_form", "times",
                    "footprints"}


def selected(table: dict, env_name: str) -> dict:
    """The entries named (comma-separated) in the environment variable, or all of them.

    e.g. DAMO_BENCH_REPORT_SIZES=0.3M,1M DAMO_BENCH_REPORTS=access when 6 M runs of damo do not fit.
    """
    names = [n.strip() for n in os.environ.get(env_name, "").split(",") if n.strip()]
    return {k: v for k, v in table.items() if not names or k in names}


def write_inputs(directory: Path, label: str, nr_snapshots: int, nr_regions: int) -> dict:
    """The record as a native and a json_compressed file; how long each took to write."""
    from bench.synth import synth_record
    from damo.formats import write_record

    record = synth_record(nr_snapshots, nr_regions, seed=0)
    files = {}
    for fmt in ("native", "json_compressed"):
        path = directory / f"{label}.{fmt}"
        begin = time.perf_counter()
        write_record(record, path, fmt)
        files[fmt] = {"path": path, "bytes": path.stat().st_size, "write_s": round(time.perf_counter() - begin, 2)}
    return {"nr_regions": record.nr_regions_total, "files": files}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def run_one(argv: list[str], out_path: Path, timeout: float | None, env=None) -> dict:
    """Time one command with stdout to ``out_path``; also hash what it printed."""
    load = load_average()
    with open(out_path, "wb") as out:
        cost = measure(argv, cwd=REPO, env=env, timeout=timeout, stdout=out)
    ok = cost["returncode"] == 0
    if cost["returncode"] is None:
        error = f"did not finish within {timeout:.0f} s"
    else:
        error = None if ok else (cost["stderr_tail"].strip().splitlines() or ["failed"])[-1][:200]
    return {"seconds": round(cost["seconds"], 3) if ok else None,
            "cpu_seconds": round(cost.get("cpu_seconds", 0.0), 3) if ok else None,
            "peak_rss_bytes": cost["peak_rss_bytes"] if ok else None, "error": error,
            "load_average": load, "output_sha256": output_hash(out_path) if ok else None,
            "text_sha256": output_hash(out_path, final_newline=False) if ok else None,
            "measured_at": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def output_hash(path: Path, final_newline: bool = True) -> str:
    """SHA-256 of a command's output with ANSI colour codes removed, read line by line.

    ``final_newline=False`` ignores a missing last newline (damo 3.x pages long text through
    ``less``, which drops it).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for line in f:
            digest.update(ANSI.sub(b"", line if final_newline else line.rstrip(b"\n") + b"\n"))
    return digest.hexdigest()


class PeerCache:
    """damo's measurements, kept between runs (see the module docstring)."""

    def __init__(self, path: Path):
        self.path = path
        self.entries = {}
        if path.exists() and not os.environ.get("DAMO_BENCH_REMEASURE"):
            try:
                data = json.loads(path.read_text())
                if data.get("format") == CACHE_FORMAT:
                    self.entries = data["entries"]
            except (OSError, ValueError, KeyError):
                self.entries = {}

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, value: dict) -> None:
        self.entries[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"format": CACHE_FORMAT, "entries": self.entries}, indent=1))
        tmp.replace(self.path)


def peer_argv(args: list[str], path: Path) -> list[str]:
    """damo's arguments reading ``path``: in place of INPUT, else as ``-i``."""
    if INPUT in args:
        return [str(path) if a == INPUT else a for a in args]
    return [*args, "-i", str(path)]


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return ours / theirs if ours and theirs else None


def run(quick: bool = False, peers_only: bool = False) -> dict:
    """Time every report on every size; see the module docstring.

    ``peers_only`` measures (and caches) damo's figures only, so that they can be taken once, in
    the background, long before ours are final.
    """
    from bench.peers import CACHE, PeerUnavailable, peer_damo

    sizes = QUICK_SIZES if quick else selected(SIZES, "DAMO_BENCH_REPORT_SIZES")
    reports = selected(REPORTS, "DAMO_BENCH_REPORTS")
    peers: dict[str, list[str] | None] = {}
    notes, not_measured = [], {}
    for version in ([] if quick else PEERS):
        try:
            peers[version] = peer_damo(version)
        except PeerUnavailable as err:
            peers[version] = None
            not_measured[f"damo {version}"] = str(err)
    if quick:
        not_measured["damo 2.6.4 and 3.4.3"] = "--quick runs ours only"
    cache = PeerCache(CACHE / "bench-reports.json")
    rows = []
    reused = set()
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        tmp = Path(tmp)
        for label, (nr_snapshots, nr_regions) in sizes.items():
            inputs = write_inputs(tmp, label, nr_snapshots, nr_regions)
            files = inputs["files"]
            for report, (ours_args, v2_args, v3_args) in reports.items():
                row = {"size": label, "nr_regions": inputs["nr_regions"], "report": report}
                out = tmp / "out"
                for fmt in (() if peers_only else ("native", "json_compressed")):
                    row[f"ours_{fmt}"] = run_one(python_argv("-m", "damo", "report", *ours_args, "-i",
                                                             str(files[fmt]["path"])), out, None,
                                                 repo_env(NO_COLOR="1"))
                for version, args in zip(PEERS, (v2_args, v3_args)):
                    if quick or args is None or not peers.get(version):
                        continue
                    key = "|".join([version, label, f"{nr_snapshots}x{nr_regions}", " ".join(args),
                                    str(files["json_compressed"]["bytes"])])
                    theirs = cache.get(key)
                    if theirs is None:
                        theirs = run_one([*peers[version], "report", *peer_argv(args, files["json_compressed"]["path"])],
                                         out, PEER_TIMEOUT_S)
                        cache.put(key, theirs)
                    else:
                        reused.add(theirs["measured_at"])
                    row[f"damo_{version}"] = theirs
                if peers_only:
                    rows.append(row)
                    print(f"reports: {label} {report}: " + ", ".join(
                        f"{k} {v['cpu_seconds']} s CPU" for k, v in row.items() if isinstance(v, dict)), flush=True)
                    continue
                v3 = row.get("damo_3.4.3")
                if v3 and report in SAME_TEXT_AS_343:
                    key = "text_sha256" if v3.get("text_sha256") else "output_sha256"
                    row["same_output_as_damo_3.4.3"] = row["ours_native"].get(key) == v3.get(key)
                v2 = row.get("damo_2.6.4")
                if v2 and v2["output_sha256"]:
                    row["same_output_as_damo_2.6.4"] = row["ours_native"]["output_sha256"] == v2["output_sha256"]
                out.unlink(missing_ok=True)
                rows.append(row)
                print(f"reports: {label} {report}: " + ", ".join(
                    f"{k} {v['seconds']} s" for k, v in row.items() if isinstance(v, dict)), flush=True)
            notes.append(f"{label}: {inputs['nr_regions']:,} regions ({nr_snapshots} snapshots x {nr_regions}); "
                         f"native file {files['native']['bytes']:,} B, json_compressed "
                         f"{files['json_compressed']['bytes']:,} B")
            for fmt in files:
                files[fmt]["path"].unlink()
    notes.append("Each command runs once, sequentially, stdout to a file. Peak RSS is the child's ru_maxrss; "
                 "CPU is its user + system time, which the machine's other load does not inflate.")
    if reused:
        notes.append(f"damo's figures were measured earlier ({', '.join(sorted(reused))} UTC) and reused.")
    result = {"rows": rows, "notes": notes, "not_measured": not_measured}
    if peers_only:
        return result
    result["tables"] = tables(rows)
    result["headline"] = headline(rows)
    return result


def _cell_time(cell: dict | None) -> str:
    if not cell:
        return "-"
    if cell["seconds"] is None:
        return f"failed ({cell['error']})"
    return f"{cell['seconds']:.2f} ({cell['cpu_seconds']:.2f})"


def _cell_mib(cell: dict | None) -> str:
    if not cell or cell["peak_rss_bytes"] is None:
        return "-"
    return f"{cell['peak_rss_bytes'] / 2**20:,.0f}"


def speedup(ours: dict | None, theirs: dict | None, what: str = "cpu_seconds") -> float | None:
    """How many times faster (or smaller) ours is: theirs / ours."""
    if not ours or not theirs or not ours.get(what) or not theirs.get(what):
        return None
    return theirs[what] / ours[what]


def _x(value: float | None) -> str:
    return f"{value:.1f}x" if value is not None else "-"


def tables(rows: list[dict]) -> list[dict]:
    """Time and memory tables; speed-ups are damo's CPU seconds over ours."""
    time_rows, mem_rows = [], []
    for r in rows:
        native, jsonc = r.get("ours_native"), r.get("ours_json_compressed")
        v2, v3 = r.get("damo_2.6.4"), r.get("damo_3.4.3")
        time_rows.append([r["size"], r["report"], _cell_time(native), _cell_time(jsonc), _cell_time(v2),
                          _cell_time(v3), _x(speedup(native, v2)), _x(speedup(jsonc, v2)),
                          _x(speedup(native, v3)), _x(speedup(jsonc, v3)),
                          {True: "yes", False: "NO"}.get(r.get("same_output_as_damo_2.6.4"),
                                                         {True: "yes (3.4.3)", False: "NO (3.4.3)"}.get(
                                                             r.get("same_output_as_damo_3.4.3"), "-"))])
        mem_rows.append([r["size"], r["report"], _cell_mib(native), _cell_mib(jsonc), _cell_mib(v2), _cell_mib(v3),
                         _x(speedup(native, v2, "peak_rss_bytes")), _x(speedup(native, v3, "peak_rss_bytes"))])
    return [
        {"title": "Wall seconds (CPU seconds); speed-up = damo CPU / ours CPU",
         "columns": ["size", "report", "ours native", "ours json_c", "damo 2.6.4", "damo 3.4.3",
                     "vs 2.6.4 native", "vs 2.6.4 json_c", "vs 3.4.3 native", "vs 3.4.3 json_c",
                     "same text as damo"], "rows": time_rows},
        {"title": "Peak RSS (MiB); smaller-by = damo / ours (native file)",
         "columns": ["size", "report", "ours native", "ours json_c", "damo 2.6.4", "damo 3.4.3",
                     "smaller than 2.6.4 by", "smaller than 3.4.3 by"], "rows": mem_rows},
    ]


def headline(rows: list[dict]) -> list[dict]:
    """The biggest size measured: each report, ours against each damo."""
    if not rows:
        return []
    biggest = rows[-1]["size"]
    out = []
    for r in rows:
        if r["size"] != biggest:
            continue
        native, jsonc = r.get("ours_native"), r.get("ours_json_compressed")
        row = {"figure": f"`report {r['report']}`, {biggest} regions: CPU s (native / json_compressed), peak RSS",
               "ours": f"{native['cpu_seconds']:.2f} / {jsonc['cpu_seconds']:.2f} s, {_cell_mib(native)} MiB"
               if native["seconds"] and jsonc["seconds"] else "failed"}
        for version in PEERS:
            theirs = r.get(f"damo_{version}")
            if theirs and theirs["seconds"]:
                row[f"damo {version}"] = f"{theirs['cpu_seconds']:.1f} s, {_cell_mib(theirs)} MiB"
                row[f"ours/damo {version}"] = (f"{_x(speedup(native, theirs))} faster native, "
                                               f"{_x(speedup(jsonc, theirs))} json_c, "
                                               f"{_x(speedup(native, theirs, 'peak_rss_bytes'))} less memory")
        out.append(row)
    return out


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--peers-only"]:
        sys.exit("usage: python -m bench.reports --peers-only   (fills the cache of damo's figures)")
    run(peers_only=True)
