"""A masim-like workload for the kernel tests: masim's region layout and status line.

Maps cold_a, hot and cold_b as separate anonymous mappings, writes one masim-like status line
with their addresses, then writes the whole hot one over and over for SECONDS. Only the standard
library: importing numpy takes ~10 s under emulation and maps tens of MiB of libraries whose
code pages then blur the working set.

Under software emulation (QEMU TCG) a page's accessed bit is set only when the emulated CPU
walks the page table, and QEMU's TLB keeps a translation until the guest flushes its TLB. DAMON
clears accessed bits without a TLB flush (as the kernel does for page aging), so a process that
keeps its vCPU has its hot pages seen as idle until its next context switch: the hot region read
as 0-100% accessed depending on how often the guest happened to switch. A real CPU's small TLB
evicts entries within microseconds; here the workload flushes its TLB after each pass over the
hot region (an mprotect round trip, which the kernel follows with a TLB flush), so the emulated
CPU re-sets the accessed bits as a real one would. Pass "noflush" as a third argument to see
the difference.
"""
import ctypes
import json
import mmap
import sys
import time

SIZES = {"cold_a": 16 << 20, "hot": 8 << 20, "cold_b": 16 << 20}


def address_of(m: mmap.mmap) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(m))


def main(status_out: str, seconds: float, flush_tlb: bool = True) -> None:
    maps = {name: mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS) for name, size in SIZES.items()}
    regions = {name: {"address": address_of(m), "size": len(m)} for name, m in maps.items()}
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    hot, size = regions["hot"]["address"], regions["hot"]["size"]
    ctypes.memset(hot, 1, size)                 # fault the hot pages in before reporting the layout
    with open(status_out, "a") as f:
        f.write(json.dumps({"event": "start", "regions": regions}) + "\n")
    end, value = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        value = (value + 1) & 0xff
        ctypes.memset(hot, value, size)
        if flush_tlb and (libc.mprotect(hot, size, mmap.PROT_READ) != 0
                          or libc.mprotect(hot, size, mmap.PROT_READ | mmap.PROT_WRITE) != 0):
            raise OSError(ctypes.get_errno(), "mprotect of the hot region failed")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), flush_tlb=len(sys.argv) < 4 or sys.argv[3] != "noflush")
