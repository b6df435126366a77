"""The benchmark suite: the quick run end to end, the runner against fake modules, and measure()."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import machine, render
from bench import run as suite
from bench.measure import measure, python_argv

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20


@pytest.mark.slow
def test_quick_suite_writes_results(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == f"wrote {out / 'results.md'} and {out / 'results.json'}"

    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "quick"
    assert set(results["machine"]) == {"cpu_model", "cores", "usable_cores", "memory_bytes", "kernel_release",
                                       "python", "numpy", "date", "commit"}
    assert results["machine"]["cores"] == os.cpu_count()
    assert list(results["benchmarks"]) == list(suite.BENCHMARKS)
    for name, entry in results["benchmarks"].items():
        assert entry["status"] in ("ok", "skipped"), (name, entry["reason"])
        present = (REPO / "bench" / f"{name}.py").exists()
        assert (entry["status"] == "ok") == present, name
        assert (entry["result"] is not None) == present, name
        if present:
            assert isinstance(entry["result"], dict) and entry["result"], name
            assert entry["peak_rss_bytes"] > 0
    assert [f["figure"] for f in results["figures"]][:len(suite.FIGURES)] == [f for f, _ in suite.FIGURES]
    for fig in results["figures"]:
        assert fig["status"] == "measured" or fig["status"].startswith("not measured: ")

    md = (out / "results.md").read_text()
    for heading in ("# Benchmark results", "## Machine", "## Headline", "## Figures", "## Runs"):
        assert f"\n{heading}\n" in f"\n{md}"
    assert f"| CPU | {results['machine']['cpu_model']} |" in md
    assert f"| numpy | {results['machine']['numpy']} |" in md
    assert "| Figure | Benchmark | Status |" in md
    for name in suite.BENCHMARKS:
        assert f"\n## {name}: " in md
    for figure, name in suite.FIGURES:
        assert f"| {figure} | {name} | " in md
    # The suite's own renderers still understand the dicts the modules return today.
    for name, pick in render.HEADLINES.items():
        entry = results["benchmarks"][name]
        if entry["status"] == "ok":
            for row in pick(entry["result"]):
                assert f"| {row['figure']} | {row['ours']} |" in md
    for name, section in render.SECTIONS.items():
        entry = results["benchmarks"][name]
        if entry["status"] == "ok":
            assert "\n".join(section(entry["result"])) in md


FAKES = {
    "good": """
        import numpy as np

        def run(quick):
            return {"quick": quick, "regions": np.int64(300000), "load_seconds": 0.25,
                    "sizes": {"native": {"bytes": 3 * 1024 * 1024, "bytes_per_region": np.float64(10.5)},
                              "json_compressed": {"bytes": 12 * 1024 * 1024, "bytes_per_region": 42.0}},
                    "notes": ["a note"], "not_measured": {"6 M regions": "quick mode"},
                    "headline": [{"figure": "Load, 0.3 M regions", "value": "0.25 s"}]}
    """,
    "bad": """
        def run(quick):
            raise RuntimeError("the fake benchmark broke")
    """,
    "hangs": """
        import time

        def run(quick):
            time.sleep(120)
    """,
    "notadict": """
        def run(quick):
            return [1, 2]
    """,
}


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    pkg = tmp_path / "fakebench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, source in FAKES.items():
        (pkg / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))     # the runner's children look here too
    return "fakebench"


def test_runner_collects_results_and_failures(fake_package, tmp_path):
    lines = []
    results = suite.run_suite(["good", "bad", "hangs", "notadict", "missing"], quick=True, timeout=5,
                              progress=lines.append, package=fake_package)
    b = results["benchmarks"]
    assert list(b) == ["good", "bad", "hangs", "notadict", "missing"]
    assert b["good"]["status"] == "ok"
    assert b["good"]["result"]["regions"] == 300000 and b["good"]["result"]["quick"] is True
    assert b["good"]["result"]["sizes"]["native"]["bytes_per_region"] == 10.5
    assert b["bad"] == {**b["bad"], "status": "failed", "reason": "RuntimeError: the fake benchmark broke"}
    assert b["hangs"]["status"] == "failed" and b["hangs"]["reason"] == "timed out after 5 s"
    assert b["notadict"]["reason"] == "TypeError: fakebench.notadict.run() returned list, not dict"
    assert b["missing"] == {**b["missing"], "status": "skipped", "reason": "fakebench/missing.py is not written yet",
                            "result": None}
    assert lines[:2] == ["bench: good ...", f"bench: good ok in {b['good']['seconds']:.1f} s"]
    assert {"figure": "6 M regions", "benchmark": "good", "status": "not measured: quick mode"} in results["figures"]

    json_path, md_path = suite.write_results(results, tmp_path / "out")
    assert json.loads(json_path.read_text())["benchmarks"]["good"]["result"]["sizes"]["json_compressed"]["bytes"] \
        == 12 * MiB
    md = md_path.read_text()
    assert "| regions | 300,000 |" in md
    assert "| load_seconds | 250 ms |" in md
    assert "|  | bytes | bytes_per_region |\n|---|---|---|\n| native | 3 MiB | 10.5 |\n" \
           "| json_compressed | 12 MiB | 42 |\n" in md
    assert "- a note\n- not measured: 6 M regions: quick mode\n" in md
    assert "Not measured: timed out after 5 s." in md
    assert "## Headline\n\n| Figure | Ours |\n|---|---|\n| Load, 0.3 M regions | 0.25 s |\n" in md


def test_a_suite_run_keeps_the_sections_benchmarks_run_alone_wrote(fake_package, tmp_path):
    """bench.vm_overhead and the fleet benches put their sections into results.md; the suite's
    rewrite of results.md keeps them (it once dropped them) and put_section still replaces them."""
    out = tmp_path / "out"
    out.mkdir()
    vm_section = "<!-- vm:start -->\n## vm\n\n| boot | 21.5 s |\n<!-- vm:end -->\n"
    render.put_section(out / "results.md", "<!-- vm:start -->", "<!-- vm:end -->", vm_section)
    results = suite.run_suite(["good"], quick=True, timeout=60, progress=lambda line: None, package=fake_package)
    _, md_path = suite.write_results(results, out)
    md = md_path.read_text()
    assert md.endswith("\n\n" + vm_section) and md.count("<!-- vm:start -->") == 1
    assert "| regions | 300,000 |" in md
    suite.write_results(results, out)
    assert md_path.read_text() == md
    render.put_section(md_path, "<!-- vm:start -->", "<!-- vm:end -->", vm_section.replace("21.5", "20.0"))
    assert md_path.read_text() == md.replace("21.5", "20.0")


def test_every_figure_is_promised_by_a_known_benchmark():
    assert {name for _, name in suite.FIGURES} <= set(suite.BENCHMARKS)


def test_every_benchmark_module_is_registered():
    modules = {p.stem for p in (REPO / "bench").glob("*.py") if "\ndef run(" in p.read_text()}
    assert modules <= set(suite.BENCHMARKS)


def test_only_rejects_unknown_names(capsys):
    with pytest.raises(SystemExit) as exit_info:
        suite.build_parser().parse_args(["--only", "nosuch"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err


def test_measure_peak_rss_is_per_command():
    # A big child first, then a small one: the small one's peak must not inherit the big one's
    # (which getrusage(RUSAGE_CHILDREN) would report).
    big = measure(python_argv("-c", "x = b'x' * (300 * 1024 * 1024)"))
    small = measure(python_argv("-c", "pass"))
    assert big["returncode"] == 0 and small["returncode"] == 0
    assert big["peak_rss_bytes"] >= 300 * MiB
    assert small["peak_rss_bytes"] < 100 * MiB
    assert big["seconds"] > 0


def test_measure_reports_exit_code_and_stderr(tmp_path):
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        result = measure(python_argv("-c", "import sys; print('hello'); sys.exit('went wrong')"), stdout=f)
    assert result["returncode"] == 1
    assert result["stderr_tail"] == "went wrong\n"
    assert out.read_text() == "hello\n"


def test_measure_kills_on_timeout():
    result = measure(python_argv("-c", "import time; time.sleep(60)"), timeout=0.5)
    assert result["returncode"] is None


def test_cpu_model_and_memory_from_proc_files(tmp_path):
    x86 = tmp_path / "cpuinfo"
    x86.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold\n\n")
    arm = tmp_path / "cpuinfo-arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 48.00\n\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4\n")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684084 kB\nMemFree:        1 kB\n")
    assert machine.cpu_model(str(x86)) == "Intel(R) Xeon(R) Gold"
    assert machine.cpu_model(str(arm)) == "Raspberry Pi 4"
    assert machine.memory_bytes(str(meminfo)) == 24684084 * 1024
    assert machine.memory_bytes(str(tmp_path / "none")) is None


def test_cells_and_tables():
    assert render.cell("peak_rss_bytes", 1536 * MiB) == "1.5 GiB"
    assert render.cell("seconds", 2.5) == "2.5 s"
    assert render.cell("load_s", 0.0123) == "12.3 ms"
    assert render.cell("regions", 6_000_000) == "6,000,000"
    assert render.cell("ratio", 0.04567) == "0.0457"
    assert render.cell("x", None) == "–"
    assert render.ratio(2.0, 8.0) == "0.25" and render.ratio(None, 1.0) == "–"
    assert render.table(["a", "b|c"], [[1, "x|y"]]) == ["| a | b\\|c |", "|---|---|", "| 1 | x\\|y |", ""]


def test_readme_section_is_replaced_not_duplicated(fake_package):
    results = suite.run_suite(["good"], quick=True, timeout=60, progress=lambda line: None, package=fake_package)
    readme = "# damo\n\nIntro.\n"
    once = render.update_readme(readme, results)
    assert once.startswith("# damo\n\nIntro.\n\n<!-- bench:start -->\n## Benchmarks\n")
    assert "| Load, 0.3 M regions | 0.25 s |\n\n<!-- bench:end -->\n" in once
    assert f"on {results['machine']['cpu_model']}, {os.cpu_count()} core" in " ".join(once.split())
    again = render.update_readme(once + "## Later section\n", results)
    assert again == once + "\n## Later section\n"        # a blank line before the next section


def _cell(cpu, wall, rss_mib, lines=None, when="2026-12-02 07:00", error=None):
    return {"seconds": wall, "cpu_seconds": cpu, "peak_rss_bytes": rss_mib * MiB, "error": error,
            "load_average": 2.0, "measured_at": when, "lines": lines, "output_sha256": "a", "text_sha256": "a"}


def test_reports_headline_and_refresh_from_damo_cache(tmp_path, monkeypatch):
    """Speed-ups are damo's CPU over ours; damo's figures measured later join through the cache."""
    from bench import reports

    peer_input = {"shape": "6000x1000", "json_compressed_bytes": 123}
    rows = [
        {"size": "6M", "nr_regions": 6_000_000, "report": "raw", "peer_input": peer_input,
         "ours_native": _cell(2.0, 3.0, 250, lines=6_000_000), "ours_json_compressed": _cell(20.0, 21.0, 300),
         "damo_2.6.4": _cell(100.0, 200.0, 10000, when="2026-11-25 20:09")},
        {"size": "6M", "nr_regions": 6_000_000, "report": "access", "peer_input": peer_input,
         "ours_native": _cell(5.0, 6.0, 300), "ours_json_compressed": _cell(16.0, 17.0, 300)},
        {"size": "6M", "nr_regions": 6_000_000, "report": "access --access_rate 0 100", "peer_input": peer_input,
         "ours_native": _cell(5.5, 6.5, 300)},
        {"size": "6M", "nr_regions": 6_000_000, "report": "footprints", "peer_input": peer_input,
         "ours_native": _cell(None, None, 0, error="damo: error: argument REPORT: invalid choice: 'footprints'"),
         "ours_json_compressed": _cell(None, None, 0, error="damo: error: argument REPORT: invalid choice")},
    ]
    rows[3]["ours_native"]["seconds"] = rows[3]["ours_json_compressed"]["seconds"] = None
    result = {"rows": rows, "notes": [], "not_measured": {}}
    reports.summarise(result)
    head = {r["figure"]: r for r in result["headline"]}
    raw = head["`report raw`, 6M regions: CPU s (wall s), peak RSS"]
    assert raw["ours/damo 2.6.4"] == "50.0x faster native, 5.0x json_c; 40.0x less memory"
    assert "2026-11-25" in raw["damo 2.6.4"]
    assert head["`report raw`, 6M regions, native file: lines per second"]["ours"].startswith(
        "2.00 M per wall second, 3.00 M per CPU second")
    assert "damo 3.4.3" not in head["`report access`, 6M regions: CPU s (wall s), peak RSS"]
    assert head["`report footprints`, 6M regions: CPU s (wall s), peak RSS"]["ours"].startswith("not yet")
    filter_row = [r for f, r in head.items() if f.startswith("`report access --access_rate 0 100`")]
    assert filter_row[0]["ours"].startswith("+10% CPU")
    assert any("Not measured yet" in n and "damo 3.4.3 6M access" in n for n in result["notes"])

    # damo 3.4.3's access finishes later: --refresh-peers takes it from the cache
    cache = tmp_path / "bench-reports.json"
    monkeypatch.setattr(reports, "CACHE_PATH", cache)
    key = reports.peer_key("3.4.3", rows[1], ["access"])
    cache.write_text(json.dumps({"format": reports.CACHE_FORMAT, "entries": {key: _cell(500.0, 900.0, 10000)}}))
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps({"benchmarks": {"reports": {"result": result}}}))
    refreshed = reports.refresh_peers(results_path)["benchmarks"]["reports"]["result"]
    access = {r["figure"]: r for r in refreshed["headline"]}["`report access`, 6M regions: CPU s (wall s), peak RSS"]
    assert access["ours/damo 3.4.3"] == "100.0x faster native, 31.2x json_c; 33.3x less memory"
    assert refreshed["rows"][1]["same_output_as_damo_3.4.3"] is True
    missing = [n for n in refreshed["notes"] if n.startswith("Not measured yet")]
    assert missing == ["Not measured yet (damo's run had not finished): damo 3.4.3 6M raw."]


def test_reports_cache_is_seeded_from_committed_results(tmp_path, monkeypatch):
    """A fresh machine has no damo cache: the figures in results.json fill it, with their own
    date and load, without replacing one measured here, and a failed damo run is not taken."""
    from bench import reports

    peer_input = {"shape": "6000x1000", "json_compressed_bytes": 123}
    old = _cell(100.0, 200.0, 10000, when="2026-11-25 20:09")
    rows = [{"size": "6M", "report": "raw", "peer_input": peer_input, "damo_2.6.4": old,
             "damo_3.4.3": _cell(None, None, 0, error="did not finish within 3600 s")},
            {"size": "6M", "report": "wss", "peer_input": peer_input, "damo_2.6.4": _cell(90.0, 95.0, 9000),
             "damo_3.4.3": _cell(110.0, 120.0, 9000)},
            {"size": "6M", "report": "footprints", "peer_input": peer_input}]
    rows[0]["damo_3.4.3"]["seconds"] = None
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps({"machine": {"cpu_model": "AMD EPYC"},
                                        "benchmarks": {"reports": {"result": {"rows": rows}}}}))
    cache = reports.PeerCache(tmp_path / "cache" / "bench-reports.json")
    here = _cell(80.0, 85.0, 9000, when="2026-12-02 15:00")
    cache.put(reports.peer_key("2.6.4", rows[1], ["wss"]), here)
    assert reports.seed_cache(cache, results_path) == 2
    again = reports.PeerCache(tmp_path / "cache" / "bench-reports.json")
    assert again.get(reports.peer_key("2.6.4", rows[0], ["raw"])) == dict(old, machine="AMD EPYC")
    assert again.get(reports.peer_key("3.4.3", rows[0], ["access", "--raw_form"])) is None
    assert again.get(reports.peer_key("2.6.4", rows[1], ["wss"])) == here
    assert again.get(reports.peer_key("3.4.3", rows[1], ["wss"]))["measured_at"] == "2026-12-02 07:00"
    assert reports.seed_cache(again, results_path) == 0
    assert reports.seed_cache(again, tmp_path / "missing.json") == 0
    # the headline names the CPU damo ran on, which need not be ours
    rows[0]["ours_native"] = rows[0]["ours_json_compressed"] = _cell(2.0, 3.0, 250)
    rows[0]["damo_2.6.4"] = again.get(reports.peer_key("2.6.4", rows[0], ["raw"]))
    del rows[0]["damo_3.4.3"]
    result = {"rows": rows[:1], "notes": [], "not_measured": {}}
    reports.summarise(result)
    assert result["headline"][0]["damo 2.6.4"].endswith("2026-11-25, load 2, AMD EPYC")
    assert any("(AMD EPYC)" in n for n in result["notes"])
