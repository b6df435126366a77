"""`damo record ongoing` against kdamonds of the test VM's real kernel: our own, and one that a
foreign user starts by hand through sysfs.

Why the comparison with an own record is made on our own kdamond: while a foreign kdamond runs,
no second kdamond can start beside it. The kernel refuses to change ``nr_kdamonds`` while any
kdamond runs (EBUSY, checked below), and ``damo record`` refuses a foreign kdamond by design. So
"an own record taken at the same time" is an own ``damo record`` whose kdamond ``record ongoing``
follows as it would anyone's (the two records must hold the same snapshots), and the foreign
kdamond's ongoing record is held to the same working set as that own record, one run later.
"""
from __future__ import annotations

import errno
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from damo.formats import read_record
from damo.kernel.sysfs import DamonSysfs
from test_record_kernel import (HOT_BOUNDS, HOT_CONFIG, RUN_TIMEOUT, accessed_bytes, children,  # noqa: F401
                                damo, damo_cmd, damon_left_as_found, env, hot_phase, start_by_hand, stop,
                                wait_for, workload_argv)

pytestmark = pytest.mark.kernel

# The intervals and regions of record_hot in test_record_kernel, for the hand-made kdamond too.
SAMPLE_US, AGGR_US, UPDATE_US, MIN_NR_REGIONS, MAX_NR_REGIONS = 20000, 400000, 1000000, 100, 1000
RECORD_OPTIONS = ("-s", str(SAMPLE_US), "-a", str(AGGR_US), "-u", str(UPDATE_US), "-n", str(MIN_NR_REGIONS),
                  "-m", str(MAX_NR_REGIONS))
# The agreement bound between two records of the same workload.
AGREEMENT = 0.10


def hot_phase_wss(record_path: Path, regions: dict, times: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The p50 working set within the workload's mappings over the settled hot phase (or over
    the snapshots that end at ``times``), and those snapshots' end times."""
    record = read_record(record_path)
    if times is None:
        first, last = hot_phase(record, regions)
        index = np.arange(record.nr_snapshots)
        phase = record.select((index >= first) & (index < last))
    else:
        phase = record.select(np.isin(record.end_ns, times))
    assert phase.nr_snapshots >= 8, phase.nr_snapshots
    lo = min(r["address"] for r in regions.values())
    hi = max(r["address"] + r["size"] for r in regions.values())
    return float(np.median(accessed_bytes(phase, lo, hi))), phase.end_ns


