"""The operations-set interface: what the core asks of an address space.

As in the kernel, the core owns regions and their arithmetic; an operations set owns the
address space: the initial regions, their periodic update, and the access-check primitive
(pick a sampling address per region and clear its accessed state, then later ask whether it
was accessed). The simulator is one such primitive; page_idle (/sys/kernel/mm/page_idle) or a
page-table walker would be others, with ``virtual_clock = False`` and ``max_batch = 1``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Sequence

import numpy as np

from damo.engine.core import damon_rand, set_regions, three_regions, va_init_ranges

if TYPE_CHECKING:
    from damo.engine.core import Context, Target


class Operations(ABC):
    """An operations set. Subclasses implement at least the two access-check steps.

    ``max_batch`` is how many consecutive samples one prepare/check round may cover. A real
    primitive checks one sample at a time (the core sleeps a sampling interval between the
    two calls); a virtual-clock primitive can answer a whole run of samples at once.
    """

    name: str = "?"
    virtual_clock: bool = False
    max_batch: int = 1

    def init(self, ctx: "Context") -> None:
        """Give targets their first regions (called once, before the first sample)."""

    def update(self, ctx: "Context") -> None:
        """Refresh the regions from the address space (every ops update interval)."""

    @abstractmethod
    def prepare_access_checks(self, ctx: "Context", t_ns: int, nr_samples: int) -> None:
        """Choose sampling addresses (``target.sampling_addr``, [samples, regions]) and mkold them.

        ``t_ns`` is the context's clock at the first sample.
        """

    @abstractmethod
    def check_accesses(self, ctx: "Context", t_ns: int, nr_samples: int) -> list[np.ndarray]:
        """Per target, bool [samples, regions]: was each sampling address accessed."""

    def choose_sampling_addresses(self, ctx: "Context", nr_samples: int) -> None:
        """The kernel's per-region ``damon_rand(start, end)``, for a run of samples."""
        for t in ctx.targets:
            t.sampling_addr = damon_rand(ctx.rng, t.start, t.end, (nr_samples, t.nr_regions))


class VirtualAddressOps(Operations):
    """vaddr-style region management: the three-regions rule over a target's mappings."""

    @abstractmethod
    def mappings(self, target: "Target") -> Sequence[tuple[int, int]]:
        """The target's mappings (VMAs) as sorted ``(start, end)`` pairs."""

    def three_regions(self, target: "Target", ctx: "Context") -> list[tuple[int, int]] | None:
        try:
            return three_regions(self.mappings(target), ctx.min_region)
        except ValueError:
            return None

    def init(self, ctx: "Context") -> None:
        for t in ctx.targets:
            if t.nr_regions:
                continue
            three = self.three_regions(t, ctx)
            if three:
                t.set_ranges(va_init_ranges(three, ctx.attrs.min_nr_regions, ctx.min_region))

    def update(self, ctx: "Context") -> None:
        for t in ctx.targets:
            three = self.three_regions(t, ctx)
            if three:
                set_regions(t, three, ctx.min_region)
