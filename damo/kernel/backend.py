"""Which backend ``damo record`` uses on this machine for a real workload, and why.

Backends: ``sysfs`` (the kernel's DAMON through /sys/kernel/mm/damon), ``debugfs`` (the kernel's
DAMON through its deprecated debugfs files, the only interface of Linux 5.15 and older), and
``page_idle`` (our user-space engine checking accesses through idle page tracking, for kernels
without DAMON). ``--damon_interface`` forces one of the first two, ``--ops page_idle`` the third.
Only reads: used by ``damo record`` and ``damo features``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from damo.errors import DamoError

INTERFACES = ("auto", "sysfs", "debugfs")
SYSFS_ROOT = Path("/sys/kernel/mm/damon/admin")
DEBUGFS_DAMON = Path("/sys/kernel/debug/damon")
PAGE_IDLE_BITMAP = Path("/sys/kernel/mm/page_idle/bitmap")
ALTERNATIVES = "Use --vm (a VM with a DAMON kernel) or the simulator (damo record zigzag, a bundled masim config)."


@dataclass(frozen=True)
class Backend:
    name: str            # "sysfs", "debugfs" or "page_idle"
    reason: str          # why it was chosen, for `damo features` and errors


@dataclass(frozen=True)
class KernelInterfaces:
    """What this kernel offers, from paths that tests can point at fake trees."""

    sysfs_root: Path = SYSFS_ROOT
    debugfs_damon: Path = DEBUGFS_DAMON
    page_idle_bitmap: Path = PAGE_IDLE_BITMAP
    filesystems: Path = Path("/proc/filesystems")

    def sysfs(self) -> bool:
        return (self.sysfs_root / "kdamonds" / "nr_kdamonds").is_file()

    def debugfs(self) -> bool:
        """DAMON's debugfs files are there (debugfs is mounted and the kernel has them)."""
        return (self.debugfs_damon / "attrs").is_file()

    def debugfs_mountable(self) -> bool:
        """debugfs is not mounted but the kernel supports it: its DAMON files may be inside."""
        try:
            supported = "\tdebugfs\n" in self.filesystems.read_text()
        except OSError:
            return False
        mountpoint = self.debugfs_damon.parent
        return supported and not (mountpoint.is_dir() and any(mountpoint.iterdir()))

    def page_idle(self) -> bool:
        return self.page_idle_bitmap.exists()


def choose_backend(interface: str = "auto", ops: str | None = None,
                   kernel: KernelInterfaces | None = None) -> Backend:
    """The backend for a record of a real workload; DamoError if none can work."""
    kernel = kernel or KernelInterfaces()
    if interface not in INTERFACES:
        raise DamoError(f"--damon_interface: '{interface}' is not one of {', '.join(INTERFACES)}")
    if ops == "page_idle":
        if interface != "auto":
            raise DamoError("--ops page_idle does not use the kernel's DAMON: drop --damon_interface")
        if not kernel.page_idle():
            raise DamoError(f"--ops page_idle: this kernel has no idle page tracking ({kernel.page_idle_bitmap} "
                            f"is missing). {ALTERNATIVES}")
        return Backend("page_idle", "--ops page_idle")
    if interface == "sysfs":
        if not kernel.sysfs():
            raise DamoError(f"--damon_interface sysfs: this kernel has no DAMON sysfs interface "
                            f"({kernel.sysfs_root} is missing). {ALTERNATIVES}")
        return Backend("sysfs", "--damon_interface sysfs")
    if interface == "debugfs":
        if not (kernel.debugfs() or kernel.debugfs_mountable()):
            raise DamoError(f"--damon_interface debugfs: this kernel has no DAMON debugfs interface "
                            f"({kernel.debugfs_damon} is missing). {ALTERNATIVES}")
        return Backend("debugfs", "--damon_interface debugfs")
    if kernel.sysfs():
        return Backend("sysfs", f"the kernel has DAMON's sysfs interface ({kernel.sysfs_root})")
    if kernel.debugfs():
        return Backend("debugfs", f"the kernel has DAMON's debugfs interface only ({kernel.debugfs_damon})")
    if kernel.page_idle() and ops in (None, "vaddr"):
        return Backend("page_idle", f"the kernel has no DAMON interface, but idle page tracking "
                                    f"({kernel.page_idle_bitmap}): damo's own engine monitors")
    if kernel.debugfs_mountable():
        return Backend("debugfs", "no DAMON sysfs interface and debugfs is not mounted: damo mounts it in a "
                                  "private mount namespace to use DAMON's debugfs files")
    missing = f"no DAMON sysfs ({kernel.sysfs_root}), no DAMON debugfs ({kernel.debugfs_damon})"
    if ops in (None, "vaddr"):
        missing += f", no idle page tracking ({kernel.page_idle_bitmap})"
    raise DamoError(f"this kernel cannot monitor accesses: {missing}. {ALTERNATIVES}")
