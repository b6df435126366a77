"""``damo record --ops page_idle`` on a real kernel with idle page tracking (the shared test kernel).

Runs inside the VM that tests/test_oldkern_vm.py boots with ../shared/kernels' kernel.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from damo.formats import read_record
from tests.kernel.test_record_kernel import (HOT_BOUNDS, HOT_SIZE, accessed_bytes, cli_wss_p50, coverage,
                                             hot_phase, mapping_of)

pytestmark = pytest.mark.oldkern


def check_hot_record(hot_record) -> float:
    """The kernel tests' checks: the hot region found where masim mapped it, the cold ones idle,
    and the p50 WSS inside masim's mappings within damon-tests' 0.9-1.1x. Returns that p50."""
    out, regions, maps, stderr = hot_record
    assert "workload exited with status 0" in stderr
    hot = regions["hot"]
    lo, hi = hot["address"], hot["address"] + hot["size"]
    assert mapping_of(maps, lo)[1] >= hi
    record = read_record(out)
    first, last = hot_phase(record, regions)
    assert last - first >= 8, (first, last)
    index = np.arange(record.nr_snapshots)
    phase = record.select((index >= first) & (index < last))
    assert np.median(coverage(phase, lo, hi)) >= 0.9, coverage(phase, lo, hi)
    for name in ("cold_a", "cold_b"):
        cold = regions[name]
        cold_cov = coverage(phase, cold["address"], cold["address"] + cold["size"])
        assert np.median(cold_cov) <= 0.1, (name, cold_cov)
    span_lo = min(r["address"] for r in regions.values())
    span_hi = max(r["address"] + r["size"] for r in regions.values())
    p50 = cli_wss_p50(out, "--exclude_samples", str(first), "--address_range", str(span_lo), str(span_hi))
    assert HOT_BOUNDS[0] <= p50 <= HOT_BOUNDS[1], (p50, accessed_bytes(phase, span_lo, span_hi))
    return p50


def test_page_idle_record_finds_the_hot_region(page_idle_record):
    record = read_record(page_idle_record[0])
    assert record.meta.target_kind == "page_idle" and record.meta.extra["ops"] == "page_idle"
    p50 = check_hot_record(page_idle_record)
    print(f"page_idle: wss p50 within masim's mappings {p50} B ({p50 / HOT_SIZE:.3f}x the hot region)")


def test_the_kernel_has_page_idle_and_thp():
    assert os.path.exists("/sys/kernel/mm/page_idle/bitmap")
    assert "[always]" in open("/sys/kernel/mm/transparent_hugepage/enabled").read()
