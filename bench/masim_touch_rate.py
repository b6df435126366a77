"""How fast the real masim runner touches memory, and how fast the model answers.

The runner's sequential page-touch rate is the default ``access_rate`` of
``masim.model.AccessModel`` (``DEFAULT_ACCESS_RATE``); rerun this after
changing the runner and update the constant if it moved.

    python -m bench.masim_touch_rate [--seconds S]     (or as part of: python -m bench)
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from masim.config import bundled_configs_dir, load_config, parse_config
from masim.model import DEFAULT_ACCESS_RATE, AccessModel
from masim.runner import PAGE_SIZE, Workload

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
    cpu_start = time.process_time()
    while time.perf_counter() - start < seconds:
        nr += runner.run_batch()
    ms = (time.perf_counter() - start) * 1e3
    cpu_ms = (time.process_time() - cpu_start) * 1e3
    accesses = nr / ms
    stride = runner.pattern.stride
    if runner.pattern.random:
        pages_per_ms = accesses          # nearly every random access lands on another page
    else:
        pages_per_ms = accesses * min(stride, PAGE_SIZE) / PAGE_SIZE
    # Per CPU ms too: on a busy machine the wall-clock rate drops, this one much less.
    return {"accesses_per_ms": round(accesses), "pages_per_ms": round(pages_per_ms),
            "accesses_per_cpu_ms": round(nr / max(cpu_ms, 1e-9)), "region_pages": pages}


def model_query_us(nr_calls: int = 3000) -> dict:
    """Microseconds per 5 ms sample of 1000 addresses: AccessModel.sample_accessed, one
    window per call and 20 windows per sample_accessed_batch call.

    The addresses are sorted, as DAMON's sampling addresses are (one per region,
    regions in address order).
    """
    out = {}
    for name in ("stairs_30secs", "zigzag", "100mb", "interleaved"):
        model = AccessModel(load_config(f"{bundled_configs_dir()}/{name}.cfg"))
        lo, hi = model.mappings[1][0], model.mappings[-2][1]
        rng = np.random.default_rng(0)
        addrs = np.sort(rng.integers(lo, hi, (20, 1000)), axis=1)
        step = model.duration_ns // nr_calls
        start = time.perf_counter()
        for i in range(nr_calls):
            model.sample_accessed(i * step, i * step + 5_000_000, addrs[i % 20], rng)
        single = (time.perf_counter() - start) / nr_calls * 1e6
        windows = 5_000_000 * np.arange(21, dtype=np.int64)
        start = time.perf_counter()
        for i in range(nr_calls // 20):
            model.sample_accessed_batch(i * 20 * step + windows, addrs, rng)
        batch = (time.perf_counter() - start) / (nr_calls // 20 * 20) * 1e6
        out[name] = {"single_us": round(single, 1), "batch_us": round(batch, 1)}
    return out


def measure_all(seconds: float = 1.0, model_calls: int = 3000) -> dict:
    """Measure everything; return a dict of numbers."""
    results = {name: touch_rate(pattern, seconds) for name, pattern in PATTERNS.items()}
    results["model_default_access_rate"] = DEFAULT_ACCESS_RATE
    results["model_query_us"] = model_query_us(model_calls)
    seq = results["seq_4096_wo"]["pages_per_ms"]
    results["headline"] = [
        {"figure": "masim runner page-touch rate (sequential, stride 4096)",
         "value": f"{seq:,} pages/ms"},
        {"figure": "masim runner random-access rate",
         "value": f"{results['random_wo']['accesses_per_ms']:,} accesses/ms"},
    ]
    results["notes"] = [
        f"The model's default access rate is {DEFAULT_ACCESS_RATE:,.0f} accesses/ms "
        f"(masim.model.DEFAULT_ACCESS_RATE); this run measured {seq:,} pages/ms sequentially."]
    return results


def run(quick: bool = False) -> dict:
    """The bench suite's entry point."""
    return measure_all(seconds=0.2 if quick else 2.0, model_calls=300 if quick else 3000)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per pattern")
    args = parser.parse_args(argv)
    results = measure_all(args.seconds)
    for name in PATTERNS:
        r = results[name]
        print(f"masim runner {name:12s} {r['accesses_per_ms']:>8d} accesses/ms "
              f"{r['pages_per_ms']:>8d} pages/ms  ({r['accesses_per_cpu_ms']} accesses/CPU-ms)")
    print(f"model default access rate   {results['model_default_access_rate']:>8.0f} accesses/ms")
    for name, us in results["model_query_us"].items():
        print(f"model sample of 1000 addrs ({name}): {us['single_us']:.1f} us one by one, "
              f"{us['batch_us']:.1f} us in batches of 20")
    return results


if __name__ == "__main__":
    main()
