"""The native record format: a versioned header, then self-contained compressed chunks.

Layout and encoding are documented in docs/native-format.md. In short: snapshots are
buffered and written as chunks that are compressed on their own and carry a CRC, so a
file cut anywhere (a recorder killed by SIGKILL) reads back up to its last complete chunk.
Inside a chunk, each snapshot's region boundaries are coded against the previous snapshot
of the same target; DAMON keeps most boundaries from one aggregation to the next, so
the columns become long runs of "unchanged" that compress to almost nothing.

Reading decodes a whole chunk at once: the only per-snapshot Python steps are the boundary
sets and the access-count/age predictions, each a handful of numpy calls; everything else is
one vectorised pass per chunk, written straight into the record's final columns. A report
that needs fewer columns asks for them (``read(path, columns=...)``) and skips the rest.

Decoding stays in one process (a forked helper was measured: same wall time, more CPU; see
docs/native-format.md); only inflating the next chunks overlaps it, on a helper thread.
"""
from __future__ import annotations

import json
import lzma
import os
import struct
import threading
import time
import zlib
from typing import NamedTuple

import numpy as np

from damo.errors import RecordFileError
from damo.formats import WriterBase, create_private
from damo.model import ADDR_DTYPE, AGE_DTYPE, AGE_UNKNOWN, NR_ACCESSES_DTYPE, TIME_DTYPE, Record, RecordMeta

MAGIC = b"\x89DAMOREC"
# Version 1 compressed chunks with xz; version 2 (written since) uses zlib's deflate, which
# inflates the same payload five times faster for about 6 % more bytes. Both are read.
VERSION = 3                 # 3: side chunks follow; a file without any is written as version 2
VERSION_NO_SIDE = 2
XZ_VERSION = 1
ZLIB_LEVEL = 6
HEADER = struct.Struct("<8sHHI")           # magic, version, flags, meta length
CHUNK = struct.Struct("<4sIIIII")          # tag, nr snapshots, nr regions, raw len, packed len, crc32
CHUNK_TAG = b"CHNK"
# A side chunk: what is recorded beside the accesses (footprints, VMAs, process stats, tuned
# sampling intervals) as one zlib-compressed JSON object {kind: [entries]}. Same header as CHNK,
# the snapshot count holding the number of entries and the region count 0.
SIDE_TAG = b"SIDE"
CHUNK_TAGS = (CHUNK_TAG, SIDE_TAG)
MAX_SIDE_RAW = 64 << 20
FLUSH_SIDE_ENTRIES = 64
# Side chunks are compressed at zlib level 1: the sampler's JSON of a 100-process tree costs a
# fraction of a millisecond a second that way.
SIDE_ZLIB_LEVEL = 1
# Side kind of the tuned sampling intervals: {"snapshot": index in the file, "sample_us": us},
# one where a snapshot's interval differs from the one before it.
SAMPLE_INTERVALS = "sample_intervals"
CODING_PLAIN, CODING_DELTA = 0, 1
FLUSH_SECONDS = 2.0
FLUSH_REGIONS = 1 << 18
# The most a chunk may hold. The writer never exceeds them and the reader refuses chunk
# headers that claim more, which bounds what one chunk can inflate to (see _max_raw_len).
MAX_CHUNK_REGIONS = 1 << 20
MAX_CHUNK_SNAPSHOTS = 1 << 18
XZ_MEMLIMIT = 64 << 20


def sniff(head: bytes, fmt: str) -> bool:
    return head.startswith(MAGIC)


# --- column packing -----------------------------------------------------------------------

def _pack_ints(values: np.ndarray) -> bytes:
    """Zigzag-free signed packing: smallest width that holds the column, then byte planes.

    Byte planes (all first bytes, then all second bytes, ...) put the mostly-zero high
    bytes together, which is what the compressor needs.
    """
    values = np.asarray(values, dtype=np.int64)
    if len(values) == 0:
        return b"\x00"
    lo, hi = int(values.min()), int(values.max())
    for width, dtype in ((1, np.int8), (2, np.int16), (4, np.int32), (8, np.int64)):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            break
    planes = values.astype(f"<i{width}").view(np.uint8).reshape(-1, width).T
    return bytes([width]) + planes.tobytes()


def _unpack_ints(buf: memoryview, pos: int, count: int) -> tuple[np.ndarray, int]:
    """A column packed by _pack_ints, as int64."""
    values, pos = _unpack_stored(buf, pos, count)
    return values.astype(np.int64), pos


def _unpack_stored(buf: memoryview, pos: int, count: int) -> tuple[np.ndarray, int]:
    """A column packed by _pack_ints in its stored width (int8 .. int64): no widening copy."""
    width = buf[pos]
    pos += 1
    if count == 0:
        return np.zeros(0, dtype=np.int8), pos
    if width not in (1, 2, 4, 8):
        raise ValueError(f"bad column width {width}")
    nbytes = width * count
    if pos + nbytes > len(buf):
        raise ValueError("column runs past the chunk")
    planes = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=pos)
    if width == 1:
        return planes.view(np.int8), pos + nbytes
    values = np.ascontiguousarray(planes.reshape(width, count).T).view(f"<i{width}").reshape(count)
    return values, pos + nbytes


def _pack_u64(values: np.ndarray) -> bytes:
    """Unsigned 64-bit values (addresses, target ids) as raw byte planes."""
    planes = np.asarray(values, dtype="<u8").view(np.uint8).reshape(-1, 8).T
    return planes.tobytes()


