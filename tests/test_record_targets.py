"""Several targets in one record: the simulator's multi-target records against the models' truth,
every format keeping the target table, damo 3.4.3's record option names, and bad input."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from conftest import REPO, run_cli
from damo import record as record_cmd
from damo.accuracy import compare
from damo.errors import DamoError
from damo.formats import read_record, write_record
from damo.kernel.numa import node_ranges
from damo.model import TARGETS_KEY, MonitoringAttrs
from damo.recording import RecordRequest
from damo.sources import sim

CONFIGS = REPO / "masim" / "configs"


@pytest.fixture(scope="module")
def two_workloads():
    """zigzag_30secs and stairs_30secs as two targets of one simulated record."""
    request = RecordRequest(target=[str(CONFIGS / "zigzag_30secs.cfg"), str(CONFIGS / "stairs_30secs.cfg")],
                            attrs=MonitoringAttrs(), seed=0)
    record, models = sim.simulate(request)
    return record, models


def test_each_simulated_target_matches_its_own_models_truth(two_workloads):
    record, models = two_workloads
    assert record.target_ids() == [0, 1]
    assert [t["config"] for t in record.meta.extra[TARGETS_KEY]] == [str(CONFIGS / "zigzag_30secs.cfg"),
                                                                     str(CONFIGS / "stairs_30secs.cfg")]
    for tid, model in enumerate(models):
        own = record.for_target(tid)
        assert own.nr_snapshots == -(-model.duration_ns // 100_000_000)    # its own length, 100 ms each
        acc = compare(own, model)
        for p in (25, 50, 75):
            assert abs(acc.wss_error(p)) < 0.1, (tid, p, acc.wss_error(p))


def test_a_simulated_target_leaves_when_its_config_ends(tmp_path):
    out = tmp_path / "two.data"
    done = run_cli("record", "zigzag_30secs", "stairs", "--timeout", "40", "-o", str(out))
    assert done.returncode == 0, done.stderr
    record = read_record(out)
    last = {tid: int(record.end_ns[record.target_id == tid].max()) for tid in record.target_ids()}
    assert last == {0: 35_000_000_000, 1: 40_000_000_000}      # zigzag_30secs runs 35 s
    # Snapshots of both targets share their aggregation windows while both run.
    both = record.end_ns[record.end_ns <= 35_000_000_000]
    assert np.array_equal(np.unique(both, return_counts=True)[1], np.full(350, 2))


TASKS = [{"target_id": 0, "pid": 4321, "cmdline": "server --workers 2"},
         {"target_id": 1, "pid": 4322, "cmdline": "server --workers 2", "parent_target_id": 0},
         {"target_id": 2, "pid": 4330, "cmdline": "worker \"quoted\" é", "parent_target_id": 1}]


@pytest.mark.parametrize("fmt", ["native", "json_compressed", "json", "perf_script"])
def test_the_target_table_round_trips_in_every_format(two_workloads, tmp_path, fmt):
    record, _ = two_workloads
    three = record.select(np.ones(record.nr_snapshots, dtype=bool))
    three.target_id = three.target_id.copy()
    three.target_id[-10:] = 2                       # a third target, born late
    three.meta.extra[TARGETS_KEY] = TASKS
    out = tmp_path / f"r.{fmt}"
    write_record(three, out, fmt)
    back = read_record(out)
    assert back.meta.targets_info() == {t["target_id"]: {k: v for k, v in t.items() if k != "target_id"}
                                        for t in TASKS}
    assert back.target_ids() == [0, 1, 2]
    assert np.array_equal(back.start, three.start) and np.array_equal(back.nr_accesses, three.nr_accesses)


def test_streamed_metadata_updates_are_kept(tmp_path):
    """A kernel record finds children while recording: the writer rewrites the target table."""
    from damo.formats import open_writer
    from damo.model import RecordMeta

    for fmt in ("native", "json_compressed", "perf_script"):
        meta = RecordMeta(target_kind="vaddr", extra={TARGETS_KEY: TASKS[:1]})
        out = tmp_path / f"s.{fmt}"
        writer = open_writer(out, meta, fmt, meta_reserve=4096)
        writer.append(0, 0, 100, np.array([4096], dtype=np.uint64), np.array([8192], dtype=np.uint64), np.array([1]))
        meta.extra[TARGETS_KEY] = TASKS
        assert writer.update_meta(meta)
        writer.append(2, 100, 200, np.array([4096], dtype=np.uint64), np.array([8192], dtype=np.uint64), np.array([3]))
        writer.close()
        back = read_record(out)
        # damo's JSON has one record per target with snapshots: target 1 has none.
        assert sorted(back.meta.targets_info()) == ([0, 2] if fmt.startswith("json") else [0, 1, 2]), fmt
        assert back.nr_snapshots == 2
    small = open_writer(tmp_path / "small.data", RecordMeta(), "native", meta_reserve=16)
    assert not small.update_meta(RecordMeta(extra={TARGETS_KEY: TASKS}))     # no room: the file stays whole
    small.close()
    assert read_record(tmp_path / "small.data").meta.targets_info() == {}


# --- damo 3.4.3's option names ---------------------------------------------------------------

def parse(*argv: str) -> RecordRequest:
    parser = argparse.ArgumentParser()
    record_cmd.add_arguments(parser)
    return record_cmd.request_from_args(parser.parse_args(list(argv)))


def test_damo_3_option_names_set_the_same_request():
    r = parse("zigzag", "--monitoring_intervals", "10ms", "0.2s", "2s", "--monitoring_nr_regions_range", "20",
              "1,000", "--output_permission", "640", "--exclude_child_tasks")
    a = r.attrs
    assert (a.sample_us, a.aggr_us, a.update_us, a.min_nr_regions, a.max_nr_regions) == (
        10_000, 200_000, 2_000_000, 20, 1000)
    assert (r.output_permission, r.child_tasks, r.snapshot) == (0o640, False, None)
    bare = parse("zigzag", "--monitoring_intervals", "5000", "100000", "1000000").attrs
    assert (bare.sample_us, bare.aggr_us, bare.update_us) == (5000, 100_000, 1_000_000)
    assert parse("1", "--snapshot", "0.5", "3").snapshot == (0.5, 3)
    assert parse("1").child_tasks is True
    assert parse("--target_pid", "11", "--damon_target", "--target_pid", "12").target == ["11", "12"]
    assert parse("10", "--target_pid", "12").target == ["10", "12"]


def test_output_permission_applies_to_the_finished_record(tmp_path):
    out = tmp_path / "p.data"
    done = run_cli("record", "zigzag", "--timeout", "2", "--output_permission", "644", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("argv, message", [
    (["zigzag", "--snapshot", "0", "0"], "--snapshot 0 0: DELAY must be 0 to 1e7 seconds and COUNT at least 1"),
    (["zigzag", "--snapshot", "1", "-2"], "--snapshot 1 -2: DELAY must be 0 to 1e7 seconds and COUNT at least 1"),
    (["zigzag", "--snapshot", "soon", "1"], "--snapshot: 'soon 1' is not DELAY (seconds) and COUNT"),
    (["zigzag", "--snapshot", "1", "5"], "--snapshot reads a kernel kdamond's tried regions; the simulator "
                                         "records every aggregation (use --timeout to shorten it)"),
    (["zigzag", "--monitoring_intervals", "5ms", "1 fortnight", "1s"],
     "--monitoring_intervals: '1 fortnight' is not a time (e.g. 5ms, 100ms, 1s)"),
    (["zigzag", "--monitoring_intervals", "5ms", "0", "1s"],
     "--monitoring_intervals: '0' is not a positive number of microseconds"),
    (["zigzag", "--monitoring_nr_regions_range", "ten", "1000"],
     "--monitoring_nr_regions_range: 'ten' is not a whole number"),
    (["zigzag", "--output_permission", "rw-"], "--output_permission: 'rw-' is not an octal file mode (e.g. 600)"),
    (["zigzag", "--numa_node", "0"], "--numa_node limits paddr monitoring: give 'paddr' as TARGET"),
    (["paddr", "--numa_node", "4095"], "--numa_node: no NUMA node 4095 on this machine (nodes: "),
    (["999999999", "1"], "no process with pid 999999999"),
    (["sleep 1", "--target_pid", "1"], "--target_pid records running processes: give no command with it"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, message):
    out = tmp_path / "x.data"
    done = run_cli("record", *argv, "-o", str(out))
    assert done.returncode == 2 and done.stderr.startswith(f"damo: error: {message}"), done.stderr
    assert len(done.stderr.splitlines()) == 1 and not out.exists()


def test_numa_node_ranges_are_its_system_ram(tmp_path):
    """Blocks of 128 MiB: node 0 holds blocks 0-7, node 1 blocks 8-15; RAM has a hole at 640 KiB-1 MiB."""
    nodes, memory = tmp_path / "node", tmp_path / "memory"
    memory.mkdir()
    (memory / "block_size_bytes").write_text("8000000\n")
    for node, blocks in ((0, range(0, 8)), (1, range(8, 16))):
        for b in blocks:
            (nodes / f"node{node}" / f"memory{b}").mkdir(parents=True)
    iomem = tmp_path / "iomem"
    iomem.write_text("00000000-00000fff : Reserved\n00001000-0009ffff : System RAM\n"
                     "000a0000-000fffff : PCI Bus 0000:00\n00100000-6fffffff : System RAM\n"
                     "  01000000-01ffffff : Kernel code\n70000000-7fffffff : System RAM\n")
    assert node_ranges([0], nodes, memory, iomem) == [(0x1000, 0xA0000), (0x100000, 0x40000000)]
    assert node_ranges([1], nodes, memory, iomem) == [(0x40000000, 0x80000000)]
    assert node_ranges([1, 0], nodes, memory, iomem) == [(0x1000, 0xA0000), (0x100000, 0x80000000)]
    with pytest.raises(DamoError, match=r"^--numa_node: no NUMA node 2 on this machine \(nodes: 0, 1\)$"):
        node_ranges([2], nodes, memory, iomem)
    iomem.write_text("00000000-00000000 : System RAM\n")
    with pytest.raises(DamoError, match="needs root"):
        node_ranges([0], nodes, memory, iomem)


@pytest.mark.interop
def test_damo_3_reads_our_json_with_the_target_table(two_workloads, tmp_path):
    """The per-record ``target_task`` key is ours: damo 3.4.3 ignores it and prints what we print."""
    import subprocess

    from bench.peers import PeerUnavailable, peer_damo
    try:
        damo3 = peer_damo("3.4.3")
    except PeerUnavailable as err:
        pytest.skip(str(err))
    record, _ = two_workloads
    short = record.select(record.end_ns <= 2_000_000_000)
    short.meta.extra[TARGETS_KEY] = TASKS[:2]
    out = tmp_path / "t.json.data"
    write_record(short, out, "json_compressed")
    options = ["report", "access", "-i", str(out), "--snapshot_idx", "3", "3"]
    theirs = subprocess.run([*damo3, *options], capture_output=True, text=True, timeout=300)
    ours = run_cli(*options, "--color", "always")      # damo always colours
    assert theirs.returncode == 0 and ours.returncode == 0, theirs.stderr + ours.stderr
    assert ours.stdout == theirs.stdout and "target id 0" in theirs.stdout
