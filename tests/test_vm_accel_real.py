"""`--vm-accel auto` on this very machine, with real boots: the first record probes KVM once and
then records (under KVM where it boots the kernel, else under software emulation, saying why in
one line); the second record takes the kept verdict and does not probe.

The stand-in `vng` tests (tests/test_record_vm.py) cover the bounded probe and every message;
this one proves the real thing: qemu's real answer on this machine's /dev/kvm, the real verdict
file, and a real kernel record both times. The verdicts go into a fresh cache (the kernel and
virtme-ng are the real ones, linked in), so a verdict the user already has is neither used nor
touched. Two boots: about 2.5 minutes on a quiet 2-core machine under emulation.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from damo import vm
from damo.formats import read_record
from damo.vm_accel import KVM_DEVICE_ENV, kvm_unusable
from tests.vm_runner import REPO, check_prerequisites

PROBE_LINE = "checking whether KVM can boot "
FALLBACK_LINE = "--vm-accel auto: using software emulation, since "
# One boot, a 3-second workload and the copy back: 66-69 s quiet, 2-3x that at load 8.
RECORD_TIMEOUT_S = 900


def record_in_vm(env: dict, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "damo", "record", "--vm", "-o", str(out), "sleep", "3"],
                          cwd=out.parent, env=env, capture_output=True, text=True, timeout=RECORD_TIMEOUT_S)


def fresh_verdict_cache(tmp_path: Path) -> Path:
    """A VM cache with the real kernel and virtme-ng in it, and no KVM verdict yet."""
    real = vm.cache_dir()
    cache = tmp_path / "vm-cache"
    cache.mkdir()
    for entry in real.iterdir():
        if entry.name != "accel":
            (cache / entry.name).symlink_to(entry)
    return cache


def snapshots_of(path: Path) -> int:
    """How many snapshots the record holds, read back (at least one region each)."""
    record = read_record(path)
    assert (record.offsets[1:] > record.offsets[:-1]).all()
    return len(record.start_ns)


def test_auto_probes_once_records_then_uses_the_kept_verdict(tmp_path):
    check_prerequisites()
    env = dict(os.environ, DAMO_VM_CACHE=str(fresh_verdict_cache(tmp_path)), PYTHONPATH=str(REPO))
    env.pop(KVM_DEVICE_ENV, None)             # the machine's own /dev/kvm, as a user has it

    first = record_in_vm(env, tmp_path / "first.data")
    assert first.returncode == 0, first.stderr[-3000:]
    probed = [line for line in first.stderr.splitlines() if line.startswith(PROBE_LINE)]
    fell_back = [line for line in first.stderr.splitlines() if line.startswith(FALLBACK_LINE)]
    verdicts = list((Path(env["DAMO_VM_CACHE"]) / "accel").glob("*.json"))
    no_kvm = kvm_unusable()
    if no_kvm is None:
        # qemu had a KVM device to try: the first record probed, and kept what it found.
        assert len(probed) == 1, first.stderr[-3000:]
        assert len(verdicts) == 1
        verdict = json.loads(verdicts[0].read_text())
        # Either KVM booted the kernel (no fallback line), or the one fallback line says why.
        assert len(fell_back) == (0 if verdict["kvm_works"] else 1), first.stderr[-3000:]
        if fell_back:
            assert verdict["reason"] in fell_back[0] and str(verdicts[0]) in fell_back[0]
        print(f"probe: kvm_works={verdict['kvm_works']} in {verdict['seconds']} s; {verdict['reason']}")
    else:
        # No usable /dev/kvm: no probe, and one line saying so.
        assert probed == [] and verdicts == [] and fell_back == [FALLBACK_LINE + no_kvm], first.stderr[-3000:]
    # The default --vm-tlb-flush auto: the ticker under emulation (it ran in this record), none under KVM.
    booting = [line for line in first.stderr.splitlines() if line.startswith("booting ")]
    assert len(booting) == 1 and booting[0].endswith("; TLB-flush ticker on)") == bool(fell_back), booting
    assert snapshots_of(tmp_path / "first.data") >= 10           # 3 s at 100 ms aggregations

    second = record_in_vm(env, tmp_path / "second.data")
    assert second.returncode == 0, second.stderr[-3000:]
    assert not any(line.startswith(PROBE_LINE) for line in second.stderr.splitlines()), second.stderr[-3000:]
    # The same choice as the first record, from the kept verdict (the same fallback line, if any).
    assert [line for line in second.stderr.splitlines() if line.startswith(FALLBACK_LINE)] == fell_back
    assert list((Path(env["DAMO_VM_CACHE"]) / "accel").glob("*.json")) == verdicts
    assert snapshots_of(tmp_path / "second.data") >= 10
