"""Shared fixtures: small deterministic records and a CLI runner."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from damo.model import Record, RecordBuilder, RecordMeta

REPO = Path(__file__).resolve().parent.parent


def make_record(nr_snapshots: int = 30, nr_regions: int = 20, seed: int = 0, nr_targets: int = 1,
                with_age: bool = True) -> Record:
    """A DAMON-like record: boundaries mostly persist, a hot area moves over time."""
    rng = np.random.default_rng(seed)
    meta = RecordMeta(target_kind="sim", target="test", sample_us=5000, aggr_us=100000, update_us=1000000,
                      min_nr_regions=10, max_nr_regions=1000, start_time=1.7e9, tool_version="test")
    builder = RecordBuilder(meta)
    base = 0x7F0000000000
    span_pages = 1 << 16
    for t in range(nr_snapshots):
        for target in range(nr_targets):
            pages = np.sort(rng.choice(np.arange(1, span_pages), nr_regions - 1, replace=False))
            bounds = (np.concatenate([[0], pages, [span_pages]]) * 4096 + base).astype(np.uint64)
            start, end = bounds[:-1], bounds[1:]
            hot = (np.arange(nr_regions) - t % nr_regions) % nr_regions < 3
            nr = np.where(hot, 20, rng.integers(0, 3, nr_regions))
            age = rng.integers(0, 100, nr_regions) if with_age else None
            builder.add(target, t * 100_000_000, (t + 1) * 100_000_000, start, end, nr, age)
    return builder.build()


@pytest.fixture
def small_record() -> Record:
    return make_record()


@pytest.fixture
def recorded_forks(monkeypatch) -> list[int]:
    """The pids of every child that os.fork makes during the test (the fork still happens)."""
    pids: list[int] = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: pids.append(real_fork()) or pids[-1])
    return pids


def assert_reaped(pids: list[int]) -> None:
    """Every one of these children was waited for: none is left running or as a zombie."""
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def run_cli(*args: str, cwd=None, env=None, input=None) -> subprocess.CompletedProcess:
    """Run ``python -m damo ARGS`` from this checkout as a subprocess."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", "damo", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, input=input)


@pytest.fixture(autouse=True)
def _never_write_this_hosts_damon(monkeypatch):
    """Outside the test VM, any write under the real /sys/kernel/mm/damon fails the test."""
    if os.environ.get("DAMO_TEST_IN_VM") == "1":
        return
    import damo.kernel.sysfs as sysfs

    real_write = sysfs.write_file

    def guarded(path, value):
        if str(Path(path).resolve()).startswith("/sys/kernel/mm/damon"):
            raise AssertionError(f"a test tried to write {value!r} to {path} on the host")
        real_write(path, value)

    monkeypatch.setattr(sysfs, "write_file", guarded)
