"""What the real runner and the model agree on: turn order, batch size and sweep offsets.

A phase's patterns take turns; each turn is ``BATCH_ACCESSES`` accesses by one
pattern. The turn order is a smooth weighted round robin, so over any
``total_weight`` consecutive turns each pattern gets exactly ``weight`` turns,
spread out rather than bunched. A sequential pattern's k-th access in a phase
touches byte ``(k mod P) * stride`` of its region, ``P`` being
``sequential_positions(size, stride)``.
"""
from __future__ import annotations

import math

import numpy as np

# Accesses per turn of a pattern, as masim's nr_accesses_per_region default.
BATCH_ACCESSES = 128 * 1024


def sequential_positions(size: int, stride: int) -> int:
    """How many strided offsets (0, stride, 2*stride, ...) fit in a region of ``size`` bytes."""
    return (size - 1) // stride + 1


class WeightedTurns:
    """Smooth weighted round robin: weights 1:1 give a, b, a, b; 3:1 give a, a, b, a, ...

    Patterns interleave finely instead of in long runs. The order repeats
    every ``sum(weights) / gcd(weights)`` turns.
    """

    def __init__(self, weights: list[int]):
        divisor = math.gcd(*weights)
        self.weights = [w // divisor for w in weights]
        self.total = sum(self.weights)
        self.current = [0] * len(self.weights)

    def next(self) -> int:
        best = 0
        for i, w in enumerate(self.weights):
            self.current[i] += w
            if self.current[i] > self.current[best]:
                best = i
        self.current[best] -= self.total
        return best


def turn_cycle(weights: list[int]) -> np.ndarray:
    """One full period of the turn order: the pattern index of each turn."""
    turns = WeightedTurns(weights)
    return np.array([turns.next() for _ in range(turns.total)], dtype=np.int64)
