"""`damo vm setup`'s kernel series (6.12, and 6.17 through a private apt source list) and the
guest's kernel command line, without apt or a VM."""
from __future__ import annotations

import subprocess

import pytest

from conftest import run_cli
from damo import vm
from damo.errors import DamoError
from damo.sources.vm import GUEST_CMDLINE, vng_command


def put_kernel(cache, version: str, release: str) -> None:
    image = cache / "kernels" / version / "boot" / f"vmlinuz-{release}"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"")


def test_each_series_has_its_own_newest_kernel(tmp_path):
    put_kernel(tmp_path, "6.12.117", "6.12.117+deb12-amd64")
    put_kernel(tmp_path, "6.12.9", "6.12.9+deb12-amd64")
    assert vm.cached_kernel(tmp_path, "6.17") is None
    put_kernel(tmp_path, "6.17.13", "6.17.13+deb13-amd64")
    put_kernel(tmp_path, "6.17.8", "6.17.8+deb13-amd64")
    assert vm.cached_kernel(tmp_path).name == "vmlinuz-6.12.117+deb12-amd64"
    assert vm.cached_kernel(tmp_path, "6.17").name == "vmlinuz-6.17.13+deb13-amd64"
    with pytest.raises(DamoError, match="unknown kernel series '6.1'"):
        vm.cached_kernel(tmp_path, "6.1")


def test_vm_kernel_takes_a_series_or_a_path(tmp_path, monkeypatch):
    monkeypatch.setenv("DAMO_VM_CACHE", str(tmp_path))
    with pytest.raises(DamoError, match=r"--vm-kernel 6.17: not fetched yet; run `damo vm setup --kernel 6.17`"):
        vm.resolve_vm_kernel("6.17")
    put_kernel(tmp_path, "6.17.13", "6.17.13+deb13-amd64")
    assert vm.resolve_vm_kernel("6.17").endswith("/kernels/6.17.13/boot/vmlinuz-6.17.13+deb13-amd64")
    assert vm.resolve_vm_kernel("/boot/vmlinuz-x") == "/boot/vmlinuz-x"
    assert vm.resolve_vm_kernel(None) is None


def test_the_6_17_source_is_apts_own_and_6_12_uses_the_machines(tmp_path):
    assert vm.apt_options(tmp_path, "6.12") == []
    options = vm.apt_options(tmp_path, "6.17")
    settings = dict(option.split("=", 1) for option in options[1::2])
    assert (tmp_path / "apt" / "6.17" / "sources.list").read_text() == (
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian trixie-backports main\n")
    assert settings["Dir::Etc::SourceList"] == str(tmp_path / "apt" / "6.17" / "sources.list")
    assert settings["Dir::Etc::SourceParts"] == "/dev/null"
    assert settings["Dir::State::Lists"].startswith(str(tmp_path))
    assert (tmp_path / "apt" / "6.17" / "lists" / "partial").is_dir()


def test_the_newest_package_of_a_series(monkeypatch):
    listing = ("linux-image-6.17.8+deb13-amd64 - Linux 6.17.8 for 64-bit PCs (signed)\n"
               "linux-image-6.17.13+deb13-amd64 - Linux 6.17.13 for 64-bit PCs (signed)\n"
               "linux-image-6.17.13+deb13-cloud-amd64 - Linux 6.17.13 for x86-64 cloud (signed)\n"
               "linux-image-6.17.13+deb13-rt-amd64 - Linux 6.17.13 for 64-bit PCs (signed), PREEMPT_RT\n")
    calls = []

    def fake_run(cmd, what, quiet=False):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=listing, stderr="")

    monkeypatch.setattr(vm, "_run", fake_run)
    assert vm.newest_kernel_package("6.17", ["-o", "X=1"]) == ("linux-image-6.17.13+deb13-amd64", "6.17.13")
    assert calls[0] == ["apt-cache", "-o", "X=1", "search", "--names-only",
                        r"^linux-image-(6\.17\.[0-9]+)\+deb13-amd64$"]
    assert vm.newest_kernel_package("6.12") is None      # no 6.12 package in that listing


def test_an_unknown_series_is_an_argparse_error():
    done = run_cli("vm", "setup", "--kernel", "9.9", "--yes")
    assert done.returncode == 2 and "invalid choice: '9.9'" in done.stderr


def test_the_guest_boots_with_damon_stat_off_and_the_sched_tracepoints_on(tmp_path):
    argv = vng_command("/k/vmlinuz", tmp_path, "true")
    assert argv[argv.index("--append") + 1] == GUEST_CMDLINE == (
        "damon_stat.enabled=N trace_event=sched:sched_switch,sched:sched_wakeup,sched:sched_wakeup_new")
