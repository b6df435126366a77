"""``damo record --vm``: the same record, run inside a virtme-ng VM with a DAMON-capable kernel.

The VM sees the host's file system (copy-on-write) and runs this very Python and damo checkout
by absolute path; only a ``--rwdir`` directory is shared for writing, so the guest writes the
record there and we move it to ``-o`` afterwards. Ctrl-C on the host creates a stop file in that
directory, which the guest's record treats like its own Ctrl-C.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import damo
from damo import vm as vm_setup
from damo.errors import DamoError
from damo.formats import rotate_existing
from damo.record import HOST_OUT_ENV, RecordRequest

BOOT_ALLOWANCE_SECONDS = 300          # boot + start + shutdown under software emulation
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
    return argv + ["--", *request.target]


def guest_script(request: RecordRequest, rwdir: Path) -> str:
    """The shell line that the guest runs: our Python, our damo, the host's cwd and PATH."""
    repo_root = str(Path(damo.__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(p for p in (repo_root, os.environ.get("PYTHONPATH")) if p)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": pythonpath,
           STOP_FILE_ENV: str(rwdir / STOP_FILE), HOST_OUT_ENV: request.out, "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "damo", "record", *guest_record_argv(request, str(rwdir / GUEST_OUT))]
    env_words = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    status = shlex.quote(str(rwdir / STATUS_FILE))
    return f"cd {shlex.quote(os.getcwd())} && env {env_words} {shlex.join(cmd)}; echo $? > {status}"


def vng_command(kernel: str, rwdir: Path, script: str) -> list[str]:
    # --disable-kvm: with KVM these Debian kernels hang in the decompressor here; emulation works.
    return ["vng", "--run", kernel, "--disable-kvm", "--memory", "2G", "--cpus", "2",
            "--rwdir", str(rwdir), "--exec", script]


def check_prerequisites(request: RecordRequest) -> str:
    """The kernel image to boot; raise with the fix when something is missing."""
    missing = vm_setup.missing_prerequisites(kernel=request.vm_kernel)
    if missing:
        names = ", ".join(p.name for p in missing)
        raise DamoError(f"--vm needs {names}, which this machine lacks: {missing[0].fix}")
    kernel = request.vm_kernel or str(vm_setup.cached_kernel())
    if not Path(kernel).is_file():
        raise DamoError(f"--vm-kernel: {kernel}: no such kernel image")
    return kernel


def record(request: RecordRequest) -> int:
    """Record inside a VM; the record lands at ``request.out`` on this machine."""
    kernel = check_prerequisites(request)
    out = Path(request.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    rwdir = Path(tempfile.mkdtemp(prefix=".damo-vm-", dir=out.parent))
    try:
        limit = (request.timeout or DEFAULT_RUN_SECONDS) + BOOT_ALLOWANCE_SECONDS
        print(f"booting {Path(kernel).name} in a VM (software emulation; the boot takes about 20 s)",
              file=sys.stderr, flush=True)
        started = time.monotonic()
        rc, interrupted = boot_and_run(kernel, rwdir, guest_script(request, rwdir), limit)
        status = _guest_status(rwdir)
        produced = rwdir / GUEST_OUT
        if produced.exists() and produced.stat().st_size > 0:
            rotate_existing(out)
            shutil.move(str(produced), str(out))
            os.chmod(out, 0o600)
            print(f"the VM record is at {request.out} ({time.monotonic() - started:.0f} s in the VM)",
                  file=sys.stderr)
        elif status is None:
            raise DamoError(f"the VM did not run the record (vng exit {rc}); see the messages above")
        if interrupted:
            return 130
        return status if status is not None else rc
    finally:
        shutil.rmtree(rwdir, ignore_errors=True)


def boot_and_run(kernel: str, rwdir: Path, script: str, limit: float) -> tuple[int, bool]:
    """Boot ``kernel``, run the shell line ``script`` in it with ``rwdir`` shared for writing.

    Returns vng's exit code and whether Ctrl-C interrupted it; raises DamoError after ``limit``
    seconds.
    """
    env = dict(os.environ, PATH=f"{vm_setup.vng_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}")
    return _run_vm(vng_command(kernel, rwdir, script), env, limit, rwdir)


def _guest_status(rwdir: Path) -> int | None:
    try:
        return int((rwdir / STATUS_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _run_vm(cmd: list[str], env: dict, limit: float, rwdir: Path) -> tuple[int, bool]:
    """Run vng; on Ctrl-C ask the guest to stop through the stop file, then wait for it."""
    try:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    except FileNotFoundError:
        raise DamoError("--vm: vng is not installed; run `damo vm setup`") from None
    interrupted = False
    deadline = time.monotonic() + limit
    try:
        while True:
            try:
                return proc.wait(timeout=max(0.1, min(1.0, deadline - time.monotonic()))), interrupted
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    _kill(proc)
                    raise DamoError(f"the VM did not finish within {limit:.0f} s; it was stopped") from None
            except KeyboardInterrupt:
                if interrupted:       # a second Ctrl-C: stop the VM now
                    _kill(proc)
                    return proc.wait(), True
                interrupted = True
                (rwdir / STOP_FILE).touch()
                deadline = min(deadline, time.monotonic() + STOP_GRACE_SECONDS)
                print("stopping the record inside the VM...", file=sys.stderr, flush=True)
    except BaseException:
        if proc.poll() is None:
            _kill(proc)
        raise


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
