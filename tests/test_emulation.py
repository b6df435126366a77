"""Telling QEMU's software emulation (TCG), under which DAMON misses a busy process's accesses."""
from __future__ import annotations

from damo.kernel.emulation import cpu_is_emulated


def test_emulated_cpu_is_told_by_its_model_name(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                       "model name\t: QEMU TCG CPU version 2.5+\nflags\t\t: fpu hypervisor\n")
    assert cpu_is_emulated(str(cpuinfo))
    # KVM guests (hardware MMU, accessed bits as on bare metal) and real CPUs are not.
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu hypervisor\n")
    assert not cpu_is_emulated(str(cpuinfo))
    assert not cpu_is_emulated(str(tmp_path / "missing"))
