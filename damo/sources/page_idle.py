"""The ``page_idle`` record source: our user-space DAMON engine on this machine's processes,
checking accesses through idle page tracking. For kernels without DAMON (or with it busy).

Flow: open the idle bitmap and kpageflags (root) -> launch the workload held right after its
exec (as the kernel source does) -> build the engine context on its pid -> release it -> run
the engine in real time (it sleeps a sampling interval between marking and reading the idle
bits), appending every aggregation to the record -> stop on timeout, workload exit, Ctrl-C or
SIGTERM, ending a workload of ours. Snapshot times are this machine's monotonic clock.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import functools
from typing import Sequence

import numpy as np

from damo.engine.core import PAGE_SIZE, Context, Target
from damo.engine.page_idle_ops import PageIdleOps
from damo.errors import DamoError
from damo.kernel.page_idle import DEFAULT_BITMAP, DEFAULT_PROC, PageIdle, open_pagemap, read_mappings
from damo.recording import RecordRequest, base_meta, finish, open_sink
from damo.sources.kernel import (STOP_FILE_ENV, WORKLOAD_TERM_SECONDS, HeldWorkload, process_alive,
                                 resolve_target, stop_process)

STOP_CHECK_SECONDS = 0.2


def page_idle_context(pids: Sequence[int], attrs, page_idle: PageIdle | None = None,
                      proc: Path = DEFAULT_PROC, seed: int | None = None) -> Context:
    """An engine context monitoring ``pids`` (one target each) through idle page tracking."""
    ops = PageIdleOps(page_idle or PageIdle(proc=proc), functools.partial(open_pagemap, proc=proc),
                      functools.partial(read_mappings, proc=proc))
    return Context(attrs, ops, [Target(pid) for pid in pids], rng=np.random.default_rng(seed),
                   min_region=PAGE_SIZE)


class PageIdleRecorder:
    """One page_idle record, from opening the bitmap to a complete file."""

    def __init__(self, request: RecordRequest, bitmap: Path = DEFAULT_BITMAP, proc: Path = DEFAULT_PROC):
        self.request = request
        self.bitmap = bitmap
        self.proc = proc
        self.workload: HeldWorkload | None = None
        self.stop_file = os.environ.get(STOP_FILE_ENV)

    def run(self) -> int:
        request = self.request
        if request.ops not in (None, "page_idle", "vaddr"):
            raise DamoError(f"--ops page_idle monitors virtual address spaces; --ops {request.ops} "
                            f"needs the kernel's DAMON")
        if request.regions:
            raise DamoError("--ops page_idle monitors a process's mappings: -r/--regions is not supported")
        target = resolve_target(RecordRequest(target=request.target, attrs=request.attrs, shell=request.shell))
        if target.more_pids:
            raise DamoError("--ops page_idle records one process; several need the kernel's DAMON")
        if request.snapshot is not None:
            raise DamoError("--snapshot reads a kdamond's tried regions, which --ops page_idle has not")
        page_idle = PageIdle(self.bitmap, self.proc)
        sink = None
        interrupted = False
        ctx = None
        try:
            if target.argv:
                self.workload = HeldWorkload(target.argv)
                pid = self.workload.pid
            else:
                pid = target.pid
            ctx = page_idle_context([pid], request.attrs, page_idle, self.proc, seed=request.seed)
            ctx.ops.pagemap(pid)           # refuse a pid we cannot read before creating the record
            ctx.start()
            if self.workload is not None:
                self.workload.release()
            meta = base_meta(request, "page_idle", target.description)
            meta.kernel_release = os.uname().release
            meta.start_time = time.time()
            meta.extra.update({"ops": "page_idle", "collector": "page_idle"})
            sink = open_sink(request, meta)
            print(f"recording {target.description} with damo's engine over idle page tracking; "
                  f"press Ctrl+C to stop", file=sys.stderr)
            try:
                self._collect(ctx, sink, pid)
            except KeyboardInterrupt:
                interrupted = True
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if ctx is not None:
                ctx.ops.close()
            page_idle.close()
            status = self._stop_workload()
            if sink is not None:
                finish(sink, request, interrupted=interrupted)
        if status is not None:
            print(f"workload exited with status {status}", file=sys.stderr)
        return 130 if interrupted else 0

    def _collect(self, ctx, sink, pid: int) -> None:
        started = time.monotonic()
        deadline = started + self.request.timeout if self.request.timeout else None
        window_start_ns = time.monotonic_ns()
        last_check = started
        while True:
            aggregation = ctx.step()
            if aggregation is not None:
                now_ns = time.monotonic_ns()
                for snap in aggregation.targets:
                    sink.append(snap.target_id, window_start_ns, now_ns, snap.start, snap.end,
                                snap.nr_accesses, snap.age)
                window_start_ns = now_ns
            now = time.monotonic()
            if now - last_check < STOP_CHECK_SECONDS:
                continue
            last_check = now
            if self.stop_file and os.path.exists(self.stop_file):
                raise KeyboardInterrupt      # `damo record --vm` was interrupted on the host
            if deadline is not None and now >= deadline:
                return
            if self.workload is not None and self.workload.poll() is not None:
                return
            if self.workload is None and not process_alive(pid):
                return

    def _stop_workload(self) -> int | None:
        if self.workload is None:
            return None
        return stop_process(self.workload, WORKLOAD_TERM_SECONDS)


def record(request: RecordRequest) -> int:
    """``damo record --ops page_idle``: the user-space engine over idle page tracking."""
    return PageIdleRecorder(request).run()
