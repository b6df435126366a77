"""Compare records: ``damo report diff BASE NEW`` for CI regression checks.

Analysis only: pure functions from records to a ``Comparison``. Rendering lives in
``damo.diff.render``, the gate language in ``damo.diff.gates``, the command line in
``damo.diff.command``. docs/ci.md documents the metrics, the alignment and the noise rule.

Flow: per record, scalar metrics (WSS percentiles, hot/warm/cold bytes, nr_regions percentiles,
duration) and its mapped areas (maximal runs of address space covered by regions); the areas of
all records are aligned into common *slots* (by order and size, never by absolute address, which
ASLR moves); each record's time-averaged access rate is binned per slot offset; each side is the
mean of its records; the metrics get mean and spread per side, and the bins whose heat changed
are merged into ranges ranked by how much access they gained or lost.
"""
from __future__ import annotations

import math
import re
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np

from damo.errors import DamoError
from damo.model import Record
from damo.selection import snapshot_rank, target_order
from damo.wss import percentile_values, wss_distributions

PERCENTILES = (0, 25, 50, 75, 100)
DEFAULT_EXCLUDE_SAMPLES = 20     # as damo's report wss / nr_regions
DEFAULT_HOT = "50%"
DEFAULT_COLD = "0Hz"
DEFAULT_BINS = 256
DEFAULT_TOP = 10
DEFAULT_SAMPLE_US = 5000         # damo's default, assumed when a record does not say
PAGE = 4096
# Ranges are built from bins whose heat changed by at least this fraction of the largest change.
RANGE_FRACTION = 0.1
# Fine bins per common bin, at least: records are binned finely once, then summed into common bins.
FINE_FACTOR = 16
# Regions handled at once by the heat integration: bounds its temporaries to tens of MiB.
REGION_CHUNK = 1 << 20
# Above this many DP cells, areas are aligned by order alone.
MAX_ALIGN_CELLS = 20_000_000

# metric name -> unit, in report order
METRIC_UNITS: dict[str, str] = {
    **{f"wss.p{p}": "bytes" for p in PERCENTILES}, "wss.avg": "bytes",
    "hot_bytes": "bytes", "warm_bytes": "bytes", "cold_bytes": "bytes", "total_bytes": "bytes",
    **{f"nr_regions.p{p}": "count" for p in PERCENTILES}, "nr_regions.avg": "count",
    "duration": "seconds",
}


# ----------------------------------------------------------------------------- thresholds

@dataclass(frozen=True)
class Rate:
    """An access rate threshold as given: ``value`` in Hz, or in percent of the maximum rate."""

    value: float
    unit: str    # "Hz" | "%"

    def __str__(self) -> str:
        return f"{self.value:g}{self.unit}"

    def to_hz(self, max_hz: float) -> float:
        return self.value if self.unit == "Hz" else self.value / 100.0 * max_hz


_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(%|hz)\s*$", re.IGNORECASE)


def parse_rate(text: str) -> Rate:
    """``"50%"`` (of the maximum rate, 1 / sampling interval) or ``"100Hz"``."""
    m = _RATE_RE.match(text)
    if not m:
        raise DamoError(f"bad access rate '{text}': expected NUMBER% (of the maximum access rate) "
                        f"or NUMBERHz (samples per second), e.g. 50% or 100Hz")
    return Rate(float(m.group(1)), "%" if m.group(2) == "%" else "Hz")


@dataclass
class Options:
    """Everything that changes the numbers, shared by both sides."""

    exclude_samples: int = DEFAULT_EXCLUDE_SAMPLES
    acc_thres: int = 1
    sz_thres: int = 1
    hot: Rate = field(default_factory=lambda: parse_rate(DEFAULT_HOT))
    cold: Rate = field(default_factory=lambda: parse_rate(DEFAULT_COLD))
    bins: int = DEFAULT_BINS
    top: int = DEFAULT_TOP
    time_rows: int | None = None      # rows of the 2-D heat grids; None: no grids
    min_gap: int = 0                  # areas closer than this are one area


@dataclass
class Thresholds:
    """The hot and cold rates in Hz, resolved once and used for both sides."""

    hot_hz: float
    cold_hz: float
    max_hz: float                     # 1 / sampling interval of the first base record


# ----------------------------------------------------------------------------- per record

