"""``damo record --vm``: the same record, run inside a virtme-ng VM with a DAMON-capable kernel.

The VM sees the host's file system (copy-on-write) and runs this very Python and damo checkout
by absolute path; only a ``--rwdir`` directory is shared for writing, so the guest writes the
record there and we move it to ``-o`` afterwards. Ctrl-C on the host creates a stop file in that
directory, which the guest's record treats like its own Ctrl-C.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

import damo
from damo import vm as vm_setup
from damo import vm_accel
from damo.kernel.tlb_ticker import TICKER_ENV
from damo.errors import DamoError
from damo.formats import rotate_existing
from damo.recording import HOST_OUT_ENV, RecordRequest
from damo.sources.proc_sampler import SIDE_KINDS
from damo.sources.kernel import command_argv

# Boot + start + shutdown under software emulation: about 20 s on a quiet 2-core machine, 4x that at
# load 4; the rest is slack for a slower machine.
BOOT_ALLOWANCE_SECONDS = 600
DEFAULT_RUN_SECONDS = 3600            # a workload without --timeout
STOP_GRACE_SECONDS = 60
GUEST_OUT = "record.data"
STOP_FILE = "stop"
STATUS_FILE = "status"
STOP_FILE_ENV = "DAMO_STOP_FILE"


def guest_record_argv(request: RecordRequest, out: str) -> list[str]:
    """``damo record`` arguments for the guest: the host's options, the guest's output path."""
    a = request.attrs
    argv = ["-s", str(a.sample_us), "-a", str(a.aggr_us), "-u", str(a.update_us),
            "-n", str(a.min_nr_regions), "-m", str(a.max_nr_regions),
            "--output_type", request.output_type, "-o", out]
    if request.timeout:
        argv += ["--timeout", repr(request.timeout)]
    if request.ops:
        argv += ["--ops", request.ops]
    if request.damon_interface != "auto":
        argv += ["--damon_interface", request.damon_interface]
    if request.shell:
        argv.append("--shell")
    if request.regions:
        argv += ["-r", " ".join(f"{s}-{e}" for s, e in request.regions)]
    if not request.child_tasks:
        argv.append("--exclude_child_tasks")
    if request.snapshot:
        argv += ["--snapshot", repr(request.snapshot[0]), str(request.snapshot[1])]
    if request.output_permission != 0o600:
        argv += ["--output_permission", f"{request.output_permission:o}"]
    argv += ["--do_record", ",".join(request.do_record)]
    if request.intervals_goal:
        argv += ["--monitoring_intervals_goal", *(str(v) for v in request.intervals_goal)]
    # The labels go along, but the kernel label is left for the guest to say: its kernel is the monitored one.
    for key, value in request.labels.items():
        if key != "kernel":
            argv += ["--label", f"{key}={value}"]
    return argv + ["--", *request.target]


def guest_script(request: RecordRequest, rwdir: Path, tlb_ticker: bool = False) -> str:
    """The shell line that the guest runs: our Python, our damo, the host's cwd and PATH
    (``tlb_ticker``: the guest's record runs the TLB-flush ticker, damo.kernel.tlb_ticker)."""
    repo_root = str(Path(damo.__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(p for p in (repo_root, os.environ.get("PYTHONPATH")) if p)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": pythonpath,
           STOP_FILE_ENV: str(rwdir / STOP_FILE), HOST_OUT_ENV: request.out, "NO_COLOR": "1"}
    if tlb_ticker:
        env[TICKER_ENV] = "1"
    cmd = [sys.executable, "-m", "damo", "record", *guest_record_argv(request, str(rwdir / GUEST_OUT))]
    env_words = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    status = shlex.quote(str(rwdir / STATUS_FILE))
    return f"cd {shlex.quote(os.getcwd())} && env {env_words} {shlex.join(cmd)}; echo $? > {status}"


# Kernels built with CONFIG_DAMON_STAT_ENABLED_DEFAULT (Debian's 6.17) start DAMON_STAT's kdamond
# at boot, and it runs exclusively: turning our sysfs kdamond on fails with EBUSY (seen in the 6.17
# guest; writing N to its 'enabled' parameter made 'on' work). The guest exists to record, so it
# boots with DAMON_STAT off; a kernel without the module ignores the word.
#
# Under software emulation, enabling or disabling any trace event (a record's damon_aggregated)
# also registers or unregisters the probe that records command names on the sched_switch and
# sched_wakeup tracepoints, whose static keys sit inside __schedule and the wake-up path. Flipping
# them is int3 text patching, and under QEMU's TCG a vCPU sometimes runs the stale int3 afterwards:
# `Kernel panic` at __schedule+0x339. bench/vm_ticker_stress.py measured it without any ticker (one
# boot lost after 345 on/off cycles; with the TLB-flush ticker running across the toggles after 9,
# 15 and 36; docs/vm.md). With these events on from boot (into the top-level buffer, which no
# record reads), the keys stay on and no later toggle patches that code. (Not trace_buf_size=: every
# instance made later takes that size too, and a one-page buffer lost records' snapshots.)
KEEP_SCHED_TRACEPOINTS = "trace_event=sched:sched_switch,sched:sched_wakeup,sched:sched_wakeup_new"
GUEST_CMDLINE = f"damon_stat.enabled=N {KEEP_SCHED_TRACEPOINTS}"
GUEST_SCRIPT = "guest-script.sh"        # what the guest runs, in the shared directory
GUEST_STARTED = "guest-started"         # the script's first act: the boot reached the command
# A boot that has not reached its command by then is stuck (a command line cut short, a guest that
# hangs early): stopped with one line instead of after the whole run limit. Boots under software
# emulation on this 2-core machine reached their command in 20-50 s, 90 s at load 7 (docs/vm.md).
START_LIMIT_SECONDS = 300.0
START_LIMIT_ENV = "DAMO_VM_START_SECONDS"


def vng_command(kernel: str, rwdir: Path, script: str, verbose: bool = False, accel: str = "tcg") -> list[str]:
    """The vng command line; ``verbose`` adds the guest kernel's messages to the console (for tests
    and the KVM probe); ``accel`` "tcg" is software emulation, "kvm" lets vng use KVM."""
    return ["vng", "--run", kernel, *(["--disable-kvm"] if accel == "tcg" else []), "--memory", "2G",
            "--cpus", "2", *(["--verbose"] if verbose else []), "--append", GUEST_CMDLINE,
            "--rwdir", str(rwdir), "--exec", script]


def check_target(request: RecordRequest) -> None:
    """Name a missing command before a VM boots for a minute: the guest sees this machine's files."""
    words = request.target
    lone = words[0] if len(words) == 1 else ""
    if request.ops == "sim" or lone.endswith(".cfg") or lone == "paddr" or lone.isdigit():
        return
    command_argv(request)


def check_prerequisites(request: RecordRequest) -> str:
    """The kernel image to boot; raise with the fix when something is missing."""
    named = vm_setup.resolve_vm_kernel(request.vm_kernel)     # "6.17": that series' cached image
    missing = vm_setup.missing_prerequisites(kernel=named)
    if missing:
        names = ", ".join(p.name for p in missing)
        raise DamoError(f"--vm needs {names}, which this machine lacks: {missing[0].fix}")
    kernel = named or str(vm_setup.cached_kernel())
    if not Path(kernel).is_file():
        raise DamoError(f"--vm-kernel: {kernel}: no such kernel image")
    return kernel


def record(request: RecordRequest) -> int:
    """Record inside a VM; the record lands at ``request.out`` on this machine."""
    check_target(request)
    kernel = check_prerequisites(request)
    out = Path(request.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    rwdir = Path(tempfile.mkdtemp(prefix=".damo-vm-", dir=out.parent))
    try:
        limit = (request.timeout or DEFAULT_RUN_SECONDS) + BOOT_ALLOWANCE_SECONDS
        accel = vm_accel.choose(request.vm_accel, kernel)
        ticker = vm_accel.ticker_wanted(request.vm_tlb_flush, accel)
        how = "KVM" if accel == "kvm" else "software emulation; the boot takes about 20 s"
        print(f"booting {Path(kernel).name} in a VM ({how}{'; TLB-flush ticker on' if ticker else ''})",
              file=sys.stderr, flush=True)
        started = time.monotonic()
        run = boot_and_run(kernel, rwdir, guest_script(request, rwdir, ticker), limit, accel=accel)
        status = _guest_status(rwdir)
        produced = rwdir / GUEST_OUT
        landed = produced.exists() and produced.stat().st_size > 0
        if landed:
            rotate_existing(out)
            shutil.move(str(produced), str(out))
            os.chmod(out, 0o600)
            for kind in SIDE_KINDS:         # damo's sidecar files of a json_compressed record
                sidecar = Path(f"{produced}.{kind}")
                if sidecar.exists():
                    rotate_existing(f"{out}.{kind}")
                    shutil.move(str(sidecar), f"{out}.{kind}")
            print(f"the VM record is at {request.out} ({time.monotonic() - started:.0f} s in the VM)",
                  file=sys.stderr)
        if run.timed_out:
            raise DamoError(f"{run.timed_out}; it was stopped")
        if status is None and not landed and not run.interrupted:
            raise DamoError(f"the VM did not run the record (vng exit {run.returncode}); see the vm| lines above")
        if run.interrupted:
            return 130
        return status if status is not None else run.returncode
    finally:
        shutil.rmtree(rwdir, ignore_errors=True)


def boot_and_run(kernel: str, rwdir: Path, script: str, limit: float, *, quiet_limit: float | None = None,
                 heartbeat: Path | None = None, echo: bool = True, verbose: bool = False, accel: str = "tcg",
                 fatal: re.Pattern | None = None, done: Path | None = None) -> VmRun:
    """Boot ``kernel``, run the shell line ``script`` in it with ``rwdir`` shared for writing.

    The VM is stopped after ``limit`` seconds, after ``quiet_limit`` seconds in which it printed
    nothing and ``heartbeat`` (a file the guest appends to) did not grow, at once when a console
    line matches ``fatal``, and as soon as the file ``done`` exists. The guest's console goes to
    our stderr (when ``echo``), and its last lines are kept for error messages.
    """
    env = dict(os.environ, PATH=f"{vm_setup.vng_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}")
    # vng passes the command on the kernel's command line (base64), which x86 cuts at 2,048 bytes:
    # a long PATH and output path made a record's line 2,149 bytes and the guest never started its
    # command. So the guest runs a script file from the shared directory instead.
    script_file, started = rwdir / GUEST_SCRIPT, rwdir / GUEST_STARTED
    script_file.write_text(f"echo started > {shlex.quote(str(started))}\n{script}\n")
    budget = Budget(limit, quiet_limit, heartbeat, fatal, done, started_file=started, start_limit=start_limit())
    return _run_vm(vng_command(kernel, rwdir, f"sh {shlex.quote(str(script_file))}", verbose, accel), env, rwdir,
                   budget, GuestConsole(sys.stderr if echo else None))


def start_limit() -> float:
    """Seconds a boot may take to reach its command (START_LIMIT_ENV overrides the default)."""
    try:
        return float(os.environ.get(START_LIMIT_ENV, START_LIMIT_SECONDS))
    except ValueError:
        raise DamoError(f"{START_LIMIT_ENV}: not a number of seconds: {os.environ[START_LIMIT_ENV]!r}") from None


def _guest_status(rwdir: Path) -> int | None:
    try:
        return int((rwdir / STATUS_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class VmRun:
    """How a VM run ended."""

    returncode: int
    interrupted: bool              # a stop signal asked the guest to stop
    timed_out: str | None          # why the VM was stopped, if the budget ran out
    console_tail: list[str]        # the guest console's last lines, for error messages


@dataclass
class Budget:
    """How long a VM may run: a hard limit, and optionally a limit on silence."""

    limit: float
    quiet_limit: float | None = None
    heartbeat: Path | None = None
    fatal: re.Pattern | None = None       # a console line that means the guest is lost
    done: Path | None = None              # a file whose existence means the run did its job
    started_file: Path | None = None      # a file the guest writes once it runs its command...
    start_limit: float | None = None      # ...within this many seconds of the start

    def __post_init__(self):
        self.started = self.last_sign_of_life = time.monotonic()
        self._heartbeat_size = -1

    def expired(self, console: "GuestConsole") -> str | None:
        """Why the run should stop now, or None."""
        now = time.monotonic()
        size = self.heartbeat.stat().st_size if self.heartbeat and self.heartbeat.exists() else -1
        if size != self._heartbeat_size:
            self._heartbeat_size = size
            self.last_sign_of_life = now
        self.last_sign_of_life = max(self.last_sign_of_life, console.last_output)
        if self.done is not None and self.done.exists():
            return "done"
        if self.fatal is not None:
            lost = next((line for line in console.tail if self.fatal.search(line)), None)
            if lost is not None:
                return f"the VM failed: {lost.strip()}"
        if now - self.started >= self.limit:
            return f"the VM did not finish within {self.limit:.0f} s"
        if self.start_limit is not None and self.started_file is not None and \
                now - self.started >= self.start_limit and not self.started_file.exists():
            return f"the guest did not reach its command within {self.start_limit:.0f} s of the boot (a hung boot)"
        if self.quiet_limit is not None and now - self.last_sign_of_life >= self.quiet_limit:
            return f"the VM showed no progress for {self.quiet_limit:.0f} s"
        return None


# Control sequences that a guest console prints: colours, cursor moves, and the terminal resets that
# would wipe the host's own messages from a terminal or from a log viewed with `cat`.
_ESCAPES = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_]|c)")


class GuestConsole:
    """Copies the guest's console to our stderr line by line, so host and guest lines never mix.

    Escape sequences and carriage-return redraws are removed (a progress bar keeps its last state),
    every guest line is prefixed with ``vm| ``, and the last lines are kept for error messages.
    """

    PREFIX = "vm| "

    def __init__(self, out: TextIO | None, keep: int = 40):
        self.out = out
        self.tail: deque[str] = deque(maxlen=keep)
        self.last_output = 0.0
        self._thread: threading.Thread | None = None

    def start(self, stream: IO[bytes]) -> None:
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def join(self, timeout: float = 5.0) -> None:
        if self._thread:
            self._thread.join(timeout)

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.last_output = time.monotonic()
            line = _ESCAPES.sub(b"", raw).rstrip(b"\r\n").split(b"\r")[-1]
            text = line.decode("utf-8", "replace")
            self.tail.append(text)
            if self.out is not None:
                try:
                    self.out.write(f"{self.PREFIX}{text}\n")
                    self.out.flush()
                except (OSError, ValueError):
                    self.out = None       # our stderr went away; keep draining the VM's output
        stream.close()


# Ctrl-C, `kill` and a closed terminal all stop the guest's record, never only us.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _start_vm(cmd: list[str], env: dict) -> subprocess.Popen:
    """Start vng in its own session with its output piped to us (stop signals are blocked by the caller)."""
    def in_child():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=in_child)
    except FileNotFoundError:
        raise DamoError("--vm: vng is not installed; run `damo vm setup`") from None


def _run_vm(cmd: list[str], env: dict, rwdir: Path, budget: Budget, console: GuestConsole) -> VmRun:
    """Run vng; a stop signal asks the guest to stop through the stop file, a second one kills the VM.

    Stop signals are blocked while the VM process is being created, so that a signal at any moment
    either comes before the VM exists or finds it known and is handled; the VM never outlives us.
    """
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in STOP_SIGNALS if sig != signal.SIGINT}
    proc = None
    try:
        proc = _start_vm(cmd, env)
        console.start(proc.stdout)
        interrupted, deadline = False, None
        while True:
            try:
                if mask is not None:       # a signal that came while vng started is raised here
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                    mask = None
                try:
                    rc = proc.wait(timeout=0.5)
                    console.join()
                    return VmRun(rc, interrupted, None, list(console.tail))
                except subprocess.TimeoutExpired:
                    pass
                why = budget.expired(console)
                if deadline is not None and time.monotonic() >= deadline:
                    why = why or f"the guest did not stop within {STOP_GRACE_SECONDS} s of the stop request"
                if why:
                    _kill(proc)
                    console.join()
                    return VmRun(proc.returncode, interrupted, why, list(console.tail))
            except KeyboardInterrupt:
                if interrupted:          # a second stop signal: stop the VM now
                    _kill(proc)
                    console.join()
                    return VmRun(proc.returncode, True, None, list(console.tail))
                interrupted = True
                (rwdir / STOP_FILE).touch()
                deadline = time.monotonic() + STOP_GRACE_SECONDS
                print("stopping the record inside the VM...", file=sys.stderr, flush=True)
    finally:
        if proc is not None and proc.poll() is None:
            _kill(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _kill(proc: subprocess.Popen) -> None:
    """Kill vng and everything it started (qemu included): they share vng's session."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
