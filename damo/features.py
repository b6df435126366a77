"""Say what this machine can record with, and how to fix what is missing.

Checks DAMON and its sysfs interface, the operations sets, tracefs and its damon events, root
privileges, kdamonds owned by someone else, and the ``--vm`` prerequisites. Only reads.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from damo import vm, vm_accel
from damo.errors import DamoError
from damo.kernel.backend import KernelInterfaces, choose_backend
from damo.kernel.emulation import cpu_is_emulated
from damo.kernel.sysfs import DamonSysfs, foreign_kdamond_message
from damo.kernel.status import MODULES_DIR, damon_stat_status
from damo.kernel.tracefs import EVENT, find_tracefs, has_damon_event, tracefs_supported

OPS_CONFIGS = {"vaddr": "CONFIG_DAMON_VADDR", "fvaddr": "CONFIG_DAMON_VADDR", "paddr": "CONFIG_DAMON_PADDR"}


@dataclass
class Feature:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def kernel_config(release: str | None = None) -> dict[str, str]:
    """The running kernel's build config from /boot, if it is there."""
    path = Path(f"/boot/config-{release or os.uname().release}")
    config = {}
    try:
        for line in path.read_text().splitlines():
            if line.startswith("CONFIG_") and "=" in line:
                key, value = line.split("=", 1)
                config[key] = value
    except OSError:
        pass
    return config


def operations_sets(sysfs: DamonSysfs) -> tuple[list[str] | None, str]:
    """The available operations sets, and where that was read from."""
    avail = sysfs.avail_operations()
    if avail is not None:
        return avail, "avail_operations"
    config = kernel_config()
    if config:
        return [ops for ops, key in OPS_CONFIGS.items() if config.get(key) == "y"], f"/boot/config-{os.uname().release}"
    return None, ""


def backend_features(kernel: KernelInterfaces) -> list[Feature]:
    """The old-kernel interfaces, and the backend that `damo record` of a workload would use."""
    features = []
    if kernel.debugfs():
        features.append(Feature("DAMON debugfs", True, str(kernel.debugfs_damon)))
    elif kernel.debugfs_mountable():
        features.append(Feature("DAMON debugfs", False, "debugfs is not mounted: unknown",
                                "mount -t debugfs none /sys/kernel/debug to see whether the kernel has it"))
    else:
        features.append(Feature("DAMON debugfs", False, f"no {kernel.debugfs_damon}"))
    idle = kernel.page_idle()
    features.append(Feature("page_idle", idle, str(kernel.page_idle_bitmap) if idle
                            else f"no {kernel.page_idle_bitmap} (CONFIG_IDLE_PAGE_TRACKING)"))
    try:
        backend = choose_backend(kernel=kernel)
        features.append(Feature("record backend", True, f"{backend.name}: {backend.reason}"))
    except DamoError as err:
        features.append(Feature("record backend", False, "none", str(err)))
    return features


# Any of these in /proc/kallsyms means the kernel has the damon_aggregated tracepoint.
TRACEPOINT_SYMBOLS = (b"__traceiter_damon_aggregated", b"__tracepoint_damon_aggregated",
                      b"trace_event_raw_event_damon_aggregated")


def kernel_has_tracepoint(kallsyms: str = "/proc/kallsyms") -> bool | None:
    """Does the kernel have damon_aggregated (without mounting tracefs)? None if unknown."""
    try:
        with open(kallsyms, "rb") as f:
            return any(line.split()[2:3] and line.split()[2] in TRACEPOINT_SYMBOLS for line in f
                       if b"damon_aggregated" in line)
    except OSError:
        return None


def ongoing_feature(running: list[str], tracefs_root: Path | None, is_root: bool, filesystems: str,
                    kallsyms: str, modules_dir: Path) -> Feature:
    """Can ``damo record ongoing`` follow a kdamond here, and if not, what is missing."""
    stat = damon_stat_status(modules_dir)
    followable = running + (["DAMON_STAT"] if stat is not None and stat["enabled"] else [])
    if tracefs_root is not None:
        tracepoint = has_damon_event(tracefs_root)
    else:
        tracepoint = kernel_has_tracepoint(kallsyms)
    missing = []
    if not followable:
        missing.append(("no kdamond is running", "start one (damo record TARGET), or enable DAMON_STAT"))
    if not tracefs_supported(filesystems):
        missing.append(("no tracefs in this kernel", "damo report damon still shows the kdamonds' setup"))
    elif tracepoint is False:
        missing.append(("no damon_aggregated tracepoint", "damo report damon still shows the kdamonds' setup"))
    if not is_root:
        missing.append(("not root", "run damo as root"))
    if missing:
        return Feature("record ongoing", False, "; ".join(m[0] for m in missing), "; ".join(m[1] for m in missing))
    how = f"tracefs at {tracefs_root}" if tracefs_root else "tracefs to be mounted privately (not for the machine)"
    return Feature("record ongoing", True, f"can follow {', '.join(followable)} read-only, {how}: "
                                           f"damo record ongoing")


