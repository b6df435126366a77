"""Several kdamonds in one record (damo 3.x's --kdamond markers): the command line's groups and
refusals, the kdamonds of ours on the fake sysfs tree, and each kdamond's trace lines mapped to
the record's target ids. The real kernel's run is in tests/newkern/test_kdamonds_kernel.py."""
from __future__ import annotations

import os

import pytest

from conftest import run_cli
from damo.cli import command_parser
from damo.errors import DamoError
from damo.kernel.sysfs import DamonSysfs, KdamondSetup, OwnedKdamonds
from damo.model import MonitoringAttrs
from damo.record import request_from_args
from damo.recording import RecordRequest
from damo.sources.kernel import KernelRecorder, kdamond_groups_child_tasks_note
from damo.sources.task_targets import TaskTargets
from fake_damon import FakeDamon


def request_of(*argv: str) -> RecordRequest:
    return request_from_args(command_parser(["record"]).parse_args(list(argv)))


def test_kdamond_markers_group_the_target_pids():
    me = os.getpid()
    parent = os.getppid()
    request = request_of("--kdamond", "--target_pid", str(me), "--kdamond", "--damon_ctx", "--damon_target",
                         "--target_pid", str(parent))
    assert request.kdamond_pids == [[me], [parent]]
    assert request.target == [str(me), str(parent)]
    # One marker, or none: one kdamond, the usual record.
    assert request_of("--kdamond", "--target_pid", str(me)).kdamond_pids == []
    assert request_of("--target_pid", str(me), "--target_pid", str(parent)).kdamond_pids == []
    # record ongoing's --kdamond N is still a kdamond index to follow.
    assert request_of("ongoing", "--kdamond", "0", "--kdamond", "stat").kdamonds == ["0", "stat"]


@pytest.mark.parametrize("argv,message", [
    (["--damon_ctx", "--target_pid", "1", "--damon_ctx", "--target_pid", "2"],
     "--damon_ctx: kdamond 0 is given 2 contexts, but the Linux kernel runs one DAMON context per kdamond: "
     "start each context with its own --kdamond"),
    (["--kdamond", "--target_pid", "1", "--kdamond"], "--kdamond: kdamond 1 has no --target_pid"),
    (["--kdamond", "--target_pid", "1", "--kdamond", "--target_pid", "1"],
     "--kdamond: a process is given to two kdamonds; give each pid once"),
    (["sleep 1", "--kdamond", "--kdamond", "--target_pid", "1"],
     "several kdamonds (--kdamond ... --kdamond ...) record running processes"),
    (["--vm", "--kdamond", "--target_pid", "1", "--kdamond", "--target_pid", "2"],
     "several kdamonds (--kdamond markers) are for recording this machine's processes"),
])
def test_bad_kdamond_groups_are_one_line_and_exit_2(tmp_path, argv, message):
    out = tmp_path / "x.data"
    done = run_cli("record", *argv, "-o", str(out))
    assert done.returncode == 2 and done.stderr.startswith(f"damo: error: {message}"), done.stderr
    assert len(done.stderr.splitlines()) == 1 and not out.exists()


def test_several_kdamonds_say_that_children_are_not_followed():
    me, parent = str(os.getpid()), str(os.getppid())
    groups = ("--kdamond", "--target_pid", me, "--kdamond", "--target_pid", parent)
    note = kdamond_groups_child_tasks_note(request_of(*groups))
    assert note == ("damo: warning: with several kdamonds, child tasks are not followed (each kdamond records "
                    "the --target_pid values given to it); --exclude_child_tasks silences this")
    assert kdamond_groups_child_tasks_note(request_of(*groups, "--exclude_child_tasks")) is None


