"""The ``page_idle`` operations set: vaddr monitoring of real processes through idle page tracking.

The engine sees no kernel file: the idle tracker and the pagemap/maps readers are handed in
(damo.kernel.page_idle provides them; damo.sources.page_idle wires them up).

For kernels without DAMON (idle page tracking exists since Linux 4.3). Each target's handle is
a pid. Per sample, as DAMON's vaddr ops do per region: pick a random address in each region,
find its page (``/proc/PID/pagemap``, then the folio head in ``/proc/kpageflags``) and mark it
idle; one sampling interval later, read the idle bit back: cleared means accessed. All regions
of all targets go through one batch of sorted reads and writes (damo.kernel.page_idle).

Differences from the kernel's vaddr ops (docs/engine.md): a process's pages are resolved a
2 MiB block at a time and kept until the next ops update (pages not present are looked up again
each time), so a page that moves meanwhile is looked up at its old PFN until then.
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

from damo.engine.core import PAGE_SIZE, Context, Target
from damo.engine.ops import VirtualAddressOps

PAGE_SHIFT = PAGE_SIZE.bit_length() - 1


class Resolved(Protocol):
    trackable: np.ndarray          # bool per sampled page: present, on the LRU
    head_pfn: np.ndarray           # its folio's head PFN where trackable


class IdleTracker(Protocol):
    """What the ops need of idle page tracking (damo.kernel.page_idle.PageIdle, handed in)."""

    def resolve(self, pagemap, vpn: np.ndarray, mappings: Sequence[tuple[int, int]] | None = None) -> Resolved: ...
    def mark_idle(self, pfns: np.ndarray) -> None: ...
    def idle(self, pfns: np.ndarray) -> np.ndarray: ...
    def forget(self) -> None: ...


class PageIdleOps(VirtualAddressOps):
    """Access checks through ``/sys/kernel/mm/page_idle/bitmap``; every target handle is a pid."""

    name = "page_idle"
    virtual_clock = False
    max_batch = 1

    def __init__(self, page_idle: IdleTracker, open_pagemap: Callable[[int], object],
                 read_mappings: Callable[[int], Sequence[tuple[int, int]]]):
        self.page_idle = page_idle
        self._open_pagemap = open_pagemap
        self._read_mappings = read_mappings
        self._pagemaps: dict[int, object] = {}
        self._resolved: list[Resolved] = []
        self._heads = np.zeros(0, dtype=np.int64)   # this sample's head PFNs, all targets
        self._mappings: dict[int, Sequence[tuple[int, int]]] = {}   # pid -> VMAs at the last update

    def close(self) -> None:
        for pagemap in self._pagemaps.values():
            pagemap.close()
        self._pagemaps.clear()

    def pagemap(self, pid: int):
        if pid not in self._pagemaps:
            self._pagemaps[pid] = self._open_pagemap(pid)
        return self._pagemaps[pid]

    def forget_target(self, pid: int) -> None:
        """A target's process exited (or is no longer followed): close its pagemap."""
        pagemap = self._pagemaps.pop(pid, None)
        if pagemap is not None:
            pagemap.close()
        self._mappings.pop(pid, None)

    def mappings(self, target: Target) -> Sequence[tuple[int, int]]:
        self._mappings[target.handle] = self._read_mappings(target.handle)
        return self._mappings[target.handle]

    def update(self, ctx: Context) -> None:
        super().update(ctx)
        self.page_idle.forget()

    def prepare_access_checks(self, ctx: Context, t_ns: int, nr_samples: int) -> None:
        self.choose_sampling_addresses(ctx, nr_samples)
        self._resolved = [self.page_idle.resolve(self.pagemap(t.handle), t.sampling_addr.ravel() >> PAGE_SHIFT,
                                                 self._mappings.get(t.handle))
                          for t in ctx.targets]
        heads = [r.head_pfn[r.trackable] for r in self._resolved]
        # The same array goes to the read back, so the bitmap sorts its words once per sample.
        self._heads = np.concatenate(heads) if heads else np.zeros(0, dtype=np.int64)
        self.page_idle.mark_idle(self._heads)

    def check_accesses(self, ctx: Context, t_ns: int, nr_samples: int) -> list[np.ndarray]:
        idle = self.page_idle.idle(self._heads)
        out, pos = [], 0
        for t, r in zip(ctx.targets, self._resolved):
            accessed = np.zeros(len(r.trackable), dtype=bool)
            n = int(r.trackable.sum())
            accessed[r.trackable] = ~idle[pos:pos + n]
            pos += n
            out.append(accessed.reshape(t.sampling_addr.shape))
        return out

