"""Tests that need a real DAMON kernel: they run inside the VM (see tests/test_kernel_vm.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from damo.kernel.sysfs import DamonSysfs


@pytest.fixture(autouse=True)
def damon_left_as_found():
    """Every test starts and ends with no kdamond: nr_kdamonds and state as they were."""
    if os.environ.get("DAMO_TEST_IN_VM") != "1":
        pytest.skip("kernel tests run inside the test VM only (tests/test_kernel_vm.py boots it)")
    sysfs = DamonSysfs()
    assert sysfs.nr_kdamonds() == 0
    yield sysfs
    assert sysfs.nr_kdamonds() == 0
    tracing = Path("/sys/kernel/tracing/instances")
    assert not [p.name for p in tracing.glob("damo-*")]
