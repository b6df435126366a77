"""One self-contained interactive HTML page per record: ``damo report html``.

The page holds, per monitoring target, a zoomable time x address heatmap (every mapped area,
the unmapped gaps collapsed, or the raw address axis), the working set size over time with a
threshold slider and its percentiles, the number of regions over time, a sortable table of the
hottest and coldest address ranges whose rows move the heatmap there, and the record's metadata.
Every script (Plotly, vendored from its Python package) and style is inline: the file opens from
disk and makes no network request.

The heatmap is a pyramid of grids: level 0 is the overview and every level doubles the time and
address resolution, up to 16x finer at the last one. A cell's heat is the access frequency
(samples per aggregation interval) averaged over its time x address area, so a cell inside one
region and one snapshot holds that region's nr_accesses exactly. Grids are stored as deflated
uint16 arrays in base64 and inflated by the browser's DecompressionStream.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from importlib import resources

import numpy as np

from damo import __version__
from damo.errors import DamoError
from damo.heats import guide_of
from damo.model import Record, RecordMeta
from damo.report import add_input_argument
from damo.selection import (add_address_range_option, add_target_option, add_time_range_option, clip_addresses,
                            select_target)
from damo.wss import region_sizes, wss_percentiles

OVERVIEW_TIME_CELLS = 256          # level 0: time cells (x axis), fewer for records of fewer snapshots
OVERVIEW_ADDR_CELLS = 128          # level 0: address cells (y axis)
NR_LEVELS = 5                      # level k has 2**k times the overview's resolution: 16x at the last
TABLE_ROWS = 20                    # hottest and coldest ranges listed
MAX_THRESHOLDS = 64                # WSS slider positions at most
WSS_PERCENTILES = (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 100)
CHUNK_REGIONS = 1 << 18            # regions per pass: temporaries small enough for the heap to reuse
AGE_MAX = 65535
PLOTLY_INSTALL_HINT = "damo report html needs plotly: pip install 'damo-profiler[html]'"


# --- the collapsed address axis ------------------------------------------------------------------

@dataclass
class AddressAxis:
    """Mapped areas laid end to end: area i spans ``vstart[i] .. vstart[i] + vlen[i]`` on the axis.

    Each area's axis length is its size, but at least ``min_share`` of the axis, so that a small
    stack or heap next to gigabytes stays visible (its cells are then finer in bytes).
    """

    start: np.ndarray       # uint64 area starts
    end: np.ndarray         # uint64 area ends
    vstart: np.ndarray      # float64 axis position of each area's start
    vlen: np.ndarray        # float64 axis length of each area

    @classmethod
    def of_areas(cls, areas: list[tuple[int, int]]) -> "AddressAxis":
        areas = sorted((s, e) for s, e in areas if e > s)
        start = np.array([s for s, _ in areas], dtype=np.uint64)
        end = np.array([e for _, e in areas], dtype=np.uint64)
        sizes = (end - start).astype(np.float64)
        floor = sizes.sum() / max(64, 4 * len(areas))
        vlen = np.maximum(sizes, floor)
        vstart = np.concatenate([[0.0], np.cumsum(vlen)[:-1]])
        return cls(start, end, vstart, vlen)

    @property
    def length(self) -> float:
        return float(self.vstart[-1] + self.vlen[-1])

    def scale(self) -> np.ndarray:
        """Axis units per byte of every area."""
        return self.vlen / (self.end - self.start).astype(np.float64)

    def to_json(self) -> dict:
        return {"start": [int(x) for x in self.start.tolist()], "end": [int(x) for x in self.end.tolist()],
                "vstart": self.vstart.tolist(), "vlen": self.vlen.tolist()}


def raw_axis(lo: int, hi: int) -> AddressAxis:
    """The raw address axis: one area from the lowest to the highest address, gaps and all."""
    return AddressAxis(np.array([lo], dtype=np.uint64), np.array([hi], dtype=np.uint64),
                       np.array([0.0]), np.array([float(hi - lo)]))


# --- heat grids ----------------------------------------------------------------------------------

def _address_fragments(v0: np.ndarray, v1: np.ndarray, unit: float, ncells: int):
    """Cut axis intervals [v0, v1) into cells of ``unit``: (owner, cell, covered fraction of the cell)."""
    c0 = np.minimum(np.maximum(np.floor(v0 / unit).astype(np.int64), 0), ncells - 1)
    c1 = np.minimum(np.maximum(np.ceil(v1 / unit).astype(np.int64) - 1, c0), ncells - 1)
    n = c1 - c0 + 1
    owner = np.repeat(np.arange(len(v0)), n)
    cell = np.repeat(c0 - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
    frac = (np.minimum(v1[owner], (cell + 1) * unit) - np.maximum(v0[owner], cell * unit)) / unit
    return owner, cell, frac


def _time_fragments(ts: np.ndarray, te: np.ndarray, t0: int, unit: float, ncells: int):
    """Cut snapshots [ts, te) into time cells: (snapshot, cell, covered fraction of the cell)."""
    return _address_fragments((ts - t0).astype(np.float64), (te - t0).astype(np.float64), unit, ncells)


def _snapshot_chunks(rec: Record, limit: int = CHUNK_REGIONS) -> list[tuple[int, int]]:
    """Consecutive snapshot ranges [first, stop) of about ``limit`` regions each (one snapshot at least)."""
    bounds = np.searchsorted(rec.offsets, np.arange(0, rec.nr_regions_total, limit), side="right") - 1
    firsts = np.unique(np.concatenate([[0], bounds]))
    stops = np.append(firsts[1:], rec.nr_snapshots)
    return [(int(a), int(b)) for a, b in zip(firsts, stops) if b > a]


def heat_grids(rec: Record, axis: AddressAxis, nt: int, na: int,
               with_age: bool = True) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
    """Mean heat and mean age of every (time, address) cell: float32 arrays of shape (nt, na).

    Heat is samples per aggregation interval averaged over the cell's area (idle and unmapped
    parts count as 0); age is averaged over the regions with a known age (-1 where none).
    Returns the grids (age None unless ``with_age``) and the time range (t0, t1) in ns.
    """
    t0, t1 = int(rec.start_ns.min()), int(rec.end_ns.max())
    tunit = max(t1 - t0, 1) / nt
    vunit = axis.length / na
    scale = axis.scale()
    sums = [np.zeros((nt, na), dtype=np.float64) for _ in range(3 if with_age else 1)]
    snap_all, tcell_all, tfrac_all = _time_fragments(rec.start_ns, rec.end_ns, t0, tunit, nt)
    for first, stop in _snapshot_chunks(rec):
        lo, hi = int(rec.offsets[first]), int(rec.offsets[stop])
        rs, re = rec.start[lo:hi], rec.end[lo:hi]
        area = np.searchsorted(axis.start, rs, side="right") - 1
        area_c = np.maximum(area, 0)
        re_c = np.minimum(re, axis.end[area_c])
        idx = np.flatnonzero((area >= 0) & (rs < re_c))
        area_c = area_c[idx]
        v0 = axis.vstart[area_c] + (rs[idx] - axis.start[area_c]).astype(np.float64) * scale[area_c]
        v1 = axis.vstart[area_c] + (re_c[idx] - axis.start[area_c]).astype(np.float64) * scale[area_c]
        owner, cell, frac = _address_fragments(v0, v1, vunit, na)
        region = lo + idx[owner]
        snap = np.repeat(np.arange(stop - first), np.diff(rec.offsets[first:stop + 1]))[idx[owner]]
        key = snap * na + cell
        size = (stop - first) * na
        per_snap = [np.bincount(key, frac * rec.nr_accesses[region], minlength=size)]
        if with_age:
            age = rec.age[region]
            if age.min() >= 0:      # the usual case: no masked copies of the fragment arrays
                per_snap.append(np.bincount(key, frac * age, minlength=size))
                per_snap.append(np.bincount(key, frac, minlength=size))
            else:
                aged = age >= 0
                per_snap.append(np.bincount(key[aged], frac[aged] * age[aged], minlength=size))
                per_snap.append(np.bincount(key[aged], frac[aged], minlength=size))
        mine = (snap_all >= first) & (snap_all < stop)
        for total, values in zip(sums, per_snap):
            _add_rows(total, values.reshape(-1, na), snap_all[mine] - first, tcell_all[mine], tfrac_all[mine])
    heat = sums[0].astype(np.float32)
    if not with_age:
        return heat, None, (t0, t1)
    age = np.where(sums[2] > 0, sums[1] / np.maximum(sums[2], 1e-300), -1.0).astype(np.float32)
    return heat, age, (t0, t1)


def _add_rows(out: np.ndarray, per_snap: np.ndarray, snap: np.ndarray, cell: np.ndarray, frac: np.ndarray) -> None:
    """``out[cell[i]] += frac[i] * per_snap[snap[i]]`` for every time fragment."""
    if not len(cell):
        return
    order = np.argsort(cell, kind="stable")
    snap, cell, frac = snap[order], cell[order], frac[order]
    starts = np.flatnonzero(np.concatenate([[True], cell[1:] != cell[:-1]]))
    out[cell[starts]] += np.add.reduceat(per_snap[snap] * frac[:, None], starts, axis=0)


def pyramid(grid: np.ndarray, nr_levels: int, weights: np.ndarray | None = None) -> list[np.ndarray]:
    """``nr_levels`` grids, coarsest first: each halves the finer one's both axes by averaging.

    ``weights`` (same shape) makes the averages weighted; cells of weight 0 do not count.
    """
    levels = [grid]
    w = np.ones_like(grid) if weights is None else weights
    for _ in range(nr_levels - 1):
        g, w_ = levels[-1], w
        nt, na = g.shape
        ws = w_.reshape(nt // 2, 2, na // 2, 2).sum(axis=(1, 3))
        gs = (g * w_).reshape(nt // 2, 2, na // 2, 2).sum(axis=(1, 3))
        levels.append(np.where(ws > 0, gs / np.maximum(ws, 1e-30), -1 if weights is not None else 0)
                      .astype(np.float32))
        w = ws
    return levels[::-1]


# --- everything the page shows -------------------------------------------------------------------

def encode_array(values: np.ndarray) -> dict:
    """A numeric array for the page: dtype, shape and its little-endian bytes, deflated, in base64."""
    values = np.ascontiguousarray(values)
    raw = values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
    return {"dtype": values.dtype.name, "shape": list(values.shape),
            "b64": base64.b64encode(zlib.compress(raw, 1)).decode("ascii")}


def heat_scale(max_heat: float) -> int:
    """Integer steps per sample stored in uint16 cells: whole sample counts decode exactly."""
    return max(1, int(65535 // max(max_heat, 1.0)))


def _level_json(heat: np.ndarray, age: np.ndarray, scale: int) -> dict:
    # address-major (rows are addresses, y) so the page slices plot rows without copying columns
    heat_q = np.minimum(np.rint(heat.T * scale), 65535).astype(np.uint16)      # heat >= 0
    age_q = np.where(age.T < 0, AGE_MAX, np.minimum(np.rint(age.T), AGE_MAX - 1)).astype(np.uint16)
    return {"nt": int(heat.shape[0]), "na": int(heat.shape[1]), "heat": encode_array(heat_q),
            "age": encode_array(age_q)}


def _rank_key(acc: np.ndarray, sizes: np.ndarray, age: np.ndarray) -> np.ndarray:
    """One int64 per region ordering by ``acc``, then size, then age; each field saturates.

    In place on two buffers: every fresh 48 MB temporary costs page faults on 6 M regions.
    """
    key = np.maximum(acc, 0)
    np.minimum(key, (1 << 15) - 1, out=key)
    key <<= 47
    field = np.right_shift(sizes, 12)
    np.minimum(field, (1 << 31) - 1, out=field)
    field <<= 16
    key |= field
    np.maximum(age, 0, out=field)
    np.minimum(field, (1 << 16) - 1, out=field)
    key |= field
    return key


def hot_cold_ranges(rec: Record, sizes: np.ndarray, nr_rows: int = TABLE_ROWS) -> tuple[list[dict], list[dict]]:
    """The hottest and the coldest address ranges of a single-target record.

    Hottest: most accesses, then largest, then oldest; coldest: fewest accesses, then largest,
    then oldest. Each address range is listed once, at the snapshot where it ranks best (the
    earliest among equals). ``sizes`` are the regions' sizes (region_sizes).
    """
    snap_of = rec.snapshot_index()
    top_acc = int(rec.nr_accesses.max())

    def top(key: np.ndarray) -> list[dict]:
        want = min(len(key), 64 * nr_rows)
        while True:
            cand = np.argpartition(key, len(key) - want)[len(key) - want:] if want < len(key) else np.arange(len(key))
            order = cand[np.lexsort((cand, -key[cand]))]
            rows, seen = [], set()
            for i in order.tolist():
                span = (int(rec.start[i]), int(rec.end[i]))
                if span in seen:
                    continue
                seen.add(span)
                s = int(snap_of[i])
                rows.append({"start": span[0], "end": span[1], "nr_accesses": int(rec.nr_accesses[i]),
                             "age": int(rec.age[i]), "snapshot_start": int(rec.start_ns[s]),
                             "snapshot_end": int(rec.end_ns[s])})
                if len(rows) == nr_rows:
                    return rows
            if want == len(key):
                return rows
            want = min(len(key), want * 8)

    return (top(_rank_key(rec.nr_accesses, sizes, rec.age)),
            top(_rank_key(top_acc - rec.nr_accesses, sizes, rec.age)))


def wss_thresholds(max_nr_accesses: int) -> np.ndarray:
    """Slider positions: every access count from 1 up to the maximum, at most MAX_THRESHOLDS of them."""
    top = max(int(max_nr_accesses), 1)
    if top <= MAX_THRESHOLDS:
        return np.arange(1, top + 1)
    return np.unique(np.rint(np.linspace(1, top, MAX_THRESHOLDS)).astype(np.int64))


def wss_by_threshold(rec: Record, thresholds: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
    """``out[i, s]``: bytes of snapshot s's regions with nr_accesses >= thresholds[i]."""
    sizes = region_sizes(rec) if sizes is None else sizes
    level = np.searchsorted(thresholds, rec.nr_accesses, side="right")   # thresholds met
    hist = np.bincount(rec.snapshot_index() * (len(thresholds) + 1) + level, sizes,
                       minlength=rec.nr_snapshots * (len(thresholds) + 1))
    hist = hist.reshape(rec.nr_snapshots, len(thresholds) + 1)
    at_least = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]
    return at_least[:, 1:].T.astype(np.float64)


