"""Check that a record file is plausible DAMON output: ``damo validate [-i FILE]``.

Checks, with damo's defaults, or with limits derived from what the record asked for (see
``limits_for``) where the record says so and the option is not given:

- every snapshot's aggregation interval (end - start) is within ``--aggr MIN MAX`` us;
- every snapshot's number of regions is within ``--nr_regions MIN MAX``;
  these two may be out of range in up to ``--allow_error`` percent of each target's snapshots;
- every region's nr_accesses is within ``--nr_accesses MIN MAX``, and no larger than the number of
  sampling intervals that fit in its snapshot (``ceil(snapshot duration / sampling interval)``,
  which is aggr/sample for an exact aggregation interval);
- regions are non-empty, sorted and non-overlapping within each snapshot;
- each target's snapshots are sorted in time (end times strictly increasing, start <= end);
- with ``--regions_boundary``, every region lies inside one of the given ranges.

Prints each violation (up to ``--max_lines`` per kind unless ``--all``) and exits 1 if there are
any, 0 otherwise; unreadable input exits 2.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

import numpy as np

from damo.errors import DamoError
from damo.model import Record

DEFAULT_AGGR_US = (80000, 120000)
DEFAULT_NR_REGIONS = (3, 1200)
DEFAULT_NR_ACCESSES = (0, 24)
DEFAULT_ALLOW_ERROR_PERCENT = 2.0
DEFAULT_MAX_LINES = 20


@dataclass
class Limits:
    """What ``validate_record`` accepts; ``None`` disables a check."""

    aggr_us: tuple[int, int] | None = DEFAULT_AGGR_US
    nr_regions: tuple[int, int] | None = DEFAULT_NR_REGIONS
    nr_accesses: tuple[int, int] | None = DEFAULT_NR_ACCESSES
    allow_error_percent: float = DEFAULT_ALLOW_ERROR_PERCENT
    regions_boundary: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Violation:
    """One kind of violation: how many snapshots or regions break it, and some of them."""

    kind: str              # empty | aggr | nr_regions | nr_accesses | max_nr_accesses | empty_region
                           # | unsorted_regions | unsorted_snapshots | snapshot_time | boundary
    summary: str           # one line about the whole kind
    count: int
    lines: list[str]       # one line per offending snapshot or region (all of them, rendered lazily)


@dataclass
class ValidationReport:
    nr_snapshots: int
    nr_regions: int
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations


# A kdamond aggregates after aggr/sample sampling intervals, and each interval is a sleep of
# sample_us plus the time the access checks take. So an aggregation can end early only by timer
# jitter (damo's default allows 20%), and it stretches on a slow or emulated machine by the check
# time, which is the machine's, not the record's fault. Measured in a QEMU TCG guest, 100 ms asked:
# 121-171 ms on a quiet host; at host load 4, a median of 157 ms, p95 260 ms and max 357 ms, that
# is p95 1.66x and max 2.28x the record's own median. So the upper limit is 2x the asked interval
# or 2.5x the record's median interval, whichever is larger: a uniformly slow machine passes, and
# an interval far out of line with the rest of its own record is still reported.
AGGR_SLACK = (0.8, 2.0)
MEDIAN_AGGR_SLACK = 2.5
# damo's defaults are 20% above the default max_nr_regions (1000 -> 1200) and nr_accesses
# (aggr/sample = 20 -> 24); the same 20% is kept for other asked values.
COUNT_SLACK = 1.2


def limits_for(meta, aggr_us=None, nr_regions=None, nr_accesses=None, median_aggr_us: float | None = None,
               **rest) -> Limits:
    """Limits for a record: given values win, then what ``meta`` says was asked (and how long the
    record's aggregations took, ``median_aggr_us``), then damo's defaults."""
    if aggr_us is None:
        aggr_us = DEFAULT_AGGR_US
        if meta.aggr_us:
            longest = max(meta.aggr_us * AGGR_SLACK[1], (median_aggr_us or 0) * MEDIAN_AGGR_SLACK)
            aggr_us = (int(meta.aggr_us * AGGR_SLACK[0]), int(longest))
    if nr_regions is None:
        nr_regions = DEFAULT_NR_REGIONS
        if meta.max_nr_regions:
            nr_regions = (min(DEFAULT_NR_REGIONS[0], meta.min_nr_regions or DEFAULT_NR_REGIONS[0]),
                          int(meta.max_nr_regions * COUNT_SLACK))
    if nr_accesses is None:
        nr_accesses = DEFAULT_NR_ACCESSES
        if meta.aggr_us and meta.sample_us:
            nr_accesses = (0, int(math.ceil(meta.aggr_us / meta.sample_us) * COUNT_SLACK))
    return Limits(tuple(aggr_us), tuple(nr_regions), tuple(nr_accesses), **rest)


def _allowed_errors(nr_snapshots: int, percent: float) -> int:
    # damo tolerates an out-of-range snapshot while the errors seen so far are fewer than
    # nr_snapshots * percent / 100, which allows ceil() of that many.
    return math.ceil(nr_snapshots * percent / 100.0)


def _where(record: Record, snap: int) -> str:
    return (f"snapshot {snap} (target {int(record.target_id[snap])}, "
            f"end {int(record.end_ns[snap])} ns)")


class _Lines:
    """Lazily renders example lines so millions of violations cost nothing until printed."""

    def __init__(self, indices: np.ndarray, render):
        self.indices = indices
        self.render = render

    def take(self, n: int | None) -> list[str]:
        idx = self.indices if n is None else self.indices[:n]
        return [self.render(int(i)) for i in idx]


@dataclass
class _Found:
    kind: str
    summary: str
    lines: _Lines

    @property
    def count(self) -> int:
        return len(self.lines.indices)


def _snapshot_checks(record: Record, limits: Limits) -> list[_Found]:
    found: list[_Found] = []
    dur_us = (record.end_ns - record.start_ns) / 1000.0
    nr_regions = record.regions_per_snapshot()
    tids = record.target_id

    def tolerated(bad: np.ndarray) -> np.ndarray:
        """Out-of-range snapshots beyond each target's allowance (whole targets, as damo)."""
        keep = np.zeros(len(bad), dtype=bool)
        for tid in np.unique(tids):
            mine = tids == tid
            allowed = _allowed_errors(int(mine.sum()), limits.allow_error_percent)
            if int(bad[mine].sum()) > allowed:
                keep |= bad & mine
        return keep

    def check_range(kind, label, values, bounds, show, unit=""):
        lo, hi = bounds
        idx = np.flatnonzero(tolerated((values < lo) | (values > hi)))
        if len(idx):
            found.append(_Found(
                kind, f"{label} out of [{lo}, {hi}]{unit} in {len(idx)} of {record.nr_snapshots} "
                f"snapshots (more than {limits.allow_error_percent:g}% of a target's)",
                _Lines(idx, lambda i: f"{_where(record, i)}: {label} {show(values[i])}{unit} out of [{lo}, {hi}]")))

    if limits.aggr_us is not None:
        check_range("aggr", "aggregation interval", dur_us, limits.aggr_us, lambda v: f"{v:g}", " us")
    if limits.nr_regions is not None:
        check_range("nr_regions", "nr_regions", nr_regions, limits.nr_regions, lambda v: str(int(v)))

    idx = np.flatnonzero(record.start_ns > record.end_ns)
    if len(idx):
        found.append(_Found("snapshot_time", f"{len(idx)} snapshots end before they start",
                            _Lines(idx, lambda i: f"{_where(record, i)}: starts at "
                                                  f"{int(record.start_ns[i])} ns, after its end")))

    # Per target, in file order: each snapshot must end after the previous one of its target.
    order = np.argsort(tids, kind="stable")
    same_target = tids[order][1:] == tids[order][:-1]
    not_after = same_target & (record.end_ns[order][1:] <= record.end_ns[order][:-1])
    cur, prv = order[1:][not_after], order[:-1][not_after]
    by_cur = np.argsort(cur)
    idx, prv = cur[by_cur], prv[by_cur]
    if len(idx):
        def unsorted(i: int) -> str:
            p = int(prv[np.searchsorted(idx, i)])
            return f"{_where(record, i)}: does not end after snapshot {p} (end {int(record.end_ns[p])} ns)"
        found.append(_Found("unsorted_snapshots", f"{len(idx)} snapshots are not in time order",
                            _Lines(idx, unsorted)))
    return found


def _region_checks(record: Record, limits: Limits) -> list[_Found]:
    found: list[_Found] = []
    if record.nr_regions_total == 0:
        return found
    snap = record.snapshot_index()
    start, end, nr = record.start, record.end, record.nr_accesses

    def region(i: int) -> str:
        return f"{_where(record, int(snap[i]))}: region [{int(start[i])}, {int(end[i])})"

    idx = np.flatnonzero(start >= end)
    if len(idx):
        found.append(_Found("empty_region", f"{len(idx)} regions are empty or reversed (start >= end)",
                            _Lines(idx, lambda i: f"{region(i)} is empty or reversed")))

    # Regions are sorted and disjoint when each starts at or after the previous one's end.
    same_snap = snap[1:] == snap[:-1]
    idx = np.flatnonzero(same_snap & (start[1:] < end[:-1])) + 1
    if len(idx):
        found.append(_Found("unsorted_regions",
                            f"{len(idx)} regions overlap or precede the region before them",
                            _Lines(idx, lambda i: f"{region(i)} starts before the previous region's end "
                                                  f"{int(end[i - 1])}")))

    if limits.nr_accesses is not None:
        lo, hi = limits.nr_accesses
        idx = np.flatnonzero((nr < lo) | (nr > hi))
        if len(idx):
            found.append(_Found("nr_accesses", f"{len(idx)} regions have nr_accesses out of [{lo}, {hi}]",
                                _Lines(idx, lambda i: f"{region(i)}: nr_accesses {int(nr[i])} "
                                                      f"out of [{lo}, {hi}]")))

    sample_us = record.meta.sample_us
    if sample_us:
        # No more positive samples than sampling intervals fit in the snapshot.
        dur_ns = np.maximum(record.end_ns - record.start_ns, 0)
        max_per_snap = np.ceil(dur_ns / (sample_us * 1000.0)).astype(np.int64)
        limit = max_per_snap[snap]
        idx = np.flatnonzero(nr > limit)
        if len(idx):
            found.append(_Found("max_nr_accesses",
                                f"{len(idx)} regions have more accesses than sampling intervals "
                                f"(aggr/sample, sampling interval {sample_us} us)",
                                _Lines(idx, lambda i: f"{region(i)}: nr_accesses {int(nr[i])} > "
                                                      f"{int(limit[i])} samples in the snapshot")))

    if limits.regions_boundary:
        inside = np.zeros(len(start), dtype=bool)
        for lo, hi in limits.regions_boundary:
            inside |= (start >= np.uint64(lo)) & (end <= np.uint64(hi))
        idx = np.flatnonzero(~inside)
        if len(idx):
            found.append(_Found("boundary", f"{len(idx)} regions are out of the regions boundary",
                                _Lines(idx, lambda i: f"{region(i)} is out of the boundary")))
    return found


def validate_record(record: Record, limits: Limits | None = None,
                    max_lines: int | None = DEFAULT_MAX_LINES) -> ValidationReport:
    """All violations of ``limits`` in ``record``, with up to ``max_lines`` example lines per kind."""
    limits = limits or Limits()
    if record.nr_snapshots == 0:
        return ValidationReport(0, 0, [Violation("empty", "target snapshots is zero", 1,
                                                 ["target snapshots is zero"])])
    found = _snapshot_checks(record, limits) + _region_checks(record, limits)
    violations = [Violation(f.kind, f.summary, f.count, f.lines.take(max_lines)) for f in found]
    return ValidationReport(record.nr_snapshots, record.nr_regions_total, violations)


def render(report: ValidationReport, path: str) -> list[str]:
    """The lines ``damo validate`` prints."""
    if report.ok:
        return [f"{path}: valid ({report.nr_snapshots} snapshots, {report.nr_regions} regions)"]
    out = []
    for v in report.violations:
        if v.kind == "empty":
            out.append("target snapshots is zero")
            continue
        out.extend(f"invalid: {line}" for line in v.lines)
        if v.count > len(v.lines):
            out.append(f"invalid: ... and {v.count - len(v.lines)} more ({v.kind})")
        out.append(f"invalid: {v.summary}")
    total = sum(v.count for v in report.violations)
    out.append(f"{path}: invalid ({total} violations of {len(report.violations)} kinds)")
    return out


def _boundary(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x, 0) for x in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not START-END") from None
    if lo >= hi:
        raise argparse.ArgumentTypeError(f"'{text}' is empty or reversed")
    return lo, hi


DESCRIPTION = """\
Check that a record file is plausible DAMON output. The limits are damo's defaults, or, where the
record says what it asked for, limits derived from that: an aggregation interval from 0.8x the
asked one up to 2x the asked one or 2.5x the record's own median interval, whichever is larger (a
slow or emulated machine stretches every interval by the time its access checks take), and up to
1.2x the asked max_nr_regions and aggr/sample. Options given explicitly win.

- every snapshot's aggregation interval (end - start) is within --aggr MIN MAX microseconds;
- every snapshot's number of regions is within --nr_regions MIN MAX;
  these two may be out of range in up to --allow_error percent of each target's snapshots;
- every region's nr_accesses is within --nr_accesses MIN MAX, and no larger than the number of
  sampling intervals that fit in its snapshot;
- regions are non-empty, sorted and non-overlapping within each snapshot;
- each target's snapshots are in time order;
- with --regions_boundary, every region lies inside one of the given ranges.

Prints each violation (up to --max_lines per kind unless --all) and exits 1 if there are any,
0 otherwise; an unreadable file exits 2."""

EXAMPLES = """\
examples:
  damo validate -i new/run1.data
  damo validate --aggr 90000 110000 --allow_error 5 --regions_boundary 0x1000-0x200000"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from damo.report import add_input_argument

    add_input_argument(parser)
    parser.add_argument("--aggr", type=int, nargs=2, metavar=("MIN", "MAX"),
                        help="valid aggregation intervals in us (default: 0.8x the interval the record asked "
                             "for to 2x that or 2.5x the record's median interval, "
                             f"else {DEFAULT_AGGR_US[0]} {DEFAULT_AGGR_US[1]})")
    parser.add_argument("--nr_regions", type=int, nargs=2, metavar=("MIN", "MAX"),
                        help="valid numbers of regions (default: up to 1.2x the record's max_nr_regions, "
                             f"else {DEFAULT_NR_REGIONS[0]} {DEFAULT_NR_REGIONS[1]})")
    parser.add_argument("--nr_accesses", type=int, nargs=2, metavar=("MIN", "MAX"),
                        help="valid nr_accesses per region (default: up to 1.2x the record's aggr/sample, "
                             f"else {DEFAULT_NR_ACCESSES[0]} {DEFAULT_NR_ACCESSES[1]})")
    parser.add_argument("--allow_error", type=float, default=DEFAULT_ALLOW_ERROR_PERCENT, metavar="PERCENT",
                        help="percent of a target's snapshots that may break --aggr or --nr_regions "
                             "(default: %(default)s)")
    parser.add_argument("--regions_boundary", type=_boundary, nargs="+", default=[], metavar="START-END",
                        help="ranges every region must lie in (default: anywhere)")
    parser.add_argument("--max_lines", type=int, default=DEFAULT_MAX_LINES, metavar="N",
                        help="print at most N lines per kind of violation (default: %(default)s)")
    parser.add_argument("--all", action="store_true", help="print every violation")


def run(args: argparse.Namespace) -> int:
    from damo.report import load_record

    for name in ("aggr", "nr_regions", "nr_accesses"):
        lo, hi = getattr(args, name) or (0, 0)
        if lo > hi:
            raise DamoError(f"validate: --{name} MIN {lo} is larger than MAX {hi}")
    if not 0 <= args.allow_error <= 100:       # also refuses nan
        raise DamoError("validate: --allow_error must be a percentage from 0 to 100")
    if args.max_lines < 0:
        raise DamoError("validate: --max_lines must not be negative")
    record = load_record(args.input)
    median_aggr_us = float(np.median(record.end_ns - record.start_ns)) / 1000 if record.nr_snapshots else None
    limits = limits_for(record.meta, args.aggr, args.nr_regions, args.nr_accesses, median_aggr_us=median_aggr_us,
                        allow_error_percent=args.allow_error, regions_boundary=list(args.regions_boundary))
    report = validate_record(record, limits, None if args.all else args.max_lines)
    for line in render(report, args.input):
        print(line)
    return 0 if report.ok else 1
