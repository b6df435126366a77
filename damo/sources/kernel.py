"""Record with this machine's kernel DAMON: a command, a pid, or physical memory (``paddr``).

Flow: check (read-only) that DAMON is free -> launch the workload, stopped right after its exec
-> open a private tracefs instance -> create, stage and start our own kdamond -> release the
workload (so DAMON sees its own address space from its first instruction, and it cannot exit
before monitoring starts, however short it is) -> stream ``damon_aggregated`` snapshots
(or, without the tracepoint, ``tried_regions`` snapshots of a ``stat`` scheme) into the record
writer -> on exit, error or signal: our kdamond off, ``nr_kdamonds`` restored, the tracefs
instance removed, the file completed.
"""
from __future__ import annotations

import dataclasses
import errno
import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from damo.errors import DamoError
from damo.kernel import sysfs as sysfs_mod
from damo.kernel.debugfs import DamonDebugfs, DebugfsKdamond
from damo.kernel.debugfs import check_free as debugfs_check_free
from damo.kernel import tlb_ticker
from damo.kernel.tlb_ticker import Ticker
from damo.kernel.sysfs import ALTERNATIVES, DamonSysfs, KdamondSetup, OwnedKdamond, OwnedKdamonds, check_free
from damo.kernel.tasks import children, process_alive
from damo.kernel.tracefs import AggregatedParser, TraceInstance, find_tracefs, has_damon_event
from damo.model import TARGETS_KEY
from damo.recording import RecordRequest, base_meta, finish, open_sink
from damo.sources.task_targets import TaskTargets
from damo.sources.proc_sampler import SideSampler

TUNE_POLL_SECONDS = 1.0      # how often a tuned record asks the kernel for the current sampling interval

POLL_SECONDS = 0.2
META_RESERVE = 64 << 10           # header room for the targets found while recording (native)
STATE_CHECK_SECONDS = 0.5
# A kdamond found stopped this soon after our last commit returned, while its tasks still run,
# was ended by that commit (the kernel fails it in the kdamond: Linux before 6.14).
COMMIT_END_SECONDS = 5.0
WORKLOAD_TERM_SECONDS = 3.0
STOP_FILE_ENV = "DAMO_STOP_FILE"     # set by `damo record --vm` for the record inside the VM


@dataclass
class Target:
    """What to monitor: a command to launch, a pid to attach to, or physical memory."""

    ops: str
    argv: list[str] | None = None
    pid: int | None = None
    regions: list[tuple[int, int]] | None = None
    description: str = ""
    more_pids: list[int] | None = None      # further pid targets (several PIDs, --target_pid)


def largest_system_ram(iomem: str = "/proc/iomem") -> tuple[int, int]:
    """The largest top-level 'System RAM' range of /proc/iomem, as [start, end)."""
    best = None
    try:
        lines = Path(iomem).read_text().splitlines()
    except OSError as err:
        raise DamoError(f"cannot read {iomem} ({err.strerror}); give the range with -r START-END") from None
    for line in lines:
        if line.startswith(" ") or ":" not in line:
            continue
        span, name = (x.strip() for x in line.split(":", 1))
        if name != "System RAM":
            continue
        start, end = (int(x, 16) for x in span.split("-"))
        if best is None or end + 1 - start > best[1] - best[0]:
            best = (start, end + 1)
    if best is None or best[1] - best[0] <= 1:
        raise DamoError(f"no System RAM range in {iomem} (reading addresses needs root); "
                        f"give the range with -r START-END")
    return best