def test_our_kdamonds_are_created_started_and_removed_together(tmp_path):
    fake = FakeDamon(tmp_path, alive_pids={101, 102, 201})
    real_write = fake.write

    def write(path, value):                 # each kdamond gets a pid of its own
        real_write(path, value)
        if value == "on":
            fake.next_kdamond_pid += 1

    sysfs = DamonSysfs(fake.root, writer=write)
    setups = [KdamondSetup(ops="vaddr", attrs=MonitoringAttrs(), pid=101, more_pids=[102]),
              KdamondSetup(ops="vaddr", attrs=MonitoringAttrs(), pid=201)]
    with OwnedKdamonds(sysfs, setups) as group:
        assert fake.get("kdamonds/nr_kdamonds") == "2"
        assert group.start() == 4242 and group.pids == [4242, 4243]
        assert fake.running() == [0, 1] and group.running()
        pids = {k: [fake.get(f"kdamonds/{k}/contexts/0/targets/{t}/pid_target")
                    for t in range(int(fake.get(f"kdamonds/{k}/contexts/0/targets/nr_targets")))] for k in (0, 1)}
        assert pids == {0: ["101", "102"], 1: ["201"]}
        assert all(fake.get(f"kdamonds/{k}/contexts/nr_contexts") == "1" for k in (0, 1))
        fake.stop("kdamonds/0")              # kdamond 0's processes exited: the other one goes on
        assert group.running()
    assert fake.get("kdamonds/nr_kdamonds") == "0" and fake.running() == []
    # nr_kdamonds is written once before and once after; every "on" comes after every staging write.
    writes = [rel for rel, _ in fake.log]
    assert [v for rel, v in fake.log if rel == "kdamonds/nr_kdamonds"] == ["2", "0"]
    first_on = min(i for i, (rel, v) in enumerate(fake.log) if v == "on")
    assert max(i for i, rel in enumerate(writes) if rel.endswith("pid_target")) < first_on


def test_several_kdamonds_need_a_free_damon(tmp_path):
    fake = FakeDamon(tmp_path)
    fake.add_foreign_kdamond()
    group = OwnedKdamonds(DamonSysfs(fake.root, writer=fake.write),
                          [KdamondSetup(ops="vaddr", attrs=MonitoringAttrs(), pid=1)] * 2)
    before = fake.snapshot()
    with pytest.raises(DamoError, match="belongs to someone else"):
        with group:
            pass
    assert fake.snapshot() == before


class Pipe:
    """A trace instance whose pipe holds ``text`` once."""

    def __init__(self, text: bytes):
        self.text = text

    def read(self, timeout: float) -> bytes:
        text, self.text = self.text, b""
        return text


class Sink:
    def __init__(self):
        self.snapshots = []

    def append(self, target_id, start_ns, end_ns, start, end, nr_accesses, age, sample_us=None):
        self.snapshots.append((target_id, [int(s) for s in start]))


def line(comm_pid: str, stamp: str, target: int, nr: int, start: int, end: int) -> bytes:
    return (f"{comm_pid:>23} [000] .....  {stamp}: damon_aggregated: target_id={target} nr_regions={nr} "
            f"{start}-{end}: 5 1\n").encode()


def test_each_kdamonds_lines_go_to_its_own_targets():
    """kdamond 0 (pid 300) runs pids A and B, kdamond 1 (pid 301) runs C: the record's ids are
    0, 1 and 2. Lines of any other kdamond (DAMON_STAT's, pid 53) are dropped."""
    recorder = KernelRecorder(RecordRequest(target=["1", "2", "3"], attrs=MonitoringAttrs()),
                              sysfs=DamonSysfs("/nonexistent"), tracefs_root=None)
    recorder.tasks = TaskTargets(follow_children=False)
    recorder.tasks.start([1, 2, 3], 0)
    recorder.sink = Sink()
    recorder._kdamond_pid, recorder._kdamond_offsets = 300, {300: 0, 301: 2}
    text = b"".join([line("kdamond.0-300", "10.000001", 0, 1, 4096, 8192),
                     line("kdamond.1-301", "10.000002", 0, 1, 12288, 16384),
                     line("kdamond.0-53", "10.000003", 0, 1, 1 << 30, 2 << 30),
                     line("kdamond.0-300", "10.000004", 1, 1, 20480, 24576)])
    recorder._drain(Pipe(text), final=True)
    assert sorted(recorder.sink.snapshots) == [(0, [4096]), (1, [20480]), (2, [12288])]


