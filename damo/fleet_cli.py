"""``damo fleet``: the command over damo.fleet (summary and query on DuckDB or Spark)."""
from __future__ import annotations

import argparse

from damo.diff.analysis import parse_rate
from damo.fleet.engines import DEFAULT_SPARK_MASTER, ENGINES
from damo.fleet.queries import DEFAULT_IDLE_S, DEFAULT_PERCENTILES, SummaryOptions

DESCRIPTION = """\
SQL over the records of many machines, in a dataset made by `damo export parquet`. DIR is a
dataset directory or a quoted glob of them; its tables records, snapshots and regions are views.
DuckDB runs inside damo; --engine spark runs the same SQL on Spark (pip install
'damo-profiler[spark]' and Java)."""

EXAMPLES = """\
examples:
  damo fleet summary fleet --by service
  damo fleet summary fleet --by record --json
  damo fleet query fleet "SELECT labels['host'] AS host, nr_regions FROM records"
  damo fleet summary fleet --by service --engine spark --master spark://head:7077"""

SUMMARY_DESCRIPTION = """\
Per group of records: WSS percentiles as `damo report wss` computes them (pooled across the
group's records), hot/warm/cold bytes as `damo report diff` (summed over the group) and the
bytes not accessed for at least --idle seconds."""

SUMMARY_EXAMPLES = """\
examples:
  damo fleet summary fleet --by service --by kernel
  damo fleet summary 'fleets/*' --by record --csv"""

QUERY_DESCRIPTION = """\
Run SQL over the dataset's views records, snapshots and regions (columns in docs/dataset.md).
Labels are in the map column labels of records."""

QUERY_EXAMPLES = """\
examples:
  damo fleet query fleet "SELECT record_id, count(*) AS n FROM snapshots GROUP BY record_id"
  damo fleet query fleet "SELECT labels['service'] AS s, sum(size) FROM regions JOIN records USING (record_id) GROUP BY 1" --csv"""

BYTES_COLUMNS = {f"wss_p{p}" for p in range(101)} | {"wss_avg", "hot_bytes", "warm_bytes", "cold_bytes",
                                                      "idle_bytes"}


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DIR", help="dataset directory, or a quoted glob of them")
    parser.add_argument("--engine", choices=ENGINES, default="duckdb", help="SQL engine")
    parser.add_argument("--master", default=DEFAULT_SPARK_MASTER, metavar="URL",
                        help="Spark master URL for --engine spark")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the rows as JSON")
    out.add_argument("--csv", action="store_true", help="print the rows as CSV")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from damo.cli import ArgumentParser, HelpFormatter

    sub = parser.add_subparsers(dest="fleet_command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    summary = sub.add_parser("summary", help="per group: WSS percentiles, hot/warm/cold bytes and the idle tail",
                             description=SUMMARY_DESCRIPTION, epilog=SUMMARY_EXAMPLES, formatter_class=HelpFormatter)
    _engine_arguments(summary)
    summary.add_argument("--by", action="append", default=[], metavar="LABEL",
                         help="group by a label (or 'record', or a records column such as target_kind); "
                              "repeatable (default: all records are one group)")
    summary.add_argument("--percentiles", type=int, nargs="+", default=list(DEFAULT_PERCENTILES), metavar="P",
                         help="WSS percentiles")
    summary.add_argument("--exclude_samples", type=int, default=20, metavar="N",
                         help="skip the first N snapshots of each target, as report wss does")
    summary.add_argument("--hot", type=parse_rate, default=parse_rate("50%"), metavar="RATE",
                         help="hot from this access rate: N%% of the maximum or NHz (default: 50%%)")
    summary.add_argument("--cold", type=parse_rate, default=parse_rate("0Hz"), metavar="RATE",
                         help="cold up to this access rate (default: 0Hz)")
    summary.add_argument("--idle", type=float, default=DEFAULT_IDLE_S, metavar="SEC",
                         help="the idle tail: bytes not accessed for at least SEC seconds")
    summary.add_argument("--raw_number", action="store_true", help="print sizes as plain byte counts")
    summary.set_defaults(_fleet_run=run_summary)
    query = sub.add_parser("query", help="run any SQL over the records, snapshots and regions views",
                           description=QUERY_DESCRIPTION, epilog=QUERY_EXAMPLES, formatter_class=HelpFormatter)
    _engine_arguments(query)
    query.add_argument("sql", metavar="SQL", help="the query")
    query.set_defaults(_fleet_run=run_query)


def _print(result, args, bytes_columns=frozenset(), raw=False) -> None:
    from damo.fleet.render import text_table, to_csv, to_json

    if args.json:
        print(to_json(result))
    elif args.csv:
        print(to_csv(result))
    else:
        print(text_table(result, bytes_columns, raw))


def _with_engine(args, work):
    from damo.fleet.engines import open_engine

    engine = open_engine(args.engine, args.dataset, args.master)
    try:
        return work(engine)
    finally:
        engine.close()


def run_summary(args: argparse.Namespace) -> int:
    from damo.fleet.summary import summary

    options = SummaryOptions(by=args.by, exclude_samples=args.exclude_samples,
                             percentiles=tuple(args.percentiles), hot=args.hot, cold=args.cold, idle_s=args.idle)
    result = _with_engine(args, lambda engine: summary(engine, options))
    _print(result, args, BYTES_COLUMNS, args.raw_number)
    return 0


def run_query(args: argparse.Namespace) -> int:
    result = _with_engine(args, lambda engine: engine.run(args.sql))
    _print(result, args)
    return 0


def run(args: argparse.Namespace) -> int:
    return int(args._fleet_run(args) or 0)
