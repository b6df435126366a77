"""Seeded fuzzing of every reader and decompression bombs (issue 14, item 9); the long run is
``python -m bench.robustness`` (docs/reliability.md)."""
from __future__ import annotations

import pytest

from bench import robustness


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzzed_files_read_or_fail_in_one_line(tmp_path, seed):
    tally = robustness.fuzz_readers(160, seed, tmp_path)
    assert tally.runs == 160
    assert not tally.tracebacks and not tally.failures, tally.tracebacks + tally.failures
    assert tally.clean == tally.runs


def test_bombs_exit_2_within_the_memory_limit(tmp_path):
    tally = robustness.run_bombs(tmp_path)
    assert tally.runs == len(robustness.bombs(tmp_path))
    assert tally.ok(), tally.tracebacks + tally.failures
    assert tally.clean == tally.runs
    assert 0 < tally.peak_mib <= robustness.MEMORY_LIMIT_MIB
