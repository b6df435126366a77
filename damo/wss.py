"""Working set size distribution: ``damo report wss``.

The working set of a snapshot is the total size of its regions accessed at least ``acc_thres``
times (and at least ``sz_thres`` bytes large). The report prints percentiles of that size over
the record, with damo's text; ``--plot`` draws them with matplotlib.

Analysis follows damo 2.x: the first ``exclude_samples`` snapshots of each target are dropped,
snapshots are re-aggregated into ``work_time`` long ones (damo's ``adjust``), the sizes are
sorted unless ``--sortby time``, and targets are summed index by index unless ``--per_target``.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence

import numpy as np

from damo.errors import DamoError
from damo.fmt import format_sz
from damo.model import Record
from damo.report import load_record
from damo.selection import clip_addresses, nr_skipped

DEFAULT_PERCENTILES = (0, 25, 50, 75, 100)


# --- analysis --------------------------------------------------------------------------------

def region_sizes(record: Record) -> np.ndarray:
    """Every region's size in bytes (int64)."""
    return (record.end - record.start).view(np.int64)      # the same bits as astype, without a copy


def _sum_per_snapshot(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum ``values`` over each snapshot's slice; empty snapshots sum to 0."""
    nr = len(offsets) - 1
    out = np.zeros(nr, dtype=np.int64)
    counts = np.diff(offsets)
    nonempty = np.flatnonzero(counts)
    if len(nonempty):
        out[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty])
    return out


def wss_per_snapshot(record: Record, acc_thres: int = 1, sz_thres: int = 1) -> np.ndarray:
    """The working set size (bytes, int64) of every snapshot, in record order.

    A region counts when ``nr_accesses >= acc_thres`` and its size is ``>= sz_thres``.
    """
    sizes = region_sizes(record)           # a fresh array: zeroed in place where not counted
    counted = record.nr_accesses >= acc_thres
    counted &= sizes >= sz_thres
    np.multiply(sizes, counted, out=sizes)
    return _sum_per_snapshot(sizes, record.offsets)


def work_time_groups(start_ns: np.ndarray, end_ns: np.ndarray, work_time_us: int) -> list[tuple[int, int]]:
    """Split snapshots into consecutive groups lasting at least ``work_time_us`` (damo's adjust).

    A group closes at the first snapshot whose end is ``work_time_us`` after the group's start;
    snapshots after the last closed group are dropped, as damo does.
    """
    threshold = work_time_us * 1000
    starts, ends = start_ns.tolist(), end_ns.tolist()
    groups = []
    first = 0
    for i, end in enumerate(ends):
        if end - starts[first] >= threshold:
            groups.append((first, i + 1))
            first = i + 1
    return groups


def _merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of half-open intervals as sorted, disjoint, non-touching intervals."""
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return starts, ends
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    new = np.ones(len(starts), dtype=bool)
    new[1:] = starts[1:] > reach[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:], len(starts)) - 1
    return starts[first], reach[last]


def _range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``max(values[lo[i]:hi[i]])`` for every i with ``lo[i] < hi[i]`` (others are garbage)."""
    if not len(lo):
        return np.zeros(0, dtype=values.dtype)
    padded = np.append(values, values[:1] if len(values) else np.zeros(1, values.dtype))
    bounds = np.empty(2 * len(lo), dtype=np.int64)
    bounds[0::2] = lo
    bounds[1::2] = hi
    bounds = np.minimum(bounds, len(values))
    return np.maximum.reduceat(padded, bounds)[0::2]


