"""`damo record` against the real kernel DAMON of the test VM."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from damo.formats import read_record
from damo.kernel.sysfs import DamonSysfs
from damo.sources.kernel import largest_system_ram
from masim.config import load_config
from damo.kernel.emulation import cpu_is_emulated
from damo.kernel.tlb_ticker import TICKER_ENV

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
HOT_CONFIG = HERE / "hot.cfg"
HOT_SIZE = {r.name: r.size for r in load_config(HOT_CONFIG).regions}["hot"]
# After DAMON's regions first cover the new mappings (one ops update after they appear), its
# adaptive regions take a few aggregations to split the 40 MiB span into hot and cold parts:
# about 7 aggregations were seen, so the hot phase is counted from 8 aggregations after that.
SETTLE_AGGREGATIONS = 8
# damon-tests accept 9-11 MB for a 10 MB working set: 0.9x to 1.1x, for the workload's own mappings.
HOT_BOUNDS = (0.9 * HOT_SIZE, 1.1 * HOT_SIZE)
# Limits on waits for events, not measurements: the guest runs under software emulation, and on a
# host at load 15 one status line took more than 120 s to come. They only end a stuck test.
RUN_TIMEOUT = 900
WAIT_TIMEOUT = 600


@pytest.fixture(autouse=True)
def damon_left_as_found():
    """Every test starts and ends with no kdamond: nr_kdamonds and state as they were."""
    if os.environ.get("DAMO_TEST_IN_VM") != "1":
        pytest.skip("kernel tests run inside the test VM only (tests/test_kernel_vm.py boots it)")
    sysfs = DamonSysfs()
    assert sysfs.nr_kdamonds() == 0
    yield sysfs
    assert sysfs.nr_kdamonds() == 0
    tracing = Path("/sys/kernel/tracing/instances")
    assert not [p.name for p in tracing.glob("damo-*")]


def damo_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "damo", *args]


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")


def damo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(damo_cmd(*args), cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)


def workload_argv(status: Path, config: Path = HOT_CONFIG, *masim_options: str) -> list[str]:
    """masim running hot.cfg, reporting its regions' addresses in its status file.

    Under emulation masim flushes its TLB by default (``--flush_tlb auto``), or DAMON would see
    its hot region as mostly idle (masim.runner.TlbFlusher says why).
    """
    return [sys.executable, "-m", "masim", str(config), "--status_out", str(status), *masim_options]


def children(pid: int) -> list[int]:
    """The child processes of ``pid``: a record's workload (its TLB-flush ticker, if on, left out)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    parent = _cmdline(Path(f"/proc/{pid}"))
    # A ticker process is the record forked (not yet exec'd: the record's own command line) or
    # the ticker's code.
    return [child for child in found if not _is_ticker(Path(f"/proc/{child}")) and
            _cmdline(Path(f"/proc/{child}")) != parent]


def _cmdline(proc_dir: Path) -> bytes:
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""


def _is_ticker(proc_dir: Path) -> bool:
    return b"sched_setaffinity" in _cmdline(proc_dir)


