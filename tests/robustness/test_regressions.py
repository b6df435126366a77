"""Reproducers of issue 14's items 4, 5 and 14 and of issue 12's kernel-address convert."""
from __future__ import annotations

import numpy as np
import pytest

from damo.cli import main
from damo.errors import DamoError
from damo.formats import native, read_record, write_record
from damo.model import RecordBuilder, RecordMeta
from tests.conftest import make_record


def _chunked_native(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "FLUSH_REGIONS", 60)
    record = make_record(nr_snapshots=30, nr_regions=10)
    path = tmp_path / "r.data"
    write_record(record, path)
    data = bytearray(path.read_bytes())
    meta, pos = native.read_meta(path)
    chunks = []
    while pos < len(data):
        chunks.append(pos)
        pos += native.CHUNK.size + native.CHUNK.unpack_from(data, pos)[4]
    assert len(chunks) >= 3
    return record, path, data, chunks


@pytest.mark.parametrize("field", [1, 3, 4, 5])     # snapshots, raw length, packed length, CRC
def test_damaged_middle_chunk_is_an_error_not_a_shorter_record(tmp_path, monkeypatch, field):
    """Item 4: a damaged length of a middle chunk used to drop the rest of the file silently."""
    record, path, data, chunks = _chunked_native(tmp_path, monkeypatch)
    offset = chunks[1] + 4 + 4 * (field - 1)
    data[offset:offset + 4] = (int.from_bytes(data[offset:offset + 4], "little") + 1000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(DamoError, match=rf"{path}: corrupt native record .*at byte {chunks[1]}"):
        read_record(path)


def test_torn_last_chunk_still_reads_as_a_prefix(tmp_path, monkeypatch):
    record, path, data, chunks = _chunked_native(tmp_path, monkeypatch)
    path.write_bytes(bytes(data[:chunks[-1] + 30]))
    back = read_record(path)
    assert 0 < back.nr_snapshots < record.nr_snapshots
    assert back.same_data(record.select(np.arange(record.nr_snapshots) < back.nr_snapshots))


def test_json_stray_token_is_rejected_not_misread(tmp_path):
    """Item 5: a stray 7 before a key turned an end address into a negative-size region, exit 0."""
    record = make_record(nr_snapshots=2, nr_regions=3)
    path = tmp_path / "r.json"
    write_record(record, path, "json")
    text = path.read_bytes()
    assert read_record(path).same_data(record)
    path.write_bytes(text.replace(b'"nr_accesses"', b'7"nr_accesses"', 1))
    with pytest.raises(DamoError, match=str(path)):
        read_record(path)
    for bad in (b'"samples": 01', b'"samples": 1 2', b'"st art"'):
        original = b'"samples": ' + text.split(b'"samples": ')[1].split(b",")[0] if bad.startswith(b'"samples"') \
            else b'"start"'
        path.write_bytes(text.replace(original, bad, 1))
        with pytest.raises(DamoError):
            read_record(path)


def test_perf_script_huge_timestamp_is_one_clean_error(tmp_path, capsys):
    """Item 14: a timestamp of 10^200 leaked a numpy RuntimeWarning before the error."""
    path = tmp_path / "p.txt"
    path.write_text("kdamond.0 123 [000] 1e200: damon:damon_aggregated: target_id=0 nr_regions=1 4096-8192: 1 0\n")
    assert main(["validate", "-i", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Warning" not in err


@pytest.mark.parametrize("fmt", ["native", "json_compressed", "json", "perf_script"])
def test_kernel_addresses_convert_exactly(tmp_path, fmt):
    """Issue 12: a region at 0xffff888000000000 passed validate, then convert to native crashed."""
    builder = RecordBuilder(RecordMeta(target_kind="paddr", sample_us=5000, aggr_us=100000, update_us=1000000))
    edges = [(0xFFFF888000000000, 0xFFFF888000100000), (2**63 - 4096, 2**63 + 4096), (2**64 - 8192, 2**64 - 4096),
             (2**64 - 4096, 2**64 - 1)]
    for t in range(3):
        builder.add(0, t * 10**8, (t + 1) * 10**8, [s for s, _ in edges], [e for _, e in edges], [1, 2, 3, t],
                    [t, t, t, t])
    record = builder.build()
    src = tmp_path / "k.json"
    write_record(record, src, "json")
    assert b"18,446,744,073,709,551,615" in src.read_bytes()        # 2^64 - 1 in damo's JSON
    out = tmp_path / f"k.{fmt}"
    assert main(["convert", "-i", str(src), "-o", str(out), "--format", fmt]) == 0
    back = read_record(out)
    for col in ("start", "end", "nr_accesses"):
        assert np.array_equal(getattr(back, col), getattr(record, col)), col


CONFIG = str(__import__("tests.conftest", fromlist=["REPO"]).REPO / "masim" / "configs" / "zigzag.cfg")


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "r.data"
    write_record(make_record(nr_snapshots=5), path)
    return str(path)


@pytest.mark.parametrize("argv, option", [
    (["record", CONFIG, "-s", "1", "-a", "1"], "-s 1 -a 1"),
    (["report", "heats", "-i", "{r}", "--resol", "100000", "100000"], "--resol"),
    (["report", "wss", "-i", "{r}", "-r", "0", "100000000", "1"], "--range"),
    (["report", "wss", "-i", "{r}", "--nr_cols_bar", "1000000000"], "--nr_cols_bar"),
    (["report", "diff", "{r}", "{r}", "--bins", "1000000000"], "--bins"),
    (["record", CONFIG, "--timeout", "nan"], "--timeout"),
    (["record", CONFIG, "--timeout", "inf"], "--timeout"),
    (["record", CONFIG, "--timeout", "1e300"], "--timeout"),
    (["report", "wss", "-i", "{r}", "--address_range", "-1", "100"], "--address_range"),
    (["report", "heats", "-i", "{r}", "--address_range", "0", str(2**64 + 1)], "--address_range"),
    (["report", "heats", "-i", "{r}", "--time_range", "5", "1"], "--time_range"),
    (["validate", "-i", "{r}", "--allow_error", "nan"], "--allow_error"),
])
def test_runaway_option_values_are_one_line(small, tmp_path, capsys, argv, option):
    """Item 10: each has a documented limit; one line naming the option, exit 2, no traceback."""
    argv = [a.replace("{r}", small) for a in argv]
    if argv[0] == "record":
        argv += ["-o", str(tmp_path / "o.data")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err, err


def test_the_end_of_the_address_space_is_a_valid_range_end(small, capsys):
    assert main(["report", "wss", "-i", small, "--address_range", "0", str(2**64)]) == 0


@pytest.mark.parametrize("report", ["raw", "heats", "heatmap", "wss", "nr_regions", "validate"])
@pytest.mark.parametrize("snapshots", [0, 3])
def test_a_record_without_regions_is_one_named_error(tmp_path, capsys, report, snapshots):
    """Item 13: heats crashed, raw said 2, validate 1, wss and nr_regions invented a target 0."""
    builder = RecordBuilder(RecordMeta(sample_us=5000, aggr_us=100000, update_us=1000000))
    for t in range(snapshots):
        builder.add(0, t * 10**8, (t + 1) * 10**8, [], [], [], [])
    path = tmp_path / "empty.data"
    write_record(builder.build(), path)
    argv = ([report] if report == "validate" else ["report", report]) + ["-i", str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"damo: error: {path}: the record holds " + (
        "no snapshots" if snapshots == 0 else f"{snapshots} snapshots but no regions") + ": nothing to report\n"


@pytest.mark.parametrize("region, pattern, problem", [
    ("r, 4096", "r, 0, 4096, 100000000", "weight must be at most 10000"),
    ("r, 18446744073709551616", "r, 0, 4096, 1", "must be at most 70368744177664"),
    ("r, 4096", "r, 0, 100000000000000000000, 1", "stride must be at most"),
    ("r, 70368744177664", "r, 0, 4096, 1", "more than this machine's memory"),
])
def test_masim_dry_run_rejects_what_masim_cannot_run(tmp_path, capsys, region, pattern, problem):
    """Item 11: a weight of 10^8 built a 4 GiB list; 1 TB or 2^64 regions and 10^20 strides passed
    `masim -d` and then crashed the real run."""
    from masim.cli import main as masim_main

    cfg = tmp_path / "c.cfg"
    cfg.write_text(f"{region}\n\np\n1000\n{pattern}\n")
    assert masim_main(["-d", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err and str(cfg) in err


def test_perf_script_counts_stay_with_the_text_when_a_signal_lands_in_append(tmp_path):
    """A Ctrl-C that arrives while a snapshot's text is written is taken after its count, so the
    closing message says what the file holds."""
    import signal as signal_module

    from damo.formats import open_writer, read_record
    from tests.conftest import make_record

    record = make_record(nr_snapshots=6, nr_regions=4, seed=5)
    writer = open_writer(tmp_path / "r.perf", record.meta, "perf_script")
    real_write = writer._file.write
    snaps = list(record.snapshots())

    def write_then_ctrl_c(data):
        done = real_write(data)
        signal_module.raise_signal(signal_module.SIGINT)     # lands after this write returns
        return done

    for snap in snaps[:3]:
        writer.append(snap.target_id, snap.start_ns, snap.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age)
    writer._file.write = write_then_ctrl_c
    snap = snaps[3]
    # Python's own Ctrl-C handler, whatever this process inherited: a test run started in the
    # background by a shell without job control ignores SIGINT, and the Ctrl-C would be lost.
    inherited = signal_module.signal(signal_module.SIGINT, signal_module.default_int_handler)
    try:
        writer.append(snap.target_id, snap.start_ns, snap.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age)
        raise AssertionError("the Ctrl-C was lost")
    except KeyboardInterrupt:
        pass
    finally:
        signal_module.signal(signal_module.SIGINT, inherited)
    writer._file.write = real_write
    writer.close()
    assert writer.nr_snapshots == 4 and writer.nr_regions == 16
    assert read_record(tmp_path / "r.perf").nr_snapshots == 4
