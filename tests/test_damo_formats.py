"""damo's json / json_compressed / perf_script formats and the raw report, without the real damo."""
from __future__ import annotations

import json
import math
import os
import stat
import zlib

import numpy as np
import pytest

from bench.synth import synth_record
from damo.errors import DamoError, RecordFileError
from damo.formats import detect_format, read_record, write_record
from damo.formats import damo_json, perf_script
from damo.model import RecordBuilder, RecordMeta
from damo.raw import region_lines, render, _region_lines_printf
from damo.model import RecordBuilder, RecordMeta

from conftest import make_record
from perf_fixture import perf_script_text


def _tiny_record():
    builder = RecordBuilder(RecordMeta(sample_us=5000, aggr_us=100000, update_us=1000000))
    builder.add(42, 1_000_000_000, 1_100_000_000, [4096, 1 << 20], [8192, 3 << 20], [0, 7], [3, 1234])
    builder.add(42, 1_100_000_000, 1_200_500_000, [4096], [3 << 20], [2], [-1])
    return builder.build()


# --- json -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "json_compressed"])
def test_json_round_trip(tmp_path, fmt):
    record = make_record(nr_snapshots=15, nr_targets=3)
    path = tmp_path / "r"
    write_record(record, path, fmt)
    assert detect_format(path) == fmt
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = read_record(path)
    assert back.same_data(record)
    assert (back.meta.sample_us, back.meta.aggr_us, back.meta.update_us) == (5000, 100000, 1000000)
    # What a damo file said about its targets survives a second round trip.
    write_record(back, tmp_path / "again", fmt)
    assert read_record(tmp_path / "again") == back


def test_json_text_is_damos_layout(tmp_path):
    """Our text equals json.dumps(indent=4) of damo's structure (the schema in damo-compat §2)."""
    path = tmp_path / "r.json"
    write_record(_tiny_record(), path, "json")

    def region(start, end, samples, age):
        return {"start": f"{start:,}", "end": f"{end:,}", "nr_accesses": {"samples": samples, "percent": None},
                "age": {"usec": None, "aggr_intervals": None if age < 0 else f"{age:,}"},
                "sz_filter_passed": "0 B"}

    expected = [{
        "kdamond_idx": 0, "context_idx": 0,
        "intervals": {"sample_us": "5000", "aggr_us": "100000", "ops_update_us": "1000000"},
        "scheme_idx": None, "target_id": 42, "scheme_filters": [],
        "snapshots": [
            {"start_time": "1000000000", "end_time": "1100000000",
             "regions": [region(4096, 8192, 0, 3), region(1 << 20, 3 << 20, 7, 1234)], "total_bytes": "2101248"},
            {"start_time": "1100000000", "end_time": "1200500000",
             "regions": [region(4096, 3 << 20, 2, -1)], "total_bytes": str((3 << 20) - 4096)},
        ]}]
    assert path.read_text() == json.dumps(expected, indent=4)


def _write_json(path, value, compressed=False, indent=None):
    text = json.dumps(value, indent=indent).encode()
    path.write_bytes(zlib.compress(text) if compressed else text)


def test_json_reads_other_layouts_and_newer_fields(tmp_path):
    """Compact text, other key orders, v3 extras, percent-only accesses and unit strings."""
    value = [{
        "snapshots": [
            {"regions": [
                {"age": {"aggr_intervals": 5, "usec": "500000"}, "end": 8192, "start": "4,096",
                 "nr_accesses": {"samples": 3, "percent": 15}, "probe_hits": [1, 2], "sz_filter_passed": "4.000 KiB"},
                {"start": "8,192", "end": "12,288", "nr_accesses": {"samples": None, "percent": 50},
                 "age": {"usec": None, "aggr_intervals": None}},
            ], "end_time": "1 s 100 ms", "start_time": "1 s", "damos_stats": {"nr_tried": 1},
             "sample_interval_us": 5000}],
        "target_id": 7, "intervals": {"sample_us": "5 ms", "aggr_us": "100 ms", "ops_update_us": "1 s"},
        "data_source": "record"}]
    for compressed in (False, True):
        for indent in (None, 2):
            path = tmp_path / f"r{compressed}{indent}"
            _write_json(path, value, compressed, indent)
            record = read_record(path)
            assert record.target_ids() == [7]
            assert record.start_ns.tolist() == [1_000_000_000] and record.end_ns.tolist() == [1_100_000_000]
            assert record.start.tolist() == [4096, 8192] and record.end.tolist() == [8192, 12288]
            assert record.nr_accesses.tolist() == [3, 10]       # 50 % of 20 samples
            assert record.age.tolist() == [5, -1]
            assert record.meta.aggr_us == 100000