def resolve_target(request: RecordRequest) -> Target:
    """Deduce the target and the operations set from TARGET, --ops and --regions."""
    words = request.target
    if words == ["paddr"] or request.ops == "paddr":
        if words != ["paddr"]:
            raise DamoError("--ops paddr monitors physical memory: give 'paddr' as TARGET")
        regions = request.regions or [largest_system_ram()]     # --numa_node's ranges come as regions
        return Target("paddr", regions=regions, description="paddr")
    ops = request.ops or ("fvaddr" if request.regions else "vaddr")
    if ops == "fvaddr" and not request.regions:
        raise DamoError("--ops fvaddr needs the regions to monitor (-r START-END)")
    regions = request.regions or None
    if words and all(word.isdigit() for word in words):
        pids = list(dict.fromkeys(int(word) for word in words))
        for pid in pids:
            if not Path(f"/proc/{pid}").exists():
                raise DamoError(f"no process with pid {pid}")
            if not process_alive(pid):
                raise DamoError(f"the target (pid {pid}) exited before monitoring started")
        return Target(ops, pid=pids[0], regions=regions, more_pids=pids[1:],
                      description=f"pid{'s' if len(pids) > 1 else ''} {' '.join(map(str, pids))}")
    argv = command_argv(request)
    return Target(ops, argv=argv, regions=regions, description=shlex.join(words if len(words) > 1 else argv))


def command_argv(request: RecordRequest) -> list[str]:
    """The workload's argv; raise if its program does not exist (before anything else is touched)."""
    words = request.target
    if request.shell:
        return [shell_path(), "-c", " ".join(words)]
    # damo takes a command as one string ("sleep 5"); split it like a shell would, but run no shell.
    try:
        argv = shlex.split(words[0]) if len(words) == 1 else list(words)
    except ValueError as err:
        raise DamoError(f"record: cannot split the command line {words[0]!r}: {err}") from None
    if not argv:
        raise DamoError("record: empty command")
    if shutil.which(argv[0]) is None:
        if "/" in argv[0] and Path(argv[0]).exists():
            raise DamoError(f"record: {argv[0]}: not an executable file")
        raise DamoError(f"record: no such command: {argv[0]}")
    return argv


def shell_path() -> str:
    """The shell for --shell: bash where there is one, since it runs the last command of its
    command line in its own place (exec), so the pid that DAMON monitors becomes the workload's;
    dash, Debian's /bin/sh, forks it, and DAMON would watch the idle shell."""
    return shutil.which("bash") or "/bin/sh"


_PTRACE_TRACEME, _PTRACE_CONT, _PTRACE_DETACH = 0, 7, 17


@functools.cache
def _libc_ptrace():
    import ctypes

    function = ctypes.CDLL(None, use_errno=True).ptrace
    function.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    function.restype = ctypes.c_long
    return function


def _ptrace(request: int, pid: int = 0, signal_number: int = 0) -> int:
    """ptrace(2) through libc; returns 0 or the errno."""
    import ctypes

    if _libc_ptrace()(request, pid, None, signal_number or None) == -1:
        return ctypes.get_errno()
    return 0


