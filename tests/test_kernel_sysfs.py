"""The sysfs driver against a fake DAMON tree in a temporary directory (never the real one)."""
from __future__ import annotations

import errno
import os
import shutil

import pytest

from damo.errors import DamoError
from damo.formats import read_record
from damo.kernel.sysfs import (U32_MAX, U64_MAX, DamonSysfs, ForeignKdamondError, KdamondSetup, OwnedKdamond,
                               SysfsWriteError, check_free)
from damo.model import MonitoringAttrs
from damo.recording import RecordRequest
from conftest import run_cli
from damo.sources.kernel import KernelRecorder, largest_system_ram, resolve_target
from fake_damon import FakeDamon

CTX = "kdamonds/0/contexts/0"
FOREIGN_RUNNING = ("kdamond 0 (pid 77) is already running and belongs to someone else; damo will not touch it. "
                   "Use --vm or the simulator (damo record zigzag, a bundled masim config).")


@pytest.fixture
def fake(tmp_path) -> FakeDamon:
    return FakeDamon(tmp_path, alive_pids={123})


def driver(fake: FakeDamon) -> DamonSysfs:
    return DamonSysfs(fake.root, writer=fake.write)


def vaddr_setup(**kw) -> KdamondSetup:
    return KdamondSetup(ops="vaddr", attrs=MonitoringAttrs(), pid=123, **kw)


def test_vaddr_start_and_stop_write_damos_order(fake):
    with OwnedKdamond(driver(fake), vaddr_setup()) as kdamond:
        assert kdamond.start() == 4242
        assert fake.get("kdamonds/0/state") == "on"
    assert fake.log == [
        ("kdamonds/nr_kdamonds", "1"),
        ("kdamonds/0/contexts/nr_contexts", "1"),
        (f"{CTX}/operations", "vaddr"),
        (f"{CTX}/monitoring_attrs/intervals/sample_us", "5000"),
        (f"{CTX}/monitoring_attrs/intervals/aggr_us", "100000"),
        (f"{CTX}/monitoring_attrs/intervals/update_us", "1000000"),
        (f"{CTX}/monitoring_attrs/nr_regions/min", "10"),
        (f"{CTX}/monitoring_attrs/nr_regions/max", "1000"),
        (f"{CTX}/targets/nr_targets", "1"),
        (f"{CTX}/targets/0/pid_target", "123"),
        ("kdamonds/0/state", "on"),
        ("kdamonds/0/state", "off"),
        ("kdamonds/nr_kdamonds", "0"),
    ]
    assert fake.get("kdamonds/nr_kdamonds") == "0"
    assert not (fake.root / "kdamonds/0").exists()


def test_paddr_regions_and_stat_scheme(fake):
    setup = KdamondSetup(ops="paddr", attrs=MonitoringAttrs(), regions=[(4096, 1 << 30)], stat_scheme=True)
    with OwnedKdamond(driver(fake), setup) as kdamond:
        kdamond.start()
        assert fake.get(f"{CTX}/targets/0/regions/0/start") == "4096"
        assert fake.get(f"{CTX}/targets/0/regions/0/end") == str(1 << 30)
        pattern = f"{CTX}/schemes/0/access_pattern"
        # Raised maxima: otherwise the stat scheme matches nothing and tried_regions stays empty.
        assert fake.get(f"{pattern}/sz/max") == str(U64_MAX)
        assert fake.get(f"{pattern}/nr_accesses/max") == str(U32_MAX)
        assert fake.get(f"{pattern}/age/max") == str(U32_MAX)
        assert fake.get(f"{CTX}/schemes/0/action") == "stat"
        fake.tried_regions = [(4096, 8192, 3, 7), (8192, 1 << 30, 0, 9)]
        kdamond.update_tried_regions()
        assert kdamond.read_tried_regions() == ([4096, 8192], [8192, 1 << 30], [3, 0], [7, 9])
    writes = [rel for rel, _ in fake.log]
    assert writes.index(f"{CTX}/targets/0/regions/nr_regions") < writes.index(f"{CTX}/schemes/nr_schemes")
    assert fake.get("kdamonds/nr_kdamonds") == "0"


def test_refuses_a_running_foreign_kdamond_and_writes_nothing(fake):
    fake.add_foreign_kdamond(state="on", pid=77)
    before = fake.snapshot()
    with pytest.raises(ForeignKdamondError) as err:
        with OwnedKdamond(driver(fake), vaddr_setup()):
            pass
    assert str(err.value) == FOREIGN_RUNNING
    assert fake.log == []
    assert fake.snapshot() == before


def test_refuses_a_stopped_foreign_kdamond_because_nr_kdamonds_would_wipe_it(fake):
    fake.add_foreign_kdamond(state="off")
    before = fake.snapshot()
    with pytest.raises(ForeignKdamondError, match=r"^kdamond 0 is set up \(state off\) by someone else"):
        check_free(driver(fake))
    with pytest.raises(ForeignKdamondError):
        OwnedKdamond(driver(fake), vaddr_setup()).__enter__()
    assert fake.log == [] and fake.snapshot() == before