def _unpack_u64(buf: memoryview, pos: int, count: int) -> tuple[np.ndarray, int]:
    nbytes = 8 * count
    if pos + nbytes > len(buf):
        raise ValueError("column runs past the chunk")
    planes = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=pos).reshape(8, count)
    return np.ascontiguousarray(planes.T).view("<u8").reshape(count).copy(), pos + nbytes


# --- snapshot coding ---------------------------------------------------------------------
# A well-formed snapshot (sorted, non-empty, non-overlapping regions) is its sorted boundary
# set B plus a flag per interval of B saying whether it is a region or a gap. B is coded
# against the previous snapshot's boundaries P: each element of P is kept or dropped, and new
# boundaries are given as an offset from the nearest kept-or-dropped element of P before them.

def _well_formed(start: np.ndarray, end: np.ndarray) -> bool:
    return bool(len(start) > 0 and np.all(end > start) and np.all(start[1:] >= end[:-1]))


def _boundaries(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted boundaries and, per interval between them, whether it is a region (1) or a gap (0)."""
    bounds = np.unique(np.concatenate([start, end]))
    is_region = np.zeros(len(bounds) - 1, dtype=np.int64)
    is_region[np.searchsorted(bounds, start)] = 1
    return bounds, is_region


class _SnapshotCoder:
    """Turns the region columns of a run of snapshots into integer streams (and back)."""

    STREAMS = ("keep", "new_pos", "new_off", "is_region", "nr_delta", "age_delta", "n_new")

    def __init__(self):
        self.prev: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    @staticmethod
    def _predict(prev, start):
        """nr_accesses and age predicted from the previous snapshot's region holding ``start``."""
        if prev is None:
            return np.zeros(len(start), dtype=np.int64), np.zeros(len(start), dtype=np.int64)
        _, p_start, p_end, p_nr, p_age = prev
        idx = np.searchsorted(p_start, start, side="right") - 1
        inside = idx >= 0
        inside[inside] = start[inside] < p_end[idx[inside]]
        idx = np.where(inside, idx, 0)
        nr_pred = np.where(inside, p_nr[idx], 0)
        age_pred = np.where(inside, p_age[idx] + 1, 0)
        return nr_pred, age_pred

    def encode(self, target_id, start, end, nr, age, out: dict[str, list]) -> None:
        prev = self.prev.get(target_id)
        prev_bounds = prev[0] if prev is not None else np.zeros(0, dtype=np.uint64)
        bounds, is_region = _boundaries(start, end)
        keep = np.isin(prev_bounds, bounds, assume_unique=True)
        new = bounds[~np.isin(bounds, prev_bounds, assume_unique=True)]
        # Position of each new boundary among P, and its offset from the element before it.
        pos = np.searchsorted(prev_bounds, new)
        base = np.where(pos > 0, prev_bounds[np.maximum(pos - 1, 0)], 0) if len(prev_bounds) else np.zeros_like(new)
        # new >= base, so the unsigned difference is exact; stored as int64 bits (an offset of
        # 2^63 or more reads back negative and decoding adds it back with the same wrap-around).
        offsets = (new - base.astype(np.uint64)).view(np.int64) if len(new) else np.zeros(0, dtype=np.int64)
        nr_pred, age_pred = self._predict(prev, start)
        out["keep"].append(keep.astype(np.int64))
        out["n_new"].append(np.array([len(new)], dtype=np.int64))
        out["new_pos"].append(np.diff(pos, prepend=0).astype(np.int64))
        out["new_off"].append(offsets)
        out["is_region"].append(is_region)
        out["nr_delta"].append(nr - nr_pred)
        out["age_delta"].append(age - age_pred)
        self.prev[target_id] = (bounds, start, end, nr, age)


def _encode_chunk(snaps, cols) -> bytes:
    """Serialise buffered snapshots to the raw (uncompressed) chunk payload."""
    target_ids = np.array([s[0] for s in snaps], dtype=np.uint64)
    starts_ns = np.array([s[1] for s in snaps], dtype=np.int64)
    ends_ns = np.array([s[2] for s in snaps], dtype=np.int64)
    counts = np.array([len(c[0]) for c in cols], dtype=np.int64)
    delta = all(_well_formed(c[0], c[1]) for c in cols)
    parts = [bytes([CODING_DELTA if delta else CODING_PLAIN]), _pack_u64(target_ids),
             _pack_ints(np.diff(starts_ns, prepend=0)), _pack_ints(ends_ns - starts_ns), _pack_ints(counts)]
    if delta:
        coder = _SnapshotCoder()
        streams: dict[str, list] = {name: [] for name in _SnapshotCoder.STREAMS}
        for (tid, _, _), (start, end, nr, age) in zip(snaps, cols):
            coder.encode(int(tid), start, end, nr, age, streams)
        for name in _SnapshotCoder.STREAMS:
            column = np.concatenate(streams[name]) if streams[name] else np.zeros(0, dtype=np.int64)
            parts.append(struct.pack("<Q", len(column)))
            parts.append(_pack_ints(column))
    else:
        start = np.concatenate([c[0] for c in cols]) if cols else np.zeros(0, dtype=np.uint64)
        end = np.concatenate([c[1] for c in cols]) if cols else np.zeros(0, dtype=np.uint64)
        parts += [_pack_u64(start), _pack_u64(end),
                  _pack_ints(np.concatenate([c[2] for c in cols]) if cols else np.zeros(0)),
                  _pack_ints(np.concatenate([c[3] for c in cols]) if cols else np.zeros(0))]
    return b"".join(parts)


def _decode_header(buf: memoryview, nr_snaps: int, nr_regions: int):
    """The coding byte, the per-snapshot columns and the offset of the region columns."""
    coding = buf[0]
    target_ids, pos = _unpack_u64(buf, 1, nr_snaps)
    start_gaps, pos = _unpack_ints(buf, pos, nr_snaps)
    durations, pos = _unpack_ints(buf, pos, nr_snaps)
    counts, pos = _unpack_ints(buf, pos, nr_snaps)
    if np.any(counts < 0) or counts.sum() != nr_regions:
        raise ValueError("region counts do not add up")
    starts_ns = np.cumsum(start_gaps)
    return coding, target_ids, starts_ns, starts_ns + durations, counts, pos


def _delta_streams(buf: memoryview, pos: int) -> dict[str, np.ndarray]:
    streams = {}
    for name in _SnapshotCoder.STREAMS:
        if pos + 8 > len(buf):
            raise ValueError("chunk ends early")
        (length,) = struct.unpack_from("<Q", buf, pos)
        if length > 4 * len(buf) + 16:
            raise ValueError("implausible stream length")
        streams[name], pos = _unpack_stored(buf, pos + 8, length)
    return streams


def _stream(streams: dict[str, np.ndarray], name: str, count: int) -> np.ndarray:
    """The first ``count`` values of a stream, which must hold that many."""
    if count > len(streams[name]):
        raise ValueError(f"stream {name} too short")
    return streams[name][:count]


def _flags(values: np.ndarray) -> np.ndarray:
    """0/1 stream values as booleans (any non-zero value is true), without a copy when possible."""
    if values.dtype == np.int8 and not np.any(values.view(np.uint8) > 1):
        return values.view(bool)
    return values != 0


def _decode_boundaries(streams, target_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Every snapshot's boundary set, each led by a 0 (see below), concatenated; and the offsets.

    The only per-snapshot loop of the reader: a snapshot's boundaries are its previous
    snapshot's kept ones plus its new ones. With a 0 in front of the previous set, the element
    before insertion position p (0 before the first) is simply ``ext[p]``.
    """
    nr_snaps = len(target_ids)
    n_new = _stream(streams, "n_new", nr_snaps).astype(np.int64)
    if len(n_new) and n_new.min() < 0:
        raise ValueError("negative boundary count")
    new_first = np.zeros(nr_snaps + 1, dtype=np.int64)
    np.cumsum(n_new, out=new_first[1:])
    total_new = int(new_first[-1])
    positions = np.cumsum(_stream(streams, "new_pos", total_new), dtype=np.int64)
    if total_new:       # per-snapshot running sums: subtract the sum before each snapshot's first
        before = np.concatenate(([0], positions))[new_first[:-1]]
        positions -= np.repeat(before, n_new)
        if positions.min() < 0:
            raise ValueError("boundary position out of range")
    offsets = _stream(streams, "new_off", total_new).astype(np.int64).view(np.uint64)
    keep = _flags(streams["keep"])
    lead = np.zeros(1, dtype=np.uint64)
    prev: dict[int, np.ndarray] = {}
    sets = []
    used = 0
    first = new_first.tolist()
    for i, tid in enumerate(target_ids):
        ext = prev.get(tid, lead)
        nb = len(ext) - 1
        kept = ext[1:][keep[used:used + nb]]       # a short keep stream is an IndexError
        used += nb
        lo, hi = first[i], first[i + 1]
        new = ext[positions[lo:hi]] + offsets[lo:hi]     # a position past the end: IndexError
        ext = np.concatenate((lead, kept, new))
        ext[1:].sort(kind="stable")         # two sorted runs: one merge, 4x faster than quicksort
        prev[tid] = ext
        sets.append(ext)
    sizes = np.fromiter(map(len, sets), dtype=np.int64, count=nr_snaps)
    ext_offsets = np.zeros(nr_snaps + 1, dtype=np.int64)
    np.cumsum(sizes, out=ext_offsets[1:])
    return (np.concatenate(sets) if sets else np.zeros(0, dtype=np.uint64)), ext_offsets


def _previous_same_target(target_ids: list[int]) -> list[int]:
    """For every snapshot, the index of the previous one of its target (-1 for none)."""
    last: dict[int, int] = {}
    out = []
    for i, tid in enumerate(target_ids):
        out.append(last.get(tid, -1))
        last[tid] = i
    return out


def _decode_delta(streams, target_ids: np.ndarray, counts: np.ndarray, columns: frozenset, out: dict) -> dict:
    """The region columns of a delta-coded chunk (only those in ``columns``), written into the
    arrays of ``out`` where it has one for the column."""
    tids = target_ids.tolist()
    bounds, ext_offsets = _decode_boundaries(streams, tids)
    # Region flags belong to the intervals between consecutive boundaries of a snapshot: every
    # position of ``bounds`` but a snapshot's leading 0 and its last boundary starts one.
    nr_snaps = len(tids)
    starts_interval = np.ones(len(bounds), dtype=bool)
    starts_interval[ext_offsets[:-1]] = False
    starts_interval[np.maximum(ext_offsets[1:] - 1, ext_offsets[:-1])] = False
    nr_intervals = int(np.count_nonzero(starts_interval))
    is_start = np.zeros(len(bounds), dtype=bool)
    is_start[starts_interval] = _flags(_stream(streams, "is_region", nr_intervals))
    first_bound = np.flatnonzero(is_start)
    per_snapshot = np.diff(np.searchsorted(first_bound, ext_offsets))
    if not np.array_equal(per_snapshot, counts):
        raise ValueError("region count does not match the boundaries")
    # Every index is in range by construction (a region's first boundary is never its
    # snapshot's last), so "clip" clips nothing; it spares take's bounds-checked mode the
    # temporary copy that mode makes of an ``out`` array.
    start = np.take(bounds, first_bound, out=out.get("start"), mode="clip")
    first_bound += 1
    end = np.take(bounds, first_bound, out=out.get("end"), mode="clip")
    out = dict(out, start=start, end=end)
    want_values = [name for name in ("nr_accesses", "age") if name in columns]
    if not want_values:
        return out
    nr_regions = len(start)
    # Prediction: the previous snapshot's region (of the same target) holding this region's
    # start; ``parent`` is its index in the chunk, or nr_regions (a slot holding "nothing").
    region_offsets = np.zeros(nr_snaps + 1, dtype=np.int64)
    np.cumsum(counts, out=region_offsets[1:])
    ro = region_offsets.tolist()
    found = np.zeros(nr_regions, dtype=np.int64)       # 0: no previous region at or before
    parent_base = np.zeros(nr_snaps, dtype=np.int64)
    for i, j in enumerate(_previous_same_target(tids)):
        if j >= 0 and ro[i + 1] > ro[i]:
            found[ro[i]:ro[i + 1]] = np.searchsorted(start[ro[j]:ro[j + 1]], start[ro[i]:ro[i + 1]], side="right")
            parent_base[i] = ro[j] - 1
    parent = found + np.repeat(parent_base, counts)      # -1 (harmless) where found is 0 in the first snapshot
    inside = found > 0
    inside &= start < end[parent]
    orphans = np.flatnonzero(~inside)
    # An orphan (no parent) is its own parent, its value set to "nothing" before the pass: the
    # gather below reads it before the add writes, so no sentinel slot (and no copy) is needed.
    parent[orphans] = orphans
    # nr_accesses is predicted unchanged, age as one more; with no parent, both as 0
    for name, stream, step, no_parent in (("nr_accesses", "nr_delta", 0, 0), ("age", "age_delta", 1, -1)):
        if name not in columns:
            continue
        values = out[name] if name in out else np.empty(nr_regions, dtype=np.int64)
        values[orphans] = no_parent
        delta = _stream(streams, stream, nr_regions).astype(np.int64)
        if step:
            delta += step
        for i in range(nr_snaps):      # a snapshot's parents are in an earlier snapshot
            lo, hi = ro[i], ro[i + 1]
            np.add(delta[lo:hi], values[parent[lo:hi]], out=values[lo:hi])
        out[name] = values
    return out


REGION_COLUMNS = ("start", "end", "nr_accesses", "age")
_COLUMN_DTYPES = {"start": ADDR_DTYPE, "end": ADDR_DTYPE, "nr_accesses": NR_ACCESSES_DTYPE, "age": AGE_DTYPE}


def _decode_regions(buf: memoryview, coding: int, pos: int, target_ids: np.ndarray, counts: np.ndarray,
                    nr_regions: int, columns: frozenset, out: dict | None = None) -> dict:
    """The chunk's region columns named in ``columns``, all snapshots concatenated (into the
    arrays of ``out`` where the coding allows: the caller copies those it gets back instead)."""
    if not columns:
        return {}
    if coding == CODING_PLAIN:
        start, pos = _unpack_u64(buf, pos, nr_regions)
        end, pos = _unpack_u64(buf, pos, nr_regions)
        nr, pos = _unpack_ints(buf, pos, nr_regions)
        age, pos = _unpack_ints(buf, pos, nr_regions)
        return {"start": start, "end": end, "nr_accesses": nr, "age": age}
    if coding != CODING_DELTA:
        raise ValueError(f"unknown chunk coding {coding}")
    return _decode_delta(_delta_streams(buf, pos), target_ids, counts, columns, out or {})


def _decode_chunk(raw: bytes, nr_snaps: int, nr_regions: int):
    """A whole chunk as ``(snaps, counts, [(start, end, nr_accesses, age)])``."""
    buf = memoryview(raw)
    coding, target_ids, starts_ns, ends_ns, counts, pos = _decode_header(buf, nr_snaps, nr_regions)
    cols = _decode_regions(buf, coding, pos, target_ids, counts, nr_regions, frozenset(REGION_COLUMNS))
    snaps = list(zip(target_ids.tolist(), starts_ns.tolist(), ends_ns.tolist()))
    return snaps, counts.tolist(), [tuple(cols[name] for name in REGION_COLUMNS)]


# --- reading and writing -----------------------------------------------------------------

def _read_header(path) -> tuple[RecordMeta, int, int]:
    """The header's metadata, the offset of the first chunk and the format version."""
    with open(path, "rb") as f:
        head = f.read(HEADER.size)
        if len(head) < HEADER.size:
            raise RecordFileError(path, "truncated native header")
        magic, version, _flags, meta_len = HEADER.unpack(head)
        if magic != MAGIC:
            raise RecordFileError(path, "not a native record")
        if version > VERSION:
            raise RecordFileError(path, f"native format version {version} is newer than this damo supports ({VERSION})")
        blob = f.read(meta_len)
        if len(blob) < meta_len:
            raise RecordFileError(path, "truncated native header")
    try:
        fields = json.loads(blob.decode("utf-8"))
        if not isinstance(fields, dict):
            raise ValueError("the metadata is not an object")
        meta = RecordMeta.from_dict(fields)
    except (ValueError, TypeError, AttributeError, RecursionError) as err:
        raise RecordFileError(path, f"corrupt native header ({err})") from None
    return meta, HEADER.size + meta_len, version


def read_meta(path) -> tuple[RecordMeta, int]:
    """The header's metadata and the offset of the first chunk."""
    meta, pos, _ = _read_header(path)
    return meta, pos


def _max_raw_len(nr_snaps: int, nr_regions: int) -> int:
    """The largest payload a chunk of this many snapshots and regions can have.

    Per snapshot: a target id, a start gap, a duration and a count (8 bytes each, plus width
    bytes). Per region, in the larger (delta) coding: at most two boundaries each for keep,
    new_pos, new_off and is_region, one nr_delta and one age_delta, 8 bytes each at most.
    """
    return 64 + 40 * nr_snaps + 8 * (10 * nr_regions + nr_snaps) + 7 * 9


def _valid_chunk_at(data: bytes, pos: int) -> bool:
    if pos + CHUNK.size > len(data):
        return False
    tag, _, _, _, packed_len, crc = CHUNK.unpack_from(data, pos)
    body = data[pos + CHUNK.size: pos + CHUNK.size + packed_len]
    return tag in CHUNK_TAGS and len(body) == packed_len and zlib.crc32(body) == crc


def _later_chunk(data: bytes, pos: int) -> int | None:
    """The offset of a complete, intact chunk (of either kind) after ``pos``, if there is one."""
    found = [f for f in (_later_chunk_of(data, pos, tag) for tag in CHUNK_TAGS) if f is not None]
    return min(found) if found else None


def _later_chunk_of(data: bytes, pos: int, tag: bytes) -> int | None:
    found = data.find(tag, pos + 1)
    while found >= 0:
        if _valid_chunk_at(data, found):
            return found
        found = data.find(tag, found + 1)
    return None


def _decode_side(raw: bytes, nr_entries: int) -> dict[str, list]:
    side = json.loads(raw.decode("utf-8"))
    if not isinstance(side, dict) or not all(isinstance(v, list) for v in side.values()):
        raise ValueError("a side chunk is not an object of lists")
    if sum(len(v) for v in side.values()) != nr_entries:
        raise ValueError("side entries do not add up")
    return side


def _inflate(body: bytes, raw_len: int, version: int = VERSION) -> bytes:
    """Decompress a chunk (xz in version 1, zlib since), never past ``raw_len`` (itself bounded
    by the chunk's counts)."""
    if version == XZ_VERSION:
        decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)
        raw = decompressor.decompress(body, max_length=raw_len + 1)
    else:
        decompressor = zlib.decompressobj()
        raw = decompressor.decompress(body, raw_len + 1)
    if len(raw) != raw_len or not decompressor.eof:
        raise ValueError("chunk length mismatch")
    return raw