def target_data(tid: int, rec: Record, max_nr_accesses: int, levels: int = NR_LEVELS) -> dict:
    """Everything the page shows about one target."""
    if not rec.nr_regions_total:
        raise DamoError(f"target {tid} has no region: the record holds no address of it")
    guide = guide_of(rec, tid)
    axis = AddressAxis.of_areas(guide.areas)
    overview_t = min(OVERVIEW_TIME_CELLS, max(16, 1 << (rec.nr_snapshots - 1).bit_length()))
    nt, na = overview_t << (levels - 1), OVERVIEW_ADDR_CELLS << (levels - 1)
    heat, age, (t0, t1) = heat_grids(rec, axis, nt, na)
    raw_level = None
    raw = axis
    if len(axis.start) > 1:      # with one area the raw axis is the collapsed one
        raw = raw_axis(int(axis.start[0]), int(axis.end[-1]))
        raw_heat, _, _ = heat_grids(rec, raw, overview_t * 2, OVERVIEW_ADDR_CELLS * 4, with_age=False)
    scale = heat_scale(max_nr_accesses)
    age_weight = (age >= 0).astype(np.float32)
    heat_levels = pyramid(heat, levels)
    age_levels = pyramid(np.maximum(age, 0), levels, age_weight)
    age_levels[-1] = age
    if len(axis.start) > 1:
        raw_level = _level_json(raw_heat, np.full(raw_heat.shape, -1.0), scale)
    thresholds = wss_thresholds(max_nr_accesses)
    sizes = region_sizes(rec)
    hottest, coldest = hot_cold_ranges(rec, sizes)
    dist = wss_percentiles(rec, WSS_PERCENTILES)
    return {
        "target_id": tid, "t0": t0, "t1": t1, "axis": axis.to_json(), "raw_axis": raw.to_json(),
        "heat_scale": scale, "levels": [_level_json(h, a, scale) for h, a in zip(heat_levels, age_levels)],
        "raw_level": raw_level,
        "snapshot_end": encode_array(((rec.end_ns - t0) / 1e9).astype(np.float64)),
        "nr_regions": encode_array(rec.regions_per_snapshot().astype(np.int32)),
        "wss_thresholds": thresholds.tolist(), "wss": encode_array(wss_by_threshold(rec, thresholds, sizes)),
        "wss_percentiles": {str(p): int(v) for p, v in zip(WSS_PERCENTILES, next(iter(dist.values())).tolist())},
        "hottest": hottest, "coldest": coldest, "nr_snapshots": rec.nr_snapshots,
        "nr_regions_total": rec.nr_regions_total,
    }


