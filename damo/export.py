"""``damo export``: the command over damo.fleet.export (one format so far, ``parquet``)."""
from __future__ import annotations

import argparse
import os
import sys

DESCRIPTION = """\
Export records to other tools. `parquet` writes a hive-partitioned Parquet dataset (tables
records, snapshots and regions; schema in docs/dataset.md) that `damo fleet`, DuckDB and Spark
query in place. Exporting a record again replaces its rows."""

EXAMPLES = """\
examples:
  damo export parquet -i host*/damon.data -o fleet --partition_by service
  damo fleet summary fleet --by service"""

PARQUET_DESCRIPTION = """\
Write records (any format) into a Parquet dataset directory, created if missing or added to.
Each record is streamed a chunk at a time; its labels (damo record --label) can become
directory levels with --partition_by."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from damo.cli import ArgumentParser, HelpFormatter

    sub = parser.add_subparsers(dest="export_format", metavar="FORMAT", parser_class=ArgumentParser)
    sub.required = True
    cmd = sub.add_parser("parquet", help="a hive-partitioned Parquet dataset (for damo fleet, DuckDB, Spark)",
                         description=PARQUET_DESCRIPTION, epilog=EXAMPLES, formatter_class=HelpFormatter)
    cmd.add_argument("-i", "--input", nargs="+", required=True, metavar="RECORD", help="record files (any format)")
    cmd.add_argument("-o", "--output", required=True, metavar="DIR",
                     help="dataset directory (created if missing; an existing dataset is added to)")
    cmd.add_argument("--partition_by", type=_keys, default=[], metavar="LABEL[,LABEL...]",
                     help="labels whose values become directory levels, e.g. service,host (default: none; "
                          "record_id is always the last level)")
    cmd.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                     help="records exported at once, each in its own process (default: the number of CPUs)")


def _keys(text: str) -> list[str]:
    return [k for k in text.replace(" ", ",").split(",") if k]


def run(args: argparse.Namespace) -> int:
    from damo.fleet.export import export_records
    from damo.progress import stderr_console

    console = stderr_console()
    total = len(args.input)
    done = []

    def report(result) -> None:
        done.append(result)
        how = "replaced" if result.replaced else "exported"
        if console.is_terminal:
            console.print(f"[{len(done)}/{total}] {how} {result.path}: {result.nr_snapshots} snapshots, "
                          f"{result.nr_regions} regions (record_id {result.record_id})", highlight=False)

    with console.status(f"exporting {total} records", spinner="dots") if console.is_terminal else _null():
        export_records(args.input, args.output, args.partition_by, on_record=report, jobs=args.jobs)
    regions = sum(r.nr_regions for r in done)
    print(f"exported {len(done)} records ({regions} regions) to {args.output}", file=sys.stderr)
    return 0


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