def _inflated_ahead(entries: list, version: int, ahead: int = 2):
    """Each entry's decompressed body, in order, decompressed up to ``ahead`` chunks in advance
    on a helper thread: zlib and lzma release the GIL, so a chunk's decompression overlaps the
    decoding of the one before (a second core's worth: 0.06 s of a 6 M-region heatmap's 1 s).

    Yields a callable per entry that returns the body or raises the decompression error, so
    the caller's error handling (``_decoding``) sees it where it would without the thread.
    """
    if len(entries) < 2:
        for entry in entries:
            yield lambda entry=entry: _inflate(entry.body, entry.raw_len, version)
        return
    results: list = [None] * len(entries)
    ready = [threading.Event() for _ in entries]
    room = threading.Semaphore(ahead)
    stop = threading.Event()

    def work() -> None:
        for i, entry in enumerate(entries):
            room.acquire()
            if stop.is_set():
                return
            try:
                results[i] = (True, _inflate(entry.body, entry.raw_len, version))
            except Exception as err:        # handed to the reader, raised there
                results[i] = (False, err)
            ready[i].set()

    def take(i: int):
        ready[i].wait()
        ok, value = results[i]
        results[i] = None
        room.release()
        if not ok:
            raise value
        return value

    worker = threading.Thread(target=work, name="damo-inflate", daemon=True)
    worker.start()
    try:
        for i in range(len(entries)):
            yield lambda i=i: take(i)
    finally:
        stop.set()
        room.release()          # a worker waiting for room sees the stop
        worker.join()


