"""Deterministic, DAMON-like synthetic records for benchmarks and format tests.

What makes it DAMON-like (and what the formats' compression has to cope with):
- region boundaries mostly persist from one aggregation to the next; a few move a little
  each time, as DAMON's split/merge does;
- a hot address range (high nr_accesses) drifts over the address space, with occasional jumps
  to a new phase; everything else is mostly idle with a little noise;
- age counts the aggregations a region has kept its boundaries and access level;
- snapshots are back to back, 100 ms long with a few µs of jitter (times are whole µs, as
  trace timestamps are).
"""
from __future__ import annotations

import numpy as np

from damo.model import (ADDR_DTYPE, AGE_DTYPE, NR_ACCESSES_DTYPE, TIME_DTYPE, Record, RecordMeta)

PAGE = 4096
BASE_ADDR = 0x7F3A_0000_0000
SPAN_PAGES = 1 << 20                 # a 4 GiB address range
SAMPLE_US, AGGR_US, UPDATE_US = 5000, 100000, 1000000
MAX_NR_ACCESSES = AGGR_US // SAMPLE_US
BOOT_OFFSET_NS = 82_877_315_633_000  # perf-clock-like first timestamp


def synth_record(nr_snapshots: int, nr_regions: int, seed: int = 0, nr_targets: int = 1) -> Record:
    """A record of ``nr_snapshots`` snapshots per target, each of exactly ``nr_regions`` regions."""
    if nr_regions < 1 or nr_regions >= SPAN_PAGES:
        raise ValueError("nr_regions out of range")
    rng = np.random.default_rng(seed)
    meta = RecordMeta(target_kind="vaddr", target="synthetic", sample_us=SAMPLE_US, aggr_us=AGGR_US,
                      update_us=UPDATE_US, min_nr_regions=10, max_nr_regions=max(1000, nr_regions),
                      start_time=1.7e9, tool_version="synth")
    total_snaps = nr_snapshots * nr_targets
    total_regions = total_snaps * nr_regions
    start = np.empty(total_regions, dtype=ADDR_DTYPE)
    end = np.empty(total_regions, dtype=ADDR_DTYPE)
    nr = np.empty(total_regions, dtype=NR_ACCESSES_DTYPE)
    age = np.empty(total_regions, dtype=AGE_DTYPE)
    target_id = np.empty(total_snaps, dtype=np.uint64)
    start_ns = np.empty(total_snaps, dtype=TIME_DTYPE)
    end_ns = np.empty(total_snaps, dtype=TIME_DTYPE)

    # Per target state: interior boundaries (page numbers), previous nr_accesses and age.
    states = []
    for _ in range(nr_targets):
        interior = np.sort(rng.choice(np.arange(1, SPAN_PAGES), nr_regions - 1, replace=False))
        states.append([interior, np.zeros(nr_regions, dtype=np.int64), np.zeros(nr_regions, dtype=np.int64),
                       rng.uniform(0, SPAN_PAGES), rng.uniform(-300, 300)])
    time_ns = BOOT_OFFSET_NS
    row = 0
    for t in range(nr_snapshots):
        duration = AGGR_US * 1000 + int(rng.integers(-40, 40)) * 1000
        for k, state in enumerate(states):
            interior, prev_nr, prev_age, hot_center, hot_speed = state
            interior = _perturb(interior, rng)
            bounds = np.concatenate([[0], interior, [SPAN_PAGES]])
            lo, hi = bounds[:-1], bounds[1:]
            # The hot window drifts; now and then the workload changes phase and it jumps.
            if rng.random() < 0.005:
                hot_center = rng.uniform(0, SPAN_PAGES)
                hot_speed = rng.uniform(-300, 300)
            hot_center = (hot_center + hot_speed) % SPAN_PAGES
            half_width = SPAN_PAGES // 40
            overlap = (np.minimum(hi, hot_center + half_width) - np.maximum(lo, hot_center - half_width)) > 0
            level = np.where(overlap, MAX_NR_ACCESSES - rng.integers(0, 4, nr_regions),
                             np.where(rng.random(nr_regions) < 0.1, rng.integers(1, 4, nr_regions), 0))
            prev_bounds = np.concatenate([[0], state[0], [SPAN_PAGES]])
            kept = np.isin(lo, prev_bounds) & np.isin(hi, prev_bounds) if t else np.zeros(nr_regions, bool)
            steady = kept & (np.abs(level - prev_nr) <= 2)
            cur_age = np.where(steady, prev_age + 1, 0)
            cur_nr = np.where(steady & (rng.random(nr_regions) < 0.9), prev_nr, level)
            sl = slice(row * nr_regions, (row + 1) * nr_regions)
            start[sl] = lo.astype(np.uint64) * PAGE + BASE_ADDR + k * (1 << 40)
            end[sl] = hi.astype(np.uint64) * PAGE + BASE_ADDR + k * (1 << 40)
            nr[sl] = cur_nr
            age[sl] = cur_age
            target_id[row] = k
            start_ns[row] = time_ns
            end_ns[row] = time_ns + duration
            state[:] = [interior, cur_nr, cur_age, hot_center, hot_speed]
            row += 1
        time_ns += duration
    offsets = np.arange(total_snaps + 1, dtype=np.int64) * nr_regions
    return Record(meta, target_id, start_ns, end_ns, offsets, start, end, nr, age)


def _perturb(interior: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move a few boundaries within their neighbours, as split/merge does, keeping the count."""
    n = len(interior)
    if n == 0:
        return interior
    moved = interior.copy()
    picks = np.flatnonzero(rng.random(n) < 0.03)
    bounds = np.concatenate([[0], interior, [SPAN_PAGES]])
    lo, hi = bounds[picks] + 1, bounds[picks + 2]
    room = hi - lo > 1
    moved[picks[room]] = rng.integers(lo[room], hi[room])
    moved = np.unique(moved)
    if len(moved) < n:                 # collisions: put back the original boundaries
        moved = interior
    return moved
