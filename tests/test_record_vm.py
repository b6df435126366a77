"""`damo record --vm` on the host side, with a stand-in for virtme-ng's `vng`.

The stand-in runs the guest's shell line right here, so what is checked is the plumbing: the
prerequisites, the vng command line, the record landing at -o (mode 0600, messages naming it),
the exit status, Ctrl-C reaching the guest through the stop file. The real VM runs in
tests/test_kernel_vm.py.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from damo.formats import read_record

REPO = Path(__file__).resolve().parents[1]
ZIGZAG = "masim/configs/zigzag_30secs.cfg"

FAKE_VNG = textwrap.dedent("""\
    #!{python}
    import os, shutil, subprocess, sys, time
    args = sys.argv[1:]
    rwdir, script = args[args.index("--rwdir") + 1], args[args.index("--exec") + 1]
    with open(os.environ["FAKE_VNG_LOG"], "w") as log:
        log.write("\\n".join(args))
    if os.environ.get("FAKE_VNG_MODE") == "wait_for_stop":
        # A guest record running until damo on the host asks it to stop.
        open(os.environ["FAKE_VNG_LOG"] + ".started", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(rwdir, "stop")) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.copy(os.environ["FAKE_VNG_RECORD"], os.path.join(rwdir, "record.data"))
        with open(os.path.join(rwdir, "status"), "w") as f:
            f.write("130\\n")
        sys.exit(0)
    sys.exit(subprocess.call(["/bin/sh", "-c", script]))
    """)


@pytest.fixture
def fake_vm(tmp_path):
    """A machine with every --vm prerequisite, vng being the stand-in: (env, kernel, vng log)."""
    cache, tools = tmp_path / "cache", tmp_path / "tools"
    kernel = cache / "kernels" / "6.12.1" / "boot" / "vmlinuz-6.12.1+deb12-amd64"
    kernel.parent.mkdir(parents=True)
    kernel.write_bytes(b"not a kernel")
    (cache / "venv" / "bin").mkdir(parents=True)
    tools.mkdir()
    vng = cache / "venv" / "bin" / "vng"
    vng.write_text(FAKE_VNG.format(python=sys.executable))
    for tool in ("qemu-system-x86_64", "depmod", "busybox", "udevd"):
        (tools / tool).write_text("#!/bin/sh\nexit 1\n")
    for exe in [vng, *tools.iterdir()]:
        exe.chmod(0o755)
    log = tmp_path / "vng.log"
    env = dict(os.environ, DAMO_VM_CACHE=str(cache), PATH=f"{tools}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(REPO), NO_COLOR="1", FAKE_VNG_LOG=str(log))
    return env, kernel, log


def damo(env: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "damo", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_record_made_in_the_vm_lands_at_out(fake_vm, tmp_path):
    env, kernel, log = fake_vm
    (tmp_path / "here").mkdir()
    config = str(REPO / ZIGZAG)
    result = damo(env, "record", "--vm", "-o", "runs/vm.data", config, cwd=tmp_path / "here")
    assert result.returncode == 0, result.stderr
    vng_args = log.read_text().splitlines()
    assert vng_args[:3] == ["--run", str(kernel), "--disable-kvm"]
    out = tmp_path / "here" / "runs" / "vm.data"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # The guest ran the same record (here: the simulator, so the bytes are known).
    direct = damo(env, "record", "-o", str(tmp_path / "direct.data"), config, cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr
    assert out.read_bytes() == (tmp_path / "direct.data").read_bytes()
    # Every message names the file on this machine, none the guest's temporary directory.
    assert "view it with: damo report heatmap -i runs/vm.data\n" in result.stderr
    assert "the VM record is at runs/vm.data" in result.stderr
    assert ".damo-vm-" not in result.stderr
    assert [p.name for p in out.parent.iterdir()] == ["vm.data"]


def test_the_guest_exit_status_is_damos(fake_vm, tmp_path):
    env, kernel, log = fake_vm
    result = damo(env, "record", "--vm", "-o", "x.data", "no-such-dir/missing.cfg", cwd=tmp_path)
    assert result.returncode == 2
    assert "damo: error: " in result.stderr and "missing.cfg" in result.stderr
    assert not (tmp_path / "x.data").exists() and not list(tmp_path.glob(".damo-vm-*"))


def test_ctrl_c_stops_the_guest_record_and_keeps_it(fake_vm, tmp_path):
    env, kernel, log = fake_vm
    made = damo(env, "record", "-o", str(tmp_path / "made.data"), str(REPO / ZIGZAG), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    env = dict(env, FAKE_VNG_MODE="wait_for_stop", FAKE_VNG_RECORD=str(tmp_path / "made.data"))
    proc = subprocess.Popen([sys.executable, "-m", "damo", "record", "--vm", "-o", "vm.data", "--", "sleep", "100"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{log}.started").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "stopping the record inside the VM" in stderr
    assert read_record(tmp_path / "vm.data").nr_snapshots == read_record(tmp_path / "made.data").nr_snapshots


def test_missing_prerequisites_are_named_with_the_fix(tmp_path):
    env = dict(os.environ, DAMO_VM_CACHE=str(tmp_path / "empty"), PYTHONPATH=str(REPO))
    result = damo(env, "record", "--vm", "-o", "x.data", "--", "sleep", "1", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("damo: error: --vm needs ") and "run `damo vm setup`" in line


def test_a_missing_vm_kernel_is_named(fake_vm, tmp_path):
    env, kernel, log = fake_vm
    result = damo(env, "record", "--vm", "--vm-kernel", str(tmp_path / "nope"), "--", "sleep", "1", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2, f"damo: error: --vm-kernel: {tmp_path / 'nope'}: no such kernel image\n")
    assert not log.exists()
