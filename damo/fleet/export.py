"""``damo export parquet``: records into a fleet dataset (see damo.fleet.dataset), streamed.

A record is read a chunk of snapshots at a time (damo.formats.read_chunks) and each chunk becomes
a row group of its files, so memory is bounded by a chunk (for the native format; damo's JSON and
perf_script formats can only be read whole). A record's id is a hash of its file's bytes; its
rows are written to a temporary directory first and then replace whatever an earlier export of
the same record left, wherever its labels had put it, so re-exporting never duplicates rows.
"""
from __future__ import annotations

import glob
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from damo.errors import DamoError
from damo.fleet.dataset import MARKER, SCHEMA_VERSION, TABLES, arrow_schemas, read_marker, write_marker
from damo.formats import detect_format, read_chunks, read_record
from damo.labels import check_label
from damo.model import Record, RecordMeta
from damo.jobs import JOBS_ENV
from damo.report import keep_freed_memory
from damo.wss import wss_per_snapshot

# damo's default sampling interval, assumed for the maximum access rate when a record does not say
# (as report diff does).
DEFAULT_SAMPLE_US = 5000
CHUNK_REGIONS = 1 << 20
ZSTD_LEVEL = 1                       # on bench.synth's regions, level 3 was 6% larger and -1 15% larger
PAGE_BYTES = 8 << 20
# Rows the Parquet writer encodes per step: 64 Ki instead of its 1,024 takes 7% off the encoding
# time of bench.synth's regions, for the same bytes (pyarrow encodes a file's columns on the
# calling thread; export's parallelism is its --jobs processes).
WRITE_BATCH_ROWS = 1 << 16
INT63 = np.uint64(1 << 63)


@dataclass
class ExportResult:
    """What one record became."""

    path: str
    record_id: str
    nr_snapshots: int
    nr_regions: int
    replaced: bool           # an earlier export of the same record was replaced


def record_id(path: str | os.PathLike) -> str:
    """The record's id: the first 16 hex digits of the SHA-256 of its file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()[:16]


def effective_aggr_us(meta: RecordMeta, record: Record | None) -> float:
    """The aggregation interval: the metadata's, else the median snapshot duration (as report diff)."""
    from damo.diff.analysis import effective_aggr_us as from_record

    if meta.aggr_us:
        return float(meta.aggr_us)
    return from_record(record)


class _Tables:
    """The three Parquet files of one record, written a chunk at a time into ``root/TABLE/``.

    Each ``root/TABLE`` directory is later renamed to be the record's directory of that table,
    so staging costs one directory per table (directory operations are slow on some disks).
    """

    def __init__(self, root: Path):
        self.schemas = arrow_schemas()
        self.paths = {t: root / t / "part-0.parquet" for t in TABLES}
        self.writers = {}
        for table in TABLES:
            self.paths[table].parent.mkdir(parents=True)
        for table in ("snapshots", "regions"):
            self.writers[table] = self._open(table, compression="zstd", compression_level=ZSTD_LEVEL,
                                             use_dictionary=_DICTIONARY[table], column_encoding=_ENCODING[table],
                                             data_page_size=PAGE_BYTES, write_batch_size=WRITE_BATCH_ROWS,
                                             write_statistics=True)

    def _open(self, table: str, **options):
        """A writer of the table's file that keeps the schema's key-value metadata, not the Arrow schema.

        The files carry Parquet's own types only: the serialised Arrow schema in each footer would
        add 1 to 3 KiB per file (0.08 bytes per region at 100,000 regions per record), and every
        column's Parquet type reads back as the Arrow type written.
        """
        import pyarrow.parquet as pq

        schema = self.schemas[table]
        writer = pq.ParquetWriter(self.paths[table], schema, store_schema=False, **options)
        # Without the stored Arrow schema, the schema's metadata must be added on its own.
        writer.add_key_value_metadata(schema.metadata)
        return writer

    def write(self, table: str, columns: dict[str, np.ndarray]) -> None:
        import pyarrow as pa

        schema = self.schemas[table]
        arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
        self.writers[table].write_table(pa.Table.from_arrays(arrays, schema=schema))

    def close(self, record_row: dict) -> None:
        import pyarrow as pa

        # One row: compression, dictionaries and statistics would only add to its 20 columns'
        # headers (4.9 KiB with them, 2.4 KiB without).
        self.writers["records"] = self._open("records", compression="none", use_dictionary=False,
                                             write_statistics=False)
        self.writers["records"].write_table(pa.Table.from_pylist([record_row], schema=self.schemas["records"]))
        for writer in self.writers.values():
            writer.close()
        for p in self.paths.values():
            os.chmod(p, 0o600)


