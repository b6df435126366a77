"""The record data model: metadata plus columnar snapshots of DAMON regions.

Every record source writes this model and every report reads it. A record is a
time series of snapshots; a snapshot is one aggregation interval of one
monitoring target and owns a contiguous slice of the region columns
(``offsets[i]:offsets[i+1]``). There are no per-region Python objects.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

AGE_UNKNOWN = -1

# Column dtypes, shared by every reader and writer.
ADDR_DTYPE = np.uint64
NR_ACCESSES_DTYPE = np.int64
AGE_DTYPE = np.int64
TIME_DTYPE = np.int64
# meta.extra key: one dict per target, {"target_id", "pid", "cmdline", ...}, for process targets
TARGETS_KEY = "targets"


# meta.extra key of the intervals goal: {access_bp, aggrs, min_sample_us, max_sample_us}
INTERVALS_GOAL_KEY = "intervals_goal"
# meta.extra keys the readers of damo's formats fill, here so that reports can look at them
# without importing those readers (damo.formats.damo_json compiles a dozen regular expressions)
DAMO_RECORDS_KEY = "damo_records"      # damo_json.EXTRA_KEY
PERF_FIRST_START_KEY = "perf_script_first_start_ns"      # perf_script.FIRST_START_KEY
INTERVALS_GOAL_FIELDS = ("access_bp", "aggrs", "min_sample_us", "max_sample_us")


@dataclass
class RecordMeta:
    """What was monitored, and how.

    Intervals are in microseconds; ``None`` means the source did not say
    (for example a perf_script file).
    """

    target_kind: str = "unknown"          # vaddr | paddr | fvaddr | sim | unknown
    target: str = ""                      # command line, pid, masim config, ...
    sample_us: int | None = None
    aggr_us: int | None = None
    update_us: int | None = None
    min_nr_regions: int | None = None
    max_nr_regions: int | None = None
    start_time: float | None = None       # wall clock, seconds since the epoch
    kernel_release: str | None = None
    tool_version: str = ""
    # KEY=VALUE labels (host, kernel, damo version by default; --label adds more): what a fleet
    # groups and partitions records by.
    labels: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RecordMeta":
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = dict(kwargs.pop("extra", {}) or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        labels = kwargs.pop("labels", None)
        labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
        return cls(**kwargs, labels=labels, extra=extra)

    def targets_info(self) -> dict[int, dict]:
        """Target id -> what the record knows of it (``pid``, ``cmdline``, ...), from ``extra``."""
        out = {}
        for item in self.extra.get(TARGETS_KEY) or []:
            if isinstance(item, dict) and isinstance(item.get("target_id"), int):
                out[item["target_id"]] = {k: v for k, v in item.items() if k != "target_id"}
        return out

    @property
    def intervals_goal(self) -> dict | None:
        """The intervals auto-tuning goal the record was made with (``INTERVALS_GOAL_FIELDS``), or
        None if its intervals were not tuned."""
        goal = self.extra.get(INTERVALS_GOAL_KEY)
        return goal if isinstance(goal, dict) and goal.get("aggrs") else None

    @property
    def max_nr_accesses(self) -> int | None:
        if not self.sample_us or not self.aggr_us:
            return None
        return self.aggr_us // self.sample_us


@dataclass
class Snapshot:
    """A view of one snapshot's regions (array slices, not copies)."""

    target_id: int
    start_ns: int
    end_ns: int
    start: np.ndarray
    end: np.ndarray
    nr_accesses: np.ndarray
    age: np.ndarray

    @property
    def nr_regions(self) -> int:
        return len(self.start)


