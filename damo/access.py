"""Show the access pattern of each snapshot: ``damo report access`` (damo 3.x).

The text is damo 3.4.3's for every ``--style``: a per-snapshot heatmap line, the snapshot's
intervals, one line per region, the memory bandwidth estimate and total size, or histograms and
percentiles of temperature and idle time. ``--format set|append PART TEMPLATE`` rewrites any of
the five parts (record_head, snapshot_head, region, snapshot_tail, record_tail) with
``<keyword>`` templates (listed at the end of ``--help``). The access-pattern
filters (``--sz_region``, ``--access_rate``, ``--age``, ``--address``, ``--temperature`` ...)
choose the regions and snapshots shown.

Example: damo report access -i damon.data --style temperature-percentiles --access_rate 1 max
"""
from __future__ import annotations

import argparse
import bisect
import math
import sys
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from damo import fmt as dfmt
from damo.errors import DamoError
from damo.heats import COLORSETS, color_code, use_color
from damo.model import Record
from damo.report import add_input_argument
from damo.selection import (DEFAULT_TEMPERATURE_WEIGHTS, access_percent, add_filter_arguments, age_us, snapshot_aggr_us,
                            apply_access_filter, filter_from_args, temperatures)

STYLES = ("detailed", "simple-boxes", "temperature-sz-hist", "recency-sz-hist", "cold-memory-tail",
          "recency-percentiles", "idle-time-percentiles", "temperature-percentiles", "cold", "hot")
PARTS = ("record_head", "snapshot_head", "region", "snapshot_tail", "record_tail")
SORT_KEYS = ("address", "access_rate", "age", "size", "temperature")
MAX_COLOR_LEVEL = 9
DEFAULT_MIN_CHARS = (("<index>", 3), ("<start address>", 12), ("<end address>", 11), ("<size>", 11),
                     ("<access rate>", 5), ("<access hz>", 6), ("<age>", 13), ("<filters passed type>", 10))

RECORD_KEYWORDS = ("<kdamond index>", "<context index>", "<scheme index>", "<target id>",
                   "<abs start time>", "<duration>", "<intervals>", "<intervals goal>", "<data source>",
                   "<format strings>")
SNAPSHOT_KEYWORDS = ("<total bytes>", "<duration>", "<start time>", "<end time>", "<abs start time>",
                     "<abs end time>", "<number of regions>", "<region box colors>",
                     "<region box description>", "<temperature-sz histogram>",
                     "<temperature-df-passed-sz histogram>", "<recency-sz histogram>",
                     "<recency-df-passed-sz histogram>", "<recency percentiles>",
                     "<df-passed recency percentiles>", "<temperature percentiles>",
                     "<df-passed temperature percentiles>", "<heatmap>", "<filters passed heatmap>",
                     "<filters passed type>", "<filters passed bytes>", "<positive access samples ratio>",
                     "<estimated memory bandwidth>", "<filters passed estimated memory bandwidth>",
                     "<intervals tuning status>", "<damos stats>", "<snapshot intervals>")
REGION_KEYWORDS = ("<index>", "<start address>", "<end address>", "<size>", "<access rate>", "<access hz>",
                   "<age>", "<temperature>", "<probe hits>", "<filters passed bytes>", "<box>")
KEYWORDS_OF_PART = {"record_head": RECORD_KEYWORDS, "record_tail": RECORD_KEYWORDS,
                    "snapshot_head": SNAPSHOT_KEYWORDS, "snapshot_tail": SNAPSHOT_KEYWORDS,
                    "region": REGION_KEYWORDS}


@dataclass
class AccessFormat:
    """Every knob of the text; defaults are damo 3.4.3's."""

    record_head: str | None = None
    snapshot_head: str | None = None
    region: str | None = None
    snapshot_tail: str | None = None
    record_tail: str | None = None
    sort_regions_by: list[str] = field(default_factory=lambda: ["address"])
    sort_regions_dsc: list[str] | None = None
    temperature_weights: tuple[int, int, int] = DEFAULT_TEMPERATURE_WEIGHTS
    hist_logscale: bool = False
    hist_cumulate: bool = False
    hist_ranges: list[str] | None = None
    percentiles_range: list[int] | None = None
    heatmap_width: int = 80
    heatmap_colorset: str = "gray"
    heatmap_static: bool = False
    box_values: tuple[str | None, str | None, str | None] = ("age", "access_rate", "size")
    box_min_max_length: tuple[int, int] = (1, 30)
    box_min_max_height: tuple[int, int] = (1, 5)
    box_colorset: str = "gray"
    box_scales: tuple[str, str, str] = ("log", "linear", "log")
    box_align: str = "left"
    min_chars: tuple = DEFAULT_MIN_CHARS
    raw_number: bool = False
    color: bool = False
    total_sz_only: bool = False

    def min_chars_of(self, keyword: str) -> int | None:
        for name, nr in self.min_chars:
            if name == keyword:
                return int(nr)
        return None


# --- one target's record, with the derived columns --------------------------------------------

class TargetRecord:
    """One target's snapshots (damo 3.x's 'record') and its per-region quantities."""

    def __init__(self, target_id: int, record: Record, fmt: AccessFormat, need_intervals: bool = True,
                 first_start_ns: int | None = None, columns: bool = True):
        meta = record.meta
        if need_intervals and (not meta.sample_us or not meta.aggr_us):
            raise DamoError("the record lacks the monitoring intervals (sampling and aggregation), "
                            "so access rates and ages cannot be computed")
        self.target_id = target_id
        self.record = record
        self.fmt = fmt
        self.sample_us, self.aggr_us = int(meta.sample_us or 1), int(meta.aggr_us or 1)
        self.goal = meta.intervals_goal
        self.snapshot_aggr_us = snapshot_aggr_us(record, self.sample_us, self.aggr_us) if self.goal else None
        if first_start_ns is None:
            first_start_ns = int(record.start_ns[0]) if record.nr_snapshots else 0
        self.first_start_ns = first_start_ns
        self.heatmaps: list[str] | None = None       # filled on first use of <heatmap>
        if columns:
            self.size = (record.end - record.start).astype(np.int64)
            self.samples = record.nr_accesses
            self.percent = access_percent(record.nr_accesses, self.sample_us, self.aggr_us)
            self.age_us = age_us(record.age, self.aggr_us)
            self.temperature = temperatures(self.size, self.percent, self.age_us, fmt.temperature_weights)

    def snapshot_sums(self) -> tuple[list[int], list[int]] | None:
        """Per snapshot, its total bytes and its accessed bytes (size times samples), summed for all
        snapshots at once; None where int64 sums could overflow (then each is summed alone)."""
        if getattr(self, "_sums", None) is None:
            r = self.record
            counts = np.diff(r.offsets)
            bound = (int(self.size.max(initial=0)) * max(int(self.samples.max(initial=0)), 1)
                     * int(counts.max(initial=0)))
            self._sums = False
            if len(self.size) and bound < 2**62 and int(self.size.min()) >= 0 and int(self.samples.min()) >= 0:
                sums = []
                for values in (self.size, self.size * self.samples):
                    total = np.add.reduceat(np.append(values, 0), r.offsets[:-1])
                    total[counts == 0] = 0
                    sums.append(total.tolist())
                self._sums = tuple(sums)
        return self._sums or None

    def aggr_us_of(self, i: int) -> float:
        """Snapshot ``i``'s aggregation interval: its own when intervals were tuned (damo 3.4.3's
        snapshot_monitoring_intervals), else the record's."""
        return self.aggr_us if self.snapshot_aggr_us is None else self.snapshot_aggr_us[i]

    def region_aggr_us(self) -> np.ndarray:
        """Every region's snapshot aggregation interval (tuned records)."""
        return np.repeat(np.asarray(self.snapshot_aggr_us, dtype=float), self.record.regions_per_snapshot())

    def span(self, i: int) -> slice:
        return slice(int(self.record.offsets[i]), int(self.record.offsets[i + 1]))

    def chunks(self, max_regions: int = 1 << 16):
        """``(first snapshot index, TargetRecord of consecutive snapshots)`` of about ``max_regions``
        regions each (views, no copies), so the text of a big record is built a part at a time."""
        r = self.record
        a = 0
        while a < r.nr_snapshots:
            b = int(np.searchsorted(r.offsets, r.offsets[a] + max_regions, side="right")) - 1
            b = min(max(b, a + 1), r.nr_snapshots)
            lo, hi = int(r.offsets[a]), int(r.offsets[b])
            part = Record(r.meta, r.target_id[a:b], r.start_ns[a:b], r.end_ns[a:b], r.offsets[a:b + 1] - lo,
                          r.start[lo:hi], r.end[lo:hi], r.nr_accesses[lo:hi], r.age[lo:hi],
                          None if r.snapshot_sample_us is None else r.snapshot_sample_us[a:b])
            yield a, TargetRecord(self.target_id, part, self.fmt, first_start_ns=self.first_start_ns)
            a = b


