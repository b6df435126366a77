"""Child tasks and several process targets in kernel records: /proc discovery, the target table,
online `commit` on the fake sysfs tree, and whole records of a forking workload (never the real
DAMON tree)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from damo.errors import DamoError
from damo.formats import read_record
from damo.kernel.sysfs import DamonSysfs, KdamondSetup, OwnedKdamond
from damo.kernel.tasks import children_of, command_line, descendants
from damo.model import MonitoringAttrs
from damo.recording import RecordRequest
from damo.sources.kernel import KernelRecorder, resolve_target
from damo.sources.task_targets import TaskTargets
from fake_damon import FakeDamon

CTX = "kdamonds/0/contexts/0"


# --- /proc ---------------------------------------------------------------------------------------

def fake_proc(tmp_path, tree: dict[int, int], dead: set[int] = frozenset(), children_files: bool = True):
    """A /proc with ``pid -> parent`` processes (a thread each); ``dead`` ones are zombies."""
    proc = tmp_path / "proc"
    for pid, parent in tree.items():
        d = proc / str(pid)
        (d / "task" / str(pid)).mkdir(parents=True)
        state = "Z" if pid in dead else "S"
        (d / "stat").write_text(f"{pid} (worker) {state} {parent} 0 0\n")
        (d / "cmdline").write_bytes(f"worker\0--id\0{pid}\0".encode())
        if children_files:
            kids = " ".join(str(c) for c, p in tree.items() if p == pid)
            (d / "task" / str(pid) / "children").write_text(kids + (" " if kids else ""))
    return proc


@pytest.mark.parametrize("children_files", [True, False])
def test_descendants_are_children_of_children_found_either_way(tmp_path, children_files):
    """Through task/*/children, or (a kernel without CONFIG_PROC_CHILDREN) one scan by parent pid."""
    proc = fake_proc(tmp_path, {10: 1, 11: 10, 12: 10, 13: 11, 14: 13, 20: 1, 21: 20}, dead={12},
                     children_files=children_files)
    assert descendants([10], proc) == [11, 13, 14]
    assert descendants([10, 20], proc) == [11, 21, 13, 14]
    assert command_line(11, proc) == "worker --id 11"
    if children_files:
        assert children_of(10, proc) == [11, 12]
    else:
        assert children_of(10, proc) is None


def test_descendants_of_a_real_process_tree():
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & (sleep 30 & wait) & wait"])
    try:
        deadline = time.monotonic() + 5
        found = []
        while len(found) < 3 and time.monotonic() < deadline:
            found = descendants([shell.pid])
            time.sleep(0.02)
        assert len(found) == 3, found
        cmdlines = sorted(command_line(pid) for pid in found)
        assert cmdlines.count("sleep 30") == 2
    finally:
        subprocess.run(["pkill", "-P", str(shell.pid)], check=False)
        shell.kill()
        shell.wait()


# --- the target table ----------------------------------------------------------------------------

def test_target_table_keeps_record_ids_while_the_kernel_list_shifts(tmp_path):
    proc = fake_proc(tmp_path, {10: 1, 11: 10, 12: 10})
    table = TaskTargets(proc=proc)
    table.start([10], time_ns=1000)
    pids, ids = table.proposal(2000)
    assert (pids, ids) == ([10, 11, 12], [0, -1, -1])
    table.committed(pids, ids, 2500)
    assert [i["pid"] for i in table.info] == [10, 11, 12]
    assert [i.get("parent_target_id") for i in table.info] == [None, 0, 0]
    assert table.info[1]["cmdline"] == "worker --id 11"
    assert table.proposal(2600) is None                     # nothing changed
    # 11 exits: 12 moves up to kernel index 1.
    proc = fake_proc(tmp_path / "later", {10: 1, 11: 10, 12: 10}, dead={11})
    table.proc = proc
    pids, ids = table.proposal(3000)
    assert (pids, ids) == ([10, 12], [0, 2])
    table.committed(pids, ids, 3500)
    assert [table.target_at(1, t) for t in (2400, 2900, 3100, 3600)] == [None, 1, None, 2]
    # Before the first commit only index 0 existed; 11's snapshots after it was seen gone are stale.
    assert table.target_at(0, 500) == 0 and table.target_at(2, 3600) is None


def test_a_settled_table_proposes_a_child_only_once_two_polls_saw_it(tmp_path):
    """After a failed commit ended the kdamond (Linux before 6.14), short-lived children are kept
    out: 11 lives across two polls and is proposed at the second; 12, seen once, never is."""
    table = TaskTargets(proc=fake_proc(tmp_path / "a", {10: 1, 11: 10, 12: 10}), settle=True)
    table.start([10], time_ns=1000)
    assert table.proposal(2000) is None
    table.proc = fake_proc(tmp_path / "b", {10: 1, 11: 10, 13: 10})
    assert table.proposal(3000) == ([10, 11], [0, -1])


# --- online commit on the fake sysfs tree -------------------------------------------------------

def test_commit_targets_rewrites_the_target_list_then_commits(tmp_path):
    fake = FakeDamon(tmp_path, alive_pids={123, 124, 125})
    setup = KdamondSetup(ops="vaddr", attrs=MonitoringAttrs(), pid=123, more_pids=[124])
    with OwnedKdamond(DamonSysfs(fake.root, writer=fake.write), setup) as kdamond:
        kdamond.start()
        assert fake.running_pids == [123, 124]
        mark = len(fake.log)
        kdamond.commit_targets([123, 125], {1: [(4096, 8192), (8192, 16384)]})
        # The kept target gets no regions (the kernel keeps its own), the new one its first ones.
        assert fake.log[mark:] == [
            (f"{CTX}/targets/nr_targets", "2"),
            (f"{CTX}/targets/0/pid_target", "123"),
            (f"{CTX}/targets/1/pid_target", "125"),
            (f"{CTX}/targets/1/regions/nr_regions", "2"),
            (f"{CTX}/targets/1/regions/0/start", "4096"),
            (f"{CTX}/targets/1/regions/0/end", "8192"),
            (f"{CTX}/targets/1/regions/1/start", "8192"),
            (f"{CTX}/targets/1/regions/1/end", "16384"),
            ("kdamonds/0/state", "commit"),
        ]
        assert fake.commits == [[123, 125]] and setup.pids == [123, 125]
        fake.alive_pids.discard(125)
        with pytest.raises(DamoError, match="EINVAL"):      # a task gone before the commit
            kdamond.commit_targets([123, 125])
    assert fake.get("kdamonds/nr_kdamonds") == "0"


def test_several_pids_are_several_targets_in_the_initial_setup(tmp_path):
    fake = FakeDamon(tmp_path, alive_pids={os.getpid(), os.getppid()})
    request = RecordRequest(target=[str(os.getpid()), str(os.getppid())], attrs=MonitoringAttrs())
    target = resolve_target(request)
    assert (target.pid, target.more_pids) == (os.getpid(), [os.getppid()])
    setup = KdamondSetup(ops="vaddr", attrs=MonitoringAttrs(), pid=target.pid, more_pids=target.more_pids)
    with OwnedKdamond(DamonSysfs(fake.root, writer=fake.write), setup) as kdamond:
        kdamond.start()
        assert fake.running_pids == [os.getpid(), os.getppid()]


# --- whole records of a forking workload on the fake tree ---------------------------------------

FORKER = """
import os, sys, time
kids = []
for k in range(2):
    pid = os.fork()
    if pid == 0:
        time.sleep(float(sys.argv[2 + k]))
        os._exit(0)
    kids.append(pid)
time.sleep(float(sys.argv[1]))
if sys.argv[1] != "0":
    for pid in kids:
        os.waitpid(pid, 0)
"""


def forking_record(tmp_path, monkeypatch, parent_s: str, child_s: tuple[str, str], first_commit_ends=False,
                   **kw):
    """Record FORKER on the fake tree; each target's regions say its pid (nr_accesses = pid % 1000).
    ``first_commit_ends``: the first commit succeeds and ends the kdamond, as Linux before 6.14
    does when a task in the list is gone by the kdamond's next aggregation."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    fake = FakeDamon(tmp_path)
    fake.regions_of = lambda pid: [(1 << 20, 2 << 20, pid % 1000, 1), (2 << 20, 3 << 20, 0, 1)]
    real_write = fake.write

    def write(path, value):          # the workload's tasks are alive for the fake kernel
        if path.name == "pid_target":
            fake.alive_pids.add(int(value))
        real_write(path, value)
        if first_commit_ends and value == "commit" and len(fake.commits) == 1:
            fake.next_kdamond_pid += 1
            fake.stop()

    script = tmp_path / "forker.py"
    script.write_text(FORKER)
    out = tmp_path / "k.data"
    req = RecordRequest(target=[sys.executable, str(script), parent_s, *child_s], attrs=MonitoringAttrs(),
                        out=str(out), **kw)
    before = fake.snapshot()
    rc = KernelRecorder(req, sysfs=DamonSysfs(fake.root, writer=write), tracefs_root=tmp_path / "none").run()
    assert rc == 0 and fake.snapshot() == before
    return fake, read_record(out)


def check_snapshots_say_their_pids(record):
    info = record.meta.targets_info()
    for snap in record.snapshots():
        assert snap.nr_accesses.tolist() == [info[snap.target_id]["pid"] % 1000, 0]


def test_children_become_targets_and_leave_when_they_exit(tmp_path, monkeypatch):
    fake, record = forking_record(tmp_path, monkeypatch, "2.4", ("1.0", "1.0"))
    info = record.meta.targets_info()
    parent = info[0]["pid"]
    assert sorted(info) == [0, 1, 2] and record.meta.extra["child_tasks"] is True
    assert [info[t].get("parent_target_id") for t in (1, 2)] == [0, 0]
    assert all("forker.py" in info[t]["cmdline"] for t in info), info
    children = [info[1]["pid"], info[2]["pid"]]
    assert fake.commits[0] == [parent] + children and fake.commits[-1] == [parent]
    # Each child started from its own mappings' three regions, split in min_nr_regions (10) pieces.
    first_commit = fake.log.index(("kdamonds/0/state", "commit"))
    region_counts = {w[0]: int(w[1]) for w in fake.log[:first_commit] if w[0].endswith("regions/nr_regions")}
    assert sorted(region_counts) == [f"{CTX}/targets/{t}/regions/nr_regions" for t in (1, 2)]
    assert all(10 <= n <= 12 for n in region_counts.values()), region_counts   # as damon_va_init splits
    check_snapshots_say_their_pids(record)
    times = {tid: record.end_ns[record.target_id == tid] / 1e9 for tid in info}
    # The parent is never lost while children come and go: one snapshot per tried-regions period.
    assert np.diff(times[0]).max() < 0.6
    assert len(times[0]) >= 8
    for tid in (1, 2):
        assert len(times[tid]) >= 1 and times[tid][-1] < times[0][-1] - 0.5


def test_the_record_goes_on_while_children_outlive_the_parent(tmp_path, monkeypatch):
    fake, record = forking_record(tmp_path, monkeypatch, "0", ("1.6", "1.6"))
    info = record.meta.targets_info()
    assert sorted(info) == [0, 1, 2]
    check_snapshots_say_their_pids(record)
    last = {tid: record.end_ns[record.target_id == tid].max() / 1e9 for tid in info}
    assert last[1] > last[0] + 0.5 and last[2] > last[0] + 0.5


def test_a_commit_that_ends_the_kdamond_starts_it_again_on_the_live_tasks(tmp_path, monkeypatch, capsys):
    """The record does not end with its workload still running: the kdamond is started again on
    the parent and both children, which stay recorded under their ids until they exit."""
    recorder_pids, restart = [], KernelRecorder._restart_after_commit

    def spy(recorder, kdamond):
        done = restart(recorder, kdamond)
        if done:
            recorder_pids.append(recorder._kdamond_pid)
        return done

    monkeypatch.setattr(KernelRecorder, "_restart_after_commit", spy)
    fake, record = forking_record(tmp_path, monkeypatch, "2.4", ("1.2", "1.2"), first_commit_ends=True)
    info = record.meta.targets_info()
    parent, children = info[0]["pid"], [info[1]["pid"], info[2]["pid"]]
    assert sorted(info) == [0, 1, 2]
    assert fake.log.count(("kdamonds/0/state", "on")) == 2
    assert fake.commits[0] == [parent] + children and fake.commits[-1] == [parent]
    assert record.meta.extra["kdamond_restarts"] == 1 and record.meta.extra["kdamond_pid"] == 4243
    assert recorder_pids == [4243]          # the trace lines kept are the new kdamond's
    assert "kdamond 0 ended after a target commit" in capsys.readouterr().err
    check_snapshots_say_their_pids(record)
    times = {tid: record.end_ns[record.target_id == tid] / 1e9 for tid in info}
    assert times[0][-1] - times[0][0] >= 1.5 and np.diff(times[0]).max() < 1.2
    for tid in (1, 2):              # before and after the restart
        assert len(times[tid]) >= 2


def test_exclude_child_tasks_records_the_parent_alone(tmp_path, monkeypatch):
    fake, record = forking_record(tmp_path, monkeypatch, "1.0", ("0.5", "0.5"), child_tasks=False)
    assert record.target_ids() == [0] and fake.commits == []
    assert list(record.meta.targets_info()) == [0] and record.meta.extra["child_tasks"] is False
    check_snapshots_say_their_pids(record)


def test_snapshot_takes_count_snapshots_delay_apart(tmp_path, monkeypatch):
    """--snapshot 0.3 3 reads the stat scheme's tried regions three times, 0.3 s apart, and stops."""
    started = time.monotonic()
    fake, record = forking_record(tmp_path, monkeypatch, "5", ("0.1", "0.1"), child_tasks=False,
                                  snapshot=(0.3, 3))
    assert time.monotonic() - started < 4
    assert record.nr_snapshots == 3 and record.meta.extra["collector"] == "tried_regions"
    gaps = np.diff(record.end_ns / 1e9)
    assert gaps.min() >= 0.2 and gaps.sum() >= 0.59, gaps     # 0.3 s apart, give or take a read
    writes = [w for w in fake.log if "schemes" in w[0]]
    assert (f"{CTX}/schemes/nr_schemes", "1") in writes and (f"{CTX}/schemes/0/action", "stat") in writes
    assert [w for w in fake.log if w[1] == "update_schemes_tried_regions"] == [("kdamonds/0/state",
                                                                                 "update_schemes_tried_regions")] * 3


def test_masim_fork_runs_the_config_in_children_while_the_parent_waits(tmp_path):
    """masim --fork 2: two children, each mapping its own regions and reporting its own pid."""
    import json

    from conftest import REPO
    config = tmp_path / "tiny.cfg"
    config.write_text("a, 1048576\nhot, 2097152\nb, 1048576\n\nhot\n300\nhot, 0, 4096, 1\n")
    status = tmp_path / "status"
    done = subprocess.run([sys.executable, "-m", "masim", str(config), "--fork", "2", "--quiet",
                           "--status_out", str(status)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "", done.stderr
    lines = [[json.loads(x) for x in (tmp_path / f"status.{k}").read_text().splitlines()] for k in range(2)]
    pids = {entries[0]["pid"] for entries in lines}
    assert len(pids) == 2 and all(e[-1]["regions"]["hot"]["nr_resident"] == 512 for e in lines)
    assert not status.exists()
    bad = subprocess.run([sys.executable, "-m", "masim", str(config), "--fork", "-1"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert (bad.returncode, bad.stderr) == (2, "masim: error: --fork takes 0 to 1024 children, not -1\n")
