"""Which acceleration ``damo record --vm`` boots its guest with: KVM, or QEMU's software emulation.

``--vm-accel auto`` (the default) uses KVM when ``/dev/kvm`` can be opened and a first boot of the
kernel under KVM reaches the guest's command; otherwise it uses software emulation (TCG) and says
why in one line. That first boot, the probe, runs once per kernel image and machine: its verdict is
kept in ``<vm cache>/accel/`` under a key made of the kernel (path, size, mtime), the CPU model,
the host kernel release and the qemu binary (path, size, mtime), so a new kernel, a new qemu or a
new host kernel probes again.

A KVM guest that cannot boot fails in one of two ways: qemu exits (a KVM assertion, say), or qemu
stays alive with the guest stopped (``KVM internal error ... emulation failure`` in the
decompressor). The probe runs the guest with its kernel messages on the console and stops it when a
KVM error line shows, or when the console is silent for PROBE_QUIET_SECONDS.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from damo import vm as vm_setup
from damo.errors import DamoError

ACCEL_CHOICES = ("auto", "kvm", "tcg")
TLB_FLUSH_CHOICES = ("auto", "on", "off")
KVM_DEVICE_ENV = "DAMO_VM_KVM_DEVICE"      # where to look for KVM (default /dev/kvm)

# A booting guest prints a kernel message at least every few seconds. Under software emulation on
# this 2-core machine at load 7 the longest silence of a whole boot was 9.0 s (the decompressor,
# before the kernel's first line; 90 s to the command); a KVM guest runs the same code many times
# faster. 30 s of silence is therefore a stuck guest, and the probe costs at most that much beyond
# the guest's last sign of life, and PROBE_LIMIT_SECONDS in all.
PROBE_QUIET_SECONDS = 30.0
PROBE_LIMIT_SECONDS = 180.0
# Lines by which qemu says that KVM cannot run the guest.
KVM_FAILURE = re.compile(r"KVM internal error|emulation failure|kvm[^ ]*: Assertion|failed to set MSR|"
                         r"Could not access KVM kernel module|failed to initialize kvm", re.IGNORECASE)
PROBE_MARK = "probe-ok"

# --vm-tlb-flush auto runs the TLB-flush ticker under emulation: 21 full VM runs of the kernel test
# set with the ticker in every record lost no guest (the bar was 20; docs/vm.md has each run). Set
# it back to False if a guest is ever lost with the ticker on, and auto turns it off again.
TICKER_PROVEN_SAFE = True


def kvm_device() -> str:
    return os.environ.get(KVM_DEVICE_ENV) or "/dev/kvm"


def kvm_unusable(device: str | None = None) -> str | None:
    """Why KVM cannot be used at all here (no device, no permission), or None."""
    device = device or kvm_device()
    if not os.path.exists(device):
        return f"no {device} (no hardware virtualisation, or the kvm module is not loaded)"
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        return f"{device}: permission denied (add the user to the kvm group)"
    except OSError as err:
        return f"{device}: {err.strerror}"
    os.close(fd)
    return None


def _cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _file_identity(path: str | None) -> list:
    if not path:
        return [None]
    resolved = os.path.realpath(path)
    try:
        st = os.stat(resolved)
    except OSError:
        return [resolved]
    return [resolved, st.st_size, st.st_mtime_ns]


def verdict_file(kernel: str, cache: Path | None = None) -> Path:
    """Where the probe's verdict for ``kernel`` on this machine is kept."""
    identity = {"kernel": _file_identity(kernel), "cpu": _cpu_model(), "host_kernel": os.uname().release,
                "qemu": _file_identity(vm_setup.find_tool("qemu")), "kvm_device": kvm_device()}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    return (cache or vm_setup.cache_dir()) / "accel" / f"{key}.json"


@dataclass
class Verdict:
    """What a probe found: can KVM boot this kernel here, and why not."""

    kvm_works: bool
    reason: str            # why not (empty when it works)
    seconds: float         # what the probe cost
    file: Path | None = None

    @classmethod
    def load(cls, path: Path) -> "Verdict | None":
        try:
            data = json.loads(path.read_text())
            return cls(bool(data["kvm_works"]), str(data["reason"]), float(data["seconds"]), path)
        except (OSError, ValueError, KeyError, TypeError):
            return None            # no verdict (or an unreadable one): probe again

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"kvm_works": self.kvm_works, "reason": self.reason,
                                   "seconds": round(self.seconds, 1), "probed_at": time.time()}) + "\n")
        tmp.replace(path)
        self.file = path


