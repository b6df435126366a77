"""The machine-wide VM lock: one VM at a time on a shared machine (``flock`` on the same file)."""
from __future__ import annotations

import contextlib
import fcntl

DEFAULT_VM_LOCK = "/work/helpers/vm.lock"


@contextlib.contextmanager
def vm_lock(path: str | None):
    """Hold the lock file ``path`` (exclusive flock, like flock(1)); no-op when ``path`` is empty."""
    if not path:
        yield
        return
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
