"""Access heatmaps: ``damo report heats`` (damo 2.x) and ``damo report heatmap`` (3.x name).

A heatmap is a grid of pixels: rows are time, columns are addresses, and a pixel's heat is the
access frequency (samples per aggregation interval) averaged over its time x address area::

    heat = sum(samples * overlap_ns * overlap_bytes) / (tunit * aunit)

The math is damo 2.x's, bit for bit: units are floored to integers and the range end is moved to
``start + unit * resolution``; the first snapshot is skipped; a pixel's heat is updated one
region fragment at a time with damo's float rounding, so the raw triples print the very floats
damo prints. The default area is the guide's: the whole recorded time and the contiguous address
area with the highest heat per byte. ``--all`` draws every area as a band, gaps collapsed.

Analysis is numpy without Python loops over regions: every region is cut into per-column
fragments and every snapshot into per-row fragments, the cross products become (pixel, value)
contributions, and those are applied per pixel in damo's order in vectorised rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from damo.colors import COLORSETS, RESET, color_code, use_color  # noqa: F401 (also for access.py)
from damo.errors import DamoError
from damo.fmt import format_sz, format_time_ns
from damo.model import Record
from damo.selection import select_target

MAX_DIGIT = 9
# rough costs, only to choose between two exact ways of applying contributions (apply_in_order)
SECONDS_PER_ROUND = 6e-6
SECONDS_PER_PYTHON_STEP = 0.2e-6
# Regions are cut into pixel contributions a run at a time (small runs keep the temporaries in
# reused memory: 64 K regions used a third less memory than 512 K and no more time), and the
# contributions are applied a buffer at a time: apply_in_order needs one round per contribution
# of its deepest pixel, so a buffer spanning more snapshots needs fewer rounds in all (1 M
# contributions was the fastest of 256 K-4 M at 6 M regions).
CHUNK_REGIONS = 1 << 16
BUFFER_CONTRIBUTIONS = 1 << 20


# --- the guide: time span and contiguous address areas of each target ------------------------

@dataclass
class Guide:
    """damo's guide for one target: recorded time span and the contiguous areas it saw."""

    target_id: int
    start_time: int
    end_time: int
    areas: list[tuple[int, int]]
    heats: list[int | None]        # sum of size * samples of the accessed regions touching the area

    def total_space(self) -> int:
        return sum(end - start for start, end in self.areas)

    def heat_per_byte(self, i: int) -> float:
        start, end = self.areas[i]
        if self.heats[i] is None or end == start:
            return 0
        return float(self.heats[i]) / (end - start)

    def hottest_area(self) -> tuple[int, int]:
        """The area with the highest heat per byte (the first one among equals)."""
        keys = [self.heat_per_byte(i) for i in range(len(self.areas))]
        return self.areas[keys.index(max(keys))]


def _last_truthy_run_extreme(values: np.ndarray, pick_min: bool) -> int:
    """damo's running min/max that treats 0 as 'not set yet': after a 0 the next value wins."""
    if values.min() != 0:           # no 0 at all (the usual case): one pass, no temporary
        return int(values.min() if pick_min else values.max())
    zeros = np.flatnonzero(values == 0)
    if len(zeros):
        last_zero = int(zeros[-1])
        if last_zero == len(values) - 1:
            return 0
        values = values[last_zero + 1:]
    return int(values.min() if pick_min else values.max())


