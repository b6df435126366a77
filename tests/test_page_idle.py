"""The page_idle operations set and its bulk file access, on a fake idle-page-tracking tree."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from damo.engine.page_idle_ops import PageIdleOps
from damo.errors import DamoError
from damo.formats import read_record
from damo.kernel.page_idle import PAGE_SHIFT, PageIdle, WordFile, open_pagemap, read_mappings, runs
from damo.model import MonitoringAttrs
from damo.recording import RecordRequest
from damo.sources.page_idle import PageIdleRecorder, page_idle_context
from tests.fake_page_idle import HUGETLB, NOT_LRU, FakePageIdle

PID = 4321
PAGE = 1 << PAGE_SHIFT
MIB = 1 << 20
# three mappings with two big gaps, as a process has (text+heap, a big anonymous area, the stack)
TEXT, HEAP, STACK = (0x400000, 0x400000 + 4 * MIB), (0x7F0000000000, 0x7F0000000000 + 8 * MIB), \
    (0x7FFF00000000, 0x7FFF00000000 + MIB)


@pytest.fixture
def fake(tmp_path) -> FakePageIdle:
    fake = FakePageIdle(tmp_path)
    fake.add_process(PID, [TEXT, HEAP, STACK])
    fake.map_range(PID, *TEXT, first_pfn=0x10000)
    fake.map_range(PID, *HEAP, first_pfn=0x20000)
    fake.map_range(PID, *STACK, first_pfn=0x30000)
    return fake


def test_runs_group_sorted_words_within_the_gap():
    first, count = runs(np.array([3, 4, 5, 9, 100, 101]), max_gap=3)
    assert first.tolist() == [3, 100] and count.tolist() == [7, 2]
    first, count = runs(np.array([3, 4, 5, 9, 100, 101]), max_gap=0)
    assert first.tolist() == [3, 9, 100] and count.tolist() == [3, 1, 2]
    assert runs(np.array([], dtype=np.int64), 0)[0].tolist() == []


def test_word_file_reads_in_one_call_per_run(tmp_path):
    path = tmp_path / "words"
    path.write_bytes(np.arange(1000, dtype="<u8").tobytes())
    words = WordFile(path)
    got = words.read(np.array([900, 5, 7, 5, 6, 2000]), max_gap=4)
    assert got.tolist() == [900, 5, 7, 5, 6, 0]          # past the end reads as 0
    assert words.syscalls == 3                             # [5..7], [900], [2000]
    words.close()


def test_bits_are_written_and_read_one_call_per_run_of_words(tmp_path):
    path = tmp_path / "bitmap"
    path.write_bytes(bytes(8 * 4))
    bitmap = WordFile(path, writable=True)
    bitmap.write_bits(np.array([3, 64, 65, 127, 200, 3]), max_gap=0)
    assert bitmap.syscalls == 2                            # words 0-1 together, word 3 alone
    data = np.frombuffer(path.read_bytes(), dtype="<u8")
    assert data.tolist() == [1 << 3, (1 << 0) | (1 << 1) | (1 << 63), 0, 1 << (200 - 192)]
    assert bitmap.read_bits(np.array([3, 4, 65, 200, 201]), max_gap=0).tolist() == [True, False, True, True, False]
    bitmap.close()


def test_resolve_tracks_only_present_lru_pages_by_their_folio_head(fake):
    base = HEAP[0]
    fake.map_page(PID, base + 1 * PAGE, 0, swapped=True)
    fake.map_page(PID, base + 2 * PAGE, 0x50000, NOT_LRU)
    fake.map_page(PID, base + 3 * PAGE, 0x50001, HUGETLB)
    fake.map_thp(PID, base + 2 * MIB, 0x60000)
    page_idle = PageIdle(fake.bitmap, fake.proc)
    vaddrs = np.array([base, base + PAGE, base + 2 * PAGE, base + 3 * PAGE, base + 2 * MIB + 5 * PAGE,
                       base + 2 * MIB, base + 100 * MIB])
    resolved = page_idle.resolve(open_pagemap(PID, fake.proc), vaddrs >> PAGE_SHIFT)
    assert resolved.trackable.tolist() == [True, False, False, False, True, True, False]
    assert resolved.head_pfn[resolved.trackable].tolist() == [0x20000, 0x60000, 0x60000]


def test_pagemap_without_pfns_means_no_root(fake):
    fake.map_page(PID, HEAP[0], 0)          # present, PFN hidden: what an unprivileged reader sees
    page_idle = PageIdle(fake.bitmap, fake.proc)
    with pytest.raises(DamoError, match=r"pagemap shows no page frame numbers: that needs root"):
        page_idle.resolve(open_pagemap(PID, fake.proc), np.array([HEAP[0] >> PAGE_SHIFT]))


def test_missing_bitmap_names_the_kernel_option_and_the_alternatives(tmp_path):
    with pytest.raises(DamoError) as err:
        PageIdle(tmp_path / "nope" / "bitmap", tmp_path)
    assert str(err.value) == (f"this kernel has no idle page tracking ({tmp_path}/nope/bitmap is missing: "
                              f"CONFIG_IDLE_PAGE_TRACKING). Use --vm or the simulator "
                              f"(damo record zigzag, a bundled masim config).")


def test_maps_leave_out_vsyscall(fake):
    assert read_mappings(PID, fake.proc) == [TEXT, HEAP, STACK]
    assert read_mappings(999, fake.proc) == []


class Toucher(PageIdleOps):
    """The page_idle ops with a workload that touches ``hot`` PFNs between mark and check."""

    def __init__(self, ops, fake, hot):
        super().__init__(ops.page_idle, ops._open_pagemap, ops._read_mappings)
        self.fake, self.hot = fake, hot
        self.marked: list[np.ndarray] = []

    def prepare_access_checks(self, ctx, t_ns, nr_samples):
        super().prepare_access_checks(ctx, t_ns, nr_samples)
        heads = self._resolved[0].head_pfn[self._resolved[0].trackable]
        self.marked.append(heads)
        self.fake.access([p for p in heads.tolist() if p in self.hot])


def attrs(sample_us=1000, aggr_us=20000, minr=10, maxr=100) -> MonitoringAttrs:
    return MonitoringAttrs(sample_us, aggr_us, 1_000_000, minr, maxr)


def test_one_sample_marks_every_regions_page_and_reads_accesses_back(fake):
    hot_pfns = set(range(0x20000, 0x20000 + (HEAP[1] - HEAP[0]) // PAGE))     # the whole heap
    ctx = page_idle_context([PID], attrs(), PageIdle(fake.bitmap, fake.proc), fake.proc, seed=1)
    ops = Toucher(ctx.ops, fake, hot_pfns)
    ctx.ops = ops
    ctx.start()
    target = ctx.targets[0]
    assert target.start[0] == TEXT[0] and target.end[-1] == STACK[1] and target.nr_regions >= 10
    ops.prepare_access_checks(ctx, 0, 1)
    heads = ops.marked[-1]
    assert len(heads) == target.nr_regions                 # every region's sampled page is tracked
    cold = [p for p in heads.tolist() if p not in hot_pfns]
    assert cold and all(fake.idle_bit(p) for p in cold)     # marked idle, untouched
    accessed = ops.check_accesses(ctx, 0, 1)[0]
    in_heap = (target.sampling_addr >= HEAP[0]) & (target.sampling_addr < HEAP[1])
    assert accessed.shape == (1, target.nr_regions)
    assert np.array_equal(accessed, in_heap)


def test_the_engine_finds_the_hot_area_over_real_sampling(fake):
    """Aggregations over the fake tree: regions inside the touched 2 MiB are hot, the rest cold."""
    hot_lo, hot_hi = HEAP[0] + 4 * MIB, HEAP[0] + 6 * MIB
    hot_pfns = set(range(0x20000 + 4 * MIB // PAGE, 0x20000 + 6 * MIB // PAGE))
    ctx = page_idle_context([PID], attrs(), PageIdle(fake.bitmap, fake.proc), fake.proc, seed=2)
    ctx.ops = Toucher(ctx.ops, fake, hot_pfns)
    last = None
    for last in ctx.run(until_ns=12 * 20_000_000):
        pass
    snap = last.targets[0]
    size = snap.end - snap.start
    in_hot = np.clip(np.minimum(snap.end, hot_hi) - np.maximum(snap.start, hot_lo), 0, None)
    mostly_hot = in_hot * 10 >= size * 9
    assert in_hot[mostly_hot].sum() >= 0.9 * (hot_hi - hot_lo)     # the regions found the hot area
    # 20 samples per aggregation, all accessed but for one that may land on a cold page
    assert (snap.nr_accesses[mostly_hot] >= 19).all(), snap.nr_accesses
    assert (snap.nr_accesses[in_hot == 0] == 0).all(), snap.nr_accesses


def test_record_source_writes_a_record_of_a_pid(fake, tmp_path):
    """The source end to end on the fake tree, for a real (sleeping) process's pid."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        fake.add_process(sleeper.pid, [TEXT, HEAP, STACK])
        fake.map_range(sleeper.pid, *HEAP, first_pfn=0x40000)
        out = tmp_path / "pi.data"
        request = RecordRequest(target=[str(sleeper.pid)], attrs=attrs(), ops="page_idle", timeout=1.0, out=str(out))
        assert PageIdleRecorder(request, fake.bitmap, fake.proc).run() == 0
    finally:
        sleeper.kill()
        sleeper.wait()
    record = read_record(out)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert record.meta.target_kind == "page_idle" and record.meta.extra["ops"] == "page_idle"
    assert record.nr_snapshots >= 3
    assert record.start.min() == TEXT[0] and record.end.max() == STACK[1]
    assert record.nr_accesses.max() == 0                   # nothing touched the pages
    ends = record.end_ns if hasattr(record, "end_ns") else None
    if ends is not None:
        assert np.all(np.diff(ends.astype(np.int64)) > 0)


