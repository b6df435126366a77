"""What a record covers: ``damo report record_info`` (damo 3.x).

Per target (largest address space first): its time span, from the oldest access the first snapshot
remembers (its start minus its oldest region's age) to the last snapshot's end, and the contiguous
address areas it monitored.

Example: damo report record_info -i damon.data
"""
from __future__ import annotations

import argparse

import numpy as np

from damo.fmt import ULONG_MAX, format_sz
from damo.heats import guides
from damo.model import Record
from damo.report import add_input_argument


def format_sz_accurate(sz: int, raw: bool) -> str:
    """A size with six decimals (``127.000286 TiB``), as damo prints addresses here."""
    if raw:
        return "%d" % sz
    value = float(sz)
    if value == float(ULONG_MAX):
        return "max"
    for shift, unit in ((60, "EiB"), (50, "PiB"), (40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if value > 1 << shift:
            return "%f %s" % (value / (1 << shift), unit)
    return "%d B" % value


def oldest_monitor_time(rec: Record) -> int:
    """The first snapshot's start minus its oldest region's age (unknown ages count 0)."""
    start = int(rec.start_ns[0])
    if not rec.meta.aggr_us:
        return start
    first = rec.age[int(rec.offsets[0]):int(rec.offsets[1])]
    oldest = int(np.maximum(first, 0).max(initial=0))
    return start - oldest * int(rec.meta.aggr_us) * 1000


def format_record_info(record: Record, raw: bool = False) -> str:
    from damo.access import format_time_ns, kdamond_of

    lines = []
    start_of = {tid: oldest_monitor_time(rec) for tid, rec in record.split_targets() if rec.nr_snapshots}
    for g in guides(record):
        start = start_of[g.target_id]
        where = kdamond_of(record, g.target_id)
        lines += ["kdamond_idx: %d" % where["kdamond_idx"], "context_idx: %d" % where["context_idx"],
                  "target_id: %d" % g.target_id,
                  "time: [%s, %s) (%s)" % (format_time_ns(start, raw), format_time_ns(g.end_time, raw),
                                           format_time_ns(g.end_time - start, raw))]
        for i, (s, e) in enumerate(g.areas):
            lines.append("region\t%2d: [%s, %s) (%s)" % (i, format_sz_accurate(s, raw), format_sz_accurate(e, raw),
                                                        format_sz(e - s, raw)))
    return "\n".join(lines)


DESCRIPTION = """\
What a record covers, per target (largest address space first): the time from the oldest access
its first snapshot remembers to its last snapshot's end, and the contiguous address areas that
were monitored, as damo 3.x prints them."""

EXAMPLES = """\
examples:
  damo report record_info -i damon.data
  damo report record_info --raw_numbers"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_argument(parser)
    parser.add_argument("--raw_numbers", action="store_true", help="plain numbers, no units (default: off)")


def run(args: argparse.Namespace) -> int:
    from damo.formats import read_record

    text = format_record_info(read_record(args.input), args.raw_numbers)
    if text:
        print(text)
    return 0