def aggregated_wss(record: Record, first: int, stop: int, acc_thres: int = 1, sz_thres: int = 1) -> int:
    """WSS of snapshots ``first:stop`` aggregated into one, the way damo's adjust merges them.

    The aggregated regions are the first snapshot's regions plus, from each later snapshot, the
    parts of its regions not covered yet. Each aggregated region's access count is its own plus,
    for every later snapshot, the highest count among that snapshot's regions overlapping it.
    Assumes each snapshot's regions are sorted and disjoint (DAMON's are).
    """
    piece_start = np.zeros(0, dtype=np.uint64)
    piece_end = np.zeros(0, dtype=np.uint64)
    piece_acc = np.zeros(0, dtype=np.int64)
    cover_start, cover_end = piece_start, piece_end
    for s in range(first, stop):
        lo_r, hi_r = int(record.offsets[s]), int(record.offsets[s + 1])
        rs, re = record.start[lo_r:hi_r], record.end[lo_r:hi_r]
        acc = record.nr_accesses[lo_r:hi_r]
        if len(piece_start) and len(rs):
            lo = np.searchsorted(re, piece_start, side="right")
            hi = np.searchsorted(rs, piece_end, side="left")
            hit = lo < hi
            best = _range_max(acc, lo, hi)
            piece_acc = piece_acc + np.where(hit, np.maximum(best, 0), 0)
        # parts of this snapshot's regions outside everything seen so far become new pieces
        gap_start = np.concatenate([[np.uint64(0)], cover_end]).astype(np.uint64)
        gap_end = np.concatenate([cover_start, [np.uint64(2**64 - 1)]]).astype(np.uint64)
        lo = np.searchsorted(gap_end, rs, side="right")
        hi = np.searchsorted(gap_start, re, side="left")
        n = np.maximum(hi - lo, 0)
        region_idx = np.repeat(np.arange(len(rs)), n)
        gap_idx = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
        new_start = np.maximum(rs[region_idx], gap_start[gap_idx])
        new_end = np.minimum(re[region_idx], gap_end[gap_idx])
        ok = new_end > new_start
        if ok.any():
            piece_start = np.concatenate([piece_start, new_start[ok]])
            piece_end = np.concatenate([piece_end, new_end[ok]])
            piece_acc = np.concatenate([piece_acc, acc[region_idx[ok]]])
            order = np.argsort(piece_start, kind="stable")
            piece_start, piece_end, piece_acc = piece_start[order], piece_end[order], piece_acc[order]
        cover_start, cover_end = _merge_intervals(np.concatenate([cover_start, rs]),
                                                  np.concatenate([cover_end, re]))
    sizes = (piece_end - piece_start).astype(np.int64)
    return int(sizes[(piece_acc >= acc_thres) & (sizes >= sz_thres)].sum())


def target_wss(record: Record, acc_thres: int = 1, sz_thres: int = 1, exclude_samples: int = 20,
               work_time_us: int = 1) -> np.ndarray:
    """WSS over time of a single-target record, after damo's skip and re-aggregation."""
    n = record.nr_snapshots
    skip = nr_skipped(n, exclude_samples)
    groups = work_time_groups(record.start_ns[skip:], record.end_ns[skip:], work_time_us)
    if not groups:
        return np.zeros(0, dtype=np.int64)
    firsts = np.array([g[0] for g in groups]) + skip
    stops = np.array([g[1] for g in groups]) + skip
    single = stops - firsts == 1
    out = np.empty(len(groups), dtype=np.int64)
    if single.any():
        per_snapshot = wss_per_snapshot(record, acc_thres, sz_thres)
        out[single] = per_snapshot[firsts[single]]
    for i in np.flatnonzero(~single):
        out[i] = aggregated_wss(record, int(firsts[i]), int(stops[i]), acc_thres, sz_thres)
    return out


def wss_distributions(record: Record, acc_thres: int = 1, sz_thres: int = 1, exclude_samples: int = 20,
                      work_time_us: int = 1, sort: bool = True,
                      collapse_targets: bool = True) -> dict[int, np.ndarray]:
    """damo's WSS distributions: ``{target_id: sizes}``, or ``{0: summed sizes}`` when collapsed.

    Sizes are sorted ascending (per target, before collapsing) when ``sort``; otherwise they are
    in time order.
    """
    dists: dict[int, np.ndarray] = {}
    for tid, rec in record.split_targets():
        dist = target_wss(rec, acc_thres, sz_thres, exclude_samples, work_time_us)
        dists[tid] = np.sort(dist) if sort else dist
    if not collapse_targets:
        return dists
    total = np.zeros(max((len(d) for d in dists.values()), default=0), dtype=np.int64)
    for dist in dists.values():
        total[:len(dist)] += dist
    return {0: total}


def percentile_indices(length: int, percentiles: Iterable[int]) -> np.ndarray:
    """damo's percentile rule: index ``int(p / 100 * length)``, clamped to the last element."""
    idx = np.array([int(p / 100.0 * length) for p in percentiles], dtype=np.int64)
    return np.clip(idx, 0, max(length - 1, 0))


def percentile_values(dist: np.ndarray, percentiles: Iterable[int]) -> np.ndarray:
    """Values of a sorted distribution at the given percentiles (damo's index rule)."""
    dist = np.asarray(dist)
    if not len(dist):
        return np.zeros(0, dtype=dist.dtype)
    return dist[percentile_indices(len(dist), percentiles)]


def wss_percentiles(record: Record, percentiles: Sequence[int] = DEFAULT_PERCENTILES, acc_thres: int = 1,
                    sz_thres: int = 1, exclude_samples: int = 20, work_time_us: int = 1,
                    collapse_targets: bool = True) -> dict[int, np.ndarray]:
    """``{target_id: WSS in bytes at each percentile}``, exactly what ``damo report wss`` prints."""
    dists = wss_distributions(record, acc_thres, sz_thres, exclude_samples, work_time_us, True,
                              collapse_targets)
    return {tid: percentile_values(d, percentiles) for tid, d in dists.items()}


