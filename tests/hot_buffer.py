"""A process that keeps an anonymous buffer hot, and where its pages are in physical memory.

Run as a script (``python tests/hot_buffer.py BYTES``), it allocates BYTES of anonymous memory,
prints ``ready ADDRESS BYTES`` and then writes one byte of every page every 0.2 s until killed
(DAMON samples every 0.5 s on the host, so every sample finds the pages accessed; one pass
over 1 GiB costs a few ms). ``physical_pages`` reads the pages' frame numbers from
/proc/PID/pagemap (root only); ``access_means`` compares what a record says about them with
the rest of the monitored memory.
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

PAGE = 4096
PASS_SECONDS = 0.2
PFN_MASK = (1 << 55) - 1
PRESENT = 1 << 63


class HotBuffer:
    """The workload process; use as a context manager."""

    def __init__(self, size: int):
        self.size = size
        self.proc = subprocess.Popen([sys.executable, __file__, str(size)], stdout=subprocess.PIPE, text=True)
        words = self.proc.stdout.readline().split()
        if words[:1] != ["ready"]:
            self.close()
            raise RuntimeError(f"the hot buffer workload did not start: {words}")
        self.address, self.size = int(words[1]), int(words[2])

    def physical_pages(self) -> np.ndarray:
        """Sorted physical addresses of the buffer's present pages."""
        first, count = self.address // PAGE, self.size // PAGE
        with open(f"/proc/{self.proc.pid}/pagemap", "rb") as f:
            f.seek(first * 8)
            entries = np.frombuffer(f.read(count * 8), dtype=np.uint64)
        present = (entries & np.uint64(PRESENT)) != 0
        frames = entries[present] & np.uint64(PFN_MASK)
        return np.sort(frames[frames != 0] * np.uint64(PAGE))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> "HotBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class AccessMeans:
    hot: float             # mean nr_accesses over the buffer's bytes (weighted by hot bytes per region)
    rest: float            # mean nr_accesses over the other monitored bytes
    coverage: float        # share of the buffer's pages inside the monitored regions
    hot_seen: float        # share of the buffer's monitored bytes in regions with nr_accesses > 0


def access_means(record, pages: np.ndarray, skip_first: int = 1) -> AccessMeans:
    """Size-weighted mean nr_accesses of the buffer's pages vs the rest, over the record's snapshots."""
    hot_sum = hot_bytes = rest_sum = rest_bytes = seen = covered = 0.0
    snaps = list(record.snapshots())[skip_first:]
    for snap in snaps:
        start, end = snap.start.astype(np.uint64), snap.end.astype(np.uint64)
        nr = snap.nr_accesses.astype(np.float64)
        in_region = (np.searchsorted(pages, end) - np.searchsorted(pages, start)).astype(np.float64) * PAGE
        size = (end - start).astype(np.float64)
        hot_sum += float(np.sum(nr * in_region))
        hot_bytes += float(np.sum(in_region))
        rest_sum += float(np.sum(nr * (size - in_region)))
        rest_bytes += float(np.sum(size - in_region))
        seen += float(np.sum(in_region[nr > 0]))
        covered += float(np.sum(in_region)) / max(len(pages) * PAGE, 1)
    return AccessMeans(hot=hot_sum / hot_bytes if hot_bytes else float("nan"),
                       rest=rest_sum / rest_bytes if rest_bytes else float("nan"),
                       coverage=covered / max(len(snaps), 1),
                       hot_seen=seen / hot_bytes if hot_bytes else float("nan"))


def _run(size: int) -> None:
    buffer = np.ones(size, dtype=np.uint8)          # np.ones writes every page: all are present
    pages = buffer[::PAGE]
    print(f"ready {buffer.ctypes.data} {size}", flush=True)
    while True:
        started = time.monotonic()
        pages += 1
        time.sleep(max(0.0, PASS_SECONDS - (time.monotonic() - started)))


if __name__ == "__main__":
    _run(int(sys.argv[1]) // PAGE * PAGE)