class _ChunkEntry(NamedTuple):
    pos: int
    nr_snaps: int
    nr_regions: int
    raw_len: int
    body: bytes


def _chunk_entries(path, data: bytes, pos: int, side: dict[str, list] | None = None):
    """Every complete snapshot chunk after ``pos``, checked, in order (see iter_chunks for the
    rules); side chunks go into ``side`` (when given), never out."""
    while pos + CHUNK.size <= len(data):
        if not _valid_chunk_at(data, pos):
            later = _later_chunk(data, pos)
            if later is None:
                return     # the last chunk was cut short: keep what came before it
            raise RecordFileError(path, f"corrupt native record (bad chunk at byte {pos}, intact data follows "
                                        f"at byte {later})")
        tag, nr_snaps, nr_regions, raw_len, packed_len, crc = CHUNK.unpack_from(data, pos)
        if tag == SIDE_TAG:
            if side is not None:
                _read_side_chunk(path, data, pos, nr_snaps, raw_len, packed_len, side)
            pos += CHUNK.size + packed_len
            continue
        if nr_regions > MAX_CHUNK_REGIONS or nr_snaps > MAX_CHUNK_SNAPSHOTS:
            raise RecordFileError(path, f"corrupt native record (a chunk at byte {pos} claims {nr_snaps} snapshots "
                                        f"and {nr_regions} regions; at most {MAX_CHUNK_SNAPSHOTS} and "
                                        f"{MAX_CHUNK_REGIONS})")
        if raw_len > _max_raw_len(nr_snaps, nr_regions):
            raise RecordFileError(path, f"corrupt native record (a chunk at byte {pos} claims {raw_len} bytes, "
                                        f"more than {nr_regions} regions can take)")
        yield _ChunkEntry(pos, nr_snaps, nr_regions, raw_len, data[pos + CHUNK.size: pos + CHUNK.size + packed_len])
        pos += CHUNK.size + packed_len


