"""The DAMON debugfs driver against a fake ``<debugfs>/damon`` directory (never the real one)."""
from __future__ import annotations

import errno
import os

import pytest

from damo.errors import DamoError
from damo.kernel.debugfs import DamonDebugfs, DebugfsKdamond, check_free
from damo.kernel.sysfs import ForeignKdamondError, KdamondSetup
from damo.model import MonitoringAttrs
from damo.recording import RecordRequest
from damo.sources.kernel import KernelRecorder
from fake_debugfs import FakeDebugfs

ATTRS = "5000 100000 1000000 10 1000\n"
FOREIGN = ("DAMON's debugfs interface is in use (kdamond pid 77) by someone else; damo will not touch it. "
           "Use --vm or the simulator (damo record zigzag, a bundled masim config).")


@pytest.fixture
def fake(tmp_path) -> FakeDebugfs:
    return FakeDebugfs(tmp_path, alive_pids={123})


def driver(fake: FakeDebugfs) -> DamonDebugfs:
    return DamonDebugfs(fake.root, writer=fake.write)


def setup(ops="vaddr", pid=123, regions=()) -> KdamondSetup:
    return KdamondSetup(ops=ops, attrs=MonitoringAttrs(5000, 100000, 1000000, 10, 1000), pid=pid,
                        regions=list(regions))


def test_vaddr_write_order_and_everything_restored(fake):
    before = fake.snapshot()
    with DebugfsKdamond(driver(fake), setup()) as kdamond:
        assert kdamond.start() == 4242
        assert fake.get("monitor_on_DEPRECATED") == "on\n" and kdamond.running()
    assert fake.log == [
        ("attrs", ATTRS), ("target_ids", "123\n"), ("monitor_on_DEPRECATED", "on"),
        ("monitor_on_DEPRECATED", "off"),
        ("attrs", "5000 100000 60000000 10 1000\n"), ("target_ids", "\n"), ("init_regions", "\n"),
    ]
    after = fake.snapshot()
    assert after.pop("init_regions") == "\n" and before.pop("init_regions") == ""
    assert after == before
    assert not any(name in ("mk_contexts", "rm_contexts", "schemes") for name, _ in fake.log)


def test_paddr_regions_by_index_or_by_id_on_older_kernels(tmp_path):
    for by_id, expected in ((False, "0 4096 8192\n"), (True, "42 4096 8192\n")):
        fake = FakeDebugfs(tmp_path / str(by_id), init_regions_by_id=by_id)
        with DebugfsKdamond(driver(fake), setup("paddr", None, [(4096, 8192)])) as kdamond:
            kdamond.start()
            assert fake.get("target_ids") == "42\n" and fake.get("init_regions") == expected
        assert fake.get("monitor_on_DEPRECATED") == "off\n"


@pytest.mark.parametrize("how", ["monitor_on", "kdamond_pid"])
def test_a_foreign_monitor_is_refused_and_nothing_is_written(fake, how):
    if how == "monitor_on":
        fake.start_foreign()
        (fake.root / "kdamond_pid").write_text("none\n")
        message = FOREIGN.replace("kdamond pid 77", "monitor_on_DEPRECATED is on")
    else:
        (fake.root / "kdamond_pid").write_text("77\n")
        message = FOREIGN
    before = fake.snapshot()
    with pytest.raises(ForeignKdamondError) as err:
        with DebugfsKdamond(driver(fake), setup()):
            pass
    assert str(err.value) == message
    assert fake.log == [] and fake.snapshot() == before


def test_a_failed_write_restores_the_attrs(fake):
    fake.fail["target_ids"] = errno.ENOMEM
    with pytest.raises(DamoError, match=r"writing '123' to .*target_ids failed \(ENOMEM"):
        with DebugfsKdamond(driver(fake), setup()):
            pass
    assert fake.get("attrs") == "5000 100000 60000000 10 1000\n"
    assert fake.get("monitor_on_DEPRECATED") == "off\n"


def test_an_exited_target_is_named(fake):
    with DebugfsKdamond(driver(fake), setup(pid=999)) as kdamond:
        with pytest.raises(DamoError, match=r"^the target \(pid 999\) exited before monitoring started$"):
            kdamond.start(target_alive=lambda: False)
    assert fake.get("attrs") == "5000 100000 60000000 10 1000\n"


def test_a_kdamond_that_stopped_by_itself_is_restored_after(fake):
    with DebugfsKdamond(driver(fake), setup()) as kdamond:
        kdamond.start()
        fake.stop()                       # the target exited
        assert not kdamond.running()
    assert fake.log[-3:] == [("attrs", "5000 100000 60000000 10 1000\n"), ("target_ids", "\n"),
                             ("init_regions", "\n")]


def test_missing_interface(tmp_path):
    with pytest.raises(DamoError, match=r"DAMON's debugfs interface is not at .*/nope"):
        check_free(DamonDebugfs(tmp_path / "nope"))


def test_recorder_refuses_a_foreign_monitor_before_launching_anything(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    fake.start_foreign()
    marker = tmp_path / "ran"
    req = RecordRequest(target=[f"touch {marker}"], attrs=MonitoringAttrs(), out=str(tmp_path / "x.data"))
    with pytest.raises(ForeignKdamondError):
        KernelRecorder(req, debugfs=driver(fake), tracefs_root=None).run()
    assert not marker.exists() and not (tmp_path / "x.data").exists() and fake.log == []


def test_recorder_needs_the_tracepoint(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    req = RecordRequest(target=["true"], attrs=MonitoringAttrs(), out=str(tmp_path / "x.data"))
    with pytest.raises(DamoError, match=r"^recording through DAMON's debugfs interface needs the "
                                        r"damon:damon_aggregated tracepoint"):
        KernelRecorder(req, debugfs=driver(fake), tracefs_root=tmp_path / "no-tracefs").run()
    assert fake.log == []


def test_a_debugfs_record_of_a_process_warns_that_children_are_not_followed(capsys):
    """debugfs's target_ids is EBUSY while monitoring, so children cannot be added: one warning
    line, unless --exclude_child_tasks (or paddr, which has no children)."""
    from damo.cli import main
    from damo.sources.kernel import debugfs_child_tasks_note
    request = RecordRequest(target=["123"], attrs=MonitoringAttrs())
    note = debugfs_child_tasks_note(request, "vaddr")
    assert note.startswith("damo: warning: DAMON's debugfs interface cannot add targets while monitoring")
    assert "\n" not in note and "--exclude_child_tasks" in note
    request.child_tasks = False
    assert debugfs_child_tasks_note(request, "vaddr") is None
    assert debugfs_child_tasks_note(RecordRequest(target=["paddr"], attrs=MonitoringAttrs()), "paddr") is None
    with pytest.raises(SystemExit):
        main(["record", "--help"])
    assert "not through DAMON's debugfs interface" in " ".join(capsys.readouterr().out.split())
