"""Time and peak RSS of ``damo report diff`` and ``damo validate`` on big synthetic records.

Each command runs in a fresh process (bench.measure). Loading alone is measured too, so the
analysis' own share can be read off. Full: 6000 snapshots x 1000 regions (6 M regions) per record;
quick: a tenth.

    python -m bench.diff_validate [--quick]          (or as part of: python -m bench)
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.measure import REPO, measure, python_argv, repo_env
from bench.synth import synth_record
from damo.formats import write_record

NR_REGIONS = 1000


def _row(name: str, argv: list[str], regions: int) -> dict:
    cost = measure(argv, cwd=REPO, env=repo_env())
    if cost["returncode"] not in (0, 1):
        raise RuntimeError(f"{name} failed ({cost['returncode']}): {cost['stderr_tail']}")
    return {"command": name, "regions": f"{regions:,}", "seconds": round(cost["seconds"], 2),
            "peak_rss_mib": round(cost["peak_rss_bytes"] / 2**20, 1)}


def run(quick: bool = False) -> dict:
    """The bench suite's entry point."""
    nr_snapshots = 600 if quick else 6000
    per_record = nr_snapshots * NR_REGIONS
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        paths = []
        for seed in range(4):
            path = Path(tmp) / f"r{seed}.data"
            write_record(synth_record(nr_snapshots, NR_REGIONS, seed=seed), path)
            paths.append(str(path))
        damo = python_argv("-m", "damo")
        rows = [
            _row("load only (read_record, one record)",
                 python_argv("-c", f"from damo.formats import read_record; read_record({paths[0]!r})"), per_record),
            _row("damo validate -i A", [*damo, "validate", "-i", paths[0]], per_record),
            _row("damo report diff A B --fail-if wss.p50>+10%",
                 [*damo, "report", "diff", paths[0], paths[1], "--fail-if", "wss.p50>+10%"], 2 * per_record),
            _row("damo report diff A B --json --heatmap-diff",
                 [*damo, "report", "diff", paths[0], paths[1], "--json", str(Path(tmp) / "d.json"),
                  "--heatmap-diff", str(Path(tmp) / "d.png")], 2 * per_record),
            _row("damo report diff --base A B --new C D",
                 [*damo, "report", "diff", "--base", *paths[:2], "--new", *paths[2:]], 4 * per_record),
        ]
    diff_row = rows[2]
    return {
        "tables": [{"title": "report diff and validate",
                    "columns": ["command", "regions", "seconds", "peak_rss_mib"],
                    "rows": [[r[c] for c in ("command", "regions", "seconds", "peak_rss_mib")] for r in rows]}],
        "headline": [
            {"figure": f"`report diff` of two {per_record:,}-region records",
             "value": f"{diff_row['seconds']} s, {diff_row['peak_rss_mib']} MiB"},
            {"figure": f"`validate` of a {per_record:,}-region record",
             "value": f"{rows[1]['seconds']} s, {rows[1]['peak_rss_mib']} MiB"},
        ],
        "notes": ["Records are bench.synth DAMON-like records in the native format; 'load only' is the "
                  "floor that reading one record costs."],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
