"""The physical address ranges of NUMA nodes, for ``damo record paddr --numa_node N`` (read-only).

A node's memory blocks are listed in ``/sys/devices/system/node/nodeN/memoryM`` (block M covers
``[M * block_size, (M + 1) * block_size)``, ``block_size_bytes`` in hex); the 'System RAM'
lines of ``/proc/iomem`` say which parts of them are RAM. A node's ranges are the System RAM
parts that lie inside its blocks, adjacent ones merged, as damo 3.4.3 computes them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from damo.errors import DamoError

NODE_SYSFS = Path("/sys/devices/system/node")
MEMORY_SYSFS = Path("/sys/devices/system/memory")
IOMEM = Path("/proc/iomem")


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def node_blocks(node: int, node_sysfs: Path = NODE_SYSFS, memory_sysfs: Path = MEMORY_SYSFS) -> list[tuple[int, int]]:
    """The memory blocks of ``node`` as merged address ranges; DamoError if there is no such node."""
    node_dir = node_sysfs / f"node{node}"
    if not node_dir.is_dir():
        present = sorted(int(p.name[4:]) for p in node_sysfs.glob("node[0-9]*")) if node_sysfs.is_dir() else []
        have = ", ".join(str(n) for n in present) or "none"
        raise DamoError(f"--numa_node: no NUMA node {node} on this machine (nodes: {have})")
    try:
        block_size = int((memory_sysfs / "block_size_bytes").read_text().strip(), 16)
    except (OSError, ValueError):
        raise DamoError(f"--numa_node: cannot read {memory_sysfs}/block_size_bytes (a kernel without "
                        f"CONFIG_MEMORY_HOTPLUG); give the range with -r START-END") from None
    indexes = [int(p.name[6:]) for p in node_dir.glob("memory[0-9]*")]
    return _merge((i * block_size, (i + 1) * block_size) for i in indexes)


def system_ram(iomem: Path = IOMEM) -> list[tuple[int, int]]:
    """The 'System RAM' ranges of ``/proc/iomem`` (top level), as [start, end)."""
    out = []
    try:
        lines = iomem.read_text().splitlines()
    except OSError as err:
        raise DamoError(f"--numa_node: cannot read {iomem} ({err.strerror})") from None
    for line in lines:
        span, _, name = line.partition(":")
        if not name.strip().startswith("System RAM") or "-" not in span:
            continue
        start, end = (int(x, 16) for x in span.strip().split("-"))
        if end > start:
            out.append((start, end + 1))
    return out


def node_ranges(nodes: Iterable[int], node_sysfs: Path = NODE_SYSFS, memory_sysfs: Path = MEMORY_SYSFS,
                iomem: Path = IOMEM) -> list[tuple[int, int]]:
    """The System RAM of ``nodes``, merged; DamoError naming a missing node or an empty result."""
    nodes = list(nodes)
    blocks = [b for node in nodes for b in node_blocks(node, node_sysfs, memory_sysfs)]
    ram = system_ram(iomem)
    cut = [(max(s, bs), min(e, be)) for s, e in ram for bs, be in blocks if max(s, bs) < min(e, be)]
    ranges = _merge(cut)
    if not ram:
        raise DamoError(f"--numa_node: {iomem} shows no System RAM addresses (reading them needs root)")
    if not ranges:
        raise DamoError(f"--numa_node: node {', '.join(map(str, nodes))} has no System RAM in {iomem}")
    return ranges
