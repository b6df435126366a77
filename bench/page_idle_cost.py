"""CPU cost of the page_idle backend against kernel DAMON's kdamond, in the shared-kernel VM.

One VM boot (../shared/kernels' kernel, which has both; not with --quick): a 1 GiB workload is
monitored by ``damo record --ops page_idle`` and then by kernel DAMON (sysfs), at
100 and 1,000 regions (min = max), default intervals. Each monitor's CPU (utime + stime of
damo's process, or of the kdamond thread) is read from /proc over a steady window after start-up.

The VM runs under software emulation, so its CPU figures are inflated. The slowdown is measured
with the same CPU-bound Python loop on the host and in the guest; the native estimate is the
VM figure divided by it (the kernel side of the system calls is emulated too, so one factor
is a fair first-order estimate for both).

    python -m bench.page_idle_cost [--quick]      (or as part of: python -m bench)
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from damo.model import MonitoringAttrs

REPO = Path(__file__).resolve().parent.parent
KERNEL_NAME = "vmlinuz-6.12.117-damon-dbgfs-idle"
NR_REGIONS = (100, 1000)
GOAL_NATIVE_FRACTION = 0.05
DEFAULTS = MonitoringAttrs()
# After start-up: the page_idle engine resolves its pages in its first update interval.
WARMUP_SECONDS = 8
WORKLOAD_BYTES = 1024 << 20
WINDOW_SECONDS = 12.0
# The VM lock is held for at most about 12 minutes (boot included).
VM_LIMIT_SECONDS = 660
WORKLOAD = """
import mmap, sys, time
size = int(sys.argv[1])
buf = mmap.mmap(-1, size)
for i in range(0, size, 4096):
    buf[i] = 1
print("ready", flush=True)
hot = 64 << 20
while True:
    for i in range(0, hot, 4096):
        buf[i] = 2
    time.sleep(0.05)
"""


def python_loop_seconds() -> float:
    """A fixed CPU-bound loop, for the emulation slowdown."""
    start = time.process_time()
    total = 0
    for i in range(3_000_000):
        total += i * i % 7
    return time.process_time() - start


def _probe(fn, *args) -> tuple[float, float]:
    """User and system CPU seconds that ``fn(*args)`` takes (getrusage: this process only; the
    sum is exact, the split between user and system is by ticks)."""
    t0 = resource.getrusage(resource.RUSAGE_SELF)
    fn(*args)
    t1 = resource.getrusage(resource.RUSAGE_SELF)
    return t1.ru_utime - t0.ru_utime, t1.ru_stime - t0.ru_stime


def _numpy_ops(n: int) -> None:
    """Small numpy operations, the kind the engine does per sample (sort, search, mask)."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 1 << 30, 1000)
    for _ in range(n):
        uniq = np.sort(values, kind="stable")
        np.searchsorted(uniq, values)
        values[values > (1 << 29)].sum()


def _small_preads(n: int) -> None:
    """One 8-byte pread of /proc/self/pagemap per call: a system call with little kernel work,
    like a one-word bitmap read."""
    buf = np.ones(1 << 20, dtype=np.uint8)              # 256 present pages
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    offset = (buf.ctypes.data >> 12) * 8
    pread = os.pread
    try:
        for i in range(n):
            pread(fd, 8, offset + (i & 255) * 8)
    finally:
        os.close(fd)


def _big_preads(n: int) -> None:
    """A pread of 4 KiB of /proc/self/pagemap per call: 512 page-table entries walked in the
    kernel per call, mostly kernel work, like kdamond's walks and the bitmap's per-PFN loop."""
    buf = np.ones(2 << 20, dtype=np.uint8)
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    offset = (buf.ctypes.data >> 12) * 8
    try:
        for _ in range(n):
            os.pread(fd, 4096, offset)
    finally:
        os.close(fd)


# Each probe's size: a few seconds in the guest, well under a second natively.
PROBES = {"python_loop": (lambda n: python_loop_seconds(), 1), "numpy_ops": (_numpy_ops, 2000),
          "small_pread": (_small_preads, 50000), "big_pread": (_big_preads, 5000)}


def probe_times(repeat: int = 2) -> dict:
    """Per probe: the least (user, system) CPU seconds of ``repeat`` runs (least: other load adds)."""
    out = {}
    for name, (fn, n) in PROBES.items():
        runs = [_probe(fn, n) for _ in range(repeat)]
        out[name] = min(runs, key=sum)
    return out


def slowdowns(guest: dict, host: dict) -> dict:
    """Emulation slowdown per probe: guest CPU over host CPU (user + system)."""
    return {name: sum(guest[name]) / max(sum(host[name]), 1e-9) for name in PROBES if name in guest}


def native_estimate(monitor: dict, slow: dict, pick=min) -> float:
    """A monitor's CPU at the nominal rate, divided per component: its user time by the smaller
    of the Python and numpy slowdowns, its system time by the smaller of the two system-call
    slowdowns (the smaller factor makes the larger, so the safer, native figure; ``pick=max``
    gives the other end of the range)."""
    user = monitor["cpu_at_nominal_rate"] * (1 - monitor["system_share"])
    system = monitor["cpu_at_nominal_rate"] * monitor["system_share"]
    return user / pick(slow["python_loop"], slow["numpy_ops"]) + system / pick(slow["small_pread"], slow["big_pread"])


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.2)


