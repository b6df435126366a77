"""The kernel's DAMON kunit vectors (spec §10), with DAMON_MIN_REGION = 1 like the kunit build."""
from __future__ import annotations

import numpy as np
import pytest

from damo.engine import core
from damo.engine.core import Target
from damo.model import MonitoringAttrs


def make_target(ranges, nr=None, age=None, last=None) -> Target:
    t = Target(ranges=ranges)
    n = t.nr_regions
    t.nr_accesses = np.asarray(nr if nr is not None else [0] * n, dtype=np.int64)
    t.nr_accesses_bp = t.nr_accesses * core.BP
    t.age = np.asarray(age if age is not None else [0] * n, dtype=np.int64)
    t.last_nr_accesses = np.asarray(last if last is not None else [0] * n, dtype=np.int64)
    return t


def test_merge_two():
    t = make_target([(0, 100), (100, 300)], nr=[10, 20], age=[9, 21])
    # the pass ages regions before merging; undo that by starting from age-1 with nr == last
    t.last_nr_accesses = t.nr_accesses.copy()
    t.age = t.age - 1
    core.merge_regions_of(t, thres=100, sz_limit=10**6)
    assert t.ranges() == [(0, 300)]
    assert t.nr_accesses.tolist() == [16]
    assert t.nr_accesses_bp.tolist() == [160000]
    assert t.age.tolist() == [17]


def test_merge_regions_of():
    sa = [0, 100, 114, 122, 130, 156, 170, 184, 230]
    ea = [100, 112, 122, 130, 156, 170, 184, 230, 10170]
    nr = [0, 0, 10, 10, 20, 30, 1, 2, 5]
    t = make_target(list(zip(sa, ea)), nr=nr)
    core.merge_regions_of(t, thres=9, sz_limit=9999)
    assert t.ranges() == [(0, 112), (114, 130), (130, 156), (156, 170), (170, 230), (230, 10170)]


def test_split_at():
    t = make_target([(0, 100)], nr=[42], last=[15], age=[10])
    t.nr_accesses_bp = np.array([420000])
    core.split_regions_at(t, np.array([0]), np.array([25]))
    assert t.ranges() == [(0, 25), (25, 100)]
    assert t.nr_accesses.tolist() == [42, 42]
    assert t.last_nr_accesses.tolist() == [15, 15]
    assert t.age.tolist() == [10, 10]
    assert t.nr_accesses_bp.tolist() == [420000, 420000]


@pytest.mark.parametrize("ranges,nr_subs,bound", [
    ([(0, 22)], 2, 2),
    ([(0, 220)], 4, 4),
    ([(0, 220), (300, 400), (500, 700)], 4, 12),
])
def test_split_regions_of(ranges, nr_subs, bound):
    rng = np.random.default_rng(1)
    for _ in range(50):
        t = make_target(ranges)
        core.split_regions_of(t, nr_subs, rng, min_region=1)
        assert t.nr_regions <= bound
        # the pieces tile the original regions exactly
        assert np.all(t.end > t.start)
        merged = []
        for s, e in t.ranges():
            if merged and merged[-1][1] == s:
                merged[-1] = (merged[-1][0], e)
            else:
                merged.append((s, e))
        assert merged == ranges


def test_aggregate():
    targets = [make_target([(0, 100), (100, 200)], nr=[3, 5]), make_target([(300, 400)], nr=[7])]
    for t in targets:
        core.reset_aggregated(t)
    assert [t.nr_accesses.tolist() for t in targets] == [[0, 0], [0]]
    assert [t.last_nr_accesses.tolist() for t in targets] == [[3, 5], [7]]
    assert [t.ranges() for t in targets] == [[(0, 100), (100, 200)], [(300, 400)]]


def test_moving_sum():
    mvsum = nomvsum = 50000
    got = []
    for value in [10000, 0, 10000, 0, 0, 0, 10000, 0, 0, 0]:
        mvsum = core.moving_sum(mvsum, nomvsum, 10, value)
        got.append(mvsum)
    assert got == [55000, 50000, 55000, 50000, 45000, 40000, 45000, 40000, 35000, 30000]


