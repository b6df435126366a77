"""The benchmark suite: ``python -m bench [--quick] [--only NAME ...] [--out DIR]``.

Each benchmark is a module ``bench/<name>.py`` with ``run(quick: bool) -> dict``. The suite runs
every module in a fresh child process (so one module's memory, crash or hang cannot spoil another's
figures), collects the dicts, and writes ``results.json`` and ``results.md`` with the machine
description. Modules that have not been written yet are skipped with a note, and every figure the
suite promises but did not measure is listed as "not measured" with the reason, never guessed.

A module's dict is free-form JSON-able data; ``bench.render`` turns it into tables. Two keys are
understood everywhere: ``notes`` (a list of strings) and ``not_measured`` ({figure: why}).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from bench import machine
from bench.measure import REPO, measure, python_argv, repo_env

# name -> what it measures. The order is the order of the results.
BENCHMARKS: dict[str, str] = {
    "load": "record load time, peak RSS and bytes/region: native vs json_compressed",
    "reports": "every report's CPU time, wall time and peak RSS, ours vs damo 2.6.4 and 3.4.3",
    "engine_scaling": "simulator speed, and its scaling over target size and max_nr_regions",
    "accuracy": "WSS and heatmap error against masim ground truth, per config",
    "masim_touch_rate": "the masim runner's page-touch rate",
    "diff_validate": "report diff and validate time and peak RSS on 6 M-region records",
    "ongoing": "record ongoing: parser rate on a replayed trace, own CPU on this machine's kdamond, hot buffer",
    "startup": "start-up of `damo --help` and friends above a bare interpreter, and what they import",
    "html": "report html file size, write time and time to interactive in headless Chromium",
    "page_idle_cost": "page_idle backend CPU vs kernel DAMON's kdamond, 1 GiB workload in the shared-kernel VM",
    "page_idle_floor": "the kernel's idle-page-tracking work alone (C, no Python) per sample, in the shared-kernel VM",
    "footprint_cost": "CPU of --do_record's footprint, VMA and stat sampling with a 100-process tree",
}

# Every figure issue 8 asks for, and the benchmark that measures it.
FIGURES: list[tuple[str, str]] = [
    ("Load time, native and json_compressed", "load"),
    ("Load peak RSS, native and json_compressed", "load"),
    ("Bytes per region, native and json_compressed", "load"),
    ("`report heats --heatmap stdout` time and peak RSS, ours/damo 2.6.4 and 3.4.3", "reports"),
    ("`report wss` time and peak RSS, ours/damo 2.6.4 and 3.4.3", "reports"),
    ("`report raw` time and peak RSS, ours/damo 2.6.4 and 3.4.3", "reports"),
    ("`report raw` and `report access --raw_form` lines per second", "reports"),
    ("`report access` (default and temperature-percentiles styles) time and peak RSS, ours/damo 3.4.3", "reports"),
    ("`report heatmap`, `nr_regions`, `times` and `footprints` time and peak RSS, ours/damo", "reports"),
    ("What a filter adds to `report access` and `report times`", "reports"),
    ("Simulator speed (simulated seconds per wall second)", "engine_scaling"),
    ("Simulator scaling, 1 MiB to 1 TiB target", "engine_scaling"),
    ("Simulator scaling over max_nr_regions", "engine_scaling"),
    ("Accuracy: p25/p50/p75 WSS error per masim config", "accuracy"),
    ("Accuracy: heatmap cell error per masim config", "accuracy"),
    ("masim runner page-touch rate", "masim_touch_rate"),
    ("`report diff` and `validate` time and peak RSS", "diff_validate"),
    ("`record ongoing` parser regions per CPU-second on a replayed 100 k regions/s trace", "ongoing"),
    ("`damo --help` and `damo report --help` start-up above `python -c pass`", "startup"),
    ("`report html` size, write time and time to interactive (6 M regions)", "html"),
    ("page_idle CPU per second of monitoring vs kdamond, 100 and 1,000 regions", "page_idle_cost"),
    ("page_idle's kernel-side floor per sample (C probe), 4 KiB and THP pages, 100 and 1,000 regions",
     "page_idle_floor"),
    ("Footprint sampling CPU at damo's rate, 100-process tree", "footprint_cost"),
]

QUICK_TIMEOUT_S = 100.0
FULL_TIMEOUT_S = 4 * 3600.0
BENCH_DIR = Path(__file__).resolve().parent
QUICK_OUT = BENCH_DIR / "out"       # git-ignored, so a quick run never overwrites the real results
# damo does not change, and its 6 M-region runs take an hour: a full run reuses its cached figures
# (each shown with its date and load); DAMO_BENCH_REMEASURE=1 measures them afresh.
FULL_RUN_ENV: dict[str, str] = {}


def available(name: str, package: str = "bench") -> bool:
    """Whether ``bench/<name>.py`` exists in this checkout."""
    return importlib.util.find_spec(f"{package}.{name}") is not None


def run_benchmark(name: str, quick: bool, timeout: float, package: str = "bench") -> dict:
    """Run one benchmark module in a child process; its status, cost and result dict."""
    entry = {"status": "skipped", "reason": None, "seconds": None, "peak_rss_bytes": None, "result": None,
             "date": machine.utc_now()}
    if not available(name, package):
        entry["reason"] = f"{package}/{name}.py is not written yet"
        return entry
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        out = Path(tmp) / "result.json"
        argv = python_argv("-m", "bench.run", "--child", f"{package}.{name}", "--child-out", str(out))
        if quick:
            argv.append("--quick")
        cost = measure(argv, cwd=REPO, env=repo_env(**({} if quick else FULL_RUN_ENV)), timeout=timeout,
                       stdout=sys.stderr)
        entry["seconds"] = round(cost["seconds"], 3)
        entry["peak_rss_bytes"] = cost["peak_rss_bytes"]
        if cost["returncode"] is None:
            entry.update(status="failed", reason=f"timed out after {timeout:.0f} s")
        elif cost["returncode"] != 0 or not out.exists():
            last = cost["stderr_tail"].strip().splitlines()[-1:] or [f"exit code {cost['returncode']}"]
            entry.update(status="failed", reason=last[0][:300])
        else:
            entry.update(status="ok", result=json.loads(out.read_text()))
    return entry


def run_child(module_name: str, quick: bool, out: Path) -> int:
    """The child side: import the benchmark module, run it, write its dict as JSON."""
    result = importlib.import_module(module_name).run(quick=quick)
    if not isinstance(result, dict):
        raise TypeError(f"{module_name}.run() returned {type(result).__name__}, not dict")
    out.write_text(json.dumps(jsonable(result), indent=1, allow_nan=False))
    return 0


def jsonable(value):
    """``value`` with numpy scalars/arrays, paths and tuples turned into plain JSON; NaN/inf -> None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):    # numpy scalar or array
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def figure_status(results: dict) -> list[dict]:
    """Each promised figure with 'measured' or 'not measured: why'."""
    rows = []
    for figure, name in FIGURES:
        entry = results["benchmarks"].get(name)
        if entry is None:
            status = "not measured: not run (excluded with --only)"
        elif entry["status"] == "ok":
            status = "measured"
        else:
            status = f"not measured: {entry['reason']}"
        rows.append({"figure": figure, "benchmark": name, "status": status})
    for name, entry in results["benchmarks"].items():
        missing = (entry.get("result") or {}).get("not_measured") or {}
        for what, why in missing.items():
            rows.append({"figure": what, "benchmark": name, "status": f"not measured: {why}"})
    return rows


