"""Show when which address ranges were how frequently accessed (damo 3.x's ``report heatmap``).

Prints damo 3.4.3's heatmap: a grid of digits 0-9 on the terminal, ``time<TAB>addr<TAB>heat``
triples with ``--output raw``, or an image (.png .svg .pdf .jpg).

Example::

    damo report heatmap -i damon.data
    damo report heatmap -i damon.data --resol 20 60 --draw_range all
    damo report heatmap -i a.data b.data --output heatmap.png

For damo 2.6.4's heatmap text, run ``damo report heats --heatmap stdout --resol 40 80``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass

import numpy as np

from damo import fmt
from damo.errors import DamoError
from damo.jobs import half_in_child, may_fork
from damo.heats import (MAX_DIGIT, RESET, ContributionBuffer, HeatGrid, color_code, guide_of,
                        use_color)
from damo.model import Record
from damo.selection import access_percent, age_us, snapshot_aggr_us

DEFAULT_STDOUT_RESOL = (40, 80)
DEFAULT_IMAGE_RESOL = (500, 500)
UNKNOWN_PIXEL_LEVEL = 4     # damo draws a pixel nobody monitored as a blank in this colour
# Regions are turned into pixel contributions a cache-sized run at a time: small runs keep
# numpy's temporaries out of fresh memory pages (contributions then go through
# damo.heats.ContributionBuffer).
RUN_REGIONS = 1 << 16
# From this many regions on, a second process draws half of the map's rows (_split_row); a fork
# and a pipe cost a few milliseconds, a 6 M-region map's drawing about 0.4 s.
PARALLEL_MIN_REGIONS = 1 << 20


# --- the records as damo 3.x sees them ---------------------------------------------------------

@dataclass
class TargetRecord:
    """One target of one input file, with the fields damo 3.x keys and weighs records by."""

    kdamond_idx: int | None
    context_idx: int | None
    scheme_idx: int | None
    target_id: int
    aggr_us: int | None         # the record's aggregation interval; None: heats are in samples
    sample_us: int | None
    rec: Record
    first_start: float          # start of the first snapshot (perf_script files: a fraction of ns)
    path: str

    def key(self) -> tuple:
        return (self.kdamond_idx, self.context_idx, self.scheme_idx, self.target_id)


def load_targets(paths: list[str]) -> list[TargetRecord]:
    """Every target of every file, in file order, as damo 3.x lists its records."""
    from damo.model import DAMO_RECORDS_KEY as EXTRA_KEY, PERF_FIRST_START_KEY as FIRST_START_KEY
    from damo.report import load_record

    out = []
    for path in paths:
        record = load_record(path)       # a record without regions: one named error (issue 14)
        meta = record.meta
        # what damo reads from our json_compressed copy of the file (damo_json._record_fields)
        has_intervals = None not in (meta.sample_us, meta.aggr_us, meta.update_us)
        known = {f.get("target_id"): f for f in meta.extra.get(EXTRA_KEY) or [] if isinstance(f, dict)}
        first_starts = meta.extra.get(FIRST_START_KEY) or {}
        for tid, rec in record.split_targets():
            if not rec.nr_snapshots:
                continue
            fields = known.get(tid) or {}
            first = first_starts.get(str(tid))
            # damo 3.x takes an unset kdamond or context index as 0
            out.append(TargetRecord(fields.get("kdamond_idx") or 0, fields.get("context_idx") or 0,
                                    fields.get("scheme_idx"),
                                    tid, meta.aggr_us if has_intervals else None,
                                    meta.sample_us if has_intervals else None, rec,
                                    float(first) if first is not None else int(rec.start_ns[0]), path))
    if not out:
        raise DamoError(f"{paths[0]}: the record has no snapshot")
    having = [t.aggr_us is not None for t in out]
    if any(having) and not all(having):
        raise DamoError("some inputs have monitoring intervals and some not (damo cannot mix them): "
                        + ", ".join(sorted({t.path for t in out})))
    return out


def concat_records(recs: list[Record]) -> Record:
    """The snapshots of several records one after another."""
    if len(recs) == 1:
        return recs[0]
    counts = np.concatenate([np.diff(r.offsets) for r in recs])
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    cat = lambda name: np.concatenate([getattr(r, name) for r in recs])  # noqa: E731
    tuned = all(r.snapshot_sample_us is not None for r in recs)
    return Record(recs[0].meta, cat("target_id"), cat("start_ns"), cat("end_ns"), offsets, cat("start"),
                  cat("end"), cat("nr_accesses"), cat("age"), cat("snapshot_sample_us") if tuned else None)


# --- the guide ---------------------------------------------------------------------------------

@dataclass
class Guide3:
    """damo 3.x's guide of one (kdamond, context, scheme, target): time span and contiguous areas."""

    kdamond_idx: int | None
    context_idx: int | None
    scheme_idx: int | None
    target_id: int
    start_time: float
    end_time: int
    areas: list[tuple[int, int]]
    heats: list[int | None]

    def total_space(self) -> int:
        return sum(e - s for s, e in self.areas)

    def heat_per_byte(self, i: int) -> float:
        s, e = self.areas[i]
        if self.heats[i] is None:
            return 0
        return float(self.heats[i]) / (e - s) if e != s else 0

    def hottest_area(self) -> tuple[int, int]:
        keys = [self.heat_per_byte(i) for i in range(len(self.areas))]
        return self.areas[keys.index(max(keys))]

    def key(self) -> tuple:
        return (self.kdamond_idx, self.context_idx, self.scheme_idx, self.target_id)


