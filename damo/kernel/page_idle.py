"""Idle page tracking: PFNs from ``/proc/PID/pagemap``, page flags from ``/proc/kpageflags``,
and the idle bits of ``/sys/kernel/mm/page_idle/bitmap``, all read and written in bulk.

Every file here is an array of little-endian 64-bit words indexed by page (pagemap: by virtual
page number; kpageflags: by PFN; the bitmap: one bit per PFN, 64 PFNs a word). A batch of
lookups is sorted, de-duplicated and cut into runs of nearby words, one ``pread``/``pwrite``
per run, never one per lookup.

The bitmap only knows the *head* page of a large folio: the kernel ignores tail PFNs when
marking and reads them as "not idle". So a sampled page inside a transparent huge page (or any
large folio) is tracked through its folio's head PFN, found in kpageflags.

The paths are parameters so that tests run everything on a fake tree of plain files.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from damo.errors import DamoError
from damo.kernel.backend import PAGE_IDLE_BITMAP

PAGE_SHIFT = 12
WORD = 8                                  # bytes per entry or bitmap word
PM_PRESENT = np.uint64(1 << 63)
PM_SWAPPED = np.uint64(1 << 62)
PM_PFN_MASK = np.uint64((1 << 55) - 1)
# /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h)
KPF_LRU = 5
KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
KPF_HUGE = 17                             # hugetlbfs: not on the LRU, idle tracking cannot see it
KPF_NOPAGE = 20
# The largest folio a THP can be on x86-64 (a PMD): a tail's head is at most this far below it.
MAX_FOLIO_PAGES = 512
# How far apart two entries may be and still be read in one call. Reading the gap costs little
# in pagemap and kpageflags; in the bitmap, reading an idle page costs an rmap walk, so the
# bitmap merges only adjacent words (a gap of zero words written marks nothing).
PAGEMAP_MAX_GAP = 64
KPAGEFLAGS_MAX_GAP = 64
BITMAP_MAX_GAP = 0

DEFAULT_BITMAP = PAGE_IDLE_BITMAP
DEFAULT_PROC = Path("/proc")
NO_PAGE_IDLE_ALTERNATIVES = "Use --vm or the simulator (damo record zigzag, a bundled masim config)."


def _bit(n: int) -> np.uint64:
    return np.uint64(1 << n)


def sorted_unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` through a stable sort: numpy's default int64
    sort (its SIMD quicksort) returns unsorted output for large values under QEMU's software
    emulation (seen in the test VM), and a batch must be sorted for its runs to be right."""
    ordered = np.sort(values, kind="stable")
    keep = np.ones(len(ordered), dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    uniq = ordered[keep]
    return uniq, np.searchsorted(uniq, values)


def runs(indices: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ``indices`` cut into runs: ``(first index, word count)`` per run, where
    consecutive members of a run are at most ``max_gap`` words apart."""
    if len(indices) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(indices) > max_gap + 1) + 1
    first = np.concatenate([[0], breaks])
    last = np.concatenate([breaks, [len(indices)]]) - 1
    return indices[first], indices[last] - indices[first] + 1


class WordFile:
    """A file of 64-bit words read and written by index in bulk; counts its system calls."""

    def __init__(self, path: Path, writable: bool = False):
        self.path = path
        self.fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        self.syscalls = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def read(self, indices: np.ndarray, max_gap: int) -> np.ndarray:
        """The words at ``indices`` (any order, repeats allowed); 0 past the end or on error.

        The loop only issues the reads; finding each word in what came back is vectorised."""
        indices = np.asarray(indices, dtype=np.int64)
        uniq, inverse = sorted_unique(indices)
        firsts, counts = runs(uniq, max_gap)
        chunks = []
        got = np.zeros(len(firsts), dtype=np.int64)          # words each read returned
        for i, (first, count) in enumerate(zip(firsts.tolist(), counts.tolist())):
            try:
                data = os.pread(self.fd, count * WORD, first * WORD)
            except OSError as err:
                if err.errno in (errno.EACCES, errno.EPERM):
                    raise DamoError(f"reading {self.path} needs root privileges (run damo as root). "
                                    f"{NO_PAGE_IDLE_ALTERNATIVES}") from None
                data = b""                 # ESRCH (the process exited), EINVAL (past max_pfn)
            got[i] = len(data) // WORD
            chunks.append(data[:got[i] * WORD])
        self.syscalls += len(firsts)
        words = np.frombuffer(b"".join(chunks), dtype="<u8")
        run = np.searchsorted(firsts, uniq, side="right") - 1
        rel = uniq - firsts[run]
        ok = rel < got[run]
        where = np.concatenate([[0], np.cumsum(got)[:-1]])[run] + rel
        values = np.zeros(len(uniq), dtype=np.uint64)
        values[ok] = words[where[ok]]
        return values[inverse]

    def write_bits(self, bit_numbers: np.ndarray, max_gap: int) -> None:
        """Set the bits ``bit_numbers`` (bit n is bit n % 64 of word n // 64) in one write per
        run of words; the words between them are written as zeros."""
        bit_numbers = np.asarray(bit_numbers, dtype=np.int64)
        if len(bit_numbers) == 0:
            return
        uniq, inverse = sorted_unique(bit_numbers >> 6)
        firsts, counts = runs(uniq, max_gap)
        # All runs laid out back to back in one buffer; each write sends its slice.
        run = np.searchsorted(firsts, uniq, side="right") - 1
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        buf = np.zeros(int(counts.sum()), dtype="<u8")
        np.bitwise_or.at(buf, (offsets[run] + uniq - firsts[run])[inverse],
                         np.left_shift(np.uint64(1), (bit_numbers & 63).astype(np.uint64)))
        view = memoryview(buf.view(np.uint8))
        for first, count, offset in zip(firsts.tolist(), counts.tolist(), offsets.tolist()):
            try:
                os.pwrite(self.fd, view[offset * WORD:(offset + count) * WORD], first * WORD)
            except OSError as err:
                if err.errno not in (errno.EINVAL, errno.ENXIO):      # past max_pfn: nothing to mark
                    raise DamoError(f"writing {self.path} failed ({os.strerror(err.errno or 0)})") from None
        self.syscalls += len(firsts)

    def read_bits(self, bit_numbers: np.ndarray, max_gap: int) -> np.ndarray:
        """The bits ``bit_numbers`` as a bool array (same order)."""
        bit_numbers = np.asarray(bit_numbers, dtype=np.int64)
        words = self.read(bit_numbers >> 6, max_gap)
        return ((words >> (bit_numbers & 63).astype(np.uint64)) & np.uint64(1)).astype(bool)


@dataclass
class Resolved:
    """Where each sampled virtual page lives: ``trackable`` pages have a folio head PFN in
    ``head_pfn``; the others (unmapped, swapped, not on the LRU, hugetlbfs) cannot have been
    accessed as far as DAMON is concerned (its vaddr ops skip the same pages)."""

    trackable: np.ndarray
    head_pfn: np.ndarray


class PageIdle:
    """The system-wide files: kpageflags and the idle bitmap (opened once, root only)."""

    def __init__(self, bitmap: Path = DEFAULT_BITMAP, proc: Path = DEFAULT_PROC):
        self.bitmap_path = bitmap
        self.proc = proc
        self.bitmap = _open_checked(bitmap, writable=True, what="idle page tracking")
        try:
            self.kpageflags = _open_checked(proc / "kpageflags", writable=False, what="/proc/kpageflags")
        except DamoError:
            self.bitmap.close()
            raise
        self._heads: dict[int, np.ndarray] = {}     # PMD-sized PFN window -> head PFN of each page

    def close(self) -> None:
        self.bitmap.close()
        self.kpageflags.close()

    def forget_folios(self) -> None:
        """Drop the cached folio heads (they change when THPs are split or collapsed)."""
        self._heads.clear()

    def resolve(self, pagemap: "WordFile", vpn: np.ndarray) -> Resolved:
        """The folio head PFN of each virtual page number ``vpn`` in one process's pagemap."""
        entries = pagemap.read(vpn, PAGEMAP_MAX_GAP)
        present = (entries & PM_PRESENT) != 0
        pfn = (entries & PM_PFN_MASK).astype(np.int64)
        if present.any() and not pfn[present].any():
            raise DamoError(f"{pagemap.path} shows no page frame numbers: that needs root privileges "
                            f"(CAP_SYS_ADMIN). {NO_PAGE_IDLE_ALTERNATIVES}")
        ok = present & (pfn > 0)
        flags = np.zeros(len(vpn), dtype=np.uint64)
        if ok.any():
            flags[ok] = self.kpageflags.read(pfn[ok], KPAGEFLAGS_MAX_GAP)
        tail = ok & ((flags & _bit(KPF_COMPOUND_TAIL)) != 0)
        head_pfn = pfn.copy()
        if tail.any():
            head_pfn[tail] = self._folio_heads(pfn[tail])
            head_flags = np.zeros(int(tail.sum()), dtype=np.uint64)
            found = head_pfn[tail] >= 0
            if found.any():
                head_flags[found] = self.kpageflags.read(head_pfn[tail][found], KPAGEFLAGS_MAX_GAP)
            flags[tail] = head_flags
        trackable = ok & (head_pfn >= 0) & ((flags & _bit(KPF_LRU)) != 0) & \
            ((flags & (_bit(KPF_HUGE) | _bit(KPF_NOPAGE))) == 0)
        return Resolved(trackable, np.where(trackable, head_pfn, 0))

    def _folio_heads(self, tail_pfns: np.ndarray) -> np.ndarray:
        """The head PFN of each tail page's folio (-1 if none is found): the nearest
        compound-head page at or below it within a PMD-sized, PMD-aligned window (folios are
        naturally aligned). Each window's flags are read once and kept until ``forget_folios``."""
        out = np.empty(len(tail_pfns), dtype=np.int64)
        window = tail_pfns // MAX_FOLIO_PAGES
        for w in sorted_unique(window)[0].tolist():
            heads = self._heads.get(w)
            if heads is None:
                base = w * MAX_FOLIO_PAGES
                flags = self.kpageflags.read(np.arange(base, base + MAX_FOLIO_PAGES), MAX_FOLIO_PAGES)
                is_head = (flags & _bit(KPF_COMPOUND_HEAD)) != 0
                # for every page, the index of the last head at or before it (-1: none)
                last_head = np.maximum.accumulate(np.where(is_head, np.arange(MAX_FOLIO_PAGES), -1))
                heads = np.where(last_head >= 0, base + last_head, -1)
                self._heads[w] = heads
            sel = window == w
            out[sel] = heads[tail_pfns[sel] - w * MAX_FOLIO_PAGES]
        return out

    def mark_idle(self, pfns: np.ndarray) -> None:
        self.bitmap.write_bits(pfns, BITMAP_MAX_GAP)

    def idle(self, pfns: np.ndarray) -> np.ndarray:
        """Is each PFN's folio still idle (not accessed since it was marked)?"""
        return self.bitmap.read_bits(pfns, BITMAP_MAX_GAP)

    @property
    def syscalls(self) -> int:
        return self.bitmap.syscalls + self.kpageflags.syscalls


def _open_checked(path: Path, writable: bool, what: str) -> WordFile:
    try:
        return WordFile(path, writable)
    except FileNotFoundError:
        raise DamoError(f"this kernel has no {what} ({path} is missing: CONFIG_IDLE_PAGE_TRACKING). "
                        f"{NO_PAGE_IDLE_ALTERNATIVES}") from None
    except PermissionError:
        raise DamoError(f"{path}: idle page tracking needs root privileges (run damo as root). "
                        f"{NO_PAGE_IDLE_ALTERNATIVES}") from None
    except OSError as err:
        raise DamoError(f"{path}: cannot open ({err.strerror}). {NO_PAGE_IDLE_ALTERNATIVES}") from None


def open_pagemap(pid: int, proc: Path = DEFAULT_PROC) -> WordFile:
    """A process's pagemap; DamoError naming the pid if it is gone or hidden."""
    path = proc / str(pid) / "pagemap"
    try:
        return WordFile(path)
    except FileNotFoundError:
        raise DamoError(f"no process with pid {pid} ({path} is missing)") from None
    except PermissionError:
        raise DamoError(f"{path}: reading page frame numbers needs root privileges (run damo as root). "
                        f"{NO_PAGE_IDLE_ALTERNATIVES}") from None


def read_mappings(pid: int, proc: Path = DEFAULT_PROC) -> list[tuple[int, int]]:
    """A process's VMAs from ``/proc/PID/maps`` as sorted ``(start, end)``; [] once it is gone.

    ``[vsyscall]`` is left out: it is a fixed gate page outside the process's VMA tree, which
    the kernel's vaddr ops never see either."""
    try:
        text = (proc / str(pid) / "maps").read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or (len(fields) >= 6 and fields[5] == "[vsyscall]"):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        out.append((start, end))
    return sorted(out)


