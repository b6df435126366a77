"""The TLB-flush ticker (damo.kernel.tlb_ticker): its processes, and when a kernel record runs it.

Whether it makes DAMON count under emulation is measured inside the VM
(tests/kernel/test_record_kernel.py); here: one pinned process per CPU, nothing of the record's
open files inherited, every process gone after stop, and the order that keeps the guest alive:
started after the trace event is enabled, stopped before it is disabled.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from damo.formats import read_record
from damo.kernel.sysfs import DamonSysfs
from damo.kernel.tlb_ticker import TICKER_ENV, Ticker
from damo.model import MonitoringAttrs
from damo.recording import RecordRequest
from damo.sources import kernel as kernel_source
from fake_damon import FakeDamon


def _wait_for_affinity(pid: int, cpu: int, timeout: float = 20.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        affinity = os.sched_getaffinity(pid)
        if affinity == {cpu} or time.monotonic() > deadline:
            return affinity
        time.sleep(0.02)


def test_one_pinned_ticker_per_cpu_inherits_no_file_and_is_gone_after_stop(tmp_path):
    held = os.open(tmp_path / "held", os.O_CREAT | os.O_RDWR, 0o600)   # like the record's trace pipe
    os.set_inheritable(held, True)
    ticker = Ticker()
    try:
        ticker.start()
        cpus = sorted(os.sched_getaffinity(0))
        assert len(ticker.procs) == len(cpus)
        for proc, cpu in zip(ticker.procs, cpus):
            assert _wait_for_affinity(proc.pid, cpu) == {cpu}
            fds = {int(fd) for fd in os.listdir(f"/proc/{proc.pid}/fd")}
            targets = {os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in fds}
            assert str(tmp_path / "held") not in targets, targets
            assert {0, 1, 2} <= fds and all(t == "/dev/null" for t in
                                            (os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in (0, 1, 2)))
        assert ticker.running
    finally:
        ticker.stop()
        os.close(held)
    assert not ticker.running and ticker.procs == []
    for pid in [p for p in Path("/proc").glob("[0-9]*")]:
        try:
            assert b"sched_setaffinity" not in (pid / "cmdline").read_bytes() or int(pid.name) == os.getpid()
        except OSError:
            pass


def test_a_disabled_ticker_starts_nothing():
    ticker = Ticker(enabled=False)
    ticker.start()
    assert ticker.procs == [] and not ticker.running
    ticker.stop()


def test_the_record_runs_the_ticker_only_while_its_trace_event_is_enabled(tmp_path, monkeypatch):
    """The kernel record's order: enable the event, start the ticker, ..., stop it, disable the event."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv(TICKER_ENV, "1")
    events: list[str] = []
    fake = FakeDamon(tmp_path)
    real_write = fake.write

    def write(path, value):          # the launched workload's pid is alive for the fake kernel
        if path.name == "pid_target":
            fake.alive_pids.add(int(value))
        real_write(path, value)

    class FakeInstance:
        def __init__(self, root, name, **options):
            self.enabled = False

        def open(self):
            events.append("event enabled")
            self.enabled = True

        def read(self, timeout):
            time.sleep(min(timeout, 0.05))
            return b""

        def close(self):
            if self.enabled:
                events.append("event disabled")
            self.enabled = False

    real_start, real_stop = Ticker.start, Ticker.stop

    def start(self):
        real_start(self)
        events.append(f"ticker started ({len(self.procs)} processes)")

    def stop(self):
        was_running = self.running
        real_stop(self)
        if was_running:
            events.append("ticker stopped")

    monkeypatch.setattr(kernel_source, "TraceInstance", FakeInstance)
    monkeypatch.setattr(kernel_source, "has_damon_event", lambda root: True)
    monkeypatch.setattr(Ticker, "start", start)
    monkeypatch.setattr(Ticker, "stop", stop)
    out = tmp_path / "k.data"
    request = RecordRequest(target=["sleep 1"], attrs=MonitoringAttrs(), out=str(out))
    rc = kernel_source.KernelRecorder(request, sysfs=DamonSysfs(fake.root, writer=write),
                                      tracefs_root=tmp_path).run()
    assert rc == 0
    cpus = len(os.sched_getaffinity(0))
    assert events == ["event enabled", f"ticker started ({cpus} processes)", "ticker stopped", "event disabled"]
    assert read_record(out).meta.extra["collector"] == "tracefs"
