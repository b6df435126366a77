"""Small stand-ins for the engine tests: a literal per-region merge and a toy access model."""
from __future__ import annotations

import numpy as np

from damo.engine.core import BP, Target

PAGE = 4096


def reference_merge_regions_of(t: Target, thres: int, sz_limit: int) -> list[dict]:
    """The kernel's damon_merge_regions_of, transcribed region by region (slow, obvious)."""
    regions = [dict(start=int(s), end=int(e), nr=int(n), bp=int(b), last=int(l), age=int(a))
               for s, e, n, b, l, a in zip(*t.columns())]
    out: list[dict] = []
    prev = None
    for r in regions:
        r["age"] = 0 if abs(r["nr"] - r["last"]) > thres else r["age"] + 1
        if prev is not None and prev["end"] == r["start"] and abs(prev["nr"] - r["nr"]) <= thres \
                and (prev["end"] - prev["start"]) + (r["end"] - r["start"]) <= sz_limit:
            sl, sr = prev["end"] - prev["start"], r["end"] - r["start"]
            prev["nr"] = (prev["nr"] * sl + r["nr"] * sr) // (sl + sr)
            prev["bp"] = prev["nr"] * BP
            prev["age"] = (prev["age"] * sl + r["age"] * sr) // (sl + sr)
            prev["end"] = r["end"]
        else:
            out.append(r)
            prev = r
    return out


def target_dicts(t: Target) -> list[dict]:
    return [dict(start=int(s), end=int(e), nr=int(n), bp=int(b), last=int(l), age=int(a))
            for s, e, n, b, l, a in zip(*t.columns())]


class ToyModel:
    """A process-like layout (heap, three areas, stack) with a hot spot that moves over time.

    Area 0 is swept sequentially (hot), area 1 is accessed at random with a probability
    that changes every second, area 2 is idle except for a moving hot window.
    """

    def __init__(self, area_size: int = 64 << 20, duration_s: float = 30.0, grow_at_ns: int | None = None):
        base = 0x7F00_0000_0000
        self.heap = (0x5555_0000_0000, 0x5555_0000_0000 + 33 * PAGE)
        self.areas = [(base + i * (area_size + (1 << 20)), base + i * (area_size + (1 << 20)) + area_size)
                      for i in range(3)]
        self.stack = (0x7FFD_0000_0000, 0x7FFD_0000_0000 + 33 * PAGE)
        self.duration_ns = int(duration_s * 1e9)
        self.grow_at_ns = grow_at_ns
        self.now_ns = 0

    @property
    def mappings(self) -> list[tuple[int, int]]:
        maps = [self.heap, *self.areas, self.stack]
        if self.grow_at_ns is not None and self.now_ns >= self.grow_at_ns:
            # the heap grows and a new area appears above the others
            maps[0] = (self.heap[0], self.heap[1] + 1000 * PAGE)
            last = self.areas[-1]
            maps.append((last[1] + (8 << 20), last[1] + (40 << 20)))
        return sorted(maps)

    def access_probability(self, t0_ns: int, t1_ns: int, addrs: np.ndarray) -> np.ndarray:
        self.now_ns = t1_ns
        addrs = np.asarray(addrs, dtype=np.int64)
        p = np.zeros(addrs.shape)
        a0, a1, a2 = self.areas
        second = t0_ns // 1_000_000_000
        p[(addrs >= a0[0]) & (addrs < a0[1])] = 1.0
        p[(addrs >= a1[0]) & (addrs < a1[1])] = 0.05 + 0.1 * (second % 5)
        size = a2[1] - a2[0]
        lo = a2[0] + (second * size // 7) % size
        p[(addrs >= lo) & (addrs < lo + size // 8)] = 0.8
        return p

    def sample_accessed(self, t0_ns: int, t1_ns: int, addrs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self.access_probability(t0_ns, t1_ns, addrs)
        return rng.random(p.shape) < p