def oldest_monitor_time(t: TargetRecord) -> float:
    """When the first snapshot's oldest region started being seen at its access level."""
    if t.aggr_us is None:
        return t.first_start
    lo, hi = int(t.rec.offsets[0]), int(t.rec.offsets[1])
    longest_age = max(0, int(t.rec.age[lo:hi].max())) if hi > lo else 0
    return t.first_start - longest_age * t.aggr_us * 1000


def guides3(targets: list[TargetRecord]) -> list[Guide3]:
    """One guide per (kdamond, context, scheme, target) over all inputs, largest total space first."""
    groups: dict[tuple, list[TargetRecord]] = {}
    for t in targets:
        groups.setdefault(t.key(), []).append(t)
    out = []
    for key, ts in groups.items():
        rec = concat_records([t.rec for t in ts])
        g = guide_of(rec, key[3], lone_area_heat=False)      # damo 3.x's guide shows no heats
        out.append(Guide3(*key, oldest_monitor_time(ts[0]), int(rec.end_ns[-1]), g.areas, g.heats))
    return sorted(out, key=lambda g: g.total_space(), reverse=True)


def format_guides3(gs: list[Guide3], raw: bool = True) -> str:
    lines = []
    for g in gs:
        for name, value in (("kdamond_idx", g.kdamond_idx), ("context_idx", g.context_idx),
                            ("scheme_idx", g.scheme_idx), ("target_id", g.target_id)):
            if value is not None:
                lines.append("%s: %s" % (name, value))
        lines.append("time: [%s, %s) (%s)" % (fmt.format_time_ns_signed(g.start_time, raw),
                                              fmt.format_time_ns_signed(g.end_time, raw),
                                              fmt.format_time_ns_signed(g.end_time - g.start_time, raw)))
        for i, (s, e) in enumerate(g.areas):
            lines.append("region\t%2d: [%s, %s) (%s)" % (i, fmt.format_sz_accurate(s, raw),
                                                        fmt.format_sz_accurate(e, raw), fmt.format_sz(e - s, raw)))
    return "\n".join(lines)


# --- pixel heats -------------------------------------------------------------------------------

@dataclass
class Heatmap3:
    """A heatmap with damo 3.x's math: heats per pixel, and which pixels anything touched."""

    tmin: float
    tunit: float
    amin: int
    aunit: int
    heats: np.ndarray           # (time rows, address columns), float64
    touched: np.ndarray         # bool, same shape: False where damo prints NaN / a blank
    heat_unit: str              # 'hz' or 'samples'

    @property
    def shape(self) -> tuple[int, int]:
        return self.heats.shape

    def row_times(self) -> list:
        """damo's pixel times: ``int(start + i * unit)``."""
        return [int(self.tmin + i * self.tunit) for i in range(self.shape[0])]

    def known_range(self) -> tuple[float, float] | None:
        """(lowest, highest) heat of the touched pixels."""
        if not self.touched.any():
            return None
        vals = self.heats[self.touched]
        return float(vals.min()), float(vals.max())


def _heat_values(t: TargetRecord, nr_accesses: np.ndarray) -> np.ndarray:
    """Per region: Hz where the record has intervals, else samples per aggregation."""
    acc = nr_accesses.astype(np.float64)
    return acc / (t.aggr_us / 1000000) if t.aggr_us is not None else acc


def heatmap3(targets: list[TargetRecord], time_range: tuple, address_range: tuple[int, int],
             resolution: tuple[int, int]) -> Heatmap3:
    """damo 3.4.3's heatmap of the given records (one target) over the given ranges.

    Every snapshot counts, the first one too. With monitoring intervals a region's heat is its
    access rate in Hz and it is seen since ``age`` aggregations before its snapshot (but not
    before the previous snapshot's end); pixels are updated one (snapshot, region) at a time in
    damo's order and float rounding; a pixel no region touched stays unknown.
    """
    tres, ares = resolution
    if tres <= 0 or ares <= 0:
        raise DamoError("--resol: the resolutions must be positive")
    tmin, tmax = time_range
    amin, amax = int(address_range[0]), int(address_range[1])
    tunit = (tmax - tmin) // tres
    aunit = (amax - amin) // ares
    if tunit <= 0:
        raise DamoError(f"--time_range: the time range ({tmax - tmin}) is smaller than its resolution ({tres})")
    if aunit <= 0:
        raise DamoError(f"--address_range: the address range ({amax - amin}) is smaller than its resolution "
                        f"({ares})")
    grid = _Grid(tmin, tunit, tres, amin, aunit, ares)
    split = _split_row(targets, tres)
    if split is not None:
        _fill_in_two_processes(grid, targets, split)
    else:
        _fill(grid, targets)
    heat_unit = "hz" if any(t.aggr_us is not None for t in targets) else "samples"
    return Heatmap3(tmin, tunit, amin, aunit, grid.heat.reshape(tres, ares), grid.touched.reshape(tres, ares),
                    heat_unit)


def _fill(grid: "_Grid", targets: list[TargetRecord]) -> None:
    prev_end = None
    for t in targets:
        prev_end = grid.add_target(t, prev_end)
    grid.flush()


def _split_row(targets: list[TargetRecord], tres: int) -> int | None:
    """The row at which a second process takes over the map, or None to draw it in this one.

    Pixel rows are independent: every contribution to a pixel comes from the snapshots that
    overlap its row, and a process that draws some rows goes through all of those snapshots in
    damo's order. So the map is cut into the rows before and after a split row, each drawn by a
    process of its own (fork: the record is shared, not copied), and the halves are put together
    bit for bit as one process would have drawn them. Worth it only for big records (a fork and
    a pipe cost a few ms) with a second CPU to run on.
    """
    if tres < 2 or sum(t.rec.nr_regions_total for t in targets) < PARALLEL_MIN_REGIONS or not may_fork():
        return None
    return tres // 2


