"""Records shared by the old-kernel tests: each backend records the same workload once per VM boot.

tests/oldkern is a package (its __init__.py), so pytest imports this file as oldkern.conftest: a
second top-level module named conftest would shadow tests/conftest.py for `from conftest import`.
"""
from __future__ import annotations

from pathlib import Path

import os

import pytest

from tests.kernel.test_record_kernel import record_hot

HOT_LONG = Path(__file__).parent / "hot_long.cfg"
# The page_idle engine is a Python loop that costs tens of ms per sample under software
# emulation: a longer sampling interval keeps that a small part of each sample (10 samples per
# aggregation), and regions updates every 0.5 s cover masim's new mappings soon.
PAGE_IDLE_INTERVALS = ("-s", "50000", "-a", "500000", "-u", "500000")


@pytest.fixture(scope="session", autouse=True)
def in_the_vm():
    """Session-scoped, so it runs before the session's records: nothing here runs on the host."""
    if os.environ.get("DAMO_TEST_IN_VM") != "1":
        pytest.skip("these tests run inside the VM with the shared kernel (tests/test_oldkern_vm.py boots it)")


@pytest.fixture(scope="session")
def page_idle_record(tmp_path_factory):
    return record_hot(tmp_path_factory.mktemp("page_idle"), "--ops", "page_idle", *PAGE_IDLE_INTERVALS,
                      config=HOT_LONG)


@pytest.fixture(scope="session")
def debugfs_record(tmp_path_factory):
    return record_hot(tmp_path_factory.mktemp("debugfs"), "--damon_interface", "debugfs", config=HOT_LONG)


@pytest.fixture(scope="session")
def sysfs_record(tmp_path_factory):
    return record_hot(tmp_path_factory.mktemp("sysfs"), "--damon_interface", "sysfs", config=HOT_LONG)