@dataclass
class Area:
    """A maximal address range covered by the regions of one target."""

    target: int                       # target order in its record (0, 1, ...)
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass
class RecordSummary:
    """One record's intervals, metrics and layout."""

    path: str
    target_kind: str
    target: str
    sample_us: int | None             # None: the record does not say
    aggr_us: float                    # from the metadata, else the median snapshot duration
    nr_snapshots: int
    nr_snapshots_used: int            # after --exclude_samples
    used_span_s: float                # from the first used snapshot's start to the last one's end
    metrics: dict[str, float]
    areas: list[Area]
    # The time-averaged heat integrated over fine bins laid per area (see _fine_heat); enough to
    # bin it on any common layout later without the record.
    fine_layout: "HeatLayout | None" = field(default=None, repr=False)
    fine_integrals: np.ndarray | None = field(default=None, repr=False)


def percentile_list(sorted_values: np.ndarray) -> list[float]:
    """damo's percentile rule (``damo.wss.percentile_values``) at PERCENTILES, as floats."""
    return [float(v) for v in percentile_values(np.asarray(sorted_values), PERCENTILES)]


def effective_aggr_us(record: Record) -> float:
    if record.meta.aggr_us:
        return float(record.meta.aggr_us)
    durations = record.end_ns - record.start_ns
    durations = durations[durations > 0]
    if not len(durations):
        raise DamoError("cannot tell the aggregation interval: no intervals in the record and no "
                        "snapshot with a positive duration")
    return float(np.median(durations)) / 1000.0


def _areas(target: np.ndarray, start: np.ndarray, end: np.ndarray, min_gap: int) -> tuple[list[Area], np.ndarray]:
    """Mapped areas per target of address ranges, and each range's area index (into the list)."""
    areas: list[Area] = []
    area_of = np.zeros(len(start), dtype=np.int64)
    for t in np.unique(target):
        idx = np.flatnonzero(target == t)
        order = idx[np.lexsort((end[idx], start[idx]))]
        s, e = start[order], end[order]
        reach = np.maximum.accumulate(e)
        new = np.ones(len(order), dtype=bool)
        # A range starts a new area when it begins beyond everything before it (plus the gap);
        # the subtraction wraps where s <= reach, which the first test masks.
        new[1:] = (s[1:] > reach[:-1]) & ((s[1:] - reach[:-1]) > np.uint64(min_gap))
        heads = np.flatnonzero(new)
        ends = np.maximum.reduceat(e, heads)
        ids = np.cumsum(new) - 1 + len(areas)
        area_of[order] = ids
        areas.extend(Area(int(t), int(s[h]), int(x)) for h, x in zip(heads, ends))
    return areas, area_of


def _sum_per_snapshot(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over each snapshot's slice (0 for empty snapshots), without an index array."""
    out = np.zeros(len(offsets) - 1, dtype=np.float64)
    nonempty = np.flatnonzero(np.diff(offsets))
    if len(nonempty):
        out[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty])
    return out


@dataclass
class _Kept:
    """The snapshots an analysis uses: all but the first ``exclude_samples`` of each target."""

    record: Record                   # a view of the original columns when the kept ones are a suffix
    target: np.ndarray               # per kept snapshot: target order
    pos: np.ndarray                  # per kept snapshot: position in its target's kept series


def _kept(record: Record, path: str, exclude_samples: int) -> _Kept:
    if record.nr_snapshots == 0:
        raise DamoError(f"{path}: the record has no snapshots")
    target = target_order(record)
    rank = snapshot_rank(record, target)
    keep = rank >= exclude_samples
    if not keep.any():
        raise DamoError(f"{path}: no snapshots left after excluding the first {exclude_samples} "
                        f"of each target (the record has {record.nr_snapshots}); lower --exclude_samples")
    first = int(np.argmax(keep))
    if keep[first:].all():
        # Single-target records (the common case) keep a suffix: slice, don't copy.
        lo = int(record.offsets[first])
        kept = Record(record.meta, record.target_id[first:], record.start_ns[first:], record.end_ns[first:],
                      record.offsets[first:] - lo, record.start[lo:], record.end[lo:],
                      record.nr_accesses[lo:], record.age[lo:])
    else:
        kept = record.select(keep)
    return _Kept(kept, target[keep], rank[keep] - exclude_samples)


