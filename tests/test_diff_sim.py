"""damo report diff on simulator records: the issue's done-when checks, end to end."""
from __future__ import annotations

import json

import pytest

from damo.cli import main

import schema_check
from conftest import REPO, run_cli

CONFIGS = REPO / "masim" / "configs"
MB = 1_000_000


@pytest.fixture(scope="session")
def sim_records(tmp_path_factory):
    """Simulator records, made once per session: name -> path ("zigzag-1" is zigzag_30secs, seed 1)."""
    out = tmp_path_factory.mktemp("sim")
    wanted = {"zigzag-1": ("zigzag_30secs", 1), "zigzag-1-again": ("zigzag_30secs", 1),
              "zigzag-2": ("zigzag_30secs", 2), "zigzag-3": ("zigzag_30secs", 3),
              "zigzag-4": ("zigzag_30secs", 4), "stairs-1": ("stairs_30secs", 1),
              "stairs-2": ("stairs_30secs", 2)}
    paths = {}
    for name, (config, seed) in wanted.items():
        path = out / f"{name}.data"
        assert main(["record", str(CONFIGS / f"{config}.cfg"), "--seed", str(seed), "-o", str(path)]) == 0
        paths[name] = str(path)
    return paths


GATES = ["wss.p0>+1%", "wss.p25>+1%", "wss.p50>+1%", "wss.p75>+1%", "wss.p100>+1%", "wss.avg>+1%",
         "wss.p50<-1%", "wss.p100>+1MiB", "hot_bytes>+1%", "hot_bytes<-1%", "warm_bytes>+0%",
         "cold_bytes>+0%", "nr_regions.avg>+0", "nr_regions.p100<-0", "duration>+0s"]


def test_same_config_and_seed_diff_to_zero(sim_records, capsys):
    args = ["report", "diff", sim_records["zigzag-1"], sim_records["zigzag-1-again"], "--json"]
    for gate in GATES:
        args += ["--fail-if", gate]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    doc = json.loads(captured.out)
    assert schema_check.errors(doc, json.loads((REPO / "docs" / "diff-schema.json").read_text())) == []
    assert all(m["delta"] == 0 and m["delta_pct"] == 0 for m in doc["metrics"].values())
    assert doc["heat_changes"] == [] and doc["warnings"] == []
    assert len(doc["gates"]) == len(GATES) and doc["nr_tripped"] == 0


def test_zigzag_against_stairs_trips_wss_growth_one_way_only(sim_records):
    stairs, zigzag = sim_records["stairs-1"], sim_records["zigzag-1"]
    done = run_cli("report", "diff", stairs, zigzag, "--fail-if", "wss.p50>+10%")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("FAIL wss.p50>+10%: wss.p50 ")
    # damon-tests' expected medians: stairs_30secs 9-11 MB, zigzag_30secs 90-110 MB
    done = run_cli("report", "diff", stairs, zigzag, "--json")
    wss = json.loads(done.stdout)["metrics"]["wss.p50"]
    assert 9 * MB <= wss["base"]["mean"] <= 11 * MB and 90 * MB <= wss["new"]["mean"] <= 110 * MB

    done = run_cli("report", "diff", zigzag, stairs, "--fail-if", "wss.p50>+10%")
    assert done.returncode == 0 and done.stderr == ""
    assert "  pass wss.p50>+10%: " in done.stdout
    done = run_cli("report", "diff", zigzag, stairs, "--fail-if", "wss.p50<-10%")
    assert done.returncode == 1 and done.stderr.startswith("FAIL wss.p50<-10%")


def test_repeated_runs_with_other_seeds(sim_records, capsys):
    """Seeds only jitter the runs: no gate trips between seed sets, the workload change still does."""
    zig_a = [sim_records["zigzag-1"], sim_records["zigzag-2"]]
    zig_b = [sim_records["zigzag-3"], sim_records["zigzag-4"]]
    stairs = [sim_records["stairs-1"], sim_records["stairs-2"]]
    gates = ["--fail-if", "wss.p50>+5%", "--fail-if", "wss.p50<-5%", "--fail-if", "hot_bytes>+5%",
             "--fail-if", "hot_bytes<-5%"]
    assert main(["report", "diff", "--base", *zig_a, "--new", *zig_b, *gates]) == 0
    capsys.readouterr()
    assert main(["report", "diff", "--base", *stairs, "--new", *zig_b, *gates, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [g["expr"] for g in doc["gates"] if g["tripped"]] == ["wss.p50>+5%", "hot_bytes>+5%"]
    assert doc["metrics"]["wss.p50"]["base"]["n"] == 2


def test_heatmap_and_markdown_of_simulator_records(sim_records, tmp_path):
    png, md = tmp_path / "diff.png", tmp_path / "summary.md"
    assert main(["report", "diff", sim_records["stairs-1"], sim_records["zigzag-1"], "--heatmap-diff", str(png),
                 "--markdown", str(md)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    text = md.read_text()
    assert text.startswith("### damo report diff: no gates\n")
    assert "| wss.p50 |" in text and "**Heat changes**" in text
