"""The real workload: touch anonymous memory the way a masim config says.

Each region is its own private anonymous mapping (``mmap``), so the process's
address space looks like masim's (which mallocs big blocks, i.e. mmaps them).
A phase runs for its duration; its patterns take turns in batches of
``BATCH_ACCESSES`` accesses, each pattern getting batches in proportion to its
weight (``masim.schedule``). A batch is one vectorised numpy gather/scatter
over the batch's byte offsets, so the process makes real memory accesses at a
rate of tens of thousands of pages per millisecond
(``bench/masim_touch_rate.py``).

Turn order, batch size and sweep offsets are shared with ``masim.model``
through ``masim.schedule``; a random pattern touches uniformly random bytes.
"""
from __future__ import annotations

import ctypes
import json
import locale
import mmap
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, TextIO

import numpy as np

from damo.errors import DamoError
from masim.config import Config, ConfigError, Pattern, Phase, Region, check_memory
from masim.schedule import BATCH_ACCESSES, WeightedTurns, sequential_positions

PAGE_SIZE = mmap.PAGESIZE
# Accesses made between two TLB flushes, when flushing: a few hundred microseconds of work on a
# real CPU, a millisecond or so under emulation, well inside DAMON's 5 ms sampling interval.
FLUSH_CHUNK_ACCESSES = 8192
# x86 flushes a range of more than 33 pages by flushing the whole TLB (tlb_single_page_flush_ceiling).
FLUSH_PAGES = 64