def metadata_rows(meta: RecordMeta, record: Record, source: str) -> list[list[str]]:
    """(name, value) pairs for the metadata table."""
    from damo.fmt import format_time_ns, format_time_us

    def us(v):
        return format_time_us(v) if v else "unknown"

    duration = int(record.end_ns.max() - record.start_ns.min()) if record.nr_snapshots else 0
    rows = [["file", source], ["target kind", meta.target_kind], ["target", meta.target or "unknown"],
            ["intervals (sample / aggr / update)", f"{us(meta.sample_us)} / {us(meta.aggr_us)} / {us(meta.update_us)}"],
            ["nr_regions limits", f"{meta.min_nr_regions} .. {meta.max_nr_regions}"],
            ["duration", format_time_ns(duration)],
            ["snapshots / regions", f"{record.nr_snapshots:,} / {record.nr_regions_total:,}"],
            ["kernel", meta.kernel_release or "unknown"],
            ["recorded by", meta.tool_version or "unknown"]]
    if meta.start_time:
        rows.append(["started", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(meta.start_time))])
    for key, value in sorted(meta.extra.items()):
        if isinstance(value, (str, int, float)) and len(str(value)) < 200:
            rows.append([f"label: {key}", str(value)])
    rows.append(["report by", f"damo-profiler {__version__}"])
    return rows


