"""Record what kdamonds that are already running see, without touching them: ``damo record ongoing``.

Flow: read the chosen kdamonds' setup from sysfs (read-only) -> find tracefs, or mount it in a
mount namespace of this process's own (``/`` made private first, so the machine never sees
it) -> a trace instance of our own with ``damon_aggregated`` enabled and filtered, in the
instance's own ``filter`` file, to the kdamonds' pids -> stream snapshots into the record
writer until the timeout, Ctrl-C or the kdamond stops -> remove the instance on every exit path.

Nothing is ever written under /sys/kernel/mm/damon: no ``state``, no ``commit``, no
``update_schemes_tried_regions``. The only writes are into our own trace instance.
DAMON_STAT's kdamond (``--kdamond stat``) is not in the sysfs tree: it is found by its
``kdamond.N`` thread, and its setup comes from its module parameters.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from damo.errors import DamoError
from damo.kernel import status as status_mod
from damo.kernel.sysfs import DamonSysfs
from damo.kernel.tracefs import (AggregatedParser, TraceInstance, find_tracefs, has_damon_event,
                                 mount_private_tracefs, tracefs_supported)
from damo.model import RecordMeta

POLL_SECONDS = 0.2
STATE_CHECK_SECONDS = 0.5
STAT_SELECTOR = "stat"
STILL_WORKS = "damo report damon still works"


@dataclass
class FollowedKdamond:
    """A running kdamond that we record: where it is in sysfs (None for a module's) and its setup."""

    name: str                      # "kdamond 0" or "DAMON_STAT"
    index: int | None
    pid: int
    setup: dict                    # status.kdamond_status() form
    target_ids: dict[int, int] = field(default_factory=dict)    # trace target_id -> record target id


def _running_message(status: dict) -> str:
    running = [str(k["index"]) for k in status["kdamonds"] if k["state"] == "on"]
    stat = status["damon_stat"]
    parts = [f"running kdamonds: {', '.join(running) if running else 'none'}"]
    if stat is not None and stat["enabled"]:
        parts.append(f"DAMON_STAT is on (--kdamond {STAT_SELECTOR})")
    return "; ".join(parts)


def _damon_stat_kdamond(status: dict) -> FollowedKdamond:
    stat = status["damon_stat"]
    if stat is None or not stat["enabled"]:
        raise DamoError(f"--kdamond {STAT_SELECTOR}: DAMON_STAT is "
                        f"{'not in this kernel' if stat is None else 'off'} ({_running_message(status)})")
    sysfs_pids = {k["pid"] for k in status["kdamonds"] if k["pid"]}
    pids = status_mod.module_kdamond_pids(sysfs_pids)
    if len(pids) != 1:
        raise DamoError(f"--kdamond {STAT_SELECTOR}: cannot tell DAMON_STAT's kdamond thread apart "
                        f"(kdamond threads outside sysfs: {pids or 'none'}); use --kdamond N")
    aggr_us = stat["aggr_interval_us"]
    ctx = {"ops": "paddr", "addr_unit": 1, "intervals": {"sample_us": None, "aggr_us": aggr_us, "update_us": None},
           "intervals_goal": None, "nr_regions": {"min": None, "max": None}, "targets": [], "schemes": []}
    setup = {"index": None, "state": "on", "pid": pids[0], "refresh_ms": 0, "contexts": [ctx],
             "module": "damon_stat", "parameters": stat["parameters"]}
    return FollowedKdamond("DAMON_STAT", None, pids[0], setup)


def choose_kdamonds(status: dict, selectors: list[str]) -> list[FollowedKdamond]:
    """The kdamonds to follow: those named by ``--kdamond`` (an index or 'stat'), else every running one."""
    by_index = {k["index"]: k for k in status["kdamonds"]}
    if not selectors:
        running = [str(k["index"]) for k in status["kdamonds"] if k["state"] == "on"]
        if running:
            selectors = running
        elif status["damon_stat"] is not None and status["damon_stat"]["enabled"]:
            selectors = [STAT_SELECTOR]
        else:
            raise DamoError(f"no kdamond is running, so there is nothing ongoing to record "
                            f"({_running_message(status)}); start one with damo record TARGET")
    chosen: list[FollowedKdamond] = []
    for selector in dict.fromkeys(selectors):
        if selector == STAT_SELECTOR:
            chosen.append(_damon_stat_kdamond(status))
            continue
        if not selector.isdigit():
            raise DamoError(f"--kdamond {selector}: expected a kdamond index or '{STAT_SELECTOR}'")
        kdamond = by_index.get(int(selector))
        if kdamond is None:
            have = ", ".join(str(i) for i in by_index) or "none"
            raise DamoError(f"--kdamond {selector}: no such kdamond (this machine has: {have}; "
                            f"{_running_message(status)}; see damo report damon)")
        if kdamond["state"] != "on" or kdamond["pid"] is None:
            raise DamoError(f"--kdamond {selector}: kdamond {selector} is not running (state "
                            f"{kdamond['state']}); {_running_message(status)}")
        chosen.append(FollowedKdamond(f"kdamond {selector}", int(selector), kdamond["pid"], kdamond))
    next_id = 0
    for followed in chosen:
        nr_targets = sum(len(ctx["targets"]) for ctx in followed.setup["contexts"]) or 1
        for tid in range(nr_targets):
            followed.target_ids[tid] = next_id if len(chosen) > 1 else tid
            next_id += 1
    return chosen


def record_meta(followed: list[FollowedKdamond], tool_version: str) -> RecordMeta:
    """The record's metadata: the first context's setup in the usual fields, every kdamond's in extra."""
    ctx = followed[0].setup["contexts"][0] if followed[0].setup["contexts"] else None
    intervals = ctx["intervals"] if ctx else {}
    nr_regions = ctx["nr_regions"] if ctx else {}
    kdamonds = []
    for f in followed:
        setup = {**f.setup, "contexts": [{**c, "schemes": [{k: v for k, v in s.items() if k != "tried_regions"}
                                                            for s in c["schemes"]]}
                                         for c in f.setup["contexts"]]}
        kdamonds.append({"name": f.name, "pid": f.pid, "setup": setup,
                         "record_target_ids": {str(k): v for k, v in f.target_ids.items()}})
    return RecordMeta(target_kind=ctx["ops"] if ctx else "unknown",
                      target="ongoing " + ", ".join(f"{f.name} (pid {f.pid})" for f in followed),
                      sample_us=intervals.get("sample_us"), aggr_us=intervals.get("aggr_us"),
                      update_us=intervals.get("update_us"), min_nr_regions=nr_regions.get("min"),
                      max_nr_regions=nr_regions.get("max"), start_time=time.time(),
                      kernel_release=os.uname().release, tool_version=tool_version,
                      extra={"collector": "tracefs", "ongoing": True, "kdamonds": kdamonds})


def preflight(is_root: bool | None = None, filesystems: str = "/proc/filesystems") -> None:
    """What must hold before anything is read or mounted."""
    if not (os.geteuid() == 0 if is_root is None else is_root):
        raise DamoError(f"record ongoing needs root privileges (tracefs, and DAMON's sysfs files are "
                        f"root's); run damo as root. {STILL_WORKS} where sysfs permits")
    if not tracefs_supported(filesystems):
        raise DamoError(f"this kernel has no tracefs ({filesystems} does not list it), so DAMON's snapshots "
                        f"cannot be followed; {STILL_WORKS}")


def open_tracefs(tracefs_root: Path | None) -> Path:
    """The tracefs to use: the given or mounted one, else a private mount of our own."""
    root = tracefs_root if tracefs_root is not None else find_tracefs()
    if root is None:
        root = mount_private_tracefs()
    if not has_damon_event(root):
        raise DamoError(f"this kernel has no damon:damon_aggregated tracepoint ({root}/events/damon/"
                        f"damon_aggregated is missing), so snapshots of a running kdamond cannot be "
                        f"followed; {STILL_WORKS}")
    return root


INSTANCE_PREFIX = "damo-ongoing-"


def remove_stale_instances(root: Path) -> list[str]:
    """Remove the trace instances of ``record ongoing`` runs that were killed (SIGKILL leaves no
    chance to clean up): those whose pid is gone. Returns their names."""
    removed = []
    for path in sorted((root / "instances").glob(INSTANCE_PREFIX + "*")):
        pid = path.name[len(INSTANCE_PREFIX):]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            TraceInstance(root, path.name).close()
            if not path.exists():
                removed.append(path.name)
    return removed


class OngoingRecorder:
    """One ``record ongoing``, from choosing the kdamonds to a complete file.

    ``open_sink`` and ``finish`` come from the recording core (the caller), so this source does
    not import the command line.
    """

    def __init__(self, selectors: list[str], timeout: float | None, open_sink, finish,
                 sysfs: DamonSysfs | None = None, tracefs_root: Path | None = None,
                 modules_dir: Path = status_mod.MODULES_DIR, tool_version: str = ""):
        self.selectors = selectors
        self.timeout = timeout
        self.open_sink = open_sink
        self.finish = finish
        self.sysfs = sysfs or DamonSysfs()
        self.tracefs_root = tracefs_root
        self.modules_dir = modules_dir
        self.tool_version = tool_version
        self.parser = AggregatedParser()
        self.sink = None
        self.followed: list[FollowedKdamond] = []
        self._last_end: dict[int, int] = {}
        self.stop_reason = ""

    def run(self) -> int:
        status = status_mod.read_status(self.sysfs, self.modules_dir)
        self.followed = choose_kdamonds(status, self.selectors)
        root = open_tracefs(self.tracefs_root)
        for name in remove_stale_instances(root):
            print(f"removed the trace instance {name} of a record ongoing that was killed", file=sys.stderr)
        pids = " || ".join(f"common_pid == {f.pid}" for f in self.followed)
        # CLOCK_MONOTONIC stamps, as damo record's (which follows child tasks on it): the two
        # records of one kdamond then line up (the default "local" clock drifts from it by tens
        # of ms under emulation), and the stamps agree across CPUs.
        instance = TraceInstance(root, f"{INSTANCE_PREFIX}{os.getpid()}", event_filter=pids, clock="mono")
        interrupted = False
        try:
            instance.open()
            self._check_still_running()          # it may have stopped while we set up
            self.sink = self.open_sink(record_meta(self.followed, self.tool_version))
            names = ", ".join(f"{f.name} (pid {f.pid})" for f in self.followed)
            print(f"recording the snapshots of {names}; press Ctrl+C to stop", file=sys.stderr)
            try:
                self._collect(instance)
            except KeyboardInterrupt:
                interrupted = True
            instance.disable()                   # so that the last drain ends
            self._drain(instance, final=True)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            instance.close()
            if self.sink is not None:
                self.finish(self.sink, interrupted=interrupted)
        if self.stop_reason:
            print(self.stop_reason, file=sys.stderr)
        return 130 if interrupted else 0

    # --- the followed kdamonds ---------------------------------------------------------------
    def _stopped(self) -> str:
        """Why following must end ('' while every followed kdamond still runs as it did)."""
        for f in self.followed:
            if f.index is None:
                if status_mod.damon_stat_status(self.modules_dir) is None or not Path(f"/proc/{f.pid}").exists():
                    return f"{f.name} stopped"
                continue
            try:
                info = self.sysfs.kdamond(f.index)
            except OSError:
                return f"{f.name} disappeared from sysfs"
            if info.state != "on":
                return f"{f.name} stopped (state {info.state})"
            if info.pid != f.pid:
                return f"{f.name} was restarted (pid {f.pid} -> {info.pid})"
        return ""

    def _check_still_running(self) -> None:
        reason = self._stopped()
        if reason:
            raise DamoError(f"{reason} while recording was starting; nothing was recorded "
                            f"({STILL_WORKS})")

    # --- collection --------------------------------------------------------------------------
    def _collect(self, instance: TraceInstance) -> None:
        deadline = time.monotonic() + self.timeout if self.timeout else None
        last_check = time.monotonic()
        while deadline is None or time.monotonic() < deadline:
            self._drain(instance, wait=POLL_SECONDS)
            if time.monotonic() - last_check >= STATE_CHECK_SECONDS:
                last_check = time.monotonic()
                reason = self._stopped()
                if reason:
                    self.stop_reason = f"{reason}; the record keeps the snapshots up to then"
                    return

    def _drain(self, instance: TraceInstance, wait: float = 0.0, final: bool = False) -> None:
        """Append the snapshots that the trace pipe holds; ``final`` empties it."""
        while True:
            data = instance.read(wait)
            for snap in self.parser.feed(data):
                self._append(snap)
            if not final or not data:
                return
            wait = 0.0

    def _append(self, snap) -> None:
        followed = next((f for f in self.followed if f.pid == snap.pid), self.followed[0])
        target_id = followed.target_ids.setdefault(
            snap.target_id, max((i for f in self.followed for i in f.target_ids.values()), default=-1) + 1)
        aggr_us = followed.setup["contexts"][0]["intervals"]["aggr_us"] if followed.setup["contexts"] else None
        start_ns = self._last_end.get(target_id, snap.end_ns - (aggr_us or 0) * 1000)
        self._last_end[target_id] = snap.end_ns
        self.sink.append(target_id, start_ns, snap.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age)


def record(request) -> int:
    """``damo record ongoing`` for a RecordRequest (its ``kdamonds``, ``timeout`` and output)."""
    from damo import __version__
    from damo.recording import finish, open_sink

    preflight()
    recorder = OngoingRecorder(
        request.kdamonds, request.timeout,
        # The request's labels (defaults and --label) go into the record, as with every source.
        open_sink=lambda meta: open_sink(request, replace(meta, labels=dict(request.labels))),
        finish=lambda sink, interrupted: finish(sink, request, interrupted=interrupted),
        tool_version=__version__)
    return recorder.run()
