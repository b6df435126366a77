"""How fast the real masim runner touches memory, and how fast the model answers.

The runner's sequential page-touch rate is the default ``access_rate`` of
``masim.model.AccessModel`` (``DEFAULT_ACCESS_RATE``); rerun this after
changing the runner and update the constant if it moved.

    python bench/masim_touch_rate.py [--seconds S]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from masim.config import bundled_configs_dir, load_config, parse_config  # noqa: E402
from masim.model import DEFAULT_ACCESS_RATE, AccessModel  # noqa: E402
from masim.runner import PAGE_SIZE, Workload  # noqa: E402

REGION_BYTES = 100_000_000

# name -> pattern line fields after the region: random, stride, weight, mode
PATTERNS = {
    "seq_4096_wo": "0, 4096, 1, wo",
    "seq_4096_rw": "0, 4096, 1, rw",
    "seq_64_wo": "0, 64, 1, wo",
    "random_wo": "1, 64, 1, wo",
}


def touch_rate(pattern: str, seconds: float) -> dict:
    """Accesses and distinct-page touches per ms of one pattern on a 100 MB region."""
    config = parse_config(f"a, {REGION_BYTES}\n\np\n1\na, {pattern}\n")
    runner = Workload(config).phase_runners[0][0]
    pages = -(-REGION_BYTES // PAGE_SIZE)
    # Fault every page in first: the steady state is what the model needs.
    runner.memory.array[::PAGE_SIZE] = 1
    runner.run_batch()
    nr = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        nr += runner.run_batch()
    ms = (time.perf_counter() - start) * 1e3
    accesses = nr / ms
    stride = runner.pattern.stride
    if runner.pattern.random:
        pages_per_ms = accesses          # nearly every random access lands on another page
    else:
        pages_per_ms = accesses * min(stride, PAGE_SIZE) / PAGE_SIZE
    return {"accesses_per_ms": round(accesses), "pages_per_ms": round(pages_per_ms),
            "region_pages": pages}


def model_query_us(nr_calls: int = 3000) -> dict:
    """Microseconds per AccessModel.access_probability call with 1000 addresses, 5 ms windows."""
    out = {}
    for name in ("stairs_30secs", "zigzag", "100mb", "interleaved"):
        model = AccessModel(load_config(f"{bundled_configs_dir()}/{name}.cfg"))
        lo, hi = model.mappings[1][0], model.mappings[-2][1]
        addrs = np.random.default_rng(0).integers(lo, hi, 1000)
        step = model.duration_ns // nr_calls
        start = time.perf_counter()
        for i in range(nr_calls):
            model.access_probability(i * step, i * step + 5_000_000, addrs)
        out[name] = round((time.perf_counter() - start) / nr_calls * 1e6, 1)
    return out


def run(seconds: float = 1.0) -> dict:
    """Measure everything; return a flat-ish dict of numbers."""
    results = {name: touch_rate(pattern, seconds) for name, pattern in PATTERNS.items()}
    results["model_default_access_rate"] = DEFAULT_ACCESS_RATE
    results["model_query_us"] = model_query_us()
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per pattern")
    args = parser.parse_args(argv)
    results = run(args.seconds)
    for name in PATTERNS:
        r = results[name]
        print(f"masim runner {name:12s} {r['accesses_per_ms']:>8d} accesses/ms "
              f"{r['pages_per_ms']:>8d} pages/ms")
    print(f"model default access rate   {results['model_default_access_rate']:>8.0f} accesses/ms")
    for name, us in results["model_query_us"].items():
        print(f"model query ({name}, 1000 addrs) {us:>6.1f} us")
    return results


if __name__ == "__main__":
    main()