@dataclass
class Record:
    """Columnar snapshots: per-snapshot arrays and per-region arrays."""

    meta: RecordMeta
    target_id: np.ndarray        # uint64 [nr_snapshots]
    start_ns: np.ndarray         # int64  [nr_snapshots]
    end_ns: np.ndarray           # int64  [nr_snapshots]
    offsets: np.ndarray          # int64  [nr_snapshots + 1]
    start: np.ndarray            # uint64 [nr_regions]
    end: np.ndarray              # uint64 [nr_regions]
    nr_accesses: np.ndarray      # int64  [nr_regions], samples per aggregation
    age: np.ndarray              # int64  [nr_regions], aggregation intervals, -1 unknown
    # Each snapshot's own sampling interval (µs) where intervals were auto-tuned, else None
    # (every snapshot has meta.sample_us).
    snapshot_sample_us: np.ndarray | None = None     # int64 [nr_snapshots]
    # What damo records beside the accesses (--do_record): memory footprints (columnar), and
    # the VMAs and process stats in damo's own JSON shape (a few small entries a second).
    footprints: "MemFootprints | None" = None
    proc_vmas: list | None = None
    proc_stats: list | None = None

    @property
    def nr_snapshots(self) -> int:
        return len(self.start_ns)

    @property
    def nr_regions_total(self) -> int:
        return len(self.start)

    def regions_per_snapshot(self) -> np.ndarray:
        return np.diff(self.offsets)

    def snapshot_index(self) -> np.ndarray:
        """The snapshot number of every region."""
        return np.repeat(np.arange(self.nr_snapshots), self.regions_per_snapshot())

    def target_ids(self) -> list[int]:
        """Distinct target ids, in order of first appearance."""
        _, first = np.unique(self.target_id, return_index=True)
        return [int(self.target_id[i]) for i in sorted(first)]

    def snapshot(self, i: int) -> Snapshot:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return Snapshot(int(self.target_id[i]), int(self.start_ns[i]), int(self.end_ns[i]),
                        self.start[lo:hi], self.end[lo:hi], self.nr_accesses[lo:hi], self.age[lo:hi])

    def snapshots(self) -> Iterator[Snapshot]:
        for i in range(self.nr_snapshots):
            yield self.snapshot(i)

    def select(self, mask: np.ndarray) -> "Record":
        """A new record holding only the snapshots where ``mask`` is true."""
        idx = np.flatnonzero(mask)
        counts = self.regions_per_snapshot()[idx]
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        region_mask = np.repeat(np.asarray(mask, dtype=bool), self.regions_per_snapshot())
        sample_us = None if self.snapshot_sample_us is None else self.snapshot_sample_us[idx]
        return Record(self.meta, self.target_id[idx], self.start_ns[idx], self.end_ns[idx], offsets,
                      self.start[region_mask], self.end[region_mask],
                      self.nr_accesses[region_mask], self.age[region_mask], sample_us, *self.side_data())

    def clip(self, lo: int, hi: int) -> "Record":
        """The same snapshots, their regions cut to the addresses [lo, hi); regions outside are dropped."""
        # hi may be 2^64 (the end of the address space), which no uint64 holds: it clips nothing.
        start = np.maximum(self.start, np.uint64(lo))
        end = self.end if hi >= 1 << 64 else np.minimum(self.end, np.uint64(hi))
        keep = start < end
        counts = np.bincount(self.snapshot_index()[keep], minlength=self.nr_snapshots)
        offsets = np.zeros(self.nr_snapshots + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return Record(self.meta, self.target_id, self.start_ns, self.end_ns, offsets,
                      start[keep], end[keep], self.nr_accesses[keep], self.age[keep], self.snapshot_sample_us,
                      *self.side_data())

    def side_data(self) -> tuple:
        """``(footprints, proc_vmas, proc_stats)``: what a selection keeps as it is."""
        return self.footprints, self.proc_vmas, self.proc_stats

    def sample_us_per_snapshot(self) -> np.ndarray | None:
        """Every snapshot's sampling interval in µs (its own if tuned, else the record's), or None
        if the record does not say."""
        if self.snapshot_sample_us is not None:
            return self.snapshot_sample_us
        if not self.meta.sample_us:
            return None
        return np.full(self.nr_snapshots, self.meta.sample_us, dtype=np.int64)

    def aggr_us_per_snapshot(self) -> np.ndarray | None:
        """Every snapshot's aggregation interval in µs. Auto-tuning keeps the aggregation interval
        a fixed number of sampling intervals, so a tuned snapshot's is its sample interval times
        the record's ratio (nr_accesses' maximum, hence percentages, do not change)."""
        sample = self.sample_us_per_snapshot()
        if sample is None or not self.meta.aggr_us:
            return None
        if self.snapshot_sample_us is None:
            return np.full(self.nr_snapshots, self.meta.aggr_us, dtype=np.int64)
        return sample * max(self.meta.aggr_us // self.meta.sample_us, 1)

    def for_target(self, target_id: int) -> "Record":
        return self.select(self.target_id == np.uint64(target_id))

    def split_targets(self) -> list[tuple[int, "Record"]]:
        """``(target_id, record of that target)`` in order of first appearance."""
        ids = self.target_ids()
        if len(ids) == 1:
            return [(ids[0], self)]
        return [(tid, self.for_target(tid)) for tid in ids]

    def validate_shape(self) -> None:
        """Raise ValueError if the columns do not fit together."""
        n = self.nr_snapshots
        if not (len(self.target_id) == len(self.end_ns) == n and len(self.offsets) == n + 1):
            raise ValueError("snapshot columns differ in length")
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.start) or np.any(np.diff(self.offsets) < 0):
            raise ValueError("snapshot offsets do not cover the regions")
        m = len(self.start)
        if not (len(self.end) == len(self.nr_accesses) == len(self.age) == m):
            raise ValueError("region columns differ in length")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        cols = ("target_id", "start_ns", "end_ns", "offsets", "start", "end", "nr_accesses", "age")
        same_intervals = (self.snapshot_sample_us is None) == (other.snapshot_sample_us is None) and (
            self.snapshot_sample_us is None or np.array_equal(self.snapshot_sample_us, other.snapshot_sample_us))
        return self.meta == other.meta and same_intervals and self.side_data() == other.side_data() and all(
            np.array_equal(getattr(self, c), getattr(other, c)) for c in cols)

    def same_data(self, other: "Record") -> bool:
        """Equal snapshots and regions, whatever the metadata."""
        cols = ("target_id", "start_ns", "end_ns", "offsets", "start", "end", "nr_accesses", "age")
        return all(np.array_equal(getattr(self, c), getattr(other, c)) for c in cols)


STATM_FIELDS = ("size", "resident", "shared", "trs", "lrs", "drs", "dt")     # /proc/PID/statm, pages
MEMINFO_FIELDS = ("total", "free", "available", "buffers", "cached")          # /proc/meminfo, KiB
MEMINFO_KEYS = {"MemTotal:": "total", "MemFree:": "free", "MemAvailable:": "available", "Buffers:": "buffers",
                "Cached:": "cached"}
FOOTPRINT_PAGE_SIZE = 4096       # damo's report multiplies statm pages by 4096 whatever the page size
MISSING = -1                     # a field the sample did not have (damo's null)


@dataclass
class MemFootprints:
    """Memory footprint samples (damo's ``--do_record mem_footprint``), columnar.

    A sample is one moment: every target process's /proc/PID/statm (rows ``proc_offsets[i]:
    proc_offsets[i+1]`` of ``pid`` and ``statm``) and, if it was read, the system's /proc/meminfo
    fields damo keeps (``sys[i]``, -1 for absent; ``has_sys[i]`` false for no system entry).
    """

    time: np.ndarray          # float64 [nr_samples], seconds (wall clock; virtual for the simulator)
    proc_offsets: np.ndarray  # int64   [nr_samples + 1]
    pid: np.ndarray           # int64   [nr_rows]
    statm: np.ndarray         # int64   [nr_rows, 7], pages, in STATM_FIELDS order
    has_sys: np.ndarray       # bool    [nr_samples]
    sys: np.ndarray           # int64   [nr_samples, 5], KiB, in MEMINFO_FIELDS order

    @property
    def nr_samples(self) -> int:
        return len(self.time)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemFootprints):
            return NotImplemented
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name))
                   for f in dataclasses.fields(self))

    def proc_total(self, field_name: str) -> np.ndarray:
        """Per sample, the sum over its processes of one statm field, in pages."""
        column = self.statm[:, STATM_FIELDS.index(field_name)] if len(self.statm) else np.zeros(0, np.int64)
        cum = np.concatenate([[0], np.cumsum(column)])
        return cum[self.proc_offsets[1:]] - cum[self.proc_offsets[:-1]]

    def sys_used_kib(self) -> np.ndarray:
        """Per sample, MemTotal - MemFree in KiB (0 where the sample has no system entry)."""
        used = self.sys[:, 0] - self.sys[:, 1] if len(self.sys) else np.zeros(0, np.int64)
        return np.where(self.has_sys, used, 0)

    @classmethod
    def from_damo(cls, snapshots: list) -> "MemFootprints":
        """From damo's ``.mem_footprint`` JSON: ``[{"time", "footprints": [{"pid", "footprint"}]}]``."""
        times, counts, pids, statm, has_sys, sys = [], [], [], [], [], []
        for snap in snapshots:
            times.append(float(snap["time"]))
            sys_row = [MISSING] * len(MEMINFO_FIELDS)
            found_sys = False
            nr_procs = 0
            for entry in snap["footprints"]:
                fp = entry["footprint"]
                if entry["pid"] is None:
                    found_sys = True
                    sys_row = [_int_or_missing(fp.get(k)) for k in MEMINFO_FIELDS]
                    continue
                pids.append(int(entry["pid"]))
                # damo's object, or the recorder's list in STATM_FIELDS order (damo.sources.proc_sampler)
                statm.append([_int_or_missing(fp.get(k)) for k in STATM_FIELDS] if isinstance(fp, dict)
                             else [int(v) for v in fp[:len(STATM_FIELDS)]])
                nr_procs += 1
            counts.append(nr_procs)
            has_sys.append(found_sys)
            sys.append(sys_row)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(np.asarray(counts, dtype=np.int64), out=offsets[1:])
        return cls(np.asarray(times, dtype=np.float64), offsets, np.asarray(pids, dtype=np.int64),
                   np.asarray(statm, dtype=np.int64).reshape(-1, len(STATM_FIELDS)),
                   np.asarray(has_sys, dtype=bool), np.asarray(sys, dtype=np.int64).reshape(-1, len(MEMINFO_FIELDS)))

    def to_damo(self) -> list:
        """damo's ``.mem_footprint`` JSON value (processes first, then the system's, pid null)."""
        out = []
        for i in range(self.nr_samples):
            entries = [{"pid": int(self.pid[r]),
                        "footprint": dict(zip(STATM_FIELDS, (int(v) for v in self.statm[r])))}
                       for r in range(int(self.proc_offsets[i]), int(self.proc_offsets[i + 1]))]
            if self.has_sys[i]:
                entries.append({"pid": None, "footprint": {k: (None if v == MISSING else int(v))
                                                           for k, v in zip(MEMINFO_FIELDS, self.sys[i])}})
            out.append({"time": float(self.time[i]), "footprints": entries})
        return out