def run_suite(names: list[str], quick: bool, timeout: float, previous: dict | None = None,
              progress=print, package: str = "bench") -> dict:
    """Run ``names`` and return the results document (merged over ``previous`` if given)."""
    begin = time.perf_counter()
    results = {
        "suite": "damo-profiler benchmarks",
        "mode": "quick" if quick else "full",
        "machine": machine.describe(),
        "benchmarks": {},
    }
    if previous:
        results["benchmarks"].update(previous.get("benchmarks", {}))
    for name in names:
        progress(f"bench: {name} ...")
        entry = run_benchmark(name, quick, timeout, package)
        entry["mode"] = results["mode"]
        results["benchmarks"][name] = entry
        took = f" in {entry['seconds']:.1f} s" if entry["seconds"] is not None else ""
        progress(f"bench: {name} {entry['status']}{took}" + (f" ({entry['reason']})" if entry["reason"] else ""))
    order = [n for n in BENCHMARKS if n in results["benchmarks"]]
    order += [n for n in results["benchmarks"] if n not in BENCHMARKS]
    results["benchmarks"] = {n: results["benchmarks"][n] for n in order}
    results["elapsed_seconds"] = round(time.perf_counter() - begin, 3)
    results["figures"] = figure_status(results)
    return results


def write_results(results: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write results.json and results.md into ``out_dir`` (results.md keeps the sections that
    benchmarks run on their own put there, e.g. bench.vm_overhead's)."""
    from bench.render import markdown, with_own_sections

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(jsonable(results), indent=1, allow_nan=False) + "\n")
    old = md_path.read_text() if md_path.exists() else ""
    md_path.write_text(with_own_sections(old, markdown(results)))
    return json_path, md_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, no 6 M regions, peers optional: under 2 minutes (what CI runs)")
    parser.add_argument("--only", nargs="+", action="extend", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only these benchmarks ({', '.join(BENCHMARKS)})")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help=f"where results.md/.json go (default: bench/ for a full run, "
                             f"{QUICK_OUT.relative_to(REPO)}/ for --quick)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other benchmarks' entries of an existing DIR/results.json")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help=f"per benchmark (default: {QUICK_TIMEOUT_S:.0f} quick, {FULL_TIMEOUT_S:.0f} full)")
    parser.add_argument("--readme", action="store_true",
                        help="also put the headline table into README.md's Benchmarks section")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the suite; 0 when every benchmark that exists ran, 1 when one failed, 2 on bad usage."""
    args = build_parser().parse_args(argv)
    if args.child:
        return run_child(args.child, args.quick, args.child_out)
    out_dir = args.out or (QUICK_OUT if args.quick else BENCH_DIR)
    timeout = args.timeout or (QUICK_TIMEOUT_S if args.quick else FULL_TIMEOUT_S)
    previous = None
    if args.merge and (out_dir / "results.json").exists():
        previous = json.loads((out_dir / "results.json").read_text())
    names = args.only or list(BENCHMARKS)
    results = run_suite(names, args.quick, timeout, previous,
                        progress=lambda line: print(line, file=sys.stderr, flush=True))
    json_path, md_path = write_results(results, out_dir)
    print(f"wrote {md_path} and {json_path}")
    if args.readme:
        from bench.render import update_readme

        readme = REPO / "README.md"
        readme.write_text(update_readme(readme.read_text(), results))
        print(f"updated {readme}")
    failed = [n for n, e in results["benchmarks"].items() if e["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
