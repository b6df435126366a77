"""A private tracefs instance that collects ``damon:damon_aggregated`` events.

The instance (``instances/<name>``) has its own ring buffer and event switches, so the global
trace buffer and other tracers are left alone; removing the directory frees everything.
"""
from __future__ import annotations

import errno
import os
import re
import select
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from damo.errors import DamoError

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


# One trace_pipe line: "<task>-<pid> [cpu] <flags> <sec>.<usec>: damon_aggregated: target_id=T
# nr_regions=N S-E: A G". perf script spells the event "damon:damon_aggregated:"; age may be absent
# on old kernels.
AGGREGATED_RE = re.compile(
    rb"(\d+)\.(\d+): (?:damon:)?damon_aggregated: target_id=(\d+) nr_regions=(\d+) "
    rb"(\d+)-(\d+): (\d+)(?: (\d+))?")


@dataclass
class AggregatedSnapshot:
    target_id: int
    end_ns: int
    start: np.ndarray
    end: np.ndarray
    nr_accesses: np.ndarray
    age: np.ndarray


@dataclass
class AggregatedParser:
    """Turns a stream of ``damon_aggregated`` lines into snapshots.

    One snapshot is ``nr_regions`` consecutive lines of one target; each line has its own
    timestamp, so lines are grouped by count, not by time. The snapshot's end time is the
    timestamp of its last line. Feed it bytes in any chunking.
    """

    _partial: bytes = b""
    _pending: dict = field(default_factory=dict)   # target_id -> list of matched tuples

    def feed(self, data: bytes) -> list[AggregatedSnapshot]:
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return self._parse(data[:cut])

    def finish(self) -> list[AggregatedSnapshot]:
        """Parse a last unterminated line; incomplete snapshots are dropped."""
        rest, self._partial = self._partial, b""
        return self._parse(rest)

    def _parse(self, text: bytes) -> list[AggregatedSnapshot]:
        snapshots = []
        for m in AGGREGATED_RE.finditer(text):
            target_id, nr_regions = int(m.group(3)), int(m.group(4))
            pending = self._pending.setdefault(target_id, [])
            # Lost lines (ring buffer overrun) show as a changed count or addresses going back:
            # restart the snapshot there rather than mixing two.
            if pending and (pending[0][1] != nr_regions or int(m.group(5)) < int(pending[-1][4])):
                pending.clear()
            pending.append((m.group(1), nr_regions, m.group(2), m.group(5), m.group(6), m.group(7), m.group(8)))
            if len(pending) == nr_regions:
                snapshots.append(self._snapshot(target_id, pending))
                self._pending[target_id] = []
        return snapshots

    @staticmethod
    def _snapshot(target_id: int, lines: list) -> AggregatedSnapshot:
        sec, frac = lines[-1][0], lines[-1][2]
        end_ns = int(sec) * 1_000_000_000 + int(frac.ljust(9, b"0")[:9])
        # Numbers stay bytes until numpy converts whole columns at once.
        cols = np.array([(s, e, a, g if g is not None else b"-1") for _, _, _, s, e, a, g in lines])
        return AggregatedSnapshot(target_id, end_ns, cols[:, 0].astype(np.uint64), cols[:, 1].astype(np.uint64),
                                  cols[:, 2].astype(np.int64), cols[:, 3].astype(np.int64))


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