def _fill_in_two_processes(grid: "_Grid", targets: list[TargetRecord], split: int) -> None:
    """_fill, the rows from ``split`` on drawn by a forked child and sent back through a pipe;
    if the child fails for any reason, this process draws them after all."""
    lo, nr = split * grid.ares, grid.heat.size - split * grid.ares

    def child() -> bytes:
        grid.rows = (split, grid.tres)
        _fill(grid, targets)
        return grid.heat[lo:].tobytes() + grid.touched[lo:].tobytes()

    def here() -> None:
        grid.rows = (0, split)
        _fill(grid, targets)

    payload = half_in_child(child, here)
    if payload is not None and len(payload) == nr * 9:
        grid.heat[lo:] = np.frombuffer(payload, dtype=np.float64, count=nr)
        grid.touched[lo:] = np.frombuffer(payload, dtype=bool, offset=nr * 8)
        return
    # the child did not deliver: draw its rows here (the same pixels, the same order)
    heat, touched = grid.heat[:lo].copy(), grid.touched[:lo].copy()
    grid.reset(rows=(split, grid.tres))
    _fill(grid, targets)
    grid.heat[:lo], grid.touched[:lo] = heat, touched


class _Grid:
    """The pixels being filled (damo's HeatMap), and the per-snapshot work shared by its regions.

    ``rows`` (first, end) limits the work to the snapshots that touch those pixel rows (the other
    rows may be left partly drawn; _fill_in_two_processes takes only these).
    """

    def __init__(self, tmin, tunit, tres: int, amin: int, aunit: int, ares: int):
        self.tmin, self.tunit, self.tres = tmin, tunit, tres
        self.amin, self.aunit, self.ares = amin, aunit, ares
        self.a_end = amin + aunit * ares
        self.rows = (0, tres)
        self.heat = np.zeros(tres * ares, dtype=np.float64)
        self.touched = np.zeros(tres * ares, dtype=bool)
        self.pixel_time = np.array([float(int(tmin + i * tunit)) for i in range(tres)])
        # damo's time x space of a pixel, an int product (a float one for a fractional time unit)
        self.pixel_sz = float(tunit * aunit) if isinstance(tunit, int) else float(tunit) * float(aunit)
        self.contributions = ContributionBuffer(self.heat, self.pixel_sz)
        # The float column of an offset below 2**53 less a column is its exact floor division
        # (the quotient cannot round up to the next integer), so columns can be trusted as
        # integer bounds (add_one_row_regions).
        self.exact_columns = isinstance(aunit, int) and (ares + 1) * aunit < 1 << 53

    def reset(self, rows: tuple[int, int]) -> None:
        """Start over (an empty map), to draw only ``rows``."""
        self.rows = rows
        self.heat[:] = 0
        self.touched[:] = False
        self.contributions = ContributionBuffer(self.heat, self.pixel_sz)

    def push(self, key: np.ndarray, value: np.ndarray) -> None:
        """Queue contributions (in damo's order) for apply_in_order."""
        self.contributions.push(key, value)

    def flush(self) -> None:
        self.contributions.flush()

    def rows_of(self, row_start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First row and number of rows (0 when outside) of the time spans [row_start, end]."""
        first = np.maximum(np.trunc((row_start - self.tmin) / self.tunit), 0).astype(np.int64)
        last = np.minimum(np.trunc((end - self.tmin) / self.tunit), self.tres - 1).astype(np.int64)
        return first, np.maximum(last - first + 1, 0)

    def account_time(self, row: np.ndarray, account_start: np.ndarray, end: np.ndarray) -> np.ndarray:
        pt = self.pixel_time[row]
        return np.minimum(end, pt + self.tunit) - np.maximum(account_start, pt)

    def add_target(self, t: TargetRecord, prev_end: float | None) -> float:
        """Add every snapshot of ``t``; returns its last snapshot's end (the next input's 'before')."""
        rec = t.rec
        snap_start = rec.start_ns.astype(np.float64)
        snap_start[0] = t.first_start
        snap_end = rec.end_ns.astype(np.float64)
        # the end of the snapshot before each one, across inputs (damo's last_snapshot)
        before = np.empty(rec.nr_snapshots)
        before[0] = -np.inf if prev_end is None else prev_end
        before[1:] = snap_end[:-1]
        # Rows: from the snapshot start, or the previous end if later. With intervals a region
        # reaches back ``age`` aggregations, which matters only where the snapshot starts after
        # the previous one ended (the first snapshot, gaps): those regions get their own rows.
        row_start = np.maximum(snap_start, before)
        hz = t.aggr_us is not None
        per_region = (snap_start > before) if hz else np.zeros(rec.nr_snapshots, dtype=bool)
        snaps = _Snapshots(row_start, snap_end, row_start if hz else snap_start, before, per_region, self)
        aggr_ns = t.aggr_us * 1000 if hz else None
        hz_scale = t.aggr_us / 1000000 if hz else None
        if hz and rec.meta.intervals_goal is not None:
            # tuned intervals: each snapshot's own aggregation interval (damo's snapshot_monitoring_intervals)
            snap_scale = np.asarray(snapshot_aggr_us(rec, t.sample_us, t.aggr_us), dtype=np.float64) / 1000000
        counts = rec.regions_per_snapshot()
        # the snapshots that may touch this grid's rows: those whose own rows reach them, and the
        # ones whose regions reach back by age (they may reach any earlier row)
        first_row, end_row = self.rows
        wanted = (snaps.nrows > 0) & (snaps.row_first < end_row) & (snaps.row_first + snaps.nrows > first_row)
        wanted |= snaps.per_region
        if wanted.all():
            wanted = None
        for lo in range(0, rec.nr_regions_total, RUN_REGIONS):
            hi = min(lo + RUN_REGIONS, rec.nr_regions_total)
            s_lo = int(np.searchsorted(rec.offsets, lo, side="right")) - 1
            s_hi = int(np.searchsorted(rec.offsets, hi, side="left"))
            if wanted is not None and not wanted[s_lo:s_hi].any():
                continue
            snap = np.repeat(np.arange(s_lo, s_hi), counts[s_lo:s_hi])[lo - int(rec.offsets[s_lo]):][:hi - lo]
            acc = rec.nr_accesses[lo:hi].astype(np.float64)
            if hz and rec.meta.intervals_goal is not None:
                hv = acc / snap_scale[snap]
            else:
                hv = acc / hz_scale if hz else acc
            age = rec.age[lo:hi] if hz else None
            rs, re = rec.start[lo:hi].view(np.int64), rec.end[lo:hi].view(np.int64)
            # the run's regions in pieces of one-row snapshots and of the others, in order
            for a, b, one_row in _segments(rec.offsets, lo, hi, snaps.not_one_row(s_lo, s_hi)):
                part = slice(a - lo, b - lo)
                if one_row and self.add_one_row_regions(snap[part], rs[part], re[part], hv[part], snaps):
                    continue
                self.add_regions(snap[part], rs[part], re[part], hv[part], age[part] if hz else None, aggr_ns,
                                 snaps)
        return float(snap_end[-1])

    def add_one_row_regions(self, snap, rs, re, hv, snaps: "_Snapshots") -> bool:
        """add_regions for a run of snapshots of one row each (no per-region rows): the common
        case, in fewer array operations. False (nothing added) where columns are not exact."""
        if not self.exact_columns:
            return False
        keep = re >= self.amin          # damo keeps the regions that touch the range
        keep &= rs <= self.a_end
        if not keep.all():
            idx = np.flatnonzero(keep)
            snap, rs, re, hv = snap[idx], rs[idx], re[idx], hv[idx]
        if not len(snap):
            return True
        col = (rs - self.amin) / self.aunit
        np.trunc(col, out=col)
        np.maximum(col, 0, out=col)
        col_last = (re - self.amin) / self.aunit
        np.trunc(col_last, out=col_last)
        np.minimum(col_last, self.ares - 1, out=col_last)
        multi = np.flatnonzero(col != col_last)
        col = col.astype(np.int64)
        key = snaps.row_key[snap]
        key += col
        rate = hv * snaps.single_row_time[snap]
        # a region starting in column c at or after the range's start and ending in c, at the
        # latest at the range's end, lies in c (exact_columns): _sizes' clipping changes nothing
        sizes = (re - rs).astype(np.float64)
        clipped = np.flatnonzero((rs < self.amin) | (re > self.a_end)) \
            if int(rs.min()) < self.amin or int(re.max()) > self.a_end else multi[:0]
        if len(clipped):
            sizes[clipped] = self._sizes(rs[clipped], re[clipped], col[clipped])
        value = rate * sizes
        if len(multi):
            # regions over several columns: one piece per column (damo's order), placed where
            # the region's one-pixel contribution was
            ncols = col_last[multi].astype(np.int64) - col[multi] + 1
            pieces = np.ones(len(snap), dtype=np.int64)
            pieces[multi] = ncols
            pos0 = np.cumsum(pieces)
            pos0 -= pieces
            key = np.repeat(key, pieces)
            value = np.repeat(value, pieces)
            owner = np.repeat(multi, ncols)
            k = _within(ncols)
            where = pos0[owner] + k
            piece_col = col[owner] + k
            key[where] = snaps.row_key[snap[owner]] + piece_col
            value[where] = rate[owner] * self._sizes(rs[owner], re[owner], piece_col)
        self.touched[key] = True
        self.push(key, value)
        return True

    def add_regions(self, snap, rs, re, hv, age, aggr_ns, snaps: "_Snapshots") -> None:
        """damo's HeatMap.add_heat for a run of regions (in order), vectorised."""
        keep = ~((re < self.amin) | (self.a_end < rs))
        if not keep.all():
            idx = np.flatnonzero(keep)
            snap, rs, re, hv = snap[idx], rs[idx], re[idx], hv[idx]
            age = age[idx] if age is not None else None
        if not len(snap):
            return
        col_first = np.maximum(np.trunc((rs - self.amin) / self.aunit), 0).astype(np.int64)
        col_last = np.minimum(np.trunc((re - self.amin) / self.aunit), self.ares - 1).astype(np.int64)
        ncols = np.maximum(col_last - col_first + 1, 0)
        row_first, nrows = snaps.row_first[snap], snaps.nrows[snap]
        odd = np.flatnonzero(snaps.per_region[snap]) if snaps.any_per_region else np.zeros(0, dtype=np.int64)
        if len(odd):       # reach back by age, not before the previous snapshot's end
            start = np.maximum(snaps.account_start[snap[odd]] - np.maximum(age[odd], 0) * float(aggr_ns),
                               snaps.before[snap[odd]])
            row_first, nrows = row_first.copy(), nrows.copy()
            row_first[odd], nrows[odd] = self.rows_of(start, snaps.end[snap[odd]])
        pieces = nrows * ncols
        single = pieces == 1
        if len(odd):
            single[odd] = False
        if single.all():
            # the common case: one row (precomputed per snapshot) and one column per region
            key, value = self._single(snaps, snap, rs, re, hv, row_first, col_first)
        else:
            # contributions stay in region order: each region's pieces go where its first one falls
            # (the one-pixel formula for every region, repeated per piece, is right for the single
            # ones; the others' pieces are overwritten below: cheaper than picking the single out)
            pos0 = np.cumsum(pieces) - pieces
            one_key, one_value = self._single(snaps, snap, rs, re, hv, row_first, col_first)
            key = np.repeat(one_key, pieces)
            value = np.repeat(one_value, pieces)
            multi = np.flatnonzero(~single & (pieces > 0))
            per_region_start = None
            if len(odd):
                per_region_start = np.full(len(snap), np.nan)
                per_region_start[odd] = start
                per_region_start = per_region_start[multi]
            where = np.repeat(pos0[multi], pieces[multi]) + _within(pieces[multi])
            key[where], value[where] = self._pieces(snaps, snap[multi], rs[multi], re[multi], hv[multi],
                                                    row_first[multi], col_first[multi], ncols[multi],
                                                    pieces[multi], per_region_start)
        self.touched[key] = True
        self.push(key, value)

    def _sizes(self, rs, re, col):
        pa = self.amin + col * self.aunit
        return (np.minimum(re, pa + self.aunit) - np.maximum(rs, pa)).astype(np.float64)

    def _single(self, snaps, snap, rs, re, hv, row, col):
        """(key, value) of regions that fall in one pixel row and column."""
        return row * self.ares + col, hv * snaps.single_row_time[snap] * self._sizes(rs, re, col)

    def _pieces(self, snaps, snap, rs, re, hv, row_first, col_first, ncols, pieces, per_region_start):
        """(key, value) of regions over several pixels, rows outer and columns inner as damo loops."""
        owner = np.repeat(np.arange(len(snap)), pieces)
        k = _within(pieces)
        c = ncols[owner]
        row = row_first[owner] + k // c
        col = col_first[owner] + k % c
        account_start = snaps.account_start[snap[owner]]
        if per_region_start is not None:
            own = per_region_start[owner]
            account_start = np.where(np.isnan(own), account_start, own)
        value = hv[owner] * self.account_time(row, account_start, snaps.end[snap[owner]])
        return row * self.ares + col, value * self._sizes(rs[owner], re[owner], col)


