"""How well a record matches the ground truth of the masim model it was recorded from.

Three measures, all pure numpy over the columnar record:

- WSS at percentiles, the way damo's ``report wss`` computes it: per snapshot, the total
  size of the regions with ``nr_accesses >= 1``; drop the first 20 snapshots; sort; take
  index ``int(p/100*len)``. The truth gets the same treatment, from the model's true WSS of
  each aggregation window.
- A heatmap at damo's stdout resolution (40 time rows x 80 address columns) of the
  per-sample access frequency (``nr_accesses / max_nr_accesses``) over the config's regions,
  against the model's per-page access probability per sampling interval; the cell error.
- Region counts against ``[min_nr_regions, max_nr_regions]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from damo.model import Record

WSS_PERCENTILES = (25, 50, 75)
EXCLUDE_SNAPSHOTS = 20          # damo report wss --exclude_samples default
HEATMAP_ROWS, HEATMAP_COLS = 40, 80


def snapshot_wss(record: Record, acc_thres: int = 1) -> np.ndarray:
    """Per snapshot: bytes of the regions accessed at least ``acc_thres`` times."""
    sizes = (record.end - record.start).astype(np.int64)
    hot = np.where(record.nr_accesses >= acc_thres, sizes, 0)
    return np.bincount(record.snapshot_index(), weights=hot, minlength=record.nr_snapshots).astype(np.int64)


def damo_percentiles(values: np.ndarray, percentiles=WSS_PERCENTILES,
                     exclude: int = EXCLUDE_SNAPSHOTS) -> dict[int, int]:
    """damo's percentile pick: skip ``exclude`` leading values, sort, index ``int(p/100*len)``."""
    kept = np.sort(np.asarray(values)[exclude:])
    if len(kept) == 0:
        return {p: 0 for p in percentiles}
    return {p: int(kept[min(int(p / 100 * len(kept)), len(kept) - 1)]) for p in percentiles}


