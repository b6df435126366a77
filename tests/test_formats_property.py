"""Property tests: random records round-trip through every writable format, and damaged files
(truncated anywhere, bytes flipped anywhere) give either a correct record or a clean error.

What each format can carry:
- native: everything, metadata included.
- json / json_compressed: all snapshot and region data (ages below 0 all mean "unknown"); of the
  metadata only the intervals (and only when there is a snapshot); targets come back in first-appearance order, interleaved by time.
- perf_script: regions, target ids and end times (as '%f' seconds read back the way damo does);
  no metadata, no start times (derived from the end times), no empty snapshots.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damo.errors import DamoError
from damo.formats import detect_format, read_record, write_record
from damo.formats.perf_script import timestamp_ns
from damo.model import Record, RecordBuilder, RecordMeta

SETTINGS = settings(max_examples=int(os.environ.get("PROP_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
U64 = st.integers(0, 2**64 - 1)
# Addresses over the whole 64-bit space, biased to the edges that break arithmetic: 0, 2^63
# (sign of int64), kernel addresses, the last page and 2^64 - 1.
EDGES = [0, 1, 4095, 2**32, 2**47, 2**63 - 4096, 2**63 - 1, 2**63, 2**63 + 1, 0xffff888000000000,
         2**64 - 8192, 2**64 - 4096, 2**64 - 2, 2**64 - 1]
ADDRESSES = st.one_of(st.integers(0, 2**48), U64, st.sampled_from(EDGES),
                      st.sampled_from(EDGES).flatmap(lambda e: st.integers(max(0, e - 2**20), min(2**64 - 1, e + 2**20))))


@st.composite
def records(draw, for_perf: bool = False) -> Record:
    """Random records: 1-3 targets, up to 6 snapshots, up to 8 regions each, times increasing."""
    nr_targets = draw(st.integers(1, 3))
    tids = draw(st.lists(U64, min_size=nr_targets, max_size=nr_targets, unique=True))
    with_intervals = draw(st.booleans())
    meta = RecordMeta(target_kind=draw(st.sampled_from(["vaddr", "paddr", "sim", "unknown"])),
                      target=draw(st.text(max_size=10)),
                      sample_us=5000 if with_intervals else None, aggr_us=100000 if with_intervals else None,
                      update_us=draw(st.integers(1, 10**7)) if with_intervals else None,
                      start_time=draw(st.none() | st.floats(0, 2e9)), tool_version="prop")
    builder = RecordBuilder(meta)
    time_ns = draw(st.integers(0, 10**15))
    for _ in range(draw(st.integers(0, 6))):
        tid = draw(st.sampled_from(tids))
        duration = draw(st.integers(0, 10**10))
        n = draw(st.integers(1 if for_perf else 0, 8))
        sorted_regions = draw(st.booleans())
        if sorted_regions:
            bounds = sorted(draw(st.lists(ADDRESSES, min_size=n + 1, max_size=n + 1, unique=True)))
            start, end = bounds[:-1], bounds[1:]
        else:
            start = draw(st.lists(U64, min_size=n, max_size=n))
            end = draw(st.lists(U64, min_size=n, max_size=n))
        nr_values = st.integers(0, 10**6) if for_perf else st.integers(-2**63, 2**63 - 1)
        nr = draw(st.lists(nr_values, min_size=n, max_size=n))
        age = draw(st.lists(st.integers(-1, 2**40), min_size=n, max_size=n))
        builder.add(tid, time_ns, time_ns + duration, start, end, nr, age)
        time_ns += duration + draw(st.integers(1, 10**9))
    return builder.build()


def _write(record: Record, fmt: str, directory: str) -> Path:
    path = Path(directory) / f"r.{fmt}"
    write_record(record, path, fmt)
    return path


@SETTINGS
@given(records())
def test_native_round_trip(record):
    with tempfile.TemporaryDirectory() as d:
        assert read_record(_write(record, "native", d)) == record


@SETTINGS
@given(records(), st.sampled_from(["json", "json_compressed"]))
def test_json_round_trip(record, fmt):
    with tempfile.TemporaryDirectory() as d:
        path = _write(record, fmt, d)
        assert detect_format(path) == fmt
        back = read_record(path)
    assert back.same_data(record)
    if record.nr_snapshots:          # an empty damo file has no record element to hold intervals
        assert (back.meta.sample_us, back.meta.aggr_us, back.meta.update_us) == (
        record.meta.sample_us, record.meta.aggr_us, record.meta.update_us)


@SETTINGS
@given(records(for_perf=True))
def test_perf_script_round_trip(record):
    with tempfile.TemporaryDirectory() as d:
        path = _write(record, "perf_script", d)
        if record.nr_snapshots == 0:
            assert path.read_bytes() == b""
            return
        back = read_record(path)
    assert back.target_ids() == record.target_ids()
    for tid in record.target_ids():
        want, got = record.for_target(tid), back.for_target(tid)
        for col in ("offsets", "start", "end", "nr_accesses", "age"):
            assert np.array_equal(getattr(got, col), getattr(want, col)), col
        assert got.end_ns.tolist() == [timestamp_ns("%f" % (e / 1e9)) for e in want.end_ns.tolist()]
        assert np.array_equal(got.start_ns[1:], got.end_ns[:-1])


# --- damaged files ------------------------------------------------------------------------------

def _read_or_clean_error(path: Path) -> Record | None:
    """read_record's result, None for a clean error; any other exception fails the test."""
    try:
        record = read_record(path)
    except DamoError as err:
        assert str(path) in str(err)
        return None
    record.validate_shape()
    return record


def _damage(data: bytes, cut: int | None, flips: list[tuple[int, int]]) -> bytes:
    damaged = bytearray(data if cut is None else data[:cut % (len(data) + 1)])
    for pos, mask in flips:
        if damaged:
            damaged[pos % len(damaged)] ^= mask
    return bytes(damaged)


FORMATS = ["native", "json", "json_compressed", "perf_script"]


@SETTINGS
@given(records(for_perf=True), st.sampled_from(FORMATS), st.integers(0, 2**32))
def test_truncated_files(record, fmt, cut):
    with tempfile.TemporaryDirectory() as d:
        path = _write(record, fmt, d)
        data = path.read_bytes()
        path.write_bytes(_damage(data, cut, []))
        back = _read_or_clean_error(path)
        if back is not None and fmt == "native":
            # A cut native file holds a prefix of the snapshots, exactly.
            k = back.nr_snapshots
            assert k <= record.nr_snapshots
            assert back.same_data(record.select(np.arange(record.nr_snapshots) < k))
        if back is not None and fmt in ("json", "json_compressed") and cut % (len(data) + 1) == len(data):
            assert back.same_data(record)


@SETTINGS
@given(records(for_perf=True), st.sampled_from(FORMATS),
       st.lists(st.tuples(st.integers(0, 2**32), st.integers(1, 255)), min_size=1, max_size=4))
def test_flipped_bytes(record, fmt, flips):
    with tempfile.TemporaryDirectory() as d:
        path = _write(record, fmt, d)
        path.write_bytes(_damage(path.read_bytes(), None, flips))
        _read_or_clean_error(path)


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from([b"", b"\x89DAMOREC", b"[", b"x\x9c", b"k 1 [0] 1.0: damon:"]))
def test_arbitrary_bytes(data, prefix):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "junk"
        path.write_bytes(prefix + data)
        _read_or_clean_error(path)