# Per column, the encoding that made bench.synth's regions smallest, or as small and faster
# (bench/fleet_profile.py; docs/dataset.md): a dictionary for nr_accesses (few levels),
# DELTA_BINARY_PACKED for age (0.62 bytes per row against 0.65 with a dictionary, 30% faster),
# plain for the rest. The snapshot numbering columns are long runs that zstd removes from plain
# pages as well as a dictionary would; addresses and sizes repeat across snapshots, which zstd
# also finds in plain pages (delta coding made them four times larger).
_DICTIONARY = {
    "snapshots": ["target", "target_id"],
    "regions": ["nr_accesses"],
}
_ENCODING = {
    "snapshots": None,
    "regions": {"age": "DELTA_BINARY_PACKED"},
}


def _signed(values: np.ndarray, path: str) -> np.ndarray:
    """Addresses as int64 (Parquet engines lack unsigned 64-bit integers); DamoError past 2**63."""
    if len(values) and values.max() >= INT63:
        raise DamoError(f"{path}: addresses at or above 2**63 cannot be exported")
    return values.view(np.int64)


class _Chunker:
    """Turns record pieces into rows, numbering snapshots and targets across pieces."""

    def __init__(self, path: str):
        self.path = path
        self.target_order: dict[int, int] = {}
        self.per_target: dict[int, int] = {}
        self.nr_snapshots = 0
        self.nr_regions = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None

    def rows(self, piece: Record) -> tuple[dict, dict]:
        n = piece.nr_snapshots
        target = np.empty(n, dtype=np.int32)
        target_snapshot = np.empty(n, dtype=np.int32)
        for i, tid in enumerate(piece.target_id.tolist()):
            order = self.target_order.setdefault(tid, len(self.target_order))
            target[i] = order
            target_snapshot[i] = self.per_target.get(tid, 0)
            self.per_target[tid] = target_snapshot[i] + 1
        snapshot = np.arange(self.nr_snapshots, self.nr_snapshots + n, dtype=np.int32)
        counts = piece.regions_per_snapshot()
        size = (piece.end - piece.start).astype(np.int64)
        total = np.zeros(n, dtype=np.int64)
        nonempty = np.flatnonzero(counts)
        if len(nonempty):
            total[nonempty] = np.add.reduceat(size, piece.offsets[:-1][nonempty])
        snapshots = {"target": target, "target_id": [str(t) for t in piece.target_id.tolist()],
                     "snapshot": snapshot, "target_snapshot": target_snapshot,
                     "start_ns": piece.start_ns, "end_ns": piece.end_ns, "nr_regions": counts,
                     "wss_bytes": wss_per_snapshot(piece), "total_bytes": total}
        regions = {"target": np.repeat(target, counts), "snapshot": np.repeat(snapshot, counts),
                   "target_snapshot": np.repeat(target_snapshot, counts),
                   "start": _signed(piece.start, self.path), "end": _signed(piece.end, self.path), "size": size,
                   "nr_accesses": piece.nr_accesses, "age": piece.age}
        if n:
            first, last = int(piece.start_ns.min()), int(piece.end_ns.max())
            self.first_ns = first if self.first_ns is None else min(self.first_ns, first)
            self.last_ns = last if self.last_ns is None else max(self.last_ns, last)
        self.nr_snapshots += n
        self.nr_regions += piece.nr_regions_total
        return snapshots, regions


def _partition(meta: RecordMeta, partition_by: list[str], rid: str, path: str) -> str:
    parts = []
    for key in partition_by:
        value = meta.labels.get(key)
        if value is None:
            raise DamoError(f"{path}: no label '{key}' to partition by (record with --label {key}=VALUE)")
        check_label(key, value, where=str(path))
        parts.append(f"{key}={value}")
    return os.path.join(*parts, f"record_id={rid}")


def _existing(out_dir: Path, rid: str, depth: int) -> list[Path]:
    """The directories an earlier export of record ``rid`` left, in every table.

    Record directories sit ``depth`` label levels down, so only the label levels are listed (a
    recursive search would read every record's directory for every record: quadratic time).
    """
    found = []
    for table in TABLES:
        pattern = os.path.join(glob.escape(str(out_dir / table)), *["*"] * depth, f"record_id={rid}")
        found += [Path(p) for p in glob.glob(pattern) if os.path.isdir(p)]
    return found