# --- helpers: rescaling, colours, histograms ------------------------------------------------


def colored(text: str, colorset: str, level: int, color: bool) -> str:
    if not color:
        return text
    return color_code(colorset, level) + text + "\x1b[0m"


def color_samples(colorset: str, color: bool) -> str:
    if not color:
        return "".join(str(level) for level in range(MAX_COLOR_LEVEL + 1))
    return "".join(color_code(colorset, level) + str(level) for level in range(MAX_COLOR_LEVEL + 1)) + "\x1b[0m"


def rescale(val, old_min_max, new_min_max, logscale: bool) -> float:
    """damo's rescale: linear or log2 mapping of ``val`` from one range to another."""
    if logscale:
        val = math.log(val, 2) if val > 0 else 0
        old_min_max = [math.log(v, 2) if v > 0 else 0 for v in old_min_max]
    old_len = old_min_max[1] - old_min_max[0]
    new_len = new_min_max[1] - new_min_max[0]
    ratio = new_len / old_len if old_len > 0 else 1
    return (val - old_min_max[0]) * ratio + new_min_max[0]


def format_hz(hz: float, raw: bool, no_suffix: bool = False) -> str:
    if raw:
        return "%f" % hz
    suffix = "" if no_suffix else " hz"
    if hz < 10 and hz != 0:
        return "%.3f%s" % (hz, suffix)
    return dfmt.format_nr(hz) + suffix


def format_time_ns(time_ns, raw: bool) -> str:
    if raw:
        return "%d" % time_ns
    if time_ns < 0:
        return "-" + dfmt.format_time_ns(-time_ns)
    return dfmt.format_time_ns(time_ns)


def format_time_us(time_us, raw: bool) -> str:
    return "%d" % time_us if raw else format_time_ns(time_us * 1000, False)


def _cached(fn):
    """A formatter over a column: each distinct value formatted once."""
    def many(values: np.ndarray, *args) -> list[str]:
        values = np.asarray(values)
        if values.dtype == object or len(values) < 64:
            return [fn(v, *args) for v in values.tolist()]
        uniq, inverse = np.unique(values, return_inverse=True)
        texts = np.array([fn(v, *args) for v in uniq.tolist()], dtype=object)
        return texts[inverse.ravel()].tolist()
    return many


format_nr_many = _cached(dfmt.format_nr)


# --- the per-snapshot heatmap line ------------------------------------------------------------

def _pixel_runs(starts: np.ndarray, ends: np.ndarray, unit: float):
    """damo's walk over a snapshot in steps of ``unit`` bytes, jumping over unmonitored gaps.

    Returns pixel starts and ends (floats, in damo's float arithmetic), whether each is void,
    and for the non-void ones the first and one-past-last intersecting region.

    A plain loop with bisect: a snapshot has about ``heatmap_width`` pixels plus one per gap, and
    per-pixel bisects cost less than numpy's per-call overhead on runs that short (a filtered
    record has a gap every few regions). The region bounds are compared as float64, and pixel
    bounds are added one ``unit`` at a time, as damo does.
    """
    fstarts, fends = starts.astype(np.float64).tolist(), ends.astype(np.float64).tolist()
    nr_regions, last_end = len(fstarts), int(ends[-1])
    p_start, p_end, p_void, p_lo, p_hi = [], [], [], [], []
    pos = float(int(starts[0]))
    while pos < last_end:
        bound = pos
        while bound < last_end:
            nxt_bound = bound + unit
            if nxt_bound == bound:
                # unit is below float64's step at these addresses (a few small regions high in a
                # 64-bit space): damo's walk would never end; ours ends the line here.
                return _as_arrays(p_start, p_end, p_void, p_lo, p_hi)
            lo = bisect.bisect_right(fends, bound)
            hi = bisect.bisect_left(fstarts, nxt_bound)
            if hi <= lo:
                break                         # a void pixel: no region intersects it
            p_start.append(bound)
            p_end.append(nxt_bound)
            p_void.append(False)
            p_lo.append(lo)
            p_hi.append(hi)
            bound = nxt_bound
        else:
            break                             # walked past the last region
        p_start.append(bound)
        p_void.append(True)
        nxt = bisect.bisect_right(fstarts, nxt_bound)
        if nxt == nr_regions:
            p_end.append(nxt_bound)
            break
        pos = int(starts[nxt]) // unit * unit  # the walk jumps to the next region's pixel
        if pos <= bound:
            # float rounding high in a 64-bit space sent the jump back: damo would walk the
            # same void pixel for ever; ours ends the line here.
            p_end.append(nxt_bound)
            break
        p_end.append(pos)
    return _as_arrays(p_start, p_end, p_void, p_lo, p_hi)


def _as_arrays(p_start, p_end, p_void, p_lo, p_hi):
    return (np.array(p_start, dtype=np.float64), np.array(p_end, dtype=np.float64),
            np.array(p_void, dtype=bool), np.array(p_lo, dtype=np.int64), np.array(p_hi, dtype=np.int64))


