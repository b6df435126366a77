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
from typing import Sequence

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
# Writing a zero bit costs the kernel a loop step (a few ns), far less than a system call, so
# marks within this many words of each other go out in one write.
BITMAP_WRITE_MAX_GAP = 8
# The idle bitmap is a sysfs binary file: the kernel moves at most one page per call.
BITMAP_MAX_WORDS = 4096 // WORD
# A process's pages are resolved a block at a time: one pagemap page of entries (2 MiB of
# address space), kept until the next ops update.
BLOCK_SHIFT = 9
BLOCK_PAGES = 1 << BLOCK_SHIFT
# What a cached page resolves to, besides its folio head PFN (>= 0).
UNTRACKABLE = -1                          # present, but not on the LRU (or hugetlbfs): never accessed
NOT_PRESENT = -2                          # not mapped in (or swapped) when read: read again next time
# A present page whose flags are not read yet is kept as UNCLASSIFIED - pfn (<= UNCLASSIFIED).
UNCLASSIFIED = -16
# The flags of the blocks loaded together are read at once if that takes at most one kpageflags
# read per this many present pages (their PFNs lie in runs: a THP, a fresh allocation, many blocks
# at once); scattered ones are classified page by page as samples land on them, at most a read each.
EAGER_PAGES_PER_READ = 4

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