class HeldWorkload:
    """A workload launched now and held until ``release``, so monitoring can start on its pid first.

    The child asks to be traced and execs: the kernel stops it once the new program is loaded,
    before its first instruction. DAMON then starts on the workload's own address space, not on
    a forked copy of damo's (whose regions would fill the first snapshots until DAMON's next
    regions update). ``release`` detaches, and the workload runs untraced. Where ptrace is not
    allowed, the child is held before its exec instead. (subprocess.Popen cannot hold a child:
    it waits for the exec to happen.) ``poll``, ``wait``, ``send_signal``, ``kill`` and
    ``returncode`` act as Popen's; ``wait`` on a workload never released kills it first.
    """

    def __init__(self, argv: list[str]):
        self.argv = argv
        status_read, status_write = os.pipe()        # child -> us: "t"raced or "h"eld, exec errors
        hold_read, self._release_fd = os.pipe()      # us -> child: "g" releases a held child
        _libc_ptrace()                               # looked up before the fork, not in the child
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:                                 # the child: never returns
            self._child(argv, status_write, hold_read)
        os.close(status_write)
        os.close(hold_read)
        self.pid = pid
        self.returncode: int | None = None
        self._status_fd: int | None = status_read
        self.traced = os.read(status_read, 1) == b"t"
        if self.traced:
            self._wait_for_exec()
            self._read_exec_result()

    def _wait_for_exec(self) -> None:
        """Wait for the stop after a successful exec (SIGTRAP); raise if the exec failed."""
        while True:
            _, status = os.waitpid(self.pid, 0)
            if not os.WIFSTOPPED(status):
                self.returncode = os.waitstatus_to_exitcode(status)
                self._read_exec_result()
                raise DamoError(f"the workload (pid {self.pid}) ended before its exec")
            if os.WSTOPSIG(status) == signal.SIGTRAP:
                return
            _ptrace(_PTRACE_CONT, self.pid, os.WSTOPSIG(status))   # a signal before the exec: deliver it

    def _child(self, argv: list[str], status_fd: int, hold_fd: int) -> None:
        code = 126
        try:
            os.close(self._release_fd)
            # status_fd is close-on-exec (as os.pipe makes it): a successful exec means EOF for us.
            traced = _ptrace(_PTRACE_TRACEME) == 0
            os.write(status_fd, b"t" if traced else b"h")
            if traced or os.read(hold_fd, 1) == b"g":
                os.close(hold_fd)
                # As Popen does: the signals Python ignores are back to the default for the workload.
                for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                    signal.signal(sig, signal.SIG_DFL)
                code = 127
                try:
                    os.execvp(argv[0], argv)
                except OSError as err:
                    os.write(status_fd, f"e{err.errno}".encode())
        except BaseException:
            pass
        os._exit(code)

    def _read_exec_result(self) -> None:
        """Read the status pipe to its end (the exec or the child's exit); raise if the exec failed."""
        if self._status_fd is None:
            return
        data = b""
        while chunk := os.read(self._status_fd, 64):
            data += chunk
        os.close(self._status_fd)
        self._status_fd = None
        if data.startswith(b"e"):
            self.wait()
            raise DamoError(f"cannot run {self.argv[0]}: {os.strerror(int(data[1:]))}")

    def release(self) -> None:
        """Let the workload run (once); raise if its exec failed."""
        if self._release_fd is None:
            return
        try:
            if self.traced:
                err = _ptrace(_PTRACE_DETACH, self.pid)
                if err:
                    raise DamoError(f"cannot release the workload (pid {self.pid}): {os.strerror(err)}")
            else:
                os.write(self._release_fd, b"g")
        finally:
            self._close_pipe()
        if not self.traced:
            self._read_exec_result()

    def _close_pipe(self) -> None:
        if self._release_fd is not None:
            os.close(self._release_fd)
            self._release_fd = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid and not os.WIFSTOPPED(status):
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self._release_fd is not None:
            # Never released: a traced workload has not run an instruction yet, a held one
            # exits with 126 once its pipe closes. Either way it runs nothing.
            if self.traced and self.returncode is None:
                os.kill(self.pid, signal.SIGKILL)
            self._close_pipe()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.02)
        if self._status_fd is not None:
            os.close(self._status_fd)
            self._status_fd = None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def preflight_root() -> None:
    if os.geteuid() != 0:
        raise DamoError(f"recording with the kernel's DAMON needs root privileges (run damo as root). "
                        f"{ALTERNATIVES}")


def preflight(sysfs: DamonSysfs) -> None:
    """Everything that can be checked without writing anything."""
    preflight_root()
    check_free(sysfs)