def export_record(path: str, out_dir: Path, partition_by: list[str],
                  chunk_regions: int = CHUNK_REGIONS) -> ExportResult:
    """Export one record file into the dataset at ``out_dir`` (which must exist, with its marker)."""
    rid = record_id(path)
    fmt = detect_format(path)
    meta, pieces = read_chunks(path, chunk_regions)
    whole = None
    if not meta.aggr_us:
        whole = read_record(path)         # the interval comes from the snapshots' durations
    aggr_us = effective_aggr_us(meta, whole)
    partition = _partition(meta, partition_by, rid, path)
    staging = out_dir / f".staging-{rid}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        tables = _Tables(staging)
        chunker = _Chunker(str(path))
        for piece in pieces:
            snapshots, regions = chunker.rows(piece)
            tables.write("snapshots", snapshots)
            tables.write("regions", regions)
            del snapshots, regions, piece
        tables.close({
            "source": os.path.basename(path), "format": fmt, "target_kind": meta.target_kind,
            "target": meta.target, "sample_us": meta.sample_us, "aggr_us": aggr_us,
            "update_us": meta.update_us, "min_nr_regions": meta.min_nr_regions,
            "max_nr_regions": meta.max_nr_regions, "start_time": meta.start_time,
            "kernel_release": meta.kernel_release, "tool_version": meta.tool_version,
            "labels": list(meta.labels.items()), "nr_targets": len(chunker.target_order),
            "nr_snapshots": chunker.nr_snapshots, "nr_regions": chunker.nr_regions,
            "first_ns": chunker.first_ns, "last_ns": chunker.last_ns,
            "max_access_hz": 1e6 / (meta.sample_us or DEFAULT_SAMPLE_US), "schema_version": SCHEMA_VERSION})
        old = _existing(out_dir, rid, len(partition_by))
        for p in old:
            shutil.rmtree(p)
        for table in TABLES:
            dest = out_dir / table / partition
            dest.parent.mkdir(parents=True, exist_ok=True)
            (staging / table).rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(str(path), rid, chunker.nr_snapshots, chunker.nr_regions, bool(old))


def prepare(out_dir: str | os.PathLike, partition_by: list[str]) -> Path:
    """Create the dataset directory (or check an existing one has the same partitioning)."""
    out = Path(out_dir)
    for key in partition_by:
        check_label(key, "x", where="--partition_by")
        if key == "record_id":
            raise DamoError("--partition_by: record_id is always the last partition; name labels only")
    if (out / MARKER).exists():
        marker = read_marker(out)
        if marker.get("schema_version") != SCHEMA_VERSION:
            raise DamoError(f"{out}: dataset schema version {marker.get('schema_version')} differs from this "
                            f"damo's ({SCHEMA_VERSION}); export into a new directory")
        if marker.get("partition_by", []) != list(partition_by):
            raise DamoError(f"{out}: the dataset is partitioned by {marker.get('partition_by', [])}, not "
                            f"{list(partition_by)}; use the same --partition_by or a new directory")
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DamoError(f"{out}: exists and is not a damo dataset; name a new or empty directory")
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, list(partition_by))
    return out


def _init_worker() -> None:
    """A --jobs worker: keep freed memory, and read each record in this one process (the workers
    already use the CPUs; the reader's own second process would only compete with them)."""
    keep_freed_memory()
    os.environ[JOBS_ENV] = "1"


def _export_one(path: str, out: Path, partition_by: list[str], chunk_regions: int) -> ExportResult | str:
    """export_record in a worker process: a DamoError comes back as its message (it may not pickle)."""
    try:
        return export_record(path, out, partition_by, chunk_regions)
    except DamoError as err:
        return str(err)


def export_records(paths: Iterable[str], out_dir: str | os.PathLike, partition_by: list[str] = (),
                   chunk_regions: int = CHUNK_REGIONS,
                   on_record: Callable[[ExportResult], None] | None = None, jobs: int = 1) -> list[ExportResult]:
    """Export record files into the dataset at ``out_dir``, creating it if needed.

    ``jobs`` records are exported at once, each in its own process (1: in this process). Results
    come back in the order of ``paths``; ``on_record`` is called as each record is done.
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise DamoError("export parquet needs pyarrow: pip install pyarrow") from None
    if jobs < 1:
        raise DamoError("--jobs must be at least 1")
    out = prepare(out_dir, list(partition_by))
    # Each record allocates and frees a few MB of numpy temporaries; glibc's default of handing
    # them back to the kernel made page faults a quarter of export's CPU time (bench.fleet_scale).
    keep_freed_memory()
    # The same file named twice would race with itself between workers.
    paths = list(dict.fromkeys(os.path.realpath(p) for p in paths))
    if jobs == 1 or len(paths) == 1:
        results = []
        for path in paths:
            results.append(export_record(path, out, list(partition_by), chunk_regions))
            if on_record:
                on_record(results[-1])
        return results
    from concurrent.futures import ProcessPoolExecutor, as_completed

    done: dict[str, ExportResult] = {}
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), initializer=_init_worker) as pool:
        futures = {pool.submit(_export_one, p, out, list(partition_by), chunk_regions): p for p in paths}
        for future in as_completed(futures):
            result = future.result()
            if isinstance(result, str):
                for other in futures:
                    other.cancel()
                raise DamoError(result)
            done[futures[future]] = result
            if on_record:
                on_record(result)
    return [done[p] for p in paths]