# --- rendering -------------------------------------------------------------------------------

def format_distribution(metric: str, dist: np.ndarray, percentiles: Sequence[int], all_values: bool,
                        raw_number: bool, nr_cols_bar: int = 59) -> str:
    """damo's percentile table with an average line and a star bar per row."""
    lines = [f"# <percentile> <{metric}>"]
    if not len(dist):
        lines.append("# no snapshot")
        return "\n".join(lines)
    values = [int(v) for v in dist.tolist()]
    lines.append("# avr:\t%s" % format_sz(sum(values) / len(values), raw_number))
    if all_values:
        lines.extend("%s %s" % (i, format_sz(v, raw_number)) for i, v in enumerate(values))
        return "\n".join(lines)
    shown = [values[i] for i in percentile_indices(len(values), percentiles).tolist()]
    per_col = 1
    if nr_cols_bar > 0:
        top = max(shown, default=0)
        per_col = top / nr_cols_bar if top > 0 else 1
    for p, v in zip(percentiles, shown):
        line = "%3d %15s" % (p, format_sz(v, raw_number))
        if nr_cols_bar > 0:
            cols = int(v / per_col)
            line += " |%s%s|" % ("*" * cols, " " * (nr_cols_bar - cols))
        lines.append(line)
    return "\n".join(lines)


def format_wss(dists: dict[int, np.ndarray], percentiles: Sequence[int], all_wss: bool = False,
               raw_number: bool = False, nr_cols_bar: int = 59) -> str:
    """The whole ``damo report wss`` text."""
    blocks = []
    for tid, dist in dists.items():
        blocks.append("# target_id\t%s\n%s" % (tid, format_distribution("wss", dist, percentiles, all_wss,
                                                                          raw_number, nr_cols_bar)))
    return "\n".join(blocks)


def wss_json(dists: dict[int, np.ndarray], percentiles: Sequence[int], all_wss: bool) -> dict:
    targets = []
    for tid, dist in dists.items():
        values = [int(v) for v in dist.tolist()]
        entry = {"target_id": tid, "nr_snapshots": len(values),
                 "average": sum(values) / len(values) if values else None}
        if all_wss:
            entry["wss"] = values
        else:
            entry["percentiles"] = {str(p): int(v) for p, v in zip(percentiles,
                                                                   percentile_values(dist, percentiles).tolist())}
        targets.append(entry)
    return {"unit": "bytes", "targets": targets}


def plot_wss(path: str, dists: dict[int, np.ndarray], percentiles: Sequence[int], all_wss: bool,
             sort: bool, title: str) -> None:
    from damo.plot import plot_distributions

    series = {}
    for tid, dist in dists.items():
        if all_wss:
            xs = np.arange(len(dist))
            ys = np.asarray(dist)
        else:
            xs = np.asarray(list(percentiles))
            ys = percentile_values(dist, percentiles) if len(dist) else np.zeros(0)
            xs = xs[:len(ys)]
        series[f"target {tid}"] = (xs, ys)
    xlabel = "percentile" if sort else "runtime (percent)"
    if all_wss:
        xlabel = "snapshot (sorted by size)" if sort else "snapshot"
    plot_distributions(path, series, xlabel, "working set size", title, y_bytes=True)


# --- command line ----------------------------------------------------------------------------

MAX_PERCENTILES = 101
MAX_COLS_BAR = 1000

def run(args: argparse.Namespace) -> int:

    start, stop, step = args.range
    if step == 0:
        raise DamoError("--range: step must not be zero")
    if not (0 <= start <= 100 and -1 <= stop <= 101) or abs((stop - start) // step) > MAX_PERCENTILES:
        raise DamoError(f"--range: percentiles are 0..100, at most {MAX_PERCENTILES} of them")
    if not 0 <= args.nr_cols_bar <= MAX_COLS_BAR:
        raise DamoError(f"--nr_cols_bar: {args.nr_cols_bar} is outside 0..{MAX_COLS_BAR}")
    percentiles = list(range(start, stop, step))
    sort = args.sortby != "time"
    record = load_record(args.input, columns=("start", "end", "nr_accesses"))      # no ages
    if args.address_range:
        record = clip_addresses(record, args.address_range)
    dists = wss_distributions(record, args.acc_thres, args.sz_thres, args.exclude_samples, args.work_time,
                              sort, args.collapse_targets)
    if args.plot:
        plot_wss(args.plot, dists, percentiles, args.all_wss, sort, f"working set size: {args.input}")
        return 0
    if args.json:
        print(json.dumps(wss_json(dists, percentiles, args.all_wss), indent=2))
        return 0
    print(format_wss(dists, percentiles, args.all_wss, args.raw_number, args.nr_cols_bar))
    return 0