class KernelRecorder:
    """One kernel record, from preflight to a complete file."""

    def __init__(self, request: RecordRequest, sysfs: DamonSysfs | None = None,
                 tracefs_root: Path | None = None, debugfs: DamonDebugfs | None = None):
        self.request = request
        self.sysfs = sysfs or DamonSysfs()
        self.debugfs = debugfs           # set: DAMON's debugfs interface instead of sysfs
        self.tracefs_root = tracefs_root if tracefs_root is not None else find_tracefs()
        self.proc: HeldWorkload | None = None
        self.sink = None
        self._last_end: dict[int, int] = {}
        self.parser = AggregatedParser()
        self.stop_file = os.environ.get(STOP_FILE_ENV)
        self.sampler: SideSampler | None = None
        self.kdamond = None
        self._kdamond_pid = -1                   # ours, once started: trace lines of others are dropped
        self._kdamond_offsets: dict[int, int] = {}   # several kdamonds: kdamond pid -> its first target's index
        self._sample_us: int | None = None       # the tuned sampling interval, when tuned
        self._next_tune_poll = 0.0
        self.tasks: TaskTargets | None = None       # process targets and their record ids
        self.meta = None
        self._last_commit: float | None = None      # when our last target commit returned
        self.restarts = 0

    def run(self) -> int:
        request = self.request
        target = resolve_target(request)      # cheap local checks (no such command or pid) come first
        if self.debugfs is not None:
            preflight_root()
            debugfs_check_free(self.debugfs)
        else:
            preflight(self.sysfs)
        # --snapshot reads tried_regions: full pictures, DELAY apart, not every aggregation.
        use_trace = has_damon_event(self.tracefs_root) and request.snapshot is None
        groups = request.kdamond_pids
        if groups:
            check_kdamond_groups(request, target, self.debugfs is not None, use_trace)
        if self.debugfs is not None and not use_trace:
            raise DamoError("recording through DAMON's debugfs interface needs the damon:damon_aggregated "
                            "tracepoint, and tracefs has none (mount tracefs, or a kernel with "
                            f"CONFIG_TRACING){' and takes no --snapshot' if request.snapshot else ''}. "
                            f"{ALTERNATIVES}")
        note = (debugfs_child_tasks_note(request, target.ops) if self.debugfs is not None
                else kdamond_groups_child_tasks_note(request) if groups else None)
        if note:
            print(note, file=sys.stderr)
        if target.ops != "paddr":
            # Online target changes need sysfs `commit`; debugfs refuses new target_ids while on.
            # fvaddr's fixed regions are the given process's own, as in damo: no children.
            self.tasks = TaskTargets(follow_children=request.child_tasks and self.debugfs is None
                                     and target.ops == "vaddr" and not groups)
        follow = self.tasks is not None and self.tasks.follow_children
        # The mono trace clock is time.monotonic_ns(), which times the target list's changes.
        instance = (TraceInstance(self.tracefs_root, f"damo-{os.getpid()}", clock="mono" if follow else None)
                    if use_trace else None)
        setup = KdamondSetup(ops=target.ops, attrs=request.attrs, pid=target.pid, regions=target.regions or [],
                             stat_scheme=not use_trace, more_pids=list(target.more_pids or []),
                             intervals_goal=request.intervals_goal)
        if request.intervals_goal is not None and self.debugfs is not None:
            raise DamoError("DAMON's debugfs interface cannot tune the monitoring intervals (Linux 6.15+ sysfs "
                            "only): drop --monitoring_intervals_goal/--monitoring_intervals_autotune")
        interrupted = False
        ticker = Ticker(enabled=tlb_ticker.requested())
        if groups:
            # One kdamond per group, each with the same attributes; the record's target ids run
            # over the groups in order (kdamond k's target i is id offset[k] + i).
            kdamond = OwnedKdamonds(self.sysfs, [dataclasses.replace(setup, pid=pids[0], more_pids=list(pids[1:]))
                                                 for pids in groups])
            setup.pid, setup.more_pids = groups[0][0], [pid for pids in groups for pid in pids][1:]
        elif self.debugfs is not None:
            kdamond = DebugfsKdamond(self.debugfs, setup)
        else:
            kdamond = OwnedKdamond(self.sysfs, setup)
        try:
            if target.argv:
                if follow:
                    subreaper = set_child_subreaper(True)
                    self.tasks.not_adopted = set(children(os.getpid()))
                self.proc = HeldWorkload(target.argv)
                setup.pid = self.proc.pid
                if follow and subreaper:
                    self.tasks.adopter, self.tasks.own_child = os.getpid(), self.proc.pid
            if instance:
                instance.open()
            with kdamond:
                # A zombie still has its pid, so the kernel would accept it: ask first. (Our own
                # workload is held until released, so only a pid target can be gone here.)
                if not self._target_alive():
                    raise DamoError(f"the target (pid {self._gone_pid(setup)}) exited before monitoring started")
                kdamond_pid = kdamond.start(target_alive=self._target_alive)
                self._kdamond_pid = kdamond_pid
                if groups:
                    offsets = np.cumsum([0] + [len(pids) for pids in groups[:-1]]).tolist()
                    self._kdamond_offsets = dict(zip(kdamond.pids, offsets))
                if self.tasks is not None:
                    self.tasks.start(setup.pids, time.monotonic_ns())
                if self.proc is not None:
                    self.proc.release()
                meta = base_meta(request, target.ops, target.description)
                meta.kernel_release = os.uname().release
                meta.start_time = time.time()
                meta.extra.update({"collector": "tracefs" if use_trace else "tried_regions",
                                   "damon_interface": "debugfs" if self.debugfs is not None else "sysfs",
                                   "kdamond_pid": kdamond_pid})
                if self.tasks is not None:
                    meta.extra[TARGETS_KEY] = self.tasks.info      # grows as children are found
                    meta.extra["child_tasks"] = follow
                if groups:
                    for k, (pids, offset) in enumerate(zip(groups, offsets)):
                        for i in range(len(pids)):
                            # damo 3.x's record keys: its JSON writes them per target record
                            self.tasks.info[offset + i].update(kdamond_idx=k, context_idx=0)
                    meta.extra["kdamond_pids"] = list(kdamond.pids)
                self.meta = meta
                self.sink = open_sink(request, meta, meta_reserve=META_RESERVE if follow else 0)
                self.sampler = SideSampler(self.sink, request.do_record, lambda: setup.pids, kdamond_pid)
                self.kdamond = kdamond
                if use_trace:
                    print(f"recording {target.description} with kdamond {kdamond.index} (pid {kdamond_pid}); "
                          f"press Ctrl+C to stop", file=sys.stderr)
                try:
                    # The trace event is enabled by now, and stays so until the ticker is stopped
                    # (damo.kernel.tlb_ticker says why that order keeps the guest alive).
                    ticker.start()
                    if self.tasks is not None:
                        self.tasks.not_adopted.update(ticker.pids())
                    if use_trace:
                        self._collect_trace(instance, kdamond)
                    else:
                        self._collect_tried_regions(kdamond)
                except KeyboardInterrupt:
                    interrupted = True
                finally:
                    ticker.stop()
                # Turn monitoring off before the last drain, so nothing is left in the buffer.
                kdamond.close()
                if instance:
                    self._drain(instance, final=True)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            ticker.stop()                   # before the trace event is disabled
            if instance:
                instance.close()
            status = self._stop_workload()
            if self.tasks is not None and self.tasks.adopter is not None:
                set_child_subreaper(False)
            if self.sink is not None:
                if follow:
                    self.sink.update_meta(self.meta)
                finish(self.sink, request, interrupted=interrupted)
        if self.proc is not None and status is not None:
            print(f"workload exited with status {status}", file=sys.stderr)
        return 130 if interrupted else 0

    # --- collection --------------------------------------------------------------------------
    def _deadline(self) -> float | None:
        return time.monotonic() + self.request.timeout if self.request.timeout else None

    def _should_stop(self, kdamond: OwnedKdamond, deadline: float | None, last_check: list[float]) -> bool:
        now = time.monotonic()
        self._sample_beside()
        if self.stop_file and os.path.exists(self.stop_file):
            raise KeyboardInterrupt      # `damo record --vm` was interrupted on the host
        if deadline is not None and now >= deadline:
            return True
        if self.tasks is not None and self.debugfs is None and not self._kdamond_offsets:
            self._follow_children(kdamond)      # with --exclude_child_tasks: exited targets only
        if self.proc is not None and self.proc.poll() is not None and not self._children_alive():
            return True
        if now - last_check[0] >= STATE_CHECK_SECONDS:
            last_check[0] = now
            # the kdamond stops by itself when its processes exit
            return not kdamond.running() and not self._restart_after_commit(kdamond)
        return False

    def _restart_after_commit(self, kdamond: OwnedKdamond) -> bool:
        """Start our kdamond again if our last commit ended it while its tasks still run.

        Before Linux 6.14 the kernel applies a commit in the kdamond's own callback: a target pid
        that is gone by then (a child that exited after we wrote the list) makes it fail, the
        failure ends the kdamond, and the write itself still succeeds. The record would end
        there with the workload still running. So the kdamond is started again on the live
        tasks (their regions start afresh: a gap of a few aggregations), and from then on a new
        child is proposed only once two polls saw it (``TaskTargets.settle``).
        """
        if (self.tasks is None or self.debugfs is not None or self._last_commit is None
                or time.monotonic() - self._last_commit > COMMIT_END_SECONDS):
            return False
        self._last_commit = None
        alive = [tid for tid in self.tasks.slots if process_alive(self.tasks.pids[tid])]
        if not alive:
            return False
        pids = [self.tasks.pids[tid] for tid in alive]
        began_ns = time.monotonic_ns()
        for tid in self.tasks.slots:
            if tid not in alive:
                self.tasks.exited_ns.setdefault(tid, began_ns)
        try:
            kdamond_pid = kdamond.restart(pids)
        except DamoError as err:
            print(f"kdamond {kdamond.index} ended after a target commit, and starting it again failed: {err}",
                  file=sys.stderr)
            return False
        self.tasks.committed(pids, alive, began_ns)
        self.tasks.settle = True
        self._kdamond_pid = kdamond_pid         # the trace lines to keep are the new kdamond's
        self.restarts += 1
        self.meta.extra.update({"kdamond_pid": kdamond_pid, "kdamond_restarts": self.restarts})
        if self.sampler is not None:
            self.sampler.kdamond_pid = kdamond_pid
        self.sink.update_meta(self.meta)
        print(f"kdamond {kdamond.index} ended after a target commit (a task in the list exited before the "
              f"kernel applied it; kernels before 6.14 end the kdamond then): started it again on the "
              f"{len(pids)} live tasks (pid {kdamond_pid})", file=sys.stderr)
        return True

    def _children_alive(self) -> bool:
        """Does a task that our workload forked still run (so the record goes on without it)?"""
        if self.tasks is None or not self.tasks.follow_children:
            return False
        return any(process_alive(pid) for pid in self.tasks.live_pids() if pid != self.proc.pid)

    def _follow_children(self, kdamond: OwnedKdamond) -> None:
        """Every CHILD_POLL_SECONDS (or at once when the workload has just exited, to catch the
        children it left): new descendants become targets, exited ones are taken out."""
        workload_gone = self.proc is not None and self.proc.returncode is None and self.proc.poll() is not None
        if not self.tasks.poll_due(workload_gone):
            return
        if self.tasks.refresh_command_lines():
            self.sink.update_meta(self.meta)
        change = self.tasks.proposal(time.monotonic_ns())
        if change is None or not change[0]:
            return                      # nothing new, or every task gone (the kdamond stops itself)
        pids, ids = change
        initial = {k: first_regions(pid, self.request.attrs.min_nr_regions)
                   for k, (pid, tid) in enumerate(zip(pids, ids)) if tid < 0}
        began_ns = time.monotonic_ns()
        try:
            kdamond.commit_targets(pids, {k: r for k, r in initial.items() if r})
        except sysfs_mod.SysfsWriteError as err:
            if err.errno == errno.EINVAL or not kdamond.running():
                return                  # a task exited meanwhile: the next poll proposes again
            raise
        self._last_commit = time.monotonic()
        self.tasks.committed(pids, ids, began_ns)
        self.sink.update_meta(self.meta)

    def _collect_trace(self, instance: TraceInstance, kdamond: OwnedKdamond) -> None:
        deadline, last_check = self._deadline(), [time.monotonic()]
        while not self._should_stop(kdamond, deadline, last_check):
            self._drain(instance, wait=POLL_SECONDS)

    def _drain(self, instance: TraceInstance, wait: float = 0.0, final: bool = False) -> None:
        """Append the snapshots that the trace pipe holds; ``final`` empties it."""
        while True:
            data = instance.read(wait)
            for snap in self.parser.feed(data):
                index = snap.target_id
                if self._kdamond_offsets:
                    if snap.pid not in self._kdamond_offsets:
                        continue    # not one of ours
                    index += self._kdamond_offsets[snap.pid]
                elif self._kdamond_pid > 0 and snap.pid > 0 and snap.pid != self._kdamond_pid:
                    continue        # another kdamond's (DAMON_STAT's, another user's): not ours
                self._append(index, snap.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age)
            if not final or not data:
                return
            wait = 0.0

    def _collect_tried_regions(self, kdamond: OwnedKdamond) -> None:
        """Snapshots from the stat scheme's tried regions: every aggregation, or --snapshot's."""
        deadline, last_check = self._deadline(), [time.monotonic()]
        snapshot = self.request.snapshot
        period = snapshot[0] if snapshot else max(self.request.attrs.aggr_us / 1e6, POLL_SECONDS)
        taken = 0
        while not self._should_stop(kdamond, deadline, last_check):
            # The next read starts a period after this one began, never sooner (a slow read, as
            # under emulation, delays the ones after it rather than bunching them up). A snapshot
            # is stamped when it is asked for: reading it back takes a varying time.
            next_at, asked_ns = time.monotonic() + period, time.monotonic_ns()
            try:
                kdamond.update_tried_regions()
            except sysfs_mod.SysfsWriteError:
                if not kdamond.running():
                    return
                raise
            start, end, nr_accesses, age = kdamond.read_tried_regions()
            if start:
                self._append_tried(asked_ns, np.array(start, dtype=np.uint64),
                                   np.array(end, dtype=np.uint64), np.array(nr_accesses), np.array(age))
                taken += 1
                if snapshot and taken >= snapshot[1]:
                    return
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _append_tried(self, end_ns: int, start, end, nr_accesses, age) -> None:
        """One tried-regions read: the regions of every target, in target order. They carry no
        target index, so a new target starts where the addresses go back (each target's regions
        are sorted, and process address spaces overlap); a target without regions shifts the
        ones after it, which a single-target record never sees."""
        cuts = np.flatnonzero(start[1:] < end[:-1]) + 1
        for k, (lo, hi) in enumerate(zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(start)]]))):
            self._append(k, end_ns, start[lo:hi], end[lo:hi], nr_accesses[lo:hi], age[lo:hi])

    def _append(self, kernel_index: int, end_ns: int, start, end, nr_accesses, age) -> None:
        target_id = kernel_index
        if self.tasks is not None:
            target_id = self.tasks.target_at(kernel_index, end_ns)
            if target_id is None:
                return              # an exited task's last regions, before it was taken out
        start_ns = self._last_end.get(target_id, end_ns - self.request.attrs.aggr_us * 1000)
        self._last_end[target_id] = end_ns
        self.sink.append(target_id, start_ns, end_ns, start, end, nr_accesses, age, sample_us=self._sample_us)

    def _sample_beside(self) -> None:
        """Once a second: footprints, VMAs and stats (--do_record), and the tuned sampling interval."""
        if self.sampler is None:
            return
        self.sampler.maybe_sample()
        now = time.monotonic()
        if self.request.intervals_goal is not None and now >= self._next_tune_poll:
            self._next_tune_poll = now + TUNE_POLL_SECONDS
            tuned = self.kdamond.tuned_sample_us()
            if tuned is not None:
                self._sample_us = tuned

    # --- the workload ------------------------------------------------------------------------
    def _target_alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self.request.target == ["paddr"] or self.request.ops == "paddr":
            return True
        return all(process_alive(int(word)) for word in self.request.target)

    def _gone_pid(self, setup: KdamondSetup) -> str:
        gone = [pid for pid in setup.pids if not process_alive(pid)]
        return str(gone[0] if gone else setup.pid)

    def _stop_workload(self) -> int | None:
        """Reap the workload we launched, ending it if the record stopped first; its exit status."""
        if self.proc is None:
            return None
        return stop_process(self.proc, WORKLOAD_TERM_SECONDS)


