"""``damo record ongoing`` on this machine's real kernel and hardware, following its own kdamond.

One shared pair of 22 s recordings (module fixture) serves every test: record A runs in the
machine's mount namespace, record B at the same time in a private namespace where
/sys/kernel/mm/damon is bind-mounted read-only; a workload keeps a buffer hot throughout.
Nothing here writes under /sys/kernel/mm/damon (conftest also guards damo's own writer).
Skips, naming the reason, without a running kdamond, tracefs support or root.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import REPO, run_cli
from damo.formats import read_record
from damo.kernel.status import read_kdamonds
from damo.kernel.sysfs import DamonSysfs
from damo.kernel.tracefs import tracefs_supported
from hot_buffer import HotBuffer, access_means

ADMIN = Path("/sys/kernel/mm/damon/admin")
RECORD_SECONDS = 22
HOT_BYTES = 1 << 30
# Over 12 runs on this machine (two runs of bench/ongoing.py; the last is in bench/results.md;
# load 10-15 on 2 cores) the hot buffer's mean nr_accesses was 7.7-9.6 of 10 and the rest's
# 0.25-0.68: hot/rest 11.8-37, with 97.7-99.0 % of the buffer in regions seen accessed. The
# thresholds sit well below the worst run
# and far above what the same buffer gives when left idle after its first pass (one run: mean
# 0.16 against the rest's 0.44, 8.6 % of it in regions seen accessed).
# Session 4 (same machine, same kdamond settings) saw less of it: 78.6 % (hot 4.71, rest 0.19)
# in a CI run at load 3 and 74.2 % (hot 3.46, rest 0.23) at load 0.04; the hot/rest ratio held
# (15-25). Session 5 (5 runs, load 2.5-5, machine up < 30 min with 21 GB free): 97.0-98.5 %
# (hot 7.4-8.9, rest 0.45-0.82), as session 3; the kdamond's setup was the same (intervals goal
# off: all its files 0; THP madvise), and the buffer's pages lay in 824 physical runs (1.27 MiB
# mean). A guess, not checked: after a long uptime the buffer's pages are scattered among cold
# ones, and a region that mixes them is sampled as accessed less often. 60 % keeps a margin
# under session 4's figures and far above the idle 8.6 %.
# The ratio's floor: in a clean-clone CI run beside a second one and a VM stress bench (three TCG
# guests on 2 cores, whose RAM is genuinely hot memory of this machine) the rest rose to 1.09 and
# the starved hot loop fell to 3.62 (83.9 % seen): 3.3x. 2.5 keeps a margin under that and stays
# far above the idle buffer's 0.36x.
MIN_HOT_OVER_REST = 2.5
MIN_HOT_SEEN = 0.6
# System calls that could change a file; strace logs them for record A.
CHANGING_CALLS = "trace=mount,umount2,open,openat,openat2,creat,truncate,mkdir,mkdirat,rmdir,unlink,unlinkat,rename,renameat,renameat2"
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
PRIVATE_TRACEFS = ("mount --make-rprivate / && mount -t tracefs nodev /sys/kernel/tracing && "
                   "ls /sys/kernel/tracing/instances")


def _requirements() -> dict:
    """The running kdamond to follow, or a skip naming what is missing."""
    if os.geteuid() != 0:
        pytest.skip("record ongoing needs root")
    if not tracefs_supported():
        pytest.skip("this kernel has no tracefs")
    sysfs = DamonSysfs()
    running = [k for k in read_kdamonds(sysfs) if k["state"] == "on"] if sysfs.present() else []
    if not running:
        pytest.skip("no kdamond is running on this machine")
    return running[0]


def tree_state() -> dict[str, tuple[str, int]]:
    """Content and mtime of every file under DAMON's admin tree (reading is harmless)."""
    state = {}
    for path in sorted(ADMIN.rglob("*")):
        if path.is_file():
            try:
                content = path.read_text()
            except OSError as err:
                content = f"<errno {err.errno}>"
            state[str(path)] = (content, path.stat().st_mtime_ns)
    return state


def tracefs_mounts(pid: str = "self") -> list[str]:
    return [line for line in Path(f"/proc/{pid}/mounts").read_text().splitlines() if " tracefs " in line]


def instances_of(pids: set[int]) -> list[str]:
    """The trace instances that ``record ongoing`` processes ``pids`` would have made, seen from a
    private mount of tracefs."""
    out = subprocess.run(["unshare", "-m", "sh", "-c", PRIVATE_TRACEFS], capture_output=True, text=True, check=True)
    return [name for name in out.stdout.split() if name in {f"damo-ongoing-{pid}" for pid in pids}]


def record_pids(recording) -> set[int]:
    """Pids of the two damo processes (record A runs under strace, which logs its pid)."""
    pids = {recording.b_pid}
    if recording.strace.exists():
        pids |= {int(line.split()[0]) for line in recording.strace.read_text().splitlines() if line[:1].isdigit()}
    else:
        pids.add(recording.a_pid)
    return pids


