"""``perf script`` text of ``damon:damon_aggregated`` trace events (damo's ``perf_script`` format).

One line per region::

    kdamond.0  4452 [000] 82877.315633: damon:damon_aggregated: target_id=18446623435582458880 nr_regions=17 140731667070976-140731668037632: 0 3

The last field (age) is missing on old kernels. tracefs (``trace_pipe``) prints the same event
as ``kdamond.0-4452 [000] ..... 82877.315633: damon_aggregated: target_id=...``; both are read.

A snapshot is the ``nr_regions`` lines that follow its first line, per target; its end time is
that line's timestamp, its start time the previous snapshot's end (for the first snapshot: its
end minus the mean snapshot duration), as damo does. Timestamps are converted the way damo
converts them (``int(float(seconds) * 1e9)``) so reports print the same times.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import warnings
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from damo.errors import DamoError, RecordFileError
from damo.formats import WriterBase, create_private
from damo.model import (ADDR_DTYPE, AGE_DTYPE, AGE_UNKNOWN, NR_ACCESSES_DTYPE, PERF_FIRST_START_KEY, TARGETS_KEY,
                         TIME_DTYPE, Record, RecordMeta)

EVENT = b"damon_aggregated:"
# meta.extra: per target, the first snapshot's start as damo derives it (a float of ns).
FIRST_START_KEY = PERF_FIRST_START_KEY
# The record's labels ride on a comment line before the events (damo skips lines that are not events).
LABELS_PREFIX = b"# damo labels: "
# A comment line with the record's target table (meta.extra["targets"]); the last one counts.
TARGETS_PREFIX = b"# damo targets: "
READ_BYTES = 16 << 20

# timestamp, target_id, nr_regions, start, end, nr_accesses, [age]
_LINE = re.compile(rb"^[^\n]*?[ \t](\d+\.\d+):[ \t]+(?:damon:)?damon_aggregated:[ \t]+target_id=(\d+)[ \t]+"
                   rb"nr_regions=(\d+)[ \t]+(\d+)-(\d+):[ \t]+(-?\d+)(?:[ \t]+(-?\d+))?[ \t]*\r?$", re.M)


def sniff(head: bytes, fmt: str) -> bool:
    return _LINE.search(head) is not None


@dataclass
class AggregatedSnapshot:
    """One snapshot assembled from trace lines: the end time is the first line's timestamp."""

    target_id: int
    end_ns: int
    start: np.ndarray
    end: np.ndarray
    nr_accesses: np.ndarray
    age: np.ndarray
    pid: int = -1           # the kdamond's, where the trace line names it


def timestamp_ns(seconds: str | bytes) -> int:
    """A trace timestamp (seconds, µs precision) in ns, exactly as damo computes it."""
    return int(float(seconds) * 1000000000)


def parse_line(line: str | bytes) -> tuple[int, int, int, int, int, int, int] | None:
    """(end_ns, target_id, nr_regions, start, end, nr_accesses, age) of one trace line, or None."""
    if isinstance(line, str):
        line = line.encode("utf-8", "replace")
    m = _LINE.match(line.rstrip(b"\n"))
    if not m:
        return None
    ts, tid, nr_regions, start, end, nr, age = m.groups()
    return (timestamp_ns(ts), int(tid), int(nr_regions), int(start), int(end), int(nr),
            int(age) if age is not None else AGE_UNKNOWN)


def parse_lines(lines: Iterable[str | bytes], flush_partial: bool = False) -> Iterator[AggregatedSnapshot]:
    """Assemble trace lines into snapshots as they come (for a live ``trace_pipe``).

    Lines that are not damon_aggregated events are skipped. A snapshot is yielded once its
    ``nr_regions`` lines have arrived; with ``flush_partial`` an incomplete one is yielded at
    the end of the input too.
    """
    pending: dict[int, tuple[int, int, list]] = {}     # target -> (end_ns, nr_regions, rows)
    for line in lines:
        fields = parse_line(line)
        if fields is None:
            continue
        end_ns, tid, nr_regions, start, end, nr, age = fields
        if tid not in pending:
            pending[tid] = (end_ns, nr_regions, [])
        snap_end, snap_nr, rows = pending[tid]
        rows.append((start, end, nr, age))
        if len(rows) >= snap_nr:
            del pending[tid]
            yield _snapshot_from_rows(tid, snap_end, rows)
    if flush_partial:
        for tid, (snap_end, _, rows) in pending.items():
            yield _snapshot_from_rows(tid, snap_end, rows)