def test_json_streams_damo_layout_with_trailing_record_keys(tmp_path):
    """damo's indent=4 layout with keys after "snapshots" still takes the streaming parse."""
    record = make_record(nr_snapshots=4, nr_targets=2)
    text = "".join(damo_json.iter_text(record)).replace(
        '\n        ]\n    }', '\n        ],\n        "data_source": {"kind": "record"}\n    }')
    path = tmp_path / "r.json"
    path.write_text(text)
    back = read_record(path)
    assert back.same_data(record)
    assert back.meta.extra["damo_records"][1]["data_source"] == {"kind": "record"}


def test_json_large_values(tmp_path):
    builder = RecordBuilder(RecordMeta())
    builder.add(18446623438842320000, 5, 10, [2**63 + 4096, 2**64 - 8192], [2**63 + 8192, 2**64 - 1], [1, 2], [0, 9])
    record = builder.build()
    for fmt in ("json", "json_compressed"):
        write_record(record, tmp_path / fmt, fmt)
        assert read_record(tmp_path / fmt).same_data(record)


PROBE_HITS = b'"probe_hits": [],\n' + b" " * 24       # damo 3.x writes it into every region


def _with_probe_hits(text: bytes) -> bytes:
    """damo 3.4.3's layout of our text: an empty "probe_hits" list before sz_filter_passed."""
    return text.replace(b'"sz_filter_passed"', PROBE_HITS + b'"sz_filter_passed"')


def _region_list(ages, probe_hits: bool = False) -> bytes:
    """The text between a snapshot's "regions": [ and ], as damo lays it out."""
    builder = RecordBuilder(RecordMeta(sample_us=5000, aggr_us=100000, update_us=1000000))
    builder.add(42, 1_000_000_000, 1_100_000_000, [4096, 1 << 20, 139887084830720],
                [8192, 3 << 20, 139887086125056], [0, 17, 20], ages)
    text = "".join(damo_json.iter_text(builder.build())).encode()
    text = text.split(b'"regions": [', 1)[1].split(b"]", 1)[0]
    return _with_probe_hits(text) if probe_hits else text


def _json_module_regions(text: bytes):
    """The columns the json module reads from a region list, or None where it rejects it."""
    try:
        return damo_json._regions_from_dicts(json.loads(b"[" + text + b"]"), 20)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@pytest.mark.parametrize("ages, probe_hits", [([3, 0, 1234567], False), ([-1, -1, -1], False),
                                              ([3, 0, 1234567], True)])
def test_json_exact_layout_path_reads_only_what_json_reads(ages, probe_hits):
    """The fastest path (damo's exact layout, checked in three passes) accepts a region list only
    when the json module reads the very same values: damaged copies, each a byte inserted, dropped,
    replaced or swapped with its neighbour (digits, commas, quotes, spaces, colons, newlines),
    either read as json reads them or go to the slower paths."""
    import random

    text = _region_list(ages, probe_hits)
    assert [c.tolist() for c in damo_json._layout_regions(text)] == [c.tolist() for c in _json_module_regions(text)]
    rng = random.Random(7)
    accepted = 0
    for _ in range(4000):
        data = bytearray(text)
        pos = rng.randrange(len(data))
        op = rng.randrange(4)
        char = rng.choice(b'0123456789,,, "\n:}l-[]')
        if op == 0:
            data.insert(pos, char)
        elif op == 1:
            del data[pos]
        elif op == 2:
            data[pos] = char
        elif pos + 1 < len(data):
            data[pos], data[pos + 1] = data[pos + 1], data[pos]
        got = damo_json._layout_regions(bytes(data))
        if got is None:
            continue
        accepted += 1
        want = _json_module_regions(bytes(data))
        assert want is not None, bytes(data)
        assert [c.tolist() for c in got] == [c.tolist() for c in want], bytes(data)
    assert 100 < accepted < 4000         # digits changed inside values are read, not only rejected
    samples = b'"samples": 17,'
    assert samples in text
    for bad in (b'"samples":1 7,', b'"samples": 1 7,', b'"samples": 017,', b'"samples": ,17', b'"samples"1: 7,',
                b'"samples": 17 ,'):
        assert damo_json._layout_regions(text.replace(samples, bad, 1)) is None, bad