def record_heatmap(record: Record, t0: int, t1: int, a0: int, a1: int,
                   rows: int = HEATMAP_ROWS, cols: int = HEATMAP_COLS) -> np.ndarray:
    """Mean ``nr_accesses`` over each (time, address) cell, weighted by overlap.

    Time cells come from the snapshots' [start, end) spans; address cells from the regions.
    Space nobody monitored counts as 0.
    """
    t_edges = np.linspace(t0, t1, rows + 1)
    a_edges = np.linspace(a0, a1, cols + 1)
    start = record.start.astype(np.float64)
    end = record.end.astype(np.float64)
    heat = np.zeros((rows, cols))
    if record.nr_snapshots == 0:
        return heat
    # [snapshot, time cell]: ns of overlap
    s_ns = record.start_ns.astype(np.float64)[:, None]
    e_ns = record.end_ns.astype(np.float64)[:, None]
    t_overlap = np.clip(np.minimum(e_ns, t_edges[None, 1:]) - np.maximum(s_ns, t_edges[None, :-1]), 0, None)
    # [snapshot, address cell]: sum over its regions of nr_accesses * bytes of overlap, in
    # blocks of regions so that the [regions, cells] scratch stays small
    by_snapshot = np.zeros((record.nr_snapshots, cols))
    snap_of = record.snapshot_index()
    block = max(1, (1 << 22) // cols)
    for lo in range(0, len(start), block):
        hi = lo + block
        overlap = np.clip(np.minimum(end[lo:hi, None], a_edges[None, 1:])
                          - np.maximum(start[lo:hi, None], a_edges[None, :-1]), 0, None)
        weighted = overlap * record.nr_accesses[lo:hi, None]
        np.add.at(by_snapshot, snap_of[lo:hi], weighted)
    heat = t_overlap.T @ by_snapshot
    cell = (t_edges[1] - t_edges[0]) * (a_edges[1] - a_edges[0])
    return heat / cell


@dataclass
class Accuracy:
    """One record against its truth."""

    wss_record: dict[int, int]
    wss_truth: dict[int, int]
    heatmap_mean_abs_error: float       # in access frequency per sample, 0..1
    heatmap_relative_error: float       # sum |record - truth| / sum truth
    nr_regions_min: int
    nr_regions_max: int
    nr_regions_bounds: tuple[int, int]
    extra: dict = field(default_factory=dict)

    def wss_error(self, p: int) -> float:
        """Relative error of the p-th percentile WSS (0.05 is 5 % too high)."""
        truth = self.wss_truth[p]
        return (self.wss_record[p] - truth) / truth if truth else float(self.wss_record[p] != 0)

    @property
    def nr_regions_within_bounds(self) -> bool:
        lo, hi = self.nr_regions_bounds
        return lo <= self.nr_regions_min and self.nr_regions_max <= hi


def compare(record: Record, model, skip_first: int = 1) -> Accuracy:
    """Measure ``record`` (one sim target) against ``model``'s ground truth.

    ``skip_first`` snapshots are left out of the region-count bounds: before the first
    aggregation DAMON has only its initial regions.
    """
    meta = record.meta
    aggr_ns = meta.aggr_us * 1000
    max_nr = meta.max_nr_accesses or 1
    wss = snapshot_wss(record)
    _, truth_series = model.true_wss_series(aggr_ns)
    truth_series = truth_series[:record.nr_snapshots]
    # damo skips the first 20 snapshots; a record that short would have nothing left
    exclude = EXCLUDE_SNAPSHOTS if record.nr_snapshots > 2 * EXCLUDE_SNAPSHOTS else 0

    a0 = min(s for s, _ in model.region_ranges.values())
    a1 = max(e for _, e in model.region_ranges.values())
    t0, t1 = int(record.start_ns[0]), int(record.end_ns[-1])
    freq = record_heatmap(record, t0, t1, a0, a1) / max_nr
    truth = model.truth_heatmap(t0, t1, a0, a1, HEATMAP_ROWS, HEATMAP_COLS, sample_ns=meta.sample_us * 1000)
    diff = np.abs(freq - truth)
    counts = record.regions_per_snapshot()[skip_first:]
    return Accuracy(
        wss_record=damo_percentiles(wss, exclude=exclude),
        wss_truth=damo_percentiles(truth_series, exclude=exclude),
        heatmap_mean_abs_error=float(diff.mean()),
        heatmap_relative_error=float(diff.sum() / truth.sum()) if truth.sum() else float(diff.sum() > 0),
        nr_regions_min=int(counts.min()) if len(counts) else 0,
        nr_regions_max=int(counts.max()) if len(counts) else 0,
        nr_regions_bounds=(meta.min_nr_regions or 0, meta.max_nr_regions or 0),
        extra={"excluded_snapshots": exclude, "nr_snapshots": record.nr_snapshots})


@dataclass
class HeatmapHzError:
    """``report heatmap`` (damo 3.x math, Hz) against the model's true access rate, per cell."""

    median_abs_hz: float        # median of |heatmap - truth| over the cells either calls accessed
    worst_abs_hz: float         # the worst cell
    peak_truth_hz: float        # the hottest true cell, for scale
    default_range_worst_abs_hz: float   # the worst cell over damo's default time range (from -age)


def heatmap_hz_error(record: Record, model, rows: int = HEATMAP_ROWS, cols: int = HEATMAP_COLS) -> HeatmapHzError:
    """Compare ``damo report heatmap``'s pixel heats in Hz with the truth, cell by cell.

    The truth of a cell is the model's per-page probability of an access in one sampling
    interval divided by the sampling interval: the access rate DAMON's ``nr_accesses`` in Hz
    estimates. Two time ranges: the record's own span, and damo's default (the guide's, which
    starts ``age`` aggregations before the first snapshot, where the workload did not run yet).
    """
    from damo import heatmap

    meta = record.meta
    sample_s = meta.sample_us / 1e6
    targets = [heatmap.TargetRecord(0, 0, None, int(record.target_id[0]), meta.aggr_us, meta.sample_us, record,
                                    int(record.start_ns[0]), "record")]
    a0 = min(s for s, _ in model.region_ranges.values())
    a1 = max(e for _, e in model.region_ranges.values())
    errors = []
    for t0 in (int(record.start_ns[0]), heatmap.oldest_monitor_time(targets[0])):
        t1 = int(record.end_ns[-1])
        hm = heatmap.heatmap3(targets, (t0, t1), (a0, a1), (rows, cols))
        tunit, aunit = hm.tunit, hm.aunit
        truth = model.truth_heatmap(t0, t0 + tunit * rows, a0, a0 + aunit * cols, rows, cols,
                                    sample_ns=meta.sample_us * 1000) / sample_s
        # the workload starts at the record's start: nothing is accessed before it
        row_start = t0 + tunit * np.arange(rows)
        running = np.clip((row_start + tunit - int(record.start_ns[0])) / tunit, 0, 1)
        truth = truth * running[:, None]
        errors.append((np.abs(np.where(hm.touched, hm.heats, 0) - truth), truth, hm))
    (own, truth, hm), (default, _, _) = errors
    active = (truth > 0) | (np.where(hm.touched, hm.heats, 0) > 0)
    return HeatmapHzError(float(np.median(own[active])) if active.any() else 0.0, float(own.max()),
                          float(truth.max()), float(default.max()))
