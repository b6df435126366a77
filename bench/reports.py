"""Report speed and memory on big records: ours against damo 2.6.4 and 3.4.3.

The same synthetic DAMON-like records (bench.synth) of 1 M and 6 M regions are written as our
native file and as damo's json_compressed file. Each report then runs in a fresh process, one at
a time, and we take its CPU time (user + system), wall time and the peak RSS of that very child:

- ours on the native file (a user's real path: our record read by our report), twice, the run
  with less CPU counting (other load only ever adds);
- ours on the json_compressed file (the same input damo reads);
- damo 2.6.4 and damo 3.4.3 on the json_compressed file, for every report that damo has.

Reports (REPORTS): raw (3.x: ``access --raw_form``), access in its default and
temperature-percentiles styles, times, heatmap (3.4.3's text), wss, nr_regions, heats, 2.6.4's
heatmap text (ours: ``heats --heatmap stdout --resol 40 80``), footprints, and access and times
with a filter that keeps every region (what filtering costs). Where a damo prints the same text
as we do, the outputs are compared (ANSI codes stripped), so the speed-up is for identical
results. ``--quick`` runs a 0.1 M file, a few reports, ours only.

damo's runs take up to an hour and 10 GiB each on the 6 M file, so each is measured once and
kept in ``~/.cache/damo-peers/bench-reports.json`` with its date, load and a hash of its
(ANSI-stripped) output, keyed by version, arguments and input (the synthetic input is
deterministic). ``python -m bench.reports --peers-only`` fills that cache in the background;
``DAMO_BENCH_CACHED_PEERS=1`` never runs damo (missing figures are listed as not measured yet);
``python -m bench.reports --refresh-peers`` puts figures measured since into bench/results.json,
.md and the README; ``DAMO_BENCH_REMEASURE=1`` measures damo again.

The cache lives outside the repo, so a fresh machine has none: every run first seeds it with the
figures committed in bench/results.json (``seed_cache``; each keeps the date and load of the run
that took it, and the key holds the input's size in bytes, so a changed input is measured anew).
``python -m bench.reports --seed-cache`` does only that.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import cpu_model
from bench.measure import REPO, measure, python_argv, repo_env

# label -> (snapshots, regions per snapshot)
SIZES = {"1M": (1000, 1000), "6M": (6000, 1000)}
QUICK_SIZES = {"0.1M": (100, 1000)}
PEERS = ("2.6.4", "3.4.3")
PEER_TIMEOUT_S = 3600
ANSI = re.compile(rb"\x1b\[[0-9;]*m")
CACHE_FORMAT = 1
CACHE_PATH = Path(os.environ.get("DAMO_PEERS_CACHE", Path.home() / ".cache" / "damo-peers")) / "bench-reports.json"
RESULTS_PATH = Path(__file__).resolve().parent / "results.json"

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
    # a filter that keeps every region: what filtering itself costs (ours only)
    "access --access_rate 0 100": (["access", "--access_rate", "0", "100"], None, None),
    "times --access_rate 0 100": (["times", "--access_rate", "0", "100"], None, None),
}
QUICK_REPORTS = ("raw", "access", "wss", "access --access_rate 0 100")
# runs of ours per file format; the one with the least CPU counts (a busy machine's noise is
# one-sided: other load slows a run down, never speeds it up)
OURS_RUNS = {"native": 2, "json_compressed": 1}
# filtered report -> the same report without the filter
FILTERED = {"access --access_rate 0 100": "access", "times --access_rate 0 100": "times"}
# reports that list every region, one line each: their lines per second are a goal
LISTINGS = ("raw", "access --raw_form")
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
            "lines": count_lines(out_path) if ok else None,
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


def count_lines(path: Path) -> int:
    """Newlines in a command's output."""
    count = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            count += block.count(b"\n")
    return count


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
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"format": CACHE_FORMAT, "entries": self.entries}, indent=1))
        tmp.replace(self.path)