def test_missing_sysfs_says_so(tmp_path):
    with pytest.raises(DamoError, match=r"DAMON's sysfs interface is not at .*Use --vm or the simulator"):
        check_free(DamonSysfs(tmp_path / "nothing"))


@pytest.fixture
def short_ebusy_retries(monkeypatch):
    """A lasting EBUSY is raised after 0.1 s of retries instead of 2 s."""
    import damo.kernel.sysfs as sysfs_mod
    monkeypatch.setattr(sysfs_mod, "EBUSY_RETRY_SECONDS", 0.1)


def test_ebusy_on_nr_kdamonds_is_one_line_and_changes_nothing(fake, short_ebusy_retries):
    fake.fail[("kdamonds/nr_kdamonds", "1")] = errno.EBUSY
    with pytest.raises(SysfsWriteError) as err:
        with OwnedKdamond(driver(fake), vaddr_setup()):
            pass
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"writing '1' to {fake.root}/kdamonds/nr_kdamonds failed (EBUSY: ")
    assert "another DAMON user is active" in str(err.value)
    assert fake.get("kdamonds/nr_kdamonds") == "0"
    assert fake.log.count(("kdamonds/nr_kdamonds", "1")) > 1        # retried before giving up


def test_a_write_failing_with_ebusy_for_a_moment_is_retried(fake):
    """A write during a kdamond callback fails with EBUSY (try-locked mutex): it goes through on a retry."""
    busy = [3]

    def busy_three_times(path, value):
        if value == "on" and busy[0]:
            busy[0] -= 1
            raise OSError(errno.EBUSY, "Device or resource busy")
        fake.write(path, value)

    with OwnedKdamond(DamonSysfs(fake.root, writer=busy_three_times), vaddr_setup()) as kdamond:
        kdamond.start()
        assert fake.running() == [0] and busy == [0]
    assert fake.running() == [] and fake.get("kdamonds/nr_kdamonds") == "0"


def test_ebusy_on_start_restores_nr_kdamonds(fake, short_ebusy_retries):
    fake.fail[("kdamonds/0/state", "on")] = errno.EBUSY
    with pytest.raises(DamoError, match=r"^the kernel refused to start DAMON \(EBUSY\): another DAMON user"):
        with OwnedKdamond(driver(fake), vaddr_setup()) as kdamond:
            kdamond.start()
    assert fake.get("kdamonds/nr_kdamonds") == "0"
    assert fake.log[-1] == ("kdamonds/nr_kdamonds", "0")


def test_missing_ops_set_is_named_and_restored(tmp_path):
    fake = FakeDamon(tmp_path, avail_operations="paddr", alive_pids={123})
    with pytest.raises(DamoError) as err:
        with OwnedKdamond(driver(fake), vaddr_setup()):
            pass
    assert str(err.value) == ("the 'vaddr' operations set is not available in this kernel (it has: paddr). "
                              "Use --vm or the simulator (damo record zigzag, a bundled masim config).")
    assert fake.get("kdamonds/nr_kdamonds") == "0"


def test_target_gone_before_start(fake):
    setup = KdamondSetup(ops="vaddr", attrs=MonitoringAttrs(), pid=999)
    with pytest.raises(DamoError, match=r"^the target \(pid 999\) exited before monitoring started$"):
        with OwnedKdamond(driver(fake), setup) as kdamond:
            kdamond.start(target_alive=lambda: False)
    assert fake.get("kdamonds/nr_kdamonds") == "0"


def test_close_after_the_kdamond_stopped_by_itself(fake):
    with OwnedKdamond(driver(fake), vaddr_setup()) as kdamond:
        kdamond.start()
        fake.stop()                 # the target exited: the kernel turned the kdamond off
        assert not kdamond.running()
    assert ("kdamonds/0/state", "off") not in fake.log
    assert fake.get("kdamonds/nr_kdamonds") == "0"


def test_close_tolerates_eperm_when_off_races_with_the_kdamond_ending(fake):
    def write(path, value):
        if path.name == "state" and value == "off":
            fake.stop()             # it ended just before our 'off' arrived
            raise OSError(errno.EPERM, "not running")
        fake.write(path, value)

    with OwnedKdamond(DamonSysfs(fake.root, writer=write), vaddr_setup()) as kdamond:
        kdamond.start()
    assert fake.get("kdamonds/nr_kdamonds") == "0"


def test_interrupt_inside_the_block_restores_everything(fake):
    with pytest.raises(KeyboardInterrupt):
        with OwnedKdamond(driver(fake), vaddr_setup()) as kdamond:
            kdamond.start()
            raise KeyboardInterrupt
    assert fake.running() == []
    assert fake.get("kdamonds/nr_kdamonds") == "0"


def test_close_is_idempotent_and_leaves_other_trees_alone(fake):
    kdamond = OwnedKdamond(driver(fake), vaddr_setup())
    kdamond.close()                             # never created: nothing to do
    assert fake.log == []
    with kdamond:
        kdamond.start()
    n = len(fake.log)
    kdamond.close()
    assert len(fake.log) == n


