"""``damo report html`` on the 6 M-region record: file size, time to write it, time to interactive.

The record is bench.synth's (6000 snapshots x 1000 regions; quick: 600 x 1000) in the native
format. The report runs in a fresh process (bench.measure: wall and CPU time, peak RSS). The
page is then opened from disk in headless Chromium (Debian's, through Playwright) until
``window.damoReport.ready`` (the heatmap, plots and table are drawn and answer the mouse) and
until every pyramid level is inflated; the best of three loads is kept (one with --quick). Goals (issue 21): at most
25 MB, written in at most 10 s, interactive in at most 3 s.

    python -m bench.html [--quick]          (or as part of: python -m bench)
    python -m bench.html --screenshots docs  (docs/html-zigzag.png and docs/html-stairs.png)
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.measure import REPO, measure, python_argv, repo_env
from bench.synth import synth_record
from damo.formats import write_record

NR_REGIONS = 1000
LOADS = 3


def time_to_interactive(html_path: Path, loads: int = LOADS) -> dict | None:
    """Best of ``loads`` page loads: wall seconds from navigation to ready and to every level
    inflated, and the renderer's CPU seconds (main thread, and whole process) at ready, which the
    machine's other load does not inflate much. None without Chromium or Playwright."""
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
        from browser_support import Browser, chromium_path
    except ImportError:
        return None
    if not chromium_path():
        return None
    browser = Browser()
    runs = []
    try:
        for _ in range(loads):
            page = browser.context.new_page()
            cdp = browser.context.new_cdp_session(page)
            cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
            page.goto(f"file://{html_path}")
            page.wait_for_function("window.damoReport && window.damoReport.ready", timeout=120000)
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            page.wait_for_function("window.damoReport.allLevels", timeout=120000)
            runs.append({"ready_s": round(page.evaluate("damoReport.readyMs") / 1000, 2),
                         "all_levels_s": round(page.evaluate("performance.now()") / 1000, 2),
                         "ready_main_thread_cpu_s": round(metrics["ThreadTime"], 2),
                         "ready_renderer_cpu_s": round(metrics["ProcessTime"], 2)})
            page.close()
    finally:
        browser.close()
    return min(runs, key=lambda r: r["ready_s"])


def run(quick: bool = False) -> dict:
    """The bench suite's entry point."""
    nr_snapshots = 600 if quick else 6000
    regions = nr_snapshots * NR_REGIONS
    load = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="bench-html-") as tmp:
        record_path, html_path = Path(tmp) / "r.data", Path(tmp) / "r.html"
        write_record(synth_record(nr_snapshots, NR_REGIONS, seed=0), record_path)
        cost = measure(python_argv("-m", "damo", "report", "html", "-i", str(record_path), "-o", str(html_path)),
                       cwd=REPO, env=repo_env())
        if cost["returncode"] != 0:
            raise RuntimeError(f"report html failed: {cost['stderr_tail']}")
        size = html_path.stat().st_size
        browser = time_to_interactive(html_path, 1 if quick else LOADS)
    row = {"regions": f"{regions:,}", "file_mb": round(size / 1e6, 2), "write_s": round(cost["seconds"], 2),
           "write_cpu_s": round(cost.get("cpu_seconds", 0.0), 2),
           "peak_rss_mib": round(cost["peak_rss_bytes"] / 2**20, 1),
           "interactive_s": browser["ready_s"] if browser else None,
           "interactive_renderer_cpu_s": browser["ready_renderer_cpu_s"] if browser else None,
           "all_levels_s": browser["all_levels_s"] if browser else None}
    result = {
        "tables": [{"title": "report html (native input)", "columns": list(row), "rows": [list(row.values())]}],
        "headline": [{"figure": f"`report html` of {regions:,} regions: file size / written (wall, CPU) / "
                                "interactive in headless Chromium",
                      "value": f"{row['file_mb']} MB / {row['write_s']} s, {row['write_cpu_s']} s CPU / "
                               + (f"{row['interactive_s']} s, {row['interactive_renderer_cpu_s']} s renderer CPU"
                                  if browser else "not measured")}],
        "notes": [f"Load average when the run began: {load} on a 2-core machine (wall times grow with it; CPU "
                  "seconds do not). Goals: <= 25 MB, written <= 10 s, interactive <= 3 s.",
                  "interactive_s: navigation to the first drawn heatmap, plots and table (wall); "
                  "interactive_renderer_cpu_s: the renderer process' CPU time by then (Chromium's ProcessTime "
                  "metric), of which loading plotly.min.js alone is about three quarters; all_levels_s: until "
                  "the zoom pyramid's finer levels are inflated too (the page answers the mouse meanwhile)."],
    }
    if not browser:
        result["not_measured"] = {"time to interactive": "chromium or playwright is not installed"}
    return result


def screenshots(out_dir: Path, width: int = 1280, height: int = 800) -> list[Path]:
    """Small PNGs of the zigzag and stairs reports (masim records), for the docs and the README."""
    import subprocess
    import sys

    from PIL import Image

    sys.path.insert(0, str(REPO / "tests"))
    from browser_support import Browser

    written = []
    browser = Browser()
    try:
        browser.context.pages[0].set_viewport_size({"width": width, "height": height})
        with tempfile.TemporaryDirectory(prefix="bench-html-shots-") as tmp:
            for name in ("zigzag", "stairs"):
                record, page_path = Path(tmp) / f"{name}.data", Path(tmp) / f"{name}.html"
                damo = python_argv("-m", "damo")
                for argv in ([*damo, "record", str(REPO / "masim" / "configs" / f"{name}.cfg"), "-o", str(record)],
                             [*damo, "report", "html", "-i", str(record), "-o", str(page_path)]):
                    subprocess.run(argv, cwd=tmp, env=repo_env(), check=True, capture_output=True)
                page = browser.open(page_path)
                page.set_viewport_size({"width": width, "height": height})
                page.wait_for_timeout(500)
                png = Path(tmp) / f"{name}.png"
                page.screenshot(path=str(png))
                page.close()
                out = out_dir / f"html-{name}.png"
                image = Image.open(png).convert("RGB").resize((width * 3 // 4, height * 3 // 4), Image.LANCZOS)
                image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
                written.append(out)
    finally:
        browser.close()
    return written


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--screenshots", type=Path, metavar="DIR", help="write the docs' screenshots into DIR")
    args = parser.parse_args(argv)
    if args.screenshots:
        for path in screenshots(args.screenshots):
            print(f"wrote {path} ({path.stat().st_size:,} bytes)")
        return {}
    result = run(args.quick)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
