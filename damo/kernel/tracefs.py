"""A private tracefs instance that collects ``damon:damon_aggregated`` events.

The instance (``instances/<name>``) has its own ring buffer and event switches, so the global
trace buffer and other tracers are left alone; removing the directory frees everything.
"""
from __future__ import annotations

import errno
import os
import select
from pathlib import Path

import numpy as np

from damo.errors import DamoError
from damo.formats.perf_script import AggregatedSnapshot, parse_line

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
EVENT = "damon/damon_aggregated"


def find_tracefs(mounts: str = "/proc/mounts") -> Path | None:
    """The tracefs mount point, from /proc/mounts or the usual places."""
    try:
        with open(mounts) as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "tracefs":
                    return Path(fields[1])
    except OSError:
        pass
    for candidate in TRACEFS_CANDIDATES:
        if (candidate / "instances").is_dir():
            return candidate
    return None


def has_damon_event(root: Path | None) -> bool:
    return root is not None and (root / "events" / EVENT).is_dir()


class AggregatedParser:
    """Turns a stream of ``damon_aggregated`` lines (bytes, in any chunking) into snapshots.

    Lines are parsed by the perf_script format's ``parse_line`` and grouped as it groups them:
    one snapshot is ``nr_regions`` consecutive lines of one target (each line has its own
    timestamp, so the count decides, not the time), and its end time is its first line's
    timestamp, as damo takes it. A live pipe can lose lines when its ring buffer overruns;
    that shows as a changed count or as addresses going back, and restarts the snapshot there
    instead of mixing two.
    """

    def __init__(self):
        self._partial = b""
        self._pending: dict[int, tuple[int, int, list]] = {}   # target -> (end_ns, nr_regions, rows)

    def feed(self, data: bytes) -> list[AggregatedSnapshot]:
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return self._parse(data[:cut].splitlines())

    def finish(self) -> list[AggregatedSnapshot]:
        """Parse a last unterminated line; incomplete snapshots are dropped."""
        rest, self._partial = self._partial, b""
        return self._parse([rest] if rest else [])

    def _parse(self, lines: list[bytes]) -> list[AggregatedSnapshot]:
        snapshots = []
        for line in lines:
            fields = parse_line(line)
            if fields is None:
                continue
            end_ns, tid, nr_regions, start, end, nr, age = fields
            pending = self._pending.get(tid)
            if pending and (pending[1] != nr_regions or start < pending[2][-1][1]):
                pending = None
            if pending is None:
                pending = self._pending[tid] = (end_ns, nr_regions, [])
            rows = pending[2]
            rows.append((start, end, nr, age))
            if len(rows) == nr_regions:
                del self._pending[tid]
                addrs = np.array([r[:2] for r in rows], dtype=np.uint64)
                counts = np.array([r[2:] for r in rows], dtype=np.int64)
                snapshots.append(AggregatedSnapshot(tid, pending[0], addrs[:, 0], addrs[:, 1],
                                                    counts[:, 0], counts[:, 1]))
        return snapshots


class TraceInstance:
    """A private tracefs instance with ``damon_aggregated`` enabled; read with ``read``."""

    def __init__(self, root: Path, name: str):
        self.root = root
        self.dir = root / "instances" / name
        self._fd: int | None = None

    def open(self) -> None:
        try:
            self.dir.mkdir()
        except FileExistsError:
            raise DamoError(f"tracefs instance {self.dir} already exists (another damo running?)") from None
        except OSError as err:
            raise DamoError(f"cannot create tracefs instance {self.dir} ({err.strerror})") from None
        try:
            (self.dir / "events" / EVENT / "enable").write_text("1")
            self._fd = os.open(self.dir / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        except OSError as err:
            self.close()
            raise DamoError(f"cannot enable {EVENT} in {self.dir} ({err.strerror})") from None

    def read(self, timeout: float) -> bytes:
        """Whatever the trace pipe has, waiting up to ``timeout`` seconds for something."""
        if self._fd is None:
            return b""
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return b""
        chunks = []
        while True:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError as err:
                if err.errno == errno.EAGAIN:
                    break
                raise
            if not chunk:
                break
            chunks.append(chunk)
            if len(chunk) < 1 << 16:
                break
        return b"".join(chunks)

    def close(self) -> None:
        """Disable the event, close the pipe and remove the instance (idempotent)."""
        try:
            if self.dir.is_dir():
                (self.dir / "events" / EVENT / "enable").write_text("0")
        except OSError:
            pass
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            self.dir.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            pass

    def __enter__(self) -> "TraceInstance":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
