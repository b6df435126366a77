"""The fleet dataset: a directory of hive-partitioned Parquet tables, with a versioned schema.

Layout (docs/dataset.md documents every column)::

    DIR/_damo_dataset.json                       {"schema_version": 2, "partition_by": [...]}
    DIR/records/KEY=VALUE/.../record_id=ID/part-0.parquet
    DIR/snapshots/KEY=VALUE/.../record_id=ID/part-0.parquet
    DIR/regions/KEY=VALUE/.../record_id=ID/part-0.parquet

The partition columns (the labels picked at export, then ``record_id``) live in the directory
names only, as hive partitioning has it; every engine adds them back as string columns.
The regions files store what cannot be derived; the access rate in Hz and the age in seconds
come from each record's aggregation interval and are columns of the ``regions`` view
(damo.fleet.queries.REGIONS_VIEW), not of the files.
"""
from __future__ import annotations

import glob
import json
import os
from pathlib import Path

from damo.errors import DamoError

SCHEMA_VERSION = 2
# Version 1 stored access_hz and age_s in the regions files (a third of their bytes and half the
# export time); its datasets are refused with a request to export again.
OLDEST_SCHEMA_VERSION = 2
MARKER = "_damo_dataset.json"
TABLES = ("records", "snapshots", "regions")
# Characters that make a dataset argument a glob of dataset directories.
GLOB_CHARS = "*?["


def arrow_schemas() -> dict:
    """The Arrow schema of each table's files (partition columns excluded)."""
    import pyarrow as pa

    i32, i64, f64, s = pa.int32(), pa.int64(), pa.float64(), pa.string()
    meta = {b"damo.schema_version": str(SCHEMA_VERSION).encode()}
    return {
        "records": pa.schema([
            ("source", s), ("format", s), ("target_kind", s), ("target", s),
            ("sample_us", i64), ("aggr_us", f64), ("update_us", i64),
            ("min_nr_regions", i64), ("max_nr_regions", i64), ("start_time", f64),
            ("kernel_release", s), ("tool_version", s), ("labels", pa.map_(s, s)),
            ("nr_targets", i32), ("nr_snapshots", i64), ("nr_regions", i64),
            ("first_ns", i64), ("last_ns", i64), ("max_access_hz", f64), ("schema_version", i32),
        ], metadata=meta),
        "snapshots": pa.schema([
            ("target", i32), ("target_id", s), ("snapshot", i32), ("target_snapshot", i32),
            ("start_ns", i64), ("end_ns", i64), ("nr_regions", i64), ("wss_bytes", i64), ("total_bytes", i64),
        ], metadata=meta),
        "regions": pa.schema([
            ("target", i32), ("snapshot", i32), ("target_snapshot", i32),
            ("start", i64), ("end", i64), ("size", i64), ("nr_accesses", i64), ("age", i64),
        ], metadata=meta),
    }


def read_marker(directory: str | os.PathLike) -> dict:
    """The dataset's description; one-line DamoError if ``directory`` is not a dataset we can read."""
    path = Path(directory) / MARKER
    if not Path(directory).is_dir():
        raise DamoError(f"{directory}: no such dataset directory")
    try:
        marker = json.loads(path.read_text())
    except FileNotFoundError:
        raise DamoError(f"{directory}: not a damo dataset (no {MARKER}; create one with damo export parquet)") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise DamoError(f"{path}: corrupt dataset description ({err})") from None
    version = marker.get("schema_version") if isinstance(marker, dict) else None
    if not isinstance(version, int):
        raise DamoError(f"{path}: corrupt dataset description (no schema_version)")
    if version > SCHEMA_VERSION:
        raise DamoError(f"{directory}: dataset schema version {version} is newer than this damo reads "
                        f"({SCHEMA_VERSION}); upgrade damo")
    if version < OLDEST_SCHEMA_VERSION:
        raise DamoError(f"{directory}: dataset schema version {version} is older than this damo reads "
                        f"({SCHEMA_VERSION}); export the records again into a new directory")
    partition_by = marker.get("partition_by", [])
    if not isinstance(partition_by, list) or not all(isinstance(k, str) for k in partition_by):
        raise DamoError(f"{path}: corrupt dataset description (bad partition_by)")
    return marker


def write_marker(directory: str | os.PathLike, partition_by: list[str]) -> None:
    path = Path(directory) / MARKER
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"format": "damo-fleet-dataset", "schema_version": SCHEMA_VERSION,
                               "partition_by": list(partition_by)}, indent=2) + "\n")
    tmp.replace(path)


def resolve(spec: str) -> list[str]:
    """The dataset directories named by ``spec``: a directory, or a glob of them. Each is checked."""
    if any(c in spec for c in GLOB_CHARS):
        dirs = sorted(d for d in glob.glob(spec) if os.path.isdir(d))
        if not dirs:
            raise DamoError(f"{spec}: no dataset directory matches")
    else:
        dirs = [spec]
    partitions = None
    for d in dirs:
        marker = read_marker(d)
        if partitions is not None and marker.get("partition_by", []) != partitions:
            raise DamoError(f"{d}: partitioned by {marker.get('partition_by')}, unlike {dirs[0]} "
                            f"({partitions}); query them separately")
        partitions = marker.get("partition_by", [])
    return dirs


def table_files(directories: list[str], table: str) -> list[str]:
    """Every Parquet file of ``table`` in the datasets; DamoError if there is none."""
    files = []
    for d in directories:
        files += sorted(glob.glob(os.path.join(glob.escape(d), table, "**", "*.parquet"), recursive=True))
    if not files:
        raise DamoError(f"{', '.join(directories)}: the dataset has no {table} (export records into it first)")
    return files
