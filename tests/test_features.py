"""`damo features` on fake trees: what is found, and the fix for what is missing."""
from __future__ import annotations

from damo.features import check_features, render
from damo.kernel.sysfs import DamonSysfs
from fake_damon import FakeDamon
from conftest import run_cli


def by_name(features):
    return {f.name: f for f in features}


def test_foreign_kdamond_and_paddr_only(tmp_path):
    fake = FakeDamon(tmp_path, avail_operations="paddr")
    fake.add_foreign_kdamond(state="on", pid=77)
    tracefs = tmp_path / "tracing"
    (tracefs / "events/damon/damon_aggregated").mkdir(parents=True)
    f = by_name(check_features(DamonSysfs(fake.root), tracefs_root=tracefs, is_root=True))
    assert f["DAMON sysfs"].ok
    assert not f["ops vaddr"].ok and "CONFIG_DAMON_VADDR" in f["ops vaddr"].fix
    assert f["ops paddr"].ok
    assert not f["free DAMON"].ok
    assert f["free DAMON"].detail == ("1 kdamond(s) exist: kdamond 0 (pid 77) is already running and belongs "
                                      "to someone else")
    assert f["tracepoint damon/damon_aggregated"].ok and f["root"].ok
    assert fake.log == []


def test_an_emulated_cpu_is_said(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    for model, ok, detail in [("QEMU TCG CPU version 2.5+", False, "QEMU software emulation (TCG)"),
                              ("Intel(R) Xeon(R) Processor", True, "not emulated")]:
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: {model}\n")
        f = by_name(check_features(DamonSysfs(tmp_path / "none"), tracefs_root=None, is_root=True,
                                   cpuinfo=str(cpuinfo)))
        assert (f["CPU"].ok, f["CPU"].detail) == (ok, detail)
        assert ("masim does: --flush_tlb auto" in f["CPU"].fix) == (not ok)


def test_nothing_there(tmp_path):
    f = by_name(check_features(DamonSysfs(tmp_path / "none"), tracefs_root=None, is_root=False))
    assert not f["DAMON sysfs"].ok and "CONFIG_DAMON_SYSFS" in f["DAMON sysfs"].fix
    assert not f["tracefs"].ok and f["tracefs"].fix == "mount -t tracefs nodev /sys/kernel/tracing"
    assert not f["root"].ok
    text = render(list(f.values()))
    assert all(line.startswith(("[ok] ", "[--] ", "     ")) for line in text.splitlines())


def test_cli_runs_read_only():
    result = run_cli("features")
    assert result.returncode == 0
    assert "DAMON sysfs" in result.stdout and "vm: vng" in result.stdout


def old_kernel(tmp_path, sysfs=False, debugfs=False, page_idle=False, debugfs_fs=True):
    from damo.kernel.backend import KernelInterfaces
    tmp_path.mkdir(parents=True, exist_ok=True)
    if debugfs:
        (tmp_path / "debug/damon").mkdir(parents=True)
        (tmp_path / "debug/damon/attrs").write_text("5000 100000 60000000 10 1000\n")
    if page_idle:
        (tmp_path / "page_idle").mkdir()
        (tmp_path / "page_idle/bitmap").write_bytes(b"")
    (tmp_path / "filesystems").write_text("nodev\tsysfs\n" + ("nodev\tdebugfs\n" if debugfs_fs else ""))
    return KernelInterfaces(sysfs_root=FakeDamon(tmp_path).root if sysfs else tmp_path / "none",
                            debugfs_damon=tmp_path / "debug/damon", page_idle_bitmap=tmp_path / "page_idle/bitmap",
                            filesystems=tmp_path / "filesystems")


def test_the_record_backend_is_named_with_the_reason(tmp_path):
    cases = [({"sysfs": True, "debugfs": True, "page_idle": True}, "sysfs: the kernel has DAMON's sysfs interface"),
             ({"debugfs": True, "page_idle": True}, "debugfs: the kernel has DAMON's debugfs interface only"),
             ({"page_idle": True}, "page_idle: the kernel has no DAMON interface, but idle page tracking")]
    for i, (kwargs, detail) in enumerate(cases):
        kernel = old_kernel(tmp_path / str(i), **kwargs)
        f = by_name(check_features(DamonSysfs(kernel.sysfs_root), tracefs_root=None, is_root=True, kernel=kernel))
        assert f["record backend"].ok and f["record backend"].detail.startswith(detail), f["record backend"]
        assert f["page_idle"].ok and f["DAMON debugfs"].ok == kwargs.get("debugfs", False)


def test_debugfs_unmounted_is_the_last_resort(tmp_path):
    kernel = old_kernel(tmp_path)
    f = by_name(check_features(DamonSysfs(kernel.sysfs_root), tracefs_root=None, is_root=True, kernel=kernel))
    assert f["record backend"].detail.startswith("debugfs: no DAMON sysfs interface and debugfs is not mounted")
    assert f["DAMON debugfs"].detail == "debugfs is not mounted: unknown"


def test_no_backend_says_what_is_missing_and_what_works(tmp_path):
    kernel = old_kernel(tmp_path, debugfs_fs=False)
    f = by_name(check_features(DamonSysfs(kernel.sysfs_root), tracefs_root=None, is_root=True, kernel=kernel))
    assert not f["record backend"].ok
    assert f["record backend"].fix == (
        f"this kernel cannot monitor accesses: no DAMON sysfs ({tmp_path}/none), no DAMON debugfs "
        f"({tmp_path}/debug/damon), no idle page tracking ({tmp_path}/page_idle/bitmap). Use --vm (a VM with a "
        f"DAMON kernel) or the simulator (damo record zigzag, a bundled masim config).")
def test_record_ongoing_says_when_it_is_possible(tmp_path):
    fake = FakeDamon(tmp_path, avail_operations="paddr")
    fake.add_foreign_kdamond(state="on", pid=77)
    filesystems, kallsyms = tmp_path / "filesystems", tmp_path / "kallsyms"
    filesystems.write_text("nodev\tsysfs\nnodev\ttracefs\n")
    kallsyms.write_text("ffffffff8169fd50 T __traceiter_damon_aggregated\n")

    def ongoing(**kwargs):
        args = dict(tracefs_root=None, is_root=True, filesystems=str(filesystems), kallsyms=str(kallsyms),
                    modules_dir=tmp_path / "modules")
        return by_name(check_features(DamonSysfs(fake.root), **{**args, **kwargs}))["record ongoing"]

    f = ongoing()
    assert (f.ok, f.detail) == (True, "can follow kdamond 0 read-only, tracefs to be mounted privately "
                                      "(not for the machine): damo record ongoing")
    kallsyms.write_text("ffffffff8169fd50 T __traceiter_damon_monitor\n")
    f = ongoing(is_root=False)
    assert (f.ok, f.detail) == (False, "no damon_aggregated tracepoint; not root")
    assert f.fix == "damo report damon still shows the kdamonds' setup; run damo as root"
    filesystems.write_text("nodev\tsysfs\n")
    assert ongoing().detail == "no tracefs in this kernel"
    assert fake.log == []
