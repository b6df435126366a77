"""The native format: round trips, streaming, truncation and corruption."""
from __future__ import annotations

import os
import stat
import zlib
from pathlib import Path

import numpy as np
import pytest

from damo.errors import RecordFileError
from damo.formats import detect_format, open_writer, read_record, write_record
from damo.formats import native
from damo.model import RecordBuilder, RecordMeta

from conftest import make_record, run_cli


def write_flushing_every(path, record, every: int) -> None:
    """Write ``record`` through the streaming writer, flushing a chunk after every ``every`` snapshots."""
    writer = open_writer(path, record.meta)
    for i, snap in enumerate(record.snapshots()):
        writer.append(snap.target_id, snap.start_ns, snap.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age)
        if i % every == every - 1:
            writer.flush()
    writer.close()


def test_round_trip_is_exact(tmp_path, small_record):
    path = tmp_path / "r.data"
    write_record(small_record, path)
    assert detect_format(path) == "native"
    back = read_record(path)
    assert back == small_record
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_round_trip_multi_target_without_age(tmp_path):
    record = make_record(nr_snapshots=12, nr_targets=3, with_age=False)
    path = tmp_path / "r.data"
    write_record(record, path)
    back = read_record(path)
    assert back == record
    assert np.all(back.age == -1)
    assert back.target_ids() == [0, 1, 2]


def test_odd_regions_use_plain_coding(tmp_path):
    """Overlapping, unsorted, empty and huge regions still round-trip exactly."""
    record = _odd_record()
    path = tmp_path / "odd.data"
    write_record(record, path)
    assert read_record(path) == record


def test_empty_record(tmp_path):
    path = tmp_path / "e.data"
    write_record(RecordBuilder(RecordMeta(target="x")).build(), path)
    back = read_record(path)
    assert back.nr_snapshots == 0 and back.meta.target == "x"