def _segments(offsets: np.ndarray, lo: int, hi: int, others: list[int]) -> list[tuple[int, int, bool]]:
    """Regions lo..hi-1 cut into (start, end, one_row) pieces at the region bounds of the
    snapshots ``others`` (one_row False), in order."""
    out = []
    at = lo
    for s in others:
        a, b = max(int(offsets[s]), lo), min(int(offsets[s + 1]), hi)
        if a > at:
            out.append((at, a, True))
        if b > a:
            out.append((a, b, False))
        at = max(at, b)
    if at < hi:
        out.append((at, hi, True))
    return out


def _within(counts: np.ndarray) -> np.ndarray:
    """0..counts[i]-1 for every i, concatenated."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


class _Snapshots:
    """Per snapshot: its rows, and its account time where it fits one row."""

    def __init__(self, row_start, end, account_start, before, per_region, grid: _Grid):
        self.end, self.account_start, self.before, self.per_region = end, account_start, before, per_region
        self.any_per_region = bool(per_region.any())
        self.row_first, self.nrows = grid.rows_of(row_start, end)
        one = self.nrows == 1
        self.single_row_time = np.zeros(len(end))
        self.single_row_time[one] = grid.account_time(self.row_first[one], account_start[one], end[one])
        self.row_key = self.row_first * grid.ares         # the key of a snapshot's row's first pixel
        # snapshots of one row whose regions need no per-region rows: prefix counts, per run
        single = np.zeros(len(end) + 1, dtype=np.int64)
        self.one_row = one & ~per_region
        np.cumsum(self.one_row, out=single[1:])
        self.nr_single_before = single

    def not_one_row(self, lo: int, hi: int) -> list[int]:
        """The snapshots among lo..hi-1 not in one row each, or with per-region rows."""
        if int(self.nr_single_before[hi] - self.nr_single_before[lo]) == hi - lo:
            return []
        return (np.flatnonzero(~self.one_row[lo:hi]) + lo).tolist()


# --- temperature sort --------------------------------------------------------------------------

def sort_by_temperature(targets: list[TargetRecord], ranges: list[tuple[int, int]],
                        weights: tuple[float, float]) -> list[TargetRecord]:
    """damo's --sort_temperature: per snapshot and range, the regions clipped to the range and
    laid out from its start, coldest first (temperature = access rate % * w0 + age us * w1,
    negated for unaccessed regions)."""
    w_freq, w_age = weights
    out = []
    for t in targets:
        if t.aggr_us is None:
            raise DamoError(f"{t.path}: --sort_temperature needs the monitoring intervals, which the record "
                            "does not have")
        rec = t.rec
        snap_of = rec.snapshot_index()
        cols = {"snap": [], "start": [], "end": [], "acc": [], "age": [], "order": []}
        for k, (lo_a, hi_a) in enumerate(ranges):
            hit = np.flatnonzero(~((rec.end < np.uint64(lo_a)) | (np.uint64(hi_a) < rec.start)))
            s = np.maximum(rec.start[hit], np.uint64(lo_a)).astype(np.int64)
            e = np.minimum(rec.end[hit], np.uint64(hi_a)).astype(np.int64)
            acc = rec.nr_accesses[hit]
            percent = access_percent(acc, t.sample_us, t.aggr_us)
            # damo's temperature with float weights: size counts 0, access rate % and age in us
            score = (e - s) * 0 + percent * w_freq + age_us(rec.age[hit], t.aggr_us) * w_age
            temp = np.where(percent > 0, score, -score)
            sn = snap_of[hit]
            order = np.lexsort((np.arange(len(hit)), temp, sn))     # by snapshot, then temperature, stable
            sn, s, e, acc, age = sn[order], s[order], e[order], acc[order], rec.age[hit][order]
            size = e - s
            first = np.ones(len(sn), dtype=bool)
            first[1:] = sn[1:] != sn[:-1]
            csum = np.cumsum(size)
            group_base = np.maximum.accumulate(np.where(first, csum - size, 0))
            new_start = lo_a + (csum - size - group_base)
            for name, arr in (("snap", sn), ("start", new_start), ("end", new_start + size), ("acc", acc),
                              ("age", age), ("order", np.full(len(sn), k))):
                cols[name].append(arr)
        cat = {n: np.concatenate(v) for n, v in cols.items()}
        order = np.lexsort((np.arange(len(cat["snap"])), cat["order"], cat["snap"]))
        counts = np.bincount(cat["snap"], minlength=rec.nr_snapshots)
        offsets = np.zeros(rec.nr_snapshots + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        sorted_rec = Record(rec.meta, rec.target_id, rec.start_ns, rec.end_ns, offsets,
                            cat["start"][order].astype(np.uint64), cat["end"][order].astype(np.uint64),
                            cat["acc"][order], cat["age"][order])
        out.append(TargetRecord(t.kdamond_idx, t.context_idx, t.scheme_idx, t.target_id, t.aggr_us, t.sample_us,
                                sorted_rec, t.first_start, t.path))
    return out


# --- text ----------------------------------------------------------------------------------------

def format_stdout3(hm: Heatmap3, colorset: str = "gray", color: bool = True, color_example: bool = True) -> str:
    """damo 3.4.3's terminal heatmap: digit rows (blank where unknown) and the comment lines."""
    tres, ares = hm.shape
    lines = []
    known = hm.known_range()
    if known is not None:
        lowest, highest = known
        unit = float(highest + 1 - lowest) / 9
        digits = np.minimum(np.trunc((hm.heats - lowest) / unit), MAX_DIGIT)
        digits = np.where(hm.touched, digits, -1).astype(np.int8)
        if color:
            table = {d: color_code(colorset, d) + str(d) for d in range(MAX_DIGIT + 1)}
            table[-1] = color_code(colorset, UNKNOWN_PIXEL_LEVEL) + " "
            lines = ["".join([table[d] for d in row]) + RESET for row in digits.tolist()]
        else:
            chars = np.where(digits >= 0, digits + ord("0"), ord(" ")).astype(np.uint8)
            lines = [bytes(row).decode() for row in chars]
    if color_example:
        if known is None:
            raise DamoError("nothing was recorded in the heatmap's ranges")
        example = "".join(color_code(colorset, d) + str(d) for d in range(MAX_DIGIT + 1)) + RESET \
            if color else "0123456789"
        lines.append("# access_frequency: %s (%.3f-%.3f %s)" % (example, known[0], known[1], hm.heat_unit))
    addr_len = hm.aunit * ares
    time_len = hm.tunit * tres
    lines.append("# x-axis: space [%s, %s) (%s)" % (fmt.format_sz_accurate(hm.amin), fmt.format_sz_accurate(
        hm.amin + addr_len), fmt.format_sz(addr_len)))
    lines.append("# y-axis: time [%s, %s) (%s)" % (fmt.format_time_ns_signed(hm.tmin), fmt.format_time_ns_signed(
        hm.tmin + time_len), fmt.format_time_ns_signed(time_len)))
    lines.append("# resolution: %dx%d (%s and %s for each character)" % (
        ares, tres, fmt.format_sz(float(addr_len) / ares), fmt.format_time_ns_signed(float(time_len) / tres)))
    return "\n".join(lines)