def _narrow_gaps(gs: np.ndarray, ge: np.ndarray, ss: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Narrow each known gap by the snapshot gaps it touches, in list order (damo's rule)."""
    if len(ss) and np.all(ss <= se) and np.all(ss[1:] > se[:-1]):
        # sorted, disjoint snapshot gaps: a known gap touches at most the first candidate
        j = np.searchsorted(se, gs, side="left")
        jc = np.minimum(j, len(ss) - 1)
        hit = (j < len(ss)) & (ss[jc] <= ge)
        return np.where(hit, np.maximum(gs, ss[jc]), gs), np.where(hit, np.minimum(ge, se[jc]), ge)
    out_s, out_e = gs.tolist(), ge.tolist()
    pairs = list(zip(ss.tolist(), se.tolist()))
    for i in range(len(out_s)):
        a, b = out_s[i], out_e[i]
        for c, d in pairs:
            if not (b < c or d < a):
                a, b = max(a, c), min(b, d)
        out_s[i], out_e[i] = a, b
    return np.array(out_s, dtype=np.uint64), np.array(out_e, dtype=np.uint64)


def guide_of(rec: Record, target_id: int, lone_area_heat: bool = True) -> Guide:
    """The guide of a single-target record. ``lone_area_heat=False``: a record with a single area
    gets no heat for it ([None]); heats only rank areas, and they are the dearest part of a guide."""
    starts, ends = rec.start, rec.end
    lowest = _last_truthy_run_extreme(starts, True)
    highest = _last_truthy_run_extreme(ends, False)

    # gaps between consecutive regions of a snapshot (damo skips a previous end of 0): first the
    # few places where a region does not start at the previous one's end, then only those are
    # checked for being a snapshot's first region
    after = np.flatnonzero(ends[:-1] != starts[1:]) + 1
    after_snap = np.searchsorted(rec.offsets, after, side="right") - 1
    is_gap = (rec.offsets[after_snap] != after) & (ends[after - 1] != 0)
    gap_start, gap_end = ends[after[is_gap] - 1], starts[after[is_gap]]
    gap_snap = after_snap[is_gap]
    counts = np.bincount(gap_snap, minlength=rec.nr_snapshots)
    goff = np.zeros(rec.nr_snapshots + 1, dtype=np.int64)
    np.cumsum(counts, out=goff[1:])
    # a snapshot with the same gaps as the one before cannot narrow anything further
    same = np.zeros(rec.nr_snapshots, dtype=bool)
    if rec.nr_snapshots > 1 and len(gap_start):
        pos = np.arange(len(gap_start))
        shift = counts[gap_snap]
        prev_ok = (gap_snap > 0) & (counts[np.maximum(gap_snap - 1, 0)] == shift) & (pos - shift >= 0)
        prev = np.maximum(pos - shift, 0)
        equal = prev_ok & (gap_start[prev] == gap_start) & (gap_end[prev] == gap_end)
        nonempty = np.flatnonzero(counts)
        all_equal = np.logical_and.reduceat(equal, goff[:-1][nonempty])
        same[nonempty] = all_equal
        same[0] = False
    known_s = known_e = np.zeros(0, dtype=np.uint64)
    for s in np.flatnonzero(counts > 0):
        ss, se = gap_start[goff[s]:goff[s + 1]], gap_end[goff[s]:goff[s + 1]]
        if not len(known_s):
            known_s, known_e = ss, se
        elif not same[s]:
            known_s, known_e = _narrow_gaps(known_s, known_e, ss, se)

    area_s = [lowest] + known_e.tolist()
    area_e = known_s.tolist() + [highest]
    if len(area_s) == 1 and not lone_area_heat:
        heats = [None]
    else:
        heats = _area_heats(rec, np.array(area_s, dtype=np.uint64), np.array(area_e, dtype=np.uint64))
    return Guide(target_id, int(rec.end_ns[0]), int(rec.end_ns[-1]), list(zip(area_s, area_e)), heats)


def _nondecreasing(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] >= values[:-1]))


def _area_heats(rec: Record, area_s: np.ndarray, area_e: np.ndarray) -> list[int | None]:
    """Per area: sum of size * samples of the regions with samples != 0 touching it (ends count)."""
    accessed = np.flatnonzero(rec.nr_accesses)       # a minority of regions, usually
    rs, re, acc = rec.start[accessed], rec.end[accessed], rec.nr_accesses[accessed]
    if not (_nondecreasing(area_s) and _nondecreasing(area_e)):
        return _area_heats_one_by_one(rs, re, acc, area_s, area_e)
    k = len(area_s)
    lo = np.searchsorted(area_e, rs, side="left")       # first area ending at or after the start
    hi = np.maximum(np.searchsorted(area_s, re, side="right"), lo)
    touched = np.zeros(k + 1, dtype=np.int64)
    np.add.at(touched, lo, 1)
    np.add.at(touched, hi, -1)
    sizes = (re - rs).astype(np.int64)
    if float(np.abs(sizes.astype(np.float64) * acc).sum()) < 2.0 ** 62:
        weights = sizes * acc
        diff = np.zeros(k + 1, dtype=np.int64)
    else:       # sums that might not fit 64 bits: Python integers
        weights = sizes.astype(object) * acc.astype(object)
        diff = np.zeros(k + 1, dtype=object)
    np.add.at(diff, lo, weights)
    np.add.at(diff, hi, -weights)
    return [int(t) if n > 0 else None for t, n in zip(np.cumsum(diff)[:k].tolist(),
                                                      np.cumsum(touched)[:k].tolist())]


