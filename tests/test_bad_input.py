"""Bad record files: one line on stderr naming the file and the problem, exit code 2, no traceback."""
from __future__ import annotations

import zlib

import pytest

from damo.formats import write_record

from conftest import make_record, run_cli


def _make(tmp_path, name):
    record = make_record(nr_snapshots=8, nr_regions=10)
    path = tmp_path / name
    if name == "missing":
        return path, "no such file"
    if name == "empty":
        path.write_bytes(b"")
        return path, "empty file"
    if name == "directory":
        path.mkdir()
        return path, "is a directory"
    if name == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
        return path, "unknown record format"
    if name == "text":
        path.write_text("hello world\nthis is not a record\n")
        return path, "unknown record format"
    if name == "truncated_json_compressed":
        write_record(record, path, "json_compressed")
        path.write_bytes(path.read_bytes()[:200])
        return path, "truncated json_compressed"
    if name == "corrupt_json_compressed":
        write_record(record, path, "json_compressed")
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        return path, "json_compressed"
    if name == "truncated_json":
        write_record(record, path, "json")
        path.write_bytes(path.read_bytes()[:1000])
        return path, "corrupt json record"
    if name == "json_not_damo":
        path.write_text('{"hello": [1, 2, 3]}')
        return path, "corrupt json record"
    if name == "compressed_not_json":
        path.write_bytes(zlib.compress(b"[1, 2, 3"))
        return path, "json_compressed"
    if name == "native_bad_header":
        write_record(record, path)
        path.write_bytes(path.read_bytes()[:20])
        return path, "truncated native header"
    if name == "perf_not_sorted":
        path.write_text("k 1 [0] 2.0: damon:damon_aggregated: target_id=0 nr_regions=1 0-4096: 1 1\n"
                        "k 1 [0] 1.0: damon:damon_aggregated: target_id=0 nr_regions=1 0-4096: 1 1\n")
        return path, "not time-sorted"
    raise AssertionError(name)


CASES = ["missing", "empty", "directory", "garbage", "text", "truncated_json_compressed",
         "corrupt_json_compressed", "truncated_json", "json_not_damo", "compressed_not_json",
         "native_bad_header", "perf_not_sorted"]


@pytest.mark.parametrize("case,command", [(case, ("report", "raw")) for case in CASES] +
                         [(case, ("convert", "-o", "out.data")) for case in ("empty", "garbage", "truncated_json")])
def test_bad_record_file(tmp_path, case, command):
    path, problem = _make(tmp_path, case)
    proc = run_cli(*command, "-i", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and problem in lines[0], lines[0]
    assert proc.stdout == ""


def test_default_input_is_damon_data(tmp_path):
    proc = run_cli("report", "raw", cwd=tmp_path)
    assert proc.returncode == 2 and "damon.data: no such file" in proc.stderr
    write_record(make_record(nr_snapshots=2, nr_regions=3), tmp_path / "damon.data")
    proc = run_cli("report", "raw", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("base_time_absolute: 0 ns\n")