def wait_for(predicate, timeout: float = WAIT_TIMEOUT, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    """Stop a damo record the way a user would (its kdamond is turned off), killing it only if that fails."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def record_hot(tmp: Path, *options: str, config: Path = HOT_CONFIG, masim_options: tuple[str, ...] = (),
               extra_env: dict | None = None) -> tuple[Path, dict, str, str]:
    """One record of the hot-region workload with damo record ``options``: the record, the
    addresses masim mapped, its /proc maps and damo's stderr.

    -n 100: start from regions of a few MiB, so that DAMON splits the new 40 MiB span quickly.
    -s/-a 4x damo's: 20 samples per aggregation, and a sampling period well above the emulated
    guest's scheduling hiccups.
    """
    out, status = tmp / "hot.data", tmp / "status.jsonl"
    proc = subprocess.Popen(damo_cmd("record", "-s", "20000", "-a", "400000", "-n", "100", "-o", str(out),
                                     *options, "--", *workload_argv(status, config, *masim_options)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(extra_env or {})))
    try:
        # masim imports numpy and maps its regions first: minutes under emulation on a busy host
        wait_for(lambda: status.exists() and status.read_text().strip() or proc.poll() is not None,
                 timeout=600, what="the workload's status line")
        assert proc.poll() is None, proc.communicate()
        (workload_pid,) = children(proc.pid)
        maps = Path(f"/proc/{workload_pid}/maps").read_text()
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        stop(proc)
    assert proc.returncode == 0, stderr
    assert re.fullmatch(r"hot:\t +[\d,.]+ accesses/msec, \d+ msecs run\n", stdout), stdout
    regions = json.loads(status.read_text().splitlines()[0])["regions"]
    return out, regions, maps, stderr


@pytest.fixture(scope="module")
def hot_record(tmp_path_factory):
    """One record of the hot-region workload, with the addresses it mapped and its /proc maps."""
    return record_hot(tmp_path_factory.mktemp("hot"))


def test_the_vm_cpu_is_emulated_so_masim_flushes_its_tlb():
    assert cpu_is_emulated()


def mapping_of(maps: str, address: int) -> tuple[int, int]:
    for line in maps.splitlines():
        start, end = (int(x, 16) for x in line.split()[0].split("-"))
        if start <= address < end:
            return start, end
    raise AssertionError(f"{address:#x} is in no mapping of the workload")


def coverage(record, lo: int, hi: int, accessed_only: bool = True) -> np.ndarray:
    """Per snapshot: the fraction of [lo, hi) covered by regions (with nr_accesses > 0 if accessed_only)."""
    overlap = np.clip(np.minimum(record.end.astype(np.int64), hi) - np.maximum(record.start.astype(np.int64), lo),
                      0, None)
    if accessed_only:
        overlap = np.where(record.nr_accesses > 0, overlap, 0)
    per_snapshot = np.add.reduceat(overlap, record.offsets[:-1]) if len(overlap) else np.zeros(0)
    return per_snapshot / (hi - lo)


def hot_phase(record, regions: dict) -> tuple[int, int]:
    """[first, last) snapshot indexes of the settled hot phase, found from the record alone.

    It starts SETTLE_AGGREGATIONS after DAMON's regions first cover the workload's mappings, and
    ends where they stop covering them (the workload exited; the record's last snapshot).
    """
    lo = min(r["address"] for r in regions.values())
    hi = max(r["address"] + r["size"] for r in regions.values())
    covered = np.flatnonzero(coverage(record, lo, hi, accessed_only=False) == 1.0)
    assert len(covered), "DAMON never covered the workload's mappings"
    return int(covered[0]) + SETTLE_AGGREGATIONS, int(covered[-1]) + 1


def test_hot_region_shows_up_where_the_workload_mapped_it(hot_record):
    out, regions, maps, stderr = hot_record
    assert "workload exited with status 0" in stderr
    hot = regions["hot"]
    lo, hi = hot["address"], hot["address"] + hot["size"]
    map_lo, map_hi = mapping_of(maps, lo)
    assert map_hi >= hi                     # /proc/PID/maps has the hot region where the status says
    record = read_record(out)
    assert record.meta.target_kind == "vaddr" and record.meta.kernel_release == os.uname().release
    assert record.meta.extra["collector"] == "tracefs"
    first, last = hot_phase(record, regions)
    index = np.arange(record.nr_snapshots)
    phase = record.select((index >= first) & (index < last))
    assert phase.nr_snapshots >= 8, (first, last)
    # Every page of the hot region is written in every pass, so DAMON sees all of it accessed in
    # (nearly) every aggregation; the cold mappings are never touched after their creation. The
    # median, because an aggregation in which the host starved the workload's vCPU truly saw it idle.
    hot_cov = coverage(phase, lo, hi)
    assert np.median(hot_cov) >= 0.9, hot_cov
    for name in ("cold_a", "cold_b"):
        cold = regions[name]
        cold_cov = coverage(phase, cold["address"], cold["address"] + cold["size"])
        assert np.median(cold_cov) <= 0.1, (name, cold_cov)


def accessed_bytes(record, lo: int = 0, hi: int = 2**63 - 1) -> np.ndarray:
    """Per snapshot: the bytes of [lo, hi) in regions with nr_accesses > 0 (the working set there)."""
    return coverage(record, lo, hi) * (hi - lo)


def test_wss_p50_within_bounds(hot_record):
    out, regions = hot_record[0], hot_record[1]
    record = read_record(out)
    first, last = hot_phase(record, regions)
    assert last - first >= 8, (first, last)
    index = np.arange(record.nr_snapshots)
    phase = record.select((index >= first) & (index < last))
    # The working set within the workload's mappings is its hot region, as damon-tests expect.
    lo = min(r["address"] for r in regions.values())
    hi = max(r["address"] + r["size"] for r in regions.values())
    inside = accessed_bytes(phase, lo, hi)
    assert HOT_BOUNDS[0] <= np.median(inside) <= HOT_BOUNDS[1], inside
    # The CLI's p50 of the hot phase within the mappings, as damon-tests bound it. The snapshots
    # before the phase (interpreter start-up, mappings not yet covered, regions not yet split) are
    # left out with damo's --exclude_samples.
    p50 = cli_wss_p50(out, "--exclude_samples", str(first), "--address_range", str(lo), str(hi))
    assert HOT_BOUNDS[0] <= p50 <= HOT_BOUNDS[1], (p50, inside)
    # The whole process's working set adds what the interpreter itself keeps touching (its code,
    # heap, stack and masim's work arrays).
    interpreter = accessed_bytes(phase) - inside
    whole_p50 = cli_wss_p50(out, "--exclude_samples", str(first))
    assert HOT_BOUNDS[0] <= whole_p50 <= HOT_BOUNDS[1] + np.percentile(interpreter, 90), (whole_p50, interpreter)
    print(f"hot phase: snapshots {first}-{last}; wss p50 within the mappings {p50} B "
          f"({p50 / HOT_SIZE:.3f}x the hot region), whole process {whole_p50} B, "
          f"interpreter p90 {np.percentile(interpreter, 90):.0f} B")


def test_the_tlb_flush_ticker_makes_a_workload_that_never_flushes_count(tmp_path):
    """With the ticker of `damo record --vm --vm-tlb-flush on`, masim --flush_tlb off (which read as
    0.03 MiB of its 8 MiB without it) reads within damon-tests' 0.9-1.1x of its hot region."""
    out, regions, maps, stderr = record_hot(tmp_path, masim_options=("--flush_tlb", "off"),
                                            extra_env={TICKER_ENV: "1"})
    record = read_record(out)
    first, last = hot_phase(record, regions)
    assert last - first >= 8, (first, last)
    index = np.arange(record.nr_snapshots)
    phase = record.select((index >= first) & (index < last))
    hot = regions["hot"]
    inside = accessed_bytes(phase, hot["address"], hot["address"] + hot["size"])
    print(f"ticker, masim --flush_tlb off: hot region p50 {np.median(inside):.0f} B "
          f"({np.median(inside) / HOT_SIZE:.3f}x), snapshots {first}-{last}")
    assert HOT_BOUNDS[0] <= np.median(inside) <= HOT_BOUNDS[1], inside
    assert not [p for p in Path("/proc").glob("[0-9]*") if _is_ticker(p)], "a ticker process outlived the record"


def cli_wss_p50(record: Path, *options: str) -> int:
    """The p50 row of ``damo report wss --raw_number --range 50 51 1`` with OPTIONS."""
    result = damo("report", "wss", "-i", str(record), "--raw_number", "--range", "50", "51", "1", *options)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if not line.startswith("#")]
    (p50,) = [int(float(row[1])) for row in rows if row and row[0] == "50"]
    return p50


def test_heatmap_shows_the_hot_band(hot_record):
    from damo.report import REPORTS
    if "heats" not in REPORTS:
        pytest.skip("damo report heats is not in this checkout yet")
    out, regions = hot_record[0], hot_record[1]
    lo = min(r["address"] for r in regions.values())
    hi = max(r["address"] + r["size"] for r in regions.values())
    cold_a, hot = regions["cold_a"], regions["hot"]
    result = damo("report", "heats", "-i", str(out), "--heatmap", "stdout", "--address_range", str(lo), str(hi),
                  "--resol", "10", "40", "--color", "never")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    assert rows, result.stdout
    # The last rows are the hot phase: their hottest columns lie within the hot region.
    width = len(rows[-1])
    hot_cols = range((hot["address"] - lo) * width // (hi - lo), (hot["address"] + hot["size"] - lo) * width // (hi - lo))
    for row in rows[-3:]:
        peak = max(range(width), key=lambda i: row[i])
        assert peak in hot_cols or row[peak] == row[hot_cols[len(hot_cols) // 2]], (row, hot_cols)


def test_paddr_record_is_within_system_ram(tmp_path):
    out = tmp_path / "p.data"
    result = damo("record", "paddr", "--timeout", "3", "-o", str(out))
    assert result.returncode == 0, result.stderr
    record = read_record(out)
    lo, hi = largest_system_ram()
    assert record.meta.target_kind == "paddr" and record.nr_snapshots >= 5
    assert record.start.min() >= lo and record.end.max() <= hi
    assert np.all(record.start < record.end)
    for snap in record.snapshots():
        assert snap.start[0] == lo and snap.end[-1] == hi
        assert np.array_equal(snap.start[1:], snap.end[:-1])        # contiguous, no gaps or overlaps
    assert record.nr_accesses.max() <= 100000 // 5000


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly(tmp_path, sig, damon_left_as_found):
    sysfs: DamonSysfs = damon_left_as_found
    out = tmp_path / "s.data"
    proc = subprocess.Popen(damo_cmd("record", "-o", str(out), "--", "sleep", "120"), cwd=REPO, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: sysfs.nr_kdamonds() == 1 and sysfs.kdamond(0).running or proc.poll() is not None,
                 what="our kdamond")
        assert proc.poll() is None, proc.communicate()
        (sleeper,) = children(proc.pid)
        wait_for(lambda: out.exists() and out.stat().st_size > 0, what="the record file")
        time.sleep(1.0)                 # let a few snapshots arrive; the test does not depend on how many
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        stop(proc)
    assert proc.returncode == 130, stderr
    assert "interrupted; wrote" in stderr
    record = read_record(out)               # complete: it reads back
    assert record.nr_snapshots >= 1 and record.meta.kernel_release == os.uname().release
    assert not Path(f"/proc/{sleeper}").exists()
    # nr_kdamonds back to 0 and no tracefs instance left: checked by damon_left_as_found


def test_workload_exit_status_is_reported(tmp_path):
    result = damo("record", "--shell", "-o", str(tmp_path / "w.data"), "--", "sleep 2; exit 3")
    assert result.returncode == 0, result.stderr
    assert "workload exited with status 3" in result.stderr
    assert read_record(tmp_path / "w.data").nr_snapshots >= 1


def test_nonexistent_pid():
    result = damo("record", "999999")
    assert (result.returncode, result.stderr) == (2, "damo: error: no process with pid 999999\n")


def test_a_workload_shorter_than_the_start_is_monitored(tmp_path):
    """damo holds its workload before exec until the kdamond is on: even `true` is monitored, never lost."""
    result = damo("record", "-o", str(tmp_path / "t.data"), "--", "true")
    assert result.returncode == 0, result.stderr
    assert "workload exited with status 0" in result.stderr
    assert read_record(tmp_path / "t.data").meta.target_kind == "vaddr"


def test_every_snapshot_is_of_the_workloads_own_address_space(tmp_path):
    """Monitoring starts after the exec: no snapshot shows the forked copy of damo's address space."""
    out = tmp_path / "own.data"
    proc = subprocess.Popen(damo_cmd("record", "-o", str(out), "--", "sleep", "4"), cwd=REPO, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: children(proc.pid) or proc.poll() is not None, what="the workload")
        (sleeper,) = children(proc.pid)
        wait_for(lambda: os.readlink(f"/proc/{sleeper}/exe").endswith("sleep"), what="the exec")
        spans = [[int(x, 16) for x in line.split()[0].split("-")]
                 for line in Path(f"/proc/{sleeper}/maps").read_text().splitlines() if "[vsyscall]" not in line]
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        stop(proc)
    assert proc.returncode == 0, stderr
    record = read_record(out)
    lowest, highest = min(s for s, _ in spans), max(e for _, e in spans)
    firsts = record.start[record.offsets[:-1]]
    lasts = record.end[record.offsets[1:] - 1]
    assert record.nr_snapshots >= 10
    assert firsts.tolist() == [lowest] * record.nr_snapshots
    assert lasts.tolist() == [highest] * record.nr_snapshots


def test_target_exited_before_monitoring_starts(tmp_path):
    """A pid whose process has exited (a zombie, not reaped yet) is refused before anything is written."""
    exited = subprocess.Popen(["true"])
    try:
        wait_for(lambda: Path(f"/proc/{exited.pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z"),
                 what="the zombie")
        result = damo("record", "-o", str(tmp_path / "t.data"), str(exited.pid))
    finally:
        exited.wait()
    assert (result.returncode, result.stderr) == (
        2, f"damo: error: the target (pid {exited.pid}) exited before monitoring started\n")
    assert not (tmp_path / "t.data").exists()


def start_by_hand(root: Path, ops: str, pid: int | None = None, region: tuple[int, int] | None = None,
                  intervals: tuple[int, int, int] | None = None, nr_regions: tuple[int, int] | None = None) -> None:
    """Set up and start kdamond 0 with plain writes to sysfs, as a user of DAMON other than damo would."""
    ctx = "kdamonds/0/contexts/0"
    writes = [("kdamonds/nr_kdamonds", 1), ("kdamonds/0/contexts/nr_contexts", 1), (f"{ctx}/operations", ops)]
    if intervals:
        writes += [(f"{ctx}/monitoring_attrs/intervals/{name}", value)
                   for name, value in zip(("sample_us", "aggr_us", "update_us"), intervals)]
    if nr_regions:
        writes += [(f"{ctx}/monitoring_attrs/nr_regions/{name}", value) for name, value in zip(("min", "max"), nr_regions)]
    writes.append((f"{ctx}/targets/nr_targets", 1))
    if pid is not None:
        writes.append((f"{ctx}/targets/0/pid_target", pid))
    if region:
        writes += [(f"{ctx}/targets/0/regions/nr_regions", 1), (f"{ctx}/targets/0/regions/0/start", region[0]),
                   (f"{ctx}/targets/0/regions/0/end", region[1])]
    writes.append(("kdamonds/0/state", "on"))
    for rel, value in writes:
        (root / rel).write_text(str(value))


def test_refuses_a_foreign_kdamond(tmp_path, damon_left_as_found):
    """Someone else's kdamond (started here by hand) is named, and damo changes nothing."""
    sysfs: DamonSysfs = damon_left_as_found
    root = sysfs.root
    start_by_hand(root, "paddr", region=largest_system_ram())
    try:
        pid = sysfs.kdamond(0).pid
        before = {p: p.read_text() for p in (root / "kdamonds").rglob("*")
                  if p.is_file() and "stats" not in p.parts and "tried_regions" not in p.parts}
        result = damo("record", "-o", str(tmp_path / "f.data"), "--", "sleep", "1")
        after = {p: p.read_text() for p in before}
        assert result.returncode == 2
        assert result.stderr == (f"damo: error: kdamond 0 (pid {pid}) is already running and belongs to someone "
                                 f"else; damo will not touch it. Use --vm or the simulator "
                                 f"(damo record zigzag, a bundled masim config).\n")
        assert after == before
    finally:
        (root / "kdamonds/0/state").write_text("off")
        wait_for(lambda: not sysfs.kdamond(0).running, 30, "the foreign kdamond to stop")
        (root / "kdamonds/nr_kdamonds").write_text("0")


# --- child tasks, several targets, --snapshot (issue 17) ----------------------------------------

NR_FORKED = 3


def test_forked_children_are_targets_each_with_its_own_hot_buffer(tmp_path):
    """masim --fork 3: an idle parent and three children, each writing its own 8 MiB buffer between
    idle ones. Each child becomes a target of its own, and its hot buffer is found where its
    /proc/PID/maps has it (damon-tests' 0.9-1.1x on the working set within its mappings)."""
    out, status = tmp_path / "fork.data", tmp_path / "status.jsonl"
    argv = [*workload_argv(status), "--fork", str(NR_FORKED), "--quiet"]
    proc = subprocess.Popen(damo_cmd("record", "-s", "20000", "-a", "400000", "-n", "100", "-o", str(out), "--",
                                     *argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    statuses = [Path(f"{status}.{k}") for k in range(NR_FORKED)]
    try:
        wait_for(lambda: all(s.exists() and s.read_text().strip() for s in statuses) or proc.poll() is not None,
                 timeout=600, what="the children's status lines")
        assert proc.poll() is None, proc.communicate()
        starts = [json.loads(s.read_text().splitlines()[0]) for s in statuses]
        maps = {st["pid"]: Path(f"/proc/{st['pid']}/maps").read_text() for st in starts}
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        stop(proc)
    assert proc.returncode == 0, stderr
    record = read_record(out)
    info = record.meta.targets_info()
    (workload_pid,) = {v["pid"] for v in info.values()} - set(maps)
    assert len(info) == NR_FORKED + 1 and record.target_ids()[0] == 0 and info[0]["pid"] == workload_pid
    tid_of = {v["pid"]: tid for tid, v in info.items()}
    medians = {}
    for st in starts:
        tid = tid_of[st["pid"]]
        assert info[tid]["parent_target_id"] == 0 and "masim" in info[tid]["cmdline"]
        regions = st["regions"]
        hot = regions["hot"]
        lo, hi = hot["address"], hot["address"] + hot["size"]
        assert mapping_of(maps[st["pid"]], lo)[1] >= hi
        own = record.for_target(tid)
        first, last = hot_phase(own, regions)
        assert last - first >= 5, (tid, first, last)
        index = np.arange(own.nr_snapshots)
        phase = own.select((index >= first) & (index < last))
        span_lo = min(r["address"] for r in regions.values())
        span_hi = max(r["address"] + r["size"] for r in regions.values())
        medians[tid] = np.median(accessed_bytes(phase, span_lo, span_hi))
        # What every target's snapshots say of this child's hot buffer (a mix-up of ids shows here).
        seen = {t: float(np.median(coverage(record.for_target(t), lo, hi))) for t in info}
        print(f"child target {tid} (pid {st['pid']}, hot {lo:#x}-{hi:#x}): {phase.nr_snapshots} hot-phase "
              f"snapshots of {own.nr_snapshots}, median WSS within its mappings {medians[tid] / HOT_SIZE:.3f}x "
              f"its hot buffer; median accessed coverage of it by target: {seen}; "
              f"max nr_accesses {int(phase.nr_accesses.max())}")
    for tid, median in medians.items():
        assert HOT_BOUNDS[0] <= median <= HOT_BOUNDS[1], (tid, median / HOT_SIZE)


def test_exclude_child_tasks_and_snapshot_1_5(tmp_path):
    """--exclude_child_tasks: the shell alone, not the sleep it forks; --snapshot 1 5: five
    snapshots at least a second apart, then the record stops (and ends the workload)."""
    out = tmp_path / "snap.data"
    line = "sleep 120 & wait"
    result = damo("record", "--exclude_child_tasks", "--snapshot", "1", "5", "-o", str(out), "--", "sh", "-c", line)
    assert result.returncode == 0, result.stderr
    record = read_record(out)
    info = record.meta.targets_info()
    assert list(info) == [0] and info[0]["cmdline"] == f"sh -c {line}" and record.target_ids() == [0]
    assert record.nr_snapshots == 5 and record.meta.extra["collector"] == "tried_regions"
    assert np.diff(record.end_ns / 1e9).min() >= 0.9