def test_page_idle_refuses_regions(fake, tmp_path):
    request = RecordRequest(target=[str(os.getpid())], attrs=attrs(), ops="page_idle", regions=[(0, 4096)],
                            out=str(tmp_path / "r.data"))
    with pytest.raises(DamoError, match="-r/--regions is not supported"):
        PageIdleRecorder(request, fake.bitmap, fake.proc).run()
    assert not (tmp_path / "r.data").exists()


def test_a_pid_without_pagemap_is_refused_before_the_record_is_created(fake, tmp_path):
    request = RecordRequest(target=[str(os.getpid())], attrs=attrs(), ops="page_idle", out=str(tmp_path / "r.data"))
    with pytest.raises(DamoError, match=f"no process with pid {os.getpid()}"):
        PageIdleRecorder(request, fake.bitmap, fake.proc).run()
    assert not (tmp_path / "r.data").exists()


def test_backend_choice_follows_the_kernels_interfaces(tmp_path):
    from damo.kernel.backend import KernelInterfaces, choose_backend
    bitmap = tmp_path / "bitmap"
    kernel = KernelInterfaces(sysfs_root=tmp_path / "no-sysfs", debugfs_damon=tmp_path / "no-debugfs",
                              page_idle_bitmap=bitmap, filesystems=tmp_path / "no-filesystems")
    with pytest.raises(DamoError, match=r"--ops page_idle: this kernel has no idle page tracking"):
        choose_backend("auto", "page_idle", kernel)
    bitmap.write_bytes(b"")
    assert choose_backend("auto", None, kernel).name == "page_idle"
    assert choose_backend("auto", "page_idle", kernel).reason == "--ops page_idle"
    with pytest.raises(DamoError, match=r"no DAMON sysfs .*, no DAMON debugfs [^,]*\. Use --vm"):
        choose_backend("auto", "paddr", kernel)           # page_idle has no paddr
    with pytest.raises(DamoError, match=r"--damon_interface sysfs: this kernel has no DAMON sysfs interface"):
        choose_backend("sysfs", None, kernel)
    with pytest.raises(DamoError, match="drop --damon_interface"):
        choose_backend("debugfs", "page_idle", kernel)


