"""``damo report nr_regions``: regions per snapshot (the analysis is damo/nr_regions.py)."""
from __future__ import annotations

import argparse

from damo.report import add_input_argument


DESCRIPTION = """\
The distribution of the number of monitoring regions per snapshot, as percentiles per target.
The first 20 snapshots of each target are skipped while DAMON adapts its regions, as damo
does."""

EXAMPLES = """\
examples:
  damo report nr_regions -i stairs.data
  damo report nr_regions --sortby time --plot regions.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_argument(parser)
    parser.add_argument("-r", "--range", type=int, nargs=3, metavar=("START", "STOP", "STEP"),
                        help="percentiles to print (default: 0 25 50 75 100)")
    parser.add_argument("-s", "--sortby", choices=["time", "size"],
                        help="order of the counts: by size (default) or in time order")
    parser.add_argument("-p", "--plot", metavar="FILE",
                        help="draw the distribution into an image file (default: print text)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from damo import nr_regions

    return nr_regions.run(args)