def _decoding(path, entry: _ChunkEntry, step):
    """Run a decoding step of one chunk; its failures become one RecordFileError naming the chunk."""
    try:
        return step()
    except (ValueError, IndexError, lzma.LZMAError, zlib.error, struct.error) as err:
        raise RecordFileError(path, f"corrupt native record (chunk at byte {entry.pos}: {err})") from None


def iter_chunks(path, side: dict[str, list] | None = None):
    """The metadata, then every complete chunk as ``(snaps, counts, cols)``, one at a time.

    Side chunks (version 3) are not yielded: their entries are appended to ``side[kind]`` when
    ``side`` is given, else skipped.

    ``snaps`` are ``(target_id, start_ns, end_ns)`` tuples, ``counts`` their region counts and
    ``cols`` a list of (start, end, nr_accesses, age) arrays, together covering the chunk's
    regions. A torn tail (an interrupted recorder) ends the iteration; a bad chunk with an
    intact chunk after it is damage and raises, so later chunks are never silently dropped.
    """
    meta, pos, version = _read_header(path)
    yield meta
    with open(path, "rb") as f:
        data = f.read()
    for entry in _chunk_entries(path, data, pos, side):
        yield _decoding(path, entry, lambda: _decode_chunk(_inflate(entry.body, entry.raw_len, version),
                                                           entry.nr_snaps, entry.nr_regions))


