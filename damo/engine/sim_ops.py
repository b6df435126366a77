"""The ``sim`` operations set: vaddr-style monitoring of the masim access model.

Mappings come from the model; a sampling address counts as accessed when the model says its
page was touched between the prepare and the check of that sample. The clock is virtual:
the context never sleeps, and a whole run of samples is checked in one round.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from damo.engine.core import Context, Target
from damo.engine.ops import VirtualAddressOps

class AccessModel(Protocol):
    """What the sim operations set needs from ``masim.model.AccessModel``."""

    mappings: Sequence[tuple[int, int]]

    def sample_accessed(self, t0_ns: int, t1_ns: int, addrs: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray: ...


class SimOps(VirtualAddressOps):
    """Access checks answered by an access model; every target is a handle to a model.

    ``rng`` draws the model's accesses; the context's own generator draws sampling
    addresses and split points, so the two streams stay independent.
    """

    name = "sim"
    virtual_clock = True
    max_batch = 1 << 30

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def mappings(self, target: Target) -> Sequence[tuple[int, int]]:
        return list(target.handle.mappings)

    def prepare_access_checks(self, ctx: Context, t_ns: int, nr_samples: int) -> None:
        self.choose_sampling_addresses(ctx, nr_samples)

    def check_accesses(self, ctx: Context, t_ns: int, nr_samples: int) -> list[np.ndarray]:
        step = ctx.sample_ns
        out = []
        for t in ctx.targets:
            model = t.handle
            addrs = t.sampling_addr
            batch = getattr(model, "sample_accessed_batch", None)
            if batch is not None:
                times = t_ns + step * np.arange(nr_samples + 1, dtype=np.int64)
                out.append(np.asarray(batch(times, addrs, self.rng), dtype=bool))
                continue
            acc = np.empty(addrs.shape, dtype=bool)
            for i in range(nr_samples):
                t0 = t_ns + i * step
                acc[i] = model.sample_accessed(t0, t0 + step, addrs[i], self.rng)
            out.append(acc)
        return out


def sim_context(model: AccessModel | Sequence[AccessModel], attrs, seed: int = 0, **kwargs) -> Context:
    """A context monitoring ``model`` (or each of several models, target ids 0, 1, ...) as its
    targets, every random stream derived from ``seed``."""
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    engine_seed, ops_seed = np.random.SeedSequence(seed).spawn(2)
    targets = [Target(m, target_id=k) for k, m in enumerate(models)]
    return Context(attrs, SimOps(np.random.default_rng(ops_seed)), targets,
                   rng=np.random.default_rng(engine_seed), **kwargs)