def test_cli_page_idle_without_idle_page_tracking_is_one_line(tmp_path):
    from conftest import run_cli
    if os.path.exists("/sys/kernel/mm/page_idle/bitmap"):
        pytest.skip("this machine has idle page tracking")
    result = run_cli("record", "--ops", "page_idle", "-o", str(tmp_path / "x.data"), "--", "sleep", "1")
    assert (result.returncode, result.stderr) == (
        2, "damo: error: --ops page_idle: this kernel has no idle page tracking (/sys/kernel/mm/page_idle/bitmap "
           "is missing). Use --vm (a VM with a DAMON kernel) or the simulator (damo record zigzag, a bundled masim config).\n")
    assert not (tmp_path / "x.data").exists()


def test_bench_rows_render_the_vm_figures_and_the_native_estimate():
    from bench.page_idle_cost import render, run
    assert "not measured: " in render(run(quick=True))
    monitor = {"cpu": 0.4, "system_share": 0.75, "samples_per_s": 100.0, "cpu_at_nominal_rate": 0.8}
    result = {"workload_bytes": 1 << 30, "emulation_slowdown": 20.0, "host_load_1min": 3.0,
              "rows": [{"nr_regions": 1000, "page_idle": monitor, "kdamond": dict(monitor, cpu_at_nominal_rate=0.1),
                        "ratio": 8.0, "page_idle_native_estimate": 0.04, "kdamond_native_estimate": 0.005}]}
    text = render(result)
    assert "| 1000 | page_idle | 40.0% | 75% | 100 | 80.0% | 4.00% |" in text
    assert "| 1000 | kdamond | 40.0% | 75% | 100 | 10.0% | 0.50% |" in text
    assert "| 1000 | page_idle / kdamond | | | | 8.0x | |" in text