def runs(indices: np.ndarray, max_gap: int, max_words: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ``indices`` cut into runs: ``(first index, word count)`` per run, where
    consecutive members of a run are at most ``max_gap`` words apart and no run crosses a
    ``max_words``-aligned block of words (so none spans more than ``max_words``)."""
    if len(indices) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    breaks = np.diff(indices) > max_gap + 1
    if max_words is not None:
        # A run also breaks where it enters the next max_words-aligned block of words, so no run
        # spans more than max_words (one vector step; a greedy walk would save a call per block
        # at most, and sysfs cuts every call at a page anyway).
        breaks |= np.diff(indices // max_words) != 0
    cut = np.flatnonzero(breaks) + 1
    first = np.concatenate([[0], cut])
    last = np.concatenate([cut, [len(indices)]]) - 1
    return indices[first], indices[last] - indices[first] + 1


class WordFile:
    """A file of 64-bit words read and written by index in bulk; counts its system calls."""

    def __init__(self, path: Path, writable: bool = False):
        self.path = path
        self.fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        self.syscalls = 0
        self._plan: tuple | None = None          # (bit numbers, their sorted words, inverse)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset``, reading on after a short read (sysfs files return
        at most a page per call); short only at the end of the file or on an error."""
        data = b""
        while len(data) < size:
            try:
                more = os.pread(self.fd, size - len(data), offset + len(data))
            except OSError as err:
                if err.errno in (errno.EACCES, errno.EPERM):
                    raise DamoError(f"reading {self.path} needs root privileges (run damo as root). "
                                    f"{NO_PAGE_IDLE_ALTERNATIVES}") from None
                more = b""                 # ESRCH (the process exited), EINVAL (past max_pfn)
            self.syscalls += 1
            if not more:
                break
            data += more
        return data

    def read(self, indices: np.ndarray, max_gap: int, max_words: int | None = None) -> np.ndarray:
        """The words at ``indices`` (any order, repeats allowed); 0 past the end or on error.

        The loop only issues the reads; finding each word in what came back is vectorised."""
        uniq, inverse = sorted_unique(np.asarray(indices, dtype=np.int64))
        return self._read_sorted(uniq, max_gap, max_words)[inverse]

    def _read_sorted(self, uniq: np.ndarray, max_gap: int, max_words: int | None) -> np.ndarray:
        """The words at sorted unique ``uniq``."""
        firsts, counts = runs(uniq, max_gap, max_words)
        sizes, offsets = (counts * WORD).tolist(), (firsts * WORD).tolist()
        pread, fd = os.pread, self.fd
        try:
            # The usual case, one call per run that returns all of it: a bare comprehension,
            # since this loop is most of the per-sample CPU with one read per region.
            chunks = [pread(fd, size, offset) for size, offset in zip(sizes, offsets)]
        except OSError:
            chunks = [b""] * len(sizes)
        self.syscalls += len(chunks)
        lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
        short = np.flatnonzero(lengths != counts * WORD).tolist()
        if not short and max_gap == 0:
            # Runs of adjacent words hold exactly the words asked for, in order.
            return np.frombuffer(b"".join(chunks), dtype="<u8")
        for i in short:
            self.syscalls -= 1                                  # counted again by _pread
            chunks[i] = self._pread(sizes[i], offsets[i])      # short, or an error: read on
            lengths[i] = len(chunks[i])
        whole = lengths - lengths % WORD
        for i in np.flatnonzero(whole != lengths).tolist():
            chunks[i] = chunks[i][:whole[i]]
        got = whole // WORD                                  # words each run returned
        words = np.frombuffer(b"".join(chunks), dtype="<u8")
        run = np.searchsorted(firsts, uniq, side="right") - 1
        rel = uniq - firsts[run]
        ok = rel < got[run]
        where = np.concatenate([[0], np.cumsum(got)[:-1]])[run] + rel
        values = np.zeros(len(uniq), dtype=np.uint64)
        values[ok] = words[where[ok]]
        return values

    def _words_of(self, bit_numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``sorted_unique(bit_numbers >> 6)``, kept for the last array asked about: a sample
        writes and then reads the same bits (one sort instead of two)."""
        if self._plan is None or self._plan[0] is not bit_numbers:
            self._plan = (bit_numbers, *sorted_unique(bit_numbers >> 6))
        return self._plan[1], self._plan[2]

    def write_bits(self, bit_numbers: np.ndarray, max_gap: int, max_words: int | None = None) -> None:
        """Set the bits ``bit_numbers`` (bit n is bit n % 64 of word n // 64) in one write per
        run of words; the words between them are written as zeros."""
        bit_numbers = np.asarray(bit_numbers, dtype=np.int64)
        if len(bit_numbers) == 0:
            return
        uniq, inverse = self._words_of(bit_numbers)
        firsts, counts = runs(uniq, max_gap, max_words)
        # All runs laid out back to back in one buffer; each write sends its slice.
        run = np.searchsorted(firsts, uniq, side="right") - 1
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        buf = np.zeros(int(counts.sum()), dtype="<u8")
        np.bitwise_or.at(buf, (offsets[run] + uniq - firsts[run])[inverse],
                         np.left_shift(np.uint64(1), (bit_numbers & 63).astype(np.uint64)))
        view = memoryview(buf.view(np.uint8))
        pwrite, fd = os.pwrite, self.fd
        byte_firsts, byte_sizes, byte_offsets = (firsts * WORD).tolist(), (counts * WORD).tolist(), \
            (offsets * WORD).tolist()
        try:
            # As in reads: one bare comprehension for the usual case, where every write is whole.
            written = [pwrite(fd, view[o:o + n], f) for f, n, o in zip(byte_firsts, byte_sizes, byte_offsets)]
        except OSError:
            written = [0] * len(byte_sizes)                 # redone one by one below
        self.syscalls += len(written)
        for i, (done, size) in enumerate(zip(written, byte_sizes)):
            if done == size:
                continue
            self.syscalls -= 1
            done = 0
            while done < size:              # on after a short write, as after a short read
                try:
                    more = pwrite(fd, view[byte_offsets[i] + done:byte_offsets[i] + size], byte_firsts[i] + done)
                except OSError as err:
                    if err.errno not in (errno.EINVAL, errno.ENXIO):      # past max_pfn: nothing to mark
                        raise DamoError(f"writing {self.path} failed ({os.strerror(err.errno or 0)})") from None
                    more = 0
                self.syscalls += 1
                if more <= 0:
                    break
                done += more

    def read_bits(self, bit_numbers: np.ndarray, max_gap: int, max_words: int | None = None) -> np.ndarray:
        """The bits ``bit_numbers`` as a bool array (same order)."""
        bit_numbers = np.asarray(bit_numbers, dtype=np.int64)
        uniq, inverse = self._words_of(bit_numbers)
        words = self._read_sorted(uniq, max_gap, max_words)[inverse]
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
        # PMD-sized PFN windows read so far (sorted) and the folio head PFN of each of their pages
        self._head_windows = np.zeros(0, dtype=np.int64)
        self._head_table = np.zeros((0, MAX_FOLIO_PAGES), dtype=np.int64)
        self._resolvers: dict[int, PageResolver] = {}   # id(pagemap) -> its process's resolved pages

    def close(self) -> None:
        self.bitmap.close()
        self.kpageflags.close()

    def forget(self) -> None:
        """At every ops update (pages move, THPs are split or collapsed): every process's resolved
        pages are checked again at their next use (``PageResolver.revalidate``), the folio
        heads found so far are dropped."""
        self._head_windows = np.zeros(0, dtype=np.int64)
        self._head_table = np.zeros((0, MAX_FOLIO_PAGES), dtype=np.int64)
        for key, resolver in list(self._resolvers.items()):
            if resolver.pagemap.fd < 0:
                del self._resolvers[key]           # its process is no longer a target
            else:
                resolver.stale = True

    def resolve(self, pagemap: "WordFile", vpn: np.ndarray,
                mappings: Sequence[tuple[int, int]] | None = None) -> Resolved:
        """The folio head PFN of each virtual page number ``vpn`` in one process's pagemap,
        from what was read since the last ``forget`` where possible (see ``PageResolver``).
        ``mappings``, the process's VMAs if known, spare re-reading pages outside them."""
        resolver = self._resolvers.get(id(pagemap))
        if resolver is None or resolver.pagemap is not pagemap:
            resolver = self._resolvers[id(pagemap)] = PageResolver(self, pagemap, mappings)
        elif resolver.stale:
            resolver.revalidate(mappings)
        codes = resolver.codes(np.asarray(vpn, dtype=np.int64))
        trackable = codes >= 0
        return Resolved(trackable, np.where(trackable, codes, 0))

    @staticmethod
    def pfns(entries: np.ndarray, pagemap_path: Path) -> np.ndarray:
        """Per pagemap entry: its PFN, or 0 where not present (or swapped)."""
        present = (entries & PM_PRESENT) != 0
        pfn = (entries & PM_PFN_MASK).astype(np.int64)
        if present.any() and not pfn[present].any():
            raise DamoError(f"{pagemap_path} shows no page frame numbers: that needs root privileges "
                            f"(CAP_SYS_ADMIN). {NO_PAGE_IDLE_ALTERNATIVES}")
        return np.where(present, pfn, 0)

    def classify(self, entries: np.ndarray, pagemap_path: Path) -> np.ndarray:
        """Per pagemap entry: its folio head PFN where trackable, else UNTRACKABLE (present,
        but not on the LRU, or hugetlbfs) or NOT_PRESENT (unmapped, swapped)."""
        return self.classify_pfns(self.pfns(entries, pagemap_path))

    def classify_pfns(self, pfn: np.ndarray) -> np.ndarray:
        """``classify`` of PFNs (0: not present)."""
        ok = pfn > 0
        flags = np.zeros(len(pfn), dtype=np.uint64)
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
        return np.where(trackable, head_pfn, np.where(ok, UNTRACKABLE, NOT_PRESENT))

    def _folio_heads(self, tail_pfns: np.ndarray) -> np.ndarray:
        """The head PFN of each tail page's folio (-1 if none is found): the nearest
        compound-head page at or below it within a PMD-sized, PMD-aligned window (folios are
        naturally aligned). Each window's flags are read once and kept until ``forget``; the
        windows not read yet are read together (one read per run of adjacent ones) and
        searched as one array, not one by one."""
        window, column = tail_pfns // MAX_FOLIO_PAGES, tail_pfns % MAX_FOLIO_PAGES
        rows = np.searchsorted(self._head_windows, window)
        known = self._head_windows[np.minimum(rows, max(len(self._head_windows) - 1, 0))] == window \
            if len(self._head_windows) else np.zeros(len(window), dtype=bool)
        if not known.all():
            missing = sorted_unique(window[~known])[0]
            offsets = np.arange(MAX_FOLIO_PAGES)
            flags = self.kpageflags.read((missing[:, None] * MAX_FOLIO_PAGES + offsets).ravel(), 0)
            is_head = (flags.reshape(len(missing), MAX_FOLIO_PAGES) & _bit(KPF_COMPOUND_HEAD)) != 0
            # for every page, the index of the last head at or before it (-1: none)
            last_head = np.maximum.accumulate(np.where(is_head, offsets, -1), axis=1)
            heads = np.where(last_head >= 0, missing[:, None] * MAX_FOLIO_PAGES + last_head, -1)
            windows = np.concatenate([self._head_windows, missing])
            order = np.argsort(windows, kind="stable")
            self._head_windows = windows[order]
            self._head_table = np.concatenate([self._head_table, heads])[order]
            rows = np.searchsorted(self._head_windows, window)
        return self._head_table[rows, column]

    def mark_idle(self, pfns: np.ndarray) -> None:
        self.bitmap.write_bits(pfns, BITMAP_WRITE_MAX_GAP, BITMAP_MAX_WORDS)

    def idle(self, pfns: np.ndarray) -> np.ndarray:
        """Is each PFN's folio still idle (not accessed since it was marked)?"""
        return self.bitmap.read_bits(pfns, BITMAP_MAX_GAP, BITMAP_MAX_WORDS)

    @property
    def syscalls(self) -> int:
        return self.bitmap.syscalls + self.kpageflags.syscalls


class PageResolver:
    """One process's pages resolved to folio head PFNs, a block (BLOCK_PAGES pages, one page of
    pagemap) at a time: the first sample that lands in a block reads the block's pagemap entries
    and, where their PFNs lie in a few runs, their page flags (runs of sorted reads; scattered
    PFNs get their flags read when a sample lands on them); later samples there need no system
    call until the next ops update. Pages that were not present are read again each time they are sampled,
    so a page faulted in meanwhile is seen at once. After an ops update the blocks are checked
    again rather than read anew (``revalidate``)."""

    def __init__(self, page_idle: PageIdle, pagemap: "WordFile",
                 mappings: Sequence[tuple[int, int]] | None = None):
        self.page_idle = page_idle
        self.pagemap = pagemap
        self._set_mappings(mappings)
        self.blocks = np.zeros(0, dtype=np.int64)               # sorted block numbers
        self.table = np.zeros((0, BLOCK_PAGES), dtype=np.int64)  # their pages' codes
        self.raw = np.zeros((0, BLOCK_PAGES), dtype=np.int64)    # their PFNs when read (0: absent)
        self.stale = False                                       # an ops update since they were read

    def _set_mappings(self, mappings: Sequence[tuple[int, int]] | None) -> None:
        # The mappings' first and last-plus-one virtual page numbers: a page outside them
        # cannot appear before the next ops update (which gives the new ones).
        spans = np.array(mappings if mappings else [(0, 1 << 64 - 1)], dtype=np.uint64).reshape(-1, 2)
        self.map_first = (spans[:, 0] >> np.uint64(PAGE_SHIFT)).astype(np.int64)
        self.map_end = (spans[:, 1] >> np.uint64(PAGE_SHIFT)).astype(np.int64)

    def revalidate(self, mappings: Sequence[tuple[int, int]] | None) -> None:
        """After an ops update: read the loaded blocks' pagemap entries again (one read per run of
        adjacent blocks) and classify anew only the pages whose PFN changed (moved, swapped,
        faulted in, a THP collapsed), the pages of folios whose head is no longer a compound
        head (a THP split) and the pages that were off the LRU. Reading every block's flags
        again would cost a kpageflags read per run of PFNs, most of a sample's work at 100 regions."""
        self.stale = False
        self._set_mappings(mappings)
        if not len(self.blocks):
            return
        vpns = (self.blocks[:, None] * BLOCK_PAGES + np.arange(BLOCK_PAGES)).ravel()
        pfns = self.page_idle.pfns(self.pagemap.read(vpns, 0), self.pagemap.path).reshape(self.raw.shape)
        redo = (pfns != self.raw) | (self.table == UNTRACKABLE)
        tail = (self.table >= 0) & (self.table != self.raw)    # tracked through another page: its head
        if tail.any():
            heads = sorted_unique(self.table[tail])[0]
            flags = self.page_idle.kpageflags.read(heads, KPAGEFLAGS_MAX_GAP)
            broken = heads[(flags & (_bit(KPF_COMPOUND_HEAD) | _bit(KPF_LRU))) !=
                           (_bit(KPF_COMPOUND_HEAD) | _bit(KPF_LRU))]
            if len(broken):
                redo |= tail & np.isin(self.table, broken)
        if redo.any():
            self.table[redo] = np.where(pfns[redo] > 0, UNCLASSIFIED - pfns[redo], NOT_PRESENT)
        self.raw = pfns

    def codes(self, vpn: np.ndarray) -> np.ndarray:
        """The head PFN (or UNTRACKABLE / NOT_PRESENT) of each virtual page number."""
        block, column = vpn >> BLOCK_SHIFT, vpn & (BLOCK_PAGES - 1)
        rows = self._rows(block)
        codes = self.table[rows, column]
        unknown = codes <= UNCLASSIFIED
        if unknown.any():
            fresh = self.page_idle.classify_pfns(UNCLASSIFIED - codes[unknown])
            codes[unknown] = fresh
            self.table[rows[unknown], column[unknown]] = fresh
        absent = codes == NOT_PRESENT
        if absent.any():
            mapping = np.searchsorted(self.map_first, vpn[absent], side="right") - 1
            inside = (mapping >= 0) & (vpn[absent] < self.map_end[np.maximum(mapping, 0)])
            absent[absent] = inside
        if absent.any():
            pfns = self.page_idle.pfns(self.pagemap.read(vpn[absent], PAGEMAP_MAX_GAP), self.pagemap.path)
            fresh = self.page_idle.classify_pfns(pfns)
            codes[absent] = fresh
            self.table[rows[absent], column[absent]] = fresh
            self.raw[rows[absent], column[absent]] = pfns
        return codes

    def _rows(self, block: np.ndarray) -> np.ndarray:
        """Each block's row in the table, loading the blocks not read yet. The steady state (every
        block loaded) costs two numpy calls: a sample is a few hundred microseconds of such calls."""
        rows = np.searchsorted(self.blocks, block)
        if len(self.blocks) and (self.blocks[np.minimum(rows, len(self.blocks) - 1)] == block).all():
            return rows
        self._load(block)
        return np.searchsorted(self.blocks, block)

    def _load(self, block: np.ndarray) -> None:
        wanted = sorted_unique(block)[0]
        missing = wanted[~np.isin(wanted, self.blocks)]
        if not len(missing):
            return
        vpns = (missing[:, None] * BLOCK_PAGES + np.arange(BLOCK_PAGES)).ravel()
        # adjacent blocks are contiguous in the pagemap: one read for each run of them
        pfns = self.page_idle.pfns(self.pagemap.read(vpns, 0), self.pagemap.path)
        present = sorted_unique(pfns[pfns > 0])[0]
        if len(runs(present, KPAGEFLAGS_MAX_GAP)[0]) * EAGER_PAGES_PER_READ <= len(present):
            fresh = self.page_idle.classify_pfns(pfns)        # a few reads for all of them
        else:
            fresh = np.where(pfns > 0, UNCLASSIFIED - pfns, NOT_PRESENT)
        fresh = fresh.reshape(len(missing), BLOCK_PAGES)
        blocks = np.concatenate([self.blocks, missing])
        order = np.argsort(blocks, kind="stable")
        self.blocks = blocks[order]
        self.table = np.concatenate([self.table, fresh])[order]
        self.raw = np.concatenate([self.raw, pfns.reshape(len(missing), BLOCK_PAGES)])[order]


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