def strace_prefix(log: Path) -> list[str]:
    if shutil.which("strace") is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("strace is missing (.ci/run installs it)")
        return []
    return ["strace", "-f", "-qq", "-e", CHANGING_CALLS, "-o", str(log)]


def changing_calls(log: Path) -> tuple[list[str], list[str]]:
    """(calls that read under /sys/kernel/mm/damon, calls that could change anything anywhere)."""
    reads, changes = [], []
    for line in log.read_text().splitlines():
        call = line.split(None, 1)[-1]
        opening = call.startswith(("open(", "openat(", "openat2("))
        if opening and not any(flag in call for flag in WRITE_FLAGS):
            if "/sys/kernel/mm/damon" in call:
                reads.append(call)
        elif not (opening and "__pycache__" in call):      # Python may cache its bytecode
            changes.append(call)
    return reads, changes


def system_ram(iomem: str = "/proc/iomem") -> list[tuple[int, int]]:
    ranges = []
    for line in Path(iomem).read_text().splitlines():
        if not line.startswith(" ") and line.rstrip().endswith(": System RAM"):
            start, end = (int(x, 16) for x in line.split(":")[0].strip().split("-"))
            ranges.append((start, end + 1))
    return ranges


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    kdamond = _requirements()
    out = tmp_path_factory.mktemp("ongoing")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    record = [sys.executable, "-m", "damo", "record", "ongoing", "--kdamond", str(kdamond["index"]),
              "--timeout", str(RECORD_SECONDS)]
    read_only = ("mount --make-rprivate / && mount --bind /sys/kernel/mm/damon /sys/kernel/mm/damon && "
                 "mount -o remount,bind,ro /sys/kernel/mm/damon && grep ' /sys/kernel/mm/damon ' /proc/self/mounts "
                 "&& exec \"$@\"")
    mounts_before, machine_mounts_before = tracefs_mounts(), tracefs_mounts("1")
    before = tree_state()
    with HotBuffer(min(HOT_BYTES, _spare_memory())) as hot:
        pages = hot.physical_pages()
        started = time.monotonic()
        a = subprocess.Popen(strace_prefix(out / "strace.txt") + record + ["-o", str(out / "a.data")], env=env, cwd=out, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        b = subprocess.Popen(["unshare", "-m", "sh", "-c", read_only, "sh"] + record + ["-o", str(out / "b.data")],
                             env=env, cwd=out, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        a_out, a_err = a.communicate(timeout=RECORD_SECONDS + 60)
        duration = time.monotonic() - started
        b_out, b_err = b.communicate(timeout=60)
    after = tree_state()
    return SimpleNamespace(kdamond=kdamond, before=before, after=after, duration=duration,
                           a=(a.returncode, a_out, a_err), b=(b.returncode, b_out, b_err),
                           a_path=out / "a.data", b_path=out / "b.data", strace=out / "strace.txt", pages=pages,
                           a_pid=a.pid, b_pid=b.pid,
                           mounts=(mounts_before, tracefs_mounts()),
                           machine_mounts=(machine_mounts_before, tracefs_mounts("1")))


def _spare_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 // 4
    return HOT_BYTES


# --- read-only, proven ------------------------------------------------------------------------

def test_the_record_changes_nothing_but_its_own_instance_and_output(recording):
    """strace of record A: DAMON's files are only ever opened read-only, and everything opened
    for writing (or created, removed, renamed) is our trace instance or the record file."""
    if not recording.strace.exists():
        pytest.skip("strace is not installed")
    reads, changes = changing_calls(recording.strace)
    assert any("/admin/kdamonds/" in call for call in reads)        # strace did see the sysfs reads
    allowed = ("/sys/kernel/tracing/instances/damo-ongoing-", str(recording.a_path),
               'mount("none", "/", NULL, MS_REC|MS_PRIVATE, NULL) = 0',
               'mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) = 0')
    assert [c for c in changes if not any(a in c for a in allowed)] == []
    assert any("instances/damo-ongoing-" in c and "events/damon/damon_aggregated/filter" in c for c in changes)
    mounts = [c for c in changes if c.startswith("mount(")]
    if mounts:                                   # tracefs was not mounted: / made private first
        assert mounts[0].startswith('mount("none", "/", NULL, MS_REC|MS_PRIVATE')


def test_every_admin_file_keeps_its_content_and_mtime(recording):
    assert recording.a[0] == 0, recording.a[2]
    changed = sorted(path for path, old in recording.before.items() if recording.after.get(path) != old)
    assert set(recording.after) == set(recording.before)
    if changed and f"{ADMIN}/kdamonds/{recording.kdamond['index']}/state" in changed and recording.strace.exists():
        # This machine's DAMON owner re-commits its kdamond now and then (state and target
        # regions get new mtimes); strace shows whether any of it was us.
        _, changes = changing_calls(recording.strace)
        if not any("/sys/kernel/mm/damon" in c for c in changes):
            pytest.xfail(f"the kdamond's owner committed during the record ({len(changed)} files changed); "
                         f"strace shows no write of ours")
    assert changed == []


def test_the_same_record_succeeds_with_damon_sysfs_read_only(recording):
    code, stdout, stderr = recording.b
    assert code == 0, stderr
    assert " ro," in stdout or stdout.split()[3].startswith("ro")   # the bind mount really was read-only
    assert "wrote " in stderr and read_record(recording.b_path).nr_snapshots >= 3


def test_no_trace_instance_of_ours_is_left(recording):
    pids = record_pids(recording)
    assert len(pids) >= 2
    assert instances_of(pids) == []


def test_tracefs_is_not_mounted_for_the_machine_afterwards(recording):
    assert recording.mounts[1] == recording.mounts[0]
    assert recording.machine_mounts[1] == recording.machine_mounts[0]


# --- sound --------------------------------------------------------------------------------------

def _record(recording):
    assert recording.a[0] == 0, recording.a[2]
    return read_record(recording.a_path)


def test_snapshot_count_matches_the_duration(recording):
    record = _record(recording)
    aggr_s = recording.kdamond["contexts"][0]["intervals"]["aggr_us"] / 1e6
    assert abs(record.nr_snapshots - RECORD_SECONDS / aggr_s) <= 1
    assert abs(read_record(recording.b_path).nr_snapshots - RECORD_SECONDS / aggr_s) <= 1


def test_regions_are_sorted_disjoint_in_range_and_in_system_ram(recording):
    record = _record(recording)
    limits = recording.kdamond["contexts"][0]["nr_regions"]
    ram = system_ram()
    for snap in record.snapshots():
        start, end = snap.start.astype(np.int64), snap.end.astype(np.int64)
        assert limits["min"] <= len(start) <= limits["max"]
        assert np.all(start < end) and np.all(start[1:] >= end[:-1])
        inside = np.zeros(len(start), dtype=bool)
        for lo, hi in ram:
            inside |= (start >= lo) & (end <= hi)
        assert inside.all(), [(int(s), int(e)) for s, e in zip(start[~inside][:3], end[~inside][:3])]


def test_metadata_intervals_equal_sysfs(recording):
    meta = _record(recording).meta
    ctx = recording.kdamond["contexts"][0]
    base = f"kdamonds/{recording.kdamond['index']}/contexts/0/monitoring_attrs"
    sysfs = DamonSysfs()
    assert (meta.sample_us, meta.aggr_us, meta.update_us) == tuple(
        int(sysfs.read(f"{base}/intervals/{name}")) for name in ("sample_us", "aggr_us", "update_us"))
    assert (meta.min_nr_regions, meta.max_nr_regions) == (ctx["nr_regions"]["min"], ctx["nr_regions"]["max"])
    assert meta.target_kind == ctx["ops"]
    assert meta.extra["kdamonds"][0]["pid"] == recording.kdamond["pid"]


def test_reports_work_on_the_record(recording):
    record = _record(recording)
    path = str(recording.a_path)
    raw = run_cli("report", "raw", "-i", path)
    assert raw.returncode == 0, raw.stderr
    region_lines = [line for line in raw.stdout.splitlines() if line[:1].isdigit() and "-" in line.split()[0]]
    assert len(region_lines) == len(record.start)
    heatmap = run_cli("report", "heatmap", "-i", path)
    assert heatmap.returncode == 0 and len(heatmap.stdout.splitlines()) >= 20, heatmap.stderr
    wss = run_cli("report", "wss", "-i", path, "--exclude_samples", "0", "--json")
    assert wss.returncode == 0, wss.stderr
    (target,) = json.loads(wss.stdout)["targets"]
    accessed = [float(np.sum((s.end - s.start)[s.nr_accesses >= 1])) for s in record.snapshots()]
    assert target["nr_snapshots"] == record.nr_snapshots
    assert target["average"] == pytest.approx(np.mean(accessed))


# --- sees real accesses -------------------------------------------------------------------------

def test_the_hot_buffer_is_hotter_than_the_rest(recording):
    means = access_means(_record(recording), recording.pages)
    print(f"hot buffer: mean nr_accesses {means.hot:.2f}, rest {means.rest:.2f}, "
          f"coverage {means.coverage:.1%}, seen {means.hot_seen:.1%}")
    if means.coverage < 0.5:
        pytest.skip(f"the kdamond monitors only {means.coverage:.0%} of the buffer's pages")
    assert means.hot > MIN_HOT_OVER_REST * means.rest
    assert means.hot_seen >= MIN_HOT_SEEN
