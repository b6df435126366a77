"""The engines that run fleet SQL: DuckDB embedded (the default) and Spark (pyspark).

Each adapter does only what differs between the engines: how the dataset's files become views,
how a query runs and how its errors read. The queries themselves (damo.fleet.queries), the
``regions`` view over the stored region rows included, are one SQL text for both.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from damo.errors import DamoError
from damo.fleet.dataset import TABLES, resolve, table_files
from damo.fleet.queries import REGIONS_VIEW, STORED_REGIONS

ENGINES = ("duckdb", "spark")
DEFAULT_SPARK_MASTER = "local[2]"


@dataclass
class Result:
    """A query's column names and rows (Python values)."""

    columns: list[str]
    rows: list[tuple]


class DuckDBEngine:
    """DuckDB in this process; the tables are views over the Parquet files, read in place."""

    name = "duckdb"

    def __init__(self, dataset: str, threads: int | None = None):
        try:
            import duckdb
        except ImportError:
            raise DamoError("the duckdb engine needs duckdb: pip install duckdb") from None
        self._duckdb = duckdb
        self.con = duckdb.connect(":memory:")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        dirs = resolve(dataset)
        for table in TABLES:
            files = ", ".join("'" + f.replace("'", "''") + "'" for f in table_files(dirs, table))
            # Partition values stay strings (a label like 1.10 must not become the number 1.1).
            # Every file of a table has the same schema (resolve admits SCHEMA_VERSION only), so
            # the view takes the first file's: union_by_name would open all of them to bind the
            # view (1.5 s of CPU and 2 to 5 s of wall time over bench.fleet_scale's 3,000 files).
            self.con.execute(f"CREATE VIEW {_stored(table)} AS SELECT * FROM read_parquet([{files}], "
                             f"hive_partitioning = true, hive_types_autocast = false)")
        self.con.execute(f"CREATE VIEW regions AS {REGIONS_VIEW}")

    def run(self, sql: str) -> Result:
        try:
            cur = self.con.execute(sql)
            columns = [d[0] for d in cur.description]
            return Result(columns, cur.fetchall())
        except self._duckdb.Error as err:
            raise DamoError(f"query failed: {_first_line(err)}") from None

    def close(self) -> None:
        self.con.close()


class SparkEngine:
    """Spark SQL through pyspark: ``local[2]`` by default, or any master URL (a cluster)."""

    name = "spark"

    def __init__(self, dataset: str, master: str = DEFAULT_SPARK_MASTER, session=None):
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise DamoError("the spark engine needs pyspark (and Java): pip install 'damo-profiler[spark]'") from None
        dirs = resolve(dataset)
        session = session or SparkSession.getActiveSession()
        # A session this engine started is stopped with it; one that was running is left running.
        self.own_session = session is None
        if session is None:
            session = (SparkSession.builder.master(master).appName("damo fleet")
                       .config("spark.ui.enabled", "false")
                       .config("spark.ui.showConsoleProgress", "false")
                       .config("spark.sql.shuffle.partitions", "4")
                       .getOrCreate())
            session.sparkContext.setLogLevel("ERROR")
        self.spark = session
        # Partition values stay strings, as with DuckDB.
        self.spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        for table in TABLES:
            table_files(dirs, table)            # a clear error for a dataset without the table
            paths = [f"{d}/{table}" for d in dirs]
            frame = self.spark.read.parquet(*paths)
            frame.createOrReplaceTempView(_stored(table))
        self.spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW regions AS {REGIONS_VIEW}")

    def run(self, sql: str) -> Result:
        from pyspark.errors import PySparkException

        # pyspark logs a failed query's context to stderr itself; the error line below says it once.
        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
            logging.getLogger(name).disabled = True
        try:
            frame = self.spark.sql(sql)
            return Result(list(frame.columns), [tuple(row) for row in frame.collect()])
        except PySparkException as err:
            raise DamoError(f"query failed: {_first_line(err)}") from None

    def close(self) -> None:
        if self.own_session:
            self.spark.stop()


def _stored(table: str) -> str:
    """The view over a table's files: the table itself, except regions (whose view adds columns)."""
    return STORED_REGIONS if table == "regions" else table


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def open_engine(name: str, dataset: str, master: str | None = None):
    """An engine over the dataset directory (or glob of them) ``dataset``."""
    if name == "duckdb":
        return DuckDBEngine(dataset)
    if name == "spark":
        return SparkEngine(dataset, master or DEFAULT_SPARK_MASTER)
    raise DamoError(f"--engine: unknown engine '{name}' (choose from {', '.join(ENGINES)})")