def _pixel_temperatures(starts, ends, percent, age, weights, ps, pe, lo, hi):
    """Size-weighted temperature of each (non-void) pixel, summed in damo's order and number types.

    Regions ``lo[k]:hi[k]`` intersect pixel ``k``; pixels of many snapshots go in one call.
    """
    fstarts, fends = starts.astype(np.float64), ends.astype(np.float64)
    counts = hi - lo
    pix = np.repeat(np.arange(len(ps)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(len(pix)) - first
    reg = lo[pix] + rank
    s, e = ps[pix], pe[pix]
    whole = (s <= fstarts[reg]) & (fends[reg] <= e)
    # partial fragments: floats, as damo's clipped region copies
    fsize = np.minimum(fends[reg], e) - np.maximum(fstarts[reg], s)
    ftemp = temperatures(fsize, percent[reg], age[reg], weights)
    fheat = ftemp * fsize
    # whole regions: exact integers, as Python ints in damo
    isize = (ends[reg] - starts[reg]).astype(np.int64)
    itemp = temperatures(isize, percent[reg], age[reg], weights)
    bound = int(np.max(np.abs(itemp), initial=0)) * int(np.max(isize, initial=0)) if len(itemp) else 0
    iheat = itemp * isize if itemp.dtype != object and bound < 2**62 else itemp.astype(object) * isize.astype(object)
    last = rank == counts[pix] - 1
    first_partial = np.zeros(len(ps), dtype=bool)
    first_partial[pix[(rank == 0) & ~whole]] = True
    total = np.zeros(len(ps), dtype=np.float64)
    # pixels opening with a whole region: exact integer sum, then one float addition for a partial tail
    int_part = whole & ~first_partial[pix]
    if int_part.any():
        if iheat.dtype == object:
            sums = np.zeros(len(ps), dtype=object)
            np.add.at(sums, pix[int_part], iheat[int_part])
            total = np.array([float(v) for v in sums], dtype=np.float64)
        else:
            sums = np.zeros(len(ps), dtype=np.int64)
            np.add.at(sums, pix[int_part], iheat[int_part])
            total = sums.astype(np.float64)
    tail = ~whole & last & ~first_partial[pix] & (rank > 0)
    total[pix[tail]] += fheat[tail]
    # pixels opening with a partial region: sequential float sum, one round per rank
    seq = first_partial[pix]
    if seq.any():
        contrib = np.where(whole, np.asarray([float(v) for v in iheat] if iheat.dtype == object else iheat,
                                             dtype=np.float64), fheat)
        # a pixels x ranks matrix, zero-padded (x + 0.0 == x), summed left to right by cumsum
        sel = np.flatnonzero(seq)
        rows, row_of = np.unique(pix[sel], return_inverse=True)
        matrix = np.zeros((len(rows), int(rank[sel].max()) + 1))
        matrix[row_of, rank[sel]] = contrib[sel]
        total[rows] = np.cumsum(matrix, axis=1)[:, -1]
    return total / (pe - ps)


def heatmap_texts(rec: "TargetRecord", fmt: AccessFormat) -> list[str]:
    """damo 3.4.3's one-line heatmap and '# min/max temperatures' comment of every snapshot.

    The walk is per snapshot; the pixel temperatures of all snapshots are one vectorised pass.
    """
    r = rec.record
    walks, all_ps, all_pe, all_lo, all_hi = [], [], [], [], []
    for i in range(r.nr_snapshots):
        lo_off, hi_off = int(r.offsets[i]), int(r.offsets[i + 1])
        if lo_off == hi_off:
            walks.append(None)
            continue
        starts, ends = r.start[lo_off:hi_off], r.end[lo_off:hi_off]
        total = int(ends[-1]) - int(starts[0]) if fmt.heatmap_static else int(rec.size[lo_off:hi_off].sum())
        unit = total / fmt.heatmap_width
        if unit <= 0:                 # only empty regions: nothing to draw (damo divides by zero)
            walks.append("empty")
            continue
        ps, pe, void, lo, hi = _pixel_runs(starts, ends, unit)
        if void.all():               # no pixel drawn: see _pixel_runs on float steps
            walks.append("unresolvable")
            continue
        walks.append((unit, ps, pe, void))
        real = ~void
        all_ps.append(ps[real])
        all_pe.append(pe[real])
        all_lo.append(lo + lo_off)
        all_hi.append(hi + lo_off)
    temps_all = _pixel_temperatures(r.start, r.end, rec.percent, rec.age_us, fmt.temperature_weights,
                                    *(np.concatenate(a) for a in (all_ps, all_pe, all_lo, all_hi))) \
        if all_ps else np.zeros(0)
    digits = [colored("%d" % level, fmt.heatmap_colorset, level, fmt.color) for level in range(MAX_COLOR_LEVEL + 1)]
    raw = fmt.raw_number
    out, pos = [], 0
    for walk in walks:
        if walk is None or isinstance(walk, str):
            out.append({None: "n/a (no region)", "empty": "n/a (no region has a size)",
                        "unresolvable": "n/a (a pixel is below float64's step at these addresses)"}[walk])
            continue
        unit, ps, pe, void = walk
        nreal = int((~void).sum())
        temps = temps_all[pos:pos + nreal]
        pos += nreal
        tmin, tmax = float(temps.min()), float(temps.max())
        tunit = (tmax - tmin) / MAX_COLOR_LEVEL
        if tunit == 0:
            tunit = tmax / MAX_COLOR_LEVEL
        if tunit == 0:
            tunit = 1
        levels = ((temps - tmin) / tunit).astype(np.int64).tolist()
        if not void.any():
            dots = [digits[level] for level in levels]
        else:
            dots, k = [], 0
            for is_void, s, e in zip(void.tolist(), ps.tolist(), pe.tolist()):
                if is_void:
                    nr_dots = (e - s) / unit
                    dots.append("[...]" if not fmt.heatmap_static and nr_dots > 4 else "." * int(nr_dots))
                else:
                    dots.append(digits[levels[k]])
                    k += 1
        out.append("%s\n# min/max temperatures: %s, %s, column size: %s" % (
            "".join(dots), dfmt.format_nr(tmin, raw), dfmt.format_nr(tmax, raw), dfmt.format_sz(unit, raw)))
    return out


# --- histograms and percentiles ---------------------------------------------------------------

def hist_ranges(minv, maxv, nr_ranges: int, logscale: bool, cumulate: bool) -> list[list]:
    if logscale:
        ranges = [[minv, minv + max(int((maxv - minv) / 2**nr_ranges), 1)]]
        while ranges[-1][-1] < maxv:
            width = ranges[-1][1] - ranges[-1][0]
            ranges.append([minv if cumulate else ranges[-1][-1], ranges[-1][-1] + width * 2])
        return ranges
    interval = max(math.ceil((maxv + 1 - minv) / nr_ranges), 1)
    return [[minv if cumulate else minv + interval * i, minv + interval * (i + 1)] for i in range(nr_ranges)]


def histogram_text(rows: list[tuple[str, str, int]]) -> str:
    yvals = [r[2] for r in rows]
    ymin, ymax = min(yvals), max(yvals)
    xwidth = max(len(r[0]) for r in rows)
    ywidth = max(len(r[1]) for r in rows)
    per_dot = max(int((ymax - ymin) / 20), 1)
    lines = []
    for xtext, ytext, y in rows:
        dots = min(math.ceil((y - ymin) / per_dot), 20)
        lines.append("%s %s |%s%s|" % (xtext.ljust(xwidth), ytext.ljust(ywidth), "*" * dots, " " * (20 - dots)))
    return "\n".join(lines)


def size_histogram(metric: np.ndarray, size: np.ndarray, fmt: AccessFormat, format_x, parse_x) -> str:
    if len(metric) == 0:
        return "no region in snapshot"
    uniq, inverse = np.unique(metric, return_inverse=True)
    sums = np.zeros(len(uniq), dtype=np.int64)
    np.add.at(sums, inverse.ravel(), size)
    if fmt.hist_ranges is not None:
        ranges = [[parse_x(fmt.hist_ranges[i]), parse_x(fmt.hist_ranges[i + 1])]
                  for i in range(0, len(fmt.hist_ranges) - 1, 2)]
    else:
        ranges = hist_ranges(int(uniq[0]), int(uniq[-1]), 10, fmt.hist_logscale, fmt.hist_cumulate)
    csum = np.concatenate([[0], np.cumsum(sums)])
    raw = fmt.raw_number
    rows = []
    for low, high in ranges:
        a, b = np.searchsorted(uniq, low, "left"), np.searchsorted(uniq, high, "left")
        y = int(csum[max(b, a)] - csum[a])
        rows.append(("[%s, %s)" % (format_x(low, raw), format_x(high, raw)), dfmt.format_sz(y, raw), y))
    return histogram_text(rows)


def percentiles_to_show(fmt: AccessFormat) -> list[int]:
    pr = fmt.percentiles_range
    if pr is None:
        return [0, 1, 25, 50, 75, 99, 100]
    return list(range(*pr)) if len(pr) <= 3 else sorted(pr)


def percentile_values(metric: np.ndarray, size: np.ndarray, wanted: list[int]) -> list[tuple[int, object]]:
    """damo's size-weighted percentiles: the metric of the region where the cumulative percent reaches p."""
    order = np.argsort(metric, kind="stable")
    metric, size = metric[order], size[order]
    total = int(size.sum())
    cum = np.cumsum(size * 100 / total)
    stop = int(np.searchsorted(cum, 100.0, side="left"))
    stop = min(stop, len(cum) - 1)
    out, pos = [], 0
    remaining = list(wanted)
    while remaining:
        idx = max(pos, int(np.searchsorted(cum, remaining[0], side="left")))
        if idx > stop:
            break
        out.append((remaining.pop(0), metric[idx].item()))
        pos = idx
    if 100 in remaining:
        out.append((100, metric[stop].item()))
    return out


def percentiles_text(values, fmt: AccessFormat, kind: str) -> str:
    if kind == "recency":
        head = "<percentile> <idle time (us)>" if fmt.raw_number else "<percentile> <idle time>"
        fmt_value = format_time_us
    else:
        head = "<percentile> <temperature (weights: %s)>" % list(fmt.temperature_weights)
        fmt_value = dfmt.format_nr
    ptexts = ["%d" % p for p, _ in values]
    vtexts = [fmt_value(v, fmt.raw_number) for _, v in values]
    pw, vw = max(len(t) for t in ptexts), max(len(t) for t in vtexts)
    vmin, vmax = values[0][1], values[-1][1]
    per_dot = (vmax - vmin) / 20 if vmax != vmin else 1
    lines = [head]
    for (p, v), pt, vt in zip(values, ptexts, vtexts):
        bar = int((v - vmin) / per_dot)
        lines.append("%s  %s  |%s%s|" % (pt.rjust(pw), vt.rjust(vw), "*" * bar, " " * (20 - bar)))
    return "\n".join(lines)


def idle_times(rec: TargetRecord, sl: slice, aggr_us: float | None = None) -> np.ndarray:
    """Idle time (us): 0 for an accessed region, else its age plus one (the snapshot's) aggregation interval."""
    return np.where(rec.percent[sl] > 0, 0, rec.age_us[sl] + (rec.aggr_us if aggr_us is None else aggr_us))


def sizeless_temperatures(rec: TargetRecord, sl: slice, fmt: AccessFormat) -> np.ndarray:
    w = fmt.temperature_weights
    return temperatures(rec.size[sl], rec.percent[sl], rec.age_us[sl], (0, w[1], w[2]))


# --- region boxes -----------------------------------------------------------------------------

class RegionBox:
    """The ``<box>`` of a region: length, colour and height from age, access rate and size."""

    def __init__(self, recs: list[TargetRecord], fmt: AccessFormat):
        self.fmt = fmt
        # the value ranges over every region of every target (rate and age grow with their columns)
        sizes, samples, ages = [], [], []
        for rec in recs:
            r = rec.record
            if r.nr_regions_total:
                size = (r.end - r.start).astype(np.int64)
                sizes += [int(size.min()), int(size.max())]
                samples += [access_percent(np.array([r.nr_accesses.min(), r.nr_accesses.max()]),
                                           rec.sample_us, rec.aggr_us).tolist()]
                ages += [age_us(np.array([r.age.min(), r.age.max()]), rec.aggr_us).tolist()]
        flat_rates = [v for pair in samples for v in pair]
        flat_ages = [v for pair in ages for v in pair]
        self.bounds = {"size": [min(sizes), max(sizes)] if sizes else [0, 0],
                       "access_rate": [min(flat_rates), max(flat_rates)] if flat_rates else [0, 0],
                       "age": [min(flat_ages), max(flat_ages)] if flat_ages else [0, 0]}

    def value(self, rec: TargetRecord, sl: slice, name: str | None):
        if name == "size":
            return rec.size[sl]
        if name == "access_rate":
            return rec.percent[sl]
        if name == "age":
            return rec.age_us[sl]
        return None

    def texts(self, rec: TargetRecord, sl: slice) -> list[str]:
        fmt = self.fmt
        lname, cname, hname = fmt.box_values
        llog, clog, hlog = (s == "log" for s in fmt.box_scales)
        lvals = self.value(rec, sl, lname)
        cvals = self.value(rec, sl, cname)
        hvals = self.value(rec, sl, hname)
        n = sl.stop - sl.start
        cache: dict = {}

        def scaled(v, name, display, log):
            key = (v, name, tuple(display), log)
            if key not in cache:
                cache[key] = int(rescale(v, self.bounds[name], display, log))
            return cache[key]

        out = []
        max_len = fmt.box_min_max_length[1]
        for i in range(n):
            length = scaled(lvals[i].item(), lname, fmt.box_min_max_length, llog)
            height = scaled(hvals[i].item(), hname, fmt.box_min_max_height, hlog) if hvals is not None else 1
            if cvals is None:
                row = "-" * length
            else:
                level = scaled(cvals[i].item(), cname, (0, 9), clog)
                row = colored(("%d" % level) * length, fmt.box_colorset, level, fmt.color)
            row = "|%s|" % row
            if fmt.box_align == "right":
                row = " " * (max_len - length) + row
            box = "\n".join([row] * height)
            if fmt.box_min_max_height[1] > 1:
                box += "\n"
            out.append(box)
        return out


# --- templates ----------------------------------------------------------------------------------

def pad(fmt: AccessFormat, keyword: str, text: str) -> str:
    width = fmt.min_chars_of(keyword)
    return text if width is None or len(text) >= width else text + " " * (width - len(text))


def fill(template: str | None, keywords, value_of, fmt: AccessFormat) -> str | None:
    """damo's format_output: each keyword present is replaced, in the keyword list's order."""
    if not template:
        return None
    for keyword in keywords:
        if keyword in template:
            template = template.replace(keyword, pad(fmt, keyword, value_of(keyword)))
    return template.replace("\\n", "\n")


def kdamond_of(record: Record, target_id: int) -> dict[str, int]:
    """A target's kdamond and context index: 0 and 0 unless the record had several kdamonds."""
    task = record.meta.targets_info().get(target_id, {})
    return {key: task[key] if isinstance(task.get(key), int) else 0 for key in ("kdamond_idx", "context_idx")}


def record_value(rec: TargetRecord, fmt: AccessFormat, keyword: str) -> str:
    raw, r = fmt.raw_number, rec.record
    if keyword in ("<kdamond index>", "<context index>"):
        key = "kdamond_idx" if keyword == "<kdamond index>" else "context_idx"
        return "%s" % kdamond_of(r, rec.target_id)[key]
    if keyword == "<scheme index>":
        return "None"
    if keyword == "<target id>":
        return "%s" % rec.target_id
    if keyword == "<abs start time>":
        return format_time_ns(rec.first_start_ns, raw) if r.nr_snapshots else "n/a"
    if keyword == "<duration>":
        return format_time_ns(int(r.end_ns[-1]) - rec.first_start_ns, raw) if r.nr_snapshots else "n/a"
    if keyword == "<intervals>":
        return "sample %s, aggr %s" % (format_time_us(rec.sample_us, raw), format_time_us(rec.aggr_us, raw))
    if keyword == "<intervals goal>":
        goal = rec.goal
        if goal is None:
            return "disabled"
        return "target %s accesses per %s aggrs, [%s, %s] sampling interval" % (
            dfmt.format_bp(goal["access_bp"], raw), dfmt.format_nr(goal["aggrs"], raw),
            format_time_us(goal["min_sample_us"], raw), format_time_us(goal["max_sample_us"], raw))
    if keyword == "<data source>":
        return "unknown"
    if keyword == "<format strings>":
        return "\n".join(['record head: "%s"' % fmt.record_head, 'snapshot head: "%s"' % fmt.snapshot_head,
                          'region: "%s"' % fmt.region, 'snapshot tail: "%s"' % fmt.snapshot_tail,
                          'record tail: "%s"' % fmt.record_tail])
    raise KeyError(keyword)


def snapshot_value(rec: TargetRecord, i: int, fmt: AccessFormat, box: RegionBox, keyword: str) -> str:
    raw, r, sl = fmt.raw_number, rec.record, rec.span(i)
    start_ns, end_ns = int(r.start_ns[i]), int(r.end_ns[i])
    size = rec.size[sl]
    sums = rec.snapshot_sums() if keyword in ("<total bytes>", "<estimated memory bandwidth>") else None
    aggr_us = rec.aggr_us_of(i)
    aggr_sec = aggr_us / 1000000
    if keyword == "<total bytes>":
        return dfmt.format_sz(sums[0][i] if sums else int(size.sum()), raw)
    if keyword == "<duration>":
        return format_time_ns(end_ns - start_ns, raw)
    if keyword == "<start time>":
        return format_time_ns(start_ns - rec.first_start_ns, raw)
    if keyword == "<end time>":
        return format_time_ns(end_ns - rec.first_start_ns, raw)
    if keyword == "<abs start time>":
        return format_time_ns(start_ns, raw)
    if keyword == "<abs end time>":
        return format_time_ns(end_ns, raw)
    if keyword == "<number of regions>":
        return dfmt.format_nr(len(size), raw)
    if keyword == "<region box colors>":
        return color_samples(fmt.box_colorset, fmt.color)
    if keyword == "<region box description>":
        return box_description(box, fmt)
    if keyword in ("<temperature-sz histogram>", "<temperature-df-passed-sz histogram>"):
        return size_histogram(sizeless_temperatures(rec, sl, fmt), size, fmt, dfmt.format_nr, _text_to_nr)
    if keyword in ("<recency-sz histogram>", "<recency-df-passed-sz histogram>"):
        return size_histogram(idle_times(rec, sl, aggr_us), size, fmt, format_time_us, _text_to_us)
    if keyword in ("<recency percentiles>", "<df-passed recency percentiles>",
                   "<temperature percentiles>", "<df-passed temperature percentiles>"):
        if len(size) == 0:
            return "no region in snapshot"
        kind = "recency" if "recency" in keyword else "temperature"
        metric = idle_times(rec, sl, aggr_us) if kind == "recency" else sizeless_temperatures(rec, sl, fmt)
        return percentiles_text(percentile_values(metric, size, percentiles_to_show(fmt)), fmt, kind)
    if keyword == "<heatmap>":
        if rec.heatmaps is None:
            rec.heatmaps = heatmap_texts(rec, fmt)
        return rec.heatmaps[i]
    if keyword == "<filters passed heatmap>":
        return "n/a (no region)"         # our records carry no DAMOS filter results: no region passed
    if keyword == "<filters passed type>":
        return "n/a"
    if keyword == "<filters passed bytes>":
        return "N/A"
    if keyword == "<positive access samples ratio>":
        max_samples = rec.aggr_us / rec.sample_us * len(size)
        return dfmt.format_percent(int(rec.samples[sl].sum()) * 100 / max_samples if max_samples else 0, raw)
    if keyword in ("<estimated memory bandwidth>", "<filters passed estimated memory bandwidth>"):
        if sums:
            access_bytes = sums[1][i]
        elif len(size) and int(size.max()) * int(rec.samples[sl].max(initial=0)) * len(size) >= 2**62:
            access_bytes = sum(int(v) for v in (size.astype(object) * rec.samples[sl].astype(object)).tolist())
        else:
            access_bytes = int((size * rec.samples[sl]).sum())
        return "%s per second" % dfmt.format_sz(access_bytes / aggr_sec, raw)
    if keyword == "<intervals tuning status>":
        max_per_region = rec.aggr_us / rec.sample_us
        max_obs = sum((max_per_region * s for s in size.tolist()), 0)
        obs = int((size * rec.samples[sl]).sum())
        return "%s (%s / %s) %s %s" % (
            dfmt.format_percent(obs * 100 / max(max_obs, 1), raw), dfmt.format_sz(obs, raw),
            dfmt.format_sz(max_obs, raw), format_time_us(rec.sample_us, raw), format_time_us(rec.aggr_us, raw))
    if keyword == "<damos stats>":
        return "none"
    if keyword == "<snapshot intervals>":
        ratio = rec.aggr_us / rec.sample_us
        return "sample %s aggr %s (max access hz %s)" % (
            format_time_us(aggr_us / ratio, raw), format_time_us(aggr_us, raw),
            format_hz(ratio / aggr_sec, raw, no_suffix=True))
    raise KeyError(keyword)


def _text_to_nr(text: str):
    from damo.selection import _number
    return _number(text)


def _text_to_us(text: str):
    from damo.selection import parse_time_ns
    return parse_time_ns(text) / 1000


def box_description(box: RegionBox, fmt: AccessFormat) -> str:
    raw = fmt.raw_number

    def min_max(name):
        lo, hi = box.bounds[name]
        if name == "size":
            return "[%s, %s]" % (dfmt.format_sz(lo, raw), dfmt.format_sz(hi, raw))
        if name == "age":
            return "[%s, %s] " % (format_time_us(lo, raw), format_time_us(hi, raw))
        return "[%s, %s]" % (dfmt.format_percent(lo, raw), dfmt.format_percent(hi, raw))

    (lname, cname, hname), scales = fmt.box_values, [("logscale" if s == "log" else "linearscale")
                                                     for s in fmt.box_scales]
    return "\n".join([
        "# length: %s (represents %s with [%d, %d] columns in %s)" % (
            lname, min_max(lname), fmt.box_min_max_length[0], fmt.box_min_max_length[1], scales[0]),
        "# color: %s (represents %s with [%d, %d] number and color (%s) in %s)" % (
            cname, min_max(cname), 0, 9, color_samples(fmt.box_colorset, fmt.color), scales[1]),
        "# height: %s (represents %s with [%d, %d] rows in %s)" % (
            hname, min_max(hname), fmt.box_min_max_height[0], fmt.box_min_max_height[1], scales[2])])


STR = np.dtypes.StringDType()


_SZ_TAILS: dict[int, np.ndarray] = {}


def _sz_tails(width: int) -> np.ndarray:
    """[unit * 1000 + fraction, padding]: the text after a size's integer part, padded to ``width``."""
    if width not in _SZ_TAILS:
        tails = [" B"] * 1000 + [".%03d %s" % (f, u) for u in ("KiB", "MiB", "GiB", "TiB", "PiB") for f in range(1000)]
        _SZ_TAILS[width] = np.array([[t + " " * pad for pad in range(width + 1)] for t in tails], dtype=STR)
    return _SZ_TAILS[width]


def format_sz_column(values: np.ndarray, raw: bool, width: int = 0) -> np.ndarray:
    """format_sz over a whole integer column, left-justified to ``width``, in numpy string operations.

    ``'%.3f' % (v / 2**k)`` is the exact binary value ``v / 2**k`` rounded half-even to three
    decimals; for integers below 2**53 that is integer arithmetic on ``v * 1000``.
    """
    values = np.asarray(values)
    if raw or values.dtype.kind not in "iu" or (len(values) and int(values.max()) >= 2**53):
        texts = _format_sz_column_slow(values, raw)
        return np.strings.ljust(texts, width) if width else texts
    v = values.astype(np.int64)
    fv = v.astype(np.float64)
    # unit of each value: 0 for bytes, k for 2**(10k) (strictly above it, as damo compares)
    unit = np.zeros(len(v), dtype=np.int64)
    for k in range(1, 6):
        unit[fv > float(1 << (10 * k))] = k
    shift = unit * 10
    q, r = np.divmod(v * 1000, np.left_shift(np.int64(1), shift))     # v < 2**53: v * 1000 < 2**63
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 1)
    q = q + ((shift > 0) & ((r > half) | ((r == half) & (q % 2 == 1))))
    whole, frac = np.divmod(q, 1000)
    whole = np.where(shift > 0, whole, v)
    # text length: the integer part's digits plus the tail (" B", or ".fff KiB" and the like)
    digits = np.ones(len(whole), dtype=np.int64)
    for power in range(1, 16):
        digits += whole >= 10 ** power
    tail_len = np.where(shift > 0, 8, 2)
    pad = np.clip(width - digits - tail_len, 0, width)
    return np.strings.add(whole.astype(STR), _sz_tails(width)[unit * 1000 + frac, pad])


def _format_sz_column_slow(values: np.ndarray, raw: bool) -> np.ndarray:
    if raw:
        return values.astype(np.int64).astype(STR) if values.dtype.kind in "iu" else \
            np.array(["%d" % v for v in values.tolist()], dtype=STR)
    return np.array([dfmt.format_sz(v) for v in values.tolist()], dtype=STR)


def format_small_ints(values: np.ndarray, fn, width: int = 0) -> np.ndarray:
    """``fn`` over a column of (mostly) small non-negative integers: a table lookup, else unique
    values; left-justified to ``width``."""
    values = np.asarray(values)
    if values.dtype.kind in "iu" and len(values) and 0 <= int(values.min()) and int(values.max()) < 1 << 16:
        table = np.array([fn(x).ljust(width) for x in range(int(values.max()) + 1)], dtype=STR)
        return table[values]
    texts = _format_unique(values, fn)
    return np.strings.ljust(texts, width) if width else texts


def _format_unique(values: np.ndarray, fn) -> np.ndarray:
    if not len(values):
        return np.zeros(0, dtype=STR)
    if values.dtype == object:
        return np.array([fn(x) for x in values.tolist()], dtype=STR)
    uniq, inverse = np.unique(values, return_inverse=True)
    return np.array([fn(x) for x in uniq.tolist()], dtype=STR)[inverse.ravel()]


def region_order(rec: TargetRecord, fmt: AccessFormat) -> np.ndarray | None:
    """All regions of the target, each snapshot's in damo's order (successive stable sorts by each
    --sort_regions_by key); ``None`` when that is the stored order."""
    r = rec.record
    n = len(rec.size)
    dsc_keys = fmt.sort_regions_dsc or []
    keys = []
    for key in fmt.sort_regions_by:
        if key == "address":
            values = r.start.astype(np.int64)
        elif key == "access_rate":
            values = rec.percent
        elif key == "age":
            values = rec.age_us
        elif key == "size":
            values = rec.size
        else:
            values = rec.temperature
        if values.dtype == object:
            values = values.astype(np.float64)
        if "all" in dsc_keys or key in dsc_keys:
            values = -values.astype(np.float64) if values.dtype.kind == "f" else -values
        keys.append(values)
    if fmt.sort_regions_by == ["address"] and not dsc_keys:
        starts = r.start
        if n < 2 or bool(np.all((starts[1:] >= starts[:-1]) | np.isin(np.arange(1, n), r.offsets))):
            return None
    # the last sort decides first; equal keys keep the earlier sorts' order, then the stored order
    return np.lexsort([np.arange(n)] + keys + [r.snapshot_index()])


def keyword_texts(rec: TargetRecord, fmt: AccessFormat, box: RegionBox, keyword: str,
                  order: np.ndarray | None) -> np.ndarray:
    """The text of a region keyword for all regions of the target at once, padded to its width."""
    raw, r = fmt.raw_number, rec.record

    def col(values):
        return values if order is None else values[order]

    width = fmt.min_chars_of(keyword) or 0
    if keyword == "<index>":
        texts = format_small_ints(snapshot_positions(r), lambda j: dfmt.format_nr(j, raw), width)
    elif keyword == "<start address>":
        texts = format_sz_column(col(r.start), raw, width)
    elif keyword == "<end address>":
        texts = format_sz_column(col(r.end), raw, width)
    elif keyword == "<size>":
        texts = format_sz_column(col(rec.size), raw, width)
    elif keyword == "<access rate>":
        texts = format_small_ints(col(rec.percent), lambda v: dfmt.format_percent(v, raw), width)
    elif keyword == "<access hz>" and rec.snapshot_aggr_us is not None:
        hz = col(rec.samples) / (col(rec.region_aggr_us()) / 1000000)
        texts = _format_unique(hz, lambda v: format_hz(v, raw))
        texts = np.strings.ljust(texts, width) if width else texts
    elif keyword == "<access hz>":
        aggr_sec = rec.aggr_us / 1000000
        texts = format_small_ints(col(rec.samples), lambda v: format_hz(v / aggr_sec, raw), width)
    elif keyword == "<age>":
        aggr = rec.aggr_us
        texts = format_small_ints(col(np.maximum(r.age, 0)), lambda v: format_time_us(v * aggr, raw), width)
    elif keyword == "<temperature>":
        texts = format_small_ints(col(rec.temperature), lambda v: dfmt.format_nr(v, raw), width)
    else:
        if keyword == "<probe hits>":
            texts = np.full(len(rec.size), "", dtype=STR)
        elif keyword == "<filters passed bytes>":
            texts = np.full(len(rec.size), "N/A", dtype=STR)
        else:
            parts = [np.array(box.texts(rec, rec.span(i)), dtype=STR) for i in range(r.nr_snapshots)]
            texts = col(np.concatenate(parts) if parts else np.zeros(0, dtype=STR))
        if width:
            texts = np.strings.ljust(texts, width)
    return texts


def snapshot_positions(r: Record) -> np.ndarray:
    """Each region's position in its snapshot."""
    return np.arange(r.nr_regions_total) - r.offsets[:-1][r.snapshot_index()]


# (keyword, raw, aggr_us, sample_us) -> its TextTable, kept across the chunks of a report
_TEXT_TABLES: dict[tuple, dfmt.TextTable] = {}


def _text_table(key: tuple, text_of) -> dfmt.TextTable:
    if key not in _TEXT_TABLES:
        _TEXT_TABLES[key] = dfmt.TextTable(text_of)
    return _TEXT_TABLES[key]


def ragged_column(rec: TargetRecord, fmt: AccessFormat, box: RegionBox, keyword: str,
                  order: np.ndarray | None) -> tuple[dfmt.RaggedColumn, int]:
    """A region keyword's texts as a ragged column and its minimum width: by table lookups
    and fixed-width columns for the numeric keywords, else from keyword_texts."""
    raw, r = fmt.raw_number, rec.record
    width = fmt.min_chars_of(keyword) or 0
    aggr = rec.aggr_us

    def col(values):
        return values if order is None else values[order]

    values, table = None, None
    if keyword in ("<start address>", "<end address>", "<size>") and not raw:
        values = col({"<start address>": r.start, "<end address>": r.end, "<size>": rec.size}[keyword])
        if values.dtype.kind in "iu" and len(values) and int(values.max()) < dfmt.SIZE_COLUMN_LIMIT:
            if values.dtype.kind == "u" or int(values.min()) >= 0:
                return dfmt.RaggedColumn.right_aligned(dfmt.size_column(values)), width
    elif keyword == "<index>":
        values = snapshot_positions(r)
        table = _text_table((keyword, raw), lambda j: dfmt.format_nr(j, raw))
    elif keyword == "<access rate>":
        values = col(rec.percent)
        table = _text_table((keyword, raw), lambda v: dfmt.format_percent(v, raw))
    elif keyword == "<access hz>" and rec.snapshot_aggr_us is None:     # tuned: per-snapshot Hz, below
        values = col(rec.samples)
        table = _text_table((keyword, raw, aggr), lambda v: format_hz(v / (aggr / 1000000), raw))
    elif keyword == "<age>":
        values = col(np.maximum(r.age, 0))
        table = _text_table((keyword, raw, aggr), lambda v: format_time_us(v * aggr, raw))
    elif keyword == "<temperature>":
        values = col(rec.temperature)
        table = _text_table((keyword, raw), lambda v: dfmt.format_nr(v, raw))
    if table is not None and table.covers(values):
        return table.column(values), width
    return dfmt.RaggedColumn.from_strings(keyword_texts(rec, fmt, box, keyword, order)), 0


def split_template(template: str, present: list[str]) -> tuple[list[str], list[str]]:
    """Literal pieces and the keyword between each two (no keyword contains another)."""
    import re
    tokens = re.split("(" + "|".join(re.escape(k) for k in present) + ")", template) if present else [template]
    return [t.replace("\\n", "\n") for t in tokens[0::2]], tokens[1::2]


def region_lines(rec: TargetRecord, fmt: AccessFormat, box: RegionBox) -> tuple[bytes, np.ndarray] | None:
    """Every region line of the target (snapshot after snapshot), each ending with a newline, and
    the end offset of each line; None without a region template."""
    template = fmt.region
    if not template or not len(rec.size):
        return None
    present = [k for k in REGION_KEYWORDS if k in template]
    order = region_order(rec, fmt)
    pieces, slots = split_template(template, present)
    columns = {}
    parts = [pieces[0].encode()] if pieces[0] else []
    for keyword, piece in zip(slots, pieces[1:]):
        if keyword not in columns:
            columns[keyword] = ragged_column(rec, fmt, box, keyword, order)
        parts.append(columns[keyword])
        if piece:
            parts.append(piece.encode())
    text, ends = dfmt.join_ragged(parts, len(rec.size))
    return text.tobytes(), ends


# --- putting the parts together -----------------------------------------------------------------

def apply_style(fmt: AccessFormat, style: str, recs: list[TargetRecord]) -> None:
    if style == "simple-boxes":
        fmt.snapshot_head = "snapshot time: [<start time>, <end time>] (<duration>)"
        fmt.region = "<box> size <size> access <access hz> age <age>"
    if style in ("simple-boxes", "cold", "hot"):
        fmt.box_min_max_height, fmt.box_min_max_length = (1, 1), (1, 40)
        fmt.box_align, fmt.box_colorset = "right", "emotion"
    if style in ("cold", "hot"):
        fmt.region = "<box> <size> access <access hz> <age>"
        fmt.sort_regions_by = ["temperature"]
        if style == "hot":
            fmt.sort_regions_dsc = ["temperature"]
    if style in ("temperature-sz-hist", "recency-sz-hist", "cold-memory-tail"):
        if style == "temperature-sz-hist":
            fmt.snapshot_head = "<temperature> <total size>\n<temperature-sz histogram>"
        else:
            fmt.snapshot_head = "<idle time (us)> <total size>\n<recency-sz histogram>"
        fmt.region = ""
    if style in ("recency-percentiles", "idle-time-percentiles", "temperature-percentiles"):
        kind = "temperature" if style == "temperature-percentiles" else "recency"
        head = []
        if any(r.record.nr_snapshots > 1 for r in recs):
            head.append("snapshot time: [<start time>, <end time>] (<duration>)")
        head += ["# total %s percentiles" % kind, "<%s percentiles>" % kind]
        fmt.snapshot_head = "\n".join(head)
        fmt.region = ""


def apply_defaults(fmt: AccessFormat, recs: list[TargetRecord], region_box: bool) -> None:
    if fmt.record_head is None:
        fmt.record_head = ("kdamond <kdamond index> / context <context index> / scheme <scheme index> / "
                           "target id <target id> / recorded for <duration> from <abs start time>"
                           if len(recs) > 1 else "")
    if fmt.record_tail is None:
        fmt.record_tail = "record DAMON intervals: <intervals>"
        if any(r.goal is not None for r in recs):
            fmt.record_tail += "\n# <intervals goal>"
    if fmt.snapshot_head is None:
        lines = []
        if any(r.record.nr_snapshots > 1 for r in recs):
            lines.append("snapshot time: [<start time>, <end time>] (<duration>)")
        lines += ["heatmap: <heatmap>", "intervals: <snapshot intervals>"]
        fmt.snapshot_head = "\n".join(lines)
    if fmt.snapshot_tail is None:
        fmt.snapshot_tail = "memory bw estimate: <estimated memory bandwidth>\ntotal size: <total bytes>"
    if region_box and "<region box description>" not in fmt.snapshot_tail:
        fmt.snapshot_tail += "\n<region box description>"
    if fmt.region is None:
        line = "<index> addr <start address> size <size> access <access hz> age <age>"
        if region_box:
            line = ("<box>%s" if fmt.box_min_max_height[1] > 1 else "<box>\n%s") % line
        fmt.region = line


def check_template(part: str, template: str) -> None:
    import re
    for token in re.findall(r"<[^<>]*>", template):
        if token not in KEYWORDS_OF_PART[part]:
            raise DamoError(f"--format {part}: unknown keyword {token}; "
                            f"{part} accepts {', '.join(KEYWORDS_OF_PART[part])}")


def apply_format_args(fmt: AccessFormat, format_args, action: str) -> None:
    for entry in format_args or []:
        if len(entry) != 3 or entry[0] not in ("set", "append") or entry[1] not in PARTS:
            raise DamoError("--format: expected 'set|append PART TEMPLATE' with PART one of "
                            f"{', '.join(PARTS)}; got {' '.join(entry)!r}")
        verb, part, template = entry
        if verb != action:
            continue
        check_template(part, template)
        if verb == "set":
            setattr(fmt, part, template)
        else:
            setattr(fmt, part, (getattr(fmt, part) or "") + template)


def split_by_target(record: Record, target_ids: list[int] | None = None) -> list[tuple[int, Record]]:
    """``(target id, its snapshots)`` for each of ``target_ids`` (default: the record's), empty ones kept."""
    if target_ids is None or list(target_ids) == record.target_ids():
        return record.split_targets()       # one target: the record itself, no copy
    return [(tid, record.for_target(tid)) for tid in target_ids]


def format_report(record: Record, fmt: AccessFormat, style: str = "detailed", format_args=None,
                  region_box: bool = False, target_ids: list[int] | None = None) -> str:
    """The whole ``report access`` text of a (filtered) record, without a trailing newline.

    ``target_ids`` are the targets of the record before filtering: a target whose snapshots were
    all filtered out still gets its record head and tail, as in damo.
    """
    return "\n".join(iter_report(record, fmt, style, format_args, region_box, target_ids))


def iter_report(record: Record, fmt: AccessFormat, style: str = "detailed", format_args=None,
                region_box: bool = False, target_ids: list[int] | None = None):
    """The pieces of the report text, to be joined with newlines; built a chunk of snapshots at a time."""
    recs = [TargetRecord(tid, rec, fmt, columns=False) for tid, rec in split_by_target(record, target_ids)]
    if not recs:
        return
    apply_format_args(fmt, format_args, "set")
    apply_style(fmt, style, recs)
    if fmt.total_sz_only:
        fmt.snapshot_head, fmt.region, fmt.snapshot_tail = "", "", "<total bytes>"
    apply_defaults(fmt, recs, region_box)
    apply_format_args(fmt, format_args, "append")
    needs_box = "<box>" in (fmt.region or "") or "<region box description>" in (
        (fmt.snapshot_head or "") + (fmt.snapshot_tail or ""))
    box = RegionBox(recs, fmt) if needs_box else None
    totals_only = fmt.snapshot_head == "" and fmt.region == "" and fmt.snapshot_tail == "<total bytes>"
    for whole in recs:
        head = fill(fmt.record_head, RECORD_KEYWORDS, lambda k: record_value(whole, fmt, k), fmt)
        if head is not None:
            yield head
        n = whole.record.nr_snapshots
        for first, rec in whole.chunks():
            out: list[str | None] = []
            lines = region_lines(rec, fmt, box)
            offsets = rec.record.offsets
            if lines is not None:
                text, ends = lines
                line_starts = np.concatenate([[0], ends]).tolist()
            for j in range(rec.record.nr_snapshots):
                def snap(k, j=j):
                    return snapshot_value(rec, j, fmt, box, k)
                out.append(fill(fmt.snapshot_head, SNAPSHOT_KEYWORDS, snap, fmt))
                if lines is not None and offsets[j + 1] > offsets[j]:
                    # the snapshot's lines without the last newline
                    out.append(text[line_starts[offsets[j]]:line_starts[offsets[j + 1]] - 1].decode())
                out.append(fill(fmt.snapshot_tail, SNAPSHOT_KEYWORDS, snap, fmt))
                if first + j < n - 1 and not totals_only:
                    out.append("")
            text = [o for o in out if o is not None]
            if text:
                yield "\n".join(text)
        tail = fill(fmt.record_tail, RECORD_KEYWORDS, lambda k: record_value(whole, fmt, k), fmt)
        if tail is not None:
            yield tail


# --- --json and --raw_form ----------------------------------------------------------------------

def goal_kvpairs(goal: dict | None, raw: bool) -> dict:
    """damo's intervals_goal object (all zero when intervals were not tuned)."""
    goal = goal or {"access_bp": 0, "aggrs": 0, "min_sample_us": 0, "max_sample_us": 0}
    return {"access_bp": dfmt.format_bp(goal["access_bp"], raw), "aggrs": dfmt.format_nr(goal["aggrs"], raw),
            "min_sample_us": format_time_us(goal["min_sample_us"], raw),
            "max_sample_us": format_time_us(goal["max_sample_us"], raw)}


def records_json(recs: list[TargetRecord], raw: bool) -> str:
    """damo 3.4.3's ``--json``: its record objects as indented JSON (regions always in human units)."""
    import json

    out = []
    for rec in recs:
        r = rec.record
        own_sample = r.snapshot_sample_us if rec.goal else None
        snapshots = []
        for i in range(r.nr_snapshots):
            sl = rec.span(i)
            starts, ends = format_nr_many(r.start[sl], False), format_nr_many(r.end[sl], False)
            ages = rec.age_us[sl].tolist()
            age_intervals = np.maximum(r.age[sl], 0).tolist()
            regions = [{"start": a, "end": b,
                        "nr_accesses": {"samples": n, "percent": p},
                        "age": {"usec": dfmt.format_time_us_exact(u), "aggr_intervals": dfmt.format_nr(ai)},
                        "probe_hits": [], "sz_filter_passed": "0 B"}
                       for a, b, n, p, u, ai in zip(starts, ends, rec.samples[sl].tolist(), rec.percent[sl].tolist(),
                                                    ages, age_intervals)]
            snapshots.append({"start_time": dfmt.format_time_ns_exact(int(r.start_ns[i]), raw),
                              "end_time": dfmt.format_time_ns_exact(int(r.end_ns[i]), raw),
                              "regions": regions,
                              "total_bytes": dfmt.format_sz(int(rec.size[sl].sum()), raw),
                              "damos_stats": None,
                              "sample_interval_us": None if own_sample is None
                              else dfmt.format_time_us_exact(int(own_sample[i]), raw)})
        update_us = r.meta.update_us or 0
        out.append({**kdamond_of(r, rec.target_id),
                    "intervals": {"sample_us": format_time_us(rec.sample_us, raw),
                                  "aggr_us": format_time_us(rec.aggr_us, raw),
                                  "ops_update_us": format_time_us(update_us, raw),
                                  "intervals_goal": goal_kvpairs(rec.goal, raw)},
                    "scheme_idx": None, "target_id": rec.target_id, "scheme_filters": [],
                    "snapshots": snapshots, "data_source": "unknown"})
    return json.dumps(out, indent=4)


def raw_form(record: Record, target_ids: list[int], raw: bool) -> Iterator[bytes]:
    """damo 3.4.3's ``--raw_form``: every region of every snapshot, one line each (report raw's
    lines), in blocks of bytes."""
    from damo.raw import region_line_blocks, snapshot_head

    for tid, r in split_by_target(record, target_ids):
        if r.nr_snapshots == 0:
            continue
        base = int(r.start_ns[0])
        yield ("base_time_absolute: %s\ndata source: unknown\n\n" % format_time_ns(base, raw)).encode()
        starts = r.start_ns.tolist()
        for i, block in enumerate(region_line_blocks(r, np.arange(r.nr_snapshots), raw)):
            yield snapshot_head(r, i, starts[i], base, tid, raw, format_time_ns)
            yield block[0]
            yield b"\n"


# --- command line -----------------------------------------------------------------------------

def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style", choices=STYLES, default="detailed",
                        help="preset output format (default: detailed)")
    parser.add_argument("--format", nargs="+", action="append", metavar="ARG",
                        help="set|append PART TEMPLATE: replace or extend one part (record_head, "
                             "snapshot_head, region, snapshot_tail, record_tail) with <keyword> templates; "
                             "repeatable (default: the style's)")
    parser.add_argument("--percentiles_range", nargs="+", type=int, metavar="N",
                        help="percentiles to show: START STOP [STEP] as Python range(), or 4+ values "
                             "(default: 0 1 25 50 75 99 100)")
    parser.add_argument("--sort_regions_by", nargs="+", choices=SORT_KEYS, default=["address"],
                        help="sort each snapshot's regions by these keys (default: address)")
    parser.add_argument("--sort_regions_dsc", nargs="+", choices=SORT_KEYS + ("all",),
                        help="keys to sort in descending order (default: none)")
    parser.add_argument("--temperature_weights", nargs=3, type=int, metavar=("SIZE", "RATE", "AGE"),
                        default=list(DEFAULT_TEMPERATURE_WEIGHTS),
                        help="temperature weights of size, access rate and age (default: 0 100 100)")
    parser.add_argument("--hist_logscale", action="store_true", help="log-scale histogram ranges (default: off)")
    parser.add_argument("--hist_ranges", nargs="+", metavar="VALUE",
                        help="histogram ranges as MIN MAX pairs (default: 10 ranges over the values)")
    parser.add_argument("--hist_cumulate", action="store_true",
                        help="cumulative histograms (default: off)")
    for part in PARTS:
        parser.add_argument(f"--format_{part}", metavar="TEMPLATE", help=argparse.SUPPRESS)
    parser.add_argument("--snapshot_heatmap_width", type=int, default=80, metavar="N",
                        help="columns of the per-snapshot heatmap (default: 80)")
    parser.add_argument("--snapshot_heatmap_colorset", choices=list(COLORSETS), default="gray",
                        help="heatmap colours (default: gray)")
    parser.add_argument("--snapshot_heatmap_static", action="store_true",
                        help="draw unmonitored gaps to scale in the heatmap (default: off)")
    parser.add_argument("--region_box", action="store_true", help="draw each region as a box (default: off)")
    parser.add_argument("--region_box_values", nargs=3, choices=["size", "access_rate", "age", "none"],
                        default=["age", "access_rate", "size"],
                        help="values shown by the box's length, colour and height (default: age access_rate size)")
    parser.add_argument("--region_box_min_max_length", nargs=2, type=int, default=[1, 30], metavar=("MIN", "MAX"),
                        help="box length range (default: 1 30)")
    parser.add_argument("--region_box_min_max_height", nargs=2, type=int, default=[1, 5], metavar=("MIN", "MAX"),
                        help="box height range (default: 1 5)")
    parser.add_argument("--region_box_colorset", choices=list(COLORSETS), default="gray",
                        help="box colours (default: gray)")
    parser.add_argument("--region_box_scales", nargs=3, choices=["linear", "log"], default=["log", "linear", "log"],
                        help="scales of the box's length, colour and height (default: log linear log)")
    parser.add_argument("--region_box_align", choices=["left", "right"], default="left",
                        help="box alignment (default: left)")
    parser.add_argument("--min_chars_for", nargs=2, action="append", metavar=("KEYWORD", "N"),
                        help="pad a keyword's text to N characters; repeatable "
                             "(default: <index> 3, <start address> 12, <size> 11, <access hz> 6, <age> 13, ...)")
    parser.add_argument("--total_sz_only", action="store_true",
                        help="print only each snapshot's total size (default: off)")
    parser.add_argument("--dont_merge_regions", action="store_true",
                        help="accepted for damo 3.x scripts; recorded regions are never merged (default: off)")
    parser.add_argument("--raw_number", action="store_true", help="plain numbers, no units (default: off)")
    parser.add_argument("--json", action="store_true", help="print the (filtered) record as JSON (default: off)")
    parser.add_argument("--raw_form", action="store_true",
                        help="print every region of every snapshot, one line each (default: off)")
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="colour the heatmap and boxes: auto (terminal without NO_COLOR), always, never "
                             "(default: auto)")


