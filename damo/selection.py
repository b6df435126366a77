"""Access-pattern selection: which snapshots and regions of a record a report looks at.

Every selection is a pure function of a ``Record``: either a boolean mask over its snapshots
(``*_mask``, apply it with ``Record.select``) or a new ``Record``. Reports select first and
analyse what is left, so the same option means the same thing in every report. The
``add_*_option`` builders give those reports one spelling, metavar and default per option.

Target (``--tid``), time range (``--time_range``, raw's ``--duration``), address range
(``--address_range``), snapshot index (the first snapshots of each target that damo skips,
``--exclude_samples``), and damo 3.x's access-pattern filters (``--sz_region``,
``--access_rate``, ``--age``, ``--address``, ``--sz_snapshot``, ``--snapshot_time``,
``--snapshot_idx``, ``--temperature``: ``AccessFilter``, ``apply_access_filter``,
``add_filter_arguments``), described at that section.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

import numpy as np

from damo.errors import DamoError
from damo.model import Record
# the shared option builders live with the option types, free of numpy (re-exported here)
from damo.options import (add_address_range_option, add_duration_option, add_exclude_samples_option,  # noqa: F401
                          add_target_option, add_time_range_option, address)


# --- targets -----------------------------------------------------------------------------------

def target_order(record: Record) -> np.ndarray:
    """Per snapshot: the index of its target among the record's targets, in first-seen order."""
    order = {tid: i for i, tid in enumerate(record.target_ids())}
    uniq, inverse = np.unique(record.target_id, return_inverse=True)
    return np.array([order[int(u)] for u in uniq], dtype=np.int64)[inverse]


def target_mask(record: Record, target_id: int) -> np.ndarray:
    """The snapshots of one target."""
    return record.target_id == np.uint64(target_id)


def select_target(record: Record, target_id: int) -> Record:
    """The record of one target (``record`` itself when it is the only one)."""
    ids = record.target_ids()
    if target_id not in ids:
        raise DamoError(f"no target {target_id} in the record")
    return record if len(ids) == 1 else record.select(target_mask(record, target_id))


# --- snapshot index ----------------------------------------------------------------------------

def snapshot_rank(record: Record, targets: np.ndarray | None = None) -> np.ndarray:
    """Per snapshot: how many snapshots of the same target come before it (``targets`` from
    ``target_order``, computed when not given)."""
    target = target_order(record) if targets is None else targets
    order = np.argsort(target, kind="stable")
    sorted_t = target[order]
    first = np.searchsorted(sorted_t, sorted_t, side="left")
    rank = np.empty(len(target), dtype=np.int64)
    rank[order] = np.arange(len(target)) - first
    return rank


def nr_skipped(nr_snapshots: int, exclude: int) -> int:
    """How many leading snapshots of one target ``--exclude_samples N`` drops; a negative N
    keeps only the last -N, as the Python slice in damo does."""
    if exclude >= 0:
        return min(exclude, nr_snapshots)
    return max(nr_snapshots + exclude, 0)


def skip_first_mask(record: Record, exclude: int, targets: np.ndarray | None = None) -> np.ndarray:
    """All snapshots but the first ``exclude`` (>= 0) of each target."""
    return snapshot_rank(record, targets) >= exclude


# --- time --------------------------------------------------------------------------------------

def duration_window(offsets_s: np.ndarray, duration: tuple[float, float]) -> np.ndarray:
    """Positions of one target's snapshots to keep for raw's ``--duration FROM TO``.

    ``offsets_s`` are the snapshots' start times in seconds from the target's first snapshot.
    A snapshot is kept when its offset is at least FROM; the selection stops at the first one
    past TO, as damo's does.
    """
    past = np.flatnonzero(offsets_s > duration[1])
    stop = int(past[0]) if len(past) else len(offsets_s)
    return np.flatnonzero(offsets_s[:stop] >= duration[0])


# --- addresses ---------------------------------------------------------------------------------

def check_address_range(address_range: tuple[int, int]) -> tuple[int, int]:
    """``(START, END)`` if START < END and both are addresses; else a DamoError naming the option."""
    lo, hi = int(address_range[0]), int(address_range[1])
    if not 0 <= lo < hi:
        raise DamoError(f"--address_range: START ({lo}) must be below END ({hi}), both not negative")
    return lo, hi