def test_largest_system_ram(tmp_path):
    iomem = tmp_path / "iomem"
    iomem.write_text("00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n"
                     "00100000-bffdffff : System RAM\n  01000000-01ffffff : Kernel code\n"
                     "100000000-13fffffff : System RAM\n")
    assert largest_system_ram(str(iomem)) == (0x100000, 0xBFFE0000)
    iomem.write_text("00000000-00000000 : System RAM\n")
    with pytest.raises(DamoError, match="needs root"):
        largest_system_ram(str(iomem))


def request(target, **kw) -> RecordRequest:
    return RecordRequest(target=target, attrs=MonitoringAttrs(), **kw)


def test_resolve_target(tmp_path):
    t = resolve_target(request(["sleep 5"]))
    assert (t.ops, t.argv) == ("vaddr", ["sleep", "5"])
    t = resolve_target(request(["sleep", "5"], regions=[(4096, 8192)]))
    assert (t.ops, t.argv, t.regions) == ("fvaddr", ["sleep", "5"], [(4096, 8192)])
    t = resolve_target(request(["echo hi | cat"], shell=True))
    assert t.argv == [shutil.which("bash") or "/bin/sh", "-c", "echo hi | cat"]
    t = resolve_target(request(["paddr"], regions=[(0, 1 << 20)]))
    assert (t.ops, t.regions) == ("paddr", [(0, 1 << 20)])
    assert resolve_target(request([str(os.getpid())])).pid == os.getpid()
    with pytest.raises(DamoError, match="^no process with pid 999999999$"):
        resolve_target(request(["999999999"]))
    with pytest.raises(DamoError, match="^record: no such command: ./no-such-program$"):
        resolve_target(request(["./no-such-program"]))
    plain = tmp_path / "notes.txt"
    plain.write_text("not a program")
    plain.chmod(0o644)
    with pytest.raises(DamoError, match=f"^record: {plain}: not an executable file$"):
        resolve_target(request([str(plain)]))


def test_a_missing_command_is_named_before_any_kernel_check(tmp_path):
    """On this machine a foreign kdamond runs (or DAMON is absent): neither is what the user must hear."""
    for target in ("./nonexistent", "no-such-program-xyz --arg"):
        done = run_cli("record", "-o", str(tmp_path / "x.data"), target)
        assert (done.returncode, done.stderr) == (
            2, f"damo: error: record: no such command: {target.split()[0]}\n"), done.stderr
    assert not (tmp_path / "x.data").exists()


def test_recorder_with_tried_regions_fallback_restores_and_completes_the_file(tmp_path, monkeypatch):
    """The whole kernel record flow on the fake tree, without tracefs: a workload of ours that
    exits by itself ends the record; the file is complete and the tree is as before."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    fake = FakeDamon(tmp_path)
    fake.tried_regions = [(1 << 20, 2 << 20, 5, 1), (2 << 20, 6 << 20, 0, 3)]
    real_write = fake.write

    def write(path, value):          # the launched workload's pid is alive for the fake kernel
        if path.name == "pid_target":
            fake.alive_pids.add(int(value))
        real_write(path, value)

    before = fake.snapshot()
    out = tmp_path / "k.data"
    req = request(["python3 -c pass"], out=str(out))
    rc = KernelRecorder(req, sysfs=DamonSysfs(fake.root, writer=write), tracefs_root=tmp_path / "no-tracefs").run()
    assert rc == 0
    assert fake.snapshot() == before
    record = read_record(out)
    assert record.meta.kernel_release == os.uname().release
    assert record.meta.target_kind == "vaddr" and record.meta.extra["collector"] == "tried_regions"
    for snap in record.snapshots():
        assert snap.start.tolist() == [1 << 20, 2 << 20] and snap.nr_accesses.tolist() == [5, 0]
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_recorder_refuses_before_launching_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    fake = FakeDamon(tmp_path)
    fake.add_foreign_kdamond()
    marker = tmp_path / "ran"
    req = request([f"touch {marker}"], out=str(tmp_path / "x.data"))
    with pytest.raises(ForeignKdamondError):
        KernelRecorder(req, sysfs=DamonSysfs(fake.root, writer=fake.write), tracefs_root=None).run()
    assert not marker.exists() and not (tmp_path / "x.data").exists()
    assert fake.log == []


def test_a_read_failing_with_ebusy_is_retried(tmp_path, monkeypatch):
    """DAMON's sysfs try-locks: a read during a kdamond callback fails with EBUSY, and is retried."""
    import errno as errno_mod
    import pathlib

    from damo.kernel.sysfs import DamonSysfs as Sysfs
    (tmp_path / "kdamonds").mkdir()
    (tmp_path / "kdamonds" / "nr_kdamonds").write_text("1\n")
    real_read_text, failures = pathlib.Path.read_text, [2]

    def busy_twice(self, *args, **kwargs):
        if failures[0]:
            failures[0] -= 1
            raise OSError(errno_mod.EBUSY, "Device or resource busy")
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", busy_twice)
    assert Sysfs(tmp_path).nr_kdamonds() == 1 and failures == [0]