def _region_areas(kept: _Kept, min_gap: int) -> tuple[list[Area], np.ndarray, np.ndarray]:
    """Mapped areas, and per kept region its area (via runs of touching regions, to sort few ranges).

    DAMON's regions of a snapshot tile each monitored range, so a snapshot has a handful of
    runs where every region starts at the previous one's end; the areas are the union of the runs.
    Returns (areas, per-run area index, per-region run index).
    """
    rec = kept.record
    start, end = rec.start, rec.end
    head = np.ones(len(start), dtype=bool)
    head[1:] = (start[1:] != end[:-1]) | (start[1:] >= end[1:])
    nonempty = rec.offsets[:-1][np.diff(rec.offsets) > 0]
    head[nonempty] = True
    heads = np.flatnonzero(head)
    run_of_region = np.cumsum(head) - 1
    run_start = np.minimum.reduceat(start, heads) if len(heads) else start[:0]
    run_end = np.maximum.reduceat(end, heads) if len(heads) else end[:0]
    snap_of_run = np.searchsorted(rec.offsets, heads, side="right") - 1
    areas, area_of_run = _areas(kept.target[snap_of_run], run_start, run_end, min_gap)
    return areas, area_of_run, run_of_region


def summarize(record: Record, path: str, options: Options, thresholds: Thresholds) -> RecordSummary:
    """One record's metrics and mapped areas."""
    aggr_us = effective_aggr_us(record)
    kept = _kept(record, path, options.exclude_samples)
    rec, pos = kept.record, kept.pos
    nr_pos = int(pos.max()) + 1
    # Bytes per snapshot in each heat class, a chunk of snapshots at a time.
    per_snap = np.zeros((4, rec.nr_snapshots))          # hot, warm, cold, total
    for s0, s1 in _snapshot_chunks(rec.offsets, REGION_CHUNK):
        lo, hi = int(rec.offsets[s0]), int(rec.offsets[s1])
        size = rec.end[lo:hi].astype(np.float64) - rec.start[lo:hi].astype(np.float64)
        rate = rec.nr_accesses[lo:hi] * (1e6 / aggr_us)
        hot = rate >= thresholds.hot_hz
        cold = (rate <= thresholds.cold_hz) & ~hot
        offsets = rec.offsets[s0:s1 + 1] - lo
        for i, mask in enumerate((hot, ~hot & ~cold, cold)):
            per_snap[i, s0:s1] = _sum_per_snapshot(np.where(mask, size, 0.0), offsets)
        per_snap[3, s0:s1] = _sum_per_snapshot(size, offsets)
        del size, rate, hot, cold

    def time_mean(values: np.ndarray) -> float:
        # Targets add up at the same position in their series, as damo collapses them.
        return float(np.bincount(pos, weights=values, minlength=nr_pos).mean())

    # Exactly the distribution `damo report wss` prints (damo sorts each target's before summing).
    wss = np.sort(wss_distributions(record, options.acc_thres, options.sz_thres,
                                    options.exclude_samples)[0].astype(np.float64))
    nr_regions = np.sort(np.bincount(pos, weights=rec.regions_per_snapshot(), minlength=nr_pos))

    metrics: dict[str, float] = {}
    for p, v in zip(PERCENTILES, percentile_list(wss)):
        metrics[f"wss.p{p}"] = v
    metrics["wss.avg"] = float(wss.mean())
    for i, name in enumerate(("hot_bytes", "warm_bytes", "cold_bytes", "total_bytes")):
        metrics[name] = time_mean(per_snap[i])
    for p, v in zip(PERCENTILES, percentile_list(nr_regions)):
        metrics[f"nr_regions.p{p}"] = v
    metrics["nr_regions.avg"] = float(nr_regions.mean())
    metrics["duration"] = float(int(record.end_ns.max()) - int(record.start_ns.min())) / 1e9

    areas, area_of_run, run_of_region = _region_areas(kept, options.min_gap)
    fine_layout = _layout(np.array([a.size for a in areas], dtype=np.int64), _fine_bin_bytes(areas, options.bins))
    fine_integrals, _ = _integrate(kept, areas, area_of_run, run_of_region, fine_layout.slot_base, fine_layout,
                                   1e6 / aggr_us)
    used_span = float(int(rec.end_ns.max()) - int(rec.start_ns.min())) / 1e9
    return RecordSummary(path, record.meta.target_kind, record.meta.target, record.meta.sample_us, aggr_us,
                         record.nr_snapshots, rec.nr_snapshots, used_span, metrics, areas, fine_layout,
                         fine_integrals)


def resolve_thresholds(record: Record, options: Options) -> Thresholds:
    """Hot and cold rates in Hz; percentages are of the maximum rate of ``record`` (the first base)."""
    sample_us = record.meta.sample_us or DEFAULT_SAMPLE_US
    max_hz = 1e6 / sample_us
    hot_hz, cold_hz = options.hot.to_hz(max_hz), options.cold.to_hz(max_hz)
    if cold_hz >= hot_hz:
        raise DamoError(f"the cold threshold ({options.cold} = {cold_hz:g} Hz) must be below the hot "
                        f"threshold ({options.hot} = {hot_hz:g} Hz)")
    return Thresholds(hot_hz, cold_hz, max_hz)