def test_floor_bench_scales_the_vm_cost_by_the_c_calibration():
    from bench.page_idle_floor import render, run, summarize
    assert "not measured: " in render(run(quick=True))
    host = {"getppid_ns": 100.0, "small_pread_ns": 1000.0, "big_pread_ns": 10000.0}
    guest = [{"getppid_ns": 500.0, "small_pread_ns": 4000.0, "big_pread_ns": 20000.0},
             {"getppid_ns": 400.0, "small_pread_ns": 5000.0, "big_pread_ns": 30000.0},
             {"mode": "4k", "touch": 0, "nr_regions": 1000, "cycles": 60, "words": 1000,
              "thp_mapped_samples": 0, "idle_fraction": 1.0, "ns_per_cycle": 2_000_000}]
    result = summarize(host, guest, 1.5)
    assert result["slowdown"] == {"small_pread_ns": 4.0, "big_pread_ns": 2.0}     # the least of the guest runs
    (row,) = result["rows"]
    # 2 ms per sample at 200 samples/s: 40% of a CPU in the VM, 10-20% natively
    assert (row["vm_cpu_fraction"], row["native_low"], row["native_high"]) == (0.4, 0.1, 0.2)
    assert "| 4k | idle | 1000 | 1000 | 2,000,000 | 40.0% | 10.0% - 20.0% |" in render(result)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_floor_probe_compiles_and_calibrates_on_the_host(tmp_path):
    from bench.page_idle_floor import calibrate, compile_probe
    figures = calibrate(compile_probe(tmp_path))
    assert set(figures) == {"getppid_ns", "small_pread_ns", "big_pread_ns"}
    # a 4 KiB pagemap read walks 512 entries: more kernel work than an 8-byte one, which is more than getppid
    assert 0 < figures["getppid_ns"] < figures["small_pread_ns"] < figures["big_pread_ns"]


def test_runs_never_span_more_than_max_words():
    first, count = runs(np.arange(0, 1200), max_gap=0, max_words=512)
    assert first.tolist() == [0, 512, 1024] and count.tolist() == [512, 512, 176]
    first, count = runs(np.array([0, 300, 600, 700, 2000]), max_gap=400, max_words=512)
    assert first.tolist() == [0, 600, 2000] and count.tolist() == [301, 101, 1]