def format_raw3(hm: Heatmap3, abs_time: bool = False, abs_addr: bool = False) -> str:
    """``time<TAB>addr<TAB>heat`` per pixel, row by row; ``NaN`` where nothing was recorded."""
    tres, ares = hm.shape
    times = [tm if abs_time else tm - hm.tmin for tm in hm.row_times()]
    addrs = [hm.amin + j * hm.aunit for j in range(ares)]
    addr_txt = [str(a if abs_addr else a - hm.amin) for a in addrs]
    lines = []
    for tm, row, known in zip(times, hm.heats.tolist(), hm.touched.tolist()):
        prefix = f"{tm}\t"
        lines.extend([f"{prefix}{a}\t{h!r}" if k else f"{prefix}{a}\tNaN"
                      for a, h, k in zip(addr_txt, row, known)])
    return "\n".join(lines)


# --- ranges --------------------------------------------------------------------------------------

TIME_UNITS_NS = {"ns": 1, "us": 1000, "ms": 1000000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
                 "d": 86400 * 10**9}


def _number(text: str) -> int | float:
    """An int where the text is one, else a float (commas allowed), as damo reads numbers."""
    text = text.replace(",", "")
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_time(text: str) -> int | float:
    """A time as damo 3.x reads it: ns, or numbers with units (``1.5s``, ``1 m 30 s``).

    The type follows damo's, because it shows in the raw output: ``1.5s`` is a float, so the
    pixel times printed relative to it are floats too.
    """
    try:
        try:
            return _number(text)
        except ValueError:
            pass
        fields = text.split()
        if len(fields) > 1:
            return sum(parse_time("".join(fields[i:i + 2])) for i in range(0, len(fields), 2))
        for unit in ("ns", "us", "ms", "s", "m", "h", "d"):
            if text.endswith(unit) and (len(unit) == 2 or text[-2:] not in ("ns", "us", "ms")):
                return _number(text[:-len(unit)]) * TIME_UNITS_NS[unit]
        return float(text)
    except ValueError:
        raise DamoError(f"--time_range: '{text}' is not a time (ns, or a number with ns us ms s m h d)") from None


