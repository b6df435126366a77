"""The access model: layout, exact agreement with a brute-force replay, and ground truth."""
from __future__ import annotations

import numpy as np
import pytest

from damo.errors import DamoError
from masim.config import bundled_configs_dir, load_config, parse_config
from masim.model import DEFAULT_ACCESS_RATE, PAGE_SIZE, AccessModel
from masim.schedule import BATCH_ACCESSES, WeightedTurns, sequential_positions

MS = 1_000_000


def bundled(name: str):
    return load_config(f"{bundled_configs_dir()}/{name}.cfg")


def mapping_bytes(size: int) -> int:
    return -(-size // PAGE_SIZE) * PAGE_SIZE


# ---- layout -----------------------------------------------------------------

def test_layout_looks_like_a_process_and_gives_damons_three_regions():
    model = AccessModel(bundled("zigzag"), seed=3)
    maps = model.mappings
    assert maps == sorted(maps)
    assert all(start % PAGE_SIZE == 0 and end % PAGE_SIZE == 0 and start < end for start, end in maps)
    assert all(a_end < b_start for (_, a_end), (b_start, _) in zip(maps, maps[1:]))
    heap, *regions, stack = maps
    assert heap == model.heap_range and stack == model.stack_range
    assert hex(heap[0]).startswith("0x55") and hex(regions[0][0]).startswith("0x7f")
    assert stack[1] <= 0x7fff_ffff_f000 and hex(stack[0]).startswith("0x7ff")
    assert regions == [model.region_ranges["a"], model.region_ranges["b"]]
    assert [e - s for s, e in regions] == [mapping_bytes(100_000_000)] * 2
    # DAMON's three-regions init splits at the two largest gaps: they must be
    # heap -> mmap area and mmap area -> stack.
    gaps = [(b_start - a_end, i) for i, ((_, a_end), (b_start, _)) in enumerate(zip(maps, maps[1:]))]
    two_largest = sorted(i for _, i in sorted(gaps)[-2:])
    assert two_largest == [0, len(maps) - 2]


def test_layout_is_deterministic_given_the_seed():
    config = bundled("stairs")
    assert AccessModel(config, seed=7).mappings == AccessModel(config, seed=7).mappings
    assert AccessModel(config, seed=7).mappings != AccessModel(config, seed=8).mappings
    model = AccessModel(config)
    assert model.duration_ns == 60_000 * MS
    assert model.phase_spans[:2] == [("initial phase", 0, 10_000 * MS), ("phase 0", 10_000 * MS, 15_000 * MS)]


def test_bad_access_rate_is_a_user_error():
    with pytest.raises(DamoError):
        AccessModel(bundled("2mb"), access_rate=0)


# ---- brute-force replay -----------------------------------------------------

MIXED = parse_config("""\
a, 3000000
b, 2500000
c, 1000000
d, 700001
e, 3000
r, 1048576

p0
7
a, 0, 4096, 3
b, 0, 8192, 2
c, 0, 64, 1, ro
d, 0, 6000, 1, rw

p1
5
e, 0, 4096, 1
a, 0, 12288, 2
a, 0, 4096, 1
r, 1, 64, 1
""", "mixed.cfg")


def replay(config, model, t0_ns, t1_ns):
    """Per region, pages that sequential accesses touched in [t0, t1), and random accesses' counts.

    Walks the turns one by one, like the runner does, independently of the
    model's closed-form arithmetic.
    """
    touched = {r.name: np.zeros(mapping_bytes(r.size) // PAGE_SIZE, dtype=bool) for r in config.regions}
    random_counts = {r.name: 0 for r in config.regions}
    phase_start = 0
    for phase in config.phases:
        phase_end = phase_start + phase.duration_ms * MS
        a, b = max(t0_ns, phase_start), min(t1_ns, phase_end)
        if a < b:
            k0 = model.accesses_done(a - phase_start)
            k1 = model.accesses_done(b - phase_start)
            turns = WeightedTurns([p.weight for p in phase.patterns])
            local = [0] * len(phase.patterns)         # accesses each pattern has made
            turn_start = 0
            while turn_start < k1:
                j = turns.next()
                lo, hi = max(k0, turn_start), min(k1, turn_start + BATCH_ACCESSES)
                pattern = phase.patterns[j]
                if lo < hi:
                    ks = local[j] + np.arange(lo - turn_start, hi - turn_start)
                    if pattern.random:
                        random_counts[pattern.region] += hi - lo
                    else:
                        size = config.region(pattern.region).size
                        positions = sequential_positions(size, pattern.stride)
                        pages = (ks % positions) * pattern.stride // PAGE_SIZE
                        touched[pattern.region][np.unique(pages)] = True
                local[j] += BATCH_ACCESSES
                turn_start += BATCH_ACCESSES
        phase_start = phase_end
    return touched, random_counts


def all_pages(model, config):
    return {r.name: np.arange(*model.region_ranges[r.name], PAGE_SIZE) for r in config.regions}


@pytest.mark.parametrize("access_rate", [DEFAULT_ACCESS_RATE, 7_777.0])
def test_model_matches_a_turn_by_turn_replay(access_rate):
    config = MIXED
    model = AccessModel(config, seed=1, access_rate=access_rate)
    pages = all_pages(model, config)
    rng = np.random.default_rng(0)
    windows = [(0, 12 * MS), (6 * MS, 8 * MS), (6_999_000, 7_000_500)]     # whole run, across phases
    for _ in range(60):
        t0 = int(rng.integers(0, 12 * MS))
        windows.append((t0, t0 + int(rng.choice([20_000, 300_000, 1_500_000, 5 * MS]))))
    for t0, t1 in windows:
        touched, random_counts = replay(config, model, t0, t1)
        for region in config.regions:
            p = model.access_probability(t0, t1, pages[region.name])
            if region.name == "r":
                n = random_counts["r"]
                expected = 1 - (1 - PAGE_SIZE / region.size) ** n
                np.testing.assert_allclose(p, expected, rtol=1e-9, atol=1e-12)
            else:
                np.testing.assert_array_equal(p, touched[region.name].astype(float),
                                              err_msg=f"{region.name} [{t0}, {t1})")


def test_strides_leave_untouched_pages_between_them():
    model = AccessModel(MIXED)
    pages = all_pages(model, MIXED)
    p0 = (0, 7 * MS)
    # a: stride 4096, every page; b: stride 8192, every other page;
    # d: stride 6000 over 700001 bytes, pages holding a multiple of 6000.
    assert model.access_probability(*p0, pages["a"]).min() == 1.0
    b = model.access_probability(*p0, pages["b"])
    assert b[::2].min() == 1.0 and b[1::2].max() == 0.0
    d = model.access_probability(*p0, pages["d"])
    offsets = np.arange(sequential_positions(700001, 6000)) * 6000
    expected = np.zeros(len(d))
    expected[offsets // PAGE_SIZE] = 1.0
    np.testing.assert_array_equal(d, expected)
    # Regions without a pattern in the phase are never touched.
    assert model.access_probability(*p0, pages["e"]).max() == 0.0


def test_addresses_outside_regions_are_never_accessed():
    model = AccessModel(MIXED)
    heap, stack = model.heap_range, model.stack_range
    a_end = model.region_ranges["a"][1]
    b_start = model.region_ranges["b"][0]
    outside = np.array([0, heap[0], heap[1] - 1, a_end, b_start - 1, stack[0], stack[1] - 1,
                        2**47 - 1], dtype=np.int64)
    assert model.access_probability(0, model.duration_ns, outside).tolist() == [0.0] * len(outside)
    # Before the start and after the end nothing happens.
    a = np.arange(*model.region_ranges["a"], PAGE_SIZE)
    assert model.access_probability(-5 * MS, 0, a).max() == 0.0
    assert model.access_probability(model.duration_ns, model.duration_ns + MS, a).max() == 0.0


def test_uint64_addresses_work_too():
    model = AccessModel(MIXED)
    a = np.arange(*model.region_ranges["a"], PAGE_SIZE, dtype=np.uint64)
    assert model.access_probability(0, 7 * MS, a).min() == 1.0


def test_sample_accessed_draws_from_the_probabilities_deterministically():
    model = AccessModel(bundled("100mb"))
    start, end = model.region_ranges["a"]
    addrs = np.linspace(start, end - 1, 20_000).astype(np.int64)
    # 40 us of random accesses: about 3500 accesses over 24415 pages.
    p = model.access_probability(MS, MS + 40_000, addrs)
    assert 0.05 < p.mean() < 0.5
    first = model.sample_accessed(MS, MS + 40_000, addrs, np.random.default_rng(5))
    again = model.sample_accessed(MS, MS + 40_000, addrs, np.random.default_rng(5))
    np.testing.assert_array_equal(first, again)
    assert first.dtype == bool
    assert abs(first.mean() - p.mean()) < 4 * np.sqrt(p.mean() / len(addrs))


# ---- ground truth -----------------------------------------------------------

@pytest.mark.parametrize("name", ["stairs", "stairs_30secs"])
def test_stairs_true_wss_is_the_active_region(name):
    config = bundled(name)
    model = AccessModel(config)
    for (phase_name, start, end), phase in zip(model.phase_spans, config.phases):
        active = {p.region for p in phase.patterns}
        size = sum(config.region(r).size for r in active)
        for t0 in range(start, end, 100 * MS):
            wss = model.true_wss(t0, t0 + 100 * MS)
            assert abs(wss - size) <= 0.01 * size, (phase_name, t0, wss, size)
    times, wss = model.true_wss_series(100 * MS)
    assert len(times) == model.duration_ns // (100 * MS)
    assert times[0] == 100 * MS and times[-1] == model.duration_ns
    phase_windows = wss[config.phases[0].duration_ms // 100:]
    assert np.all(np.abs(phase_windows - 10_000_000) <= 100_000)


@pytest.mark.parametrize("name", ["zigzag", "zigzag_30secs", "demo"])
def test_zigzag_true_wss_is_the_active_100mb_area(name):
    config = bundled(name)
    model = AccessModel(config)
    a = model.region_ranges["a"][1] - model.region_ranges["a"][0]
    b = model.region_ranges["b"][1] - model.region_ranges["b"][0]
    times, wss = model.true_wss_series(100 * MS)
    for t, w in zip(times.tolist(), wss.tolist()):
        name_now = next(n for n, s, e in model.phase_spans if s < t <= e)
        expected = a + b if name_now == "initial phase" else a if name_now.startswith("low") else b
        assert w == expected, (t, name_now)
    assert a == b == mapping_bytes(100_000_000)


def test_our_configs_truth():
    hotspot = AccessModel(bundled("hotspot"))
    assert hotspot.true_wss(5_000 * MS, 5_100 * MS) == mapping_bytes(4_000_000)
    drift = AccessModel(bundled("drift"))
    spans = dict((n, (s, e)) for n, s, e in drift.phase_spans)
    s, e = spans["window 5"]
    accessed = drift.accessed_pages(s, e)
    assert sorted(name for name, pages in accessed.items() if pages.any()) == ["d05", "d06", "d07"]


def test_truth_heatmap_shows_zigzag():
    model = AccessModel(bundled("zigzag"))
    a0 = model.region_ranges["a"][0]
    a1 = model.region_ranges["b"][1]
    # low phase 0 then high phase 0; address bins: first half a, second half b.
    heat = model.truth_heatmap(10_000 * MS, 20_000 * MS, a0, a1, time_bins=2, addr_bins=2)
    assert heat.shape == (2, 2)
    assert heat[0, 0] > 0.9 and heat[1, 1] > 0.9
    assert heat[0, 1] < 0.1 and heat[1, 0] < 0.1
    # In the initial phase a and b take turns of ~1.6 ms, so each is touched in
    # every 5 ms sampling interval.
    heat = model.truth_heatmap(0, 10_000 * MS, a0, a1, time_bins=4, addr_bins=8)
    assert heat.shape == (4, 8) and heat.min() > 0.9


def test_truth_heatmap_separates_interleaved_hot_spots_by_heat():
    config = bundled("interleaved")
    model = AccessModel(config)
    spans = dict((n, (s, e)) for n, s, e in model.phase_spans)
    t0, t1 = spans["hot spots"]
    heat = {}
    for name in ("cold1", "hot0", "hot1", "hot2"):
        start, end = model.region_ranges[name]
        heat[name] = model.truth_heatmap(t0, t1, start, end, time_bins=1, addr_bins=1)[0, 0]
    assert heat["cold1"] == 0.0
    assert 1.0 >= heat["hot0"] > heat["hot1"] > heat["hot2"] > 0.2


@pytest.mark.parametrize("name", ["stairs_30secs", "interleaved", "default"])
def test_batch_queries_equal_window_by_window_queries(name):
    config = bundled(name)
    model = AccessModel(config, seed=2)
    lo, hi = model.mappings[0][0], model.mappings[-1][1]
    rng = np.random.default_rng(4)
    spans = [model.phase_spans[0][2] - 7 * MS, model.duration_ns // 3, model.duration_ns - 60 * MS]
    for t_start in spans:                  # across a phase boundary, inside, up to the end and past it
        times = t_start + 5 * MS * np.arange(21, dtype=np.int64)
        inside = [rng.integers(*model.region_ranges[r.name], 300) for r in config.regions]
        addrs = np.concatenate([np.concatenate(inside)[None, :].repeat(20, axis=0),
                                rng.integers(lo, hi, (20, 200))], axis=1)
        rng.permuted(addrs, axis=1, out=addrs)
        batch = model.access_probability_batch(times, addrs)
        single = np.array([model.access_probability(times[i], times[i + 1], addrs[i])
                           for i in range(20)])
        np.testing.assert_allclose(batch, single, rtol=1e-12, atol=1e-15)
        drawn = model.sample_accessed_batch(times, addrs, np.random.default_rng(9))
        one_by_one_rng = np.random.default_rng(9)
        one_by_one = np.array([model.sample_accessed(times[i], times[i + 1], addrs[i], one_by_one_rng)
                               for i in range(20)])
        np.testing.assert_array_equal(drawn, one_by_one)


def test_batch_query_of_the_mixed_config_matches_the_replay():
    model = AccessModel(MIXED, seed=1, access_rate=7_777.0)
    pages = np.concatenate(list(all_pages(model, MIXED).values()))
    times = np.arange(0, 12 * MS + 1, 400_000, dtype=np.int64)
    batch = model.access_probability_batch(times, np.broadcast_to(pages, (len(times) - 1, len(pages))))
    for i in range(len(times) - 1):
        touched, random_counts = replay(MIXED, model, times[i], times[i + 1])
        expected = np.concatenate([
            touched[r.name] if r.name != "r"
            else np.full(len(touched["r"]), 1 - (1 - PAGE_SIZE / r.size) ** random_counts["r"])
            for r in MIXED.regions])
        np.testing.assert_allclose(batch[i], expected, rtol=1e-9, atol=1e-12)