class RegionMemory:
    """One region's private anonymous mapping, untouched until a pattern touches it."""

    def __init__(self, region: Region, config_path: str = "<config>"):
        self.region = region
        self.length = -(-region.size // PAGE_SIZE) * PAGE_SIZE
        self.mapping = mmap.mmap(-1, self.length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                                 prot=mmap.PROT_READ | mmap.PROT_WRITE)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            # Transparent huge pages would make one touch fault in 512 pages at
            # once, so residency would no longer tell which pages were accessed.
            self.mapping.madvise(mmap.MADV_NOHUGEPAGE)
        self.array = np.frombuffer(self.mapping, dtype=np.uint8)[: region.size]
        self.address = self.array.__array_interface__["data"][0]
        if region.init_file:
            self._load_init_file(config_path)

    def _load_init_file(self, config_path: str) -> None:
        path = self.region.init_file
        if not os.path.isabs(path) and not os.path.exists(path):
            # Relative to the config file, so bundled configs can name their data files.
            path = os.path.join(os.path.dirname(config_path), path)
        try:
            with open(path, "rb") as f:
                data = f.read(self.region.size)
        except OSError as err:
            raise ConfigError(config_path, self.region.line,
                              f"cannot read init file {self.region.init_file!r} "
                              f"of region {self.region.name!r} ({err.strerror})") from None
        self.array[: len(data)] = np.frombuffer(data, dtype=np.uint8)

    def resident_pages(self) -> np.ndarray:
        """Which pages of the mapping are resident (mincore), as a bool array."""
        return mincore(self.address, self.length)


_libc = None


def _c_library() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        _libc.mincore.restype = ctypes.c_int
        _libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _libc.mprotect.restype = ctypes.c_int
    return _libc


def mincore(address: int, length: int) -> np.ndarray:
    """Residency of the pages of [address, address+length) as a bool array, via mincore(2).

    For private anonymous memory that was never swapped, resident means touched
    (a read maps the shared zero page, which counts as resident too).
    """
    vec = np.zeros(-(-length // PAGE_SIZE), dtype=np.uint8)
    if _c_library().mincore(address, length, vec.ctypes.data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mincore failed: {os.strerror(err)}")
    return (vec & 1).astype(bool)


class TlbFlusher:
    """Flushes this CPU's TLB, so that the next access to each page walks the page table again.

    Why: under QEMU's software emulation a process that keeps its CPU looks idle to DAMON
    (damo.kernel.emulation says why). An mprotect round trip over more pages than x86
    invalidates one by one makes the kernel flush the whole TLB.
    """

    def __init__(self):
        self.length = FLUSH_PAGES * PAGE_SIZE
        self.mapping = mmap.mmap(-1, self.length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                                 prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.mapping.write(b"\1" * self.length)          # present pages: mprotect changes their PTEs
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self.mapping))
        self.nr_flushes = 0

    def flush(self) -> None:
        libc = _c_library()
        for prot in (mmap.PROT_READ, mmap.PROT_READ | mmap.PROT_WRITE):
            if libc.mprotect(self.address, self.length, prot) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mprotect for a TLB flush failed: {os.strerror(err)}")
        self.nr_flushes += 1


class Scratch:
    """Work arrays for one batch, shared by all patterns of a workload.

    They are written once here, so they are resident before the phases start
    and the process's RSS then grows by the regions' pages only.
    """

    def __init__(self, batch: int = BATCH_ACCESSES):
        self.batch = batch
        self.counter = np.arange(batch, dtype=np.int64)
        # Not np.zeros: calloc'd memory stays unmapped until first written.
        self.offsets = np.empty(batch, dtype=np.int64)
        self.offsets.fill(0)
        self.read = np.empty(batch, dtype=np.uint8)
        self.read.fill(0)


class PatternRunner:
    """Makes one pattern's accesses, a batch at a time, remembering where a sweep is."""

    def __init__(self, pattern: Pattern, memory: RegionMemory, rng: np.random.Generator,
                 scratch: Scratch | None = None, flusher: TlbFlusher | None = None):
        self.pattern = pattern
        self.flusher = flusher
        self.memory = memory
        self.rng = rng
        self.scratch = scratch or Scratch()
        self.batch = self.scratch.batch
        self.size = memory.region.size
        self.positions = sequential_positions(self.size, max(pattern.stride, 1))
        self.next_access = 0                  # sequential: index of the next access

    def _sequential_offsets(self) -> np.ndarray:
        offsets = self.scratch.offsets
        np.add(self.scratch.counter, self.next_access % self.positions, out=offsets)
        np.remainder(offsets, self.positions, out=offsets)
        np.multiply(offsets, self.pattern.stride, out=offsets)
        self.next_access += self.batch
        return offsets

    def run_batch(self) -> int:
        """Make one batch of accesses; return how many were made."""
        if self.pattern.random:
            offsets = self.rng.integers(0, self.size, self.batch, dtype=np.int64)
        else:
            offsets = self._sequential_offsets()
        if self.flusher is None:
            self._access(offsets, self.scratch.read)
        else:
            # The same accesses in the same order, with a TLB flush after each chunk.
            for lo in range(0, self.batch, FLUSH_CHUNK_ACCESSES):
                hi = lo + FLUSH_CHUNK_ACCESSES
                self._access(offsets[lo:hi], self.scratch.read[lo:hi])
                self.flusher.flush()
        return self.batch

    def _access(self, offsets: np.ndarray, read: np.ndarray) -> None:
        array = self.memory.array
        mode = self.pattern.rw_mode
        if mode == "wo":
            array[offsets] = 1
        elif mode == "ro":
            np.take(array, offsets, out=read)
        else:  # rw: read each byte, write it back incremented
            np.take(array, offsets, out=read)
            read += 1
            array[offsets] = read


@dataclass
class PhaseResult:
    name: str
    nr_accesses: int
    elapsed_ns: int

    @property
    def elapsed_ms(self) -> int:
        return self.elapsed_ns // 1_000_000

    @property
    def accesses_per_ms(self) -> int:
        return self.nr_accesses // max(self.elapsed_ms, 1)


def _grouped(n: int, width: int) -> str:
    # masim prints with printf's %'20llu: thousands grouping as the locale says.
    try:
        return locale.format_string(f"%{width}d", n, grouping=True)
    except (ValueError, locale.Error):
        return f"{n:{width}d}"


def phase_line(result: PhaseResult) -> str:
    """masim's end-of-phase line."""
    return (f"{result.name}:\t{_grouped(result.accesses_per_ms, 20)} accesses/msec, "
            f"{result.elapsed_ms} msecs run")


def interval_line(name: str, nr_accesses: int, interval_ms: int) -> str:
    """masim's ``--log_interval`` line."""
    return f"{name}:\t{_grouped(nr_accesses, 20)} accesses / {interval_ms} msec"


def run_phase(phase: Phase, runners: list[PatternRunner], *, log_interval_ms: int = 0,
              out: TextIO | None = None, clock: Callable[[], int] = time.monotonic_ns) -> PhaseResult:
    """Run one phase's patterns, turn by turn, for the phase's duration."""
    for r in runners:
        r.next_access = 0               # every phase starts its sweeps at offset 0
    turns = WeightedTurns([r.pattern.weight for r in runners])
    duration_ns = phase.duration_ms * 1_000_000
    log_ns = log_interval_ms * 1_000_000
    start = clock()
    next_log = start + log_ns
    nr_accesses = logged = 0
    while True:
        nr_accesses += runners[turns.next()].run_batch()
        now = clock()
        if log_ns and now >= next_log and out is not None:
            print(interval_line(phase.name, nr_accesses - logged, log_interval_ms), file=out,
                  flush=True)
            logged = nr_accesses
            next_log += log_ns
        if now - start >= duration_ns:
            return PhaseResult(phase.name, nr_accesses, now - start)


def read_status_kb(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, RssAnon, ...)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class Workload:
    """A config's regions, mapped, with one runner per pattern of each phase."""

    def __init__(self, config: Config, seed: int = 0, flush_tlb: bool = False):
        self.config = config
        check_memory(config)      # before anything is mapped
        self.memories = {r.name: RegionMemory(r, config.path) for r in config.regions}
        rng = np.random.default_rng(seed)
        scratch = Scratch()
        self.flusher = TlbFlusher() if flush_tlb else None
        self.phase_runners = [
            [PatternRunner(p, self.memories[p.region], rng, scratch, self.flusher)
             for p in phase.patterns]
            for phase in config.phases]

    def status(self, event: str, phase_index: int | None = None) -> dict:
        """The process's memory state: RSS, region addresses and resident pages (hex bitmap)."""
        regions = {}
        for name, memory in self.memories.items():
            resident = memory.resident_pages()
            regions[name] = {"address": memory.address, "size": memory.region.size,
                             "resident": np.packbits(resident, bitorder="little").tobytes().hex(),
                             "nr_resident": int(resident.sum())}
        return {"event": event, "phase": phase_index, "pid": os.getpid(), "vm_rss_kb": read_status_kb("VmRSS"),
                "rss_anon_kb": read_status_kb("RssAnon"), "regions": regions}

    def run(self, *, repeat: int = 1, quiet: bool = False, log_interval_ms: int = 0,
            out: TextIO | None = None, status_out: TextIO | None = None) -> list[PhaseResult]:
        """Run all phases ``repeat`` times; print masim's lines (to stdout) unless quiet."""
        if repeat < 1:
            raise DamoError(f"repeat must be at least 1, not {repeat}")
        out = out if out is not None else sys.stdout

        def report(event: str, index: int | None = None) -> None:
            if status_out is not None:
                status_out.write(json.dumps(self.status(event, index)) + "\n")
                status_out.flush()

        results = []
        report("start")
        for _ in range(repeat):
            for index, (phase, runners) in enumerate(zip(self.config.phases, self.phase_runners)):
                result = run_phase(phase, runners, log_interval_ms=log_interval_ms,
                                   out=None if quiet else out)
                results.append(result)
                if not quiet:
                    print(phase_line(result), file=out, flush=True)
                report("phase", index)
        return results