def test_marks_of_a_dense_batch_go_out_in_page_sized_writes(tmp_path):
    """The bitmap is a sysfs file (a page per call at most): a long run of words is cut."""
    path = tmp_path / "bitmap"
    path.write_bytes(bytes(8 * 2000))
    bitmap = WordFile(path, writable=True)
    bits = np.arange(0, 64 * 1500, 7)
    bitmap.write_bits(bits, max_gap=8, max_words=512)
    assert bitmap.syscalls == 3
    assert bitmap.read_bits(bits, max_gap=0, max_words=512).all()
    assert not bitmap.read_bits(bits + 1, max_gap=0, max_words=512).any()
    bitmap.close()


def sample(page_idle, pagemap, vaddrs, mappings=None):
    return page_idle.resolve(pagemap, np.asarray(vaddrs) >> PAGE_SHIFT, mappings)


def test_pages_are_resolved_once_per_block_until_the_next_update(fake):
    """After the first samples of a block, sampling there reads neither pagemap nor kpageflags."""
    page_idle = PageIdle(fake.bitmap, fake.proc)
    pagemap = open_pagemap(PID, fake.proc)
    rng = np.random.default_rng(0)
    vaddrs = lambda: rng.integers(HEAP[0], HEAP[1], 100) & ~(PAGE - 1)     # noqa: E731
    first = sample(page_idle, pagemap, vaddrs(), [TEXT, HEAP, STACK])
    assert first.trackable.all()
    cost = pagemap.syscalls + page_idle.kpageflags.syscalls
    assert cost == 2                       # the heap's 4 blocks in one pagemap read, their flags in one
    for _ in range(20):
        again = sample(page_idle, pagemap, vaddrs())
        assert again.trackable.all()
        assert (again.head_pfn - 0x20000 == 0).sum() <= 1 and again.head_pfn.min() >= 0x20000
    assert pagemap.syscalls + page_idle.kpageflags.syscalls == cost
    # each sampled page's head is its own PFN (4 KiB pages mapped 1:1 from 0x20000)
    v = vaddrs()
    assert sample(page_idle, pagemap, v).head_pfn.tolist() == (0x20000 + ((v - HEAP[0]) >> PAGE_SHIFT)).tolist()


def test_a_page_faulted_in_later_is_seen_at_once_and_a_remapped_one_after_the_update(fake):
    gap = HEAP[1] + 64 * PAGE                      # mapped below, but not present yet
    fake.add_process(PID + 1, [(HEAP[0], gap + 2 * MIB)])
    fake.map_range(PID + 1, *HEAP, first_pfn=0x20000)
    page_idle = PageIdle(fake.bitmap, fake.proc)
    pagemap = open_pagemap(PID + 1, fake.proc)
    mappings = [(HEAP[0], gap + 2 * MIB)]
    assert sample(page_idle, pagemap, [gap, HEAP[0]], mappings).trackable.tolist() == [False, True]
    fake.map_page(PID + 1, gap, 0x70000)           # faulted in: read again, seen at the next sample
    assert sample(page_idle, pagemap, [gap], mappings).head_pfn.tolist() == [0x70000]
    fake.map_page(PID + 1, HEAP[0], 0x71000)       # migrated: kept until the ops update forgets
    assert sample(page_idle, pagemap, [HEAP[0]], mappings).head_pfn.tolist() == [0x20000]
    page_idle.forget()
    assert sample(page_idle, pagemap, [HEAP[0]], mappings).head_pfn.tolist() == [0x71000]


def test_pages_outside_the_mappings_are_not_read_again(fake):
    page_idle = PageIdle(fake.bitmap, fake.proc)
    pagemap = open_pagemap(PID, fake.proc)
    hole = TEXT[1] + 16 * PAGE                     # between the text and the heap: no mapping
    assert not sample(page_idle, pagemap, [hole], [TEXT, HEAP, STACK]).trackable.any()
    cost = pagemap.syscalls
    for _ in range(5):
        assert not sample(page_idle, pagemap, [hole]).trackable.any()
    assert pagemap.syscalls == cost