def _int_or_missing(value) -> int:
    return MISSING if value is None else int(value)


class RecordBuilder:
    """Collects snapshots one at a time and produces a columnar Record.

    Region arrays are appended as whole numpy arrays, so building stays
    vectorised; the final concatenation happens once in ``build``.
    """

    def __init__(self, meta: RecordMeta | None = None):
        self.meta = meta or RecordMeta()
        self._snap: list[tuple[int, int, int]] = []
        self._counts: list[int] = []
        self._cols: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return len(self._snap)

    def add(self, target_id: int, start_ns: int, end_ns: int, start, end, nr_accesses, age=None) -> None:
        start = np.asarray(start, dtype=ADDR_DTYPE)
        n = len(start)
        if age is None:
            age = np.full(n, AGE_UNKNOWN, dtype=AGE_DTYPE)
        self._snap.append((int(target_id), int(start_ns), int(end_ns)))
        self._counts.append(n)
        self._cols.append((start, np.asarray(end, dtype=ADDR_DTYPE),
                           np.asarray(nr_accesses, dtype=NR_ACCESSES_DTYPE),
                           np.asarray(age, dtype=AGE_DTYPE)))

    def add_snapshot(self, snap: Snapshot) -> None:
        self.add(snap.target_id, snap.start_ns, snap.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age)

    def build(self) -> Record:
        return concat_columns(self.meta, self._snap, self._counts, self._cols)