def clip_addresses(record: Record, address_range: tuple[int, int]) -> Record:
    """The same snapshots with their regions cut to [START, END); regions outside are dropped."""
    lo, hi = check_address_range(address_range)
    return record.clip(lo, hi)


# --- damo 3.x's access-pattern filters ------------------------------------------------------
#
# ``AccessFilter`` holds the ranges of ``--sz_region``, ``--access_rate``, ``--age``, ``--address``,
# ``--sz_snapshot``, ``--snapshot_time``, ``--snapshot_idx`` and ``--temperature``;
# ``apply_access_filter`` keeps the regions and snapshots inside them with boolean masks over the
# record's columns (no loop over regions). The order and rules are damo 3.4.3's:
#
# 1. regions whose size, access rate (percent of the samples of an aggregation, truncated to an
#    integer) and age (microseconds) lie in the inclusive ranges;
# 2. regions cut to the ``--address`` ranges (``[start, end)``), the parts outside dropped;
# 3. snapshots whose total size (of the regions left) lies in a ``--sz_snapshot`` range, inclusive;
# 4. snapshots lying wholly inside a ``--snapshot_time`` range (absolute ns), inclusive;
# 5. snapshots whose index among those left (per target) lies in a ``--snapshot_idx`` range;
# 6. regions whose temperature lies in a ``--temperature`` range, inclusive.

ULONG_MAX = 2**64 - 1
DEFAULT_TEMPERATURE_WEIGHTS = (0, 100, 100)

SIZE_UNITS = {"B": 1, "K": 1 << 10, "KB": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
              "MiB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GiB": 1 << 30, "T": 1 << 40,
              "TB": 1 << 40, "TiB": 1 << 40, "P": 1 << 50, "PB": 1 << 50, "PiB": 1 << 50,
              "E": 1 << 60, "EB": 1 << 60, "EiB": 1 << 60}
TIME_UNITS_NS = {"ns": 1, "us": 1000, "ms": 1000_000, "s": 10**9, "m": 60 * 10**9,
                 "h": 3600 * 10**9, "d": 86400 * 10**9}


def _number(text: str) -> float:
    cleaned = text.replace(",", "")
    try:
        return int(cleaned)
    except ValueError:
        return float(cleaned)


def parse_size(text: str) -> int:
    """``4096``, ``4K``, ``1.5 MiB``, ``min``, ``max``: bytes (damo's units, binary)."""
    text = text.strip()
    if text == "min":
        return 0
    if text == "max":
        return ULONG_MAX
    for width in (3, 2, 1):
        unit = text[-width:]
        if len(text) > width and unit in SIZE_UNITS:
            return min(ULONG_MAX, int(_number(text[:-width].strip()) * SIZE_UNITS[unit]))
    return min(ULONG_MAX, int(_number(text)))


def parse_time_ns(text: str, bare_unit_ns: int = 1) -> float:
    """``100ms``, ``1.5 s``, ``2 m 3 s``, ``min``, ``max``: nanoseconds; a bare number is in ``bare_unit_ns``."""
    text = text.strip()
    if text == "min":
        return 0
    if text == "max":
        return ULONG_MAX
    fields = text.split()
    if len(fields) > 1:
        return sum(parse_time_ns("".join(fields[i:i + 2]), bare_unit_ns) for i in range(0, len(fields), 2))
    if len(text) > 2 and text[-2:] in ("ns", "us", "ms"):
        return _number(text[:-2]) * TIME_UNITS_NS[text[-2:]]
    if len(text) > 1 and text[-1] in "smhd":
        return _number(text[:-1]) * TIME_UNITS_NS[text[-1]]
    return _number(text) * bare_unit_ns


def parse_percent(text: str) -> float:
    """``50``, ``50%``, ``min`` (0), ``max`` (100): an access rate in percent."""
    text = text.strip()
    if text == "min":
        return 0
    if text == "max":
        return 100
    return _number(text[:-1] if text.endswith("%") else text)


