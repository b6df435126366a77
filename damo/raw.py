"""Print the record's snapshots region by region, as damo 2.x's ``report raw`` does."""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import BinaryIO, Iterator

import numpy as np

from damo import fmt
from damo.errors import DamoError
from damo.formats import read_record
from damo.formats.perf_script import FIRST_START_KEY
from damo.model import Record
from damo.report import add_input_argument
from damo.selection import add_duration_option, duration_window, target_mask

REGION_HEADER = "# %10s %12s  %12s  %11s %5s" % ("start_addr", "end_addr", "length", "nr_accesses", "age")
LINE_WIDTH = 59                 # a region line when every field fits its printf width
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

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _decimal(values: np.ndarray, width: int) -> np.ndarray:
    """Right-aligned decimal digits of values that fit ``width`` (a '-' before negatives)."""
    values = values.astype(np.int64)
    magnitude = np.abs(values)
    chars = np.full((len(values), width), 32, dtype=np.uint8)
    if not len(values):
        return chars
    # Only as many digit columns as the largest value needs; the rest stay blank.
    nr_columns = len(str(int(magnitude.max())))
    pows = 10 ** np.arange(nr_columns - 1, -1, -1, dtype=np.int64)
    digits = ((magnitude[:, None] // pows) % 10 + 48).astype(np.uint8)
    leading = pows[None, :] > magnitude[:, None]
    leading[:, -1] = False
    digits[leading] = 32
    chars[:, width - nr_columns:] = digits
    negative = np.flatnonzero(values < 0)
    if len(negative):
        nr_digits = np.maximum((pows[None, :] <= magnitude[negative, None]).sum(axis=1), 1)
        chars[negative, width - nr_digits - 1] = 45
    return chars


def _hex12(values: np.ndarray) -> np.ndarray:
    shifts = np.arange(44, -1, -4, dtype=np.uint64)
    return _HEX[((values[:, None] >> shifts) & np.uint64(0xF)).astype(np.intp)]


def _size12(sizes: np.ndarray) -> np.ndarray:
    """fmt.format_sz right-aligned in 12 characters, for sizes below 2**50 (exact in float)."""
    sizes = sizes.astype(np.int64)
    out = np.full((len(sizes), 12), 32, dtype=np.uint8)
    shift = np.zeros(len(sizes), dtype=np.int64)
    for k in (40, 30, 20, 10):                       # strictly larger than the unit
        shift[(shift == 0) & (sizes > (1 << k))] = k
    plain = shift == 0
    if plain.any():
        out[plain, :10] = _decimal(sizes[plain], 10)
        out[plain, 10:] = np.frombuffer(b" B", dtype=np.uint8)
    scaled = np.flatnonzero(~plain)
    if len(scaled):
        # '%.3f' of the exact value size / 2**k, rounded half to even, in thousandths.
        k = shift[scaled]
        num = sizes[scaled] * 1000
        q = num >> k
        r = num - (q << k)
        half = np.int64(1) << (k - 1)
        q += (r > half) | ((r == half) & (q % 2 == 1))
        out[scaled, :4] = _decimal(q // 1000, 4)
        out[scaled, 4] = ord(".")
        out[scaled, 5:8] = _decimal(q % 1000 + 1000, 4)[:, 1:]
        for shift_bits, unit in ((10, b" KiB"), (20, b" MiB"), (30, b" GiB"), (40, b" TiB")):
            rows = scaled[k == shift_bits]
            out[rows, 8:] = np.frombuffer(unit, dtype=np.uint8)
    return out


def _fits_fixed_width(start, end, nr, age, raw_number: bool) -> bool:
    if not len(start):
        return True
    limit = np.uint64(1 << 48)
    if start.max() >= limit or end.max() >= limit or np.any(end < start):
        return False
    if raw_number and (end - start).max() >= np.uint64(10**12):
        return False
    return bool(nr.max() < 10**11 and nr.min() > -10**10 and age.max() < 10**5 and age.min() > -10**4)


def region_lines(start: np.ndarray, end: np.ndarray, nr: np.ndarray, age: np.ndarray,
                 raw_number: bool = False) -> bytes:
    """``%012x-%012x (%12s) %11d %5d`` lines for a snapshot's regions."""
    n = len(start)
    if n == 0:
        return b""
    if not _fits_fixed_width(start, end, nr, age, raw_number):
        return _region_lines_printf(start, end, nr, age, raw_number)
    sizes = (end - start).astype(np.int64)
    out = np.empty((n, LINE_WIDTH), dtype=np.uint8)
    out[:, 0:12] = _hex12(start)
    out[:, 12] = ord("-")
    out[:, 13:25] = _hex12(end)
    out[:, 25:27] = np.frombuffer(b" (", dtype=np.uint8)
    out[:, 27:39] = _decimal(sizes, 12) if raw_number else _size12(sizes)
    out[:, 39:41] = np.frombuffer(b") ", dtype=np.uint8)
    out[:, 41:52] = _decimal(nr, 11)
    out[:, 52] = ord(" ")
    out[:, 53:58] = _decimal(age, 5)
    out[:, 58] = ord("\n")
    return out.tobytes()


def _region_lines_printf(start, end, nr, age, raw_number: bool) -> bytes:
    """The general (slower) path for values wider than the printf fields."""
    sizes = [fmt.format_sz(e - s, raw_number) for s, e in zip(start.tolist(), end.tolist())]
    line = "%012x-%012x (%12s) %11d %5d\n"
    return "".join(line % row for row in zip(start.tolist(), end.tolist(), sizes, nr.tolist(),
                                             age.tolist())).encode()


# --- the report -------------------------------------------------------------------------------------

def render(record: Record, raw_number: bool = False,
           duration: tuple[float, float] | None = None) -> Iterator[bytes]:
    """damo's raw report text, in blocks (without the trailing newline damo's print may add)."""
    for tid, idx in target_snapshots(record, duration):
        if not len(idx):
            continue
        base = exact_start(record, int(idx[0]))
        yield ("base_time_absolute: %s\n\n" % fmt.format_time_ns(base, raw_number)).encode()
        for i in idx.tolist():
            snap = record.snapshot(i)
            start = exact_start(record, i)
            head = "\n".join([
                "monitoring_start:    %16s" % fmt.format_time_ns(start - base, raw_number),
                "monitoring_end:      %16s" % fmt.format_time_ns(snap.end_ns - base, raw_number),
                "monitoring_duration: %16s" % fmt.format_time_ns(snap.end_ns - start, raw_number),
                "target_id: %s" % tid,
                "nr_regions: %s" % snap.nr_regions,
                REGION_HEADER, ""])
            yield head.encode() + region_lines(snap.start, snap.end, snap.nr_accesses, snap.age,
                                               raw_number) + b"\n"


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


def write_report(blocks: Iterator[bytes], out: BinaryIO) -> None:
    """Write blocks in large writes; end like damo's print (one more newline for short text)."""
    pending, size, newlines = [], 0, 0
    for block in blocks:
        pending.append(block)
        size += len(block)
        newlines += block.count(b"\n")
        if size >= BLOCK_BYTES:
            out.write(b"".join(pending))
            pending, size = [], 0
    if newlines <= _pager_lines(out):
        pending.append(b"\n")
    out.write(b"".join(pending))
    out.flush()


def run(args: argparse.Namespace) -> int:
    record = read_record(args.input)
    if record.nr_snapshots == 0:
        raise DamoError(f"{args.input}: no monitoring result in the file")
    duration = tuple(args.duration) if args.duration else None
    blocks = (render_json if args.json else render)(record, args.raw_number, duration)
    write_report(blocks, sys.stdout.buffer)
    return 0