def _area_heats_one_by_one(rs, re, acc, area_s, area_e) -> list[int | None]:
    """The same sums for areas that are not in address order (odd records)."""
    weights = (re - rs).astype(object) * acc.astype(object)
    out = []
    for a, b in zip(area_s.tolist(), area_e.tolist()):
        hit = ~((re < np.uint64(a)) | (np.uint64(b) < rs))
        out.append(int(weights[hit].sum()) if hit.any() else None)
    return out


def guides(record: Record) -> list[Guide]:
    """The guide of every target, largest total space first (damo's order)."""
    out = [guide_of(rec, tid) for tid, rec in record.split_targets() if rec.nr_snapshots]
    return sorted(out, key=lambda g: g.total_space(), reverse=True)


def format_guides(gs: list[Guide]) -> str:
    lines = []
    for g in gs:
        lines.append("target_id:%d" % g.target_id)
        lines.append("time: %d-%d (%s)" % (g.start_time, g.end_time, format_time_ns(g.end_time - g.start_time)))
        for i, (start, end) in enumerate(g.areas):
            lines.append("region\t%2d: %020d-%020d (%s)" % (i, start, end, format_sz(end - start)))
    return "\n".join(lines)


def guides_json(gs: list[Guide]) -> list[dict]:
    return [{"target_id": g.target_id, "start_time": g.start_time, "end_time": g.end_time,
             "areas": [{"start": s, "end": e, "heats": h, "heat_per_byte": g.heat_per_byte(i)}
                       for i, ((s, e), h) in enumerate(zip(g.areas, g.heats))],
             "hottest_area": list(g.hottest_area())} for g in gs]


# --- pixel heats ------------------------------------------------------------------------------

