"""The TLB-flush ticker's crash hazard, concentrated: many trace-event toggles in one VM boot.

    python -m bench.vm_ticker_stress --mode window --cycles 400     # the record's order (safe?)
    python -m bench.vm_ticker_stress --mode records --cycles 20     # whole kernel records, ticker on
    python -m bench.vm_ticker_stress --mode overlap --cycles 400    # the old order: the control
    python -m bench.vm_ticker_stress --mode none --cycles 400       # no ticker: the baseline

Why: the ticker lost the guest (``Oops: int3`` in ``__schedule``) when a trace event was enabled or
disabled while it ran: that patches a static branch inside ``__schedule`` with int3 text patching,
which raced with QEMU's translated code. A full kernel test run toggles events a few dozen times, so
20 full runs (bench.vm_ticker_soak, 8-20 minutes each) test a few hundred toggles. Here one boot
toggles hundreds of times, each toggle being exactly what a record does:

- ``window``: the record's order (damo.kernel.tlb_ticker): enable damon_aggregated in a private
  trace instance, start the ticker, let it run, stop and reap it, disable the event;
- ``records``: whole ``damo record`` runs of a 3-second workload with the ticker on (the record's own
  kdamond start, sysfs writes, trace instance and ticker window, end to end);
- ``overlap``: the old order, the ticker running across every toggle. It is the control: if it does
  not lose guests, the stress is not sensitive enough to say anything about the other two;
- ``none``: the same toggles with no ticker at all: what toggling alone costs under emulation.

Since session 5 every VM boots with the sched tracepoints on (damo.sources.vm.KEEP_SCHED_TRACEPOINTS),
the mitigation found with this bench; ``--keep-sched`` does the same at run time, for comparison.

Each mode boots the test VM (software emulation) once, taking the shared VM lock; the guest appends
a JSON line per cycle to a log in the shared directory. The host stops the VM when its console
shows an oops, or after the console and the log stayed silent for QUIET_SECONDS. The result (cycles
done, guest lost or not, the oops line) is printed and appended to ``--log``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.vm_lock import DEFAULT_VM_LOCK, vm_lock

REPO = Path(__file__).resolve().parent.parent
MODES = ("window", "records", "overlap", "none")
QUIET_SECONDS = 300
OOPS = re.compile(r"Oops|BUG:|Kernel panic|general protection fault|int3:|RIP:")
TRACEFS = Path("/sys/kernel/tracing")
EVENT = "events/damon/damon_aggregated/enable"
TICK_RUN_SECONDS = 0.3


# --- in the guest -----------------------------------------------------------------------------

def _toggle(instance: Path, on: bool) -> None:
    (instance / EVENT).write_text("1" if on else "0")


def keep_sched_tracepoints() -> None:
    """Enable sched_switch and sched_wakeup for the guest's life in an instance of their own, so
    that later toggles of other events never flip those tracepoints' static keys (no text patching
    inside __schedule or try_to_wake_up)."""
    keeper = TRACEFS / "instances" / "damo-keep-sched"
    keeper.mkdir(exist_ok=True)
    (keeper / "buffer_size_kb").write_text("4")
    for event in ("sched_switch", "sched_wakeup"):
        (keeper / "events" / "sched" / event / "enable").write_text("1")


def guest(mode: str, cycles: int, log: Path, keep_sched: bool = False) -> int:
    """Run ``cycles`` cycles of ``mode``, one JSON line each in ``log`` (flushed: the host watches it)."""
    from damo.kernel.tlb_ticker import Ticker

    if keep_sched:
        keep_sched_tracepoints()
    instance = TRACEFS / "instances" / f"damo-ticker-stress-{os.getpid()}"
    if mode != "records":
        instance.mkdir()
    ticker = Ticker()
    try:
        if mode == "overlap":
            ticker.start()
        with open(log, "a", buffering=1) as out:
            switch = TRACEFS / "events" / "sched" / "sched_switch" / "enable"
            out.write(json.dumps({"cmdline": Path("/proc/cmdline").read_text().strip(),
                                  "sched_switch_on": switch.read_text().strip() if switch.exists() else None}) + "\n")
            for cycle in range(1, cycles + 1):
                begin = time.monotonic()
                if mode == "window":
                    _toggle(instance, True)
                    ticker.start()
                    time.sleep(TICK_RUN_SECONDS)
                    ticker.stop()
                    _toggle(instance, False)
                elif mode in ("overlap", "none"):
                    _toggle(instance, True)
                    time.sleep(TICK_RUN_SECONDS)
                    _toggle(instance, False)
                else:
                    with tempfile.TemporaryDirectory() as tmp:
                        env = dict(os.environ, DAMO_TLB_FLUSH_TICKER="1")
                        result = subprocess.run([sys.executable, "-m", "damo", "record", "-o", f"{tmp}/r.data",
                                                 "sleep", "3"], env=env, capture_output=True, text=True,
                                                cwd=REPO, timeout=600)
                        if result.returncode != 0:
                            out.write(json.dumps({"cycle": cycle, "error": result.stderr[-500:]}) + "\n")
                            return 1
                out.write(json.dumps({"cycle": cycle, "seconds": round(time.monotonic() - begin, 2)}) + "\n")
                os.fsync(out.fileno())
    finally:
        ticker.stop()
        if instance.exists():
            _toggle(instance, False)
            instance.rmdir()
    return 0


# --- on the host ------------------------------------------------------------------------------

def run_mode(mode: str, cycles: int, limit: float, keep_sched: bool = False) -> dict:
    """One VM boot running ``cycles`` cycles of ``mode``: how far it got and whether the guest was lost."""
    from damo import vm
    from damo.sources.vm import boot_and_run

    kernel = vm.cached_kernel()
    if kernel is None:
        raise SystemExit("no VM kernel: run `damo vm setup`")
    started, load = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="damo-ticker-stress-") as rwdir:
        log, rc = Path(rwdir) / "cycles.jsonl", Path(rwdir) / "rc"
        script = (f"cd {shlex.quote(str(REPO))} && PYTHONPATH={shlex.quote(str(REPO))} "
                  f"{shlex.quote(sys.executable)} -m bench.vm_ticker_stress --guest {mode} --cycles {cycles} "
                  f"{'--keep-sched ' if keep_sched else ''}"
                  f"--guest-log {shlex.quote(str(log))} > {rwdir}/guest.out 2>&1; echo $? > {rc}")
        run = boot_and_run(str(kernel), Path(rwdir), script, limit, quiet_limit=QUIET_SECONDS, heartbeat=log,
                           echo=False, verbose=True, fatal=OOPS)
        lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        header = lines[0] if lines and "cmdline" in lines[0] else {}
        done = sum(1 for line in lines if "seconds" in line)
        oops = next((line.strip() for line in run.console_tail if OOPS.search(line)), None)
        guest_rc = rc.read_text().strip() if rc.exists() else None
        guest_out = (Path(rwdir) / "guest.out").read_text()[-1000:] if (Path(rwdir) / "guest.out").exists() else ""
    lost = oops is not None or guest_rc is None
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "mode": mode, "keep_sched": keep_sched,
            "cycles_asked": cycles, "cycles_done": done, "guest_lost": lost,
            "sched_switch_on_at_start": header.get("sched_switch_on"), "guest_cmdline": header.get("cmdline"),
            "guest_rc": guest_rc, "oops": oops, "timed_out": run.timed_out,
            "seconds": round(time.monotonic() - started), "load_at_start": round(load, 1),
            "guest_output": guest_out if guest_rc != "0" else "",
            "console_tail": run.console_tail[-15:] if lost else []}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, default="window", help="what each cycle does (default: window)")
    parser.add_argument("--cycles", type=int, default=400, help="cycles in the one boot (default: 400)")
    parser.add_argument("--limit", type=float, default=1500, help="seconds the VM may run in all (default: 1500)")
    parser.add_argument("--log", default="vm_ticker_stress.jsonl", help="JSON lines log of results")
    parser.add_argument("--lock", default=DEFAULT_VM_LOCK, help="a lock file held while the VM runs ('' for none)")
    parser.add_argument("--keep-sched", action="store_true",
                        help="first enable sched_switch and sched_wakeup for the guest's life in an instance of "
                             "their own (the mitigation under test)")
    parser.add_argument("--guest", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--guest-log", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.guest:
        return guest(args.guest, args.cycles, Path(args.guest_log), args.keep_sched)
    with vm_lock(args.lock):
        result = run_mode(args.mode, args.cycles, args.limit, args.keep_sched)
    with open(args.log, "a") as out:
        out.write(json.dumps(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "console_tail"}))
    if result["console_tail"]:
        print("\n".join(result["console_tail"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