def test_update_access_rate_matches_per_sample_moving_sum():
    """A run of k samples at once gives what k single samples give."""
    rng = np.random.default_rng(0)
    t1 = make_target([(0, 10), (10, 20), (20, 30)], nr=[0, 0, 0], last=[7, 20, 3])
    t1.nr_accesses_bp = t1.last_nr_accesses * core.BP
    t2 = make_target(t1.ranges(), nr=[0, 0, 0], last=[7, 20, 3])
    t2.nr_accesses_bp = t1.nr_accesses_bp.copy()
    acc = rng.random((20, 3)) < 0.4
    core.update_access_rate(t1, acc, 20)
    for row in acc:
        core.update_access_rate(t2, row[None, :], 20)
    assert t1.nr_accesses.tolist() == t2.nr_accesses.tolist() == acc.sum(axis=0).tolist()
    assert t1.nr_accesses_bp.tolist() == t2.nr_accesses_bp.tolist()
    assert t1.nr_accesses_bp.tolist() == (t1.nr_accesses * core.BP).tolist()


def test_update_monitoring_result():
    old = MonitoringAttrs(sample_us=10, aggr_us=1000)
    t = make_target([(3, 7)], nr=[15], age=[20])
    t.nr_accesses_bp = np.array([150000])
    core.update_monitoring_result(t, old, MonitoringAttrs(sample_us=100, aggr_us=10000), False)
    assert (t.nr_accesses[0], t.age[0]) == (15, 2)
    core.update_monitoring_result(t, old, MonitoringAttrs(sample_us=1, aggr_us=1000), False)
    assert (t.nr_accesses[0], t.age[0]) == (150, 2)
    core.update_monitoring_result(t, old, MonitoringAttrs(sample_us=1, aggr_us=100), False)
    assert (t.nr_accesses[0], t.age[0]) == (150, 20)
    assert t.nr_accesses_bp[0] == 150 * core.BP


def test_update_monitoring_result_mid_aggregation():
    old = MonitoringAttrs(sample_us=10, aggr_us=1000)
    t = make_target([(3, 7)], nr=[4], last=[15], age=[20])
    core.update_monitoring_result(t, old, MonitoringAttrs(sample_us=1, aggr_us=1000), True)
    assert (t.nr_accesses[0], t.last_nr_accesses[0], t.nr_accesses_bp[0]) == (0, 150, 1500000)


def test_nr_accesses_to_accesses_bp():
    attrs = MonitoringAttrs(sample_us=10, aggr_us=((1 << 32)) * 10)
    assert core.nr_accesses_to_bp(123, attrs) == 0


@pytest.mark.parametrize("old,new,expected", [
    ([], [(5, 15), (15, 25)], [(5, 15), (15, 25)]),
    ([(4, 16), (24, 32)], [(18, 23)], [(18, 23)]),
    ([(4, 16), (24, 32)], [(8, 28)], [(8, 16), (16, 24), (24, 28)]),
    ([(0, 4), (4, 17)], [(0, 15), (25, 40)], [(0, 4), (4, 15), (25, 40)]),
    ([(0, 4), (42, 52)], [(0, 15), (25, 40), (44, 50)], [(0, 15), (25, 40), (44, 50)]),
])
def test_set_regions(old, new, expected):
    t = make_target(old)
    core.set_regions(t, new, min_region=1)
    assert t.ranges() == expected


def test_set_regions_keeps_state_of_survivors():
    t = make_target([(4, 16), (24, 32)], nr=[3, 4], age=[5, 6], last=[1, 2])
    core.set_regions(t, [(8, 28)], min_region=1)
    assert t.nr_accesses.tolist() == [3, 0, 4]
    assert t.age.tolist() == [5, 0, 6]
    assert t.last_nr_accesses.tolist() == [1, 0, 2]


