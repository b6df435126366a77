"""The engine's algorithms against literal transcriptions, and its invariants over long runs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from damo.engine import core
from damo.engine.core import Context, Target
from damo.engine.ops import Operations
from damo.engine.sim_ops import sim_context
from damo.model import MonitoringAttrs
from engine_fakes import ToyModel, reference_merge_regions_of, target_dicts


# --- merge: the vectorised/scanning version equals the literal one ---------------------------

@st.composite
def region_sets(draw):
    n = draw(st.integers(1, 60))
    sizes = draw(st.lists(st.integers(1, 50), min_size=n, max_size=n))
    gaps = draw(st.lists(st.sampled_from([0, 0, 0, 0, 3]), min_size=n, max_size=n))
    nr = draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
    last = draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
    age = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n))
    starts, pos = [], 0
    for size, gap in zip(sizes, gaps):
        pos += gap
        starts.append(pos)
        pos += size
    t = Target(ranges=[(s, s + z) for s, z in zip(starts, sizes)])
    t.nr_accesses = np.array(nr, dtype=np.int64)
    t.nr_accesses_bp = t.nr_accesses * core.BP
    t.last_nr_accesses = np.array(last, dtype=np.int64)
    t.age = np.array(age, dtype=np.int64)
    return t


@settings(max_examples=300, deadline=None)
@given(region_sets(), st.integers(0, 25), st.integers(1, 400), st.sampled_from([0, 2, 48]))
def test_merge_equals_literal_kernel_pass(t, thres, sz_limit, few_chains):
    expected = reference_merge_regions_of(t, thres, sz_limit)
    saved = core._FEW_CHAINS
    core._FEW_CHAINS = few_chains      # both the vectorised and the plain-loop age folding
    try:
        core.merge_regions_of(t, thres, sz_limit)
    finally:
        core._FEW_CHAINS = saved
    assert target_dicts(t) == expected


def test_merge_threshold_doubles_while_too_many_regions():
    # 40 adjacent regions alternating nr 0/8: thres 0 merges nothing, so it doubles until 8
    t = Target(ranges=[(i * 10, i * 10 + 10) for i in range(40)])
    t.nr_accesses = np.array([0, 8] * 20, dtype=np.int64)
    t.last_nr_accesses = t.nr_accesses.copy()
    core.kdamond_merge_regions([t], 0, sz_limit=10**6, max_thres=20, max_nr_regions=10)
    assert t.nr_regions <= 10
    # baseline quirk: every pass ages the regions again (passes with thres 0, 1, 2, 4, 8)
    assert t.age.min() >= 4


# --- split ------------------------------------------------------------------------------

def test_split_into_three_cuts_the_left_piece_again():
    rng = np.random.default_rng(3)
    for _ in range(100):
        t = Target(ranges=[(0, 1 << 30)])
        t.age = np.array([7])
        t.last_nr_accesses = np.array([5])
        core.split_regions_of(t, 3, rng)
        assert 1 <= t.nr_regions <= 3
        assert t.start[0] == 0 and t.end[-1] == 1 << 30
        assert np.all(t.start[1:] == t.end[:-1])
        assert np.all(t.start % 4096 == 0) and np.all(t.end % 4096 == 0)
        assert t.age.tolist() == [7] * t.nr_regions
        assert t.last_nr_accesses.tolist() == [5] * t.nr_regions
        if t.nr_regions == 3:
            # the first cut is at 10..90% of the region, the second within the left piece
            assert 0.1 * (1 << 30) - 4096 <= t.end[1] <= 0.9 * (1 << 30)


def test_split_leaves_small_regions_alone():
    t = Target(ranges=[(0, 8192), (8192, 8192 + 12288)])
    core.split_regions_of(t, 2, np.random.default_rng(0))
    assert t.ranges()[0] == (0, 8192)


def test_split_uses_three_pieces_only_when_the_count_is_stable():
    state = core.SplitState()
    rng = np.random.default_rng(0)
    t = Target(ranges=[(i << 30, (i + 1) << 30) for i in range(10)])
    core.kdamond_split_regions([t], 1000, state, rng)
    assert t.nr_regions <= 20 and state.last_nr_regions == 10      # first time: 2 pieces
    t2 = Target(ranges=[(i << 30, (i + 1) << 30) for i in range(10)])
    core.kdamond_split_regions([t2], 1000, state, rng)                 # same count again: 3
    assert t2.nr_regions > 20
    t3 = Target(ranges=[(i << 30, (i + 1) << 30) for i in range(10)])
    core.kdamond_split_regions([t3], 18, state, rng)                   # above max/2: no split
    assert t3.nr_regions == 10


def test_damon_rand_truncates_to_u32_like_the_kernel():
    rng = np.random.default_rng(0)
    lo = np.array([0, 0, 1000], dtype=np.int64)
    hi = np.array([(1 << 32) + 10, 1 << 34, 1010], dtype=np.int64)
    draws = core.damon_rand(rng, lo, hi, (2000, 3))
    assert draws[:, 0].max() < 10                       # 2**32 + 10 wraps to 10
    assert draws[:, 1].max() < 1 << 32                  # a multiple of 2**32: a full u32 draw
    assert draws[:, 1].max() > 1 << 31
    assert draws[:, 2].min() >= 1000 and draws[:, 2].max() < 1010
    assert len(set(draws[:, 2].tolist())) == 10


# --- the main loop --------------------------------------------------------------------------

class RecordingOps(Operations):
    """Fixed regions; logs every sampling round; accesses from a fixed pattern."""

    virtual_clock = True
    max_batch = 1 << 30

    def __init__(self):
        self.rounds = []
        self.updates = []

    def init(self, ctx):
        ctx.targets[0].set_ranges([(i << 20, (i + 1) << 20) for i in range(12)])

    def update(self, ctx):
        self.updates.append(ctx.passed)

    def prepare_access_checks(self, ctx, t_ns, nr_samples):
        self.rounds.append((t_ns, nr_samples))
        self.choose_sampling_addresses(ctx, nr_samples)

    def check_accesses(self, ctx, t_ns, nr_samples):
        t = ctx.targets[0]
        return [np.broadcast_to(t.sampling_addr < (3 << 20), t.sampling_addr.shape)]


def test_rounds_stop_at_aggregations_and_ops_updates():
    ops = RecordingOps()
    ctx = Context(MonitoringAttrs(5000, 100000, 1050000, 10, 1000), ops, [Target()], rng=0)
    aggs = list(ctx.run(3_000_000_000))
    assert len(aggs) == 30
    assert ops.updates == [210, 420]
    assert sum(k for _, k in ops.rounds) == 600
    assert ops.rounds[:12] == [(i * 100_000_000, 20) for i in range(10)] + [(1_000_000_000, 10), (1_050_000_000, 10)]
    assert [(a.start_ns, a.end_ns) for a in aggs[:2]] == [(0, 100_000_000), (100_000_000, 200_000_000)]
    # the first 3 MiB are always accessed, the rest never
    for a in aggs:
        snap = a.targets[0]
        hot = snap.end <= 3 << 20
        assert np.all(snap.nr_accesses[hot] == 20) and np.all(snap.nr_accesses[snap.start >= 3 << 20] == 0)


def check_invariants(agg, ctx, three, attrs, initialised: bool):
    snap = agg.targets[0]
    start, end, nr, age = snap.start, snap.end, snap.nr_accesses, snap.age
    assert np.all(end > start)
    assert np.all(start[1:] >= end[:-1]), "regions overlap or are unsorted"
    assert np.all(start % 4096 == 0) and np.all(end % 4096 == 0)
    # the regions tile the three regions exactly
    gaps = np.flatnonzero(start[1:] != end[:-1])
    covered = list(zip([start[0], *start[gaps + 1]], [*end[gaps], end[-1]]))
    assert [(int(a), int(b)) for a, b in covered] == three
    assert np.all(nr >= 0) and np.all(nr <= attrs.aggr_us // attrs.sample_us)
    assert np.all(age >= 0)
    if initialised:
        assert attrs.min_nr_regions <= len(start) <= attrs.max_nr_regions
    assert ctx.targets[0].nr_regions <= attrs.max_nr_regions      # after the split too


@pytest.mark.parametrize("attrs", [
    MonitoringAttrs(5000, 100000, 1000000, 10, 1000),
    MonitoringAttrs(5000, 100000, 1000000, 10, 40),      # tight max: threshold doubling
    MonitoringAttrs(2000, 50000, 333000, 30, 300),
])
def test_invariants_on_every_aggregation_of_a_long_run(attrs):
    model = ToyModel(duration_s=40)
    ctx = sim_context(model, attrs, seed=1)
    three = core.three_regions(model.mappings)
    aggs = 0
    for agg in ctx.run(model.duration_ns):
        check_invariants(agg, ctx, three, attrs, initialised=aggs >= 1)
        aggs += 1
    assert aggs == model.duration_ns // (attrs.aggr_us * 1000)


def test_ops_update_follows_new_mappings():
    model = ToyModel(duration_s=6, grow_at_ns=2_000_000_000)
    attrs = MonitoringAttrs()
    ctx = sim_context(model, attrs, seed=2)
    seen = set()
    for agg in ctx.run(model.duration_ns):
        snap = agg.targets[0]
        seen.add((int(snap.start[0]), int(snap.end[-1])))
    # after the update at 3 s the last of the three regions now ends at the new area
    expected_after = core.three_regions(model.mappings)
    assert (expected_after[0][0], expected_after[2][1]) in seen
    final = ctx.targets[0]
    assert final.start[0] == expected_after[0][0] and final.end[-1] == expected_after[2][1]


def test_same_seed_same_regions_other_seed_differs():
    def run(seed):
        ctx = sim_context(ToyModel(duration_s=5), MonitoringAttrs(), seed=seed)
        return [(a.targets[0].start.tolist(), a.targets[0].nr_accesses.tolist()) for a in ctx.run(5 * 10**9)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_hot_and_cold_areas_are_told_apart():
    model = ToyModel(duration_s=10)
    ctx = sim_context(model, MonitoringAttrs(), seed=0)
    aggs = list(ctx.run(model.duration_ns))
    snap = aggs[-1].targets[0]
    a0 = model.areas[0]
    inside = (snap.start >= a0[0]) & (snap.end <= a0[1])
    assert inside.any() and np.all(snap.nr_accesses[inside] == 20)
    gap = (snap.start >= model.areas[0][1]) & (snap.end <= model.areas[1][0])
    assert np.all(snap.nr_accesses[gap] == 0)


def test_intervals_tuning_follows_the_access_goal():
    """A mostly hot target exceeds a 4% goal: the sampling interval shrinks to its minimum;
    with an unreachable goal it grows. The aggregation/sampling ratio stays 20 throughout."""
    def run(access_bp, min_us, max_us):
        goal = core.IntervalsGoal(access_bp=access_bp, aggrs=3, min_sample_us=min_us, max_sample_us=max_us)
        ctx = sim_context(ToyModel(duration_s=20), MonitoringAttrs(), seed=0, goal=goal)
        samples = []
        for agg in ctx.run(20 * 10**9):
            samples.append(ctx.attrs.sample_us)
            assert ctx.attrs.aggr_us == 20 * ctx.attrs.sample_us
            assert agg.targets[0].nr_accesses.max() <= 20
        return samples

    shrinking = run(400, 1000, 10_000_000)
    assert shrinking[0] == 5000 and shrinking[-1] == 1000
    growing = run(9000, 5000, 50_000)
    assert growing[-1] > 5000 and growing == sorted(growing)


@pytest.mark.parametrize("config", ["zigzag.cfg", "drift.cfg", "interleaved.cfg"])
def test_invariants_on_bundled_configs(config):
    from conftest import REPO
    from damo.sources.sim import load_model

    model = load_model(str(REPO / "masim" / "configs" / config), seed=5)
    attrs = MonitoringAttrs()
    ctx = sim_context(model, attrs, seed=5)
    three = core.three_regions(model.mappings)
    nr_aggs = 0
    for agg in ctx.run(model.duration_ns):
        check_invariants(agg, ctx, three, attrs, initialised=nr_aggs >= 1)
        nr_aggs += 1
    assert nr_aggs == model.duration_ns // 100_000_000
    # every mapping lies inside the monitored ranges
    for m_start, m_end in model.mappings:
        assert any(s <= m_start and m_end <= e for s, e in three)


def test_batched_and_per_sample_model_queries_give_the_same_record():
    from conftest import REPO
    from damo.sources.sim import load_model

    def run(batched: bool):
        model = load_model(str(REPO / "masim" / "configs" / "stairs_30secs.cfg"), seed=1)
        if not batched:
            model.sample_accessed_batch = None          # SimOps falls back to one query per sample
        ctx = sim_context(model, MonitoringAttrs(), seed=1)
        return [(a.targets[0].start.tolist(), a.targets[0].nr_accesses.tolist(), a.targets[0].age.tolist())
                for a in ctx.run(5 * 10**9)]

    assert run(True) == run(False)