def _read_side_chunk(path, data: bytes, pos: int, nr_entries: int, raw_len: int, packed_len: int,
                     side: dict[str, list]) -> None:
    if raw_len > MAX_SIDE_RAW:
        raise RecordFileError(path, f"corrupt native record (a side chunk at byte {pos} claims {raw_len} bytes, "
                                    f"more than {MAX_SIDE_RAW})")
    try:
        decoded = _decode_side(_inflate(data[pos + CHUNK.size: pos + CHUNK.size + packed_len], raw_len, VERSION),
                               nr_entries)
    except (ValueError, UnicodeDecodeError, RecursionError, zlib.error) as err:
        raise RecordFileError(path, f"corrupt native record (side chunk at byte {pos}: {err})") from None
    for kind, entries in decoded.items():
        side.setdefault(kind, []).extend(entries)


def snapshot_sample_us(marks: list, nr_snapshots: int, default_us: int | None) -> np.ndarray | None:
    """Each snapshot's sampling interval from the change marks of a tuned record (None if untuned).
    Marks past the last snapshot (a recorder stopped between chunks) are ignored."""
    if not marks:
        return None
    out = np.full(nr_snapshots, default_us or 0, dtype=np.int64)
    for mark in sorted(marks, key=lambda m: int(m["snapshot"])):
        index = int(mark["snapshot"])
        if 0 <= index < nr_snapshots:
            out[index:] = int(mark["sample_us"])
    return out


# How damo.sources.proc_sampler keeps VMAs and stats (cheap to record; damo's shape on reading):
VMAS_SAME = "unchanged"     # {"pid", "unchanged": true}: the pid's VMAs did not change
MAPS_TEXT = "maps"          # {"pid", "maps": /proc/PID/maps text}
STAT_TEXT = "stat"          # {"stat": /proc/PID/stat text, or null for a process that is gone}


def parse_maps(text: str) -> list[dict]:
    """/proc/PID/maps as damo keeps it: start, end and the line's last word."""
    vmas = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        start, _, end = fields[0].partition("-")
        vmas.append({"start": int(start, 16), "end": int(end, 16), "name": fields[-1]})
    return vmas


def expand_vmas(snapshots: list) -> list:
    """damo's ``.vmas`` shape from the sampler's: maps texts parsed, and each unchanged mark the
    pid's previous list (the same object: no copy)."""
    last: dict = {}
    out = []
    for snap in snapshots:
        procs = []
        for proc in snap["procvmas"]:
            if proc.get(VMAS_SAME):
                proc = {"pid": proc["pid"], "vmas": last.get(proc["pid"], [])}
            elif MAPS_TEXT in proc:
                proc = {"pid": proc["pid"], "vmas": parse_maps(proc[MAPS_TEXT])}
            last[proc["pid"]] = proc["vmas"]
            procs.append(proc)
        out.append({"time": snap["time"], "procvmas": procs})
    return out


def expand_proc_stats(snapshots: list) -> list:
    """damo's ``.proc_stats`` shape (each stat split on blanks) from the sampler's texts."""
    return [{"time": snap["time"], "proc_stats": [
        {"fields": stat[STAT_TEXT].split() if stat.get(STAT_TEXT) is not None else None} if STAT_TEXT in stat
        else stat for stat in snap["proc_stats"]]} for snap in snapshots]


def attach_side(record: Record, side: dict[str, list]) -> Record:
    """Put the side data read from a file into ``record`` (damo.model's footprints and lists)."""
    from damo.model import MemFootprints

    record.snapshot_sample_us = snapshot_sample_us(side.get(SAMPLE_INTERVALS, []), record.nr_snapshots,
                                                   record.meta.sample_us)
    if "mem_footprint" in side:
        record.footprints = MemFootprints.from_damo(side["mem_footprint"])
    record.proc_vmas = expand_vmas(side["vmas"]) if "vmas" in side else None
    record.proc_stats = expand_proc_stats(side["proc_stats"]) if "proc_stats" in side else None
    return record