def parse_bytes(text: str) -> int:
    """An address or size as damo 3.x reads it: an integer (0x hex too), or a number with B K/KiB ..."""
    text = text.strip()
    try:
        return int(text.replace(",", ""), 0)
    except ValueError:
        pass
    units = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}
    for suffix in ("iB", "B", ""):
        for unit, mult in units.items():
            name = unit if unit == "B" and suffix != "" else unit + suffix
            if unit == "B" and suffix != "B":
                continue
            if text.endswith(name):
                try:
                    return int(float(text[:-len(name)].replace(",", "").strip()) * mult)
                except ValueError:
                    pass
    raise DamoError(f"--address_range: '{text}' is not an address (an integer, 0x hex, or a size like 4 KiB)")


def complete_time_range(user: list[str] | None, guide: Guide3) -> tuple:
    """``START END [BASE]``: BASE is a time, 'guided' (the guide's start) or 'guided_end'."""
    if user is None:
        return guide.start_time, guide.end_time
    if len(user) not in (2, 3):
        raise DamoError("--time_range: give START END [BASE]")
    lo, hi = parse_time(user[0]), parse_time(user[1])
    if len(user) == 3:
        base = {"guided": guide.start_time, "guided_end": guide.end_time}.get(user[2])
        if base is None:
            base = parse_time(user[2])
        lo, hi = base + lo, base + hi
    if hi <= lo:
        raise DamoError(f"--time_range: the end ({hi}) is not after the start ({lo})")
    return lo, hi