def debugfs_child_tasks_note(request: RecordRequest, ops: str) -> str | None:
    """The warning that a debugfs record of a process does not follow its children, or None.

    The kernel's ``dbgfs_target_ids_write`` returns EBUSY while the context's kdamond runs, and
    debugfs has no ``commit``: its targets are fixed from ``monitor_on`` to off. Turning it off
    and on to add one would restart every target's regions, so damo records the given
    processes only, as damo 3.4.3 does there."""
    if ops != "vaddr" or not request.child_tasks:
        return None
    return ("damo: warning: DAMON's debugfs interface cannot add targets while monitoring (target_ids is "
            "EBUSY while monitor_on is on): child tasks are not followed; use sysfs (Linux 5.18+) or "
            "--ops page_idle to follow them, or --exclude_child_tasks to silence this")


def kdamond_groups_child_tasks_note(request: RecordRequest) -> str | None:
    """The warning that a record of several kdamonds does not follow its processes' children.

    A child would need a kdamond to join, and each kdamond's context is committed as a whole;
    damo 3.4.3 does not follow them there either."""
    if not request.child_tasks:
        return None
    return ("damo: warning: with several kdamonds, child tasks are not followed (each kdamond records "
            "the --target_pid values given to it); --exclude_child_tasks silences this")


