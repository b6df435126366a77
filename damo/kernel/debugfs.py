"""DAMON's debugfs interface (``<debugfs>/damon/``): the only one of Linux 5.15 and older, kept
as ``*_DEPRECATED`` files until 6.x. Read what is there, and drive the default context ourselves.

Files: ``attrs`` ("sample aggr update min_nr max_nr", µs), ``target_ids`` (pids, or ``paddr``),
``init_regions`` ("TARGET START END" lines; TARGET is the target's index since 5.16 and its id,
the pid or 42, before), ``monitor_on`` (``monitor_on_DEPRECATED`` since 6.x: on/off),
``kdamond_pid`` ("none" when off), ``mk_contexts``/``rm_contexts`` and ``schemes``.

Safety rules, as for sysfs: if ``monitor_on`` is on or ``kdamond_pid`` is not ``none``, someone
else is monitoring and nothing is written; ours is the default context (no ``mk_contexts``), and
on close, whatever happened, monitoring is turned off and ``attrs``, ``target_ids`` and
``init_regions`` get back what they held before.
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Callable

from damo.errors import DamoError
from damo.kernel.sysfs import ALTERNATIVES, ForeignKdamondError, KdamondSetup, MonitorGuard, write_file

DEFAULT_DEBUGFS = Path("/sys/kernel/debug")
PADDR_TARGET_ID = 42                  # the id of the paddr target before init_regions took indexes
STOP_WAIT_SECONDS = 5.0
STOP_POLL_SECONDS = 0.05


class DebugfsWriteError(DamoError):
    def __init__(self, path: Path, value: str, err: OSError):
        reason = errno.errorcode.get(err.errno or 0, str(err.errno))
        super().__init__(f"writing '{value.strip()}' to {path} failed ({reason}: {os.strerror(err.errno or 0)})")
        self.errno = err.errno


class DamonDebugfs:
    """The files under ``root`` (``<debugfs>/damon``); writes go through ``writer`` (tests replace it)."""

    def __init__(self, root: str | os.PathLike = DEFAULT_DEBUGFS / "damon",
                 writer: Callable[[Path, str], None] | None = None):
        self.root = Path(root)
        self._writer = writer

    def present(self) -> bool:
        return (self.root / "attrs").is_file()

    @property
    def monitor_on_name(self) -> str:
        return "monitor_on_DEPRECATED" if (self.root / "monitor_on_DEPRECATED").exists() else "monitor_on"

    def read(self, name: str) -> str:
        return (self.root / name).read_text()

    def write(self, name: str, value: object) -> None:
        path, text = self.root / name, str(value)
        try:
            (self._writer or write_file)(path, text)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM) and os.geteuid() != 0:
                raise DamoError(f"writing {path} needs root privileges (run damo as root). {ALTERNATIVES}") from None
            raise DebugfsWriteError(path, text, err) from None

    def monitor_on(self) -> bool:
        return self.read(self.monitor_on_name).strip() == "on"

    def kdamond_pid(self) -> int | None:
        text = self.read("kdamond_pid").strip()
        return int(text) if text.isdigit() else None


def check_free(debugfs: DamonDebugfs) -> None:
    """Raise unless the debugfs interface is there and nobody monitors through it (read-only)."""
    if not debugfs.present():
        raise DamoError(f"DAMON's debugfs interface is not at {debugfs.root}. {ALTERNATIVES}")
    try:
        on, pid = debugfs.monitor_on(), debugfs.kdamond_pid()
    except PermissionError:
        raise DamoError(f"reading {debugfs.root} needs root privileges (run damo as root). {ALTERNATIVES}") from None
    if on or pid is not None:
        who = f"kdamond pid {pid}" if pid is not None else f"{debugfs.monitor_on_name} is on"
        raise ForeignKdamondError(f"DAMON's debugfs interface is in use ({who}) by someone else; damo will "
                                  f"not touch it. {ALTERNATIVES}")


class DebugfsKdamond(MonitorGuard):
    """Our monitoring through debugfs, with OwnedKdamond's interface (context manager, ``start``,
    ``running``, ``close``); ``index`` is always 0 (the default context)."""

    SAVED = ("attrs", "target_ids", "init_regions")

    def __init__(self, debugfs: DamonDebugfs, setup: KdamondSetup):
        self.debugfs = debugfs
        self.setup = setup
        self.index = 0
        self.pid: int | None = None
        self._saved: dict[str, str] | None = None
        self._started = False

    def prepare(self) -> None:
        """Refuse a foreign monitor, remember the files we change, write our setup."""
        check_free(self.debugfs)
        self._saved = {name: self._read_or_empty(name) for name in self.SAVED}
        self.stage()

    def _read_or_empty(self, name: str) -> str:
        try:
            return self.debugfs.read(name)
        except OSError:
            return ""

    def stage(self) -> None:
        s, d = self.setup, self.debugfs
        a = s.attrs
        d.write("attrs", f"{a.sample_us} {a.aggr_us} {a.update_us} {a.min_nr_regions} {a.max_nr_regions}\n")
        if s.ops == "paddr":
            d.write("target_ids", "paddr\n")
            old_id = PADDR_TARGET_ID
        else:
            if s.ops == "fvaddr":
                raise DamoError(f"--ops fvaddr needs DAMON's sysfs interface; {d.root} has no fvaddr")
            d.write("target_ids", " ".join(map(str, s.pids)) + "\n")
            old_id = s.pid
        if s.regions:
            self._write_init_regions(old_id)

    def _write_init_regions(self, old_id: int) -> None:
        """Since 5.16 a region names its target by index; 5.15 by id: try the index first."""
        lines = lambda tid: "".join(f"{tid} {start} {end}\n" for start, end in self.setup.regions)
        try:
            self.debugfs.write("init_regions", lines(0))
        except DebugfsWriteError as err:
            if err.errno != errno.EINVAL:
                raise
            self.debugfs.write("init_regions", lines(old_id))

    def start(self, target_alive: Callable[[], bool] | None = None) -> int:
        try:
            self.debugfs.write(self.debugfs.monitor_on_name, "on")
        except DebugfsWriteError as err:
            if err.errno == errno.EINVAL and self.setup.pids and target_alive and not target_alive():
                raise DamoError(f"the target (pid {self.setup.pid}) exited before monitoring started") from None
            if err.errno == errno.EBUSY:
                raise DamoError(f"the kernel refused to start DAMON (EBUSY): another DAMON user is active. "
                                f"{ALTERNATIVES}") from None
            raise
        self._started = True
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while self.pid is None and time.monotonic() < deadline:
            self.pid = self.debugfs.kdamond_pid()
            if self.pid is None:
                time.sleep(STOP_POLL_SECONDS)
        return self.pid or -1

    def running(self) -> bool:
        try:
            return self.debugfs.monitor_on()
        except OSError:
            return False

    def close(self) -> None:
        """Monitoring off (if we turned it on), then the saved files restored; idempotent."""
        if self._saved is None:
            return
        saved, self._saved = self._saved, None
        if self._started:
            self._started = False
            if self.running():
                try:
                    self.debugfs.write(self.debugfs.monitor_on_name, "off")
                except DebugfsWriteError as err:
                    if err.errno not in (errno.EINVAL, errno.EPERM):   # it stopped by itself meanwhile
                        raise
            deadline = time.monotonic() + STOP_WAIT_SECONDS
            while self.running() and time.monotonic() < deadline:
                time.sleep(STOP_POLL_SECONDS)
        for name in self.SAVED:
            value = saved[name]
            if name == "target_ids" and not value.strip():
                value = "\n"       # no targets: an empty write is refused, a newline clears them
            try:
                self.debugfs.write(name, value if value.endswith("\n") else value + "\n")
            except DebugfsWriteError:
                if name == "attrs":
                    raise
                # init_regions/target_ids of a process that has exited meanwhile cannot be restored
