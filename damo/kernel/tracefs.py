"""A private tracefs instance that collects ``damon:damon_aggregated`` events.

The instance (``instances/<name>``) has its own ring buffer and event switches, so the global
trace buffer and other tracers are left alone; removing the directory frees everything.
"""
from __future__ import annotations

import errno
import os
import re
import select
import warnings
from pathlib import Path

import numpy as np

from damo.errors import DamoError
from damo.formats.perf_script import AggregatedSnapshot
from damo.model import AGE_UNKNOWN

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


def tracefs_supported(filesystems: str = "/proc/filesystems") -> bool:
    """Does this kernel have tracefs (mounted or not)?"""
    try:
        with open(filesystems) as f:
            return any(line.split()[-1:] == ["tracefs"] for line in f)
    except OSError:
        return False


_CLONE_NEWNS = 0x00020000
_MS_REC, _MS_PRIVATE = 0x4000, 0x40000


def mount_private_tracefs(mount_point: Path = TRACEFS_CANDIDATES[0]) -> Path:
    """Mount tracefs at ``mount_point`` in a mount namespace of this process's own.

    The calling thread leaves the machine's mount namespace (unshare), every mount is made
    private there first, so that nothing propagates back, and only then is tracefs mounted.
    The mount disappears with the process; the machine's namespace never sees it.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]

    def check(result: int, what: str) -> None:
        if result != 0:
            err = ctypes.get_errno()
            raise DamoError(f"cannot mount tracefs privately: {what} failed ({os.strerror(err)}); "
                            f"damo report damon still works")

    check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
    check(libc.mount(b"nodev", str(mount_point).encode(), b"tracefs", 0, None), f"mounting it at {mount_point}")
    return mount_point


# The fields of one event line (tracefs or perf script spelling) for the slow path: pid (absent in
# perf's spelling), seconds, fraction, target_id, nr_regions, start, end, nr_accesses, [age].
_SLOW_LINE = re.compile(rb"^[^\n]*?(?:-(\d+))?[ \t]+\[\d+\][^\n]*?[ \t](\d+)\.(\d+):[ \t]+(?:damon:)?"
                        rb"damon_aggregated:[ \t]+target_id=(\d+)[ \t]+nr_regions=(\d+)[ \t]+(\d+)-(\d+):"
                        rb"[ \t]+(-?\d+)(?:[ \t]+(-?\d+))?[ \t]*\r?$", re.M)
# bytes.translate table: digits stay, everything else becomes a space (for np.fromstring).
_DIGITS_ONLY = bytes(c if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_EVENT_WORDS = b": damon_aggregated: target_id="
# Per line: command (out), pid (in), cpu and flags (out), timestamp (in), event words (out), fields (in).
_KEEP_PATTERN = np.array([False, True, False, True, False, True])
_COLUMNS = ("pid", "end_ns", "target_id", "nr_regions", "start", "end", "nr_accesses", "age")


def _last_before(data: np.ndarray, byte: int, positions: np.ndarray) -> np.ndarray:
    """For each of ``positions``, where the last ``byte`` before it is (-1 if none)."""
    found = np.flatnonzero(data == byte)
    index = np.searchsorted(found, positions) - 1
    return np.where(index >= 0, found[np.maximum(index, 0)], -1)


def _context_columns(data: np.ndarray, line_starts: np.ndarray, stamp_ends: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Where each line's ``[cpu]`` column and pid start.

    tracefs prints ``%16s-%-7d [%03d]`` (command, pid, cpu), so for a command of up to 16
    characters, as ``kdamond.N`` is, the pid starts 17 bytes into the line and the cpu column
    8 bytes later: checked, and searched for instead where a line differs.
    """
    pid_starts = line_starts + 17
    brackets = pid_starts + 8
    if brackets[-1] < len(data) and np.all(data[brackets] == ord("[")) and np.all(data[pid_starts - 1] == ord("-")):
        return brackets, pid_starts
    brackets = _last_before(data, ord("["), stamp_ends)
    return brackets, _last_before(data, ord("-"), brackets) + 1


def _word_starts(data: np.ndarray, ends: np.ndarray, longest: int = 24) -> np.ndarray:
    """Where the words ending at ``ends`` start (after a space), looking back at most ``longest``
    bytes; -1 where no space is that near. (Cheaper than finding every space of the buffer.)"""
    starts = np.full(len(ends), -1, dtype=np.int64)
    for back in range(1, longest + 1):
        positions = ends - back
        hit = (starts < 0) & (positions >= 0) & (data[np.maximum(positions, 0)] == ord(" "))
        starts[hit] = positions[hit] + 1
        if np.all(starts >= 0):
            break
    return starts


