"""Records for the ``report access`` tests: small, deterministic, each with a shape damo must get right."""
from __future__ import annotations

import numpy as np

from damo.model import Record, RecordBuilder, RecordMeta

from conftest import make_record

FULL_META = dict(target_kind="vaddr", sample_us=5000, aggr_us=100000, update_us=1000000,
                 min_nr_regions=10, max_nr_regions=1000)


def gappy_record(seed: int = 5) -> Record:
    """Heap, mmap area and stack far apart (the heatmap's '[...]' gaps), several snapshots per second
    with pauses between bursts, and an unaccessed, old area (negative temperatures)."""
    rng = np.random.default_rng(seed)
    b = RecordBuilder(RecordMeta(**FULL_META))
    areas = [(0x5555_0000_0000, 40 << 20), (0x7f00_0000_0000, 300 << 20), (0x7ffd_0000_0000, 4 << 20)]
    t = 3_000_000_000
    for i in range(12):
        starts, ends, acc, age = [], [], [], []
        for base, size in areas:
            n = int(rng.integers(2, 7))
            cuts = np.sort(rng.choice(np.arange(1, size >> 12), n - 1, replace=False)) << 12
            bounds = np.concatenate([[0], cuts, [size]]) + base
            starts += bounds[:-1].tolist()
            ends += bounds[1:].tolist()
            acc += rng.integers(0, 21, n).tolist()
            age += rng.integers(0, 60, n).tolist()
        t += 100_000_000 if i % 4 else 2_500_000_000        # bursts of 4 snapshots, then a pause
        b.add(7, t, t + 100_000_000 + int(rng.integers(0, 3000)), starts, ends, acc, age)
    return b.build()


def plain_record() -> Record:
    return make_record(nr_snapshots=6, nr_regions=9, seed=1)


def multi_target_record() -> Record:
    return make_record(nr_snapshots=3, nr_regions=6, seed=2, nr_targets=2)


def filter_by_hand(record: Record, keep_region) -> Record:
    """Drop regions one by one (``keep_region(snapshot index, region index) -> bool``): the slow reference."""
    b = RecordBuilder(record.meta)
    for i, snap in enumerate(record.snapshots()):
        keep = [j for j in range(snap.nr_regions) if keep_region(i, j)]
        b.add(snap.target_id, snap.start_ns, snap.end_ns, snap.start[keep], snap.end[keep],
              snap.nr_accesses[keep], snap.age[keep])
    return b.build()
