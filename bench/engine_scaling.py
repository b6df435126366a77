"""Simulator speed, and how it scales with the target's size and with max_nr_regions.

DAMON's central claim is that its overhead depends on the number of regions, not on the size
of the monitored memory. This runs the user-space engine on one synthetic masim workload
scaled from 1 MiB to 1 TiB (region sizes and the access rate scale together, so the access
*pattern* is the same at every size), at the same nr_regions limits, and reports wall time
per simulated second; then the same at 4 GiB with max_nr_regions 100, 1000 and 10000.
The headline speed is the CLI itself: ``damo record masim/configs/zigzag.cfg``.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from damo.engine.sim_ops import sim_context
from damo.model import MonitoringAttrs

REPO = Path(__file__).resolve().parent.parent
KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
SIZES = [MIB, 64 * MIB, 4 * GIB, 256 * GIB, TIB]
MAX_NR_REGIONS = [100, 1000, 10000]
SCALING_CLAIM = 1.5
# a random pattern touches this fraction of its region's pages per 5 ms sample
RANDOM_TOUCH_FRACTION = 0.15


def workload_config(size: int, kind: str = "random") -> str:
    """A masim config over ``size`` bytes.

    ``random``: a warm part accessed at random (many regions: the per-region counts are noisy),
    a swept hot part and a cold rest. ``zigzag``: two parts swept in turns and a cold rest
    (few regions, like masim's zigzag.cfg).
    """
    warm, hot = size * 3 // 10, size // 20
    cold = size - warm - hot
    if kind == "zigzag":
        return (f"a, {warm}\nb, {hot}\ncold, {cold}\n\n"
                + "".join(f"phase {i}\n1000\n{'a' if i % 2 else 'b'}, 0, 4096, 1\n\n" for i in range(60)))
    return (f"warm, {warm}\nhot, {hot}\ncold, {cold}\n\n"
            "warm random\n30000\nwarm, 1, 4096, 1\n\n"
            "hot sweep\n5000\nhot, 0, 4096, 1\n\n"
            "warm again\n30000\nwarm, 1, 4096, 1\n")


def workload_model(size: int, kind: str = "random", seed: int = 0):
    from masim.config import parse_config
    from masim.model import AccessModel

    config = parse_config(workload_config(size, kind).rstrip("\n") + "\n", f"<scaling {kind} {size}>")
    warm_pages = size * 3 // 10 / 4096
    # accesses per ms such that a 5 ms sample draws RANDOM_TOUCH_FRACTION * warm pages
    rate = max(warm_pages * RANDOM_TOUCH_FRACTION / 5.0, 1e-3)
    return AccessModel(config, seed=seed, access_rate=rate)


def time_engine(size: int, attrs: MonitoringAttrs, seconds: float, kind: str = "random") -> dict:
    """Wall seconds per simulated second, and the region counts seen."""
    model = workload_model(size, kind)
    duration_ns = int(seconds * 1e9)
    ctx = sim_context(model, attrs, seed=0)
    counts = []
    begin, begin_cpu = time.perf_counter(), time.process_time()
    for agg in ctx.run(duration_ns):
        counts.append(sum(len(t.start) for t in agg.targets))
    wall, cpu = time.perf_counter() - begin, time.process_time() - begin_cpu
    return {"size_bytes": size, "workload": kind, "max_nr_regions": attrs.max_nr_regions,
            "simulated_s": seconds, "wall_s": round(wall, 4), "wall_per_sim_s": wall / seconds,
            "cpu_per_sim_s": cpu / seconds,
            "nr_regions_mean": float(np.mean(counts)), "nr_regions_max": int(np.max(counts))}


def best_of(repeats: int, points: list[tuple]) -> list[dict]:
    """Time every point ``repeats`` times, round-robin, keeping each point's fastest run.

    The minimum is the run least disturbed by whatever else the machine was doing.
    """
    best: list[dict | None] = [None] * len(points)
    for _ in range(repeats):
        for i, args in enumerate(points):
            r = time_engine(*args)
            if best[i] is None:
                best[i] = r
            else:       # each figure its own minimum
                best[i]["wall_s"] = min(best[i]["wall_s"], r["wall_s"])
                best[i]["wall_per_sim_s"] = min(best[i]["wall_per_sim_s"], r["wall_per_sim_s"])
                best[i]["cpu_per_sim_s"] = min(best[i]["cpu_per_sim_s"], r["cpu_per_sim_s"])
    return best


def time_cli(config: str, out_dir: str) -> dict:
    """The headline: the whole ``damo record`` command on a bundled config, in a fresh process."""
    from bench.measure import measure, python_argv, repo_env
    from masim.config import load_config

    path = REPO / config
    duration_s = sum(p.duration_ms for p in load_config(path).phases) / 1000
    cost = measure(python_argv("-m", "damo", "record", str(path), "-o", str(Path(out_dir) / "zz.data")),
                   cwd=REPO, env=repo_env(), timeout=600)
    if cost["returncode"] != 0:
        raise RuntimeError(f"damo record failed: {cost['stderr_tail']}")
    cpu = cost["cpu_seconds"]
    return {"config": config, "simulated_s": duration_s, "wall_s": round(cost["seconds"], 3),
            "cpu_s": round(cpu, 3), "speed_x_real_time": duration_s / cost["seconds"],
            "speed_x_real_time_cpu": duration_s / cpu if cpu else None, "peak_rss_bytes": cost["peak_rss_bytes"]}


def size_label(size: int) -> str:
    for unit, name in ((TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size >= unit:
            return f"{size / unit:g} {name}"
    return f"{size} B"


# (workload, max_nr_regions) series swept over the target sizes. The claim is judged where
# every size can hold the same number of regions: a 1 MiB target has ~320 pages (with the heap
# and stack), and a region of two pages or less is never split, so with the random workload at
# max 1000 it holds ~40 regions where the bigger targets hold ~400: listed for reference.
SERIES = [("zigzag", 1000, True), ("random", 100, True), ("random", 1000, False)]


def run(quick: bool = False) -> dict:
    seconds = 3.0 if quick else 20.0
    repeats = 1 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        cli = min((time_cli("masim/configs/zigzag.cfg", tmp) for _ in range(repeats)), key=lambda r: r["wall_s"])
    points = [(size, MonitoringAttrs(max_nr_regions=m), seconds, kind) for kind, m, _ in SERIES for size in SIZES]
    by_size = best_of(repeats, points)
    spreads = []
    for kind, max_nr, judged in SERIES:
        rows = [r for r in by_size if r["workload"] == kind and r["max_nr_regions"] == max_nr]
        spreads.append({"workload": kind, "max_nr_regions": max_nr, "judged": judged,
                        "wall": max(r["wall_per_sim_s"] for r in rows) / min(r["wall_per_sim_s"] for r in rows),
                        "cpu": max(r["cpu_per_sim_s"] for r in rows) / min(r["cpu_per_sim_s"] for r in rows)})
    by_max = best_of(repeats, [(4 * GIB, MonitoringAttrs(max_nr_regions=m), seconds) for m in MAX_NR_REGIONS])
    judged_cpu = max(sp["cpu"] for sp in spreads if sp["judged"])
    judged_wall = max(sp["wall"] for sp in spreads if sp["judged"])
    result = {
        "cli": cli,
        "by_size": by_size,
        "size_spreads": spreads,
        "size_spread": judged_wall,
        "size_spread_cpu": judged_cpu,
        "size_claim_holds": judged_wall <= SCALING_CLAIM,
        "size_claim_holds_cpu": judged_cpu <= SCALING_CLAIM,
        "by_max_nr_regions": by_max,
        "notes": [f"claim: wall time per simulated second within {SCALING_CLAIM}x from 1 MiB to 1 TiB at the same "
                  f"nr_regions limits (measured: {judged_wall:.2f}x wall, {judged_cpu:.2f}x CPU time)",
                  "random workload: 30% random (a 5 ms sample touches 15% of its pages), 5% swept, 65% idle; "
                  "zigzag workload: 30% and 5% swept in turns every second, 65% idle; "
                  "sizes and access rate scale together",
                  "random at max_nr_regions 1000 is not judged: a 1 MiB target cannot hold that many regions "
                  "(~320 pages; regions of two pages or less are never split), so it is faster there",
                  f"each figure is the fastest of {repeats} runs; CPU time (process_time) is reported too "
                  "because wall time on a shared machine also measures the other processes"],
    }
    judged_rows = [r for r in by_size if any(sp["judged"] and (sp["workload"], sp["max_nr_regions"])
                                              == (r["workload"], r["max_nr_regions"]) for sp in spreads)]
    result["headline"] = [
        {"figure": "Simulator speed, `damo record zigzag.cfg` (whole command)",
         "value": f"{cli['speed_x_real_time']:.0f}x real time ({cli['simulated_s']:g} s simulated in "
                  f"{cli['wall_s']:.2f} s wall, {cli['cpu_s']:.2f} s CPU)"},
        {"figure": "Simulator time per simulated second, 1 MiB to 1 TiB target, same nr_regions limits",
         "value": f"{min(r['cpu_per_sim_s'] for r in judged_rows) * 1000:.1f}-"
                  f"{max(r['cpu_per_sim_s'] for r in judged_rows) * 1000:.1f} ms CPU ({judged_cpu:.2f}x spread; "
                  f"wall {judged_wall:.2f}x)"},
        {"figure": "Simulator time per simulated second, max_nr_regions "
                   + " / ".join(str(r["max_nr_regions"]) for r in by_max),
         "value": " / ".join(f"{r['cpu_per_sim_s'] * 1000:.1f}" for r in by_max) + " ms CPU"},
    ]
    print(render(result))
    return result


def render(result: dict) -> str:
    cli = result["cli"]
    lines = [f"`damo record {cli['config']}`: {cli['simulated_s']:g} s simulated in {cli['wall_s']:.2f} s wall "
             f"= {cli['speed_x_real_time']:.0f}x real time ({cli['cpu_s']:.2f} s CPU, process start included)", "",
             "| workload | max_nr_regions | target size | wall ms / simulated s | CPU ms / simulated s "
             "| mean regions | max regions |", "|---|---:|---|---:|---:|---:|---:|"]
    for r in result["by_size"]:
        lines.append(f"| {r['workload']} | {r['max_nr_regions']} | {size_label(r['size_bytes'])} "
                     f"| {r['wall_per_sim_s'] * 1000:.1f} | {r['cpu_per_sim_s'] * 1000:.1f} "
                     f"| {r['nr_regions_mean']:.0f} | {r['nr_regions_max']} |")
    lines += ["", "| workload | max_nr_regions | spread across sizes, wall | CPU | judged |", "|---|---:|---:|---:|---|"]
    for sp in result["size_spreads"]:
        lines.append(f"| {sp['workload']} | {sp['max_nr_regions']} | {sp['wall']:.2f}x | {sp['cpu']:.2f}x "
                     f"| {'yes' if sp['judged'] else 'no (see notes)'} |")
    lines += ["", f"claim (<= {SCALING_CLAIM}x): wall {'holds' if result['size_claim_holds'] else 'does NOT hold'} "
              f"({result['size_spread']:.2f}x), CPU {'holds' if result['size_claim_holds_cpu'] else 'does NOT hold'} "
              f"({result['size_spread_cpu']:.2f}x)", "",
              "| max_nr_regions (random, 4 GiB) | wall ms / simulated s | CPU ms / simulated s | mean regions "
              "| max regions |", "|---:|---:|---:|---:|---:|"]
    for r in result["by_max_nr_regions"]:
        lines.append(f"| {r['max_nr_regions']} | {r['wall_per_sim_s'] * 1000:.1f} | {r['cpu_per_sim_s'] * 1000:.1f} | "
                     f"{r['nr_regions_mean']:.0f} | {r['nr_regions_max']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
