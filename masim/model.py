"""An exact model of what the real masim runner accesses, on a virtual clock.

The user-space DAMON engine monitors this model instead of a process: it asks
which of its sampled addresses were accessed during a sampling interval. The
same model gives the ground truth (working set size, per-page access
frequency) to measure the engine's accuracy against.

How time is spent (the same rules as ``masim.runner``, via ``masim.schedule``):

- Phases follow each other, each for exactly its configured duration; virtual
  time 0 is the start of the first phase.
- Within a phase, patterns take turns of ``BATCH_ACCESSES`` accesses in smooth
  weighted round-robin order, every access taking ``1 / access_rate`` ms. So a
  pattern with a small weight is touched in short bursts, as in the runner.
- A sequential pattern's k-th access in the phase touches byte
  ``(k mod P) * stride``; with a stride above the page size the pages in
  between are never touched. A random pattern's accesses hit uniformly random
  bytes, so a page is missed by N accesses with probability
  ``(1 - page_bytes / region_size) ** N``.
- Reads and writes both count as accesses (they both set the Accessed bit).

``access_rate`` is the number of accesses per millisecond. A sequential access
with a stride of at least a page touches one new page, so for the bundled
configs (stride 4096) it is also the page-touch rate. Its default,
``DEFAULT_ACCESS_RATE``, is the runner's measured rate on the development
machine (``bench/masim_touch_rate.py``: sequential, stride 4096, write-only,
100 MB region); random accesses ran at about the same rate there, so one rate
serves both.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from damo.errors import DamoError
from masim.config import Config, Phase
from masim.schedule import BATCH_ACCESSES, sequential_positions, turn_cycle

PAGE_SIZE = 4096

# Accesses per millisecond of masim.runner, measured with bench/masim_touch_rate.py
# on the 2-core development machine (Python 3.11, numpy 2.4): sequential
# stride-4096 writes to a resident 100 MB region, 80-82k/ms over several runs;
# random writes to the same region, 75-85k/ms.
DEFAULT_ACCESS_RATE = 80_000.0

# A page counts as part of the true working set of a window when the model
# says it was accessed there with probability at least this.
WSS_PROBABILITY = 0.5

# resident_bytes looks at every page of a region up to this many (256 MiB), and at this many
# evenly spaced pages of a larger one.
RESIDENT_EXACT_PAGES = 1 << 16

# Address space layout, like a 64-bit Linux process with ASLR: a small heap
# above the executable (0x55..), the regions as separate mappings below the
# mmap base (0x7f..), and a small stack near the top of user space. The two
# big gaps around the mmap area are what DAMON's three-regions init finds.
_HEAP_BASE = 0x5500_0000_0000         # + up to 1 TiB: 0x55..
_MMAP_TOP = 0x7ff0_0000_0000          # - up to 64 GiB: 0x7fe.. to 0x7ff..
_STACK_BASE = 0x7ffb_0000_0000        # + up to 16 GiB: 0x7ffb.. to 0x7ffe..
_HEAP_ASLR_PAGES = 1 << 28
_MMAP_ASLR_PAGES = 1 << 24
_STACK_ASLR_PAGES = 1 << 22
_HEAP_SIZE = 132 * 1024
_STACK_SIZE = 132 * 1024
_MAX_GAP_PAGES = 256           # gap between region mappings: 1 page to 1 MiB


@dataclass(frozen=True)
class _Layer:
    """At most one pattern per region of a phase, as arrays indexed by region slot.

    Slot ``len(regions)`` stands for "outside every region" and
    never has a pattern. A pattern-less slot has stride 1 and positions 1.
    """

    pattern_or_0: np.ndarray  # pattern index in the phase, 0 for none (see has)
    has: np.ndarray         # bool: the slot has a pattern
    random: np.ndarray      # bool
    stride: np.ndarray      # float64 bytes
    positions: np.ndarray   # float64: P of the sequential pattern
    any_random: bool
    any_sequential: bool
    page_strides: bool      # every sequential stride is exactly one page: fast path


@dataclass(frozen=True)
class _PhaseModel:
    """One phase, precomputed for fast queries."""

    start_ns: int
    end_ns: int
    positions: np.ndarray        # per pattern: P of sequential patterns (1 for random ones)
    turns_per_cycle: np.ndarray  # per pattern: its turns in one cycle of the turn order
    turns_before: np.ndarray     # [j, m]: turns of pattern j among the first m turns of the cycle
    cycle: np.ndarray            # pattern index of each turn of the cycle
    # A region's patterns are stacked in layers, one per layer; usually there is one layer.
    layers: list[_Layer]
    active_regions: np.ndarray   # indices of the regions this phase touches


class AccessModel:
    """Which pages a masim config accesses when, laid out in a process-like address space."""

    def __init__(self, config: Config, seed: int = 0, access_rate: float | None = None):
        self.config = config
        self.seed = seed
        self.access_rate = float(access_rate if access_rate is not None else DEFAULT_ACCESS_RATE)
        if not self.access_rate > 0 or not math.isfinite(self.access_rate):
            raise DamoError(f"masim access rate must be a positive number, not {access_rate}")
        self._accesses_per_ns = self.access_rate / 1e6
        self._lay_out(np.random.default_rng(seed))
        self._phases: list[_PhaseModel] = []
        t = 0
        for phase in config.phases:
            end = t + phase.duration_ms * 1_000_000
            self._phases.append(self._model_phase(phase, t, end))
            t = end
        self.duration_ns = t
        # (name, start, end) of each phase, in virtual ns.
        self.phase_spans: list[tuple[str, int, int]] = [
            (phase.name, pm.start_ns, pm.end_ns) for phase, pm in zip(config.phases, self._phases)]
        self._phase_starts = [p.start_ns for p in self._phases]
        self._page_addrs: dict[int, np.ndarray] = {}

    # ---- layout -------------------------------------------------------------

    def _lay_out(self, rng: np.random.Generator) -> None:
        regions = self.config.regions
        lengths = [-(-r.size // PAGE_SIZE) * PAGE_SIZE for r in regions]
        gaps = [int(g) * PAGE_SIZE for g in rng.integers(1, _MAX_GAP_PAGES + 1, len(regions))]
        heap_start = _HEAP_BASE + int(rng.integers(0, _HEAP_ASLR_PAGES)) * PAGE_SIZE
        mmap_top = _MMAP_TOP - int(rng.integers(0, _MMAP_ASLR_PAGES)) * PAGE_SIZE
        stack_end = _STACK_BASE + int(rng.integers(1, _STACK_ASLR_PAGES)) * PAGE_SIZE
        # Regions in config order at rising addresses, the last one just below
        # the mmap base (the kernel hands out mmap space top-down).
        start = mmap_top - sum(lengths) - sum(gaps)
        if start <= heap_start + _HEAP_SIZE:
            raise ValueError("the config's regions do not fit in a 47-bit address space")
        ranges = {}
        for region, length, gap in zip(regions, lengths, gaps):
            ranges[region.name] = (start, start + length)
            start += length + gap
        self.region_ranges: dict[str, tuple[int, int]] = ranges
        self.heap_range = (heap_start, heap_start + _HEAP_SIZE)
        self.stack_range = (stack_end - _STACK_SIZE, stack_end)
        self.mappings: list[tuple[int, int]] = sorted(
            [self.heap_range, *ranges.values(), self.stack_range])
        # Lookup arrays, by region index in config order (= address order).
        self._starts = np.array([ranges[r.name][0] for r in regions], dtype=np.int64)
        self._ends = np.array([ranges[r.name][1] for r in regions], dtype=np.int64)
        self._edges = np.column_stack([self._starts, self._ends]).ravel()
        self._starts_slot = np.append(self._starts, 0)
        outside = len(regions)
        self._slot_of_edge_count = np.array(
            [k >> 1 if k & 1 else outside for k in range(2 * len(regions) + 1)], dtype=np.int64)
        # Per region slot (the extra last slot is "outside"): the last page's
        # index and log(probability that one random access misses a page).
        sizes = np.array([r.size for r in regions] + [PAGE_SIZE], dtype=np.float64)
        self._last_page = np.floor((sizes - 1) / PAGE_SIZE)
        with np.errstate(divide="ignore"):
            # -inf for a region within one page: any access hits it.
            self._log_miss_full = np.log1p(-np.minimum(PAGE_SIZE, sizes) / sizes)
            self._log_miss_last = np.log1p(-(sizes - self._last_page * PAGE_SIZE) / sizes)
        self._last_page[-1] = -1

    # ---- phases -------------------------------------------------------------

    def _model_phase(self, phase: Phase, start_ns: int, end_ns: int) -> _PhaseModel:
        index = self.config.region_index
        cycle = turn_cycle([p.weight for p in phase.patterns])
        n = len(phase.patterns)
        owned = cycle[None, :] == np.arange(n)[:, None]
        turns_before = np.zeros((n, len(cycle) + 1), dtype=np.int64)
        np.cumsum(owned, axis=1, out=turns_before[:, 1:])
        regions = [index[p.region] for p in phase.patterns]
        positions = np.array(
            [1 if p.random else sequential_positions(self.config.regions[r].size, p.stride)
             for p, r in zip(phase.patterns, regions)], dtype=np.int64)
        slots: list[list[int]] = []          # per layer, pattern index per region slot
        for j, r in enumerate(regions):
            for layer in slots:
                if layer[r] < 0:
                    layer[r] = j
                    break
            else:
                layer = [-1] * (len(self.config.regions) + 1)
                layer[r] = j
                slots.append(layer)
        layers = []
        for layer in slots:
            pats = [phase.patterns[j] if j >= 0 else None for j in layer]
            seq = [p for p in pats if p is not None and not p.random]
            layers.append(_Layer(
                pattern_or_0=np.array([max(j, 0) for j in layer], dtype=np.int64),
                has=np.array([p is not None for p in pats]),
                random=np.array([p is not None and p.random for p in pats]),
                stride=np.array([p.stride if p is not None and not p.random else 1 for p in pats],
                                dtype=np.float64),
                positions=np.array([positions[j] if j >= 0 else 1 for j in layer],
                                   dtype=np.float64),
                any_random=any(p is not None and p.random for p in pats),
                any_sequential=bool(seq),
                page_strides=all(p.stride == PAGE_SIZE for p in seq)))
        return _PhaseModel(start_ns=start_ns, end_ns=end_ns, positions=positions,
                           turns_per_cycle=turns_before[:, -1].copy(),
                           turns_before=turns_before, cycle=cycle, layers=layers,
                           active_regions=np.unique(regions))

    def accesses_done(self, t_ns: int) -> int:
        """Accesses made from the start of a phase until ``t_ns`` into it, all patterns together.

        Access k (from 0) completes at ``(k + 1) / access_rate`` ms.
        """
        # The epsilon keeps an exactly whole count from rounding down to one less.
        return math.floor(t_ns * self._accesses_per_ns + 1e-6)

    def _accesses_before(self, phase: _PhaseModel, t_ns: int) -> np.ndarray:
        """Accesses each pattern of ``phase`` made from the phase start until ``t_ns``."""
        turns, partial = divmod(self.accesses_done(t_ns - phase.start_ns), BATCH_ACCESSES)
        nr_cycles, turn = divmod(turns, len(phase.cycle))
        done = nr_cycles * phase.turns_per_cycle + phase.turns_before[:, turn]
        accesses = done * float(BATCH_ACCESSES)
        accesses[phase.cycle[turn]] += partial
        return accesses

    def _segments(self, t0_ns: int, t1_ns: int):
        """(phase, start, end) for each phase overlapping [t0, t1)."""
        t0 = max(t0_ns, 0)
        t1 = min(t1_ns, self.duration_ns)
        i = max(bisect.bisect_right(self._phase_starts, t0) - 1, 0)
        while t0 < t1 and i < len(self._phases):
            phase = self._phases[i]
            end = min(t1, phase.end_ns)
            if end > t0:
                yield phase, t0, end
            t0 = end
            i += 1

    # ---- queries ------------------------------------------------------------

    def _locate(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Region slot (``len(regions)`` outside every region) and page index in it, per address.

        Page indices are float64: exact below 2**53, and float division is much
        faster than integer division in numpy.
        """
        addrs = np.asarray(addrs, dtype=np.int64)
        # Edges are start0, end0, start1, end1, ...: an odd count of edges at or
        # below an address means it is inside region count // 2.
        k = np.searchsorted(self._edges, addrs, side="right")
        ridx = self._slot_of_edge_count.take(k)
        page = np.floor((addrs - self._starts_slot.take(ridx)) * (1.0 / PAGE_SIZE))
        return ridx, page

    def _probability(self, ridx: np.ndarray, page: np.ndarray, t0_ns: int, t1_ns: int) -> np.ndarray:
        result = None
        for phase, a, b in self._segments(t0_ns, t1_ns):
            n0 = self._accesses_before(phase, a)
            count = self._accesses_before(phase, b) - n0
            first = n0 % phase.positions    # sweep position at a, per pattern
            for layer in phase.layers:
                # Per region slot; 0 accesses where the layer has no pattern.
                slot_count = count.take(layer.pattern_or_0) * layer.has
                slot_start = first.take(layer.pattern_or_0) * layer.has
                p = self._layer_probability(layer, ridx, page, slot_start, slot_count, ridx)
                # Patterns and phases access independently of each other.
                result = p if result is None else 1.0 - (1.0 - result) * (1.0 - p)
        if result is None:
            return np.zeros(len(ridx), dtype=np.float64)
        return result

    def _layer_probability(self, layer: _Layer, ridx: np.ndarray, page: np.ndarray,
                           slot_start: np.ndarray, slot_count: np.ndarray,
                           index: np.ndarray) -> np.ndarray:
        """Probability that the layer's pattern of each address's region touched its page.

        ``slot_start`` and ``slot_count`` are, per region slot (last axis; a
        leading axis may stand for several windows), the sweep position at the
        window's start and the number of accesses in the window; ``index``
        picks each address's entry from them, flattened.
        """
        if layer.any_random:
            p_random = self._random_probability(layer, ridx, page, slot_count, index)
            if not layer.any_sequential:
                return p_random
        positions = layer.positions.take(ridx)
        start = slot_start.take(index)
        n = slot_count.take(index)
        # Sequential: the accesses touch positions [start, start + n) modulo P.
        # (x - start) mod P for x in [0, P) is done by hand: np.mod on floats is slow.
        if layer.page_strides:
            # One position per page, position == page index: the common case, fast.
            d = page - start
            d += positions * (d < 0)
            hit = (page < positions) & (d < n)
        else:
            # The page holds positions [lo, lo + covered); it is hit if the window
            # holds lo, or the window's start lies within the page's positions.
            stride = layer.stride.take(ridx)
            offset = page * float(PAGE_SIZE)
            lo = np.ceil(offset / stride)
            covered = np.minimum(np.ceil((offset + PAGE_SIZE) / stride), positions) - lo
            d = lo - start
            d += positions * (d < 0)
            hit = (covered > 0) & (n > 0) & ((d < n) | (positions - d < covered))
        if not layer.any_random:
            return hit.astype(np.float64)
        return np.where(layer.random.take(ridx), p_random, hit)

    def _random_probability(self, layer: _Layer, ridx: np.ndarray, page: np.ndarray,
                            slot_count: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Probability that n uniformly random byte accesses hit each address's page.

        Computed per region slot for a full page and for the region's last
        (possibly partial) page, then picked per address.
        """
        count = np.where(layer.random, slot_count, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_full = np.where(count > 0, -np.expm1(count * self._log_miss_full), 0.0)
            p_last = np.where(count > 0, -np.expm1(count * self._log_miss_last), 0.0)
        return np.where(page == self._last_page.take(ridx), p_last.take(index),
                        p_full.take(index))

    def _accesses_before_many(self, phase: _PhaseModel, t_ns: np.ndarray) -> np.ndarray:
        """``_accesses_before`` for many times at once: shape (len(t_ns), nr_patterns), int64."""
        done_all = np.floor((t_ns - phase.start_ns) * self._accesses_per_ns + 1e-6).astype(np.int64)
        turns, partial = np.divmod(done_all, BATCH_ACCESSES)
        nr_cycles, turn = np.divmod(turns, len(phase.cycle))
        done = nr_cycles[:, None] * phase.turns_per_cycle + phase.turns_before.T[turn]
        done *= BATCH_ACCESSES
        done[np.arange(len(t_ns)), phase.cycle[turn]] += partial
        return done

    def access_probability_batch(self, times_ns: np.ndarray, addrs: np.ndarray) -> np.ndarray:
        """``access_probability`` for consecutive windows at once.

        Window i is [times_ns[i], times_ns[i+1]) and asks about the addresses
        ``addrs[i]``; ``addrs`` has shape (len(times_ns) - 1, n). The result has
        the shape of ``addrs`` and equals asking window by window.
        """
        times = np.asarray(times_ns, dtype=np.int64)
        addrs = np.asarray(addrs)
        nr_windows = len(times) - 1
        if addrs.ndim != 2 or addrs.shape[0] != nr_windows:
            raise ValueError(f"addrs must have shape ({nr_windows}, n), not {addrs.shape}")
        nr_slots = len(self.config.regions) + 1
        ridx, page = self._locate(addrs.ravel())
        window = np.repeat(np.arange(nr_windows, dtype=np.int64), addrs.shape[1])
        index = window * nr_slots + ridx
        result = None
        for phase, _, _ in self._segments(int(times[0]), int(times[-1])):
            a = np.clip(times[:-1], phase.start_ns, phase.end_ns)
            b = np.clip(times[1:], phase.start_ns, phase.end_ns)
            n0 = self._accesses_before_many(phase, a)
            count = self._accesses_before_many(phase, b) - n0
            first = n0 % phase.positions
            for layer in phase.layers:
                slot_count = count[:, layer.pattern_or_0] * layer.has
                slot_start = first[:, layer.pattern_or_0] * layer.has
                p = self._layer_probability(layer, ridx, page, slot_start, slot_count, index)
                result = p if result is None else 1.0 - (1.0 - result) * (1.0 - p)
        if result is None:
            return np.zeros(addrs.shape, dtype=np.float64)
        return result.reshape(addrs.shape)

    def sample_accessed_batch(self, times_ns: np.ndarray, addrs: np.ndarray,
                              rng: np.random.Generator) -> np.ndarray:
        """``sample_accessed`` for consecutive windows at once (see ``access_probability_batch``)."""
        p = self.access_probability_batch(times_ns, addrs)
        return rng.random(p.shape) < p

    def access_probability(self, t0_ns: int, t1_ns: int, addrs: np.ndarray) -> np.ndarray:
        """Probability that each address's page was accessed in virtual time [t0, t1) (ns).

        Addresses outside every region (including heap and stack) give 0.
        """
        ridx, page = self._locate(addrs)
        return self._probability(ridx, page, int(t0_ns), int(t1_ns))

    def sample_accessed(self, t0_ns: int, t1_ns: int, addrs: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
        """Whether each address's page was accessed in [t0, t1): one draw per address."""
        p = self.access_probability(t0_ns, t1_ns, addrs)
        return rng.random(len(p)) < p

    # ---- ground truth -------------------------------------------------------

    def _region_pages(self, r: int) -> np.ndarray:
        if r not in self._page_addrs:
            self._page_addrs[r] = np.arange(self._starts[r], self._ends[r], PAGE_SIZE,
                                            dtype=np.int64)
        return self._page_addrs[r]

    def accessed_pages(self, t0_ns: int, t1_ns: int) -> dict[str, np.ndarray]:
        """Per region, which of its pages count as accessed in [t0, t1) (see ``true_wss``)."""
        out = {}
        for r, region in enumerate(self.config.regions):
            p = self.access_probability(t0_ns, t1_ns, self._region_pages(r))
            out[region.name] = p >= WSS_PROBABILITY
        return out

    def true_wss(self, t0_ns: int, t1_ns: int) -> int:
        """Bytes of the pages accessed in [t0, t1) with probability at least ``WSS_PROBABILITY``.

        Sequential patterns give 0 or 1 per page, so this is exact for them; a
        random pattern's pages count once more of them are hit than not.
        """
        active = set()
        for phase, _, _ in self._segments(int(t0_ns), int(t1_ns)):
            active.update(int(r) for r in phase.active_regions)
        nr_pages = 0
        for r in sorted(active):
            p = self.access_probability(t0_ns, t1_ns, self._region_pages(r))
            nr_pages += int(np.count_nonzero(p >= WSS_PROBABILITY))
        return nr_pages * PAGE_SIZE

    def resident_bytes(self, t_ns: int) -> int:
        """Bytes of the regions' pages touched in [0, t): what the runner has resident by then,
        as anonymous memory becomes resident on its first touch (a random pattern's pages
        count once they were more likely hit than not, as in ``true_wss``).

        Exact for regions of up to ``RESIDENT_EXACT_PAGES`` pages; a larger region is judged by
        that many evenly spaced pages and scaled, so memory and time stay bounded whatever the
        config (masim regions go up to 64 TiB)."""
        if t_ns <= 0:
            return 0
        active = set()
        for phase, _, _ in self._segments(0, int(t_ns)):
            active.update(int(r) for r in phase.active_regions)
        nr_pages = 0
        for r in sorted(active):
            total = int((self._ends[r] - self._starts[r]) // PAGE_SIZE)
            if total <= RESIDENT_EXACT_PAGES:
                p = self.access_probability(0, t_ns, self._region_pages(r))
                nr_pages += int(np.count_nonzero(p >= WSS_PROBABILITY))
                continue
            index = np.unique(np.linspace(0, total - 1, RESIDENT_EXACT_PAGES).astype(np.int64))
            p = self.access_probability(0, t_ns, self._starts[r] + index * PAGE_SIZE)
            nr_pages += round(np.count_nonzero(p >= WSS_PROBABILITY) / len(index) * total)
        return nr_pages * PAGE_SIZE

    @property
    def mapped_bytes(self) -> int:
        """Bytes of every mapping of the modelled process: the regions, the heap and the stack."""
        return sum(end - start for start, end in self.mappings)

    def true_wss_series(self, aggr_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """True WSS of consecutive windows of ``aggr_ns`` from time 0.

        Returns (window end times, WSS bytes), stamped at the window's end like
        DAMON's aggregation snapshots. The last window may be shorter.
        """
        if aggr_ns <= 0:
            raise ValueError(f"aggr_ns must be positive, not {aggr_ns}")
        ends = np.minimum(np.arange(1, -(-self.duration_ns // aggr_ns) + 1, dtype=np.int64)
                          * aggr_ns, self.duration_ns)
        wss = np.array([self.true_wss(end - aggr_ns, end) for end in ends.tolist()],
                       dtype=np.int64)
        return ends, wss

    def truth_heatmap(self, t0_ns: int, t1_ns: int, a0: int, a1: int, time_bins: int,
                      addr_bins: int, sample_ns: int = 5_000_000, samples_per_bin: int = 32,
                      pages_per_bin: int = 16) -> np.ndarray:
        """Per-page access frequency over [t0, t1) x [a0, a1): shape (time_bins, addr_bins).

        Each cell is the probability that a page of its address bin is accessed
        within one sampling interval of ``sample_ns`` during its time bin,
        averaged over up to ``samples_per_bin`` well-spread sampling intervals
        and ``pages_per_bin`` evenly spaced pages. Multiplied by
        (aggregation interval / sampling interval) it is the expected DAMON
        ``nr_accesses`` of those pages.
        """
        t_edges = np.linspace(t0_ns, t1_ns, time_bins + 1)
        a_edges = np.linspace(a0, a1, addr_bins + 1)
        width = (a1 - a0) / addr_bins
        k = max(1, min(pages_per_bin, int(width // PAGE_SIZE) or 1))
        offsets = (np.arange(k) + 0.5) / k * width
        addrs = (a_edges[:-1, None] + offsets[None, :]).astype(np.int64).ravel()
        ridx, page = self._locate(addrs)
        out = np.zeros((time_bins, addr_bins), dtype=np.float64)
        for i in range(time_bins):
            bin0, bin1 = t_edges[i], t_edges[i + 1]
            span = bin1 - bin0
            nr = max(1, min(samples_per_bin, int(span // sample_ns) or 1))
            length = min(sample_ns, span)
            # Golden-ratio (low-discrepancy) placement: evenly spread, but not in
            # step with the periodic turn order, which even spacing could alias.
            spots = np.modf(0.5 + np.arange(nr) * 0.6180339887498949)[0]
            starts = bin0 + spots * (span - length)
            total = np.zeros(len(addrs))
            for s in starts:
                total += self._probability(ridx, page, int(s), int(s + length))
            out[i] = (total / nr).reshape(addr_bins, k).mean(axis=1)
        return out