def _expand(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For inclusive ranges first..last: (owner index, value) of every member, in order."""
    n = last - first + 1
    owner = np.repeat(np.arange(len(first)), n)
    value = np.repeat(first - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
    return owner, value


def _time_fragments(ts: np.ndarray, te: np.ndarray, tmin: int, tunit: int, tres: int):
    """Cut snapshots [ts, te) into per-row pieces: (snapshot, row, duration_ns), damo's order."""
    idx = np.flatnonzero(ts < te)
    ts, te = ts[idx], te[idx]
    first = np.trunc((ts - tmin).astype(np.float64) / float(tunit)).astype(np.int64)
    last = np.maximum(first, -((tmin - te) // tunit) - 1)
    owner, row = _expand(first, last)
    begin = np.where(row == first[owner], ts[owner], tmin + row * tunit)
    end = np.minimum(tmin + (row + 1) * tunit, te[owner])
    # Rows before the range are dropped. damo 2.6.4 indexes a Python list with them instead,
    # so their heat wraps into the last rows, or it crashes when they are more than tres rows
    # early; a snapshot straddling the range start still lands whole in row 0, as in damo.
    keep = row >= 0
    return idx[owner][keep], row[keep], (end - begin)[keep]


def _address_fragments(reg_start: np.ndarray, reg_end: np.ndarray, amin: int, aunit: int, ares: int):
    """Cut regions into per-column pieces, in damo's order.

    Returns (indices of the regions inside the range, their fragment counts, column and bytes of
    every fragment). Integer floor division stands in for damo's float one; they agree while
    addresses stay below 2**53 and a column is under 16 TiB.
    """
    amin_u, amax_u = np.uint64(amin), np.uint64(amin + aunit * ares)
    s = np.maximum(reg_start, amin_u)
    e = np.minimum(reg_end, amax_u)
    inside = np.flatnonzero(s < e)
    if len(inside) < len(s):
        s, e = s[inside], e[inside]
    rel_s = (s - amin_u).view(np.int64)
    rel_e = (e - amin_u).view(np.int64)
    first = rel_s // aunit
    last = (rel_e - 1) // aunit
    n = last - first + 1
    total = int(n.sum())
    if total == len(n):             # no region crosses a column boundary
        return inside, n, first, rel_e - rel_s
    pos = np.cumsum(n) - n
    col = np.repeat(first - pos, n) + np.arange(total)
    nbytes = np.full(total, aunit, dtype=np.int64)          # inner fragments fill their column
    nbytes[pos] = np.minimum((first + 1) * aunit, rel_e) - rel_s
    multi = np.flatnonzero(n > 1)
    nbytes[pos[multi] + n[multi] - 1] = rel_e[multi] - last[multi] * aunit
    return inside, n, col, nbytes


def stable_order(keys: np.ndarray, bound: int) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for integers in [0, bound), as 16-bit radix sorts:
    numpy sorts 16-bit keys by radix, other widths by merging, which is several times slower."""
    if bound <= 1 << 16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    if bound > 1 << 32:
        return np.argsort(keys, kind="stable")
    order = np.argsort(keys.astype(np.uint16), kind="stable")          # the low 16 bits
    high = (keys[order] >> 16).astype(np.uint16)
    return order[np.argsort(high, kind="stable")]


def apply_in_order(heat: np.ndarray, key: np.ndarray, value: np.ndarray, pixel_sz: float) -> None:
    """heat[k] = (value + heat[k] * pixel_sz) / pixel_sz for each contribution, in the given order.

    Contributions are grouped per pixel (stable sort), pixels ordered deepest first, so that
    round r updates the r-th contribution of every pixel that has one with a few in-place numpy
    calls on a contiguous prefix. A few very deep pixels (a tiny --resol) would need as many
    rounds as they have contributions: those are updated one float at a time instead.
    """
    n = len(key)
    if not n:
        return
    low = int(key.min())        # a buffer spans a few rows: its key range often fits 16 bits
    order = stable_order(key - low, int(key.max()) - low + 1)
    key = key[order]
    value = value[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n))
    pixels = key[starts]
    if counts.max() == 1:
        heat[pixels] = (value + heat[pixels] * pixel_sz) / pixel_sz
        return
    by_depth = stable_order(counts.max() - counts, int(counts.max()) + 1)
    starts, counts, pixels = starts[by_depth], counts[by_depth], pixels[by_depth]
    # rounds left after moving the i deepest pixels to Python, against their Python steps
    python_steps = np.concatenate([[0], np.cumsum(counts)])
    cost = python_steps * SECONDS_PER_PYTHON_STEP + np.append(counts, 0) * SECONDS_PER_ROUND
    nr_python = int(np.argmin(cost))
    for p, first, count in zip(pixels[:nr_python].tolist(), starts[:nr_python].tolist(),
                               counts[:nr_python].tolist()):
        h = float(heat[p])
        for v in value[first:first + count].tolist():
            h = (v + h * pixel_sz) / pixel_sz
        heat[p] = h
    starts, counts, pixels = starts[nr_python:], counts[nr_python:], pixels[nr_python:]
    if not len(counts):
        return
    h = heat[pixels]
    at = starts.copy()          # each pixel's next contribution
    active = np.searchsorted(-counts, -np.arange(int(counts[0])), side="left")     # pixels deeper than r
    for m in active.tolist():
        hm = h[:m]
        hm *= pixel_sz
        hm += value[at[:m]]
        hm /= pixel_sz
        at[:m] += 1
    heat[pixels] = h


class ContributionBuffer:
    """Pixel contributions queued in their order, applied to ``heat`` (apply_in_order) a
    buffer at a time; ``flush`` applies what is left."""

    def __init__(self, heat: np.ndarray, pixel_sz: float, size: int = BUFFER_CONTRIBUTIONS):
        self.heat, self.pixel_sz, self.size = heat, pixel_sz, size
        self.key = np.empty(size, dtype=np.int64)       # untouched pages cost nothing
        self.value = np.empty(size)
        self.used = 0

    def push(self, key: np.ndarray, value: np.ndarray) -> None:
        n = len(key)
        if self.used + n > self.size:
            self.flush()
        if n > self.size:
            apply_in_order(self.heat, key, value, self.pixel_sz)
            return
        self.key[self.used:self.used + n] = key
        self.value[self.used:self.used + n] = value
        self.used += n

    def flush(self) -> None:
        n, self.used = self.used, 0
        apply_in_order(self.heat, self.key[:n], self.value[:n], self.pixel_sz)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ranges starts[i] .. starts[i] + counts[i]."""
    return np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))


def pixel_heats(snap_start: np.ndarray, snap_end: np.ndarray, reg_snap: np.ndarray, reg_start: np.ndarray,
                reg_end: np.ndarray, reg_acc: np.ndarray, tmin: int, tunit: int, tres: int, amin: int,
                aunit: int, ares: int) -> np.ndarray:
    """The (tres, ares) heat grid of the given snapshots, with damo 2.x's arithmetic.

    ``reg_snap`` maps every region to its snapshot (ascending). The caller drops the first
    snapshot of the record, as damo does.

    A region's contributions are its column fragments times its snapshot's row fragments. Only
    the order of contributions to the same pixel matters, and that is (snapshot, region) order
    however the regions are chunked, so regions are processed in bounded chunks.
    """
    tmax = tmin + tunit * tres
    heat = np.zeros(tres * ares, dtype=np.float64)
    tf_snap, tf_row, tf_dur = _time_fragments(snap_start.astype(np.int64),
                                              np.minimum(snap_end.astype(np.int64), tmax), tmin, tunit, tres)
    if not len(tf_snap):
        return heat.reshape(tres, ares)
    ntf = np.bincount(tf_snap, minlength=len(snap_start))
    tf_first = np.cumsum(ntf) - ntf
    key_dtype = np.int32 if tres * ares < 2**31 else np.int64
    tf_base = (tf_row * ares).astype(key_dtype)
    tf_dur = tf_dur.astype(np.float64)
    pixel_sz = float(tunit) * float(aunit)
    contributions = ContributionBuffer(heat, pixel_sz)
    for lo in range(0, len(reg_start), CHUNK_REGIONS):
        hi = lo + CHUNK_REGIONS
        snap = reg_snap[lo:hi]
        copies = ntf[snap]
        if np.all(copies == 1):
            idx = slice(lo, hi)
            tf = tf_first[snap]
        else:   # snapshots spanning several rows, or none: one copy of the region per row piece
            idx = lo + np.repeat(np.arange(len(snap)), copies)
            tf = np.repeat(tf_first[snap] - (np.cumsum(copies) - copies), copies) + np.arange(int(copies.sum()))
        inside, nfrag, col, nbytes = _address_fragments(reg_start[idx], reg_end[idx], amin, aunit, ares)
        if not len(col):
            continue
        tf = tf[inside]
        key = np.repeat(tf_base[tf], nfrag) + col.astype(key_dtype)
        # damo's order of operations: samples * duration, then * bytes
        value = np.repeat(reg_acc[idx][inside].astype(np.float64) * tf_dur[tf], nfrag) * nbytes.astype(np.float64)
        contributions.push(key, value)
    contributions.flush()
    return heat.reshape(tres, ares)


@dataclass
class Band:
    """One contiguous address area drawn in columns ``col``..``col + ncols``."""

    start: int
    end: int          # start + aunit * ncols (damo-style flooring)
    col: int
    ncols: int
    aunit: int


@dataclass
class HeatGrid:
    """A computed heatmap and the ranges it covers (range ends already floored to the units)."""

    target_id: int
    tmin: int
    tmax: int
    amin: int
    amax: int
    tunit: int
    aunit: int
    heats: np.ndarray                    # (time rows, address columns), float64
    bands: list[Band] = field(default_factory=list)   # set for --all

    @property
    def resolution(self) -> tuple[int, int]:
        return self.heats.shape

    def column_addresses(self) -> np.ndarray:
        """The start address of every column."""
        if not self.bands:
            return self.amin + np.arange(self.heats.shape[1], dtype=object) * self.aunit
        return np.concatenate([b.start + np.arange(b.ncols, dtype=object) * b.aunit for b in self.bands])

    def row_times(self) -> np.ndarray:
        return self.tmin + np.arange(self.heats.shape[0], dtype=object) * self.tunit


def _units(span: int, resolution: int, what: str) -> int:
    if resolution <= 0:
        raise DamoError(f"--resol: the {what} resolution must be positive")
    unit = span // resolution
    if unit <= 0:
        raise DamoError(f"the {what} range ({span}) is smaller than its resolution ({resolution}); "
                        "give a smaller --resol")
    return unit


def _record_after_first(rec: Record):
    """Snapshot and region columns of ``rec`` without its first snapshot (damo skips it)."""
    lo = int(rec.offsets[1]) if rec.nr_snapshots > 1 else int(rec.offsets[-1])
    snap_start, snap_end = rec.start_ns[1:], rec.end_ns[1:]
    counts = np.diff(rec.offsets[1:]) if rec.nr_snapshots > 1 else np.zeros(0, dtype=np.int64)
    reg_snap = np.repeat(np.arange(len(counts)), counts)
    return snap_start, snap_end, reg_snap, rec.start[lo:], rec.end[lo:], rec.nr_accesses[lo:]


def heat_grid(rec: Record, target_id: int, time_range: tuple[int, int], address_range: tuple[int, int],
              resolution: tuple[int, int]) -> HeatGrid:
    """damo 2.x's heatmap of one target over the given absolute ranges."""
    tres, ares = resolution
    tmin, tmax = int(time_range[0]), int(time_range[1])
    amin, amax = int(address_range[0]), int(address_range[1])
    tunit = _units(tmax - tmin, tres, "time")
    aunit = _units(amax - amin, ares, "address")
    cols = _record_after_first(rec)
    heats = pixel_heats(*cols, tmin, tunit, tres, amin, aunit, ares)
    return HeatGrid(target_id, tmin, tmin + tunit * tres, amin, amin + aunit * ares, tunit, aunit, heats)


def band_columns(sizes: list[int], ares: int) -> list[int]:
    """Columns per band: proportional to size, but a few at least, summing to ``ares``."""
    k = len(sizes)
    total = sum(sizes)
    least = max(1, min(ares // 100, ares // (2 * k)))
    cols = [min(s, max(least, ares * s // total)) for s in sizes]
    while sum(cols) > ares:
        i = max(range(k), key=lambda j: cols[j])
        cols[i] -= 1
    while sum(cols) < ares:
        room = [j for j in range(k) if cols[j] < sizes[j]]
        if not room:
            break
        cols[max(room, key=lambda j: sizes[j] / cols[j])] += 1
    return cols


def banded_heat_grid(rec: Record, guide: Guide, time_range: tuple[int, int], resolution: tuple[int, int],
                     address_range: tuple[int, int] | None = None) -> HeatGrid:
    """Every mapped area of the guide as a band of columns; the unmapped gaps are left out."""
    tres, ares = resolution
    tmin, tmax = int(time_range[0]), int(time_range[1])
    tunit = _units(tmax - tmin, tres, "time")
    areas = [(s, e) for s, e in guide.areas if e > s]
    if address_range:
        areas = [(max(s, address_range[0]), min(e, address_range[1])) for s, e in areas]
        areas = [(s, e) for s, e in areas if e > s]
    if not areas:
        raise DamoError("no mapped area in the address range")
    max_bands = max(1, ares // 2)
    while len(areas) > max_bands:        # too many areas for the columns: close the smallest gap
        gaps = [areas[i + 1][0] - areas[i][1] for i in range(len(areas) - 1)]
        i = gaps.index(min(gaps))
        areas[i:i + 2] = [(areas[i][0], areas[i + 1][1])]
    cols = band_columns([e - s for s, e in areas], ares)
    snap_start, snap_end, reg_snap, rs, re, acc = _record_after_first(rec)
    band_s = np.array([s for s, _ in areas], dtype=np.uint64)
    band_e = np.array([e for _, e in areas], dtype=np.uint64)
    # which bands each region overlaps, then the regions of each band in their original order
    lo = np.searchsorted(band_e, rs, side="right")
    hi = np.searchsorted(band_s, re, side="left")
    n = np.maximum(hi - lo, 0)
    region, band = _expand(lo, lo + n - 1)
    order = np.argsort(band, kind="stable")
    region, band = region[order], band[order]
    bounds = np.searchsorted(band, np.arange(len(areas) + 1))
    grids, bands = [], []
    col = 0
    for i, ((start, end), ncols) in enumerate(zip(areas, cols)):
        aunit = (end - start) // ncols
        sel = region[bounds[i]:bounds[i + 1]]
        grids.append(pixel_heats(snap_start, snap_end, reg_snap[sel], rs[sel], re[sel], acc[sel], tmin, tunit,
                                 tres, start, aunit, ncols))
        bands.append(Band(start, start + aunit * ncols, col, ncols, aunit))
        col += ncols
    heats = np.hstack(grids)
    return HeatGrid(guide.target_id, tmin, tmin + tunit * tres, bands[0].start, bands[-1].end, tunit,
                    bands[0].aunit, heats, bands)


# --- rendering --------------------------------------------------------------------------------

def heat_digits(heats: np.ndarray) -> np.ndarray:
    """damo's 0-9 level of every pixel: ``int((h - lo) / ((hi + 1 - lo) / 9))``, capped at 9."""
    lo, hi = float(heats.min()), float(heats.max())
    unit = (hi + 1 - lo) / 9
    return np.minimum(np.trunc((heats - lo) / unit), MAX_DIGIT).astype(np.int8)


def format_stdout_heatmap(grid: HeatGrid, colorset: str = "gray", color: bool = True,
                          color_example: bool = True) -> str:
    """The digit grid (one row per time slot, earliest first) and damo's footer."""
    digits = heat_digits(grid.heats)
    tres, ares = digits.shape
    if color:
        table = [color_code(colorset, d) + str(d) for d in range(MAX_DIGIT + 1)]
        rows = ["".join([table[d] for d in row]) + RESET for row in digits.tolist()]
        example = "".join(table) + RESET
    else:
        chars = (digits + ord("0")).astype(np.uint8)
        rows = [bytes(row).decode() for row in chars]
        example = "0123456789"
    lines = rows
    if color_example:
        lines.append("# access_frequency: %s" % example)
    if grid.bands:
        lines.append("# x-axis: space (%d mapped areas, %s; the gaps between them left out)" % (
            len(grid.bands), format_sz(sum(b.end - b.start for b in grid.bands))))
    else:
        lines.append("# x-axis: space (%d-%d: %s)" % (grid.amin, grid.amax, format_sz(grid.amax - grid.amin)))
    lines.append("# y-axis: time (%d-%d: %s)" % (grid.tmin, grid.tmax, format_time_ns(grid.tmax - grid.tmin)))
    if grid.bands:
        for i, b in enumerate(grid.bands):
            lines.append("# band %d: columns %d-%d, space %d-%d (%s, %s each)" % (
                i, b.col, b.col + b.ncols - 1, b.start, b.end, format_sz(b.end - b.start), format_sz(b.aunit)))
        lines.append("# resolution: %dx%d (%s for each character)" % (
            ares, tres, format_time_ns(float(grid.tmax - grid.tmin) / tres)))
    else:
        lines.append("# resolution: %dx%d (%s and %s for each character)" % (
            ares, tres, format_sz(float(grid.amax - grid.amin) / ares),
            format_time_ns(float(grid.tmax - grid.tmin) / tres)))
    return "\n".join(lines)


def format_raw(grid: HeatGrid, abs_time: bool = False, abs_addr: bool = False) -> str:
    """``time<TAB>addr<TAB>heat`` per pixel, row by row; heats as Python prints floats."""
    times = grid.row_times()
    addrs = grid.column_addresses()
    if not abs_time:
        times = times - grid.tmin
    if not abs_addr:
        addrs = addrs - grid.amin
    addr_txt = [str(a) for a in addrs.tolist()]
    lines = []
    for t, row in zip(times.tolist(), grid.heats.tolist()):
        prefix = f"{t}\t"
        lines.extend([f"{prefix}{a}\t{h!r}" for a, h in zip(addr_txt, row)])
    return "\n".join(lines)


def grid_json(grid: HeatGrid, meta_aggr_us: int | None) -> dict:
    out = {"target_id": grid.target_id, "time_range": [grid.tmin, grid.tmax],
           "address_range": [grid.amin, grid.amax], "resolution": list(grid.resolution),
           "time_unit_ns": grid.tunit, "address_unit_bytes": grid.aunit,
           "heat_unit": "samples per aggregation interval", "aggregation_interval_us": meta_aggr_us,
           "heats": grid.heats.tolist()}
    if grid.bands:
        out["bands"] = [vars(b) for b in grid.bands]
    return out


def draw_heatmap(grid: HeatGrid, path: str, title: str, aggr_us: int | None = None, abs_time: bool = False,
                 abs_addr: bool = False, heat_label: str = "accesses per aggregation interval",
                 ylabel: str | None = None) -> dict:
    """Draw the grid with matplotlib; returns the arrays and labels handed to it.

    ``aggr_us`` adds a Hz scale beside a samples colour bar; ``ylabel`` replaces the address label
    (``{unit}`` in it becomes the size unit of the axis).
    """
    from damo.plot import bytes_unit, image_type, pyplot, save, time_unit

    image_type(path)
    plt = pyplot()
    tres, ares = grid.heats.shape
    t_div, t_name = time_unit(grid.tmax - grid.tmin)
    t0 = (grid.tmin if abs_time else 0) / t_div
    t1 = t0 + (grid.tmax - grid.tmin) / t_div
    fig, ax = plt.subplots(figsize=(10, 6))
    image = grid.heats.T            # addresses up, time to the right
    if grid.bands:
        extent = (t0, t1, 0, ares)
        ylabel = "address (mapped areas; unmapped gaps removed)"
    else:
        a_div, a_name = bytes_unit(grid.amax - grid.amin)
        a0 = (grid.amin if abs_addr else 0) / a_div
        a1 = a0 + (grid.amax - grid.amin) / a_div
        extent = (t0, t1, a0, a1)
        ylabel = ylabel.format(unit=a_name) if ylabel else \
            f"address ({a_name}{'' if abs_addr else ', from %#x' % grid.amin})"
    im = ax.imshow(image, origin="lower", aspect="auto", extent=extent, cmap="inferno", interpolation="nearest")
    if grid.bands:
        ticks, labels = [], []
        for b in grid.bands:
            if b.col:
                ax.axhline(b.col, color="white", linewidth=0.8, alpha=0.7)
            div, name = bytes_unit(b.end - b.start)
            ticks.append(b.col + b.ncols / 2)
            labels.append("%#x\n(%.1f %s)" % (b.start, (b.end - b.start) / div, name))
        ax.set_yticks(ticks)
        ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel(f"time ({t_name}{'' if abs_time else ', from record start'})")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    bar = fig.colorbar(im, ax=ax, pad=0.1 if aggr_us else 0.03)
    bar.set_label(heat_label)
    if aggr_us:     # the same scale in accesses per second
        per_sec = 1e6 / aggr_us
        hz = bar.ax.secondary_yaxis("left", functions=(lambda x: x * per_sec, lambda x: x / per_sec))
        hz.set_ylabel("Hz")
    fig.tight_layout()
    save(fig, path)
    return {"image": image, "extent": extent, "xlabel": ax.get_xlabel(), "ylabel": ylabel,
            "colorbar": heat_label, "title": title}


# --- command line (options and help: damo/report_commands/heats.py) ---------------------------

def run(args: argparse.Namespace) -> int:
    if args.heatmap is None and args.plot_ascii:
        args.heatmap = "stdout"
    colorset = args.stdout_heatmap_color or args.ascii_color or "gray"
    return report(args, output=args.heatmap or "raw", resolution=args.resol, colorset=colorset,
                  color_example=not args.stdout_heatmap_skip_color_example)


def resolve_ranges(record: Record, tid: int | None, time_range, address_range):
    """damo's defaults: the guide's target, time span and hottest area, for whatever is unset."""
    if tid and time_range and address_range:
        return tid, None, time_range, address_range        # compute_grid checks the target
    gs = guides(record)
    if not gs:
        raise DamoError("the record has no snapshot")
    guide = gs[0]
    if not tid:
        tid = guide.target_id
    for g in gs:
        if g.target_id == tid:
            guide = g
            break
    else:
        raise DamoError(f"no target {tid} in the record")
    return tid, guide, time_range or (guide.start_time, guide.end_time), address_range or guide.hottest_area()


def compute_grid(record: Record, tid: int | None, time_range, address_range, resolution,
                 all_areas: bool = False) -> HeatGrid:
    """The heatmap ``damo report heats`` would draw for these options."""
    tid, guide, trange, arange = resolve_ranges(record, tid, None if all_areas else time_range,
                                                None if all_areas else address_range)
    if all_areas and time_range:
        trange = time_range
    rec = select_target(record, tid)
    if all_areas:
        return banded_heat_grid(rec, guide, trange, resolution, address_range)
    return heat_grid(rec, tid, trange, arange, resolution)


MAX_RESOLUTION = 10_000
MAX_CELLS = 4_000_000          # time x address cells of one heat grid (32 MB of floats)


def check_ranges(args: argparse.Namespace, resolution) -> None:
    """One-line errors for ranges and resolutions before any work."""
    rows, cols = resolution
    if not (0 < rows <= MAX_RESOLUTION and 0 < cols <= MAX_RESOLUTION) or rows * cols > MAX_CELLS:
        raise DamoError(f"--resol: {rows} x {cols} is outside the limits (each 1..{MAX_RESOLUTION}, at most "
                        f"{MAX_CELLS} cells)")
    for option in ("time_range", "address_range"):
        given = getattr(args, option, None)
        if given and given[0] >= given[1]:
            raise DamoError(f"--{option}: START ({given[0]}) must be below END ({given[1]})")


def report(args: argparse.Namespace, output: str, resolution, colorset: str, color_example: bool) -> int:
    """Shared body of ``heats`` and ``heatmap``: output is 'stdout', 'raw' or an image path."""
    from damo.report import load_record

    check_ranges(args, resolution)
    record = load_record(args.input, columns=("start", "end", "nr_accesses"))      # no ages
    if args.guide:
        gs = guides(record)
        text = json.dumps(guides_json(gs), indent=2) if args.json else format_guides(gs)
        if text:
            sys.stdout.write(text + "\n")
        return 0
    grid = compute_grid(record, args.tid, args.time_range, args.address_range, tuple(resolution), args.all)
    # heats are samples per aggregation; a tuned record has no one aggregation interval for a Hz scale
    hz_aggr_us = None if record.meta.intervals_goal else record.meta.aggr_us
    if args.json:
        sys.stdout.write(json.dumps(grid_json(grid, hz_aggr_us)) + "\n")
    elif output == "stdout":
        text = format_stdout_heatmap(grid, colorset, use_color(args.color), color_example)
        sys.stdout.write(text + "\n")
    elif output == "raw":
        sys.stdout.write(format_raw(grid, args.abs_time, args.abs_addr) + "\n")
    else:
        title = f"{os.path.basename(args.input)}: target {grid.target_id} access heatmap"
        draw_heatmap(grid, output, title, hz_aggr_us, args.abs_time, args.abs_addr)
    return 0