# ----------------------------------------------------------------------------- alignment

@dataclass
class Slot:
    """Aligned areas: per record (base records first, then new), the area index or None."""

    target: int
    size: int
    members: dict[int, int] = field(default_factory=dict)     # record number -> area index


def _align(slot_sizes: np.ndarray, slot_targets: np.ndarray, sizes: np.ndarray,
           targets: np.ndarray) -> list[tuple[int | None, int | None]]:
    """Order-preserving alignment of areas to slots (Needleman-Wunsch, gaps free).

    A match scores 1 + min/max of the sizes, so the alignment has as many matches as it can
    and, among those, the most similar sizes; areas of different targets never match.
    Returns (slot, area) pairs in order; None on one side is a gap.
    """
    k, m = len(slot_sizes), len(sizes)
    if k * m > MAX_ALIGN_CELLS:
        n = min(k, m)
        return ([(j, j) for j in range(n)] + [(j, None) for j in range(n, k)]
                + [(None, i) for i in range(n, m)])
    big = np.maximum(sizes[:, None], slot_sizes[None, :]).astype(np.float64)
    small = np.minimum(sizes[:, None], slot_sizes[None, :]).astype(np.float64)
    score = 1.0 + np.divide(small, big, out=np.ones_like(big), where=big > 0)
    score[targets[:, None] != slot_targets[None, :]] = -np.inf
    dp = np.zeros((m + 1, k + 1))
    for i in range(1, m + 1):
        cand = np.maximum(dp[i - 1, 1:], dp[i - 1, :-1] + score[i - 1])
        dp[i, 1:] = np.maximum.accumulate(np.maximum(cand, 0.0))
    pairs: list[tuple[int | None, int | None]] = []
    i, j = m, k
    while i > 0 and j > 0:
        if dp[i, j] == dp[i - 1, j - 1] + score[i - 1, j - 1]:
            pairs.append((j - 1, i - 1))
            i, j = i - 1, j - 1
        elif dp[i, j] == dp[i - 1, j]:
            pairs.append((None, i - 1))
            i -= 1
        else:
            pairs.append((j - 1, None))
            j -= 1
    pairs.extend((None, ii) for ii in range(i - 1, -1, -1))
    pairs.extend((jj, None) for jj in range(j - 1, -1, -1))
    return pairs[::-1]


def align_areas(layouts: list[list[Area]]) -> list[Slot]:
    """Progressively align every record's areas into one list of slots."""
    slots: list[Slot] = []
    for rec, areas in enumerate(layouts):
        pairs = _align(np.array([s.size for s in slots], dtype=np.float64),
                       np.array([s.target for s in slots], dtype=np.int64),
                       np.array([a.size for a in areas], dtype=np.float64),
                       np.array([a.target for a in areas], dtype=np.int64))
        merged: list[Slot] = []
        for j, i in pairs:
            if j is None:
                slot = Slot(areas[i].target, areas[i].size)
            else:
                slot = slots[j]
            if i is not None:
                slot.members[rec] = i
                slot.size = max(slot.size, areas[i].size)
            merged.append(slot)
        slots = merged
    return slots


# ----------------------------------------------------------------------------- heat

@dataclass
class HeatLayout:
    """Slots laid end to end on one axis, each starting at a bin boundary."""

    bin_bytes: int
    slot_base: np.ndarray            # per slot: first byte on the axis
    slot_size: np.ndarray
    nr_bins: int
    capacity: np.ndarray             # per bin: bytes of a slot inside it
    bin_slot: np.ndarray             # per bin: its slot

    @property
    def x_edges(self) -> np.ndarray:
        return np.arange(self.nr_bins + 1, dtype=np.float64) * self.bin_bytes


