"""Record file formats: detection from content, reading, and (streaming) writing.

Each format module provides ``sniff(head: bytes) -> bool``, ``read(path) -> Record`` and
``Writer(path, meta)`` with ``append``/``flush``/``close``. The native and perf_script writers
stream into the file; damo's JSON formats stream into a native ``<path>.partial`` file and are
converted when the writer closes (see damo/formats/damo_json.py).
"""
from __future__ import annotations

import importlib
import lzma
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol

from damo.errors import DamoError, RecordFileError
from damo.output_path import PRIVATE, create, replace_atomically, rotate

if TYPE_CHECKING:       # numpy and the model load with the format modules, not with the names
    import numpy as np

    from damo.model import Record, RecordMeta

# Order matters for detection: the most specific sniffers come first.
FORMATS: dict[str, str] = {
    "native": "damo.formats.native",
    "json_compressed": "damo.formats.damo_json",
    "json": "damo.formats.damo_json",
    "perf_script": "damo.formats.perf_script",
}
DEFAULT_FORMAT = "native"
SNIFF_BYTES = 4096


class RecordWriter(Protocol):
    def append(self, target_id: int, start_ns: int, end_ns: int, start: np.ndarray, end: np.ndarray,
               nr_accesses: np.ndarray, age: np.ndarray | None = None) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class WriterBase:
    """What every writer shares: use as a context manager, closing on exit."""

    def flush(self) -> None:
        """Nothing to do for formats that cannot be appended to (damo's JSON): they are written on close."""

    def update_meta(self, meta: RecordMeta) -> bool:
        """Record changed metadata (targets found while recording); False where it cannot be kept."""
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _module(fmt: str):
    if fmt not in FORMATS:
        raise DamoError(f"unknown record format '{fmt}' (choose from {', '.join(FORMATS)})")
    return importlib.import_module(FORMATS[fmt])


def detect_format(path: str | os.PathLike) -> str:
    """The format of a record file, judged from its content."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise RecordFileError(path, "no such file (make a record with `damo record zigzag`, the bundled "
                                    "simulator, or name another file with -i)") from None
    except IsADirectoryError:
        raise RecordFileError(path, "is a directory") from None
    except PermissionError:
        raise RecordFileError(path, "permission denied") from None
    if not head:
        raise RecordFileError(path, "empty file")
    for fmt, module_name in FORMATS.items():
        module = importlib.import_module(module_name)
        if module.sniff(head, fmt):
            return fmt
    raise RecordFileError(path, "unknown record format (not native, json, json_compressed nor perf_script)")


def read_record(path: str | os.PathLike, columns: tuple[str, ...] | None = None) -> Record:
    """Read a record file of any supported format.

    ``columns`` names the region columns the caller needs (start, end, nr_accesses, age);
    formats that can skip the others (native) leave them as read-only placeholders.
    """
    fmt = detect_format(path)
    if columns is not None and fmt == "native":
        return _reading(path, fmt, lambda: _module(fmt).read(path, fmt, columns))
    return _reading(path, fmt, lambda: _module(fmt).read(path, fmt))


def read_chunks(path: str | os.PathLike, max_regions: int = 1 << 20) -> tuple[RecordMeta, Iterator[Record]]:
    """The metadata and the record as consecutive pieces of whole snapshots, for streaming.

    The native format is read a stored chunk at a time, so memory is bounded by a chunk; damo's
    formats cannot be read in pieces and are read whole, then handed out ``max_regions`` at a time.
    """
    import numpy as np

    fmt = detect_format(path)
    if fmt == "native":
        from damo.formats import native
        from damo.model import concat_columns

        chunks = native.iter_chunks(path)
        meta = _reading(path, fmt, lambda: next(chunks))

        def pieces() -> Iterator[Record]:
            while True:
                chunk = _reading(path, fmt, lambda: next(chunks, None))
                if chunk is None:
                    return
                yield concat_columns(meta, *chunk)
        return meta, pieces()
    record = read_record(path)

    def slices() -> Iterator[Record]:
        first = 0
        while first < record.nr_snapshots:
            stop = int(np.searchsorted(record.offsets, record.offsets[first] + max_regions, side="right")) - 1
            stop = min(max(stop, first + 1), record.nr_snapshots)
            mask = np.zeros(record.nr_snapshots, dtype=bool)
            mask[first:stop] = True
            yield record.select(mask)
            first = stop
    return record.meta, slices()


def _reading(path, fmt: str, step):
    """Run ``step`` (a read), turning a decoding failure into one RecordFileError line, as read_record does."""
    try:
        return step()
    except DamoError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, OverflowError, UnicodeDecodeError, EOFError,
            AttributeError, RecursionError, zlib.error, lzma.LZMAError, struct.error) as err:
        raise RecordFileError(path, f"corrupt {fmt} record ({type(err).__name__}: {err})") from None
    except MemoryError:
        raise RecordFileError(path, f"corrupt {fmt} record (implausible sizes)") from None


def open_writer(path: str | os.PathLike, meta: RecordMeta, fmt: str = DEFAULT_FORMAT,
                meta_reserve: int = 0) -> RecordWriter:
    """A writer that creates ``path`` with mode 0600 and appends snapshots to it.

    ``meta_reserve`` bytes are kept free for ``update_meta`` (the metadata of targets found
    while recording), in the formats that can rewrite it; the others take it at each call.
    """
    if meta_reserve:
        return _module(fmt).Writer(path, meta, fmt, meta_reserve=meta_reserve)
    return _module(fmt).Writer(path, meta, fmt)


def write_record(record: Record, path: str | os.PathLike, fmt: str = DEFAULT_FORMAT) -> None:
    """Write a whole record in one go: into a temporary file beside ``path``, renamed over it
    when complete, so an existing ``path`` is never half overwritten."""
    module = _module(fmt)
    with replace_atomically(path) as tmp:
        if hasattr(module, "write"):
            module.write(record, tmp, fmt)
            return
        writer = module.Writer(tmp, record.meta, fmt)
        try:
            for snap in record.snapshots():
                writer.append(snap.target_id, snap.start_ns, snap.end_ns, snap.start, snap.end,
                              snap.nr_accesses, snap.age)
        finally:
            writer.close()


def create_private(path: str | os.PathLike, binary: bool = True):
    """A new file at ``path`` with mode 0600 (never through a symlink or into a device)."""
    return create(path, PRIVATE, binary)


def rotate_existing(path: str | os.PathLike) -> None:
    """Rename an existing output file to ``*.old``, as damo does, so nothing is overwritten."""
    rotate(path)