def test_json_in_damo_343_layout_reads_the_same(tmp_path):
    """damo 3.4.3 writes "probe_hits": [] into every region: the fast path reads that layout too
    (a "]" of an empty list does not end the region list), and a non-empty list still reads."""
    record = make_record(nr_snapshots=6, nr_regions=5)
    write_record(record, tmp_path / "ours", "json")
    text = (tmp_path / "ours").read_bytes()
    assert text.count(b'"sz_filter_passed"') == 30
    for name, data in (("343", _with_probe_hits(text)),
                       ("hits", _with_probe_hits(text).replace(b'"probe_hits": []', b'"probe_hits": [1, 2]', 1))):
        (tmp_path / name).write_bytes(zlib.compress(data))
        assert read_record(tmp_path / name).same_data(record), name
    calls = []
    real = damo_json._layout_regions
    damo_json._layout_regions = lambda t: calls.append(real(t) is not None) or real(t)
    try:
        read_record(tmp_path / "343")
    finally:
        damo_json._layout_regions = real
    assert calls == [True] * 6


def test_json_empty_and_single(tmp_path):
    empty = RecordBuilder(RecordMeta()).build()
    write_record(empty, tmp_path / "e", "json_compressed")
    assert read_record(tmp_path / "e").nr_snapshots == 0
    builder = RecordBuilder(RecordMeta())
    builder.add(0, 0, 10, [], [], [], [])
    write_record(builder.build(), tmp_path / "s", "json")
    back = read_record(tmp_path / "s")
    assert back.nr_snapshots == 1 and back.nr_regions_total == 0


def test_json_streaming_across_small_pieces(tmp_path, monkeypatch):
    """Parsing does not depend on where the input pieces happen to be cut."""
    record = synth_record(12, 50, seed=3, nr_targets=2)
    path = tmp_path / "r"
    write_record(record, path, "json_compressed")
    monkeypatch.setattr(damo_json.RegionColumns, "BLOCK", 37)    # many column blocks, joined at the end
    for size in (7, 1000, 4097):
        monkeypatch.setattr(damo_json, "FILL_BYTES", size)
        monkeypatch.setattr(damo_json, "READ_BYTES", size)
        assert read_record(path).same_data(record)


def test_sniff():
    assert damo_json.sniff(b"  \n[\n    {", "json")
    assert not damo_json.sniff(b"kdamond", "json")
    assert damo_json.sniff(zlib.compress(b"[{}]"), "json_compressed")
    assert not damo_json.sniff(zlib.compress(b"hello"), "json_compressed")
    assert not damo_json.sniff(b"x\x9c", "json_compressed")


# --- perf_script ---------------------------------------------------------------------------------

def _times_as_damo_reads(record):
    """End times after a trip through '%f' seconds and damo's int(float(s) * 1e9)."""
    return [perf_script.timestamp_ns("%f" % (e / 1e9)) for e in record.end_ns.tolist()]