def held_workload(status: Path, go: Path) -> list[str]:
    """The hot workload, held until ``go`` exists: record ongoing needs a running kdamond to
    start, and its start-up (tens of seconds under emulation) would otherwise miss the 12 s hot
    phase. The pid stays the same across the exec, so a kdamond set up on it monitors masim."""
    return ["sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.1; done; exec "$@"', str(go), *workload_argv(status)]


def start_ongoing(out: Path) -> subprocess.Popen:
    return subprocess.Popen(damo_cmd("record", "ongoing", "--kdamond", "0", "-o", str(out)), env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_recording(proc: subprocess.Popen) -> None:
    """Until ``record ongoing`` says it records (its trace instance is open)."""
    lines = []
    while True:
        line = proc.stderr.readline()
        assert line, "".join(lines) + proc.stderr.read()
        lines.append(line)
        if line.startswith("recording the snapshots of kdamond 0"):
            return


def finish(proc: subprocess.Popen) -> str:
    try:
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        stop(proc)
    assert proc.returncode == 0, stderr
    return stderr


@pytest.fixture(scope="module")
def own_and_ongoing(tmp_path_factory):
    """One run of the hot workload under ``damo record``, its kdamond followed meanwhile by
    ``damo record ongoing``: the two records and the addresses masim mapped."""
    tmp = tmp_path_factory.mktemp("own")
    own_out, ongoing_out, status, go = tmp / "own.data", tmp / "ongoing.data", tmp / "status.jsonl", tmp / "go"
    sysfs = DamonSysfs()
    own = subprocess.Popen(damo_cmd("record", *RECORD_OPTIONS, "-o", str(own_out), "--", *held_workload(status, go)),
                           env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ongoing = None
    try:
        wait_for(lambda: sysfs.nr_kdamonds() == 1 and sysfs.kdamond(0).running or own.poll() is not None,
                 what="our kdamond")
        assert own.poll() is None, own.communicate()
        ongoing = start_ongoing(ongoing_out)
        wait_until_recording(ongoing)
        go.touch()
        finish(own)
        ongoing_stderr = finish(ongoing)
    finally:
        stop(own)
        if ongoing is not None:
            stop(ongoing)
    assert "the record keeps the snapshots up to then" in ongoing_stderr, ongoing_stderr
    regions = json.loads(status.read_text().splitlines()[0])["regions"]
    return own_out, ongoing_out, regions


def test_ongoing_holds_the_snapshots_of_an_own_record_taken_at_the_same_time(own_and_ongoing):
    own_out, ongoing_out, regions = own_and_ongoing
    own, ongoing = read_record(own_out), read_record(ongoing_out)
    assert ongoing.meta.sample_us == SAMPLE_US and ongoing.meta.aggr_us == AGGR_US
    assert ongoing.meta.target_kind == "vaddr"
    # Every snapshot that the kdamond made while both recorded, in both records: the same count
    # and the same regions (the two trace instances saw the same events).
    first, last = ongoing.end_ns[0], ongoing.end_ns[-1]
    overlap = (own.end_ns >= first) & (own.end_ns <= last)
    assert abs(int(overlap.sum()) - ongoing.nr_snapshots) <= 1, (int(overlap.sum()), ongoing.nr_snapshots)
    assert ongoing.nr_snapshots >= 20
    own_wss, own_times = hot_phase_wss(own_out, regions)
    # The same hot phase in the ongoing record: the snapshots that end when the own record's do.
    ongoing_wss, ongoing_times = hot_phase_wss(ongoing_out, regions, own_times)
    assert abs(len(own_times) - len(ongoing_times)) <= 1, (len(own_times), len(ongoing_times))
    assert abs(ongoing_wss - own_wss) <= AGREEMENT * own_wss, (ongoing_wss, own_wss)
    assert HOT_BOUNDS[0] <= ongoing_wss <= HOT_BOUNDS[1], ongoing_wss
    print(f"same kdamond: own {own.nr_snapshots} snapshots, ongoing {ongoing.nr_snapshots} "
          f"({int(overlap.sum())} of the own ones in its time span); hot-phase wss p50 own {own_wss:.0f} B, "
          f"ongoing {ongoing_wss:.0f} B")


def test_ongoing_follows_a_kdamond_started_by_hand(tmp_path, damon_left_as_found, own_and_ongoing):
    """A foreign user's vaddr kdamond on the same workload: ``record ongoing`` records it as the
    own record saw the workload, ``damo record`` refuses it and changes nothing, and it is left
    to its owner (who stops and removes it here, inside the VM only)."""
    sysfs: DamonSysfs = damon_left_as_found
    own_out, _, own_regions = own_and_ongoing
    status, out, go = tmp_path / "status.jsonl", tmp_path / "foreign.data", tmp_path / "go"
    workload = subprocess.Popen(held_workload(status, go), env=env(), stdout=subprocess.PIPE, text=True)
    ongoing = None
    try:
        start_by_hand(sysfs.root, "vaddr", pid=workload.pid, intervals=(SAMPLE_US, AGGR_US, UPDATE_US),
                      nr_regions=(MIN_NR_REGIONS, MAX_NR_REGIONS))
        kdamond_pid = sysfs.kdamond(0).pid
        started = time.monotonic()
        ongoing = start_ongoing(out)
        wait_until_recording(ongoing)
        # No kdamond of ours can join it: the kernel refuses a new kdamond while one runs ...
        with pytest.raises(OSError) as busy:
            (sysfs.root / "kdamonds/nr_kdamonds").write_text("2")
        assert busy.value.errno == errno.EBUSY
        # ... and damo refuses to touch it, leaving every file as it was.
        files = [p for p in (sysfs.root / "kdamonds").rglob("*")
                 if p.is_file() and "stats" not in p.parts and "tried_regions" not in p.parts]
        before = {p: p.read_text() for p in files}
        refused = damo("record", "-o", str(tmp_path / "refused.data"), "--", "sleep", "1")
        assert (refused.returncode, refused.stderr) == (
            2, f"damo: error: kdamond 0 (pid {kdamond_pid}) is already running and belongs to someone else; "
               f"damo will not touch it. Use --vm or the simulator (damo record zigzag, a bundled masim config).\n")
        assert {p: p.read_text() for p in files} == before
        assert not (tmp_path / "refused.data").exists()
        go.touch()
        workload.communicate(timeout=RUN_TIMEOUT)
        # the vaddr kdamond stops by itself once its target exited; record ongoing then ends
        stderr = finish(ongoing)
        elapsed = time.monotonic() - started
    finally:
        if ongoing is not None:
            stop(ongoing)
        if workload.poll() is None:
            workload.kill()
            workload.wait()
        if sysfs.nr_kdamonds():
            if sysfs.kdamond(0).running:
                (sysfs.root / "kdamonds/0/state").write_text("off")
            wait_for(lambda: not sysfs.kdamond(0).running, 30, "the foreign kdamond to stop")
            (sysfs.root / "kdamonds/nr_kdamonds").write_text("0")
    assert workload.returncode == 0
    assert "kdamond 0 stopped" in stderr, stderr
    record = read_record(out)
    assert record.meta.target_kind == "vaddr" and record.meta.aggr_us == AGGR_US
    # No snapshot lost: one per aggregation interval over the span the record covers, and no
    # more than the time that record ongoing ran allows.
    regions = json.loads(status.read_text().splitlines()[0])["regions"]
    gaps = np.diff(record.end_ns)
    assert abs(np.median(gaps) - AGGR_US * 1000) <= 0.1 * AGGR_US * 1000, gaps
    assert record.nr_snapshots >= 0.9 * (record.end_ns[-1] - record.end_ns[0]) / (AGGR_US * 1000)
    assert record.nr_snapshots <= elapsed / (AGGR_US / 1e6) + 1
    wss, _ = hot_phase_wss(out, regions)
    own_wss, _ = hot_phase_wss(own_out, own_regions)
    assert HOT_BOUNDS[0] <= wss <= HOT_BOUNDS[1], wss
    assert abs(wss - own_wss) <= AGREEMENT * own_wss, (wss, own_wss)
    print(f"foreign kdamond: {record.nr_snapshots} snapshots in {elapsed:.0f} s; hot-phase wss p50 {wss:.0f} B, "
          f"own record's {own_wss:.0f} B")
