"""The ``page_idle`` record source: our user-space DAMON engine on this machine's processes,
checking accesses through idle page tracking. For kernels without DAMON (or with it busy).

Flow: open the idle bitmap and kpageflags (root) -> launch the workload held right after its
exec (as the kernel source does) -> build the engine context on its pid -> release it -> run
the engine in real time (it sleeps a sampling interval between marking and reading the idle
bits), appending every aggregation to the record -> stop on timeout, workload exit, Ctrl-C or
SIGTERM, ending a workload of ours. Snapshot times are this machine's monotonic clock.

Child tasks are followed as the kernel source follows them (damo.sources.task_targets): every
CHILD_POLL_SECONDS, right after an aggregation (where the kernel applies a ``commit``), new
descendants become engine targets with their own record target ids and start from their
mappings' three regions split into ``min_nr_regions``; exited ones are taken out. A snapshot of
a target whose process has exited is not written (freed PFNs would read as accessed).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import functools
from typing import Sequence

import numpy as np

from damo.engine.core import PAGE_SIZE, Context, Target, region_sz_limit
from damo.engine.page_idle_ops import PageIdleOps
from damo.errors import DamoError
from damo.kernel.page_idle import DEFAULT_BITMAP, DEFAULT_PROC, PageIdle, open_pagemap, read_mappings
from damo.kernel.tasks import PROC, children
from damo.model import TARGETS_KEY
from damo.recording import RecordRequest, base_meta, finish, open_sink
from damo.sources.proc_sampler import SideSampler
from damo.sources.kernel import (META_RESERVE, STOP_FILE_ENV, WORKLOAD_TERM_SECONDS,
                                 HeldWorkload, process_alive, resolve_target, set_child_subreaper,
                                 stop_process)
from damo.sources.task_targets import TaskTargets

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

    def __init__(self, request: RecordRequest, bitmap: Path = DEFAULT_BITMAP, proc: Path = DEFAULT_PROC,
                 tasks_proc: Path = PROC):
        self.request = request
        self.bitmap = bitmap
        self.proc = proc                  # pagemaps, maps and kpageflags
        self.tasks_proc = tasks_proc      # liveness, children and command lines
        self.workload: HeldWorkload | None = None
        self.stop_file = os.environ.get(STOP_FILE_ENV)
        self.tasks = TaskTargets(follow_children=request.child_tasks, proc=tasks_proc)
        self.sink = None
        self.meta = None

    def run(self) -> int:
        request = self.request
        if request.ops not in (None, "page_idle", "vaddr"):
            raise DamoError(f"--ops page_idle monitors virtual address spaces; --ops {request.ops} "
                            f"needs the kernel's DAMON")
        if request.regions:
            raise DamoError("--ops page_idle monitors a process's mappings: -r/--regions is not supported")
        target = resolve_target(RecordRequest(target=request.target, attrs=request.attrs, shell=request.shell))
        if request.snapshot is not None:
            raise DamoError("--snapshot reads a kdamond's tried regions, which --ops page_idle has not")
        page_idle = PageIdle(self.bitmap, self.proc)
        follow = self.tasks.follow_children
        sink = None
        interrupted = False
        ctx = None
        subreaper = False
        try:
            if target.argv:
                if follow:
                    # As the kernel source: the tasks that the workload's tree orphans come to us.
                    subreaper = set_child_subreaper(True)
                    self.tasks.not_adopted = set(children(os.getpid()))
                self.workload = HeldWorkload(target.argv)
                pid = self.workload.pid
                if subreaper:
                    self.tasks.adopter, self.tasks.own_child = os.getpid(), pid
            else:
                pid = target.pid
            pids = [pid] + list(target.more_pids or [])
            ctx = page_idle_context(pids, request.attrs, page_idle, self.proc, seed=request.seed)
            for each in pids:
                ctx.ops.pagemap(each)      # refuse a pid we cannot read before creating the record
            self.tasks.start(pids, time.monotonic_ns())
            for t, tid in zip(ctx.targets, self.tasks.slots):
                t.target_id = tid
            ctx.start()
            if self.workload is not None:
                self.workload.release()
            meta = base_meta(request, "page_idle", target.description)
            meta.kernel_release = os.uname().release
            meta.start_time = time.time()
            meta.extra.update({"ops": "page_idle", "collector": "page_idle", TARGETS_KEY: self.tasks.info,
                               "child_tasks": follow})
            self.meta = meta
            sink = self.sink = open_sink(request, meta, meta_reserve=META_RESERVE if follow else 0)
            print(f"recording {target.description} with damo's engine over idle page tracking; "
                  f"press Ctrl+C to stop", file=sys.stderr)
            sampler = SideSampler(sink, request.do_record, self.tasks.live_pids)
            try:
                self._collect(ctx, sink, pid, sampler)
            except KeyboardInterrupt:
                interrupted = True
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if ctx is not None:
                ctx.ops.close()
            page_idle.close()
            status = self._stop_workload()
            if subreaper:
                set_child_subreaper(False)
            if sink is not None:
                if follow:
                    sink.update_meta(self.meta)
                finish(sink, request, interrupted=interrupted)
        if status is not None:
            print(f"workload exited with status {status}", file=sys.stderr)
        return 130 if interrupted else 0

    def _collect(self, ctx, sink, pid: int, sampler: SideSampler) -> None:
        started = time.monotonic()
        deadline = started + self.request.timeout if self.request.timeout else None
        window_start_ns = time.monotonic_ns()
        last_check = started
        while True:
            aggregation = ctx.step()
            if aggregation is not None:
                now_ns = time.monotonic_ns()
                several = len(ctx.targets) > 1
                for snap in aggregation.targets:
                    if several and (not len(snap.start) or
                                    not process_alive(self.tasks.pids[snap.target_id], self.tasks_proc)):
                        continue            # no regions yet, or exited during the window (PFNs reused)
                    sink.append(snap.target_id, window_start_ns, now_ns, snap.start, snap.end,
                                snap.nr_accesses, snap.age)
                window_start_ns = now_ns
                self._follow_children(ctx)
            now = time.monotonic()
            if now - last_check < STOP_CHECK_SECONDS:
                continue
            sampler.maybe_sample()
            last_check = now
            if self.stop_file and os.path.exists(self.stop_file):
                raise KeyboardInterrupt      # `damo record --vm` was interrupted on the host
            if deadline is not None and now >= deadline:
                return
            if not ctx.targets:
                return                      # every task we followed has exited
            if self.workload is not None and self.workload.poll() is not None and not self._children_alive():
                return
            if self.workload is None and not any(process_alive(p, self.tasks_proc) for p in self.tasks.live_pids()):
                return

    def _children_alive(self) -> bool:
        """Does a task that our workload forked still run (so the record goes on without it)?"""
        own = self.workload.pid if self.workload is not None else None
        return self.tasks.follow_children and any(
            process_alive(p, self.tasks_proc) for p in self.tasks.live_pids() if p != own)

    def _follow_children(self, ctx: Context) -> None:
        """Every CHILD_POLL_SECONDS (at once when our workload has just exited, to catch the
        children it left), after an aggregation: new descendants become targets, exited ones
        are taken out, as the kernel source commits them to its kdamond."""
        workload_gone = self.workload is not None and self.workload.returncode is None and \
            self.workload.poll() is not None
        if not self.tasks.poll_due(workload_gone):
            return
        if self.tasks.refresh_command_lines():
            self.sink.update_meta(self.meta)
        change = self.tasks.proposal(time.monotonic_ns())
        if change is None:
            return
        pids, ids = [], []
        for pid, tid in zip(*change):
            if tid < 0:
                try:
                    ctx.ops.pagemap(pid)    # a child we cannot read (gone already) is no target
                except DamoError:
                    continue
            pids.append(pid)
            ids.append(tid)
        self.tasks.committed(pids, ids, time.monotonic_ns())
        known = {t.target_id: t for t in ctx.targets}
        ctx.targets = [known.pop(tid, None) or Target(pid, target_id=tid)
                       for pid, tid in zip(pids, self.tasks.slots)]
        for gone in known.values():
            ctx.ops.forget_target(gone.handle)
        ctx.ops.init(ctx)                   # the new ones: three regions, split in min_nr_regions
        ctx.sz_limit = region_sz_limit(ctx.targets, ctx.attrs.min_nr_regions, ctx.min_region)
        self.sink.update_meta(self.meta)

    def _stop_workload(self) -> int | None:
        if self.workload is None:
            return None
        return stop_process(self.workload, WORKLOAD_TERM_SECONDS)


def record(request: RecordRequest) -> int:
    """``damo record --ops page_idle``: the user-space engine over idle page tracking."""
    return PageIdleRecorder(request).run()
