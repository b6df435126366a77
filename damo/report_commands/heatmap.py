"""``damo report heatmap``: damo 3.x's heatmap (the analysis is damo/heatmap.py)."""
from __future__ import annotations

import argparse

from damo.colors import COLORSETS


DESCRIPTION = """\
When which address ranges were how frequently accessed, as damo 3.4.3's `report heatmap` prints
it. By default: 40 rows (time, earliest first) of 80 columns (addresses) of digits 0-9 (relative
heat; blank where nothing was recorded) over the record's time and its hottest contiguous
address area, with the heat range in Hz (samples where the record has no monitoring intervals).
--output raw prints every cell as a `time address heat` line (NaN where unknown), --output FILE
draws an image. Several -i files are drawn as one timeline. For damo 2.6.4's heatmap text, run
`damo report heats --heatmap stdout --resol 40 80`."""

EXAMPLES = """\
examples:
  damo report heatmap -i stairs.data
  damo report heatmap -i stairs.data --resol 20 60 --draw_range all   # one map per mapped area
  damo report heatmap -i stairs.data --time_range 10s 20s guided      # seconds 10-20 of the record
  damo report heatmap -i a.data b.data --output heat.png
  damo report heatmap -i stairs.data --all --output heat.png          # every mapped area, gaps collapsed"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="stdout", metavar="OUTPUT",
                        help="'stdout' (default), 'raw' for time/address/heat triples, or an image file "
                             "(.png .svg .pdf .jpg); with several ranges the n-th image is FILE.n.EXT")
    parser.add_argument("-i", "--input", nargs="+", default=["damon.data"], metavar="FILE",
                        help="record files, drawn together as one timeline (default: damon.data)")
    for name in ("kdamond_idx", "context_idx", "scheme_idx"):
        parser.add_argument(f"--{name}", type=int, metavar="N",
                            help=f"{name.split('_')[0]} index of the record to draw (default: the guide's first)")
    parser.add_argument("--tid", type=int, metavar="ID", help="target id to draw (default: the guide's first)")
    parser.add_argument("--resol", type=int, nargs=2, metavar=("TIME", "ADDR"),
                        help="rows (time) and columns (address) (default: 40 80 on stdout, else 500 500)")
    parser.add_argument("--time_range", nargs="+", metavar="T",
                        help="START END [BASE]: times in ns or with units (1.5s); BASE is a time, 'guided' "
                             "(the record's start) or 'guided_end' (default: the whole record)")
    parser.add_argument("--draw_range", choices=["hottest", "all"], default="hottest",
                        help="without --address_range: draw the hottest contiguous area (default), or every "
                             "area as its own map")
    parser.add_argument("--address_range", nargs="+", action="append", metavar="A",
                        help="START END [BASE], repeatable, one map each: addresses (0x hex too) or sizes "
                             "(4KiB); BASE is an address or 'guided' (the start of the guided area of the "
                             "same position) (default: per --draw_range)")
    parser.add_argument("--abs_time", action="store_true", help="absolute times in raw output and images (default: from the map's start)")
    parser.add_argument("--abs_addr", action="store_true", help="absolute addresses in raw output and images (default: from the map's start)")
    parser.add_argument("--guide", action="store_true", help="print the time span and areas of each record instead of a map (default: off)")
    parser.add_argument("--guide_human", action="store_true", help="the same in human-friendly units (default: off)")
    parser.add_argument("--stdout_colorset", choices=list(COLORSETS), default="gray",
                        help="colours on stdout (default: gray)")
    parser.add_argument("--stdout_skip_colorset_example", action="store_true",
                        help="leave out the access_frequency line (default: off)")
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="colour codes on stdout: auto (a terminal without NO_COLOR; default), always, never")
    parser.add_argument("--sort_temperature", action="store_true",
                        help="in each snapshot lay the regions out coldest to hottest instead of by address "
                             "(default: off; needs monitoring intervals in the record)")
    parser.add_argument("--temperature_weights", nargs=2, type=float, default=[1.0, 1.0],
                        metavar=("FREQUENCY", "AGE"),
                        help="weights of access rate (%%) and age (us) in the temperature (default: 1 1)")
    parser.add_argument("--df_passed", action="store_true",
                        help="damo 3.x's DAMOS-filter-passed view: refused, records hold no DAMOS data (default: off)")
    parser.add_argument("--interactive_edit", action="store_true",
                        help="damo 3.x's zoom/scroll prompt: refused, rerun with --time_range/--address_range "
                             "(default: off)")
    parser.add_argument("--all", action="store_true",
                        help="our gap-collapsing view (damo 2.x math): every mapped area as a band of one "
                             "map, unmapped gaps left out; --draw_range all instead draws one full map per area (default: off)")
    parser.add_argument("--json", action="store_true", help="print the heat grid (or the guide) as JSON, null where unknown (default: off)")


def run(args: argparse.Namespace) -> int:
    from damo import heatmap

    return heatmap.run(args)
