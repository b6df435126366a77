"""Full VM runs of the kernel test set with the TLB-flush ticker on in every record: is a guest ever lost?

    python -m bench.vm_ticker_soak --runs 20 --log soak.jsonl

Each run boots the test VM (software emulation), runs ``pytest -m kernel tests/kernel`` inside with
``DAMO_TLB_FLUSH_TICKER=1`` (so every kernel record in it runs the ticker), and appends one JSON
line to the log: the outcome (passed, tests failed, or guest lost: the VM stopped or printed an
oops before pytest finished), the time, the host's load, and the ticker test's measured ratio.
Runs take the shared VM lock (``--lock``) one at a time, so other VM users can go in between.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

from bench.machine import utc_now
from bench.vm_lock import DEFAULT_VM_LOCK, vm_lock
from damo import vm
from damo.kernel.tlb_ticker import TICKER_ENV

QUIET_SECONDS = 900
LIMIT_SECONDS = 3000
OOPS = re.compile(r"Oops|BUG:|Kernel panic|general protection fault|int3:")


def one_run(kernel: Path, ticker: bool) -> dict:
    """One VM run of the kernel tests: outcome, seconds, ticker ratio, and the evidence of a loss."""
    from tests.vm_runner import run_marker_in_vm

    started, load = time.monotonic(), os.getloadavg()[0]
    outcome, detail, output = "passed", "", ""
    try:
        output = run_marker_in_vm(kernel, "kernel", "tests/kernel", LIMIT_SECONDS, QUIET_SECONDS,
                                  guest_env={TICKER_ENV: "1"} if ticker else None)
    except AssertionError as err:
        detail = str(err)
        lost = ("(no pytest output" in detail or "showed no progress" in detail or "did not finish" in detail
                or OOPS.search(detail.split("--- the guest console", 1)[-1]) is not None
                or "passed" not in detail and "failed" not in detail)
        outcome = "guest lost" if lost else "tests failed"
    ratio = re.search(r"hot region p50 \d+ B \(([\d.]+)x\)", output + detail)
    summary = re.findall(r"=+ (.*(?:passed|failed).*) in [\d.]+s", output + detail)
    return {"date": utc_now(), "outcome": outcome, "seconds": round(time.monotonic() - started),
            "load_at_start": round(load, 1), "ticker": ticker,
            "ticker_ratio": float(ratio.group(1)) if ratio else None,
            "summary": summary[-1] if summary else "", "detail": detail[-3000:] if outcome != "passed" else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="how many VM runs (default: 20)")
    parser.add_argument("--log", default="vm_ticker_soak.jsonl", help="JSON lines log (default: vm_ticker_soak.jsonl)")
    parser.add_argument("--lock", default=DEFAULT_VM_LOCK, help="lock file taken per run ('' for none)")
    parser.add_argument("--until", type=float, help="start no run after this Unix time")
    parser.add_argument("--no-ticker", action="store_true", help="the same runs without the ticker (a control)")
    args = parser.parse_args()
    kernel = vm.cached_kernel()
    if kernel is None:
        parser.error("no VM kernel: run `damo vm setup`")
    for index in range(args.runs):
        if args.until and time.time() >= args.until:
            break
        with vm_lock(args.lock):
            result = one_run(kernel, not args.no_ticker)
        result["run"] = index + 1
        with open(args.log, "a") as log:
            log.write(json.dumps(result) + "\n")
        print(f"run {index + 1}: {result['outcome']} in {result['seconds']} s at load {result['load_at_start']} "
              f"({result['summary']}; ticker ratio {result['ticker_ratio']})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
