"""Boot the shared old-interfaces kernel (DAMON debugfs + idle page tracking) once and run
``pytest -m oldkern tests/oldkern`` inside it.

The kernel is ``../shared/kernels/vmlinuz-6.12.117-damon-dbgfs-idle`` (beside the checkout, or
two levels up for a worktree), or the file named by DAMO_OLDKERN_KERNEL. Without it the test
skips with the reason; with CI=true it fails.
"""
from __future__ import annotations

import os
from pathlib import Path

from tests.vm_runner import REPO, check_prerequisites, run_marker_in_vm, skip_or_fail

KERNEL_NAME = "vmlinuz-6.12.117-damon-dbgfs-idle"
# Three masim records and two short damo runs under emulation: about 10 minutes on a quiet
# machine, 2-3x that at load 10. Stopped after QUIET_SECONDS without progress, or VM_LIMIT_SECONDS.
QUIET_SECONDS = 900
VM_LIMIT_SECONDS = 3000


def shared_kernel() -> Path | None:
    named = os.environ.get("DAMO_OLDKERN_KERNEL")
    candidates = [Path(named)] if named else [base / "shared" / "kernels" / KERNEL_NAME
                                              for base in (REPO.parent, REPO.parent.parent)]
    return next((p for p in candidates if p.is_file()), None)


def test_old_kernel_interfaces_inside_the_vm():
    check_prerequisites()
    kernel = shared_kernel()
    if kernel is None:
        skip_or_fail(f"the shared test kernel is absent (../shared/kernels/{KERNEL_NAME}; "
                     f"or set DAMO_OLDKERN_KERNEL)")
    run_marker_in_vm(kernel, "oldkern", "tests/oldkern", VM_LIMIT_SECONDS, QUIET_SECONDS)