def report_data(record: Record, source: str, levels: int = NR_LEVELS) -> dict:
    """The page's data: metadata and one entry per target, in order of first appearance."""
    if not record.nr_snapshots:
        raise DamoError(f"{source}: the record has no snapshot")
    meta = record.meta
    observed = int(record.nr_accesses.max()) if record.nr_regions_total else 0
    max_nr_accesses = max(meta.max_nr_accesses or 0, observed, 1)
    # A tuned record's aggregation interval changes from snapshot to snapshot: no one Hz scale fits
    # the cells, which then show accesses per aggregation.
    aggr_us = None if meta.intervals_goal else meta.aggr_us
    return {"title": os.path.basename(source), "metadata": metadata_rows(meta, record, source),
            "aggr_us": aggr_us, "sample_us": meta.sample_us, "max_nr_accesses": max_nr_accesses,
            "default_acc_thres": 1, "exclude_samples": 20,
            "targets": [target_data(tid, rec, max_nr_accesses, levels) for tid, rec in record.split_targets()]}


# --- the page --------------------------------------------------------------------------------------

def plotly_js() -> str:
    """plotly.min.js as shipped inside the plotly Python package."""
    try:
        return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise DamoError(PLOTLY_INSTALL_HINT) from err


def _asset(name: str) -> str:
    return (resources.files("damo") / "html_assets" / name).read_text(encoding="utf-8")


