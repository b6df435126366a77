"""Print the record's snapshots region by region, as damo 2.x's ``report raw`` does."""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import BinaryIO, Callable, Iterator

import numpy as np

from damo import fmt
from damo.errors import DamoError
from damo.formats.perf_script import FIRST_START_KEY
from damo.model import Record
from damo.report import add_input_argument, load_record
from damo.selection import add_duration_option, duration_window, target_mask

REGION_HEADER = "# %10s %12s  %12s  %11s %5s" % ("start_addr", "end_addr", "length", "nr_accesses", "age")
# a region line when every field fits its printf width: the fields' places and the text between
LINE_TEMPLATE = b"%12s-%12s (%12s) %11s %5s\n" % ((b"",) * 5)
LINE_WIDTH = len(LINE_TEMPLATE)
BLOCK_BYTES = 1 << 20
PAGER_LINES = 50                # damo prints one more newline when its text fits this many lines


DESCRIPTION = """\
Print the record's snapshots region by region, as the upstream damo 2.x's `report raw` does:
per snapshot its start, end and duration, its target, and one line per region (start-end
address, size, nr_accesses, age)."""

EXAMPLES = """\
examples:
  damo report raw -i stairs.data | head -20
  damo report raw --duration 1 2           # the snapshots of the second second
  damo report raw --json > stairs.json     # damo's JSON form of the record"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_argument(parser)
    add_duration_option(parser)
    parser.add_argument("--raw_number", action="store_true", help="print plain numbers instead of units")
    parser.add_argument("--json", action="store_true", help="print damo's JSON form of the record")


# --- selection --------------------------------------------------------------------------------

def exact_start(record: Record, i: int) -> int | float:
    """Snapshot ``i``'s start; for a target's first snapshot from a perf_script trace, damo's
    fractional value (its end minus the mean duration), so times print exactly as damo's do."""
    start = int(record.start_ns[i])
    firsts = record.meta.extra.get(FIRST_START_KEY)
    if firsts:
        tid = int(record.target_id[i])
        value = firsts.get(str(tid))
        if (value is not None and math.floor(value) == start
                and i == int(np.argmax(record.target_id == np.uint64(tid)))):
            return value
    return start


def target_snapshots(record: Record, duration: tuple[float, float] | None = None) -> list[tuple[int, np.ndarray]]:
    """Per target (in order of first appearance), the indices of its snapshots to print.

    ``duration`` keeps snapshots whose start lies FROM..TO seconds after the target's first
    snapshot, stopping at the first one past TO, as damo does.
    """
    selected = []
    for tid in record.target_ids():
        idx = np.flatnonzero(target_mask(record, tid))
        if duration is not None and len(idx):
            base = exact_start(record, int(idx[0]))
            starts = record.start_ns[idx].astype(np.float64)
            starts[0] = base
            offsets = (starts - base) / 1e9 if isinstance(base, float) else (record.start_ns[idx] - base) / 1e9
            idx = idx[duration_window(np.asarray(offsets, dtype=np.float64), duration)]
        selected.append((tid, idx))
    return selected


def select(record: Record, duration: tuple[float, float] | None) -> Record:
    """The record with only the snapshots ``target_snapshots`` keeps."""
    mask = np.zeros(record.nr_snapshots, dtype=bool)
    for _, idx in target_snapshots(record, duration):
        mask[idx] = True
    return record.select(mask)


# --- region lines, vectorised ---------------------------------------------------------------------

CHUNK_REGIONS = 1 << 17         # regions formatted at once: big enough to amortise numpy's calls


def _fits_fixed_width(start, end, nr, age, raw_number: bool) -> bool:
    """Whether every field fits its printf width with non-negative numbers (the fast path)."""
    if not len(start):
        return True
    limit = np.uint64(1 << 48)
    if start.max() >= limit or end.max() >= limit or np.any(end < start):
        return False
    if raw_number and (end - start).max() >= np.uint64(10**12):
        return False
    return bool(nr.max() < 10**11 and nr.min() >= 0 and age.max() < 10**5 and age.min() >= 0)


def region_matrix(start: np.ndarray, end: np.ndarray, nr: np.ndarray, age: np.ndarray,
                  raw_number: bool = False) -> np.ndarray | None:
    """``%012x-%012x (%12s) %11d %5d\\n`` lines as an (n, LINE_WIDTH) byte matrix, or None when
    some value does not fit its field (see _fits_fixed_width)."""
    if not _fits_fixed_width(start, end, nr, age, raw_number):
        return None
    sizes = (end - start).astype(np.int64)
    return fmt.assemble_lines(LINE_TEMPLATE, [
        (0, fmt.hex_column(start)), (13, fmt.hex_column(end)),
        (27, fmt.decimal_column(sizes, 12) if raw_number else fmt.size_column(sizes)),
        (41, fmt.decimal_column(nr, 11)), (53, fmt.decimal_column(age, 5))])


def region_lines(start: np.ndarray, end: np.ndarray, nr: np.ndarray, age: np.ndarray,
                 raw_number: bool = False) -> bytes:
    """``%012x-%012x (%12s) %11d %5d`` lines for a snapshot's regions."""
    if len(start) == 0:
        return b""
    matrix = region_matrix(start, end, nr, age, raw_number)
    if matrix is None:
        return _region_lines_printf(start, end, nr, age, raw_number)
    return matrix.tobytes()