def _snapshot_from_rows(tid: int, end_ns: int, rows: list) -> AggregatedSnapshot:
    cols = np.array(rows, dtype=object).reshape(-1, 4)
    return AggregatedSnapshot(tid, end_ns, np.array(cols[:, 0].tolist(), dtype=ADDR_DTYPE),
                              np.array(cols[:, 1].tolist(), dtype=ADDR_DTYPE),
                              np.array(cols[:, 2].tolist(), dtype=NR_ACCESSES_DTYPE),
                              np.array(cols[:, 3].tolist(), dtype=AGE_DTYPE))


# --- reading a whole file, vectorised -----------------------------------------------------------

def _ints(column: list[bytes], dtype) -> np.ndarray:
    if not column:
        return np.zeros(0, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = np.fromstring(b" ".join(column), dtype=np.uint64 if dtype == ADDR_DTYPE else np.int64, sep=" ")
    if len(values) != len(column):
        raise ValueError("a number did not parse")
    if dtype == ADDR_DTYPE and np.any(values == np.iinfo(np.uint64).max):
        values = np.array([int(v) for v in column], dtype=np.uint64)   # clamped, or truly the maximum
    return values.astype(dtype, copy=False)


def _parse_text(text: bytes) -> tuple[np.ndarray, ...]:
    rows = _LINE.findall(text)
    if not rows:
        return None
    ts, tid, nr_regions, start, end, nr, age = zip(*rows)
    seconds = np.array(ts, dtype=np.float64)
    # int64 nanoseconds reach 2^63 ns, about 292 years: a larger timestamp is damage, not a time.
    if not np.all(np.isfinite(seconds) & (np.abs(seconds) < 9.2e9)):
        raise ValueError("a timestamp is out of range (more than 292 years)")
    ends_ns = (seconds * 1000000000).astype(np.int64)
    ages = [a or b"-1" for a in age]
    return (ends_ns, _ints(list(tid), ADDR_DTYPE), _ints(list(nr_regions), np.int64),
            _ints(list(start), ADDR_DTYPE), _ints(list(end), ADDR_DTYPE),
            _ints(list(nr), NR_ACCESSES_DTYPE), _ints(ages, AGE_DTYPE))


def _read_lines(path) -> tuple[np.ndarray, ...]:
    """Every damon_aggregated line of the file as columns, reading it in large pieces."""
    pieces = []
    rest = b""
    with open(path, "rb") as f:
        while True:
            data = f.read(READ_BYTES)
            text = rest + data
            if data:
                cut = text.rfind(b"\n") + 1
                text, rest = text[:cut], text[cut:]
            if text:
                parsed = _parse_text(text)
                if parsed is not None:
                    pieces.append(parsed)
            if not data:
                break
    if not pieces:
        raise RecordFileError(path, "no damon_aggregated trace lines in this perf_script file")
    return tuple(np.concatenate([p[i] for p in pieces]) for i in range(7))


def _group(ends_ns: np.ndarray, nr_regions: np.ndarray, lines: np.ndarray) -> list[tuple[int, int]]:
    """(first line, line count) of each snapshot among one target's lines."""
    groups = []
    pos, total = 0, len(lines)
    while pos < total:
        count = max(int(nr_regions[lines[pos]]), 1)
        groups.append((pos, min(count, total - pos)))
        pos += count
    return groups


def _is_fake(start, end, nr, age) -> bool:
    """damo's marker snapshot, appended so that a one-snapshot record keeps its duration."""
    return len(start) == 1 and start[0] == 0 and end[0] == 0 and nr[0] == -1 and age[0] == -1


def read(path, fmt: str = "perf_script") -> Record:
    """Read a perf_script file of damon_aggregated lines."""
    ends_ns, tids, nr_regions, starts, ends, nrs, ages = _read_lines(path)
    _, first_line = np.unique(tids, return_index=True)
    target_order = [int(tids[i]) for i in sorted(first_line)]
    per_target = []
    first_starts: dict[str, float] = {}
    for tid in target_order:
        lines = np.flatnonzero(tids == np.uint64(tid))
        groups = _group(ends_ns, nr_regions, lines)
        first = lines[np.array([g[0] for g in groups])]
        snap_end = ends_ns[first]
        # damo refuses a trace whose lines go back in time against the snapshot they follow.
        line_snap = np.repeat(np.arange(len(groups)), [g[1] for g in groups])
        reference = snap_end[line_snap].copy()
        is_first = np.zeros(len(lines), dtype=bool)
        is_first[[g[0] for g in groups]] = True
        reference[is_first] = np.concatenate([[np.iinfo(np.int64).min], snap_end[:-1]])
        if np.any(reference > ends_ns[lines]):
            raise RecordFileError(path, "trace is not time-sorted")
        snaps = [(lines[g[0]:g[0] + g[1]]) for g in groups]
        snap_start = np.empty(len(groups), dtype=TIME_DTYPE)
        snap_start[1:] = snap_end[:-1]
        if len(groups) >= 2:
            mean = float(int(snap_end[-1]) - int(snap_end[0])) / (len(groups) - 1)
            first_start = int(snap_end[0]) - mean
            # Whole ns as damo's own conversion writes it; the exact value for the raw report.
            snap_start[0] = math.floor(first_start)
            first_starts[str(tid)] = first_start
        else:
            snap_start[0] = snap_end[0]
        keep = len(groups)
        last = snaps[-1]
        if len(groups) >= 2 and _is_fake(starts[last], ends[last], nrs[last], ages[last]):
            keep -= 1
        per_target.append((tid, snap_start[:keep], snap_end[:keep], snaps[:keep]))
    record = _assemble(per_target, starts, ends, nrs, ages)
    record.meta.extra[FIRST_START_KEY] = first_starts
    record.meta.labels = _read_labels(path)
    targets = _read_targets(path)
    if targets:
        record.meta.extra[TARGETS_KEY] = targets
    return record


def _read_targets(path) -> list:
    """The target table of the last ``# damo targets:`` line, if there is one."""
    import mmap

    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return []
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            pos = data.rfind(b"\n" + TARGETS_PREFIX)
            pos = pos + 1 if pos >= 0 else (0 if data[:len(TARGETS_PREFIX)] == TARGETS_PREFIX else -1)
            if pos < 0:
                return []
            stop = data.find(b"\n", pos)
            found = data[pos:stop if stop >= 0 else len(data)]
    try:
        targets = json.loads(found[len(TARGETS_PREFIX):])
    except ValueError:
        return []
    return targets if isinstance(targets, list) else []


def _read_labels(path) -> dict[str, str]:
    """The labels of the comment line at the top of the file, if there is one."""
    with open(path, "rb") as f:
        first = f.readline(1 << 16)
    if not first.startswith(LABELS_PREFIX):
        return {}
    try:
        labels = json.loads(first[len(LABELS_PREFIX):])
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _assemble(per_target, starts, ends, nrs, ages) -> Record:
    """Snapshots of all targets in time order (ties keep the targets' first-appearance order)."""
    tid_col = np.concatenate([np.full(len(t[1]), t[0], dtype=np.uint64) for t in per_target])
    start_col = np.concatenate([t[1] for t in per_target])
    end_col = np.concatenate([t[2] for t in per_target])
    line_lists = [lines for t in per_target for lines in t[3]]
    target_rank = np.concatenate([np.full(len(t[1]), k) for k, t in enumerate(per_target)])
    order = np.lexsort((target_rank, end_col)) if len(per_target) > 1 else np.arange(len(end_col))
    counts = np.array([len(line_lists[i]) for i in order], dtype=np.int64)
    offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    region_lines = (np.concatenate([line_lists[i] for i in order]) if len(order)
                    else np.zeros(0, dtype=np.int64))
    return Record(RecordMeta(), tid_col[order], start_col[order], end_col[order], offsets,
                  starts[region_lines], ends[region_lines], nrs[region_lines], ages[region_lines])


# --- writing ----------------------------------------------------------------------------------------

class Writer(WriterBase):
    """Writes damo-style perf script lines (``kdamond.x xxxx xxxx <sec>: damon:damon_aggregated: ...``).

    Only end times survive (start times come back as damo derives them), regions with an
    unknown age get the 9-field form, empty snapshots cannot be written, and a target with a
    single snapshot gets damo's marker snapshot after it so the duration is kept.
    """

    def __init__(self, path, meta: RecordMeta, fmt: str = "perf_script", meta_reserve: int = 0):
        self.path = path      # (meta_reserve: each update is a line of its own, no room needed)
        self._file = create_private(path, binary=True)
        if meta.labels:
            self._file.write(LABELS_PREFIX + json.dumps(meta.labels, sort_keys=True).encode() + b"\n")
        self.update_meta(meta)
        self._counts: dict[int, int] = {}
        self._last: dict[int, tuple[int, int]] = {}
        self.nr_snapshots = 0          # what the file holds, for the closing message
        self.nr_regions = 0

    def append(self, target_id, start_ns, end_ns, start, end, nr_accesses, age=None) -> None:
        start = np.asarray(start, dtype=ADDR_DTYPE)
        n = len(start)
        if n == 0:
            return
        if end_ns < 0:
            raise DamoError(f"{self.path}: perf_script cannot hold negative timestamps")
        end = np.asarray(end, dtype=ADDR_DTYPE)
        nr_accesses = np.asarray(nr_accesses, dtype=NR_ACCESSES_DTYPE)
        age = np.full(n, AGE_UNKNOWN, dtype=AGE_DTYPE) if age is None else np.asarray(age, dtype=AGE_DTYPE)
        tid = int(target_id)
        prefix = "kdamond.x xxxx xxxx %f: damon:damon_aggregated: target_id=%d nr_regions=%d " % (
            end_ns / 1000000000.0, tid, n)
        with_age = prefix.replace("%", "%%") + "%d-%d: %d %d\n"
        without_age = prefix.replace("%", "%%") + "%d-%d: %d\n"
        known = age != AGE_UNKNOWN
        if known.all():
            text = (with_age * n) % tuple(np.column_stack(
                [start.astype(object), end.astype(object), nr_accesses.astype(object), age.astype(object)]).ravel())
        elif not known.any():
            text = (without_age * n) % tuple(np.column_stack(
                [start.astype(object), end.astype(object), nr_accesses.astype(object)]).ravel())
        else:
            text = "".join(with_age % (s, e, r, a) if a != AGE_UNKNOWN else without_age % (s, e, r)
                           for s, e, r, a in zip(start.tolist(), end.tolist(), nr_accesses.tolist(), age.tolist()))
        data = text.encode()
        # The text and the counts change together: a Ctrl-C or SIGTERM between the two would make
        # the closing message (and the single-snapshot marker) miss a snapshot the file holds.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))
        try:
            self._file.write(data)
            self._counts[tid] = self._counts.get(tid, 0) + 1
            self._last[tid] = (int(start_ns), int(end_ns))
            self.nr_snapshots += 1
            self.nr_regions += n
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def flush(self) -> None:
        self._file.flush()

    def update_meta(self, meta: RecordMeta) -> bool:
        """A ``# damo targets:`` line with the target table, between the snapshots (the last one counts)."""
        targets = meta.extra.get(TARGETS_KEY)
        if not targets or self._file.closed:
            return False
        self._file.write(TARGETS_PREFIX + json.dumps(targets, sort_keys=True).encode() + b"\n")
        return True

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            for tid, count in self._counts.items():
                if count == 1:
                    start_ns, end_ns = self._last[tid]
                    fake_end = end_ns + (end_ns - start_ns)
                    self._file.write(("kdamond.x xxxx xxxx %f: damon:damon_aggregated: target_id=%d nr_regions=1 "
                                      "0-0: -1 -1\n" % (fake_end / 1000000000.0, tid)).encode())
        finally:
            self._file.close()
