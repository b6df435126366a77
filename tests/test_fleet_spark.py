"""The fleet's canned queries on Spark (local mode, 2 cores) give DuckDB's numbers exactly.

Needs the [spark] extra and Java; elsewhere it skips, naming what is missing (CI installs both,
see .ci/run, and there it must run). One SparkSession serves the whole module.
"""
from __future__ import annotations

import os
import shutil

import pytest

from damo.cli import main
from damo.fleet.engines import DuckDBEngine, SparkEngine
from damo.fleet.export import export_records
from damo.fleet.queries import SummaryOptions
from damo.fleet.summary import summary
from damo.formats import write_record
from tests.conftest import make_record

pytestmark = pytest.mark.spark
IN_CI = os.environ.get("CI") == "true"


def _missing() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install -c constraints.txt -e '.[test,spark]')"
    if not shutil.which("java"):
        return "java is not installed (apt-get install default-jre-headless)"
    return None


@pytest.fixture(scope="module")
def spark():
    missing = _missing()
    if missing:
        if IN_CI:
            pytest.fail(f"CI must run the Spark test: {missing}")
        pytest.skip(missing)
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("damo fleet tests")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "2")
               # Small queries: the quick JIT and a serial GC start and warm up in half the CPU time.
               .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Six records over two services, one of them with two targets, one in perf_script."""
    d = tmp_path_factory.mktemp("spark")
    paths = []
    for i in range(6):
        record = make_record(nr_snapshots=35 + i, nr_regions=40, seed=10 + i, nr_targets=2 if i == 0 else 1)
        record.meta.labels = {"service": "web" if i % 2 else "db", "host": f"h{i}"}
        fmt = "perf_script" if i == 1 else "native"
        path = d / f"r{i}.{fmt}"
        write_record(record, path, fmt)
        paths.append(str(path))
    export_records(paths, d / "ds", ["service"])
    return str(d / "ds")


@pytest.mark.parametrize("options", [
    SummaryOptions(by=["record"], exclude_samples=5, percentiles=(0, 1, 10, 25, 33, 50, 75, 90, 99, 100)),
    SummaryOptions(by=["service", "host"], idle_s=2.0),
], ids=["by-record", "by-two-labels"])
def test_spark_summary_equals_duckdb_exactly(spark, dataset, options):
    duck = DuckDBEngine(dataset)
    expected = summary(duck, options)
    duck.close()
    got = summary(SparkEngine(dataset, session=spark), options)
    assert got.columns == expected.columns
    assert len(got.rows) == len(expected.rows) >= 1
    assert got.rows == expected.rows          # every number, floats included, to the last bit


def test_spark_query_and_cli(spark, dataset, capsys):
    sql = "SELECT service, count(*) AS n, sum(size) AS bytes FROM regions GROUP BY service ORDER BY service"
    # the regions view's derived columns, row by row
    derived = ("SELECT record_id, snapshot, start, access_hz, age_s FROM regions "
               "ORDER BY record_id, snapshot, start")
    duck = DuckDBEngine(dataset)
    engine = SparkEngine(dataset, session=spark)
    assert engine.run(sql).rows == duck.run(sql).rows
    rows = duck.run(derived).rows
    assert engine.run(derived).rows == rows
    assert any(row[3] > 0 for row in rows) and any(row[4] > 0 for row in rows)
    duck.close()
    # the command line's --engine spark (it joins the running session rather than start another)
    assert main(["fleet", "query", dataset, "SELECT count(*) AS n FROM records", "--engine", "spark", "--csv"]) == 0
    assert capsys.readouterr().out.split() == ["n", "6"]
    assert main(["fleet", "query", dataset, "SELECT nope FROM records", "--engine", "spark"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err
