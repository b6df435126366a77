"""A TLB-flush ticker for records inside a software-emulated guest (``damo record --vm``).

Why: under QEMU's software emulation (TCG) a process that keeps its CPU looks idle to DAMON
(damo.kernel.emulation says why). A switch between two processes' address spaces makes the guest
write CR3, and QEMU then drops its software TLB, so the next access to each page sets its accessed
bit again. The ticker is one process pinned to each CPU that wakes every millisecond: each wake
switches that CPU to the ticker's address space and back, for any workload, flushing or not.

When: the ticker makes ``__schedule`` run constantly on every CPU. Enabling or disabling a trace
event patches a static branch inside ``__schedule`` (the sched_switch probe that records command
names), through int3 text patching; under TCG that patching raced with the ticker's schedules and
crashed the guest (``Oops: int3`` in ``__schedule``, ``do_sync_core`` on the stack). So a
``TickerWindow`` starts the ticker only once our trace event is enabled, and stops it (the processes
killed and reaped) before the event is disabled: no text is patched while it runs. That order
makes the crash about 20 times rarer, not impossible: toggling an event under TCG can panic the
guest with no ticker at all (bench/vm_ticker_stress.py). The cure is the guest's boot line
(damo.sources.vm.GUEST_CMDLINE), which keeps the sched tracepoints on so that no toggle patches
``__schedule``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

TICKER_ENV = "DAMO_TLB_FLUSH_TICKER"     # "1": `damo record --vm` asks the guest's record for the ticker
TICK_SECONDS = 0.001

# The ticker process: no damo import (a fast start), pinned to one CPU, sleeping TICK_SECONDS at a
# time until killed. Its stdin, stdout and stderr are /dev/null and every other file descriptor of
# the record (the trace pipe among them) is closed by the exec (close_fds).
_TICKER_CODE = """\
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
tick = float(sys.argv[2])
while True:
    time.sleep(tick)
"""


def requested(environ: dict | None = None) -> bool:
    """Did ``damo record --vm --vm-tlb-flush`` ask this (guest) record for the ticker?"""
    return (environ if environ is not None else os.environ).get(TICKER_ENV) == "1"


class Ticker:
    """One sleeping process per CPU this process may run on; ``stop`` kills and reaps them all.

    A ticker that is not ``enabled`` does nothing, so that the record's code path is the same.
    """

    def __init__(self, enabled: bool = True, tick_seconds: float = TICK_SECONDS):
        self.enabled = enabled
        self.tick_seconds = tick_seconds
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        if not self.enabled:
            return
        for cpu in sorted(os.sched_getaffinity(0)):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _TICKER_CODE, str(cpu), repr(self.tick_seconds)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                close_fds=True, start_new_session=True))

    def stop(self) -> None:
        """Kill every ticker process and wait until it is gone (no ticker schedules after this)."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            proc.wait()
        self.procs = []

    def pids(self) -> list[int]:
        """The ticker processes' pids (a record that follows its workload's children skips them)."""
        return [proc.pid for proc in self.procs]

    @property
    def running(self) -> bool:
        return any(proc.poll() is None for proc in self.procs)
