"""``damo report heats``: damo 2.x's heatmap (the analysis is damo/heats.py)."""
from __future__ import annotations

import argparse

from damo.colors import COLORSETS
from damo.options import add_address_range_option, add_target_option, add_time_range_option
from damo.report import add_input_argument


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``heats`` and ``heatmap --all``."""
    add_input_argument(parser)
    add_target_option(parser, "the guide's first")
    add_time_range_option(parser, "the whole record")
    add_address_range_option(parser, "address range (default: the hottest contiguous area)")
    parser.add_argument("--abs_time", action="store_true", help="print absolute times")
    parser.add_argument("--abs_addr", action="store_true", help="print absolute addresses")
    parser.add_argument("--guide", action="store_true", help="print the time span and areas of each target")
    parser.add_argument("--all", action="store_true",
                        help="draw every mapped area as a band (unmapped gaps collapsed), not only the hottest")
    parser.add_argument("--json", action="store_true", help="print the heat grid (or the guide) as JSON")
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="colour the stdout heatmap: auto (terminal without NO_COLOR), always, never")


DESCRIPTION = """\
When which address ranges were how frequently accessed (damo 2.x's `report heats`). The
heatmap is a grid: rows are time, columns are addresses, and a cell's heat is the access
frequency averaged over its area. By default it covers the whole recorded time and the
contiguous address area with the highest heat per byte (--guide lists them); --all shows every
mapped area. Without --heatmap it prints every cell as a `time address heat` line;
--heatmap stdout draws the cells as digits 0-9 (relative heat), --heatmap FILE as an image."""

EXAMPLES = """\
examples:
  damo report heats --heatmap stdout --resol 40 80 -i stairs.data
  damo report heats --guide
  damo report heats --all --heatmap heat.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--resol", type=int, nargs=2, default=[500, 500], metavar=("TIME", "ADDR"),
                        help="rows (time) and columns (address) (default: 500 500)")
    parser.add_argument("--heatmap", metavar="FILE",
                        help="draw the heatmap: 'stdout' for the terminal, or an image (.png .svg .pdf .jpg) "
                             "(default: print the time/address/heat lines)")
    parser.add_argument("--stdout_heatmap_color", choices=list(COLORSETS), help="stdout colours (default: gray)")
    parser.add_argument("--ascii_color", choices=list(COLORSETS), help=argparse.SUPPRESS)
    parser.add_argument("--plot_ascii", action="store_true", help="same as --heatmap stdout")
    parser.add_argument("--stdout_heatmap_skip_color_example", action="store_true",
                        help="leave out the colour example line")


def run(args: argparse.Namespace) -> int:
    from damo import heats

    return heats.run(args)
