"""The VM's own cost for ``damo record --vm``: boot time, and a workload's slowdown inside the VM.

    python -m bench.vm_overhead [--accel auto|kvm|tcg] [--lock /work/helpers/vm.lock]

One VM boot (the acceleration ``damo record --vm --vm-accel ACCEL`` would pick) runs, inside:
the interpreter's start with numpy and masim imported, then masim writing an 8 MiB region all over
for PHASE_MS with its TLB flushes off, again with them on (what ``--flush_tlb auto`` does under
emulation), and again with them off beside the TLB-flush ticker (what ``damo record --vm`` runs
under emulation by default: damo.kernel.tlb_ticker). The same runs on this machine give the native
figures. The slowdown is masim's own access rate (accesses per ms of its phase) native over
inside. Writes the ``vm`` section of bench/results.md.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import utc_now
from bench.render import put_section
from bench.vm_lock import DEFAULT_VM_LOCK, vm_lock
from damo import vm, vm_accel
from damo.sources.vm import boot_and_run

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECTION_START, SECTION_END = "<!-- vm:start -->", "<!-- vm:end -->"
PHASE_MS = 4000
CONFIG = f"""\
hot, 8388608

hot
{PHASE_MS}
hot, 0, 4096, 1
"""
IMPORT_CODE = "import time; t = time.monotonic(); import numpy, masim.runner; print(time.monotonic() - t)"
RATE = re.compile(r"hot:\s+([\d,.]+) accesses/msec")
# masim with its flushes off while a TLB-flush ticker runs on every CPU, as in a --vm record's guest.
TICKER_CODE = ("import subprocess, sys; from damo.kernel.tlb_ticker import Ticker; ticker = Ticker(); "
               "ticker.start(); run = subprocess.run([sys.executable, '-m', 'masim', sys.argv[1], "
               "'--flush_tlb', 'off']); ticker.stop(); sys.exit(run.returncode)")
RUNS = ("flush_off", "flush_on", "ticker")


def workload_lines(config: Path, out_dir: Path) -> list[str]:
    """Shell lines that time the imports and run masim three times, each writing to a file in ``out_dir``."""
    py = shlex.quote(sys.executable)
    return [f"{py} -c {shlex.quote(IMPORT_CODE)} > {out_dir}/import.txt",
            f"{py} -m masim {config} --flush_tlb off > {out_dir}/flush_off.txt",
            f"{py} -m masim {config} --flush_tlb on > {out_dir}/flush_on.txt",
            f"{py} -c {shlex.quote(TICKER_CODE)} {config} > {out_dir}/ticker.txt"]


def read_figures(out_dir: Path) -> dict:
    figures = {"import_s": float((out_dir / "import.txt").read_text())}
    for name in RUNS:
        match = RATE.search((out_dir / f"{name}.txt").read_text())
        figures[f"{name}_rate"] = float(match.group(1).replace(",", "")) if match else None
    return figures


def native(config: Path, work: Path) -> dict:
    out = work / "native"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for line in workload_lines(config, out):
        subprocess.run(line, shell=True, check=True, cwd=REPO, env=env)
    return read_figures(out)


def in_vm(config: Path, work: Path, accel: str) -> dict:
    """Boot, run the workload lines, shut down: the boot time to the first command, the total, the figures."""
    rwdir = work / "vm"
    rwdir.mkdir()
    kernel = str(vm.cached_kernel())
    chosen = vm_accel.choose(accel, kernel)
    started_mark = rwdir / "started"
    script = (f"cd {shlex.quote(str(REPO))} && export PYTHONPATH={shlex.quote(str(REPO))} && "
              f"touch {started_mark} && " + " && ".join(workload_lines(config, rwdir)))
    began = time.time()
    run = boot_and_run(kernel, rwdir, script, 3600, echo=False, accel=chosen)
    total = time.time() - began
    if run.returncode != 0 or not started_mark.exists():
        raise SystemExit(f"the VM run failed (vng exit {run.returncode}):\n" + "\n".join(run.console_tail))
    return {"accel": chosen, "boot_s": started_mark.stat().st_mtime - began, "total_s": total,
            **read_figures(rwdir)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accel", choices=vm_accel.ACCEL_CHOICES, default="auto",
                        help="the VM's acceleration, as damo record --vm-accel (default: auto)")
    parser.add_argument("--lock", default=DEFAULT_VM_LOCK, help="lock file held while the VM runs ('' for none)")
    args = parser.parse_args()
    if vm.missing_prerequisites():
        parser.error("the VM prerequisites are missing: run `damo vm setup`")
    with tempfile.TemporaryDirectory(prefix="damo-vm-bench-") as tmp:
        work = Path(tmp)
        config = work / "hot8.cfg"
        config.write_text(CONFIG)
        load_before = os.getloadavg()
        here = native(config, work)
        with vm_lock(args.lock):
            guest = in_vm(config, work, args.accel)
        load_after = os.getloadavg()

    def ratio(key: str) -> str:
        if not guest[key] or not here[key]:
            return "-"
        return f"{here[key] / guest[key]:.1f}x slower"

    rows = [
        ("Boot: vng start to the guest's first command", f"{guest['boot_s']:.1f} s", "-", "-"),
        ("Whole VM run: boot, the commands below, shutdown", f"{guest['total_s']:.1f} s", "-", "-"),
        ("Python start with numpy and masim imported", f"{guest['import_s']:.2f} s", f"{here['import_s']:.2f} s",
         f"{guest['import_s'] / here['import_s']:.1f}x slower"),
        (f"masim, 8 MiB written all over for {PHASE_MS / 1000:.0f} s, no TLB flushes: accesses/ms",
         f"{guest['flush_off_rate']:,.0f}", f"{here['flush_off_rate']:,.0f}", ratio("flush_off_rate")),
        ("the same with a TLB flush every 8 Ki accesses (masim --flush_tlb on, its default under emulation)",
         f"{guest['flush_on_rate']:,.0f}", f"{here['flush_on_rate']:,.0f}", ratio("flush_on_rate")),
        ("no TLB flushes, beside the TLB-flush ticker (what a --vm record runs under emulation by default)",
         f"{guest['ticker_rate']:,.0f}", f"{here['ticker_rate']:,.0f}", ratio("ticker_rate")),
    ]
    how = "KVM" if guest["accel"] == "kvm" else "software emulation (TCG)"
    lines = [SECTION_START, "## vm: the VM's own overhead (`python -m bench.vm_overhead`)", "",
             f"Run on {utc_now()}, {os.cpu_count()} cores, VM under {how} (2 vCPUs, 2 GiB); load average "
             f"(1, 5, 15 min) before: {' '.join(f'{x:.1f}' for x in load_before)}, after: "
             f"{' '.join(f'{x:.1f}' for x in load_after)}. On a shared machine the figures move with the load.", "",
             "| Figure | In the VM | Native | Slowdown |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines.append(SECTION_END)
    section = "\n".join(lines) + "\n"
    put_section(HERE / "results.md", SECTION_START, SECTION_END, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
