"""The ``debugfs`` record source: the kernel's DAMON through its deprecated debugfs interface
(Linux 5.15 and older have nothing else). The record flow is the kernel source's (held workload,
private trace instance, ``damon_aggregated`` events, clean stop); only the driver differs
(damo.kernel.debugfs). Where debugfs is not mounted, damo mounts it in a private mount
namespace of its own, so the machine's mounts never change.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

from damo.errors import DamoError
from damo.kernel.debugfs import DEFAULT_DEBUGFS, DamonDebugfs
from damo.kernel.sysfs import ALTERNATIVES
from damo.recording import RecordRequest
from damo.sources.kernel import KernelRecorder

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def _libc_call(name: str, *args) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def mount_debugfs_privately(mountpoint: Path = DEFAULT_DEBUGFS) -> None:
    """Move this process into its own mount namespace, with every mount private (so nothing
    propagates back to the machine), and mount debugfs there."""
    try:
        _libc_call("unshare", CLONE_NEWNS)
        _libc_call("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
        _libc_call("mount", b"debugfs", str(mountpoint).encode(), b"debugfs", 0, None)
    except OSError as err:
        raise DamoError(f"debugfs is not mounted at {mountpoint} and cannot be mounted in a private mount "
                        f"namespace ({err.strerror}); mount it (mount -t debugfs none {mountpoint}) or "
                        f"use --damon_interface sysfs. {ALTERNATIVES}") from None


def debugfs_damon(mountpoint: Path = DEFAULT_DEBUGFS) -> DamonDebugfs:
    """DAMON's debugfs directory, mounting debugfs privately if it is not mounted."""
    debugfs = DamonDebugfs(mountpoint / "damon")
    if debugfs.present():
        return debugfs
    if os.geteuid() != 0:
        raise DamoError(f"recording with the kernel's DAMON needs root privileges (run damo as root). "
                        f"{ALTERNATIVES}")
    if not (mountpoint.is_dir() and any(mountpoint.iterdir())):
        mount_debugfs_privately(mountpoint)
    if not debugfs.present():
        raise DamoError(f"this kernel has no DAMON debugfs interface ({debugfs.root} is missing: "
                        f"CONFIG_DAMON_DBGFS). {ALTERNATIVES}")
    return debugfs


def record(request: RecordRequest) -> int:
    """``damo record`` through DAMON's debugfs interface."""
    return KernelRecorder(request, debugfs=debugfs_damon()).run()
