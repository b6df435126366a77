"""Boot the test VM once and run the real-kernel tests (``pytest -m kernel``) inside it.

In CI (CI=true) a missing VM prerequisite fails this test; elsewhere it skips with the reason.
"""
from __future__ import annotations

from damo import vm
from tests.vm_runner import check_prerequisites, run_marker_in_vm

VM_LIMIT_SECONDS = 600


def test_kernel_tests_pass_inside_the_vm():
    check_prerequisites()
    run_marker_in_vm(vm.cached_kernel(), "kernel", "tests/kernel", VM_LIMIT_SECONDS)
