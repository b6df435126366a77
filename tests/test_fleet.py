"""Labels, damo export parquet and damo fleet (DuckDB; Spark in test_fleet_spark.py).

Fleet numbers are checked against the per-record reports' own output (report wss --raw_number,
report diff --json), and the dataset against the records it was exported from, read back with
pyarrow.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed")
pytest.importorskip("duckdb", reason="duckdb is not installed")

from damo.cli import main  # noqa: E402
from damo.diff.analysis import effective_aggr_us  # noqa: E402
from damo.fleet.dataset import MARKER, SCHEMA_VERSION, arrow_schemas  # noqa: E402
from damo.fleet.engines import DuckDBEngine  # noqa: E402
from damo.fleet.export import export_records  # noqa: E402
from damo.fleet.queries import SummaryOptions  # noqa: E402
from damo.fleet.summary import summary  # noqa: E402
from damo.formats import read_record, write_record  # noqa: E402
from tests.conftest import REPO, make_record  # noqa: E402

FORMATS = ("native", "json_compressed", "perf_script")
LABELS = {"service": "web", "host": "h1"}


def labelled(record, **labels):
    record.meta.labels = dict(LABELS, **labels)
    return record


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory) -> Path:
    """One multi-target record in each format, and a single-target native one."""
    d = tmp_path_factory.mktemp("records")
    multi = labelled(make_record(nr_snapshots=40, nr_regions=50, seed=3, nr_targets=2))
    for fmt in FORMATS:
        write_record(multi, d / f"multi.{fmt}", fmt)
    write_record(labelled(make_record(nr_snapshots=45, nr_regions=30, seed=4), host="h2"), d / "single.native")
    return d


def read_table(dataset: Path, table: str, record_id: str):
    files = list((dataset / table).glob(f"**/record_id={record_id}/*.parquet"))
    assert len(files) == 1, files
    return pq.read_table(files[0])


def regions_in(dataset: Path) -> int:
    return sum(pq.read_metadata(f).num_rows for f in (dataset / "regions").glob("**/*.parquet"))


# --- labels -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_labels_are_kept_in_every_format(records_dir, fmt):
    assert read_record(records_dir / f"multi.{fmt}").meta.labels == LABELS


def test_record_gets_default_and_given_labels(tmp_path, capsys):
    out = tmp_path / "r.data"
    assert main(["record", str(REPO / "masim/configs/zigzag.cfg"), "--timeout", "0.5", "-o", str(out),
                 "--label", "service=web", "--label", "host=web-1"]) == 0
    labels = read_record(out).meta.labels
    assert labels["service"] == "web" and labels["host"] == "web-1"     # a given label wins over the default
    assert labels["kernel"] == os.uname().release
    assert labels["damo_version"] and set(labels) == {"service", "host", "kernel", "damo_version"}


@pytest.mark.parametrize("argv, message", [
    (["record", "x.cfg", "--label", "service"], "--label: 'service' is not KEY=VALUE"),
    (["record", "x.cfg", "--label", "ser vice=web"], "bad label key 'ser vice'"),
    (["record", "x.cfg", "--label", "service=a/b"], "bad value 'a/b' of label 'service'"),
])
def test_bad_labels_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


# --- export --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_export_round_trip_equals_the_record(records_dir, tmp_path, fmt):
    path = records_dir / f"multi.{fmt}"
    record = read_record(path)
    # Small pieces, so a record spans several row groups however it is stored.
    [result] = export_records([str(path)], tmp_path / "ds", ["service", "host"], chunk_regions=700)
    assert (result.nr_snapshots, result.nr_regions) == (record.nr_snapshots, record.nr_regions_total)
    ds = tmp_path / "ds"
    assert list((ds / "regions").glob(f"service=web/host=h1/record_id={result.record_id}/part-0.parquet"))
    regions = read_table(ds, "regions", result.record_id)
    assert pq.ParquetFile(next((ds / "regions").glob("**/*.parquet"))).metadata.row_group(0).column(3) \
        .compression == "ZSTD"
    snaps = read_table(ds, "snapshots", result.record_id)
    recs = read_table(ds, "records", result.record_id)
    # Parquet's own types read back as the schema's Arrow types; the version is in every footer.
    for table, schema in arrow_schemas().items():
        [f] = (ds / table).glob(f"**/record_id={result.record_id}/*.parquet")
        assert pq.read_schema(f).remove_metadata().equals(schema.remove_metadata())
        assert pq.read_metadata(f).metadata == {b"damo.schema_version": str(SCHEMA_VERSION).encode()}

    assert np.array_equal(regions["start"].to_numpy().view(np.uint64), record.start)
    assert np.array_equal(regions["end"].to_numpy().view(np.uint64), record.end)
    assert np.array_equal(regions["size"].to_numpy(), (record.end - record.start).astype(np.int64))
    assert np.array_equal(regions["nr_accesses"].to_numpy(), record.nr_accesses)
    assert np.array_equal(regions["age"].to_numpy(), record.age)
    assert np.array_equal(regions["snapshot"].to_numpy(), record.snapshot_index())
    # perf_script says no intervals: the aggregation interval is report diff's, from the durations
    aggr_us = effective_aggr_us(record)
    assert recs["aggr_us"].to_pylist() == [aggr_us]
    # The files hold what cannot be derived; the regions view adds the rate and the age in seconds.
    assert regions.column_names == ["target", "snapshot", "target_snapshot", "start", "end", "size",
                                    "nr_accesses", "age"]
    engine = DuckDBEngine(str(ds))
    derived = engine.run(f"SELECT access_hz, age_s FROM regions WHERE record_id = '{result.record_id}' "
                         "ORDER BY snapshot, start").rows
    engine.close()
    access_hz = np.array([row[0] for row in derived])
    age_s = np.array([np.nan if row[1] is None else row[1] for row in derived])
    assert np.array_equal(access_hz, record.nr_accesses * (1e6 / aggr_us))
    assert np.array_equal(np.isnan(age_s), record.age < 0)
    assert np.array_equal(age_s[record.age >= 0], record.age[record.age >= 0] * (aggr_us / 1e6))

    order = {tid: i for i, tid in enumerate(record.target_ids())}
    assert len(order) == 2
    assert snaps["target"].to_pylist() == [order[int(t)] for t in record.target_id]
    assert snaps["target_id"].to_pylist() == [str(t) for t in record.target_id.tolist()]
    assert np.array_equal(snaps["start_ns"].to_numpy(), record.start_ns)
    assert np.array_equal(snaps["end_ns"].to_numpy(), record.end_ns)
    assert np.array_equal(snaps["nr_regions"].to_numpy(), record.regions_per_snapshot())
    # target_snapshot: the snapshot's position among its target's snapshots
    per_target = [list(record.target_id[:i]).count(t) for i, t in enumerate(record.target_id)]
    assert snaps["target_snapshot"].to_pylist() == per_target
    assert np.array_equal(regions["target_snapshot"].to_numpy(), np.repeat(per_target, record.regions_per_snapshot()))

    row = recs.to_pylist()[0]
    assert dict(row["labels"]) == LABELS
    assert (row["format"], row["nr_snapshots"], row["nr_regions"], row["nr_targets"]) == (
        fmt, record.nr_snapshots, record.nr_regions_total, 2)
    assert row["sample_us"] == record.meta.sample_us
    for f in (ds / "regions").glob("**/*.parquet"):
        assert f.stat().st_mode & 0o777 == 0o600


def test_native_export_streams_chunk_by_chunk(tmp_path, monkeypatch):
    """A native record is exported one stored chunk at a time: each becomes one row group."""
    from damo.formats import native

    monkeypatch.setattr(native, "FLUSH_REGIONS", 400)
    path = tmp_path / "r.native"
    write_record(labelled(make_record(nr_snapshots=40, nr_regions=50)), path)
    nr_chunks = sum(1 for _ in native.iter_chunks(path)) - 1
    assert nr_chunks == 5
    [result] = export_records([str(path)], tmp_path / "ds")
    files = list((tmp_path / "ds" / "regions").glob("**/*.parquet"))
    assert pq.ParquetFile(files[0]).metadata.num_row_groups == nr_chunks


def test_reexport_replaces_and_never_duplicates(records_dir, tmp_path):
    ds = tmp_path / "ds"
    paths = [str(records_dir / "multi.native"), str(records_dir / "single.native")]
    first = export_records(paths, ds, ["host"])
    total = regions_in(ds)
    assert total == sum(r.nr_regions for r in first)
    again = export_records(paths[:1], ds, ["host"])
    assert again[0].replaced and again[0].record_id == first[0].record_id
    assert regions_in(ds) == total
    assert len(list((ds / "records").glob("**/*.parquet"))) == 2
    assert not [p for p in ds.iterdir() if p.name.startswith(".staging")]


def test_parallel_export_writes_what_a_serial_one_does(records_dir, tmp_path, capsys):
    paths = [str(records_dir / n) for n in ("multi.native", "single.native", "multi.perf_script")]
    serial = export_records(paths, tmp_path / "serial")
    assert main(["export", "parquet", "-i", *paths, "-o", str(tmp_path / "parallel"), "--jobs", "2"]) == 0
    assert "exported 3 records" in capsys.readouterr().err
    for table in ("records", "snapshots", "regions"):
        for result in serial:
            assert read_table(tmp_path / "parallel", table, result.record_id).equals(
                read_table(tmp_path / "serial", table, result.record_id))
    # a bad record in a worker is one line, as in a serial export
    (tmp_path / "bad.data").write_bytes(b"not a record")
    err = bad(["export", "parquet", "-i", paths[0], str(tmp_path / "bad.data"), "-o", str(tmp_path / "parallel"),
               "--jobs", "2"], capsys)
    assert "bad.data: unknown record format" in err


# --- fleet numbers against the per-record reports ----------------------------------------------

def report_wss(path, capsys) -> list[int]:
    assert main(["report", "wss", "-i", str(path), "--raw_number"]) == 0
    out = capsys.readouterr().out
    return [int(line.split()[1]) for line in out.splitlines() if line and not line.startswith("#")]


def report_diff_metrics(path, capsys) -> dict[str, float]:
    assert main(["report", "diff", str(path), str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    return {k: v["base"]["values"][0] for k, v in doc["metrics"].items()}


def half_up(x: float) -> int:
    return math.floor(x + 0.5)


def test_fleet_numbers_equal_report_wss_and_report_diff(records_dir, tmp_path, capsys):
    paths = [records_dir / "multi.native", records_dir / "single.native", records_dir / "multi.perf_script"]
    results = export_records([str(p) for p in paths], tmp_path / "ds")
    engine = DuckDBEngine(str(tmp_path / "ds"))
    rows = summary(engine, SummaryOptions(by=["record"]))
    by_id = {row[0]: dict(zip(rows.columns, row)) for row in rows.rows}
    assert len(by_id) == 3
    for path, result in zip(paths, results):
        got = by_id[result.record_id]
        assert [got[f"wss_p{p}"] for p in (0, 25, 50, 75, 100)] == report_wss(path, capsys)
        metrics = report_diff_metrics(path, capsys)
        for name in ("hot_bytes", "warm_bytes", "cold_bytes"):
            assert got[name] == half_up(metrics[name]), (path, name)
        assert got["wss_avg"] == metrics["wss.avg"]
    engine.close()


def test_idle_tail_is_bytes_not_accessed_for_long_enough(tmp_path):
    record = labelled(make_record(nr_snapshots=30, nr_regions=20))
    path = tmp_path / "r.native"
    write_record(record, path)
    export_records([str(path)], tmp_path / "ds")
    engine = DuckDBEngine(str(tmp_path / "ds"))
    [row] = summary(engine, SummaryOptions(idle_s=5.0, exclude_samples=10)).rows
    kept = record.select(np.arange(record.nr_snapshots) >= 10)
    idle = (kept.nr_accesses == 0) & (kept.age * 0.1 >= 5.0)
    expected = (kept.end - kept.start)[idle].astype(np.int64).sum() / kept.nr_snapshots
    assert row[-1] == half_up(expected) and row[-1] > 0
    engine.close()


# --- summaries over simulator records ---------------------------------------------------------

@pytest.fixture(scope="module")
def sim_dataset(tmp_path_factory) -> Path:
    """20 simulator records: zigzag and stairs configs x 10 seeds, labelled so, exported."""
    d = tmp_path_factory.mktemp("sim")
    paths = []
    for config in ("zigzag", "stairs"):
        for seed in range(10):
            out = d / f"{config}-{seed}.data"
            assert main(["record", str(REPO / f"masim/configs/{config}.cfg"), "--timeout", "4", "--seed", str(seed),
                         "-o", str(out), "--label", f"config={config}", "--label", f"seed={seed}"]) == 0
            paths.append(str(out))
    export_records(paths, d / "ds", ["config"])
    return d / "ds"


def test_summary_groups_differ_as_the_configs_do(sim_dataset, capsys):
    assert main(["fleet", "summary", str(sim_dataset), "--by", "config", "--json"]) == 0
    groups = {g["config"]: g for g in json.loads(capsys.readouterr().out)}
    assert set(groups) == {"zigzag", "stairs"}
    zigzag, stairs = groups["zigzag"], groups["stairs"]
    assert zigzag["nr_records"] == stairs["nr_records"] == 10
    assert zigzag["nr_snapshots"] == stairs["nr_snapshots"] == 10 * 20
    # Both configs start with 10 s touching all their regions: 2 x 100 MB (zigzag), 10 x 10 MB (stairs).
    for group, truth in ((zigzag, 200e6), (stairs, 100e6)):
        for p in (0, 50, 100):
            assert 0.95 * truth <= group[f"wss_p{p}"] <= 1.05 * truth, (group, p)
    assert zigzag["warm_bytes"] + zigzag["hot_bytes"] > 1.8 * (stairs["warm_bytes"] + stairs["hot_bytes"])
    # grouped by both labels, every record is its own group, numbered as the seeds are
    assert main(["fleet", "summary", str(sim_dataset), "--by", "config", "--by", "seed", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("config,seed,nr_records,nr_snapshots,wss_p0")
    assert len(lines) == 21 and all(",1,20," in line for line in lines[1:])


def test_summary_text_and_query(sim_dataset, capsys):
    assert main(["fleet", "summary", str(sim_dataset), "--by", "config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["config", "nr_records", "nr_snapshots", "wss_p0"]
    assert [line.split()[0] for line in lines[1:]] == ["stairs", "zigzag"]
    assert "MiB" in lines[1]
    assert main(["fleet", "query", str(sim_dataset),
                 "SELECT config, count(*) AS n FROM records GROUP BY config ORDER BY config", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["config,n", "stairs,10", "zigzag,10"]
    # a glob of dataset directories is one dataset
    assert main(["fleet", "query", str(sim_dataset).rstrip("/") + "*", "SELECT count(*) AS n FROM records"]) == 0
    assert capsys.readouterr().out.split() == ["n", "20"]
    # the regions view is the stored rows, each once, with the derived columns added
    assert main(["fleet", "query", str(sim_dataset), "SELECT (SELECT count(*) FROM regions) AS n, "
                 "(SELECT count(*) FROM stored_regions) AS stored, (SELECT sum(nr_regions) FROM records) AS meta",
                 "--csv"]) == 0
    header, values = capsys.readouterr().out.splitlines()
    n, stored, meta = map(int, values.split(","))
    assert header == "n,stored,meta" and n == stored == meta > 0


# --- bad input ---------------------------------------------------------------------------------------

def bad(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_input_is_one_line(records_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "not a damo dataset" in bad(["fleet", "summary", str(tmp_path / "empty")], capsys)
    assert "no such dataset directory" in bad(["fleet", "summary", str(tmp_path / "nope")], capsys)
    ds = tmp_path / "ds"
    export_records([str(records_dir / "single.native")], ds)
    assert "Referenced column \"nope\" not found" in bad(
        ["fleet", "query", str(ds), "SELECT nope FROM regions"], capsys)
    marker = json.loads((ds / MARKER).read_text())
    (ds / MARKER).write_text(json.dumps(dict(marker, schema_version=99)))
    assert "schema version 99 is newer" in bad(["fleet", "summary", str(ds)], capsys)
    (ds / MARKER).write_text(json.dumps(dict(marker, schema_version=1)))
    assert "schema version 1 is older than this damo reads (2); export the records again" in bad(
        ["fleet", "summary", str(ds)], capsys)
    assert "no label 'rack'" in bad(["export", "parquet", "-i", str(records_dir / "single.native"), "-o",
                                     str(tmp_path / "ds2"), "--partition_by", "rack"], capsys)
    assert "not a damo dataset" in bad(["export", "parquet", "-i", str(records_dir / "single.native"),
                                        "-o", str(records_dir)], capsys)


@pytest.mark.interop
@pytest.mark.parametrize("fmt", ["json_compressed", "perf_script"])
def test_damo_reads_labelled_records_as_unlabelled_ones(tmp_path, fmt):
    """The labels ride where damo ignores them: its report of a labelled file is unchanged."""
    from tests.reports_support import peer_or_skip
    import subprocess

    damo = peer_or_skip("3.4.3")
    outputs = []
    for labels in ({}, LABELS):
        record = make_record(nr_snapshots=30, nr_regions=20)
        record.meta.labels = dict(labels)
        path = tmp_path / f"{len(labels)}.{fmt}"
        write_record(record, path, fmt)
        done = subprocess.run([*damo, "report", "wss", "-i", str(path), "--raw_number"], capture_output=True,
                              text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and "# <percentile> <wss>" in outputs[0]
    assert read_record(tmp_path / f"2.{fmt}").meta.labels == LABELS