def region_line_blocks(record: Record, idx: np.ndarray, raw_number: bool = False) -> Iterator[list]:
    """For the snapshots ``idx`` (ascending), their region lines: one list per snapshot holding a
    bytes-like block, formatted a chunk of about CHUNK_REGIONS regions at a time."""
    offsets = record.offsets
    counts = offsets[idx + 1] - offsets[idx]
    bounds = np.searchsorted(np.cumsum(counts), np.arange(CHUNK_REGIONS, int(counts.sum()), CHUNK_REGIONS))
    for chunk in np.split(idx, np.unique(bounds)):
        if not len(chunk):
            continue
        lo, hi = int(offsets[chunk[0]]), int(offsets[chunk[-1] + 1])
        contiguous = hi - lo == int(counts_of(offsets, chunk).sum())
        cols = [record.start, record.end, record.nr_accesses, record.age]
        if contiguous:
            cols = [c[lo:hi] for c in cols]
        else:
            picked = region_indices(offsets, chunk)
            cols = [c[picked] for c in cols]
        matrix = region_matrix(*cols, raw_number)
        if matrix is None:
            for i in chunk.tolist():
                sl = slice(int(offsets[i]), int(offsets[i + 1]))
                yield [region_lines(record.start[sl], record.end[sl], record.nr_accesses[sl], record.age[sl],
                                    raw_number)]
            continue
        body = memoryview(matrix.reshape(-1))
        ends = np.cumsum(counts_of(offsets, chunk)) * LINE_WIDTH
        begin = 0
        for stop in ends.tolist():
            yield [body[begin:stop]]
            begin = stop


def counts_of(offsets: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return offsets[idx + 1] - offsets[idx]


def region_indices(offsets: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The region indices of snapshots ``idx``, in order."""
    counts = counts_of(offsets, idx)
    starts = np.repeat(offsets[idx] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return starts + np.arange(int(counts.sum()))


def _region_lines_printf(start, end, nr, age, raw_number: bool) -> bytes:
    """The general (slower) path for values wider than the printf fields."""
    sizes = [fmt.format_sz(e - s, raw_number) for s, e in zip(start.tolist(), end.tolist())]
    line = "%012x-%012x (%12s) %11d %5d\n"
    return "".join(line % row for row in zip(start.tolist(), end.tolist(), sizes, nr.tolist(),
                                             age.tolist())).encode()


# --- the report -------------------------------------------------------------------------------------

def snapshot_head(record: Record, i: int, start, base, tid: int, raw_number: bool,
                  format_time: Callable = fmt.format_time_ns) -> bytes:
    """The lines before snapshot ``i``'s regions (``start``: its start time as printed)."""
    end = int(record.end_ns[i])
    return "\n".join([
        "monitoring_start:    %16s" % format_time(start - base, raw_number),
        "monitoring_end:      %16s" % format_time(end - base, raw_number),
        "monitoring_duration: %16s" % format_time(end - start, raw_number),
        "target_id: %s" % tid,
        "nr_regions: %s" % int(record.offsets[i + 1] - record.offsets[i]),
        REGION_HEADER, ""]).encode()


def render(record: Record, raw_number: bool = False,
           duration: tuple[float, float] | None = None) -> Iterator[bytes]:
    """damo's raw report text, in blocks (without the trailing newline damo's print may add)."""
    for tid, idx in target_snapshots(record, duration):
        if not len(idx):
            continue
        base = exact_start(record, int(idx[0]))
        yield ("base_time_absolute: %s\n\n" % fmt.format_time_ns(base, raw_number)).encode()
        for i, block in zip(idx.tolist(), region_line_blocks(record, idx, raw_number)):
            yield snapshot_head(record, i, exact_start(record, i), base, tid, raw_number)
            yield block[0]
            yield b"\n"


def render_json(record: Record, raw_number: bool = False,
                duration: tuple[float, float] | None = None) -> Iterator[bytes]:
    from damo.formats.damo_json import iter_text

    for piece in iter_text(select(record, duration), raw=raw_number):
        yield piece.encode()


def _pager_lines(out: BinaryIO) -> int:
    try:
        if os.isatty(out.fileno()):
            return os.get_terminal_size(out.fileno()).lines
    except (OSError, ValueError, AttributeError):
        pass
    return PAGER_LINES


def write_report(blocks: Iterator[bytes], out: BinaryIO, pager_lines: int | None = None,
                 end_on_terminal: bool = False) -> None:
    """Write blocks in large writes; end like damo's print: one more newline for text of up to
    ``pager_lines`` lines (default: the terminal's height), and with ``end_on_terminal`` always
    on a terminal (damo 3.x pages long text through ``less``)."""
    pending, size, newlines = [], 0, 0
    if pager_lines is None:
        pager_lines = _pager_lines(out)
    for block in blocks:
        pending.append(block)
        size += len(block)
        if newlines <= pager_lines:         # only whether the text is short matters
            newlines += bytes(block).count(b"\n")
        if size >= BLOCK_BYTES:
            out.write(b"".join(pending))
            pending, size = [], 0
    if newlines <= pager_lines or (end_on_terminal and out.isatty()):
        pending.append(b"\n")
    out.write(b"".join(pending))
    out.flush()


def run(args: argparse.Namespace) -> int:
    record = load_record(args.input)
    if record.nr_snapshots == 0:
        raise DamoError(f"{args.input}: no monitoring result in the file")
    duration = tuple(args.duration) if args.duration else None
    blocks = (render_json if args.json else render)(record, args.raw_number, duration)
    write_report(blocks, sys.stdout.buffer)
    return 0