def read_side(path) -> dict[str, list]:
    """Only the side data of a native record, ``{kind: [entries]}`` (no snapshot is decoded)."""
    _, pos, _ = _read_header(path)
    with open(path, "rb") as f:
        data = f.read()
    side: dict[str, list] = {}
    for _ in _chunk_entries(path, data, pos, side):
        pass
    return side


def _decode_into(path, entries: list, version: int, columns: frozenset, snapshot_columns: tuple,
                 out: dict) -> None:
    """Decode every chunk into the record's final arrays, each at its chunk's place."""
    target_id, start_ns, end_ns, counts = snapshot_columns
    snap_at, region_at = 0, 0
    for entry, inflated in zip(entries, _inflated_ahead(entries, version)):
        regions = slice(region_at, region_at + entry.nr_regions)
        dests = {name: column[regions] for name, column in out.items()}

        def decode(entry=entry, dests=dests, inflated=inflated):
            buf = memoryview(inflated())
            coding, tids, starts, ends, cnts, at = _decode_header(buf, entry.nr_snaps, entry.nr_regions)
            return tids, starts, ends, cnts, _decode_regions(buf, coding, at, tids, cnts, entry.nr_regions,
                                                             columns, dests)

        tids, starts, ends, cnts, cols = _decoding(path, entry, decode)
        snaps = slice(snap_at, snap_at + entry.nr_snaps)
        target_id[snaps], start_ns[snaps], end_ns[snaps], counts[snaps] = tids, starts, ends, cnts
        for name, dest in dests.items():
            if cols[name] is not dest:
                dest[:] = cols[name]
        snap_at, region_at = snaps.stop, regions.stop