def test_steady_sampling_costs_only_the_bitmap_calls(fake):
    """Per sample, once the blocks are resolved: one write run and one read run of bitmap
    words per region at most (fewer where regions' pages share words), nothing else."""
    ctx = page_idle_context([PID], attrs(), PageIdle(fake.bitmap, fake.proc), fake.proc, seed=3)
    ctx.start()
    ops, page_idle = ctx.ops, ctx.ops.page_idle
    for _ in range(30):                            # resolve the blocks that sampling lands in
        ops.prepare_access_checks(ctx, 0, 1)
        ops.check_accesses(ctx, 0, 1)
    resolving = ops.pagemap(PID).syscalls + page_idle.kpageflags.syscalls
    bitmap_before = page_idle.bitmap.syscalls
    nr_samples = 50
    for _ in range(nr_samples):
        ops.prepare_access_checks(ctx, 0, 1)
        ops.check_accesses(ctx, 0, 1)
    nr_regions = ctx.targets[0].nr_regions
    assert ops.pagemap(PID).syscalls + page_idle.kpageflags.syscalls - resolving <= 2   # a block not met yet
    assert page_idle.bitmap.syscalls - bitmap_before <= 2 * nr_regions * nr_samples


FORKER = """
import os, sys, time
sys.stdin.readline()                          # the test has put our pagemap in the fake tree
time.sleep(0.3)
kids = []
for k in range(2):
    pid = os.fork()
    if pid == 0:
        time.sleep(1.2)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
time.sleep(float(sys.argv[1]))
"""


def child_mappings(k: int) -> list[tuple[int, int]]:
    """Target k's own mappings: the usual three, moved by k GiB so each task's are told apart."""
    return [(s + k * (1 << 30), e + k * (1 << 30)) for s, e in (TEXT, HEAP, STACK)]


def mirror_children(fake, parent: int, stop) -> None:
    """Give every child of ``parent`` a pagemap and maps in the fake tree as soon as it appears
    (the recorder skips a child it cannot read yet, and finds it again at its next poll)."""
    from damo.kernel.tasks import children
    seen: set[int] = set()
    while not stop.is_set():
        for pid in children(parent):
            if pid not in seen:
                seen.add(pid)
                k = len(seen)
                fake.add_process(pid, child_mappings(k))
                fake.map_range(pid, *child_mappings(k)[1], first_pfn=0x40000 + k * 0x10000)
        time.sleep(0.02)


def forking_page_idle_record(fake, tmp_path, child_tasks: bool = True):
    import threading
    workload = subprocess.Popen([sys.executable, "-c", FORKER, "0.8"], stdin=subprocess.PIPE, text=True)
    stop = threading.Event()
    mirror = threading.Thread(target=mirror_children, args=(fake, workload.pid, stop))
    try:
        fake.add_process(workload.pid, child_mappings(0))
        fake.map_range(workload.pid, *child_mappings(0)[1], first_pfn=0x40000)
        mirror.start()
        workload.stdin.write("go\n")
        workload.stdin.flush()
        out = tmp_path / "children.data"
        request = RecordRequest(target=[str(workload.pid)], attrs=attrs(aggr_us=50000), ops="page_idle",
                                timeout=8.0, out=str(out), child_tasks=child_tasks)
        started = time.monotonic()
        assert PageIdleRecorder(request, fake.bitmap, fake.proc).run() == 0
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        mirror.join()
        workload.kill()
        workload.wait()
    return workload.pid, read_record(out), elapsed


def test_page_idle_follows_child_tasks_with_their_own_target_ids(fake, tmp_path):
    """A pid that forks two children: each child becomes a target of its own within about a
    second of its birth, with regions over its own mappings, and leaves when it exits; the
    record ends when the parent exits after them."""
    parent, record, elapsed = forking_page_idle_record(fake, tmp_path)
    info = record.meta.targets_info()
    assert sorted(info) == [0, 1, 2] and record.meta.extra["child_tasks"] is True
    assert info[0]["pid"] == parent and [info[t].get("parent_target_id") for t in (1, 2)] == [0, 0]
    assert elapsed < 6                                # stopped when the parent exited, not at the timeout
    by_target = {tid: [s for s in record.snapshots() if s.target_id == tid] for tid in info}
    for tid in info:
        snaps = by_target[tid]
        assert snaps, tid
        k = 0 if tid == 0 else sorted((info[1]["pid"], info[2]["pid"])).index(info[tid]["pid"]) + 1
        maps = child_mappings(k)
        for snap in snaps:
            assert snap.start.min() == maps[0][0] and snap.end.max() == maps[2][1]   # its own mappings
    last = {tid: max(s.end_ns for s in by_target[tid]) for tid in info}
    first = {tid: min(s.end_ns for s in by_target[tid]) for tid in info}
    for tid in (1, 2):
        assert first[tid] - first[0] < 1.8e9          # forked 0.3 s in, found within about a second
        assert last[tid] < last[0] - 0.3e9            # gone when it exited, the parent recorded on