def probe(kernel: str, quiet_seconds: float | None = None, limit_seconds: float | None = None) -> Verdict:
    """Boot ``kernel`` under KVM with a command that only marks that it ran; did it?"""
    from damo.sources.vm import boot_and_run

    quiet_seconds = PROBE_QUIET_SECONDS if quiet_seconds is None else quiet_seconds
    limit_seconds = PROBE_LIMIT_SECONDS if limit_seconds is None else limit_seconds
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="damo-kvm-probe-") as rwdir:
        mark = Path(rwdir) / PROBE_MARK
        run = boot_and_run(kernel, Path(rwdir), f"echo ok > {mark}", limit_seconds, quiet_limit=quiet_seconds,
                           echo=False, verbose=True, accel="kvm", fatal=KVM_FAILURE, done=mark)
        seconds = time.monotonic() - started
        if mark.exists():
            return Verdict(True, "", seconds)
    failure = next((line.strip() for line in run.console_tail if KVM_FAILURE.search(line)), None)
    last = next((line.strip() for line in reversed(run.console_tail) if line.strip()), "no output")
    if failure:
        # qemu's own words, without what vng printed on the same line before them
        why = failure[failure.index("qemu-system"):] if "qemu-system" in failure else f"qemu: {failure}"
    elif run.timed_out:
        why = f"{run.timed_out} (last line: {last})"
    else:
        why = f"the guest stopped before its command (vng exit {run.returncode}; last line: {last})"
    return Verdict(False, why, seconds)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def choose(requested: str, kernel: str, say=_say) -> str:
    """"kvm" or "tcg" for ``--vm-accel requested``; probes KVM once per kernel and machine.

    ``auto`` falls back to "tcg" saying why in one line; ``kvm`` where KVM cannot boot the kernel
    raises DamoError with the reason.
    """
    if requested == "tcg":
        return "tcg"
    name = Path(kernel).name
    why = kvm_unusable()
    if why is None:
        path = verdict_file(kernel)
        verdict = Verdict.load(path)
        if verdict is None:
            say(f"checking whether KVM can boot {name} here (once per kernel and machine; "
                f"at most {PROBE_QUIET_SECONDS:.0f} s without a sign of life)")
            verdict = probe(kernel)
            try:
                verdict.save(path)
            except OSError as err:       # an unwritable cache costs a probe per record, nothing more
                say(f"cannot keep the KVM verdict in {path} ({err.strerror}); the next record probes again")
        if verdict.kvm_works:
            return "kvm"
        kept = f" (verdict kept in {verdict.file})" if verdict.file else ""
        why = f"KVM could not boot {name} here: {verdict.reason}{kept}"
    if requested == "kvm":
        raise DamoError(f"--vm-accel kvm: {why}")
    say(f"--vm-accel auto: using software emulation, since {why}")
    return "tcg"


def would_use(kernel: str | None) -> str:
    """What ``--vm-accel auto`` would pick for ``kernel``, without probing (for status displays)."""
    why = kvm_unusable()
    if why:
        return f"software emulation (tcg): {why}"
    if not kernel:
        return "KVM if a first boot of the VM kernel under KVM reaches its command (no VM kernel yet)"
    verdict = Verdict.load(verdict_file(kernel))
    if verdict is None:
        return (f"KVM if a first boot of {Path(kernel).name} under KVM reaches its command "
                f"(not probed yet; the first record probes), else software emulation (tcg)")
    if verdict.kvm_works:
        return f"KVM (a first boot of {Path(kernel).name} reached its command in {verdict.seconds:.0f} s)"
    return f"software emulation (tcg): KVM could not boot {Path(kernel).name} here: {verdict.reason}"


def ticker_wanted(choice: str, accel: str) -> bool:
    """Does the guest's record run the TLB-flush ticker (damo.kernel.tlb_ticker)?"""
    if choice == "on":
        return True
    if choice == "off":
        return False
    return accel == "tcg" and TICKER_PROVEN_SAFE

