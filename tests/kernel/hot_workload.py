"""A masim-like workload for the kernel tests: masim's region layout and status line.

Maps cold_a, hot and cold_b as separate anonymous mappings, writes one masim-like status line
with their addresses, then writes the hot one over and over for SECONDS.
"""
import json
import mmap
import sys
import time

import numpy as np

SIZES = {"cold_a": 16 << 20, "hot": 8 << 20, "cold_b": 16 << 20}


def main(status_out: str, seconds: float) -> None:
    maps = {name: mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS) for name, size in SIZES.items()}
    arrays = {name: np.frombuffer(m, dtype=np.uint8) for name, m in maps.items()}
    regions = {name: {"address": a.ctypes.data, "size": a.size} for name, a in arrays.items()}
    with open(status_out, "a") as f:
        f.write(json.dumps({"event": "start", "regions": regions}) + "\n")
    hot = arrays["hot"]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        hot[::4096] += 1


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
