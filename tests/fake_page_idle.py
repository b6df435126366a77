"""A fake idle-page-tracking tree of plain files: /proc/PID/{maps,pagemap}, /proc/kpageflags and
/sys/kernel/mm/page_idle/bitmap, laid out as the kernel's (64-bit little-endian words).

``access(pfns)`` plays the workload touching pages after they were marked: it clears their
folio's idle bits, as the kernel's rmap walk would on the next bitmap read.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from damo.kernel.page_idle import KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_HUGE, KPF_LRU, PAGE_SHIFT

PRESENT = np.uint64(1 << 63)
SWAPPED = 1 << 62


class FakePageIdle:
    def __init__(self, tmp: Path):
        self.proc = tmp / "proc"
        self.bitmap = tmp / "sys" / "page_idle" / "bitmap"
        self.proc.mkdir(parents=True)
        self.bitmap.parent.mkdir(parents=True)
        self.bitmap.write_bytes(b"")
        (self.proc / "kpageflags").write_bytes(b"")

    @staticmethod
    def _put(path: Path, index: int, value: int) -> None:
        with open(path, "r+b") as f:
            f.seek(index * 8)
            f.write(struct.pack("<Q", value))

    @staticmethod
    def _get(path: Path, index: int) -> int:
        with open(path, "rb") as f:
            f.seek(index * 8)
            data = f.read(8)
        return struct.unpack("<Q", data)[0] if len(data) == 8 else 0

    def add_process(self, pid: int, mappings: list[tuple[int, int]]) -> None:
        d = self.proc / str(pid)
        d.mkdir()
        (d / "maps").write_text("".join(f"{s:x}-{e:x} rw-p 00000000 00:00 0 \n" for s, e in mappings) +
                                "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n")
        (d / "pagemap").write_bytes(b"")

    def map_page(self, pid: int, vaddr: int, pfn: int, flags: int = 1 << KPF_LRU, swapped: bool = False) -> None:
        """Map the page at ``vaddr`` to ``pfn`` (present unless ``swapped``) with kpageflags ``flags``."""
        entry = SWAPPED if swapped else (1 << 63) | pfn
        self._put(self.proc / str(pid) / "pagemap", vaddr >> PAGE_SHIFT, entry)
        if not swapped:
            self._put(self.proc / "kpageflags", pfn, flags)

    def map_range(self, pid: int, start: int, end: int, first_pfn: int, flags: int = 1 << KPF_LRU) -> None:
        """Map [start, end) to consecutive PFNs from ``first_pfn``, in two writes."""
        count = (end - start) >> PAGE_SHIFT
        entries = PRESENT | (first_pfn + np.arange(count, dtype=np.uint64))
        self._put_many(self.proc / str(pid) / "pagemap", start >> PAGE_SHIFT, entries)
        self._put_many(self.proc / "kpageflags", first_pfn, np.full(count, flags, dtype=np.uint64))

    @staticmethod
    def _put_many(path: Path, index: int, values) -> None:
        with open(path, "r+b") as f:
            f.seek(index * 8)
            f.write(np.asarray(values, dtype="<u8").tobytes())

    def map_thp(self, pid: int, start: int, head_pfn: int, pages: int = 512) -> None:
        """A PMD-mapped transparent huge page: one head and ``pages - 1`` tails."""
        self.map_page(pid, start, head_pfn, (1 << KPF_LRU) | (1 << KPF_COMPOUND_HEAD))
        for i in range(1, pages):
            self.map_page(pid, start + (i << PAGE_SHIFT), head_pfn + i, 1 << KPF_COMPOUND_TAIL)

    def idle_bit(self, pfn: int) -> bool:
        return bool(self._get(self.bitmap, pfn // 64) >> (pfn % 64) & 1)

    def access(self, pfns) -> None:
        for pfn in pfns:
            word = self._get(self.bitmap, pfn // 64)
            self._put(self.bitmap, pfn // 64, word & ~(1 << (pfn % 64)))


HUGETLB = (1 << KPF_HUGE) | (1 << KPF_COMPOUND_HEAD)
NOT_LRU = 0