def _script_safe(text: str) -> str:
    """Text that cannot close its <script> element early."""
    return text.replace("</", "<\\/")


def _json_script_safe(data: dict) -> str:
    """JSON for a <script> element: every '<' (only ever inside strings) as \\u003c, so no record
    text such as a command line can end the element or open an HTML comment."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


def render_page(data: dict) -> str:
    """The whole HTML document."""
    page = _asset("report.html")
    parts = {"TITLE": html.escape(f"damo report: {data['title']}"), "STYLE": _asset("report.css"),
             "PLOTLY": _script_safe(plotly_js()), "DATA": _json_script_safe(data),
             "SCRIPT": _script_safe(_asset("report.js"))}
    for key, value in parts.items():
        page = page.replace("{{" + key + "}}", value, 1)
    return page


def write_page(text: str, path: str) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, renamed into place."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".damo-html-", dir=directory)
    except OSError as err:
        raise DamoError(f"{path}: cannot write the report: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as err:
        os.unlink(tmp)
        raise DamoError(f"{path}: cannot write the report: {err.strerror}") from None


def write_report(record: Record, source: str, path: str, levels: int = NR_LEVELS) -> None:
    """Analyse ``record`` and write its page to ``path``."""
    plotly_js()                      # fail before the analysis when plotly is missing
    write_page(render_page(report_data(record, source, levels)), path)


# --- command line ----------------------------------------------------------------------------------

DESCRIPTION = """\
Write one self-contained HTML page of the record, to open in any browser without a server or
network: a zoomable time x address heatmap (mapped areas with the gaps collapsed, or raw
addresses; hover for the access rate in Hz and the age), the working set size over time with a
threshold slider and its percentiles, the number of regions, a sortable table of the hottest and
coldest address ranges (a click shows one in the heatmap), and the record's metadata.
Needs plotly: pip install 'damo-profiler[html]'."""

EXAMPLES = """\
examples:
  damo report html -i stairs.data -o stairs.html     # then open stairs.html in a browser
  damo report html                                   # damon.data to report.html
  damo report html --tid 0 --address_range 0x7f0000000000 0x7f0010000000 -o heap.html"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_argument(parser)
    parser.add_argument("-o", "--output", default="report.html", metavar="FILE",
                        help="the HTML file to write (default: report.html)")
    add_target_option(parser, "every target, one at a time in the page")
    add_time_range_option(parser, "the whole record")
    add_address_range_option(parser, "show only the addresses in [START, END) (default: all)")


def select(record: Record, tid: int | None, time_range, address_range) -> Record:
    """The part of the record the options ask for: one target, snapshots overlapping a time range
    (absolute ns), regions cut to an address range."""
    if tid is not None:
        record = select_target(record, tid)
    if time_range:
        start, end = time_range
        if not start < end:
            raise DamoError(f"--time_range: START ({start}) must be below END ({end})")
        record = record.select((record.end_ns > start) & (record.start_ns < end))
        if not record.nr_snapshots:
            raise DamoError(f"--time_range: no snapshot between {start} and {end} ns")
    if address_range:
        record = clip_addresses(record, address_range)
    return record


def run(args: argparse.Namespace) -> int:
    from damo.formats import read_record
    from damo.progress import stderr_console

    console = stderr_console()
    record = select(read_record(args.input), args.tid, args.time_range, args.address_range)
    if console.is_terminal:
        with console.status("writing the HTML report"):
            write_report(record, args.input, args.output)
    else:
        write_report(record, args.input, args.output)
    return 0