@pytest.mark.parametrize("attrs,ok", [
    (MonitoringAttrs(5000, 100000, 1000000, 10, 1000), True),
    (MonitoringAttrs(5000, 100000, 1000000, 2, 1000), False),
    (MonitoringAttrs(5000, 100000, 1000000, 11, 10), False),
    (MonitoringAttrs(200000, 100000, 1000000, 10, 1000), False),
])
def test_set_attrs(attrs, ok):
    if ok:
        core.check_attrs(attrs)
    else:
        with pytest.raises(ValueError):
            core.check_attrs(attrs)


def test_three_regions_in_vmas():
    vmas = [(10, 20), (20, 25), (200, 210), (210, 220), (300, 305), (307, 330)]
    assert core.three_regions(vmas, min_region=1) == [(10, 25), (200, 220), (300, 330)]


def test_three_regions_needs_two_gaps():
    with pytest.raises(ValueError):
        core.three_regions([(10, 20), (30, 40)], min_region=1)


def _regions_from_bounds(groups):
    return [(a, b) for g in groups for a, b in zip(g[:-1], g[1:])]


OLD_THREE = [[10, 20, 30], [50, 55, 57, 59], [70, 80, 90, 100]]


@pytest.mark.parametrize("three,expected", [
    ([(5, 27), (45, 55), (73, 104)], [[5, 20, 27], [45, 55], [73, 80, 90, 104]]),
    ([(5, 27), (56, 57), (65, 104)], [[5, 20, 27], [56, 57], [65, 80, 90, 104]]),
    ([(5, 27), (61, 63), (65, 104)], [[5, 20, 27], [61, 63], [65, 80, 90, 104]]),
    ([(5, 7), (30, 32), (65, 68)], [[5, 7], [30, 32], [65, 68]]),
])
def test_apply_three_regions(three, expected):
    t = make_target(_regions_from_bounds(OLD_THREE))
    core.set_regions(t, three, min_region=1)
    assert t.ranges() == _regions_from_bounds(expected)


@pytest.mark.parametrize("start,end,n,expected", [
    (0, 100, 0, None),
    (0, 100, 10, [(i, i + 10) for i in range(0, 100, 10)]),
    (5, 59, 5, [(5, 15), (15, 25), (25, 35), (35, 45), (45, 59)]),
    (4, 6, 1, [(4, 6)]),
    (0, 3, 2, [(0, 1), (1, 3)]),
    (5, 6, 2, None),
])
def test_split_evenly(start, end, n, expected):
    assert core.evenly_split(start, end, n, min_region=1) == expected


def test_feed_loop_next_input():
    f = core.feed_loop_next_input
    assert f(900000, 200) > 900000
    assert f(900000, 250000000) < 900000
    assert f(900000, 200) > f(900000, 2000)
    assert (f(900000, 200), f(900000, 250000000), f(900000, 2000)) == (1782000, 10000, 1620000)
    assert f(900000, 10000) == 900000


@pytest.mark.parametrize("score,adapt", [
    (0, 20000), (2000, 18000), (9999, 10001), (10000, 10000), (10001, 9999), (15000, 7500),
    (19999, 5000), (20000, 5000), (10**9, 5000),
])
def test_intervals_adaptation(score, adapt):
    assert core.intervals_adaptation_bp(score) == adapt


def test_set_attrs_rejects_a_sample_interval_outside_the_goal():
    goal = core.IntervalsGoal(access_bp=400, aggrs=3, min_sample_us=5000, max_sample_us=10_000_000)
    core.check_attrs(MonitoringAttrs(), goal)
    with pytest.raises(ValueError):
        core.check_attrs(MonitoringAttrs(sample_us=1000, aggr_us=20000), goal)
    with pytest.raises(ValueError):
        core.check_attrs(MonitoringAttrs(), core.IntervalsGoal(400, 3, 10_000, 5000))