def concat_columns(meta: RecordMeta, snaps, counts, cols) -> Record:
    """Assemble a Record from per-snapshot tuples and per-snapshot region arrays."""
    snap_arr = np.array(snaps, dtype=object).reshape(-1, 3) if snaps else np.zeros((0, 3), dtype=object)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(np.asarray(counts, dtype=np.int64), out=offsets[1:])

    def cat(i, dtype):
        if not cols:
            return np.zeros(0, dtype=dtype)
        return np.concatenate([c[i] for c in cols]).astype(dtype, copy=False)

    return Record(meta,
                  np.array([int(x) for x in snap_arr[:, 0]], dtype=np.uint64),
                  np.array(snap_arr[:, 1], dtype=TIME_DTYPE),
                  np.array(snap_arr[:, 2], dtype=TIME_DTYPE),
                  offsets, cat(0, ADDR_DTYPE), cat(1, ADDR_DTYPE),
                  cat(2, NR_ACCESSES_DTYPE), cat(3, AGE_DTYPE))


class RegionColumns:
    """Region columns (start, end, nr_accesses, age) appended snapshot by snapshot, for readers.

    A block holds 8 M regions per column, allocated untouched (only the filled part becomes
    resident) and big enough to be its own memory mapping, so it goes back to the system when
    freed. A record that fits one block is returned as views of it, without a copy; larger ones
    are joined one column at a time, each block freed once copied. Thousands of small
    per-snapshot arrays would instead linger in the heap next to the finished record.
    """

    DTYPES = (ADDR_DTYPE, ADDR_DTYPE, NR_ACCESSES_DTYPE, AGE_DTYPE)
    BLOCK = 1 << 23

    def __init__(self):
        self.blocks: list[list[np.ndarray]] = []
        self.fill = 0
        self.counts: list[int] = []

    def append(self, cols) -> None:
        n = len(cols[0])
        self.counts.append(n)
        done = 0
        while done < n:
            if not self.blocks or self.fill == len(self.blocks[-1][0]):
                self.blocks.append([np.empty(max(self.BLOCK, n - done), dtype=d) for d in self.DTYPES])
                self.fill = 0
            block = self.blocks[-1]
            take = min(n - done, len(block[0]) - self.fill)
            for i in range(4):
                block[i][self.fill:self.fill + take] = cols[i][done:done + take]
            self.fill += take
            done += take

    def build(self, region_order: np.ndarray | None) -> list[np.ndarray]:
        """The four columns, regions reordered by ``region_order`` if given; the blocks go."""
        if not self.blocks:
            return [np.zeros(0, dtype=d) for d in self.DTYPES]
        self.blocks[-1] = [c[:self.fill] for c in self.blocks[-1]]
        columns = []
        for i, dtype in enumerate(self.DTYPES):
            if len(self.blocks) == 1:
                out = self.blocks[0][i]
            else:
                out = np.empty(sum(len(b[i]) for b in self.blocks), dtype=dtype)
                pos = 0
                for block in self.blocks:
                    out[pos:pos + len(block[i])] = block[i]
                    pos += len(block[i])
                    block[i] = None
            columns.append(out if region_order is None else out[region_order])
        self.blocks = []
        return columns


def empty_record(meta: RecordMeta | None = None) -> Record:
    return RecordBuilder(meta).build()


@dataclass
class MonitoringAttrs:
    """DAMON monitoring attributes, in microseconds and region counts (damo's defaults)."""

    sample_us: int = 5000
    aggr_us: int = 100000
    update_us: int = 1000000
    min_nr_regions: int = 10
    max_nr_regions: int = 1000

    def check(self) -> None:
        """Raise ValueError for attributes the kernel's damon_set_attrs() would reject."""
        if self.sample_us <= 0 or self.aggr_us <= 0 or self.update_us <= 0:
            raise ValueError("intervals must be positive")
        if self.sample_us > self.aggr_us:
            raise ValueError("the sampling interval is longer than the aggregation interval")
        if self.min_nr_regions < 3:
            raise ValueError("min_nr_regions must be at least 3")
        if self.min_nr_regions > self.max_nr_regions:
            raise ValueError("min_nr_regions is larger than max_nr_regions")
