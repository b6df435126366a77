"""The processes of a kernel record as DAMON targets: who is watched, under which record target id.

DAMON numbers a context's targets by their position in its list (the ``target_id`` of the
``damon_aggregated`` trace), and the list changes while recording: children are appended as
they are born, exited tasks are taken out and the ones after them move up. A record needs ids
that never change, so this table gives every process its own record target id, in order of
discovery, and keeps the layout of each committed list with the time it took effect: a
snapshot's kernel index is read through the layout in force at the snapshot's time.

The kernel applies a ``commit`` at its next aggregation, before that aggregation is traced,
and the write returns once it is applied; so a snapshot that ends after the write began has
the new layout, and one that ended before it the old.
"""
from __future__ import annotations

import bisect
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from damo.kernel.tasks import PROC, children, command_line, descendants, process_alive

CMDLINE_MAX = 256            # characters of a command line kept in the record's metadata
CHILD_POLL_SECONDS = 0.5     # a child becomes a target within about a second of its birth


@dataclass
class TaskTargets:
    """Record target ids of processes, the kernel's current target list, and its history."""

    follow_children: bool = True
    proc: Path = PROC
    # damo itself when it is the workload's child subreaper: the tasks orphaned in the workload's
    # tree come to it, and are found (and reaped) as its children. Its other child, the workload
    # (``own_child``), is reaped by its launcher. Its children that are not orphans of the
    # workload's tree (``not_adopted``: those it had before the workload, the TLB-flush ticker's)
    # are no targets: a ticker taken for one would keep the record going for ever.
    adopter: int | None = None
    own_child: int | None = None
    not_adopted: set[int] = field(default_factory=set)
    slots: list[int] = field(default_factory=list)       # kernel target index -> record target id
    pids: list[int] = field(default_factory=list)        # record target id -> pid
    info: list[dict] = field(default_factory=list)       # record target id -> metadata
    exited_ns: dict[int, int] = field(default_factory=dict)   # record target id -> when seen gone
    fresh: list[int] = field(default_factory=list)       # ids found at the last commit (cmdline may change)
    # Set once a failed commit ended the kdamond (Linux before 6.14): a new task is proposed only
    # once two polls in a row saw it, so short-lived children (a shell loop's) never are.
    settle: bool = False
    _sighted: set[int] = field(default_factory=set)
    _last_poll: float = 0.0                              # time.monotonic() of the last poll_due
    _epoch_ns: list[int] = field(default_factory=list)   # start of each layout (sorted)
    _epoch_slots: list[list[int]] = field(default_factory=list)

    def poll_due(self, workload_gone: bool) -> bool:
        """Whether to look for new and exited tasks now: every CHILD_POLL_SECONDS, and at once when
        the workload has just exited (to catch the children it left)."""
        now = time.monotonic()
        if now - self._last_poll < CHILD_POLL_SECONDS and not workload_gone:
            return False
        self._last_poll = now
        return True

    def add(self, pid: int, parent: int | None = None) -> int:
        """A new record target id for ``pid``."""
        tid = len(self.pids)
        self.pids.append(pid)
        item = {"target_id": tid, "pid": pid, "cmdline": command_line(pid, self.proc)[:CMDLINE_MAX]}
        if parent is not None:
            item["parent_target_id"] = parent
        self.info.append(item)
        return tid

    def start(self, pids: list[int], time_ns: int) -> None:
        """The targets the kdamond starts with, in kernel order."""
        self.slots = [self.add(pid) for pid in pids]
        self._epoch_ns, self._epoch_slots = [time_ns], [list(self.slots)]

    def live_pids(self) -> list[int]:
        return [self.pids[tid] for tid in self.slots]

    def proposal(self, time_ns: int) -> tuple[list[int], list[int]] | None:
        """The target list to commit now, if it should change: ``(pids, record ids)`` where a new
        child's record id is -1-(its parent's), else None. Exited tasks are noted as exited."""
        alive = [tid for tid in self.slots if process_alive(self.pids[tid], self.proc)]
        for tid in self.slots:
            if tid not in alive:
                self.exited_ns.setdefault(tid, time_ns)
                self._reap(self.pids[tid])
        new_pids: list[int] = []
        roots = [self.pids[t] for t in alive]
        if self.follow_children:
            known = set(self.pids)
            adopted = [pid for pid in self._adopted_orphans() if pid not in known and process_alive(pid, self.proc)]
            found = descendants(roots + adopted, self.proc, known) if roots or adopted else []
            new_pids = adopted + [pid for pid in found if pid not in known and pid not in adopted]
            if self.settle:
                seen, self._sighted = self._sighted, set(new_pids)
                new_pids = [pid for pid in new_pids if pid in seen]
        if alive == self.slots and not new_pids:
            return None
        return [self.pids[t] for t in alive] + new_pids, alive + [-1] * len(new_pids)

    def refresh_command_lines(self) -> bool:
        """Read the command lines of the targets found at the last commit again (a child found
        between its fork and its exec showed its parent's); True if one changed."""
        changed = False
        fresh, self.fresh = self.fresh, []
        for tid in fresh:
            line = command_line(self.pids[tid], self.proc, comm=False)[:CMDLINE_MAX]
            if line and line != self.info[tid]["cmdline"]:
                self.info[tid]["cmdline"] = line
                changed = True
        return changed

    def _adopted_orphans(self) -> list[int]:
        """The adopter's children that came to it from the workload's tree."""
        if self.adopter is None:
            return []
        skip = self.not_adopted | {self.own_child}
        return [pid for pid in children(self.adopter, self.proc) if pid not in skip]

    def _reap(self, pid: int) -> None:
        """An exited orphan of the workload's tree, adopted by damo, must not stay a zombie."""
        if self.adopter is None or pid == self.own_child:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def committed(self, pids: list[int], ids: list[int], time_ns: int) -> None:
        """The kernel took ``pids`` (from ``proposal``) at ``time_ns``: give new tasks their ids."""
        by_pid = {self.pids[t]: t for t in self.slots}
        slots = []
        for pid, tid in zip(pids, ids):
            if tid < 0:
                parent = self._parent_target(pid, by_pid)
                tid = self.add(pid, parent)
                by_pid[pid] = tid
                self.fresh.append(tid)
            slots.append(tid)
        self.slots = slots
        self._epoch_ns.append(time_ns)
        self._epoch_slots.append(list(slots))

    def _parent_target(self, pid: int, by_pid: dict[int, int]) -> int | None:
        try:
            stat = (self.proc / str(pid) / "stat").read_text()
            return by_pid.get(int(stat[stat.rfind(")") + 2:].split()[1]))
        except (OSError, ValueError, IndexError):
            return None

    def target_at(self, kernel_index: int, time_ns: int) -> int | None:
        """The record target id of kernel target ``kernel_index`` in a snapshot ending at
        ``time_ns``; None for a target that had exited by then (its stale regions) or is unknown."""
        epoch = max(0, bisect.bisect_left(self._epoch_ns, time_ns) - 1)
        slots = self._epoch_slots[epoch] if self._epoch_slots else self.slots
        if not 0 <= kernel_index < len(slots):
            return None
        tid = slots[kernel_index]
        gone = self.exited_ns.get(tid)
        return None if gone is not None and time_ns > gone else tid