def _layout(sizes: np.ndarray, bin_bytes: int) -> HeatLayout:
    """Ranges of ``sizes`` laid end to end, each starting at a boundary of ``bin_bytes`` bins."""
    sizes = np.maximum(sizes.astype(np.int64), 1)
    nbins_per = -(-sizes // bin_bytes)
    first_bin = np.concatenate([[0], np.cumsum(nbins_per)[:-1]]).astype(np.int64)
    nr_bins = int(nbins_per.sum())
    bin_slot = np.repeat(np.arange(len(sizes)), nbins_per)
    within = np.arange(nr_bins) - first_bin[bin_slot]
    capacity = np.clip(sizes[bin_slot] - within * bin_bytes, 0, bin_bytes).astype(np.float64)
    return HeatLayout(bin_bytes, first_bin * bin_bytes, sizes, nr_bins, capacity, bin_slot)


def heat_layout(slots: list[Slot], bins: int) -> HeatLayout:
    """The common axis: slots end to end in power-of-two bins, between bins/2 and bins of them."""
    sizes = np.array([max(s.size, 1) for s in slots], dtype=np.int64)
    total = int(sizes.sum())
    # A power of two, so bins line up with pages and huge pages.
    bin_bytes = max(PAGE, 1 << max(0, (-(-total // max(bins, 1)) - 1).bit_length()))
    return _layout(sizes, bin_bytes)


def _fine_bin_bytes(areas: list[Area], bins: int) -> int:
    """A power of two at most 1/FINE_FACTOR of any common bin size a comparison can pick.

    The common bin size is a power of two of at least (sum of slot sizes) / bins, and the slots of
    a record's areas are at least as big as the areas, so this divides it.
    """
    total = max(sum(a.size for a in areas), 1)
    return 1 << max(0, (total // (FINE_FACTOR * max(bins, 1))).bit_length() - 1)


def _bin_integrals(x0: np.ndarray, x1: np.ndarray, weight: np.ndarray, row: np.ndarray | None,
                   nr_rows: int, layout: HeatLayout) -> np.ndarray:
    """Sum over regions of weight * |[x0, x1) ∩ bin| for each (row, bin), without a loop over regions.

    The overlap of [x0, x1) with a bin is H(x1) - H(x0), where H(x) is how much of the bin lies
    left of x: the whole bin for bins left of x's bin, the partial length in x's bin.
    """
    bw, nb = layout.bin_bytes, layout.nr_bins
    out = np.zeros((nr_rows, nb))
    suffix = np.zeros((nr_rows, nb))
    for x, sign in ((x1, 1.0), (x0, -1.0)):
        # bw is a power of two, so scaling by 1/bw is exact (and much faster than floor division).
        t = x * (1.0 / bw)
        b = t.astype(np.int64)
        np.clip(b, 0, nb - 1, out=b)
        t -= b
        t *= bw                                   # the part of x's bin left of x
        cell = b if row is None else row * nb + b
        w = weight if sign > 0 else -weight
        out += np.bincount(cell, weights=w * t, minlength=nr_rows * nb).reshape(nr_rows, nb)
        suffix += np.bincount(cell, weights=w, minlength=nr_rows * nb).reshape(nr_rows, nb)
    # Bins left of a point's bin are covered whole: add bw * (weights of points in later bins).
    later = np.cumsum(suffix[:, ::-1], axis=1)[:, ::-1]
    out[:, :-1] += bw * later[:, 1:]
    return out


def _snapshot_chunks(offsets: np.ndarray, max_regions: int) -> list[tuple[int, int]]:
    """Consecutive snapshot ranges of about ``max_regions`` regions each, to bound temporaries."""
    n = len(offsets) - 1
    cuts = np.searchsorted(offsets, np.arange(max_regions, int(offsets[-1]), max_regions), side="right") - 1
    bounds = np.unique(np.concatenate([[0], np.clip(cuts, 0, n), [n]]))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _integrate(kept: _Kept, areas: list[Area], area_of_run: np.ndarray, run_of_region: np.ndarray,
               area_axis: np.ndarray, layout: HeatLayout, hz_per_sample: float,
               time_edges: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Integrals of the access rate (Hz x bytes) per bin of ``layout``, a chunk of snapshots at a time.

    Each snapshot counts by its share of its target's time, so the first result divided by the
    bins' capacities is the time-averaged rate. With ``time_edges``, the second result has one row
    per time row, each snapshot counting by its share of its row's time; rows without snapshots
    are NaN. ``area_axis`` is where each area starts on the layout's axis.
    """
    r = kept.record
    area_start = np.array([a.start for a in areas], dtype=np.uint64)
    counts = r.regions_per_snapshot()
    snap_dur = np.maximum(r.end_ns - r.start_ns, 0) / 1e9
    nr_targets = int(kept.target.max()) + 1
    if time_edges is None:
        per_target_time = np.bincount(kept.target, weights=snap_dur, minlength=nr_targets)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.nan_to_num(snap_dur / per_target_time[kept.target]) * hz_per_sample
        nr_rows, snap_row = 1, None
    else:
        nr_rows = len(time_edges) - 1
        t0 = int(r.start_ns.min())
        snap_mid = ((r.start_ns - t0) + (r.end_ns - r.start_ns) / 2) / 1e9
        snap_row = np.clip(np.searchsorted(time_edges, snap_mid, side="right") - 1, 0, nr_rows - 1)
        row_time = np.bincount(snap_row * nr_targets + kept.target, weights=snap_dur,
                               minlength=nr_rows * nr_targets).reshape(nr_rows, nr_targets)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.nan_to_num(snap_dur / row_time[snap_row, kept.target]) * hz_per_sample

    out = np.zeros((nr_rows, layout.nr_bins))
    for s0, s1 in _snapshot_chunks(r.offsets, REGION_CHUNK):
        lo, hi = int(r.offsets[s0]), int(r.offsets[s1])
        region_area = area_of_run[run_of_region[lo:hi]]
        x0 = (r.start[lo:hi] - area_start[region_area]).astype(np.float64)
        x0 += area_axis[region_area]
        x1 = x0 + (r.end[lo:hi].astype(np.float64) - r.start[lo:hi].astype(np.float64))
        del region_area
        weight = r.nr_accesses[lo:hi] * np.repeat(share[s0:s1], counts[s0:s1])
        rows = None if snap_row is None else np.repeat(snap_row[s0:s1], counts[s0:s1])
        out += _bin_integrals(x0, x1, weight, rows, nr_rows, layout)
    if time_edges is None:
        return out[0], None
    out[row_time.sum(axis=1) == 0, :] = np.nan
    return out[0], out


def rebin_heat(summary: RecordSummary, rec: int, slots: list[Slot], layout: HeatLayout) -> np.ndarray:
    """The record's time-averaged Hz per bin of the common ``layout``, from its fine integrals."""
    fine = summary.fine_layout
    area_slot = np.full(len(summary.areas), -1, dtype=np.int64)
    for j, slot in enumerate(slots):
        if rec in slot.members:
            area_slot[slot.members[rec]] = j
    area_of_fine = fine.bin_slot
    offset = (np.arange(fine.nr_bins) * fine.bin_bytes) - fine.slot_base[area_of_fine]
    # fine.bin_bytes divides layout.bin_bytes, so every fine bin falls in exactly one common bin.
    target = (layout.slot_base[area_slot[area_of_fine]] + offset) // layout.bin_bytes
    integral = np.bincount(target, weights=summary.fine_integrals, minlength=layout.nr_bins)
    return integral / layout.capacity


def record_grid(record: Record, summary: RecordSummary, rec: int, slots: list[Slot], layout: HeatLayout,
                options: Options, time_edges: np.ndarray) -> np.ndarray:
    """The record's Hz per (time row, bin of ``layout``), NaN in rows without snapshots."""
    kept = _kept(record, summary.path, options.exclude_samples)
    _, area_of_run, run_of_region = _region_areas(kept, options.min_gap)
    area_slot = np.full(len(summary.areas), -1, dtype=np.int64)
    for j, slot in enumerate(slots):
        if rec in slot.members:
            area_slot[slot.members[rec]] = j
    area_axis = layout.slot_base[area_slot].astype(np.float64)
    _, grid = _integrate(kept, summary.areas, area_of_run, run_of_region, area_axis, layout,
                         1e6 / summary.aggr_us, time_edges)
    return grid / layout.capacity[None, :]


# ----------------------------------------------------------------------------- statistics

@dataclass
class Stats:
    """A metric over one side's records."""

    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def stdev(self) -> float:
        """Sample standard deviation (n - 1); 0 for a single record."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else 0.0

    @property
    def min(self) -> float:
        return float(np.min(self.values))

    @property
    def max(self) -> float:
        return float(np.max(self.values))


def difference_noise(base: Stats, new: Stats) -> float:
    """The standard error of ``new.mean - base.mean``.

    Welch's sqrt(s_b²/n_b + s_n²/n_n) when both sides have several records; when only one side
    does, its spread stands for both (sqrt(1/n_b + 1/n_n) * s); 0 with single records.
    """
    if base.n > 1 and new.n > 1:
        return math.sqrt(base.stdev ** 2 / base.n + new.stdev ** 2 / new.n)
    if base.n > 1 or new.n > 1:
        s = base.stdev if base.n > 1 else new.stdev
        return s * math.sqrt(1 / base.n + 1 / new.n)
    return 0.0


@dataclass
class MetricChange:
    name: str
    unit: str
    base: Stats
    new: Stats

    @property
    def delta(self) -> float:
        return self.new.mean - self.base.mean

    @property
    def delta_pct(self) -> float | None:
        """Change in percent of the base mean; None when the base is 0 and the new is not."""
        if self.base.mean == 0:
            return 0.0 if self.delta == 0 else None
        return self.delta / abs(self.base.mean) * 100.0

    @property
    def noise(self) -> float:
        return difference_noise(self.base, self.new)


@dataclass
class HeatChange:
    """A range of one slot whose time-averaged access rate changed."""

    slot: int
    offset_start: int                # bytes from the slot's start
    offset_end: int
    base_hz: float                   # byte-weighted mean over the range
    new_hz: float
    base_addr: tuple[int, int] | None     # in the first base record that maps the slot
    new_addr: tuple[int, int] | None      # in the first new record that maps the slot

    @property
    def size(self) -> int:
        return self.offset_end - self.offset_start

    @property
    def delta_hz(self) -> float:
        return self.new_hz - self.base_hz


@dataclass
class Comparison:
    base: list[RecordSummary]
    new: list[RecordSummary]
    options: Options
    thresholds: Thresholds
    metrics: dict[str, MetricChange]
    slots: list[Slot]
    layout: HeatLayout
    base_heat: np.ndarray            # Hz per bin, mean over the side's records
    new_heat: np.ndarray
    heat_changes: list[HeatChange]
    warnings: list[str]
    time_edges: np.ndarray | None = None
    base_grid: np.ndarray | None = None     # Hz per (time row, bin), mean over records
    new_grid: np.ndarray | None = None

    @property
    def nr_base(self) -> int:
        return len(self.base)


def _area_addr(slot: Slot, records: range, summaries: list[RecordSummary], lo: int,
               hi: int) -> tuple[int, int] | None:
    for rec in records:
        if rec in slot.members:
            area = summaries[rec].areas[slot.members[rec]]
            if area.start + lo >= area.end:
                return None
            return area.start + lo, min(area.start + hi, area.end)
    return None


def heat_changes(base_heat: np.ndarray, new_heat: np.ndarray, layout: HeatLayout, slots: list[Slot],
                 summaries: list[RecordSummary], nr_base: int, top: int) -> list[HeatChange]:
    """Runs of bins whose heat changed the same way, ranked by |Δ Hz| x bytes, the top ``top``."""
    delta = new_heat - base_heat
    biggest = float(np.max(np.abs(delta))) if len(delta) else 0.0
    scale = float(max(np.max(base_heat, initial=0.0), np.max(new_heat, initial=0.0)))
    # Rates reached by different float paths (other intervals) may differ in the last bits.
    if biggest <= 1e-9 * scale or top <= 0:
        return []
    sign = np.sign(delta) * (np.abs(delta) >= RANGE_FRACTION * biggest)
    # Where each side maps something: a run ends where either side's mapped area ends.
    within = np.arange(layout.nr_bins) * layout.bin_bytes - layout.slot_base[layout.bin_slot]
    mapped = []
    for records in (range(nr_base), range(nr_base, len(summaries))):
        side_size = np.array([max((summaries[r].areas[s.members[r]].size for r in records if r in s.members),
                                  default=0) for s in slots], dtype=np.int64)
        mapped.append(within < side_size[layout.bin_slot])
    starts_run = np.ones(len(delta), dtype=bool)
    starts_run[1:] = ((sign[1:] != sign[:-1]) | (layout.bin_slot[1:] != layout.bin_slot[:-1])
                      | (mapped[0][1:] != mapped[0][:-1]) | (mapped[1][1:] != mapped[1][:-1])
                      # a step in the change as big as the smallest change a run is made of
                      | (np.abs(np.diff(delta)) >= RANGE_FRACTION * biggest))
    heads = np.flatnonzero(starts_run)
    cap = layout.capacity
    base_mass = np.add.reduceat(base_heat * cap, heads)
    new_mass = np.add.reduceat(new_heat * cap, heads)
    bytes_ = np.add.reduceat(cap, heads)
    run_sign = sign[heads]
    changed = np.flatnonzero((run_sign != 0) & (bytes_ > 0))
    order = changed[np.argsort(-np.abs(new_mass - base_mass)[changed], kind="stable")][:top]
    out = []
    for r in order:
        first = heads[r]
        slot = int(layout.bin_slot[first])
        lo = int(first * layout.bin_bytes - layout.slot_base[slot])
        hi = int(min(lo + bytes_[r], layout.slot_size[slot]))
        out.append(HeatChange(slot, lo, hi, float(base_mass[r] / bytes_[r]), float(new_mass[r] / bytes_[r]),
                              _area_addr(slots[slot], range(nr_base), summaries, lo, hi),
                              _area_addr(slots[slot], range(nr_base, len(summaries)), summaries, lo, hi)))
    return out


# ----------------------------------------------------------------------------- the comparison

def _interval_warnings(base: list[RecordSummary], new: list[RecordSummary]) -> list[str]:
    def intervals(side):
        return sorted({(s.sample_us, s.aggr_us) for s in side}, key=str)

    def text(side):
        return ", ".join(f"sample {'?' if s is None else s} us / aggr {a:g} us" for s, a in intervals(side))

    warnings = []
    if len(set(intervals(base)) | set(intervals(new))) > 1:
        warnings.append(f"monitoring intervals differ (base: {text(base)}; new: {text(new)}): access counts "
                        f"are compared as per-second rates (Hz); WSS still counts regions with "
                        f"nr_accesses >= acc_thres per aggregation interval")
    if any(s.sample_us is None for s in base + new):
        warnings.append(f"some records do not say their sampling interval; {DEFAULT_SAMPLE_US} us is "
                        f"assumed for percentage thresholds")
    return warnings


RecordSource = Union[Record, Callable[[], Record]]


def _load(source: RecordSource) -> Record:
    return source() if callable(source) else source


def compare(base: list[tuple[str, RecordSource]], new: list[tuple[str, RecordSource]],
            options: Options | None = None) -> Comparison:
    """Compare the records of two sides; each side is a list of (path, record) repeated runs.

    A record may be given as a function that loads it: then only one record is in memory at a
    time (records are loaded once, or twice when ``options.time_rows`` asks for heat grids).
    """
    options = options or Options()
    if not base or not new:
        raise DamoError("diff: each side needs at least one record")
    if options.bins < 1 or options.top < 0 or options.exclude_samples < 0:
        raise DamoError("diff: --bins must be positive, --top and --exclude_samples not negative")
    sources = base + new
    nb = len(base)
    thresholds = None
    summaries = []
    for path, source in sources:
        record = _load(source)
        if thresholds is None:
            thresholds = resolve_thresholds(record, options)
        summaries.append(summarize(record, path, options, thresholds))
        del record

    metrics = {name: MetricChange(name, unit, Stats([s.metrics[name] for s in summaries[:nb]]),
                                  Stats([s.metrics[name] for s in summaries[nb:]]))
               for name, unit in METRIC_UNITS.items()}

    slots = align_areas([s.areas for s in summaries])
    layout = heat_layout(slots, options.bins)
    profiles = [rebin_heat(s, i, slots, layout) for i, s in enumerate(summaries)]
    base_heat = np.mean(profiles[:nb], axis=0)
    new_heat = np.mean(profiles[nb:], axis=0)

    time_edges = base_grid = new_grid = None
    if options.time_rows:
        longest = max(s.used_span_s for s in summaries)
        widest = max(s.aggr_us for s in summaries) / 1e6
        # A row no shorter than a snapshot, so no row falls between two snapshots' midpoints.
        rows = max(1, min(options.time_rows, int(longest / widest) if widest > 0 else options.time_rows))
        time_edges = np.linspace(0.0, max(longest, 1e-9), rows + 1)
        grids = [record_grid(_load(source), summaries[i], i, slots, layout, options, time_edges)
                 for i, (_, source) in enumerate(sources)]
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", RuntimeWarning)     # rows without data stay NaN
            base_grid = np.nanmean(np.stack(grids[:nb]), axis=0)
            new_grid = np.nanmean(np.stack(grids[nb:]), axis=0)

    changes = heat_changes(base_heat, new_heat, layout, slots, summaries, nb, options.top)
    warnings = _interval_warnings(summaries[:nb], summaries[nb:])
    unmatched_new = [s for s in slots if not any(r < nb for r in s.members)]
    unmatched_base = [s for s in slots if not any(r >= nb for r in s.members)]
    if unmatched_new:
        warnings.append(f"{len(unmatched_new)} mapped areas of new have no counterpart in base "
                        f"({_fmt_bytes(sum(s.size for s in unmatched_new))})")
    if unmatched_base:
        warnings.append(f"{len(unmatched_base)} mapped areas of base have no counterpart in new "
                        f"({_fmt_bytes(sum(s.size for s in unmatched_base))})")
    return Comparison(summaries[:nb], summaries[nb:], options, thresholds, metrics, slots, layout,
                      base_heat, new_heat, changes, warnings, time_edges, base_grid, new_grid)


def _fmt_bytes(n: int) -> str:
    from damo.fmt import format_sz
    return format_sz(n)