def _measure_monitor(argv: list[str], out: Path, monitor_pid, warmup: float, window: float,
                     sample_us: int, aggr_us: int) -> dict:
    """Start ``argv`` (a damo record to ``out``), wait until it records, find the monitoring
    thread's pid, let it settle for ``warmup`` seconds, and measure its CPU over ``window``.

    Under emulation a monitor may not keep its sampling rate (each sample's work comes on top
    of its sleep), so the samples it actually took are counted too, from the aggregation
    period in its record: the CPU per sample, times the nominal rate, is its cost at the
    nominal rate."""
    from damo.formats import read_record

    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: out.exists() or proc.poll() is not None, 600)
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read()[-500:])
        pid = monitor_pid(proc)
        time.sleep(warmup)
        (user0, sys0), t0 = _cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        (user1, sys1), t1 = _cpu_seconds(pid), time.monotonic()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    record = read_record(out)
    # the aggregation period after the warm-up: the last snapshots, up to the window's length
    gaps = np.diff(record.end_ns.astype(np.int64))[-max(3, int(window * 1e6 / aggr_us)):]
    period_s = float(np.median(gaps)) / 1e9 if len(gaps) else float("nan")
    samples_per_s = (aggr_us / sample_us) / period_s
    cpu = (user1 - user0 + sys1 - sys0) / (t1 - t0)
    return {"cpu": cpu, "system_share": (sys1 - sys0) / max(user1 - user0 + sys1 - sys0, 1e-9),
            "samples_per_s": samples_per_s, "nominal_samples_per_s": 1e6 / sample_us,
            "cpu_at_nominal_rate": cpu / samples_per_s * 1e6 / sample_us,
            "mean_nr_regions": float(np.mean(np.diff(record.offsets))) if record.nr_snapshots else 0.0}


def guest(size: int, window: float, out: Path) -> None:
    """Inside the VM: the measurements, written to ``out`` as JSON."""
    result = {"python_loop_seconds": min(python_loop_seconds() for _ in range(2)), "probes": probe_times(),
              "rows": []}
    workload = subprocess.Popen([sys.executable, "-c", WORKLOAD, str(size)], stdout=subprocess.PIPE, text=True)
    try:
        assert workload.stdout.readline().strip() == "ready"
        kdamond_pid_file = Path("/sys/kernel/mm/damon/admin/kdamonds/0/pid")
        for nr in NR_REGIONS:
            common = ["-n", str(nr), "-m", str(nr), str(workload.pid)]
            intervals = {"sample_us": DEFAULTS.sample_us, "aggr_us": DEFAULTS.aggr_us}
            with tempfile.TemporaryDirectory() as tmp:
                p_out, k_out = Path(tmp) / "p.data", Path(tmp) / "k.data"
                page_idle = _measure_monitor(
                    [sys.executable, "-m", "damo", "record", "--ops", "page_idle", "-o", str(p_out), *common],
                    p_out, lambda proc: proc.pid, warmup=WARMUP_SECONDS, window=window, **intervals)
                kdamond = _measure_monitor(
                    [sys.executable, "-m", "damo", "record", "--damon_interface", "sysfs", "-o", str(k_out),
                     *common], k_out, lambda proc: int(kdamond_pid_file.read_text()), warmup=WARMUP_SECONDS,
                    window=window, **intervals)
            result["rows"].append({"nr_regions": nr, "page_idle": page_idle, "kdamond": kdamond})
            out.write_text(json.dumps(result))          # what is measured so far
    except Exception:                 # noqa: BLE001 - the host shows why the guest measured nothing
        result["error"] = traceback.format_exc()[-2000:]
    finally:
        workload.kill()
        workload.wait()
    out.write_text(json.dumps(result))


def shared_kernel() -> Path | None:
    named = os.environ.get("DAMO_OLDKERN_KERNEL")
    if named:
        return Path(named) if Path(named).is_file() else None
    for base in (REPO.parent, REPO.parent.parent):
        path = base / "shared" / "kernels" / KERNEL_NAME
        if path.is_file():
            return path
    return None


