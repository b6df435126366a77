"""DAMON's monitoring core in user space (the kernel's ``mm/damon/core.c`` behaviour).

Regions are numpy columns per target, never per-region objects. All arithmetic follows the
kernel's unsigned integer arithmetic: ``//`` wherever C divides. The spec this follows is
``shared/docs/damon-core-spec.md``; section numbers below refer to it.

Time runs in samples (``passed`` counts sampling intervals). Operations sets that work on a
virtual clock (the simulator) let the context check a whole run of samples at once: nothing
the core does between two samples is observable until the next aggregation or ops update,
so a run of samples up to the next such event is exact, and the per-sample hot path becomes
a few numpy calls over a (samples x regions) matrix.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from damo.model import MonitoringAttrs

if TYPE_CHECKING:
    from damo.engine.ops import Operations

PAGE_SIZE = 4096
MIN_REGION = PAGE_SIZE          # DAMON_MIN_REGION; the kunit vectors use 1
UINT_MAX = (1 << 32) - 1
BP = 10000                      # basis points: nr_accesses_bp is nr_accesses * BP

_COLUMNS = ("start", "end", "nr_accesses", "nr_accesses_bp", "last_nr_accesses", "age")


def align_down(x, unit: int):
    return x // unit * unit


def align_up(x, unit: int):
    return (x + unit - 1) // unit * unit


def max_nr_accesses(attrs: MonitoringAttrs) -> int:
    """Samples per aggregation, capped like the kernel's ``damon_max_nr_accesses``."""
    return min(attrs.aggr_us // attrs.sample_us, UINT_MAX)


class Target:
    """A monitoring target: its regions as sorted, non-overlapping int64 columns.

    ``handle`` is whatever the operations set needs to find the address space (a pid, a
    model); the core never looks at it.
    """

    def __init__(self, handle=None, ranges: Sequence[tuple[int, int]] = (), target_id: int | None = None):
        self.handle = handle
        self.target_id = target_id     # reported id; None: the target's position in the context
        self.sampling_addr: np.ndarray | None = None   # [samples, regions] of the current check
        self.set_ranges(ranges)

    def set_ranges(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Replace the regions with fresh (zero-state) ones covering ``ranges``."""
        arr = np.asarray(list(ranges), dtype=np.int64).reshape(-1, 2)
        zeros = np.zeros(len(arr), dtype=np.int64)
        self.set_columns(arr[:, 0].copy(), arr[:, 1].copy(), zeros, zeros.copy(), zeros.copy(), zeros.copy())

    def set_columns(self, start, end, nr_accesses, nr_accesses_bp, last_nr_accesses, age) -> None:
        self.start = start
        self.end = end
        self.nr_accesses = nr_accesses
        self.nr_accesses_bp = nr_accesses_bp
        self.last_nr_accesses = last_nr_accesses
        self.age = age

    def columns(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, c) for c in _COLUMNS)

    def take(self, idx: np.ndarray) -> None:
        """Keep (or repeat) the regions at ``idx``: every column follows."""
        self.set_columns(*(c[idx] for c in self.columns()))

    @property
    def nr_regions(self) -> int:
        return len(self.start)

    def sizes(self) -> np.ndarray:
        return self.end - self.start

    def total_size(self) -> int:
        return int((self.end - self.start).sum())

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self.start.tolist(), self.end.tolist()))


# --- random numbers (damon_rand) ----------------------------------------------------------

_U32_SHIFT = np.uint64(32)
_U32_MASK = np.uint64(UINT_MAX)


def _u32_draws(rng: np.random.Generator, shape) -> np.ndarray:
    """Uniform 32-bit values (as uint64): the high halves of the generator's raw 64-bit output."""
    count = int(np.prod(shape))
    return (rng.bit_generator.random_raw(count) >> _U32_SHIFT).reshape(shape)


def damon_rand(rng: np.random.Generator, lo, hi, shape=None) -> np.ndarray:
    """Uniform integers in ``[lo, hi)``, elementwise; ``shape`` may add leading axes.

    The kernel's ``damon_rand`` passes ``hi - lo`` to ``get_random_u32_below`` as a u32, so a
    range of 4 GiB or more is truncated modulo 2**32 (a multiple of 2**32 becomes a full 32-bit
    draw); that is reproduced. A 32-bit draw maps to ``[0, span)`` by multiply-shift, as in the
    kernel (without its rejection step, whose bias is below span / 2**32).
    """
    lo = np.asarray(lo, dtype=np.int64)
    span = np.asarray(hi, dtype=np.int64) - lo
    span_u = span.astype(np.uint64) & _U32_MASK
    span_u = np.where(span_u == 0, np.uint64(1 << 32), span_u)
    draws = _u32_draws(rng, span.shape if shape is None else shape)
    return lo + ((draws * span_u) >> _U32_SHIFT).astype(np.int64)


# --- access rate (§2) ---------------------------------------------------------------------

def update_access_rate(t: Target, accessed: np.ndarray, window_len: int) -> None:
    """Apply ``damon_update_region_access_rate`` for a run of samples.

    ``accessed`` is bool [samples, regions]. The moving sum subtracts ``last*BP/len`` every
    sample and adds ``BP`` per access; over k samples that is exactly k subtractions and the
    sum of the adds, since nothing reads the intermediate values.
    """
    k = accessed.shape[0]
    hits = accessed.sum(axis=0, dtype=np.int64)
    length = window_len if window_len > 0 else 1
    t.nr_accesses_bp = t.nr_accesses_bp - k * (t.last_nr_accesses * BP // length) + hits * BP
    t.nr_accesses = t.nr_accesses + hits


def moving_sum(mvsum: int, nomvsum: int, len_window: int, new_value: int) -> int:
    """``damon_moving_sum``: the kernel's pseudo moving sum (kunit: damon_test_moving_sum)."""
    return mvsum - nomvsum // len_window + new_value


# --- merge (§3) ---------------------------------------------------------------------------

def merge_regions_of(t: Target, thres: int, sz_limit: int) -> None:
    """One ``damon_merge_regions_of`` pass: age every region, then let each absorb its followers.

    The absorbing region keeps its start and ``last_nr_accesses``; its ``nr_accesses`` and
    ``age`` become size-weighted floor averages, and the *already merged* value is what the
    next follower is compared with, so the pass is a left-to-right scan. Ages do not decide
    anything and are computed vectorised; the scan is a tight loop over plain ints.
    """
    nr = t.nr_accesses
    age = np.where(np.abs(nr - t.last_nr_accesses) > thres, 0, t.age + 1)
    n = len(nr)
    if n < 2:
        t.age = age
        return
    heads, chain_nr = _merge_chains(t.start.tolist(), t.end.tolist(), nr.tolist(), thres, sz_limit)
    if len(heads) == n:
        t.age = age
        return
    heads_arr = np.asarray(heads, dtype=np.int64)
    new_end = np.append(t.end[heads_arr[1:] - 1], t.end[-1])
    new_nr = np.asarray(chain_nr, dtype=np.int64)
    new_age = _chain_floor_averages(heads_arr, t.end - t.start, age)
    t.set_columns(t.start[heads_arr], new_end, new_nr, new_nr * BP, t.last_nr_accesses[heads_arr], new_age)


def _merge_chains(start: list, end: list, nr: list, thres: int, sz_limit: int) -> tuple[list, list]:
    """The merge decisions: the first region of every chain, and each chain's final nr_accesses."""
    heads = [0]
    chain_nr = []
    c_start, c_end, c_nr = start[0], end[0], nr[0]
    for i in range(1, len(start)):
        s, e, v = start[i], end[i], nr[i]
        # sz(prev) + sz(r) == e - c_start when the two are adjacent
        if s == c_end and -thres <= c_nr - v <= thres and e - c_start <= sz_limit:
            if v != c_nr:           # the average of equal values is that value: skip the division
                sl = c_end - c_start
                c_nr = (c_nr * sl + v * (e - s)) // (e - c_start)
            c_end = e
        else:
            heads.append(i)
            chain_nr.append(c_nr)
            c_start, c_end, c_nr = s, e, v
    chain_nr.append(c_nr)
    return heads, chain_nr


_FEW_CHAINS = 48     # below this many live chains, a numpy step costs more than a plain loop


def _chain_floor_averages(heads: np.ndarray, sizes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per chain, the kernel's running floor average ``v = (v*S + x*s) // (S + s)``.

    A chain whose members all hold one value averages to it. The others are folded
    vectorised across chains: step j folds the j-th member of every chain still that long,
    so the loop runs (longest mixed chain) times, not (regions) times; once only a few long
    chains are left, their tails are folded by plain loops.
    """
    acc_v = values[heads].copy()
    mixed = np.flatnonzero(np.minimum.reduceat(values, heads) != np.maximum.reduceat(values, heads))
    if len(mixed) == 0:
        return acc_v
    chain_end = np.append(heads[1:], len(sizes))
    lengths = (chain_end - heads)[mixed]
    order = mixed[np.argsort(-lengths, kind="stable")]    # longest first: the live set is a prefix
    sorted_len = -np.sort(-lengths, kind="stable")
    acc_s = sizes[heads].copy()
    for j in range(1, int(sorted_len[0])):
        nr_live = int(np.searchsorted(-sorted_len, -j, side="left"))
        if nr_live <= _FEW_CHAINS:
            for c in order[:nr_live].tolist():
                acc_v[c] = _fold_tail(int(acc_v[c]), int(acc_s[c]),
                                      sizes[heads[c] + j:chain_end[c]].tolist(),
                                      values[heads[c] + j:chain_end[c]].tolist())
            break
        live = order[:nr_live]
        idx = heads[live] + j
        s = sizes[idx]
        tot = acc_s[live] + s
        acc_v[live] = (acc_v[live] * acc_s[live] + values[idx] * s) // tot
        acc_s[live] = tot
    return acc_v


def _fold_tail(v: int, total: int, sizes: list, values: list) -> int:
    for s, x in zip(sizes, values):
        if x != v:
            v = (v * total + x * s) // (total + s)
        total += s
    return v


def kdamond_merge_regions(targets: Sequence[Target], threshold: int, sz_limit: int,
                          max_thres: int, max_nr_regions: int) -> None:
    """Merge passes with the threshold doubling while there are too many regions.

    Each extra pass ages every region again: the baseline kernel's behaviour.
    """
    thres = threshold
    while True:
        nr_regions = 0
        for t in targets:
            merge_regions_of(t, thres, sz_limit)
            nr_regions += t.nr_regions
        thres = max(1, thres * 2)
        if not (nr_regions > max_nr_regions and thres // 2 < max_thres):
            return


def region_sz_limit(targets: Sequence[Target], min_nr_regions: int, min_region: int = MIN_REGION) -> int:
    """``damon_region_sz_limit``: no merge may build a region larger than this."""
    total = sum(t.total_size() for t in targets)
    if min_nr_regions:
        total //= min_nr_regions
    return max(total, min_region)


# --- reset and split (§2, §4) -------------------------------------------------------------

def reset_aggregated(t: Target) -> None:
    """End of a window: ``last = nr``, ``nr = 0``; the moving sum is forced to ``last*BP``."""
    t.last_nr_accesses = t.nr_accesses
    t.nr_accesses_bp = t.nr_accesses * BP
    t.nr_accesses = np.zeros(t.nr_regions, dtype=np.int64)


def split_regions_at(t: Target, region_idx: np.ndarray, offsets: np.ndarray) -> None:
    """Split region ``region_idx[i]`` at ``start + offsets[i]``; every piece copies the state.

    Several cuts may hit one region; each offset must lie strictly inside its region.
    """
    n = t.nr_regions
    region_idx = np.asarray(region_idx, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    if len(region_idx) == 0:
        return
    piece_region = np.concatenate([np.arange(n, dtype=np.int64), region_idx])
    piece_start = np.concatenate([t.start, t.start[region_idx] + offsets])
    order = np.lexsort((piece_start, piece_region))
    piece_region = piece_region[order]
    piece_start = piece_start[order]
    piece_end = np.empty_like(piece_start)
    piece_end[:-1] = piece_start[1:]
    last_of_region = np.append(piece_region[1:] != piece_region[:-1], True)
    piece_end[last_of_region] = t.end
    t.take(piece_region)
    t.start = piece_start
    t.end = piece_end


def split_regions_of(t: Target, nr_subs: int, rng: np.random.Generator, min_region: int = MIN_REGION) -> None:
    """``damon_split_regions_of``: up to ``nr_subs`` pieces per region, cut at 10%..90%.

    With more than two pieces the left piece is cut again, as in the kernel, so a region's
    cuts come in falling order and its pieces start at ``[0, cut_k, ..., cut_1]``. A cut that
    aligns to 0 is skipped, and a region of at most two minimum regions is left alone.
    """
    n = t.nr_regions
    if n == 0 or nr_subs < 2:
        return
    size = t.end - t.start
    active = size > 2 * min_region
    if not active.any():
        return
    # damon_rand(1, 10) for every region and cut
    ratios = 1 + ((_u32_draws(rng, (nr_subs - 1, n)) * np.uint64(9)) >> _U32_SHIFT).astype(np.int64)
    if nr_subs == 2:
        sub = ratios[0] * size // 10 // min_region * min_region
        idx = np.flatnonzero(active & (sub > 0))
        if len(idx):
            _split_once(t, idx, t.start[idx] + sub[idx])
        return
    # offsets[:, 0] is the region's own start; column j > 0 holds cut nr_subs - j
    offsets = np.zeros((n, nr_subs), dtype=np.int64)
    valid = np.zeros((n, nr_subs), dtype=bool)
    valid[:, 0] = True
    for i in range(nr_subs - 1):
        if i:
            active &= size > 2 * min_region
        sub = ratios[i] * size // 10 // min_region * min_region
        ok = active & (sub > 0)                         # sub < size holds: ratio <= 9
        offsets[:, nr_subs - 1 - i] = sub
        valid[:, nr_subs - 1 - i] = ok
        size = np.where(ok, sub, size)
    flat = valid.ravel()
    if flat.sum() == n:
        return
    region = np.repeat(np.arange(n), valid.sum(axis=1))
    piece_start = (t.start[:, None] + offsets).ravel()[flat]
    piece_end = np.empty_like(piece_start)
    piece_end[:-1] = piece_start[1:]
    last_of_region = np.append(region[1:] != region[:-1], True)
    piece_end[last_of_region] = t.end
    t.take(region)
    t.start = piece_start
    t.end = piece_end


def _split_once(t: Target, idx: np.ndarray, at: np.ndarray) -> None:
    """Split each region ``idx[i]`` in two at address ``at[i]`` (``idx`` ascending)."""
    n = t.nr_regions
    counts = np.ones(n, dtype=np.int64)
    counts[idx] = 2
    region = np.repeat(np.arange(n), counts)
    right = idx + np.arange(1, len(idx) + 1)            # where the right pieces land
    t.take(region)
    t.start[right] = at
    t.end[right - 1] = at


@dataclass
class SplitState:
    """``last_nr_regions``: function-static in the kernel, so shared by every context.

    Each context gets its own by default (so two records in one process stay independent
    and deterministic); pass one object to several contexts to reproduce the sharing.
    """

    last_nr_regions: int = 0


def kdamond_split_regions(targets: Sequence[Target], max_nr_regions: int, state: SplitState,
                          rng: np.random.Generator, min_region: int = MIN_REGION) -> None:
    """Split into 3 pieces when the count stayed put and is small, else 2; not above max/2."""
    n = sum(t.nr_regions for t in targets)
    if n > max_nr_regions // 2:
        return            # baseline: last_nr_regions is not updated here
    nr_subs = 3 if (state.last_nr_regions == n and n < max_nr_regions // 3) else 2
    for t in targets:
        split_regions_of(t, nr_subs, rng, min_region)
    state.last_nr_regions = n


# --- region sets (§5) ---------------------------------------------------------------------

def three_regions(mappings: Sequence[tuple[int, int]], min_region: int = MIN_REGION) -> list[tuple[int, int]]:
    """``__damon_va_three_regions``: cut the two largest gaps out of the mapped span.

    Raises ValueError when there are fewer than two gaps (the kernel's -EINVAL).
    """
    if not mappings:
        raise ValueError("no mappings")
    first_gap = second_gap = (0, 0)
    start = mappings[0][0]
    prev_end = mappings[0][1]
    for m_start, m_end in mappings[1:]:
        gap = m_start - prev_end
        if gap > first_gap[1] - first_gap[0]:
            second_gap = first_gap
            first_gap = (prev_end, m_start)
        elif gap > second_gap[1] - second_gap[0]:
            second_gap = (prev_end, m_start)
        prev_end = m_end
    if first_gap[1] == first_gap[0] or second_gap[1] == second_gap[0]:
        raise ValueError("fewer than two gaps between the mappings")
    if first_gap[0] > second_gap[0]:
        first_gap, second_gap = second_gap, first_gap
    return [(align_up(start, min_region), align_up(first_gap[0], min_region)),
            (align_up(first_gap[1], min_region), align_up(second_gap[0], min_region)),
            (align_up(second_gap[1], min_region), align_up(prev_end, min_region))]


def evenly_split(start: int, end: int, nr_pieces: int, min_region: int = MIN_REGION) -> list[tuple[int, int]] | None:
    """``damon_va_evenly_split_region``: ``nr_pieces`` aligned pieces, the last one to ``end``.

    None where the kernel returns -EINVAL (no pieces, or pieces smaller than min_region).
    """
    if nr_pieces <= 0:
        return None
    if nr_pieces == 1:
        return [(start, end)]
    piece = align_down((end - start) // nr_pieces, min_region)
    if piece == 0:
        return None
    bounds = [start + i * piece for i in range(nr_pieces)] + [end]
    return list(zip(bounds[:-1], bounds[1:]))


def va_init_ranges(three: Sequence[tuple[int, int]], min_nr_regions: int,
                   min_region: int = MIN_REGION) -> list[tuple[int, int]]:
    """``damon_va_init`` for one target: the three regions, each evenly split."""
    total = sum(e - s for s, e in three)
    sz = max(total // min_nr_regions, min_region)
    out: list[tuple[int, int]] = []
    for s, e in three:
        pieces = evenly_split(s, e, (e - s) // sz, min_region)
        out += pieces if pieces else [(s, e)]     # the kernel ignores the split's error
    return out


def set_regions(t: Target, ranges: Sequence[tuple[int, int]], min_region: int = MIN_REGION) -> None:
    """``damon_set_regions``: fit the regions to ``ranges`` (sorted, non-overlapping).

    Regions touching no range go; each range's first and last intersecting regions are
    stretched to its aligned bounds and the holes between them get fresh regions; a range
    no region touches becomes one fresh region. Surviving regions keep their state.
    """
    ranges = sorted((int(s), int(e)) for s, e in ranges)
    cols = list(t.columns())
    start, end = cols[0], cols[1]
    if ranges:
        rs = np.array([r[0] for r in ranges], dtype=np.int64)
        re = np.array([r[1] for r in ranges], dtype=np.int64)
        # region i intersects range j iff start_i < re_j and end_i > rs_j
        j = np.searchsorted(re, start, side="right")           # first range ending after start
        keep = (j < len(ranges)) & (end > rs[np.minimum(j, len(ranges) - 1)])
    else:
        keep = np.zeros(len(start), dtype=bool)
    cols = [c[keep] for c in cols]
    new_pieces: list[tuple[int, int]] = []
    for r_start, r_end in ranges:
        start, end = cols[0], cols[1]
        hit = np.flatnonzero((start < r_end) & (end > r_start))
        if len(hit) == 0:
            new_pieces.append((align_down(r_start, min_region), align_up(r_end, min_region)))
            continue
        first, last = hit[0], hit[-1]
        start[first] = align_down(r_start, min_region)
        end[last] = align_up(r_end, min_region)
        holes = np.flatnonzero(end[first:last] != start[first + 1:last + 1]) + first
        new_pieces += [(int(end[h]), int(start[h + 1])) for h in holes]
    if new_pieces:
        arr = np.asarray(new_pieces, dtype=np.int64)
        zeros = np.zeros(len(arr), dtype=np.int64)
        cols = [np.concatenate([cols[0], arr[:, 0]]), np.concatenate([cols[1], arr[:, 1]])] + \
               [np.concatenate([c, zeros]) for c in cols[2:]]
        order = np.argsort(cols[0], kind="stable")
        cols = [c[order] for c in cols]
    t.set_columns(*cols)


# --- attributes (§1) ----------------------------------------------------------------------

@dataclass(frozen=True)
class IntervalsGoal:
    """``damon_intervals_goal``: aim for ``access_bp`` of the possible accesses per
    ``aggrs`` aggregations, keeping the sampling interval within [min, max] µs. ``aggrs == 0``
    turns tuning off."""

    access_bp: int = 0
    aggrs: int = 0
    min_sample_us: int = 0
    max_sample_us: int = 0


def check_attrs(attrs: MonitoringAttrs, goal: IntervalsGoal | None = None) -> None:
    """``damon_set_attrs`` validation; ValueError where the kernel returns -EINVAL."""
    if goal is not None and goal.aggrs:
        if goal.min_sample_us > goal.max_sample_us:
            raise ValueError("the intervals goal's min_sample_us is above its max_sample_us")
        if not goal.min_sample_us <= attrs.sample_us <= goal.max_sample_us:
            raise ValueError("the sampling interval is outside the intervals goal's range")
    if attrs.min_nr_regions < 3:
        raise ValueError("min_nr_regions must be at least 3")
    if attrs.min_nr_regions > attrs.max_nr_regions:
        raise ValueError("min_nr_regions is larger than max_nr_regions")
    if attrs.sample_us > attrs.aggr_us:
        raise ValueError("the sampling interval is longer than the aggregation interval")


def feed_loop_next_input(last_input: int, score: int) -> int:
    """``damon_feed_loop_next_input``: the next control input for a score against goal 10000."""
    goal = min_input = BP
    if score == goal:
        return last_input
    if score >= goal * 2:
        return min_input
    compensation = last_input * abs(score - goal) // goal
    if score < goal:
        return last_input + compensation
    return max(last_input - compensation, min_input)


def intervals_adaptation_bp(score: int) -> int:
    """How to scale the sampling interval (basis points) for an access score; decreases damped."""
    adapt = feed_loop_next_input(100_000_000, score) // BP
    if adapt <= BP:
        adapt = 5000 + adapt // 2
    return adapt


def tuned_sample_us(targets: Sequence[Target], attrs: MonitoringAttrs, goal: IntervalsGoal,
                    aggr_samples: int) -> int | None:
    """The sampling interval ``kdamond_tune_intervals`` picks from this window's nr_accesses,
    or None when it stays put. Python ints: the products overflow 64 bits on big targets."""
    max_events = sum(int(t.sizes().sum()) for t in targets) * aggr_samples
    events = sum(int((t.sizes() * t.nr_accesses).sum(dtype=object)) for t in targets)
    target = max(max_events * goal.access_bp // BP, 1)
    adapt = intervals_adaptation_bp(events * BP // target)
    if adapt == BP:
        return None
    return max(goal.min_sample_us, min(goal.max_sample_us, attrs.sample_us * adapt // BP))


def nr_accesses_to_bp(nr_accesses, attrs: MonitoringAttrs):
    """nr_accesses in basis points of the window's maximum."""
    return nr_accesses * BP // max_nr_accesses(attrs) if max_nr_accesses(attrs) else 0


def update_monitoring_result(t: Target, old: MonitoringAttrs, new: MonitoringAttrs, aggregating: bool) -> None:
    """Rescale a target's results to new intervals (``damon_update_monitoring_result``)."""
    def convert(nr):
        old_max, new_max = max_nr_accesses(old), max_nr_accesses(new)
        bp = nr * BP // old_max if old_max else np.zeros_like(nr)
        return bp * new_max // BP

    if not aggregating:
        t.nr_accesses = convert(t.nr_accesses)
        t.nr_accesses_bp = t.nr_accesses * BP
    else:
        t.last_nr_accesses = convert(t.last_nr_accesses)
        t.nr_accesses_bp = t.last_nr_accesses * BP
        t.nr_accesses = np.zeros(t.nr_regions, dtype=np.int64)
    t.age = t.age * old.aggr_us // new.aggr_us


# --- the context and its main loop (§2) ---------------------------------------------------

@dataclass
class TargetSnapshot:
    """One target's regions at the end of an aggregation window (the damon_aggregated trace)."""

    target_id: int
    start: np.ndarray
    end: np.ndarray
    nr_accesses: np.ndarray
    age: np.ndarray


@dataclass
class Aggregation:
    """Everything one aggregation reports: the window on the context's clock and each target."""

    start_ns: int
    end_ns: int
    targets: list[TargetSnapshot] = field(default_factory=list)


class Context:
    """A monitoring context: attributes, an operations set, targets, and the kdamond loop.

    ``now_ns`` is the context's clock. With a virtual-clock operations set it advances by one
    sampling interval per sample and nothing sleeps; otherwise the context sleeps for real
    between preparing and checking each sample.
    """

    def __init__(self, attrs: MonitoringAttrs, ops: "Operations", targets: Sequence[Target],
                 rng: np.random.Generator | int = 0, min_region: int = MIN_REGION,
                 split_state: SplitState | None = None, goal: "IntervalsGoal | None" = None):
        self.goal = goal or IntervalsGoal()
        check_attrs(attrs, self.goal)
        self.attrs = attrs
        self.ops = ops
        self.targets = list(targets)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.min_region = min_region
        self.split_state = split_state or SplitState()
        self.passed = 0
        self.now_ns = 0
        self.window_start_ns = 0
        self.next_aggregation_sis = self.aggr_samples
        self.next_ops_update_sis = attrs.update_us // attrs.sample_us
        self.next_intervals_tune_sis = self.next_aggregation_sis * self.goal.aggrs
        self.sz_limit = min_region
        self.max_nr_accesses_seen = 0
        self.started = False

    @property
    def aggr_samples(self) -> int:
        return self.attrs.aggr_us // self.attrs.sample_us

    @property
    def sample_ns(self) -> int:
        return self.attrs.sample_us * 1000

    def nr_regions(self) -> int:
        return sum(t.nr_regions for t in self.targets)

    def start(self) -> None:
        """``ops.init`` then the first ``sz_limit``; called by the first ``step``."""
        self.ops.init(self)
        self.sz_limit = region_sz_limit(self.targets, self.attrs.min_nr_regions, self.min_region)
        self.started = True

    def step(self, max_samples: int | None = None) -> Aggregation | None:
        """Run samples up to the next aggregation or ops update (or ``max_samples``).

        Returns the aggregation's report when one happened.
        """
        if not self.started:
            self.start()
        snap_aggr, snap_ops = self.next_aggregation_sis, self.next_ops_update_sis
        k = min(snap_aggr, snap_ops) - self.passed
        k = max(1, min(k, self.ops.max_batch, max_samples or k))
        self._sample(k)

        report = None
        if self.passed >= snap_aggr:
            thres = self.max_nr_accesses_seen // 10
            kdamond_merge_regions(self.targets, thres, self.sz_limit, self.aggr_samples,
                                  self.attrs.max_nr_regions)
            report = self._report()
            if self.goal.aggrs and self.passed >= self.next_intervals_tune_sis:
                self.next_intervals_tune_sis += self.aggr_samples * self.goal.aggrs
                self._tune_intervals()
            self.next_aggregation_sis = snap_aggr + self.aggr_samples
            for t in self.targets:
                reset_aggregated(t)
            kdamond_split_regions(self.targets, self.attrs.max_nr_regions, self.split_state, self.rng,
                                  self.min_region)
            self.window_start_ns = self.now_ns
        if self.passed >= snap_ops:
            self.next_ops_update_sis = snap_ops + self.attrs.update_us // self.attrs.sample_us
            self.ops.update(self)
            self.sz_limit = region_sz_limit(self.targets, self.attrs.min_nr_regions, self.min_region)
        return report

    def remove_target(self, target: Target) -> None:
        """Stop monitoring ``target`` (its process exited), between two steps."""
        self.targets.remove(target)

    def set_attrs(self, attrs: MonitoringAttrs) -> None:
        """``damon_set_attrs``: validate, re-arm the interval counters, rescale the results."""
        check_attrs(attrs, self.goal)
        old = self.attrs
        aggregating = self.passed < self.next_aggregation_sis
        self.next_aggregation_sis = self.passed + attrs.aggr_us // attrs.sample_us
        self.next_ops_update_sis = self.passed + attrs.update_us // attrs.sample_us
        for t in self.targets:
            update_monitoring_result(t, old, attrs, aggregating)
        self.attrs = attrs

    def _tune_intervals(self) -> None:
        """``kdamond_tune_intervals``: steer the sampling interval towards the access goal."""
        sample_us = tuned_sample_us(self.targets, self.attrs, self.goal, self.aggr_samples)
        if sample_us is None:
            return
        self.set_attrs(dataclasses.replace(self.attrs, sample_us=sample_us,
                                           aggr_us=sample_us * self.aggr_samples))

    def _sample(self, k: int) -> None:
        t0 = self.now_ns
        self.ops.prepare_access_checks(self, t0, k)
        if not self.ops.virtual_clock:
            time.sleep(k * self.attrs.sample_us / 1e6)
        accessed = self.ops.check_accesses(self, t0, k)
        self.passed += k
        self.now_ns = t0 + k * self.sample_ns
        window = max_nr_accesses(self.attrs)
        max_nr = 0
        for t, acc in zip(self.targets, accessed):
            update_access_rate(t, acc, window)
            if t.nr_regions:
                max_nr = max(max_nr, int(t.nr_accesses.max()))
        self.max_nr_accesses_seen = max_nr

    def _report(self) -> Aggregation:
        agg = Aggregation(self.window_start_ns, self.now_ns)
        for index, t in enumerate(self.targets):
            tid = index if t.target_id is None else t.target_id
            agg.targets.append(TargetSnapshot(tid, t.start.copy(), t.end.copy(), t.nr_accesses.copy(),
                                              t.age.copy()))
        return agg

    def run(self, until_ns: int | None = None) -> Iterator[Aggregation]:
        """Monitor until the clock reaches ``until_ns`` (forever if None), yielding aggregations."""
        while until_ns is None or self.now_ns < until_ns:
            left = None if until_ns is None else -(-(until_ns - self.now_ns) // self.sample_ns)
            report = self.step(left)
            if report is not None:
                yield report
