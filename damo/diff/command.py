"""Compare two records, or two sets of repeated records, for CI regression checks.

  damo report diff BASE NEW                       BASE, NEW: a record file, or a directory whose
                                                  *.data files are repeated runs
  damo report diff --base A1 A2 A3 --new B1 B2 B3 explicit lists of repeated runs (globs welcome)

Compares WSS percentiles, hot/warm/cold bytes, nr_regions, duration, and the address ranges whose
access rate changed most (mapped areas aligned by order and size, not by address). Gates:
--fail-if 'wss.p50>+10%' (repeatable) exits 1 when a change passes its threshold by more than the
noise of repeated runs; 0 otherwise; 2 for bad input. See docs/ci.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from damo.diff import analysis
from damo.diff.gates import SYNTAX, evaluate_all, parse_gate
from damo.errors import DamoError
from damo.selection import add_exclude_samples_option

DEFAULT_NOISE_K = 2.0
DEFAULT_TIME_ROWS = 100


DESCRIPTION = """\
Compare two records, or two sets of repeated records, for regression checks in CI: working set
size percentiles, hot/warm/cold bytes, number of regions, duration, and the address ranges
whose access rate changed most (mapped areas are matched by order and size, not by address).

BASE and NEW are record files, or directories whose *.data files are repeated runs. A --fail-if
gate exits 1 when a change passes its threshold by more than the noise of the repeated runs;
otherwise the exit code is 0, and 2 for bad input. docs/ci.md describes the metrics and gates."""

EXAMPLES = """\
examples:
  damo report diff base.data new.data
  damo report diff baseline/ new/ --fail-if 'wss.p50>+10%' --markdown "$GITHUB_STEP_SUMMARY"
  damo report diff --base A1 A2 A3 --new B1 B2 B3 --json diff.json   # repeated runs (globs welcome)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sides", nargs="*", metavar="BASE NEW",
                        help="base and new: record files, or directories of *.data records")
    parser.add_argument("--base", nargs="+", metavar="FILE", help="base records (repeated runs) (default: BASE)")
    parser.add_argument("--new", nargs="+", metavar="FILE", help="new records (repeated runs) (default: NEW)")
    parser.add_argument("--fail-if", dest="fail_if", action="append", default=[], metavar="EXPR",
                        help="exit 1 when a change trips EXPR (default: no gate): " + SYNTAX.replace("%", "%%"))
    parser.add_argument("--noise-k", dest="noise_k", type=float, default=DEFAULT_NOISE_K, metavar="K",
                        help="with repeated runs, a gate trips only past its threshold by more than K "
                             "standard errors of the difference (default: %(default)s)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", nargs="?", const="-", metavar="FILE",
                     help="JSON (docs/diff-schema.json) on stdout, or into FILE (default: no JSON)")
    out.add_argument("--markdown", nargs="?", const="-", metavar="FILE",
                     help="markdown on stdout, or appended to FILE, e.g. $GITHUB_STEP_SUMMARY (default: no markdown)")
    out.add_argument("--heatmap-diff", dest="heatmap_diff", metavar="FILE.png",
                     help="draw base, new and their difference side by side (default: no image)")
    out.add_argument("--time-rows", dest="time_rows", type=int, default=DEFAULT_TIME_ROWS, metavar="N",
                     help="time rows of --heatmap-diff (default: %(default)s)")
    ana = parser.add_argument_group("analysis")
    ana.add_argument("--hot", type=analysis.parse_rate, default=analysis.parse_rate(analysis.DEFAULT_HOT),
                     metavar="RATE",
                     help="hot: access rate >= RATE, as N%% of 1/sampling interval or NHz "
                          "(default: %(default)s)")
    ana.add_argument("--cold", type=analysis.parse_rate, default=analysis.parse_rate(analysis.DEFAULT_COLD),
                     metavar="RATE", help="cold: access rate <= RATE (default: %(default)s)")
    add_exclude_samples_option(ana, analysis.DEFAULT_EXCLUDE_SAMPLES)
    ana.add_argument("-t", "--acc_thres", type=int, default=1, metavar="N",
                     help="WSS counts regions with nr_accesses >= N (default: %(default)s)")
    ana.add_argument("--sz_thres", type=int, default=1, metavar="BYTES",
                     help="WSS counts regions of at least BYTES (default: %(default)s)")
    ana.add_argument("--bins", type=int, default=analysis.DEFAULT_BINS, metavar="N",
                     help="address bins over all mapped areas (default: %(default)s)")
    ana.add_argument("--top", type=int, default=analysis.DEFAULT_TOP, metavar="N",
                     help="heat change ranges to show (default: %(default)s)")


