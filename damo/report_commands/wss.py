"""``damo report wss``: the working set size distribution (the analysis is damo/wss.py)."""
from __future__ import annotations

import argparse

from damo.options import add_address_range_option, add_exclude_samples_option
from damo.report import add_input_argument


DESCRIPTION = """\
The distribution of the working set size: per snapshot, the total size of the regions accessed
at least --acc_thres times, printed as percentiles with a bar each, as damo 2.x does. The first
--exclude_samples snapshots of each target are skipped while DAMON adapts its regions, and the
targets are summed unless --per_target."""

EXAMPLES = """\
examples:
  damo report wss -i stairs.data
  damo report wss --raw_number -r 1 101 1        # every percentile, in bytes
  damo report wss --address_range 0x7f0000000000 0x7f0010000000
  damo report wss --plot wss.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_argument(parser)
    parser.add_argument("-r", "--range", type=int, nargs=3, default=[0, 101, 25],
                        metavar=("START", "STOP", "STEP"), help="percentiles to print (default: 0 101 25)")
    add_exclude_samples_option(parser, 20)
    add_address_range_option(parser, "count only the addresses in [START, END), e.g. one mapping of the "
                                     "process (default: all; not in damo)")
    parser.add_argument("-t", "--acc_thres", type=int, default=1, metavar="NR",
                        help="minimum nr_accesses of a region in the working set (default: 1)")
    parser.add_argument("--sz_thres", type=int, default=1, metavar="BYTES",
                        help="minimum size of a region in the working set (default: 1)")
    parser.add_argument("--work_time", type=int, default=1, metavar="US",
                        help="re-aggregate snapshots into ones at least this long (microseconds)")
    parser.add_argument("-s", "--sortby", choices=["time", "size"],
                        help="order of the sizes: by size (default) or in time order")
    parser.add_argument("-p", "--plot", metavar="FILE",
                        help="draw the distribution into an image file (default: print text)")
    parser.add_argument("--nr_cols_bar", type=int, default=59, metavar="NR",
                        help="width of the star bars (default: 59; 0 hides them)")
    parser.add_argument("--raw_number", action="store_true", help="print sizes as plain byte counts")
    parser.add_argument("--all_wss", action="store_true", help="print every size, not percentiles")
    parser.add_argument("--per_target", action="store_false", dest="collapse_targets",
                        help="report each monitoring target separately")
    parser.add_argument("--collapse_targets", action="store_true", dest="collapse_targets",
                        help="sum the targets into one (the default)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(collapse_targets=True)


def run(args: argparse.Namespace) -> int:
    from damo import wss

    return wss.run(args)