def seed_cache(cache: PeerCache, results_path: Path = RESULTS_PATH) -> int:
    """Put damo's figures of a results.json's report rows into ``cache`` where it has none for
    that key (a run measured here wins); how many were added. Only finished runs are taken."""
    try:
        doc = json.loads(results_path.read_text())
        rows = doc["benchmarks"]["reports"]["result"]["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    machine = (doc.get("machine") or {}).get("cpu_model")     # where a figure without one was taken
    added = 0
    for row in rows:
        args = REPORTS.get(row.get("report"))
        if not args or not row.get("peer_input"):
            continue
        for version, peer_args in zip(PEERS, args[1:]):
            cell = row.get(f"damo_{version}")
            if not peer_args or not isinstance(cell, dict) or cell.get("seconds") is None:
                continue
            key = peer_key(version, row, peer_args)
            if cache.get(key) is None:
                cache.entries[key] = dict(cell)
                if machine:
                    cache.entries[key].setdefault("machine", machine)
                added += 1
    if added:
        cache.save()
    return added


def compile_package() -> None:
    """Byte-compile this checkout's modules, as pip does when it installs a package (and did for
    damo's): with PYTHONDONTWRITEBYTECODE set, every run of ours would compile them again
    (about 0.05 s of CPU per report)."""
    import compileall

    for package in ("damo", "masim"):
        compileall.compile_dir(str(REPO / package), quiet=2)


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
    the background, long before ours are final. With DAMO_BENCH_CACHED_PEERS=1 damo never runs:
    its rows are those in the cache (a peers-only run may still be filling it).
    """
    from bench.peers import PeerUnavailable, peer_damo

    cached_only = bool(os.environ.get("DAMO_BENCH_CACHED_PEERS"))
    sizes = QUICK_SIZES if quick else selected(SIZES, "DAMO_BENCH_REPORT_SIZES")
    reports = selected(REPORTS, "DAMO_BENCH_REPORTS")
    if quick:       # CI's quick suite: a few reports that exercise every code path here
        reports = {k: v for k, v in reports.items() if k in QUICK_REPORTS}
    peers: dict[str, list[str] | None] = {}
    notes, not_measured = [], {}
    for version in ([] if quick else PEERS):
        if cached_only:                 # damo never runs: its figures come from the cache alone
            peers[version] = ["damo-" + version]
            continue
        try:
            peers[version] = peer_damo(version)
        except PeerUnavailable as err:
            peers[version] = None
            not_measured[f"damo {version}"] = str(err)
    if quick:
        not_measured["damo 2.6.4 and 3.4.3"] = "--quick runs ours only"
    cache = PeerCache(CACHE_PATH)
    if not quick and not os.environ.get("DAMO_BENCH_REMEASURE"):
        seed_cache(cache)
    compile_package()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        tmp = Path(tmp)
        for label, (nr_snapshots, nr_regions) in sizes.items():
            inputs = write_inputs(tmp, label, nr_snapshots, nr_regions)
            files = inputs["files"]
            for report, (ours_args, v2_args, v3_args) in reports.items():
                row = {"size": label, "nr_regions": inputs["nr_regions"], "report": report}
                out = tmp / "out"
                for fmt in (() if peers_only else ("native", "json_compressed")):
                    if report in FILTERED and fmt != "native":
                        continue
                    argv = python_argv("-m", "damo", "report", *ours_args, "-i", str(files[fmt]["path"]))
                    runs = [run_one(argv, out, None, repo_env(NO_COLOR="1")) for _ in range(OURS_RUNS[fmt])]
                    row[f"ours_{fmt}"] = min(runs, key=lambda c: c["cpu_seconds"] or float("inf"))
                    row[f"ours_{fmt}"]["runs"] = len(runs)
                row["peer_input"] = {"shape": f"{nr_snapshots}x{nr_regions}",
                                     "json_compressed_bytes": files["json_compressed"]["bytes"]}
                for version, args in zip(PEERS, (v2_args, v3_args)):
                    if quick or args is None or not peers.get(version):
                        continue
                    theirs = cache.get(peer_key(version, row, args))
                    if theirs is None and not cached_only:
                        theirs = run_one([*peers[version], "report", *peer_argv(args, files["json_compressed"]["path"])],
                                         out, PEER_TIMEOUT_S)
                        theirs["machine"] = cpu_model()
                        cache.put(peer_key(version, row, args), theirs)
                    if theirs is not None:
                        row[f"damo_{version}"] = theirs
                if not peers_only:
                    compare_outputs(row)
                out.unlink(missing_ok=True)
                rows.append(row)
                print(f"reports: {label} {report}: " + ", ".join(
                    f"{k} {v['cpu_seconds']} s CPU" for k, v in row.items() if isinstance(v, dict) and "seconds" in v),
                    flush=True)
            notes.append(f"{label}: {inputs['nr_regions']:,} regions ({nr_snapshots} snapshots x {nr_regions}); "
                         f"native file {files['native']['bytes']:,} B, json_compressed "
                         f"{files['json_compressed']['bytes']:,} B")
            for fmt in files:
                files[fmt]["path"].unlink()
    notes.append("Each command runs on its own, sequentially, stdout to a file: ours twice on the native file "
                 "(the run with less CPU counts) and once on the json_compressed file, damo once. Peak RSS is "
                 "the child's ru_maxrss; CPU is its user + system time, which the machine's other load "
                 "inflates much less than wall time.")
    result = {"rows": rows, "notes": notes, "not_measured": not_measured}
    if not peers_only:
        summarise(result)
    return result


def peer_key(version: str, row: dict, args: list[str]) -> str:
    """damo's figures are cached under its version, its arguments and the input (deterministic)."""
    return "|".join([version, row["size"], row["peer_input"]["shape"], " ".join(args),
                     str(row["peer_input"]["json_compressed_bytes"])])


def compare_outputs(row: dict) -> None:
    """Whether our text (native file) is damo's, by the hashes of both outputs."""
    row.pop("same_output_as_damo_3.4.3", None)
    row.pop("same_output_as_damo_2.6.4", None)
    ours = row.get("ours_native") or {}
    v3 = row.get("damo_3.4.3")
    if v3 and v3.get("seconds") is not None and row["report"] in SAME_TEXT_AS_343:
        key = "text_sha256" if v3.get("text_sha256") else "output_sha256"
        row["same_output_as_damo_3.4.3"] = ours.get(key) == v3.get(key)
    v2 = row.get("damo_2.6.4")
    if v2 and v2.get("output_sha256"):
        row["same_output_as_damo_2.6.4"] = ours.get("output_sha256") == v2["output_sha256"]


def summarise(result: dict) -> None:
    """The tables, headline and notes on damo's figures of ``result['rows']``."""
    rows = result["rows"]
    dates = sorted({cell["measured_at"][:10] for r in rows for v in PEERS if (cell := r.get(f"damo_{v}"))})
    missing = sorted({f"damo {v} {r['size']} {r['report']}" for r in rows for v, args in
                      zip(PEERS, REPORTS.get(r["report"], (None, None, None))[1:])
                      if args is not None and f"damo_{v}" not in r and r.get("peer_input")
                      and not result.get("not_measured")})
    result["notes"] = [n for n in result["notes"] if not n.startswith(("damo's figures", "Not measured yet"))]
    machines = sorted({cell["machine"] for r in rows for v in PEERS
                       if (cell := r.get(f"damo_{v}")) and cell.get("machine")})
    if dates:
        result["notes"].append(f"damo's figures are measured once and cached (damo and the input do not change); "
                               f"these were measured on {', '.join(dates)}"
                               + (f" ({', '.join(machines)})" if machines else "")
                               + ", each with the load of its run; a cell names the CPU it ran on, which may "
                                 "not be the one ours ran on.")
    if missing:
        result["notes"].append("Not measured yet (damo's run had not finished): " + "; ".join(missing) + ".")
    result["tables"] = tables(rows)
    result["headline"] = headline(rows)


def refresh_peers(results_path: Path) -> dict:
    """Put damo's cached figures (those measured since) into a results.json's report rows, and
    recompute the ratios, without running anything."""
    results = json.loads(results_path.read_text())
    entry = results["benchmarks"]["reports"]
    cache = PeerCache(CACHE_PATH)
    for row in entry["result"]["rows"]:
        args = REPORTS.get(row["report"])
        if not args or not row.get("peer_input"):
            continue
        for version, peer_args in zip(PEERS, args[1:]):
            theirs = cache.get(peer_key(version, row, peer_args)) if peer_args else None
            if theirs is not None:
                row[f"damo_{version}"] = theirs
        compare_outputs(row)
    summarise(entry["result"])
    return results


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


def _mib(cell: dict) -> str:
    value = cell["peak_rss_bytes"] / 2**20
    return f"{value / 1024:.2f} GiB" if value >= 1024 else f"{value:,.0f} MiB"


def _cost(cell: dict | None, digits: int = 2) -> str:
    """``CPU s (wall s), peak RSS`` of one run, or why there is none."""
    if not cell:
        return "–"
    if cell.get("seconds") is None:
        error = cell.get("error") or "failed"
        if "invalid choice" in error:
            return "not yet (no such report in this checkout)"
        # "damo: error: /tmp/...: what (how to avoid it)": what, without the scratch path
        return "not measured: " + re.sub(r"^damo: error: \S+?: ", "", error).split(" (")[0]
    return f"{cell['cpu_seconds']:.{digits}f} s ({cell['seconds']:.{digits}f} s), {_mib(cell)}"


def headline(rows: list[dict]) -> list[dict]:
    """Every report at every size: ours from both files against each damo that has it (CPU
    seconds, wall in brackets, peak RSS), the listings' line rates and what a filter costs."""
    out = []
    by_key = {(r["size"], r["report"]): r for r in rows}
    for r in rows:
        if r["report"] in FILTERED:
            continue
        native, jsonc = r.get("ours_native"), r.get("ours_json_compressed")
        loads = sorted({c["load_average"] for c in (native, jsonc) if c})
        row = {"figure": f"`report {r['report']}`, {r['size']} regions: CPU s (wall s), peak RSS",
               "ours": (f"native {_cost(native)}; json_c {_cost(jsonc)}" if _cost(native) != _cost(jsonc)
                        else _cost(native))
                       + (f"; load {'-'.join(f'{v:g}' for v in loads)}" if loads else "")}
        for version in PEERS:
            theirs = r.get(f"damo_{version}")
            if not theirs:
                continue
            row[f"damo {version}"] = _cost(theirs, 1) + (
                f"; {theirs['measured_at'][:10]}, load {theirs['load_average']:g}" if theirs.get("seconds") else "") + (
                f", {theirs['machine']}" if theirs.get("seconds") and theirs.get("machine") else "")
            if theirs.get("seconds") and native and native.get("seconds"):
                row[f"ours/damo {version}"] = (
                    f"{_x(speedup(native, theirs))} faster native, {_x(speedup(jsonc, theirs))} json_c; "
                    f"{_x(speedup(native, theirs, 'peak_rss_bytes'))} less memory")
        out.append(row)
        if r["report"] in LISTINGS and native and native.get("seconds") and native.get("lines"):
            out.append({"figure": f"`report {r['report']}`, {r['size']} regions, native file: lines per second",
                        "ours": f"{native['lines'] / native['seconds'] / 1e6:.2f} M per wall second, "
                                f"{native['lines'] / native['cpu_seconds'] / 1e6:.2f} M per CPU second "
                                f"({native['lines']:,} lines)"})
    for (size, report), base_name in ((k, FILTERED[k[1]]) for k in by_key if k[1] in FILTERED):
        filtered, base = by_key[(size, report)].get("ours_native"), by_key.get((size, base_name), {}).get("ours_native")
        if filtered and base and filtered.get("cpu_seconds") and base.get("cpu_seconds"):
            out.append({"figure": f"`report {report}` (a filter keeping every region), {size} regions, native: "
                                  f"cost of the filter",
                        "ours": f"{100 * (filtered['cpu_seconds'] / base['cpu_seconds'] - 1):+.0f}% CPU "
                                f"({filtered['cpu_seconds']:.2f} s against {base['cpu_seconds']:.2f} s)"})
    out.append(IN_PROCESS_FILTER_COST)
    return out


# The bench's single short runs cannot tell a filter's few percent from this machine's noise, so
# the filter's cost was also measured once in one process, after the record was loaded; the row
# is kept here (with its date) so that every rendering of the headline carries it.
IN_PROCESS_FILTER_COST = {
    "figure": "Filter cost measured in one process (2026-12-02 09:41 UTC, load 3, after the filter's range was "
              "turned into bounds on the raw column): `report times` on the 6M record, CPU of the report after a "
              "0.8-1.4 s load",
    "ours": "none 0.000 s; `--access_rate 0 100` 0.020 s; `--access_rate 5 100` 0.112 s; `--age 0 1s` 0.152 s "
            "(before: 0.082 / 0.152 / 0.197 s): at most 15% of the command; `report access --access_rate 5 100` "
            "at 1M: 0.98 s CPU against 1.12 s unfiltered (before the heatmap walk fix: 2.13 s against 1.00 s)"}


def main(argv: list[str]) -> int:
    """``--peers-only`` fills damo's cache; ``--refresh-peers`` puts what it holds into
    bench/results.json (and .md, and the README's table); ``--seed-cache`` fills it from
    bench/results.json."""
    if argv == ["--peers-only"]:
        run(peers_only=True)
        return 0
    if argv == ["--seed-cache"]:
        added = seed_cache(PeerCache(CACHE_PATH))
        print(f"put {added} of damo's figures from {RESULTS_PATH} into {CACHE_PATH}")
        return 0
    if argv == ["--refresh-peers"]:
        from bench.render import update_readme
        from bench.run import BENCH_DIR, write_results

        results = refresh_peers(BENCH_DIR / "results.json")
        write_results(results, BENCH_DIR)
        readme = REPO / "README.md"
        readme.write_text(update_readme(readme.read_text(), results))
        print(f"refreshed damo's figures in {BENCH_DIR / 'results.md'} and README.md")
        return 0
    print("usage: python -m bench.reports --peers-only | --refresh-peers | --seed-cache", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
