"""DAMON under QEMU's software emulation (TCG): why it misses the accesses of a busy process.

DAMON checks a page by clearing its accessed bit and looking again one sampling interval later;
it does not flush the TLB in between (the kernel's page aging does not either). A real CPU's TLB
forgets a translation within microseconds, so the next access walks the page table and sets the
bit again. QEMU's software TLB keeps a translation until the guest flushes its TLB, so a process
that keeps its CPU, and makes no system call that flushes, looks idle to DAMON: in the test VM an
8 MiB region written all over by masim read as 0.03 MiB accessed, and as 8.00 MiB once masim
flushed its TLB every 8 Ki accesses (``masim --flush_tlb``).
"""
from __future__ import annotations


def cpu_is_emulated(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Does this CPU run under QEMU's software emulation (TCG)?"""
    try:
        with open(cpuinfo) as f:
            return any(line.startswith("model name") and "QEMU TCG CPU" in line for line in f)
    except OSError:
        return False
