"""The fleet at scale: ``python -m bench.fleet_scale [--records 1000] [--regions 100000]``.

Synthesises RECORDS native records of REGIONS regions each (bench.synth; 100 snapshots of
REGIONS/100 regions, 50 of them
synthesised and reused under other labels: service (4 values) and host), exports them with
``damo export parquet`` and runs ``damo fleet summary --by record`` on DuckDB and on Spark
(local[2]), each in a fresh process measured by bench.measure (wall time, peak RSS). Goals
(issue 20): summary <= 10 s, export >= 5 M regions/s, <= 2 bytes per region, peak RSS <= 1 GiB.
Writes bench/fleet_results.md and the fleet section of bench/results.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.render import put_section
from bench.measure import measure, python_argv, repo_env
from bench.synth import synth_record

HERE = Path(__file__).resolve().parent
SECTION_START, SECTION_END = "<!-- fleet:start -->", "<!-- fleet:end -->"
NR_SNAPSHOTS = 100
GIB = 1 << 30


def synthesise(out: Path, nr_records: int, nr_regions: int, nr_distinct: int = 50) -> list[str]:
    """RECORDS native files: ``nr_distinct`` synthetic records, each reused under other labels.

    A copy gets its own header (labels service and host) before the base record's chunks, so
    every file, hence every record id, is distinct while only ``nr_distinct`` are synthesised.
    """
    import json

    from damo.formats import native, write_record

    out.mkdir(parents=True, exist_ok=True)
    bases = []
    for i in range(min(nr_distinct, nr_records)):
        path = out / f"base{i:03d}.data"
        if not path.exists():
            write_record(synth_record(NR_SNAPSHOTS, nr_regions // NR_SNAPSHOTS, seed=i), path)
        meta, offset = native.read_meta(path)
        bases.append((meta, path.read_bytes()[offset:]))
    paths = []
    for i in range(nr_records):
        path = out / f"r{i:04d}.data"
        meta, chunks = bases[i % len(bases)]
        meta.labels = {"service": f"svc{i % 4}", "host": f"host{i:04d}"}
        blob = json.dumps(meta.to_dict(), sort_keys=True).encode()
        path.write_bytes(native.HEADER.pack(native.MAGIC, native.VERSION, 0, len(blob)) + blob + chunks)
        paths.append(str(path))
    return paths


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000, help="number of records (default: 1000)")
    parser.add_argument("--regions", type=int, default=100_000, help="regions per record (default: 100000)")
    parser.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--no-spark", action="store_true", help="skip the Spark summary")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="fleet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.perf_counter()
    paths = synthesise(work / "records", args.records, args.regions)
    synth_s = time.perf_counter() - t0
    total = args.records * (args.regions // NR_SNAPSHOTS) * NR_SNAPSHOTS
    dataset = work / "dataset"
    shutil.rmtree(dataset, ignore_errors=True)
    loads = {"before": load_average()}
    env = repo_env()
    export = measure(python_argv("-m", "damo", "export", "parquet", "-i", *paths, "-o", str(dataset),
                                 "--partition_by", "service"), env=env)
    loads["export"] = load_average()
    size = dir_bytes(dataset)
    duck = measure(python_argv("-m", "damo", "fleet", "summary", str(dataset), "--by", "record", "--csv"), env=env)
    loads["duckdb"] = load_average()
    spark = None
    if not args.no_spark:
        spark = measure(python_argv("-m", "damo", "fleet", "summary", str(dataset), "--by", "record", "--csv",
                                    "--engine", "spark"), env=env)
        loads["spark"] = load_average()
    for name, m in (("export", export), ("duckdb summary", duck), ("spark summary", spark)):
        if m and m["returncode"] != 0:
            print(f"{name} failed: {m['stderr_tail']}", file=sys.stderr)
            return 1
    def times(m) -> str:
        return f"{m['seconds']:.1f} s wall, {m['cpu_seconds']:.1f} s CPU, {m['peak_rss_bytes'] / 2**20:.0f} MiB"

    rows = [
        ("Records x regions", f"{args.records:,} x {args.regions:,} = {total:,} region rows", "1,000 x 100,000"),
        ("`damo export parquet`: wall, CPU, peak RSS; rate by wall / by CPU time",
         f"{times(export)}; {total / export['seconds'] / 1e6:.2f} / {total / export['cpu_seconds'] / 1e6:.2f} "
         "M regions/s", ">= 5 M regions/s, <= 1 GiB"),
        ("Dataset size", f"{size / 2**20:.0f} MiB, {size / total:.2f} bytes per region", "<= 2 bytes per region"),
        ("`damo fleet summary --by record`, DuckDB: wall, CPU, peak RSS", times(duck), "<= 10 s, <= 1 GiB"),
    ]
    if spark:
        # pyspark's JVM is not a child that Python waits for, so wait4 sees the Python driver only.
        rows.append(("`damo fleet summary --by record --engine spark` (local[2]): wall; CPU and peak RSS of the "
                     "Python driver only (the JVM is not a waited-for child)", times(spark), "-"))
    lines = [SECTION_START, "## Fleet at scale (`python -m bench.fleet_scale`)", "",
             f"Run on {began}, {os.cpu_count()} cores; load average (1, 5, 15 min) before: {loads['before']}; "
             f"after each step: " + "; ".join(f"{k} {v}" for k, v in loads.items() if k != "before")
             + f". Synthesising the records took {synth_s:.0f} s (not counted). Each command ran in a fresh "
             "process (bench.measure: wall time, CPU time and peak RSS of the process tree); on a shared, "
             "loaded machine the CPU time is the figure to compare with the goals.", "",
             "| Figure | Measured | Goal |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines.append(SECTION_END)
    section = "\n".join(lines) + "\n"
    (HERE / "fleet_results.md").write_text(section)
    put_section(HERE / "results.md", SECTION_START, SECTION_END, section)
    print(section)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