def first_regions(pid: int, min_nr_regions: int) -> list[tuple[int, int]]:
    """A new child target's first regions, as the kernel's damon_va_init makes them for the
    targets it starts with: the three regions of its mappings, evenly split into
    ``min_nr_regions``. (Given none, a target added online starts from the three regions
    whole at the next regions update, and takes many aggregations to find its hot spots.)"""
    from damo.engine.core import three_regions, va_init_ranges
    from damo.kernel.page_idle import read_mappings

    try:
        return va_init_ranges(three_regions(read_mappings(pid)), min_nr_regions)
    except ValueError:
        return []       # gone, or fewer than two gaps: the kernel's own update will set them


def set_child_subreaper(on: bool) -> bool:
    """prctl(PR_SET_CHILD_SUBREAPER): the tasks that the workload's tree orphans become damo's
    children instead of init's, so a parent that forks workers and exits before the next poll
    does not hide them. False where the call fails."""
    import ctypes

    pr_set_child_subreaper = 36
    return ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, int(on), 0, 0, 0) == 0


def stop_process(proc: HeldWorkload, term_seconds: float) -> int:
    """Reap ``proc``, ending it first if it still runs (SIGTERM, SIGKILL after ``term_seconds``):
    an interrupted, timed-out or failed record must not leave its workload behind."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(term_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def check_kdamond_groups(request: RecordRequest, target: Target, debugfs: bool, use_trace: bool) -> None:
    """Several kdamonds (--kdamond markers) are for running processes, through sysfs and the
    tracepoint (whose lines name their kdamond); anything else is one DamoError."""
    if debugfs:
        raise DamoError("several kdamonds need DAMON's sysfs interface (debugfs runs one monitoring context)")
    if target.ops != "vaddr" or request.regions:
        raise DamoError("several kdamonds (--kdamond markers) record processes (vaddr): give each its --target_pid")
    if not use_trace:
        raise DamoError("several kdamonds are recorded through the damon:damon_aggregated tracepoint"
                        f"{', not --snapshot' if request.snapshot else ', which this kernel lacks'}")


def record(request: RecordRequest) -> int:
    """``damo record`` with this machine's kernel DAMON."""
    return KernelRecorder(request).run()
