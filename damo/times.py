"""When the record had regions of an access pattern: ``damo report times`` (damo 3.x).

Prints the time ranges (absolute seconds) of the snapshots that still have regions after the
access-pattern filters, consecutive snapshots joined into one range, as damo 3.4.3 does.

Example: damo report times -i damon.data --access_rate 50 100 --sz_region 1M max
"""
from __future__ import annotations

import argparse

import numpy as np

from damo.errors import DamoError
from damo.model import Record
from damo.selection import AccessFilter, add_filter_arguments, apply_access_filter, filter_from_args


def matching_times(record: Record, filt: AccessFilter) -> list[tuple[int, int]]:
    """``(start_ns, end_ns)`` ranges of the snapshots left with regions, targets in record order."""
    filtered = apply_access_filter(record, filt)
    starts, ends = [], []
    for _, rec in filtered.split_targets():
        nonempty = rec.regions_per_snapshot() > 0
        starts.append(rec.start_ns[nonempty])
        ends.append(rec.end_ns[nonempty])
    if not starts:
        return []
    start, end = np.concatenate(starts), np.concatenate(ends)
    if not len(start):
        return []
    opens = np.concatenate([[True], start[1:] != end[:-1]])   # a range goes on while the next starts at its end
    first = np.flatnonzero(opens)
    last = np.concatenate([first[1:] - 1, [len(start) - 1]])
    return list(zip(start[first].tolist(), end[last].tolist()))


def format_times(ranges: list[tuple[int, int]]) -> str:
    return "".join("%f-%f\n# (seconds)\n" % (s / 1000000000, e / 1000000000) for s, e in ranges)


DESCRIPTION = """\
When the record had regions of an access pattern: the time ranges (absolute seconds) of the
snapshots that keep regions after the filter options, consecutive snapshots joined, as damo 3.x
prints them."""

EXAMPLES = """\
examples:
  damo report times -i damon.data --access_rate 50 100
  damo report times --sz_region 1M max --age 5s max"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", metavar="FILE", help="record file (default: damon.data)")
    parser.add_argument("--inputs", nargs=2, metavar=("FILE", "PROFILE"),
                        help="damo 3.x's form: the record file, then a profile file that is not read "
                             "(default: -i's file)")
    add_filter_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from damo.formats import read_record

    path = args.input or (args.inputs[0] if args.inputs else "damon.data")
    if args.input and args.inputs:
        raise DamoError("give the record file with -i or --inputs, not both")
    args.temperature_weights = None         # damo 3.x's times uses the default weights
    ranges = matching_times(read_record(path), filter_from_args(args))
    print(format_times(ranges), end="")
    return 0