@pytest.mark.parametrize("with_age", [True, False])
@pytest.mark.parametrize("style", ["perf", "tracefs"])
def test_perf_script_reads_trace_text(tmp_path, with_age, style):
    record = synth_record(20, 30, seed=1, nr_targets=2)
    path = tmp_path / "perf.script"
    path.write_text(perf_script_text(record, with_age=with_age, style=style))
    assert detect_format(path) == "perf_script"
    back = read_record(path)
    assert back.target_ids() == [0, 1]
    assert np.array_equal(back.offsets, record.offsets)
    assert np.array_equal(back.start, record.start) and np.array_equal(back.end, record.end)
    assert np.array_equal(back.nr_accesses, record.nr_accesses)
    assert np.array_equal(back.age, record.age if with_age else np.full_like(record.age, -1))
    ends = np.array([perf_script.timestamp_ns("%d.%06d" % (e // 10**9, e % 10**9 // 1000))
                     for e in record.end_ns.tolist()])
    assert np.array_equal(back.end_ns, ends)
    for tid in (0, 1):
        own = back.for_target(tid)
        assert np.array_equal(own.start_ns[1:], own.end_ns[:-1])
        mean = (int(own.end_ns[-1]) - int(own.end_ns[0])) / (own.nr_snapshots - 1)
        assert own.start_ns[0] == math.floor(int(own.end_ns[0]) - mean)
        assert back.meta.extra[perf_script.FIRST_START_KEY][str(tid)] == int(own.end_ns[0]) - mean


def test_perf_script_round_trip(tmp_path):
    record = make_record(nr_snapshots=10, nr_targets=2)
    path = tmp_path / "p"
    write_record(record, path, "perf_script")
    back = read_record(path)
    assert np.array_equal(back.end_ns, _times_as_damo_reads(record))
    for col in ("target_id", "offsets", "start", "end", "nr_accesses", "age"):
        assert np.array_equal(getattr(back, col), getattr(record, col)), col
    assert back.meta.sample_us is None                       # perf_script carries no intervals


def test_perf_script_single_snapshot_keeps_duration(tmp_path):
    builder = RecordBuilder(RecordMeta())
    builder.add(3, 5_000_000_000, 5_100_000_000, [0, 4096], [4096, 8192], [1, 2], [3, 4])
    path = tmp_path / "p"
    write_record(builder.build(), path, "perf_script")
    lines = path.read_text().splitlines()
    assert lines[-1] == "kdamond.x xxxx xxxx 5.200000: damon:damon_aggregated: target_id=3 nr_regions=1 0-0: -1 -1"
    back = read_record(path)
    assert back.nr_snapshots == 1
    assert back.end_ns.tolist() == [perf_script.timestamp_ns("5.100000")]
    assert back.start_ns[0] == back.end_ns[0] - (perf_script.timestamp_ns("5.200000") - back.end_ns[0])


def test_perf_script_unknown_age_writes_nine_fields(tmp_path):
    builder = RecordBuilder(RecordMeta())
    builder.add(0, 0, 1000, [0, 10], [10, 20], [1, 2], [-1, 5])
    builder.add(0, 1000, 2000, [0], [20], [1], [-1])
    path = tmp_path / "p"
    write_record(builder.build(), path, "perf_script")
    assert [len(line.split()) for line in path.read_text().splitlines()] == [9, 10, 9]
    assert read_record(path).age.tolist() == [-1, 5, -1]


def test_perf_script_not_time_sorted(tmp_path):
    path = tmp_path / "p"
    path.write_text("kdamond.0 1 [000] 2.000000: damon:damon_aggregated: target_id=0 nr_regions=1 0-4096: 1 1\n"
                    "kdamond.0 1 [000] 1.000000: damon:damon_aggregated: target_id=0 nr_regions=1 0-4096: 1 1\n")
    with pytest.raises(RecordFileError, match="not time-sorted"):
        read_record(path)


def test_parse_lines_streams_snapshots():
    record = synth_record(5, 4, seed=2, nr_targets=2)
    lines = perf_script_text(record, style="tracefs").splitlines(keepends=True)
    snaps = list(perf_script.parse_lines(iter(lines)))
    assert [s.target_id for s in snaps] == record.target_id.tolist()
    for i, snap in enumerate(snaps):
        want = record.snapshot(i)
        assert np.array_equal(snap.start, want.start) and np.array_equal(snap.age, want.age)
        assert snap.end_ns == perf_script.timestamp_ns("%.6f" % (want.end_ns / 1e9))
    partial = list(perf_script.parse_lines(lines[:-1]))
    assert len(partial) == len(snaps) - 1
    flushed = list(perf_script.parse_lines(lines[:-1], flush_partial=True))
    assert len(flushed) == len(snaps) and flushed[-1].nr_regions if hasattr(flushed[-1], "nr_regions") else True
    assert perf_script.parse_line("garbage") is None
    assert perf_script.parse_line(b"kdamond.0-1 [000] ..... 1.5: damon_aggregated: target_id=1 nr_regions=2 1-2: 3\n") \
        == (1_500_000_000, 1, 2, 1, 2, 3, -1)


def test_perf_script_huge_addresses(tmp_path):
    path = tmp_path / "p"
    path.write_text("k 1 [0] 1.0: damon:damon_aggregated: target_id=18446744073709551615 nr_regions=1 "
                    "18446744073709547520-18446744073709551615: 1 2\n")
    back = read_record(path)
    assert back.target_id.tolist() == [2**64 - 1] and back.end.tolist() == [2**64 - 1]


# --- raw report ------------------------------------------------------------------------------------

def test_raw_text_exact():
    text = b"".join(render(_tiny_record())).decode()
    assert text == (
        "base_time_absolute: 1 s\n"
        "\n"
        "monitoring_start:    " + "0 ns".rjust(16) + "\n"
        "monitoring_end:      " + "100 ms".rjust(16) + "\n"
        "monitoring_duration: " + "100 ms".rjust(16) + "\n"
        "target_id: 42\n"
        "nr_regions: 2\n"
        "# start_addr     end_addr        length  nr_accesses   age\n"
        "000000001000-000000002000 (   4.000 KiB)           0     3\n"
        "000000100000-000000300000 (   2.000 MiB)           7  1234\n"
        "\n"
        "monitoring_start:    " + "100 ms".rjust(16) + "\n"
        "monitoring_end:      " + "200.500 ms".rjust(16) + "\n"
        "monitoring_duration: " + "100.500 ms".rjust(16) + "\n"
        "target_id: 42\n"
        "nr_regions: 1\n"
        "# start_addr     end_addr        length  nr_accesses   age\n"
        "000000001000-000000300000 (   2.996 MiB)           2    -1\n"
        "\n")
    raw = b"".join(render(_tiny_record(), raw_number=True)).decode()
    assert "base_time_absolute: 1000000000\n" in raw and "(     2097152)" in raw


def test_region_lines_fast_path_equals_printf():
    rng = np.random.default_rng(5)
    n = 4000
    start = rng.integers(0, 1 << 47, n).astype(np.uint64)
    sizes = np.concatenate([rng.integers(0, 1 << rng.integers(1, 46), n // 2),
                            (1 << rng.integers(0, 45, n // 2)) + rng.integers(-1, 2, n // 2)]).astype(np.uint64)
    sizes[:8] = [0, 1, 1024, 1025, 1 << 20, (1 << 20) + 1, 1536, 1024 * 1023 + 512]
    end = np.minimum(start + sizes, np.uint64((1 << 48) - 1))
    nr = rng.integers(-9999, 10**5, n)
    age = rng.integers(-9999, 99999, n)
    for raw_number in (False, True):
        assert region_lines(start, end, nr, age, raw_number) == _region_lines_printf(start, end, nr, age, raw_number)
    # Values too wide for the printf fields take the general path.
    wide = region_lines(np.array([2**60], dtype=np.uint64), np.array([2**61], dtype=np.uint64),
                        np.array([10**12]), np.array([123456]))
    assert wide == b"1000000000000000-2000000000000000 (1024.000 PiB) 1000000000000 123456\n"


def test_raw_chunks_and_targets_equal_printf(monkeypatch):
    """Snapshots formatted in chunks (several per chunk, a snapshot never split), two interleaved
    targets (gathered regions) and a chunk with a value too wide for the fast path: the text is
    the per-line printf text."""
    import damo.raw as raw

    rng = np.random.default_rng(3)
    builder = RecordBuilder(RecordMeta(sample_us=5000, aggr_us=100000))
    for i in range(12):
        n = int(rng.integers(0, 9))
        start = np.sort(rng.integers(0, 1 << 46, n)).astype(np.uint64)
        end = start + rng.integers(1, 1 << 30, n).astype(np.uint64)
        nr = rng.integers(0, 50, n) * (10**12 if i == 7 else 1)        # snapshot 7 is too wide
        builder.add(1 + i % 2, i * 10**8, (i + 1) * 10**8, start, end, nr, rng.integers(0, 999, n))
    record = builder.build()

    def printf_text(rec):
        out = []
        for tid, idx in raw.target_snapshots(rec):
            base = raw.exact_start(rec, int(idx[0]))
            out.append(("base_time_absolute: %s\n\n" % raw.fmt.format_time_ns(base)).encode())
            for i in idx.tolist():
                sl = slice(int(rec.offsets[i]), int(rec.offsets[i + 1]))
                out += [raw.snapshot_head(rec, i, raw.exact_start(rec, i), base, tid, False),
                        _region_lines_printf(rec.start[sl], rec.end[sl], rec.nr_accesses[sl], rec.age[sl], False),
                        b"\n"]
        return b"".join(out)

    expected = printf_text(record)
    for chunk in (1, 5, 1 << 17):
        monkeypatch.setattr(raw, "CHUNK_REGIONS", chunk)
        assert b"".join(bytes(b) for b in render(record)) == expected


def test_raw_duration_selects_like_damo():
    record = make_record(nr_snapshots=20)          # 100 ms snapshots from t=0
    text = b"".join(render(record, duration=(0.3, 0.8))).decode()
    assert text.count("monitoring_start") == 6     # starts at 0.3 .. 0.8 s
    assert text.startswith("base_time_absolute: 300 ms\n")
