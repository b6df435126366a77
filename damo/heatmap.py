"""The access heatmap under damo 3.x's name: ``damo report heatmap``.

Same analysis as ``damo report heats`` (damo 2.x math and text), with the options of damo
2.x's ``report heatmap``: ``--output stdout|raw|FILE`` and a 40x80 default resolution on stdout
(500x500 for raw output and images).
"""
from __future__ import annotations

import argparse

from damo.heats import COLORSETS, add_common_arguments, report


DESCRIPTION = """\
The access heatmap under damo 3.x's name: the same analysis as `damo report heats`, drawn in
the terminal by default as 40 rows (time, earliest first) of 80 columns (addresses) of digits
0-9 (relative heat). --output raw prints every cell as a `time address heat` line, --output
FILE draws an image."""

EXAMPLES = """\
examples:
  damo report heatmap -i stairs.data
  damo report heatmap --all --output heat.png    # every mapped area, gaps collapsed
  damo report heatmap --address_range 0x7f0000000000 0x7f0000100000"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="stdout", metavar="OUTPUT",
                        help="'stdout' (default), 'raw' for the time/address/heat triples, or an image file "
                             "(.png .svg .pdf .jpg)")
    add_common_arguments(parser)
    parser.add_argument("--resol", type=int, nargs=2, metavar=("TIME", "ADDR"),
                        help="rows (time) and columns (address) (default: 40 80 on stdout, else 500 500)")
    parser.add_argument("--stdout_colorset", choices=list(COLORSETS), default="gray", help="stdout colours")
    parser.add_argument("--stdout_skip_colorset_example", action="store_true",
                        help="leave out the colour example line")


def run(args: argparse.Namespace) -> int:
    resolution = args.resol or ([40, 80] if args.output == "stdout" else [500, 500])
    return report(args, output=args.output, resolution=resolution, colorset=args.stdout_colorset,
                  color_example=not args.stdout_skip_colorset_example)
