"""Boot Debian's 6.17 kernel (``damo vm setup --kernel 6.17``) once and run ``pytest -m newkern
tests/newkern`` inside it: kernel features the 6.12 test VM lacks (sysfs intervals_goal).

In CI (CI=true) a missing kernel fails this test; elsewhere it skips with the reason.
"""
from __future__ import annotations

from damo import vm
from tests.vm_runner import check_prerequisites, run_marker_in_vm, skip_or_fail

# Three masim records of 12 s each under emulation (boot included): about 4 minutes on a quiet
# machine, 2-3x that at load 10. Stopped after QUIET_SECONDS without progress, or VM_LIMIT_SECONDS.
QUIET_SECONDS = 900
VM_LIMIT_SECONDS = 2400


def test_newer_kernel_features_inside_the_vm():
    check_prerequisites()
    kernel = vm.cached_kernel(series="6.17")
    if kernel is None:
        skip_or_fail("the 6.17 VM kernel is absent: run `damo vm setup --kernel 6.17`")
    run_marker_in_vm(kernel, "newkern", "tests/newkern", VM_LIMIT_SECONDS, QUIET_SECONDS)