@dataclass
class AccessFilter:
    """Inclusive ranges; ``None`` means no filter of that kind."""

    sz_region: tuple[int, int] | None = None
    access_rate: tuple[float, float] | None = None      # percent
    age_us: tuple[float, float] | None = None
    address: list[tuple[int, int]] | None = None
    sz_snapshot: list[tuple[int, int]] | None = None
    snapshot_time: list[tuple[float, float]] | None = None   # absolute ns
    snapshot_idx: list[tuple[int, int]] | None = None
    temperature: list[tuple[int, int]] | None = None
    temperature_weights: tuple[int, int, int] = field(default=DEFAULT_TEMPERATURE_WEIGHTS)

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in (
            "sz_region", "access_rate", "age_us", "address", "sz_snapshot", "snapshot_time",
            "snapshot_idx", "temperature"))


def _range_pair(option: str, pair, parse, form: str):
    try:
        low, high = parse(pair[0]), parse(pair[1])
    except (ValueError, IndexError):
        raise DamoError(f"{option}: cannot read {' '.join(pair)!r}; expected {form}") from None
    if isinstance(low, float) and math.isnan(low) or isinstance(high, float) and math.isnan(high):
        raise DamoError(f"{option}: cannot read {' '.join(pair)!r}; expected {form}")
    if low > high:
        raise DamoError(f"{option}: the range {' '.join(pair)} is reversed; expected {form} with MIN <= MAX")
    return low, high


