"""The 6.17 VM's tests run inside that VM only (tests/test_newkern_vm.py boots it).

tests/newkern is a package (its __init__.py), so pytest imports this file as newkern.conftest: a
second top-level module named conftest would shadow tests/conftest.py for `from conftest import`.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from damo.kernel.sysfs import DamonSysfs


@pytest.fixture(scope="session", autouse=True)
def in_the_vm():
    """Session-scoped, so it runs before the session's records: nothing here runs on the host."""
    if os.environ.get("DAMO_TEST_IN_VM") != "1":
        pytest.skip("these tests run inside the 6.17 VM (tests/test_newkern_vm.py boots it)")


@pytest.fixture(autouse=True)
def damon_left_as_found(in_the_vm):
    """Every test starts and ends with no kdamond of sysfs and no trace instance of ours."""
    sysfs = DamonSysfs()
    assert sysfs.nr_kdamonds() == 0
    yield sysfs
    assert sysfs.nr_kdamonds() == 0
    assert not [p.name for p in Path("/sys/kernel/tracing/instances").glob("damo-*")]