def parse_event_lines(text: bytes) -> dict[str, np.ndarray] | None:
    """Columns (see _COLUMNS) of a buffer of whole tracefs ``damon_aggregated`` lines, vectorised.

    Each line is ``<comm>-<pid> [<cpu>] <flags> <sec>.<usec>: damon_aggregated: target_id=T
    nr_regions=N S-E: A G``. The bytes before the pid and between the cpu field and the
    timestamp (the flags may hold digits) are blanked, every other non-digit becomes a space,
    and numpy reads the remaining 9 numbers per line at once. Returns None where the buffer
    does not have exactly that shape (another spelling, a "LOST EVENTS" line, no age field):
    the caller takes the line-by-line path then.
    """
    data = np.frombuffer(text, dtype=np.uint8)
    newlines = np.flatnonzero(data == ord("\n"))
    nr_lines = len(newlines)
    if nr_lines == 0 or newlines[-1] != len(data) - 1:
        return None
    colons = np.flatnonzero(data[:-2] == ord(":"))
    stamp_ends = colons[(data[colons + 1] == ord(" ")) & (data[colons + 2] == ord("d"))]
    if len(stamp_ends) != nr_lines:
        return None
    line_starts = np.concatenate([[0], newlines[:-1] + 1])
    brackets, pid_starts = _context_columns(data, line_starts, stamp_ends)
    stamp_starts = _word_starts(data, stamp_ends)
    if not (np.all(pid_starts > line_starts) and np.all(data[pid_starts - 1] == ord("-")) and np.all(brackets > pid_starts)
            and np.all(stamp_starts > brackets) and np.all(stamp_ends < newlines)
            and np.all(data[stamp_ends - 7] == ord("."))):
        return None
    # Per line, keep the pid, the timestamp with its colon, and the event's fields; leave out the
    # command, the cpu and flags (which may hold digits) and the constant event words. Bytes
    # left out never reach np.fromstring, whose cost goes with the bytes it scans.
    words_end = stamp_ends + len(_EVENT_WORDS)
    if not np.all(data[words_end - 1] == ord("=")):
        return None
    runs = np.stack([pid_starts - line_starts, brackets - pid_starts, stamp_starts - brackets,
                     stamp_ends + 1 - stamp_starts, words_end - stamp_ends - 1, newlines + 1 - words_end],
                    axis=1).ravel()
    keep = np.repeat(np.tile(_KEEP_PATTERN, nr_lines), runs)
    digits = np.frombuffer(text.translate(_DIGITS_ONLY), dtype=np.uint8)[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        numbers = np.fromstring(digits.tobytes(), dtype=np.uint64, sep=" ")
    if len(numbers) != 9 * nr_lines:
        return None
    rows = numbers.reshape(nr_lines, 9)
    if np.any(rows[:, 5] == np.iinfo(np.uint64).max):
        return None          # clamped by the parser: let the exact path decide
    return {"pid": rows[:, 0].astype(np.int64),
            "end_ns": (rows[:, 1] * 1_000_000_000 + rows[:, 2] * 1000).astype(np.int64),
            "target_id": rows[:, 3], "nr_regions": rows[:, 4].astype(np.int64),
            "start": rows[:, 5], "end": rows[:, 6],
            "nr_accesses": rows[:, 7].astype(np.int64), "age": rows[:, 8].astype(np.int64)}


def _parse_lines_slowly(text: bytes) -> dict[str, np.ndarray]:
    """The same columns by regular expression, for any spelling damo reads (perf script too)."""
    rows = []
    for pid, sec, frac, tid, nr_regions, start, end, nr, age in _SLOW_LINE.findall(text):
        end_ns = int(sec) * 1_000_000_000 + int(frac.ljust(9, b"0")[:9])
        rows.append((int(pid) if pid else -1, end_ns, int(tid), int(nr_regions), int(start), int(end),
                     int(nr), int(age) if age else AGE_UNKNOWN))
    cols = list(zip(*rows)) if rows else [()] * len(_COLUMNS)
    dtypes = (np.int64, np.int64, np.uint64, np.int64, np.uint64, np.uint64, np.int64, np.int64)
    return {name: np.array(col, dtype=dtype) for name, col, dtype in zip(_COLUMNS, cols, dtypes)}


def parse_trace_text(text: bytes) -> dict[str, np.ndarray]:
    """Columns of every ``damon_aggregated`` line in ``text`` (whole lines), fast where it can be."""
    return parse_event_lines(text) or _parse_lines_slowly(text)


class AggregatedParser:
    """Turns a stream of ``damon_aggregated`` lines (bytes, in any chunking) into snapshots.

    One snapshot is ``nr_regions`` consecutive lines of one (kdamond pid, target): each line
    has its own timestamp, so the count decides, not the time, and the snapshot's end time is
    its first line's timestamp, as damo takes it. A live pipe can lose lines when its ring
    buffer overruns; that shows as a changed count or as addresses going back, and restarts
    the snapshot there instead of mixing two. Lines are parsed a chunk at a time with numpy
    (see parse_event_lines); only the snapshot boundaries are walked in Python.
    """

    def __init__(self):
        self._partial = b""
        self._pending: dict[tuple[int, int], dict[str, np.ndarray]] = {}   # (pid, target) -> columns
        self.nr_lines = 0

    def feed(self, data: bytes) -> list[AggregatedSnapshot]:
        if self._partial:
            data = self._partial + data
        cut = data.rfind(b"\n") + 1
        if cut == len(data):                 # the usual case: whole lines, no copies
            self._partial = b""
            return self._parse(data) if cut else []
        self._partial = data[cut:]
        return self._parse(data[:cut]) if cut else []

    def finish(self) -> list[AggregatedSnapshot]:
        """Parse a last unterminated line; incomplete snapshots are dropped."""
        rest, self._partial = self._partial, b""
        return self._parse(rest + b"\n") if rest else []

    def _parse(self, text: bytes) -> list[AggregatedSnapshot]:
        cols = parse_trace_text(text)
        count = len(cols["start"])
        self.nr_lines += count
        if count == 0:
            return []
        pids, tids = cols["pid"], cols["target_id"]
        if np.all(pids == pids[0]) and np.all(tids == tids[0]):
            groups = [((int(pids[0]), int(tids[0])), None)]
        else:
            keys = np.stack([pids.astype(np.uint64), tids])
            unique, first = np.unique(keys, axis=1, return_index=True)
            groups = [((int(unique[0, k]), int(unique[1, k])),
                        np.flatnonzero((pids.astype(np.uint64) == unique[0, k]) & (tids == unique[1, k])))
                      for k in np.argsort(first)]
        snapshots = []
        for key, lines in groups:
            own = cols if lines is None else {name: col[lines] for name, col in cols.items()}
            pending = self._pending.pop(key, None)
            if pending is not None:
                own = {name: np.concatenate([pending[name], own[name]]) for name in _COLUMNS}
            snapshots += self._split(key, own)
        snapshots.sort(key=lambda snap: snap.end_ns)
        return snapshots

    def _split(self, key: tuple[int, int], cols: dict[str, np.ndarray]) -> list[AggregatedSnapshot]:
        """Complete snapshots out of one key's lines; the incomplete tail waits for more."""
        snapshots = []
        nr_regions, starts, ends = cols["nr_regions"], cols["start"], cols["end"]
        pos, total = 0, len(starts)
        while pos < total:
            count = int(nr_regions[pos])
            if count <= 0:
                pos += 1
                continue
            stop = min(pos + count, total)
            same_count = nr_regions[pos:stop] == count
            ascending = np.concatenate([[True], starts[pos + 1:stop] >= ends[pos:stop - 1]])
            broken = np.flatnonzero(~(same_count & ascending))
            if len(broken):
                pos += int(broken[0])         # lost lines: the snapshot restarts at the break
                continue
            if stop - pos < count:
                self._pending[key] = {name: col[pos:] for name, col in cols.items()}
                break
            snapshots.append(AggregatedSnapshot(key[1], int(cols["end_ns"][pos]), starts[pos:stop],
                                                ends[pos:stop], cols["nr_accesses"][pos:stop],
                                                cols["age"][pos:stop], pid=key[0]))
            pos = stop
        return snapshots


class TraceInstance:
    """A private tracefs instance with ``damon_aggregated`` enabled; read with ``read``."""

    def __init__(self, root: Path, name: str, event_filter: str | None = None, clock: str | None = None):
        self.root = root
        self.dir = root / "instances" / name
        self.event_filter = event_filter      # e.g. "common_pid == 77", in the instance's own filter file
        self.clock = clock                    # e.g. "mono": timestamps on CLOCK_MONOTONIC (default: "local")
        self._fd: int | None = None

    def open(self) -> None:
        try:
            self.dir.mkdir()
        except FileExistsError:
            raise DamoError(f"tracefs instance {self.dir} already exists (another damo running?)") from None
        except OSError as err:
            raise DamoError(f"cannot create tracefs instance {self.dir} ({err.strerror})") from None
        try:
            if self.clock:
                self._set_clock(self.clock)
            if self.event_filter:
                (self.dir / "events" / EVENT / "filter").write_text(self.event_filter)
            (self.dir / "events" / EVENT / "enable").write_text("1")
            self._fd = os.open(self.dir / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        except OSError as err:
            self.close()
            raise DamoError(f"cannot enable {EVENT} in {self.dir} ({err.strerror})") from None

    def _set_clock(self, clock: str) -> None:
        """The instance's trace clock, where the kernel has it (else the default stays)."""
        try:
            (self.dir / "trace_clock").write_text(clock)
        except OSError:
            pass

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

    def disable(self) -> None:
        """Stop new events (what the buffer holds can still be read)."""
        try:
            if self.dir.is_dir():
                (self.dir / "events" / EVENT / "enable").write_text("0")
        except OSError:
            pass

    def close(self) -> None:
        """Disable the event, close the pipe and remove the instance (idempotent)."""
        self.disable()
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