def read(path, fmt: str = "native", columns=REGION_COLUMNS) -> Record:
    """Read every complete chunk; a torn or corrupt tail (an interrupted recorder) is ignored.

    Only the region ``columns`` named are decoded; the others hold a read-only placeholder
    of the right length (0, or -1 for age: unknown), which reports that ask for fewer columns
    never look at.
    """
    meta, pos, version = _read_header(path)
    with open(path, "rb") as f:
        data = f.read()
    side: dict[str, list] = {}
    entries = list(_chunk_entries(path, data, pos, side))
    del data
    columns = frozenset(columns)
    unknown = columns - set(REGION_COLUMNS)
    if unknown:
        raise ValueError(f"no such region column: {', '.join(sorted(unknown))}")
    nr_snapshots = sum(e.nr_snaps for e in entries)
    nr_regions = sum(e.nr_regions for e in entries)
    snapshot_columns = (np.empty(nr_snapshots, np.uint64), np.empty(nr_snapshots, TIME_DTYPE),
                        np.empty(nr_snapshots, TIME_DTYPE), np.empty(nr_snapshots, np.int64))
    out = {name: np.empty(nr_regions, _COLUMN_DTYPES[name]) for name in REGION_COLUMNS if name in columns}
    _decode_into(path, entries, version, columns, snapshot_columns, out)
    target_id, start_ns, end_ns, counts = snapshot_columns
    offsets = np.zeros(nr_snapshots + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    for name in REGION_COLUMNS:
        if name not in out:
            filler = np.array(AGE_UNKNOWN if name == "age" else 0, dtype=_COLUMN_DTYPES[name])
            out[name] = np.broadcast_to(filler, (nr_regions,))
    record = Record(meta, target_id, start_ns, end_ns, offsets, *(out[name] for name in REGION_COLUMNS))
    try:
        return attach_side(record, side)
    except (ValueError, KeyError, TypeError) as err:
        raise RecordFileError(path, f"corrupt native record (side data: {err})") from None


class _WriterState(NamedTuple):
    """What the writer has made durable and what it still holds, replaced as one value.

    A signal (KeyboardInterrupt) can land between any two statements of the writer. Keeping
    the file's committed length, the counts and the buffered snapshots in one immutable value
    that is swapped in a single assignment means every interruption leaves either the old or
    the new state, never a mix: no snapshot is counted twice, written twice or lost.
    """

    committed: int          # file length up to the end of the last complete chunk
    nr_written: int         # snapshots in complete chunks
    nr_written_regions: int
    pending: tuple          # buffered (snapshot, columns) entries, not yet in a chunk
    side_pending: tuple = ()    # buffered (kind, entry) side entries
    last_sample_us: int | None = None   # the sampling interval of the last appended snapshot


class Writer(WriterBase):
    """Streams snapshots into chunks; a chunk is flushed every few seconds or regions.

    Safe against interruption at any statement: a chunk is written at the committed length
    (after cutting off whatever an interrupted earlier attempt left there), and only once it
    is on the disk does the state move past it.
    """

    def __init__(self, path, meta: RecordMeta, fmt: str = "native", level: int = ZLIB_LEVEL,
                 meta_reserve: int = 0):
        self.path = path
        self.level = level
        self._file = create_private(path)
        blob = json.dumps(meta.to_dict(), sort_keys=True).encode("utf-8")
        # JSON allows trailing spaces: a reserve lets update_meta rewrite the metadata in place
        # later (targets found while recording), with no chunk moved.
        blob += b" " * meta_reserve
        self._meta_len = len(blob)
        _write_at(self._file.fileno(), 0, HEADER.pack(MAGIC, VERSION_NO_SIDE, 0, len(blob)) + blob)
        self._state = _WriterState(HEADER.size + len(blob), 0, 0, (), (), meta.sample_us)
        self._has_side = False
        self.set_clock(time.monotonic)

    def set_clock(self, clock) -> None:
        """Run the flush timer on ``clock`` (seconds). A source on a virtual clock passes its
        own, so chunk boundaries, hence the file's bytes, do not depend on the wall clock."""
        self.clock = clock
        self._last_flush = clock()

    @property
    def nr_snapshots(self) -> int:
        """Snapshots appended so far (written or buffered)."""
        state = self._state
        return state.nr_written + len(state.pending)

    @property
    def nr_regions(self) -> int:
        state = self._state
        return state.nr_written_regions + sum(len(cols[0]) for _, cols in state.pending)

    def append_side(self, kind: str, entry: dict) -> None:
        """Buffer one side entry (a footprint sample, ...); it goes out with the next chunk."""
        state = self._state
        self._state = state._replace(side_pending=state.side_pending + ((kind, entry),))
        if len(state.side_pending) + 1 >= FLUSH_SIDE_ENTRIES or self.clock() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def append(self, target_id, start_ns, end_ns, start, end, nr_accesses, age=None,
               sample_us: int | None = None) -> None:
        """Buffer one snapshot; ``sample_us`` is its own sampling interval if intervals are tuned."""
        start = np.asarray(start, dtype=ADDR_DTYPE)
        if len(start) > MAX_CHUNK_REGIONS:
            raise RecordFileError(self.path, f"a snapshot of {len(start)} regions is more than the native format "
                                             f"holds ({MAX_CHUNK_REGIONS})")
        if age is None:
            age = np.full(len(start), -1, dtype=AGE_DTYPE)
        entry = ((int(target_id), int(start_ns), int(end_ns)),
                 (start, np.asarray(end, dtype=ADDR_DTYPE), np.asarray(nr_accesses, dtype=NR_ACCESSES_DTYPE),
                  np.asarray(age, dtype=AGE_DTYPE)))
        state = self._state
        nr_buffered = sum(len(cols[0]) for _, cols in state.pending)
        if nr_buffered + len(start) > MAX_CHUNK_REGIONS or len(state.pending) >= MAX_CHUNK_SNAPSHOTS:
            self.flush()
            state = self._state
            nr_buffered = 0
        side_pending, last_sample_us = state.side_pending, state.last_sample_us
        if sample_us is not None and sample_us != last_sample_us:
            index = state.nr_written + len(state.pending)
            side_pending += ((SAMPLE_INTERVALS, {"snapshot": index, "sample_us": int(sample_us)}),)
            last_sample_us = sample_us
        # the one step that adds it
        self._state = state._replace(pending=state.pending + (entry,), side_pending=side_pending,
                                     last_sample_us=last_sample_us)
        if nr_buffered + len(start) >= FLUSH_REGIONS or self.clock() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def update_meta(self, meta: RecordMeta) -> bool:
        """Rewrite the header's metadata in place; False (file unchanged) if it outgrew the reserve."""
        blob = json.dumps(meta.to_dict(), sort_keys=True).encode("utf-8")
        if len(blob) > self._meta_len or self._file.closed:
            return False
        _write_at(self._file.fileno(), HEADER.size, blob.ljust(self._meta_len))
        return True

    def flush(self) -> None:
        """Write the buffered snapshots as one chunk and push it to the disk."""
        self._last_flush = self.clock()
        state = self._state
        if not state.pending and not state.side_pending:
            return
        snaps = [snap for snap, _ in state.pending]
        cols = [c for _, c in state.pending]
        nr_regions = sum(len(c[0]) for c in cols)
        chunk = b""
        if state.side_pending:
            # Before the snapshots it describes: a torn snapshot chunk then only loses marks of
            # snapshots that are not in the file (which the reader ignores).
            chunk += self._side_chunk(state.side_pending)
        if snaps:
            raw = _encode_chunk(snaps, cols)
            packed = zlib.compress(raw, self.level)
            chunk += CHUNK.pack(CHUNK_TAG, len(snaps), nr_regions, len(raw), len(packed), zlib.crc32(packed)) + packed
        fd = self._file.fileno()
        try:
            if state.side_pending and not self._has_side:
                _write_at(fd, 8, struct.pack("<H", VERSION))     # side chunks follow: version 3
                self._has_side = True
            # Whatever lies past the committed length is an interrupted attempt at this chunk.
            os.ftruncate(fd, state.committed)
            _write_at(fd, state.committed, chunk)
            os.fsync(fd)
        except OSError as err:      # a full disk: the chunks before this one stay readable
            raise RecordFileError(self.path, f"cannot write ({err.strerror or err}); the record holds the "
                                             f"{state.nr_written} snapshots written before") from None
        self._state = _WriterState(state.committed + len(chunk), state.nr_written + len(snaps),
                                   state.nr_written_regions + nr_regions, (), (), state.last_sample_us)

    def _side_chunk(self, entries: tuple) -> bytes:
        grouped: dict[str, list] = {}
        for kind, entry in entries:
            grouped.setdefault(kind, []).append(entry)
        raw = json.dumps(grouped, separators=(",", ":")).encode("utf-8")
        if len(raw) > MAX_SIDE_RAW:
            raise RecordFileError(self.path, f"side data of {len(raw)} bytes is more than a chunk holds")
        packed = zlib.compress(raw, SIDE_ZLIB_LEVEL)
        return CHUNK.pack(SIDE_TAG, len(entries), 0, len(raw), len(packed), zlib.crc32(packed)) + packed

    def close(self) -> None:
        """Flush and close. If the flush is interrupted, the file stays open so that calling
        ``close`` again finishes the job."""
        if self._file.closed:
            return
        self.flush()
        self._file.close()


def _write_at(fd: int, offset: int, data: bytes) -> None:
    """Write all of ``data`` at ``offset`` (pwrite may write less than asked)."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done