def test_truncated_file_reads_up_to_last_complete_chunk(tmp_path):
    record = make_record(nr_snapshots=40)
    path = tmp_path / "t.data"
    writer = open_writer(path, record.meta)
    sizes = []
    for i, snap in enumerate(record.snapshots()):
        writer.append(snap.target_id, snap.start_ns, snap.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age)
        if i % 10 == 9:
            writer.flush()
            sizes.append(os.path.getsize(path))
    writer.close()
    data = path.read_bytes()
    # Cut inside the third chunk: the first two chunks (20 snapshots) survive.
    cut = tmp_path / "cut.data"
    cut.write_bytes(data[: (sizes[1] + sizes[2]) // 2])
    back = read_record(cut)
    assert back.nr_snapshots == 20
    assert back.same_data(record.select(np.arange(40) < 20))
    # Cut right after a chunk: nothing is lost.
    cut.write_bytes(data[: sizes[2]])
    assert read_record(cut).nr_snapshots == 30


def test_streaming_writer_flushes_on_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "FLUSH_REGIONS", 50)
    record = make_record(nr_snapshots=10, nr_regions=20)
    path = tmp_path / "s.data"
    writer = open_writer(path, record.meta)
    for snap in record.snapshots():
        writer.append(snap.target_id, snap.start_ns, snap.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age)
    # Without close(): what a SIGKILLed recorder leaves behind.
    assert read_record(path).nr_snapshots == 9
    writer.close()
    assert read_record(path) == record


@pytest.mark.parametrize("content, problem", [
    (b"", "empty file"),
    (b"\x00\x01\x02garbage\xff" * 10, "unknown record format"),
    (native.MAGIC + b"\x01", "truncated native header"),
])
def test_bad_files_give_clean_errors(tmp_path, content, problem):
    path = tmp_path / "bad.data"
    path.write_bytes(content)
    with pytest.raises(RecordFileError, match=problem):
        read_record(path)


def test_corrupt_file_exits_2_without_traceback(tmp_path):
    path = tmp_path / "bad.data"
    path.write_bytes(b"\x13\x37 not a record \xff\xfe" * 20)
    result = run_cli("convert", "-i", str(path), "-o", str(tmp_path / "out.data"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"damo: error: {path}: unknown record format (not native, json, json_compressed nor perf_script)"
    result = run_cli("convert", "-i", str(tmp_path / "missing.data"), "-o", str(tmp_path / "out.data"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "missing.data: no such file" in result.stderr


def test_compact_on_damon_like_records(tmp_path):
    """Persistent boundaries cost little: the goal is at most 2 bytes per region."""
    record = make_record(nr_snapshots=200, nr_regions=500, with_age=False)
    path = tmp_path / "c.data"
    write_record(record, path)
    # make_record redraws every boundary each snapshot (the worst case), so allow more here;
    # bench/ measures realistic records.
    assert os.path.getsize(path) / record.nr_regions_total < 4


def test_damaged_middle_chunk_is_an_error_not_a_truncation(tmp_path):
    record = make_record(nr_snapshots=30)
    path = tmp_path / "m.data"
    write_flushing_every(path, record, 10)
    data = bytearray(path.read_bytes())
    _, first_chunk = native.read_meta(path)
    data[first_chunk + native.CHUNK.size + 5] ^= 0x40        # inside the first chunk's body
    path.write_bytes(bytes(data))
    with pytest.raises(RecordFileError, match="bad chunk at byte"):
        read_record(path)


def _odd_record():
    builder = RecordBuilder(RecordMeta())
    builder.add(2**64 - 1, 5, 10, [100, 50, 50, 2**64 - 2], [200, 150, 50, 2**64 - 1], [1, 2, 3, 4], [0, -1, 7, 2**40])
    builder.add(0, 10, 20, [], [], [], [])
    return builder.build()


def test_reads_version_1_files_written_with_xz():
    """Files of version 1 (xz chunks; tests/data, written by the version 1 writer) still read exactly."""
    from bench.synth import synth_record

    data = Path(__file__).parent / "data"
    for name, expected in (("native_v1_synth.rec", synth_record(40, 50, seed=1, nr_targets=2)),
                           ("native_v1_plain.rec", _odd_record())):
        path = data / name
        assert native.HEADER.unpack_from(path.read_bytes())[1] == 1
        back = read_record(path)
        assert back.same_data(expected)
        assert back.meta.tool_version == expected.meta.tool_version
    assert sum(1 for _ in native.iter_chunks(data / "native_v1_synth.rec")) - 1 == 3


def test_writes_version_2_with_zlib_chunks(tmp_path, small_record):
    path = tmp_path / "r.data"
    write_record(small_record, path)
    data = path.read_bytes()
    assert native.HEADER.unpack_from(data)[1] == native.VERSION_NO_SIDE == 2     # version 3 only with side chunks
    _, first = native.read_meta(path)
    tag, _, _, raw_len, packed_len, _ = native.CHUNK.unpack_from(data, first)
    body = data[first + native.CHUNK.size:first + native.CHUNK.size + packed_len]
    assert tag == native.CHUNK_TAG and len(zlib.decompress(body)) == raw_len


@pytest.mark.parametrize("columns", [("start", "end", "nr_accesses"), ("nr_accesses",), ()])
def test_reading_only_some_columns(tmp_path, columns):
    record = make_record(nr_snapshots=25, nr_targets=2)
    path = tmp_path / "r.data"
    write_record(record, path)
    back = native.read(path, columns=columns)
    for name in ("target_id", "start_ns", "end_ns", "offsets"):
        assert np.array_equal(getattr(back, name), getattr(record, name))
    for name, skipped in (("start", 0), ("end", 0), ("nr_accesses", 0), ("age", -1)):
        got = getattr(back, name)
        assert len(got) == record.nr_regions_total
        assert np.array_equal(got, getattr(record, name)) if name in columns else np.all(got == skipped)
    with pytest.raises(ValueError, match="no such region column: size"):
        native.read(path, columns=("size",))


def test_corrupt_zlib_chunk_names_the_chunk(tmp_path, small_record):
    """A chunk whose CRC matches but whose zlib data does not inflate is one error naming it."""
    path = tmp_path / "z.data"
    write_record(small_record, path)
    first = _corrupt_chunk(path, 0)
    with pytest.raises(RecordFileError, match=f"corrupt native record \\(chunk at byte {first}: "):
        read_record(path)


def test_later_corrupt_chunk_names_it_and_stops_the_inflating_thread(tmp_path):
    """Chunks are decompressed ahead on a helper thread: a bad later chunk is still the error that
    names it (not an earlier or a later one), and the helper is gone once the reader gave up."""
    import threading

    record = make_record(nr_snapshots=40)
    path = tmp_path / "z.data"
    write_flushing_every(path, record, 5)
    assert read_record(path).nr_snapshots == 40
    at = _corrupt_chunk(path, 3)        # the fourth of eight chunks
    with pytest.raises(RecordFileError, match=f"corrupt native record \\(chunk at byte {at}: "):
        read_record(path)
    assert not [t for t in threading.enumerate() if t.name == "damo-inflate"]


def _corrupt_chunk(path, index: int) -> int:
    """Replace the zlib body of the index-th chunk (its CRC kept right); its byte offset."""
    data = bytearray(path.read_bytes())
    _, at = native.read_meta(path)
    for _ in range(index):
        at += native.CHUNK.size + native.CHUNK.unpack_from(data, at)[4]
    tag, nr_snaps, nr_regions, raw_len, packed_len, _ = native.CHUNK.unpack_from(data, at)
    body = b"\x78\x9c" + b"\xff" * (packed_len - 2)
    data[at:at + native.CHUNK.size + packed_len] = native.CHUNK.pack(
        tag, nr_snaps, nr_regions, raw_len, packed_len, zlib.crc32(body)) + body
    path.write_bytes(bytes(data))
    return at


def test_delta_coding_round_trips_irregular_well_formed_records(tmp_path):
    """Targets in irregular order, region counts that change, gaps, boundaries that persist or
    move, addresses at 0 and at the top of the address space: the chunk-at-once decoder gives
    back every column exactly (and the chunks really are delta-coded)."""
    rng = np.random.default_rng(7)
    builder = RecordBuilder(RecordMeta())
    previous: dict[int, np.ndarray] = {}
    for t, tid in enumerate([0, 1, 1, 0, 2, 0, 2, 2, 1, 0] * 6):
        bounds = previous.get(tid)
        if bounds is None or rng.random() < 0.1:
            bounds = np.unique(rng.integers(0, 1 << 20, int(rng.integers(2, 40))).astype(np.uint64) * 4096)
        else:
            keep = rng.random(len(bounds)) < 0.8
            extra = rng.integers(0, 1 << 20, int(rng.integers(0, 6))).astype(np.uint64) * 4096
            bounds = np.unique(np.concatenate([bounds[keep], extra]))
        if len(bounds) < 2:
            bounds = np.array([0, 4096], dtype=np.uint64)
        if tid == 2:        # the top of the address space
            bounds = np.unique(np.concatenate([bounds, [2**64 - 4096, 2**64 - 1]]).astype(np.uint64))
        previous[tid] = bounds
        is_region = rng.random(len(bounds) - 1) < 0.8
        is_region[0] = True
        start, end = bounds[:-1][is_region], bounds[1:][is_region]
        nr = rng.integers(0, 21, len(start))
        age = np.where(rng.random(len(start)) < 0.2, -1, rng.integers(0, 500, len(start)))
        builder.add(tid, t * 100, t * 100 + 90, start, end, nr, age)
    record = builder.build()
    path = tmp_path / "irregular.data"
    write_flushing_every(path, record, 17)
    assert read_record(path) == record
    data = path.read_bytes()
    _, first = native.read_meta(path)
    packed_len = native.CHUNK.unpack_from(data, first)[4]
    assert zlib.decompress(data[first + native.CHUNK.size:first + native.CHUNK.size + packed_len])[0] == native.CODING_DELTA
    assert sum(1 for _ in native.iter_chunks(path)) - 1 == 4
    partial = native.read(path, columns=("start", "end", "nr_accesses"))
    assert partial.same_data(record.__class__(record.meta, record.target_id, record.start_ns, record.end_ns,
                                              record.offsets, record.start, record.end, record.nr_accesses,
                                              np.full(record.nr_regions_total, -1)))