def check_features(sysfs: DamonSysfs | None = None, tracefs_root: Path | None = None,
                   is_root: bool | None = None, cpuinfo: str = "/proc/cpuinfo",
                   filesystems: str = "/proc/filesystems", kallsyms: str = "/proc/kallsyms",
                   modules_dir: Path = MODULES_DIR, kernel: KernelInterfaces | None = None) -> list[Feature]:
    """Every check, in the order shown to the user."""
    sysfs = sysfs or DamonSysfs()
    kernel = kernel or KernelInterfaces(sysfs_root=sysfs.root)
    tracefs_root = tracefs_root if tracefs_root is not None else find_tracefs()
    is_root = os.geteuid() == 0 if is_root is None else is_root
    use_vm = "use `damo record --vm ...` (see `damo vm setup`) or the simulator"
    features = []
    running_names: list[str] = []
    present = sysfs.present()
    features.append(Feature("DAMON sysfs", present, str(sysfs.root) if present else f"no {sysfs.kdamonds_dir}",
                            "" if present else f"this kernel lacks CONFIG_DAMON_SYSFS; {use_vm}"))
    if present:
        avail, source = operations_sets(sysfs)
        if avail is None:
            features.append(Feature("operations sets", True, "unknown (no kdamond exists to read "
                                    "avail_operations from; damo record checks when it starts)"))
        else:
            for ops in ("vaddr", "fvaddr", "paddr"):
                ok = ops in avail
                features.append(Feature(f"ops {ops}", ok, f"{'listed' if ok else 'not listed'} in {source}",
                                        "" if ok else f"this kernel lacks {OPS_CONFIGS[ops]}; {use_vm}"))
        infos = sysfs.kdamonds()
        running_names = [f"kdamond {k.index}" for k in infos if k.running]
        if infos:
            running = [k for k in infos if k.running] or infos
            message = foreign_kdamond_message(running[0]).split(";")[0]
            features.append(Feature("free DAMON", False, f"{len(infos)} kdamond(s) exist: {message}",
                                    f"damo will not touch them; {use_vm}"))
        else:
            features.append(Feature("free DAMON", True, "no kdamond exists; damo can add its own"))
    features += backend_features(kernel)
    tracefs_ok = tracefs_root is not None
    features.append(Feature("tracefs", tracefs_ok, str(tracefs_root) if tracefs_ok else "not mounted",
                            "" if tracefs_ok else "mount -t tracefs nodev /sys/kernel/tracing"))
    if tracefs_ok:
        event_ok = has_damon_event(tracefs_root)
        features.append(Feature(f"tracepoint {EVENT}", event_ok, "present" if event_ok else "absent",
                                "" if event_ok else "none needed: damo falls back to tried_regions snapshots"))
    features.append(ongoing_feature(running_names, tracefs_root, is_root, filesystems, kallsyms, modules_dir))
    features.append(Feature("root", is_root, "yes" if is_root else f"running as uid {os.geteuid()}",
                             "" if is_root else "run damo as root (sudo) to use the kernel's DAMON"))
    emulated = cpu_is_emulated(cpuinfo)
    features.append(Feature("CPU", not emulated,
                            "QEMU software emulation (TCG)" if emulated else "not emulated",
                            "DAMON misses the accesses of a process that keeps its CPU unless it flushes its "
                            "TLB (masim does: --flush_tlb auto); see damo.kernel.emulation" if emulated else ""))
    for p in vm.prerequisites():
        features.append(Feature(f"vm: {p.name}", p.found is not None, p.found or "missing", p.fix if not p.found else ""))
    accel = vm_accel.would_use(vm.cached_kernel_path())
    emulated_vm = accel.startswith("software emulation")
    features.append(Feature("vm: acceleration", not emulated_vm, accel,
                            "a --vm record runs many times slower than under KVM; its TLB-flush ticker "
                            "(--vm-tlb-flush auto: on under emulation) keeps the counts right"
                            if emulated_vm else ""))
    return features


def render(features: list[Feature]) -> str:
    width = max(len(f.name) for f in features)
    lines = []
    for f in features:
        mark = "ok" if f.ok else "--"
        line = f"[{mark}] {f.name:<{width}}  {f.detail}"
        if f.fix:
            line += f"\n     {'':<{width}}  fix: {f.fix}"
        lines.append(line)
    return "\n".join(lines)


DESCRIPTION = """\
Say what this machine can record with, and how to fix what is missing: DAMON and its sysfs
interface, the operations sets, tracefs and its damon events, root privileges, kdamonds owned
by someone else, and what `damo record --vm` needs. It only reads; it changes nothing."""

EXAMPLES = """\
examples:
  damo features
  sudo damo features        # as root, as a kernel record runs"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print(render(check_features()))
    return 0