def guided_address_ranges(draw_range: str, guide: Guide3) -> list[tuple[int, int]]:
    if draw_range == "all":
        return list(guide.areas)
    return [guide.hottest_area()]


def complete_address_ranges(user: list[list[str]] | None, draw_range: str, guide: Guide3) -> list[tuple[int, int]]:
    """Each ``START END [BASE]``: BASE is an address or 'guided' (the start of the guided range of
    the same position: the hottest area, or with --draw_range all the n-th area)."""
    guided = guided_address_ranges(draw_range, guide)
    if user is None:
        return guided
    out = []
    for idx, fields in enumerate(user):
        if len(fields) not in (2, 3):
            raise DamoError("--address_range: give START END [BASE]")
        lo, hi = parse_bytes(fields[0]), parse_bytes(fields[1])
        if len(fields) == 3:
            if fields[2] == "guided":
                if idx >= len(guided):
                    raise DamoError(f"--address_range: no guided range #{idx} for 'guided' (there are "
                                    f"{len(guided)}; --draw_range all gives one per area)")
                base = guided[idx][0]
            else:
                base = parse_bytes(fields[2])
            lo, hi = base + lo, base + hi
        if hi <= lo:
            raise DamoError(f"--address_range: the end ({hi}) is not after the start ({lo})")
        out.append((lo, hi))
    return out


@dataclass
class Selection:
    """What to draw: the records of one target and the ranges (damo's completed source arguments)."""

    targets: list[TargetRecord]
    time_range: tuple
    address_ranges: list[tuple[int, int]]
    guide: Guide3


def select(all_targets: list[TargetRecord], args: argparse.Namespace) -> Selection:
    """The guide's kdamond/context/scheme/target and ranges for whatever the options leave unset."""
    gs = guides3(all_targets)
    first = gs[0]
    want = [first.kdamond_idx if args.kdamond_idx is None else args.kdamond_idx,
            first.context_idx if args.context_idx is None else args.context_idx,
            first.scheme_idx if args.scheme_idx is None else args.scheme_idx,
            first.target_id if args.tid is None else args.tid]
    matching = [g for g in gs if list(g.key()) == want]
    if not matching:
        given = [f"--{n} {v}" for n, v in zip(("kdamond_idx", "context_idx", "scheme_idx", "tid"),
                                             (args.kdamond_idx, args.context_idx, args.scheme_idx, args.tid))
                 if v is not None]
        have = "; ".join(" ".join(f"{n}={v}" for n, v in zip(("kdamond_idx", "context_idx", "scheme_idx",
                                                                  "target_id"), g.key())) for g in gs)
        raise DamoError(f"{' '.join(given)}: no such record in {', '.join(args.input)} (it has {have})")
    guide = matching[0]
    targets = [t for t in all_targets if list(t.key()) == want]
    # several inputs are one timeline of one target: an input without it would be silently dropped
    missing = [p for p in dict.fromkeys(args.input) if not any(t.path == p for t in targets)]
    if missing:
        others = sorted({t.target_id for t in all_targets if t.path == missing[0]})
        raise DamoError(f"-i {missing[0]}: no records of target {want[3]} (kdamond {want[0]}, context {want[1]}) "
                        f"to draw with the other inputs; it has target(s) {', '.join(map(str, others))}")
    time_range = complete_time_range(args.time_range, guide)
    ranges = complete_address_ranges(args.address_range, args.draw_range, guide)
    _check_inside(time_range, ranges, guide, args)
    return Selection(targets, time_range, ranges, guide)