def expand(path: str) -> list[str]:
    """A record file, or the *.data files of a directory in name order."""
    p = Path(path)
    if p.is_dir():
        files = sorted(str(f) for f in p.glob("*.data") if f.is_file())
        if not files:
            raise DamoError(f"{path}: directory holds no *.data records")
        return files
    return [path]


def sides_from_args(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    if args.base or args.new:
        if args.sides:
            raise DamoError("report diff: give BASE NEW or --base/--new, not both")
        if not (args.base and args.new):
            raise DamoError("report diff: --base and --new go together")
        return [f for p in args.base for f in expand(p)], [f for p in args.new for f in expand(p)]
    if len(args.sides) != 2:
        raise DamoError(f"report diff: expected BASE NEW (or --base FILE... --new FILE...), got "
                        f"{len(args.sides)} paths")
    return expand(args.sides[0]), expand(args.sides[1])


def _write_to(path: str, text: str, append: bool) -> None:
    try:
        with open(path, "a" if append else "w") as f:
            f.write(text)
    except OSError as err:
        raise DamoError(f"{path}: cannot write ({err.strerror})") from None


def run(args: argparse.Namespace) -> int:
    from damo.diff import render
    from damo.formats import read_record

    gates = [parse_gate(text) for text in args.fail_if]       # bad expressions fail before any work
    if args.json == "-" and args.markdown == "-":
        raise DamoError("report diff: --json and --markdown cannot both go to stdout; give one a FILE")
    if args.noise_k < 0 or args.time_rows < 1:
        raise DamoError("report diff: --noise-k must not be negative and --time-rows must be positive")
    base_paths, new_paths = sides_from_args(args)
    options = analysis.Options(exclude_samples=args.exclude_samples, acc_thres=args.acc_thres,
                           sz_thres=args.sz_thres, hot=args.hot, cold=args.cold, bins=args.bins, top=args.top,
                           time_rows=args.time_rows if args.heatmap_diff else None)
    # Loaders, not records: compare() holds one record in memory at a time.
    base = [(p, lambda p=p: read_record(p)) for p in base_paths]
    new = [(p, lambda p=p: read_record(p)) for p in new_paths]
    cmp = analysis.compare(base, new, options)
    results = evaluate_all(gates, cmp.metrics, args.noise_k)

    if args.heatmap_diff:
        try:
            render.plot_heatmap_diff(cmp, args.heatmap_diff)
        except (ValueError, OSError) as err:
            raise DamoError(f"{args.heatmap_diff}: cannot draw the heatmap ({err})") from None
    if args.json not in (None, "-"):
        _write_to(args.json, render.render_json(cmp, results, args.noise_k), append=False)
    if args.markdown not in (None, "-"):
        _write_to(args.markdown, render.render_markdown(cmp, results, args.noise_k), append=True)

    if args.json == "-":
        sys.stdout.write(render.render_json(cmp, results, args.noise_k))
    elif args.markdown == "-":
        sys.stdout.write(render.render_markdown(cmp, results, args.noise_k))
    else:
        from rich.console import Console
        console = Console(no_color=bool(os.environ.get("NO_COLOR")))
        if console.is_terminal and not os.environ.get("NO_COLOR"):
            render.render_rich(cmp, results, args.noise_k, console)
        else:
            sys.stdout.write(render.render_text(cmp, results, args.noise_k))
    sys.stdout.flush()

    tripped = [r for r in results if r.tripped]
    for r in tripped:
        print(r.line(), file=sys.stderr)
    return 1 if tripped else 0
