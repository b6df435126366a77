"""A subprocess signal storm over a long simulated record, for each output type (issue 14,
items 1-3 and 6): SIGINT, SIGTERM and SIGKILL at seeded moments; the file must read back as an
exact prefix of the uninterrupted record, and the closing message must count what it holds."""
from __future__ import annotations

import random
import signal

import pytest

from bench import robustness


@pytest.mark.parametrize("fmt", robustness.FORMATS)
def test_signal_storm(tmp_path, fmt):
    rng = random.Random(fmt)
    tally = robustness.Tally()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        tally.add(robustness.storm_once(fmt, signum, rng.uniform(0.1, 1.5), tmp_path))
    assert tally.ok(), tally.tracebacks + tally.failures
    assert tally.clean == tally.runs == 3