def _check_inside(time_range, ranges, guide: Guide3, args) -> None:
    """A range that misses the record entirely is an error, not an empty map."""
    lo, hi = time_range
    if hi <= guide.start_time or lo >= guide.end_time:
        raise DamoError(f"--time_range: [{lo}, {hi}) is outside the record's time [{guide.start_time}, "
                        f"{guide.end_time}) in {', '.join(args.input)}")
    a_lo = min(s for s, _ in guide.areas)
    a_hi = max(e for _, e in guide.areas)
    for s, e in ranges:
        if e <= a_lo or s >= a_hi:
            raise DamoError(f"--address_range: [{s}, {e}) is outside the record's addresses [{a_lo}, {a_hi}) "
                            f"in {', '.join(args.input)}")


# --- images ----------------------------------------------------------------------------------------

def image_path(path: str, idx: int) -> str:
    """damo's name for the idx-th range's image: ``out.png``, ``out.1.png``, ..."""
    if idx == 0:
        return path
    tokens = path.split(".")
    tokens.insert(-1, str(idx))
    return ".".join(tokens)


def draw3(hm: Heatmap3, path: str, title: str, sorted_by_temperature: bool, abs_time: bool,
          abs_addr: bool) -> dict:
    """Draw one heatmap (unknown pixels left blank) with matplotlib."""
    from damo.heats import draw_heatmap

    tres, ares = hm.shape
    tmin = int(hm.tmin) if float(hm.tmin).is_integer() else hm.tmin
    grid = HeatGrid(0, tmin, tmin + hm.tunit * tres, hm.amin, hm.amin + hm.aunit * ares, hm.tunit, hm.aunit,
                    np.where(hm.touched, hm.heats, np.nan))
    label = "access rate (Hz)" if hm.heat_unit == "hz" else "accesses per aggregation interval"
    ylabel = "size ({unit}, regions sorted coldest to hottest)" if sorted_by_temperature else None
    return draw_heatmap(grid, path, title, None, abs_time, abs_addr, heat_label=label, ylabel=ylabel)


# --- command line ----------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    if args.df_passed:
        raise DamoError("--df_passed: the record holds no DAMOS filter-passed sizes (damo records them only "
                        "for DAMOS snapshots)")
    if args.interactive_edit:
        raise DamoError("--interactive_edit is not supported: rerun with --time_range and --address_range "
                        "(--guide shows the ranges)")
    if args.all:
        return _run_banded(args)
    resolution = tuple(args.resol) if args.resol else (
        DEFAULT_STDOUT_RESOL if args.output == "stdout" else DEFAULT_IMAGE_RESOL)
    targets = load_targets(args.input)
    if args.guide or args.guide_human:
        gs = guides3(targets)
        if args.json:
            text = json.dumps([{"kdamond_idx": g.kdamond_idx, "context_idx": g.context_idx,
                                "scheme_idx": g.scheme_idx, "target_id": g.target_id, "start_time": g.start_time,
                                "end_time": g.end_time, "areas": [list(a) for a in g.areas]} for g in gs], indent=2)
        else:
            text = format_guides3(gs, raw=not args.guide_human)
        sys.stdout.write(text + "\n")
        return 0
    sel = select(targets, args)
    drawn = sel.targets
    if args.sort_temperature:
        drawn = sort_by_temperature(drawn, sel.address_ranges, tuple(args.temperature_weights))
    color = use_color(args.color)
    outputs = []
    for idx, arange in enumerate(sel.address_ranges):
        hm = heatmap3(drawn, sel.time_range, arange, resolution)
        if args.json:
            outputs.append(json.dumps(heatmap_json(hm)))
        elif args.output == "stdout":
            outputs.append(format_stdout3(hm, args.stdout_colorset, color, not args.stdout_skip_colorset_example))
        elif args.output == "raw":
            outputs.append(format_raw3(hm, args.abs_time, args.abs_addr))
        else:
            title = f"{os.path.basename(args.input[0])}: target {sel.guide.target_id} access heatmap"
            draw3(hm, image_path(args.output, idx), title, args.sort_temperature, args.abs_time, args.abs_addr)
    if outputs:
        sys.stdout.write("\n".join(outputs) + "\n")
    return 0


def heatmap_json(hm: Heatmap3) -> dict:
    tres, ares = hm.shape
    return {"time_range": [hm.tmin, hm.tmin + hm.tunit * tres], "address_range": [hm.amin, hm.amin + hm.aunit * ares],
            "resolution": [tres, ares], "time_unit_ns": hm.tunit, "address_unit_bytes": hm.aunit,
            "heat_unit": hm.heat_unit,
            "heats": [[h if k else None for h, k in zip(row, known)]
                      for row, known in zip(hm.heats.tolist(), hm.touched.tolist())]}


def _run_banded(args: argparse.Namespace) -> int:
    """--all: the 2.x-math banded view of ``damo report heats --all``."""
    from damo.heats import report

    if len(args.input) > 1:
        raise DamoError("--all draws one input file; give one -i FILE, or use --draw_range all")
    time_range = [int(parse_time(x)) for x in args.time_range] if args.time_range else None
    if time_range is not None and len(time_range) != 2:
        raise DamoError("--all takes --time_range START END")
    ns = argparse.Namespace(**vars(args))
    ns.input = args.input[0]
    ns.time_range = time_range
    ns.address_range = ([parse_bytes(x) for x in args.address_range[0][:2]] if args.address_range else None)
    resolution = args.resol or ([40, 80] if args.output == "stdout" else [500, 500])
    return report(ns, output=args.output, resolution=resolution, colorset=args.stdout_colorset,
                  color_example=not args.stdout_skip_colorset_example)