def run(quick: bool = False) -> dict:
    from damo import vm
    from damo.sources.vm import boot_and_run

    if quick:
        return {"not_measured": {"page_idle CPU vs kdamond": "--quick does not boot the VM (about 10 minutes)"}}
    kernel = shared_kernel()
    size, window = WORKLOAD_BYTES, WINDOW_SECONDS
    if kernel is None or vm.missing_prerequisites():
        why = "the shared kernel is absent" if kernel is None else "the VM prerequisites are missing"
        return {"not_measured": {"page_idle CPU vs kdamond": why}}
    host_loop = min(python_loop_seconds() for _ in range(3))
    host_probes = probe_times(3)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-page-idle-") as rwdir:
        out = Path(rwdir) / "result.json"
        script = guest_script(size, window, out)
        log = Path(rwdir) / "guest.log"
        run_vm = boot_and_run(str(kernel), Path(rwdir), f"{script} > {log} 2>&1", VM_LIMIT_SECONDS)
        if not out.exists():
            tail = log.read_text()[-800:] if log.exists() else "\n".join(run_vm.console_tail[-10:])
            return {"not_measured": {"page_idle CPU vs kdamond": f"the guest wrote no result: {tail}"}}
        guest_result = json.loads(out.read_text())
    return summarize(guest_result, host_loop, load, size, window, host_probes)


def guest_script(size: int, window: float, out: Path) -> str:
    """The shell line that runs the guest side."""
    return (f"cd {REPO} && PYTHONPATH={REPO} {sys.executable} -m bench.page_idle_cost --guest "
            f"{size} {window} {out}")


def summarize(guest_result: dict, host_loop: float, load: float, size: int, window: float,
              host_probes: dict | None = None) -> dict:
    """The bench's result from the guest's measurements and the host's probe times."""
    slowdown = guest_result["python_loop_seconds"] / host_loop
    slow = slowdowns(guest_result["probes"], host_probes) if host_probes and "probes" in guest_result else None

    def estimate(monitor: dict) -> float:
        return native_estimate(monitor, slow) if slow else monitor["cpu_at_nominal_rate"] / slowdown

    rows = []
    for row in guest_result["rows"]:
        page_idle, kdamond = row["page_idle"], row["kdamond"]
        rows.append({"nr_regions": row["nr_regions"], "page_idle": page_idle, "kdamond": kdamond,
                     "ratio": page_idle["cpu_at_nominal_rate"] / max(kdamond["cpu_at_nominal_rate"], 1e-9),
                     "page_idle_native_estimate": estimate(page_idle),
                     "kdamond_native_estimate": estimate(kdamond)})
        if slow:
            rows[-1].update({"page_idle_native_estimate_low": native_estimate(page_idle, slow, max),
                             "kdamond_native_estimate_low": native_estimate(kdamond, slow, max)})
    result = {"workload_bytes": size, "window_seconds": window, "emulation_slowdown": slowdown,
              "host_load_1min": load, "rows": rows, "goal_native_fraction": GOAL_NATIVE_FRACTION,
              "notes": ["CPU fractions are of one CPU. A monitor that cannot keep its sampling rate under "
                        "emulation is scaled to the nominal rate by its CPU per sample taken. The native "
                        "estimate divides the user and the system part of that by separate emulation "
                        "slowdowns (guest vs host CPU of the same probe): user time by the smaller of a "
                        "Python loop's and small numpy operations', system time by the smaller of 8-byte "
                        "and 4 KiB preads of /proc/self/pagemap (per-call cost vs kernel work); the low end of "
                        "the range divides by the larger ones. The user/system split is the guest's tick "
                        "accounting (/proc/PID/stat)."]}
    if slow:
        result["emulation_slowdowns"] = slow
        result["probes"] = {"guest": guest_result["probes"], "host": host_probes}
    if "error" in guest_result:
        result["guest_error"] = guest_result["error"]
    return result


def render(result: dict) -> str:
    if "rows" not in result:
        return "not measured: " + "; ".join(f"{k}: {v}" for k, v in result.get("not_measured", {}).items())
    slow = result.get("emulation_slowdowns")
    factors = (", ".join(f"{k} {v:.1f}x" for k, v in slow.items()) if slow
               else f"{result['emulation_slowdown']:.1f}x")
    lines = [f"Workload {result['workload_bytes'] >> 20} MiB (64 MiB of it written every pass), default "
             f"intervals (5 ms / 100 ms / 1 s), min = max regions; emulation slowdown "
             f"{factors}; host load {result['host_load_1min']:.1f} on 2 cores.", "",
             "| Regions | Monitor | CPU (VM) | system share | samples/s (of 200) | CPU at 200 samples/s (VM) "
             "| native estimate |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        for name in ("page_idle", "kdamond"):
            m = r[name]
            native = f"{r[name + '_native_estimate']:.2%}"
            if name + "_native_estimate_low" in r:
                native = f"{r[name + '_native_estimate_low']:.2%} - {native}"
            lines.append(f"| {r['nr_regions']} | {name} | {m['cpu']:.1%} | {m['system_share']:.0%} "
                         f"| {m['samples_per_s']:.0f} | {m['cpu_at_nominal_rate']:.1%} "
                         f"| {native} |")
        lines.append(f"| {r['nr_regions']} | page_idle / kdamond | | | | {r['ratio']:.1f}x | |")
    if "guest_error" in result:
        lines += ["", "The guest stopped early: " + result["guest_error"].strip().splitlines()[-1]]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--guest"]:
        guest(int(argv[1]), float(argv[2]), Path(argv[3]))
        return 0
    result = run(quick="--quick" in argv)
    print(json.dumps(result, indent=1))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