def test_page_idle_exclude_child_tasks_records_the_parent_alone(fake, tmp_path):
    parent, record, _ = forking_page_idle_record(fake, tmp_path, child_tasks=False)
    assert record.target_ids() == [0] and list(record.meta.targets_info()) == [0]
    assert record.meta.extra["child_tasks"] is False


def test_scattered_pfns_get_their_flags_read_only_where_samples_land(tmp_path):
    """A block whose pages lie at scattered PFNs is not classified whole (hundreds of kpageflags
    reads): each sampled page's flags are read when a sample lands on it, with the same result."""
    fake = FakePageIdle(tmp_path)
    fake.add_process(PID, [TEXT, HEAP, STACK])
    rng = np.random.default_rng(5)
    pfns = rng.choice(1 << 20, 512, replace=False) + 0x1000
    base = HEAP[0]
    fake._put_many(fake.proc / str(PID) / "pagemap", base >> PAGE_SHIFT, np.uint64(1 << 63) | pfns.astype(np.uint64))
    for k, pfn in enumerate(pfns.tolist()):
        fake._put_many(fake.proc / "kpageflags", pfn, [0 if k == 7 else 1 << 5])   # page 7 is off the LRU
    page_idle = PageIdle(fake.bitmap, fake.proc)
    pagemap = open_pagemap(PID, fake.proc)
    picks = [3, 7, 300]
    resolved = sample(page_idle, pagemap, [base + k * PAGE for k in picks])
    assert resolved.trackable.tolist() == [True, False, True]
    assert resolved.head_pfn[[0, 2]].tolist() == [pfns[3], pfns[300]]
    assert page_idle.kpageflags.syscalls <= len(picks) and pagemap.syscalls == 1
    again = sample(page_idle, pagemap, [base + k * PAGE for k in picks])    # known now: no call
    assert again.trackable.tolist() == [True, False, True] and page_idle.kpageflags.syscalls <= len(picks)
    assert pagemap.syscalls == 1


def test_after_an_update_blocks_are_checked_not_read_anew(fake):
    """An ops update re-reads the loaded blocks' pagemap (one call per run of blocks), not their
    flags: only pages whose PFN changed, and the pages of a THP that was split, are classified
    again."""
    base = HEAP[0]
    fake.map_thp(PID, base + 2 * MIB, 0x60000)
    page_idle = PageIdle(fake.bitmap, fake.proc)
    pagemap = open_pagemap(PID, fake.proc)
    plain = [base + k * PAGE for k in (1, 100, 300)]
    tail = base + 2 * MIB + 5 * PAGE
    first = sample(page_idle, pagemap, plain + [tail], [TEXT, HEAP, STACK])
    assert first.head_pfn.tolist() == [0x20001, 0x20064, 0x2012C, 0x60000]
    flag_reads = page_idle.kpageflags.syscalls
    page_idle.forget()
    fake.map_page(PID, plain[1], 0x71000)                          # migrated meanwhile
    again = sample(page_idle, pagemap, plain + [tail], [TEXT, HEAP, STACK])
    assert again.head_pfn.tolist() == [0x20001, 0x71000, 0x2012C, 0x60000]
    assert page_idle.kpageflags.syscalls - flag_reads <= 2          # the THP head's, the moved page's
    # The THP is split: its pages become plain LRU pages at the same PFNs.
    for i in range(512):
        fake.map_page(PID, base + 2 * MIB + i * PAGE, 0x60000 + i)
    page_idle.forget()
    assert sample(page_idle, pagemap, [tail], [TEXT, HEAP, STACK]).head_pfn.tolist() == [0x60005]