DESCRIPTION = """\
The access pattern of every snapshot, as damo 3.x prints it: a one-line heatmap of the snapshot's
temperatures, its intervals, one line per region (address, size, access frequency, age), the
estimated memory bandwidth and the total size. Other --style values print boxes, histograms or
percentiles of temperature and idle time; --format rewrites any part with <keyword> templates.
The filter options keep only the regions and snapshots of an access pattern."""

EXAMPLES = "\n".join([
    "examples:",
    "  damo report access -i stairs.data",
    "  damo report access --style temperature-percentiles",
    "  damo report access --access_rate 50 max --age 1s max     # hot and stable regions only",
    "  damo report access --format set region \"<index> <size> <temperature>\"",
    "",
    "keywords of --format templates (\\n in a template is a line break):",
    "  record_head, record_tail: " + " ".join(RECORD_KEYWORDS),
    "  snapshot_head, snapshot_tail: " + " ".join(SNAPSHOT_KEYWORDS),
    "  region: " + " ".join(REGION_KEYWORDS)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_argument(parser)
    add_format_arguments(parser)
    add_filter_arguments(parser)


def format_from_args(args: argparse.Namespace) -> AccessFormat:
    if args.percentiles_range is not None and len(args.percentiles_range) <= 3:
        if len(args.percentiles_range) == 3 and args.percentiles_range[2] == 0:
            raise DamoError("--percentiles_range: the step must not be zero")
    if args.snapshot_heatmap_width < 1:
        raise DamoError("--snapshot_heatmap_width: must be at least 1")
    min_chars = list(DEFAULT_MIN_CHARS)
    for keyword, nr in args.min_chars_for or []:
        try:
            min_chars.insert(0, (keyword, int(nr)))     # the user's width wins over the default
        except ValueError:
            raise DamoError(f"--min_chars_for: {nr!r} is not an integer") from None
    return AccessFormat(
        record_head=args.format_record_head, snapshot_head=args.format_snapshot_head,
        region=args.format_region, snapshot_tail=args.format_snapshot_tail, record_tail=args.format_record_tail,
        sort_regions_by=args.sort_regions_by, sort_regions_dsc=args.sort_regions_dsc,
        temperature_weights=tuple(args.temperature_weights), hist_logscale=args.hist_logscale,
        hist_cumulate=args.hist_cumulate, hist_ranges=args.hist_ranges, percentiles_range=args.percentiles_range,
        heatmap_width=args.snapshot_heatmap_width, heatmap_colorset=args.snapshot_heatmap_colorset,
        heatmap_static=args.snapshot_heatmap_static,
        box_values=tuple(None if v == "none" else v for v in args.region_box_values),
        box_min_max_length=tuple(args.region_box_min_max_length),
        box_min_max_height=tuple(args.region_box_min_max_height), box_colorset=args.region_box_colorset,
        box_scales=tuple(args.region_box_scales), box_align=args.region_box_align, min_chars=tuple(min_chars),
        raw_number=args.raw_number, color=use_color(args.color), total_sz_only=args.total_sz_only)


def write_like_damo(pieces, out=None) -> None:
    """Write the pieces joined by newlines, ending as damo 3.4.3's output ends.

    damo prints text of up to 50 lines with a final newline and pages longer text through
    ``less``, which drops it; on a terminal we always end the line.
    """
    from damo.raw import PAGER_LINES

    out = out or sys.stdout
    newlines, first = 0, True
    for piece in pieces:
        text = piece if first else "\n" + piece
        out.write(text)
        newlines += text.count("\n")
        first = False
    if newlines <= PAGER_LINES or (hasattr(out, "isatty") and out.isatty()):
        out.write("\n")
    out.flush()


def run(args: argparse.Namespace) -> int:
    from damo.formats import read_record

    fmt = format_from_args(args)
    filt = filter_from_args(args)
    for entry in args.format or []:
        if len(entry) != 3:
            raise DamoError("--format: expected 'set|append PART TEMPLATE'; got %r" % " ".join(entry))
    record = read_record(args.input)
    if record.nr_snapshots == 0:
        print("No record in %s" % args.input)
        return 0
    if args.raw_form and not args.json:
        target_ids = record.target_ids()
        record = apply_access_filter(record, filt)
        from damo.raw import PAGER_LINES, write_report
        write_report(raw_form(record, target_ids, fmt.raw_number), sys.stdout.buffer, PAGER_LINES,
                     end_on_terminal=True)
        return 0
    if not record.meta.sample_us or not record.meta.aggr_us:
        raise DamoError(f"{args.input}: the record lacks the monitoring intervals (sampling and aggregation), "
                        "so access rates and ages cannot be computed")
    target_ids = record.target_ids()
    record = apply_access_filter(record, filt)
    if args.json:
        recs = [TargetRecord(tid, rec, fmt) for tid, rec in split_by_target(record, target_ids)]
        write_like_damo([records_json(recs, fmt.raw_number)])
        return 0
    write_like_damo(iter_report(record, fmt, args.style, args.format, args.region_box, target_ids))
    return 0