def test_one_kdamond_drops_other_kdamonds_lines():
    recorder = KernelRecorder(RecordRequest(target=["1"], attrs=MonitoringAttrs()),
                              sysfs=DamonSysfs("/nonexistent"), tracefs_root=None)
    recorder.tasks = TaskTargets(follow_children=False)
    recorder.tasks.start([1], 0)
    recorder.sink = Sink()
    recorder._kdamond_pid = 300
    text = line("kdamond.0-53", "10.000001", 0, 1, 1 << 30, 2 << 30) + line("kdamond.1-300", "10.000002", 0, 1, 4096, 8192)
    recorder._drain(Pipe(text), final=True)
    assert recorder.sink.snapshots == [(0, [4096])]


@pytest.mark.parametrize("fmt", ["native", "json_compressed"])
def test_each_targets_kdamond_survives_the_formats(tmp_path, fmt):
    import json
    import zlib

    import numpy as np

    from damo.formats import read_record, write_record
    from damo.model import TARGETS_KEY, RecordBuilder, RecordMeta

    meta = RecordMeta(target_kind="vaddr", target="11 22", sample_us=5000, aggr_us=100_000, update_us=1_000_000)
    meta.extra[TARGETS_KEY] = [{"target_id": 0, "pid": 11, "cmdline": "a", "kdamond_idx": 0, "context_idx": 0},
                               {"target_id": 1, "pid": 22, "cmdline": "b", "kdamond_idx": 1, "context_idx": 0}]
    builder = RecordBuilder(meta)
    for tid in (0, 1):
        builder.add(tid, 0, 100_000_000, np.array([4096], dtype=np.uint64), np.array([8192], dtype=np.uint64),
                             np.array([3]), np.array([1]))
    out = tmp_path / f"k.{fmt}"
    write_record(builder.build(), out, fmt)
    info = read_record(out).meta.targets_info()
    assert {t: (v["pid"], v["kdamond_idx"], v["context_idx"]) for t, v in info.items()} == {0: (11, 0, 0), 1: (22, 1, 0)}
    if fmt == "json_compressed":            # damo 3.x's own keys carry the kdamond of each target record
        records = json.loads(zlib.decompress(out.read_bytes()))
        assert [(r["kdamond_idx"], r["context_idx"], r["target_id"]) for r in records] == [(0, 0, 0), (1, 0, 1)]


@pytest.mark.interop
@pytest.mark.parametrize("report,args", [("access", []), ("access", ["--json"]), ("record_info", [])])
def test_damo_343_shows_each_targets_kdamond_as_we_do(tmp_path, report, args):
    """Target 1 on kdamond 1: damo 3.4.3 reads it from our JSON's kdamond_idx, and prints what we print."""
    import subprocess

    import numpy as np

    from damo.formats import write_record
    from damo.model import TARGETS_KEY, RecordBuilder, RecordMeta
    from reports_support import peer_or_skip

    peer = peer_or_skip("3.4.3")
    meta = RecordMeta(target_kind="vaddr", target="11 22", sample_us=5000, aggr_us=100_000, update_us=1_000_000,
                      min_nr_regions=10, max_nr_regions=1000)
    meta.extra[TARGETS_KEY] = [{"target_id": t, "pid": 11 * (t + 1), "cmdline": "x", "kdamond_idx": t, "context_idx": 0}
                               for t in (0, 1)]
    builder = RecordBuilder(meta)
    for tid in (0, 1):
        for k in range(3):
            builder.add(tid, k * 100_000_000, (k + 1) * 100_000_000, np.array([4096 * (tid + 1)], dtype=np.uint64),
                        np.array([8192 * (tid + 1)], dtype=np.uint64), np.array([k + 1]), np.array([k]))
    out = tmp_path / "two.json"
    write_record(builder.build(), out, "json_compressed")
    theirs = subprocess.run([*peer, "report", report, "-i", str(out), *args], capture_output=True, text=True,
                            timeout=300)
    assert theirs.returncode == 0, theirs.stderr
    color = ["--color", "always"] if report == "access" and not args else []    # damo colours a pipe too
    ours = run_cli("report", report, "-i", str(out), *args, *color, env={"NO_COLOR": "1"})
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert ("kdamond 1 / context 0" in ours.stdout or '"kdamond_idx": 1' in ours.stdout
            or "kdamond_idx: 1" in ours.stdout)