def _sorted_disjoint(option: str, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    ranges = sorted(ranges)
    for (_, prev_end), (start, _) in zip(ranges, ranges[1:]):
        if prev_end > start:
            raise DamoError(f"{option}: the ranges overlap; give disjoint ranges")
    return ranges


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """damo 3.x's access-pattern filter options (``damo help access_filter_options``)."""
    group = parser.add_argument_group("access-pattern filters (all ranges inclusive)")
    group.add_argument("--sz_region", nargs=2, metavar=("MIN", "MAX"),
                       help="region size range, e.g. 4K 2MiB (default: min max)")
    group.add_argument("--access_rate", nargs=2, metavar=("MIN", "MAX"),
                       help="access rate range in percent of the samples, e.g. 50 100 (default: min max)")
    group.add_argument("--age", nargs=2, metavar=("MIN", "MAX"),
                       help="age range: seconds, or with a unit (500ms, 2s, 1m) (default: min max)")
    group.add_argument("--address", nargs=2, action="append", metavar=("START", "END"),
                       help="keep only this address range, [START, END); repeatable (default: all)")
    group.add_argument("--sz_snapshot", nargs=2, action="append", metavar=("MIN", "MAX"),
                       help="snapshot total size range; repeatable (default: all)")
    group.add_argument("--snapshot_time", nargs=2, action="append", metavar=("START", "END"),
                       help="snapshots wholly inside this absolute time range, ns or with a unit; "
                            "repeatable (default: all)")
    group.add_argument("--snapshot_idx", nargs=2, action="append", metavar=("START", "END"),
                       help="snapshot index range per target; repeatable (default: all)")
    group.add_argument("--temperature", nargs=2, action="append", metavar=("MIN", "MAX"),
                       help="region temperature range (see --temperature_weights); repeatable (default: all)")


def filter_from_args(args: argparse.Namespace) -> AccessFilter:
    """The AccessFilter of the command line; a malformed or reversed range is a DamoError."""
    weights = tuple(getattr(args, "temperature_weights", None) or DEFAULT_TEMPERATURE_WEIGHTS)
    filt = AccessFilter(temperature_weights=weights)
    size_form = "MIN MAX sizes (4096, 4K, 2MiB, min, max)"
    if args.sz_region:
        filt.sz_region = _range_pair("--sz_region", args.sz_region, parse_size, size_form)
    if args.access_rate:
        filt.access_rate = _range_pair("--access_rate", args.access_rate, parse_percent,
                                       "MIN MAX percents (0-100, min, max)")
    if args.age:
        filt.age_us = tuple(v / 1000 if v != ULONG_MAX else v for v in _range_pair(
            "--age", args.age, lambda t: parse_time_ns(t, 10**9), "MIN MAX ages (seconds or 500ms, 2s, min, max)"))
    if args.address:
        filt.address = _sorted_disjoint("--address", [
            _range_pair("--address", p, lambda t: parse_size(t) if not t.startswith("0x") else int(t, 16),
                        "START END addresses") for p in args.address])
    if args.sz_snapshot:
        filt.sz_snapshot = _sorted_disjoint("--sz_snapshot", [
            _range_pair("--sz_snapshot", p, parse_size, size_form) for p in args.sz_snapshot])
    if args.snapshot_time:
        filt.snapshot_time = [_range_pair("--snapshot_time", p, parse_time_ns,
                                          "START END times (ns, or 100ms, 2s, min, max)")
                              for p in args.snapshot_time]
    if args.snapshot_idx:
        filt.snapshot_idx = [_range_pair("--snapshot_idx", p, lambda t: int(_number(t)), "START END integers")
                             for p in args.snapshot_idx]
    if args.temperature:
        filt.temperature = [_range_pair("--temperature", p, lambda t: int(t), "MIN MAX integers")
                            for p in args.temperature]
    return filt


# --- per-region quantities, shared with the reports ------------------------------------------

def snapshot_aggr_us(record: Record, sample_us: int, aggr_us: int) -> list[float]:
    """Each snapshot's aggregation interval in a tuned record, by damo 3.4.3's rule: its own
    sampling interval times the record's aggregation/sampling ratio; without one, its duration,
    unless that is within 10% of the record's aggregation interval."""
    ratio = aggr_us / sample_us
    own = record.snapshot_sample_us
    if own is not None:
        return [v * ratio for v in own.tolist()]
    out = []
    for start, end in zip(record.start_ns.tolist(), record.end_ns.tolist()):
        duration_us = (end - start) / 1000
        out.append(aggr_us if abs(duration_us - aggr_us) / aggr_us < 0.1 else duration_us)
    return out


def access_percent(nr_accesses: np.ndarray, sample_us: int, aggr_us: int) -> np.ndarray:
    """damo's access rate: ``int(samples * 100.0 / (aggr / sample))`` per region (int64)."""
    max_samples = aggr_us / sample_us
    return np.trunc(nr_accesses * 100.0 / max_samples).astype(np.int64)


def age_us(age: np.ndarray, aggr_us: int) -> np.ndarray:
    """Age in microseconds; an unknown age (-1) counts as 0."""
    return np.maximum(age, 0) * np.int64(aggr_us)


def temperatures(size, percent: np.ndarray, age: np.ndarray, weights) -> np.ndarray:
    """damo 3.4.3's temperature: ``size*w0 + percent*w1 + age_us*w2``, negated when never accessed.

    Integer columns give exact int64 (object ints if that could overflow); float sizes give floats,
    computed in damo's order.
    """
    w0, w1, w2 = (int(w) for w in weights)
    if np.asarray(size).dtype.kind == "f":
        score = (size * float(w0) + (percent * w1).astype(np.float64)) + (age * w2).astype(np.float64)
    else:
        bound = (int(np.max(size, initial=0)) * abs(w0) + 100 * abs(w1) + int(np.max(age, initial=0)) * abs(w2))
        if bound < 2**62:
            score = np.asarray(size, dtype=np.int64) * w0 + percent * w1 + age * w2
        else:
            score = (np.asarray(size).astype(object) * w0 + percent.astype(object) * w1
                     + age.astype(object) * w2)
    return np.where(percent > 0, score, -score)


def _ranges_mask(values: np.ndarray, ranges) -> np.ndarray:
    keep = np.zeros(len(values), dtype=bool)
    for low, high in ranges:
        keep |= (values >= low) & (values <= high)
    return keep


def _monotone_mask(values: np.ndarray, value_of, low, high) -> np.ndarray:
    """``low <= value_of(values) <= high`` for a non-decreasing ``value_of`` (access rate of
    nr_accesses, age in us of age): the range becomes bounds on ``values`` from a table of their
    few distinct values, so the big column is compared, never transformed (a filter's cost)."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    vmin, vmax = int(values.min()), int(values.max())
    if vmax - vmin > 1 << 20:
        mapped = value_of(values)
        return (mapped >= low) & (mapped <= high)
    table = value_of(np.arange(vmin, vmax + 1, dtype=np.int64))
    inside = np.flatnonzero((table >= low) & (table <= high))   # contiguous: value_of is monotone
    if len(inside) == 0:
        return np.zeros(len(values), dtype=bool)
    return (values >= vmin + inside[0]) & (values <= vmin + inside[-1])


def apply_access_filter(record: Record, filt: AccessFilter) -> Record:
    """The record with only the regions and snapshots that pass ``filt`` (see the module doc)."""
    if filt.is_empty():
        return record
    meta = record.meta
    if filt.sz_region or filt.access_rate or filt.age_us:
        keep = np.ones(record.nr_regions_total, dtype=bool)
        if filt.sz_region:
            size = (record.end - record.start).astype(np.int64)
            keep &= (size >= filt.sz_region[0]) & (size <= filt.sz_region[1])
        if meta.sample_us and meta.aggr_us:
            if filt.access_rate:
                keep &= _monotone_mask(record.nr_accesses, lambda n: access_percent(n, meta.sample_us, meta.aggr_us),
                                       *filt.access_rate)
            if filt.age_us:
                keep &= _monotone_mask(record.age, lambda a: age_us(a, meta.aggr_us), *filt.age_us)
        record = keep_regions(record, keep)
    if filt.address:
        record = clip_to_ranges(record, filt.address)
    if filt.sz_snapshot:
        totals = snapshot_totals(record)
        record = record.select(_ranges_mask(totals, filt.sz_snapshot))
    if filt.snapshot_time:
        keep = np.zeros(record.nr_snapshots, dtype=bool)
        for low, high in filt.snapshot_time:
            keep |= (record.start_ns >= low) & (record.end_ns <= high)
        record = record.select(keep)
    if filt.snapshot_idx:
        record = record.select(_ranges_mask(snapshot_rank(record), filt.snapshot_idx))
    if filt.temperature:
        size = (record.end - record.start).astype(np.int64)
        aggr = meta.aggr_us or 1
        pct = access_percent(record.nr_accesses, meta.sample_us or 1, aggr)
        temps = temperatures(size, pct, age_us(record.age, aggr), filt.temperature_weights)
        record = keep_regions(record, _ranges_mask(temps, filt.temperature))
    return record


def keep_regions(record: Record, keep: np.ndarray) -> Record:
    """The same snapshots holding only the regions where ``keep`` is true."""
    if keep.all():
        return record               # a filter that keeps every region costs one pass, not a copy
    counts = np.bincount(record.snapshot_index()[keep], minlength=record.nr_snapshots)
    offsets = np.zeros(record.nr_snapshots + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Record(record.meta, record.target_id, record.start_ns, record.end_ns, offsets,
                  record.start[keep], record.end[keep], record.nr_accesses[keep], record.age[keep])


def clip_to_ranges(record: Record, ranges: list[tuple[int, int]]) -> Record:
    """Regions cut to the sorted, disjoint ``[start, end)`` ranges, in address order per snapshot."""
    if len(ranges) == 1:
        return record.clip(*ranges[0])
    parts = [record.clip(lo, hi) for lo, hi in ranges]
    snap = np.concatenate([p.snapshot_index() for p in parts])
    order = np.argsort(snap, kind="stable")           # range order inside each snapshot = address order
    counts = np.bincount(snap, minlength=record.nr_snapshots)
    offsets = np.zeros(record.nr_snapshots + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])

    def col(name):
        return np.concatenate([getattr(p, name) for p in parts])[order]

    return Record(record.meta, record.target_id, record.start_ns, record.end_ns, offsets,
                  col("start"), col("end"), col("nr_accesses"), col("age"))


def snapshot_totals(record: Record) -> np.ndarray:
    """The total size of each snapshot's regions (int64)."""
    sizes = (record.end - record.start).astype(np.int64)
    totals = np.zeros(record.nr_snapshots, dtype=np.int64)
    nonempty = record.regions_per_snapshot() > 0
    if sizes.size:
        totals[nonempty] = np.add.reduceat(sizes, record.offsets[:-1][nonempty])
    return totals
