"""Where export's time and the dataset's bytes go: ``python -m bench.fleet_profile [--records 20]``.

Exports RECORDS of bench.fleet_scale's synthetic records (100,000 regions each) in this process,
one at a time, and splits the CPU time by stage: inflation of the native chunks, the rest of
native decoding, turning record pieces into table columns, Arrow conversion and Parquet
encoding/writing, and what is left (hashing the file, the records table, directories). Then it
adds up the compressed bytes of every column of the exported files. Writes bench/fleet_profile.md
and the fleet-profile section of bench/results.md. It complements bench.fleet_scale (whole runs
in fresh processes), which a loaded machine makes noisy; CPU time here is per stage.
"""
from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.fleet_scale import HERE, load_average, synthesise
from bench.render import put_section

SECTION_START, SECTION_END = "<!-- fleet-profile:start -->", "<!-- fleet-profile:end -->"


class _Timed:
    """Wraps ``owner.name`` so that the CPU time spent inside it accumulates in ``self.seconds``."""

    def __init__(self, owner, name: str):
        self.owner, self.name, self.seconds = owner, name, 0.0
        self.original = getattr(owner, name)

        def timed(*args, **kwargs):
            began = time.process_time()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - began
        setattr(owner, name, timed)

    def restore(self) -> None:
        setattr(self.owner, self.name, self.original)


def stage_seconds(paths: list[str], dataset: Path) -> tuple[dict[str, float], float, int]:
    """CPU seconds per export stage over ``paths`` (exported serially into ``dataset``), the total,
    and the minor page faults meanwhile (freed memory handed back to the kernel shows as faults)."""
    import resource

    import damo.formats.native as native
    import damo.model as model
    from damo.fleet import export

    export.export_records(paths[:1], dataset / "warm")          # imports and first-use costs
    shutil.rmtree(dataset / "warm")
    inflate = _Timed(native, "_inflate")
    decode = _Timed(native, "_decode_chunk")
    assemble = _Timed(model, "concat_columns")
    rows = _Timed(export._Chunker, "rows")
    write = _Timed(export._Tables, "write")
    close = _Timed(export._Tables, "close")
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    began = time.process_time()
    try:
        export.export_records(paths, dataset)
    finally:
        total = time.process_time() - began
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        for t in (inflate, decode, assemble, rows, write, close):
            t.restore()
    stages = {
        "inflation of native chunks (zlib; xz in version-1 files)": inflate.seconds,
        "native decoding (boundaries, predictions) and joining snapshots": decode.seconds + assemble.seconds,
        "record pieces to table columns (numbering, sizes, WSS)": rows.seconds,
        "Arrow arrays and Parquet encoding of regions and snapshots": write.seconds,
        "closing files and the records table": close.seconds,
    }
    stages["the rest (file hash, metadata, directories, renames)"] = total - sum(stages.values())
    return stages, total, faults


def column_bytes(dataset: Path) -> dict[tuple[str, str], int]:
    """Compressed bytes of each ``(table, column)`` over the dataset's files."""
    import pyarrow.parquet as pq

    sizes: dict[tuple[str, str], int] = collections.Counter()
    for table in ("records", "snapshots", "regions"):
        for f in (dataset / table).rglob("*.parquet"):
            meta = pq.read_metadata(f)
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                for c in range(group.num_columns):
                    column = group.column(c)
                    sizes[(table, column.path_in_schema.split(".")[0])] += column.total_compressed_size
    return sizes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20, help="records to export (default: 20)")
    parser.add_argument("--regions", type=int, default=100_000, help="regions per record (default: 100000)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fleet-profile-"))
    try:
        paths = synthesise(work / "records", args.records, args.regions)
        load_before = load_average()
        stages, total, faults = stage_seconds(paths, work / "dataset")
        sizes = column_bytes(work / "dataset")
        load_after = load_average()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    regions = args.records * args.regions
    began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [SECTION_START, "## Where export's time and the dataset's bytes go (`python -m bench.fleet_profile`)", "",
             f"Run on {began}: {args.records:,} records x {args.regions:,} regions exported serially in one "
             f"process; load average before {load_before}, after {load_after}. CPU time per stage "
             f"(time.process_time around each function). Total {total:.2f} s CPU: "
             f"{total / regions * 1e9:.0f} ns per region, {regions / total / 1e6:.2f} M regions per CPU second; {faults / args.records:,.0f} minor page "
             "faults per record.",
             "", "| Stage | CPU s | ns per region | Share |", "|---|---|---|---|"]
    for name, seconds in stages.items():
        lines.append(f"| {name} | {seconds:.2f} | {seconds / regions * 1e9:.0f} | {seconds / total:.0%} |")
    all_bytes = sum(sizes.values())
    lines += ["", f"Dataset: {all_bytes / regions:.2f} bytes per region (Parquet column chunks; file footers "
              "not counted). Bytes per region of each column, largest first (columns under 0.005 bytes "
              "per region are summed per table):", "", "| Table | Column | Bytes per region |", "|---|---|---|"]
    small: dict[str, int] = collections.Counter()
    for (table, column), size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        if size / regions >= 0.005:
            lines.append(f"| {table} | {column} | {size / regions:.3f} |")
        else:
            small[table] += size
    lines += [f"| {table} | (other columns) | {size / regions:.3f} |" for table, size in small.items()]
    lines.append(SECTION_END)
    section = "\n".join(lines) + "\n"
    (HERE / "fleet_profile.md").write_text(section)
    put_section(HERE / "results.md", SECTION_START, SECTION_END, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
