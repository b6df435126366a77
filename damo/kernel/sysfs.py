"""DAMON's sysfs interface: read what is there, and drive one kdamond that we create ourselves.

The driver takes the ``admin`` directory as a parameter, so tests run it against a temporary
directory tree. Safety rules, enforced here rather than by callers:

- a kdamond that we did not create is only ever read;
- writing ``nr_kdamonds`` re-creates every kdamond directory (the kernel wipes their setup), so
  we add our kdamond only when there is none at all, and refuse otherwise, naming the kdamond
  that is in the way;
- whatever happens after we created ours (errors, signals), ``close`` turns it off and restores
  ``nr_kdamonds``.
"""
from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from damo.errors import DamoError
from damo.model import MonitoringAttrs

DEFAULT_ROOT = Path("/sys/kernel/mm/damon/admin")
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1
STATE_POLL_SECONDS = 0.05
EBUSY_RETRY_SECONDS = 2.0
T = TypeVar("T")
ALTERNATIVES = "Use --vm or the simulator (damo record zigzag, a bundled masim config)."


class SysfsWriteError(DamoError):
    """A write into DAMON's sysfs failed; ``errno`` tells why."""

    def __init__(self, path: Path, value: str, err: OSError, hint: str = ""):
        reason = errno.errorcode.get(err.errno or 0, str(err.errno))
        text = f"writing '{value}' to {path} failed ({reason}: {os.strerror(err.errno or 0)})"
        super().__init__(f"{text}; {hint}" if hint else text)
        self.path = path
        self.value = value
        self.errno = err.errno


class ForeignKdamondError(DamoError):
    """Another DAMON user owns a kdamond; we do not touch it."""


def write_file(path: Path, value: str) -> None:
    """Write one value the way the kernel wants it: one write() call on an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _retrying_ebusy(operation: Callable[[], T]) -> T:
    """Run ``operation``, again while it fails with EBUSY, for up to EBUSY_RETRY_SECONDS.

    DAMON's sysfs handlers only try-lock their mutex and fail with EBUSY while a running
    kdamond's callback holds it (every aggregation): that is a retry, not an error. An EBUSY
    that lasts (another DAMON user) is raised after the retries.
    """
    deadline = time.monotonic() + EBUSY_RETRY_SECONDS
    while True:
        try:
            return operation()
        except OSError as err:
            if err.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise
        time.sleep(STATE_POLL_SECONDS / 5)


@dataclass
class KdamondInfo:
    index: int
    state: str
    pid: int | None

    @property
    def running(self) -> bool:
        return self.state == "on"


INTERVALS_GOAL_FILES = ("access_bp", "aggrs", "min_sample_us", "max_sample_us")


@dataclass
class KdamondSetup:
    """What our kdamond monitors, and how."""

    ops: str                                   # vaddr | fvaddr | paddr
    attrs: MonitoringAttrs
    pid: int | None = None                     # vaddr/fvaddr target
    regions: list[tuple[int, int]] = field(default_factory=list)
    stat_scheme: bool = False                  # a match-everything scheme for tried_regions snapshots
    # the intervals auto-tuning goal (access_bp, aggrs, min_sample_us, max_sample_us), Linux 6.15+
    intervals_goal: tuple[int, int, int, int] | None = None
    more_pids: list[int] = field(default_factory=list)   # further vaddr/fvaddr targets, in target order

    @property
    def pids(self) -> list[int]:
        """Every process target, in the kernel's target order."""
        return ([self.pid] if self.pid is not None else []) + list(self.more_pids)


class DamonSysfs:
    """Reads DAMON's sysfs tree under ``root`` and writes through ``writer`` (replaceable in tests)."""

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT,
                 writer: Callable[[Path, str], None] | None = None):
        self.root = Path(root)
        self.kdamonds_dir = self.root / "kdamonds"
        self._writer = writer

    # --- reading ---------------------------------------------------------------------------
    def present(self) -> bool:
        return (self.kdamonds_dir / "nr_kdamonds").is_file()

    def read(self, rel: str | Path) -> str:
        return _retrying_ebusy(lambda: (self.root / rel).read_text().strip())

    def write(self, rel: str | Path, value: object, hint: str = "") -> None:
        path = self.root / rel
        text = str(value)
        try:
            # Looked up at call time, so the test suite can guard the module's write_file.
            _retrying_ebusy(lambda: (self._writer or write_file)(path, text))
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM) and os.geteuid() != 0:
                raise DamoError(f"writing {path} needs root privileges (run damo as root). {ALTERNATIVES}") from None
            raise SysfsWriteError(path, text, err, hint) from None

    def nr_kdamonds(self) -> int:
        return int(self.read("kdamonds/nr_kdamonds"))

    def kdamond(self, index: int) -> KdamondInfo:
        base = f"kdamonds/{index}"
        state = self.read(f"{base}/state")
        try:
            pid = int(self.read(f"{base}/pid"))
        except (OSError, ValueError):
            pid = None
        return KdamondInfo(index, state, pid if pid is not None and pid >= 0 else None)

    def kdamonds(self) -> list[KdamondInfo]:
        return [self.kdamond(i) for i in range(self.nr_kdamonds())]

    def avail_operations(self) -> list[str] | None:
        """Operations sets listed by any existing context (read-only), or None if no context exists."""
        for path in sorted(self.kdamonds_dir.glob("*/contexts/*/avail_operations")):
            try:
                return path.read_text().split()
            except OSError:
                continue
        return None


def foreign_kdamond_message(info: KdamondInfo) -> str:
    if info.running:
        return (f"kdamond {info.index} (pid {info.pid}) is already running and belongs to someone else; "
                f"damo will not touch it. {ALTERNATIVES}")
    return (f"kdamond {info.index} is set up (state {info.state}) by someone else, and adding a kdamond would "
            f"wipe its setup; damo will not touch it. If nobody uses it, remove it with "
            f"'echo 0 > {{kdamonds}}/nr_kdamonds'. {ALTERNATIVES}")


def read_checked(sysfs: DamonSysfs, operation: Callable[[], T], advice: str = "") -> T:
    """``operation()`` on DAMON's sysfs, with a one-line error (ending in ``advice``) where the
    interface is absent or readable by root only."""
    tail = f" {advice}" if advice else ""
    if not sysfs.present():
        raise DamoError(f"DAMON's sysfs interface is not at {sysfs.kdamonds_dir} (this kernel lacks "
                        f"CONFIG_DAMON_SYSFS, or DAMON).{tail}")
    try:
        return operation()
    except PermissionError:
        raise DamoError(f"reading {sysfs.kdamonds_dir} needs root privileges (run damo as root).{tail}") from None


def check_free(sysfs: DamonSysfs) -> None:
    """Raise unless DAMON's sysfs is there and holds no kdamond (read-only)."""
    infos = read_checked(sysfs, sysfs.kdamonds, ALTERNATIVES)
    running = [k for k in infos if k.running]
    if running or infos:
        message = foreign_kdamond_message((running or infos)[0])
        raise ForeignKdamondError(message.replace("{kdamonds}", str(sysfs.kdamonds_dir)))


class MonitorGuard:
    """A monitor of ours as a context manager: ``prepare`` on entry (closing again if it fails
    half-way), ``close`` on exit, whatever happened."""

    def prepare(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            self.prepare()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OwnedKdamond(MonitorGuard):
    """The one kdamond that damo creates, configures, starts and removes again.

    Use as a context manager, or call ``create`` ... ``close``. ``close`` is idempotent and
    safe to call at any point after ``create`` began.
    """

    def __init__(self, sysfs: DamonSysfs, setup: KdamondSetup):
        self.sysfs = sysfs
        self.setup = setup
        self.index: int | None = None
        self._nr_before: int | None = None
        self.pid: int | None = None

    @property
    def base(self) -> str:
        return f"kdamonds/{self.index}"

    @property
    def ctx(self) -> str:
        return f"kdamonds/{self.index}/contexts/0"

    def prepare(self) -> None:
        self.create()
        self.stage()

    def create(self) -> None:
        """Add our kdamond, refusing if any other kdamond exists."""
        check_free(self.sysfs)
        self._nr_before = 0
        self.index = 0
        self.sysfs.write("kdamonds/nr_kdamonds", 1,
                         hint="another DAMON user is active (a kdamond started meanwhile, or DAMON_RECLAIM/"
                              f"LRU_SORT). {ALTERNATIVES}")

    def stage(self) -> None:
        """Write the whole setup, in damo's order, before turning the kdamond on."""
        s, sysfs, ctx = self.setup, self.sysfs, self.ctx
        sysfs.write(f"{self.base}/contexts/nr_contexts", 1)
        avail = self._avail_operations()
        if avail is not None and s.ops not in avail:
            raise DamoError(f"the '{s.ops}' operations set is not available in this kernel "
                            f"(it has: {' '.join(avail) or 'none'}). {ALTERNATIVES}")
        sysfs.write(f"{ctx}/operations", s.ops,
                    hint=f"this kernel lacks the '{s.ops}' operations set. {ALTERNATIVES}")
        intervals = f"{ctx}/monitoring_attrs/intervals"
        sysfs.write(f"{intervals}/sample_us", s.attrs.sample_us)
        sysfs.write(f"{intervals}/aggr_us", s.attrs.aggr_us)
        sysfs.write(f"{intervals}/update_us", s.attrs.update_us)
        self._stage_intervals_goal(f"{intervals}/intervals_goal")
        sysfs.write(f"{ctx}/monitoring_attrs/nr_regions/min", s.attrs.min_nr_regions)
        sysfs.write(f"{ctx}/monitoring_attrs/nr_regions/max", s.attrs.max_nr_regions)
        self._write_targets(s.pids)
        if s.stat_scheme:
            self._stage_stat_scheme()

    def _stage_intervals_goal(self, goal_dir: str) -> None:
        """The goal files in damo's order; a kernel without them (before 6.15) is one DamoError
        when a goal is asked for. Without a goal nothing is written (the kernel's default is off)."""
        if self.setup.intervals_goal is None:
            return
        if not (self.sysfs.root / goal_dir).is_dir():
            raise DamoError("this kernel's DAMON cannot tune the monitoring intervals (no sysfs intervals_goal, "
                            "added in Linux 6.15): drop --monitoring_intervals_goal/--monitoring_intervals_autotune")
        for name, value in zip(INTERVALS_GOAL_FILES, self.setup.intervals_goal):
            self.sysfs.write(f"{goal_dir}/{name}", value)

    def tuned_sample_us(self) -> int | None:
        """The sampling interval the kernel's auto-tuning set now (``update_tuned_intervals``), or
        None when intervals are not tuned or the kdamond is gone."""
        if self.setup.intervals_goal is None:
            return None
        try:
            self.sysfs.write(f"{self.base}/state", "update_tuned_intervals")
            return int(self.sysfs.read(f"{self.ctx}/monitoring_attrs/intervals/sample_us"))
        except (DamoError, OSError, ValueError):
            return None

    def _write_targets(self, pids: list[int], initial: dict[int, list[tuple[int, int]]] | None = None) -> None:
        """nr_targets (which wipes the target directories), then each target's pid and regions:
        ``setup.regions``, or ``initial[index]`` for a target given its first regions."""
        targets = f"{self.ctx}/targets"
        self.sysfs.write(f"{targets}/nr_targets", max(1, len(pids)))
        for t in range(max(1, len(pids))):
            if pids:
                self.sysfs.write(f"{targets}/{t}/pid_target", pids[t])
            regions = self.setup.regions or (initial or {}).get(t)
            if regions:
                self.sysfs.write(f"{targets}/{t}/regions/nr_regions", len(regions))
                for i, (start, end) in enumerate(regions):
                    self.sysfs.write(f"{targets}/{t}/regions/{i}/start", start)
                    self.sysfs.write(f"{targets}/{t}/regions/{i}/end", end)

    def commit_targets(self, pids: list[int], initial: dict[int, list[tuple[int, int]]] | None = None) -> None:
        """Replace the running kdamond's process targets by ``pids`` (online, ``commit``).

        The kernel pairs old and new targets by index: a target that keeps its index (and is
        given no regions) keeps its regions and their counts, so callers keep the surviving
        targets in their order and append new ones, with ``initial`` regions (by index) for
        those. It refuses (EINVAL) a pid that is gone; the caller checks again and retries
        with the live ones.
        """
        self._write_targets(pids, initial)
        self.sysfs.write(f"{self.base}/state", "commit")
        self.setup.pid, self.setup.more_pids = (pids[0], list(pids[1:])) if pids else (None, [])

    def restart(self, pids: list[int]) -> int:
        """Start our kdamond again, on ``pids``, after it ended while they still run (a commit
        that the kernel failed ends it: see KernelRecorder._restart_after_commit); their regions
        start afresh. Returns the new kdamond's pid."""
        self._write_targets(pids)
        self.setup.pid, self.setup.more_pids = pids[0], list(pids[1:])
        return self.start()

    def _avail_operations(self) -> list[str] | None:
        try:
            return self.sysfs.read(f"{self.ctx}/avail_operations").split()
        except OSError:
            return None     # kernels before 6.1 have no such file: the operations write will tell

    def _stage_stat_scheme(self) -> None:
        """A 'stat' scheme matching every region: its tried_regions are full snapshots."""
        scheme = f"{self.ctx}/schemes/0"
        self.sysfs.write(f"{self.ctx}/schemes/nr_schemes", 1)
        pattern = f"{scheme}/access_pattern"
        # The maxima must be raised, or the scheme matches nothing and tried_regions stays empty.
        for name, maximum in (("sz", U64_MAX), ("nr_accesses", U32_MAX), ("age", U32_MAX)):
            self.sysfs.write(f"{pattern}/{name}/min", 0)
            self.sysfs.write(f"{pattern}/{name}/max", maximum)
        self.sysfs.write(f"{scheme}/action", "stat")

    def start(self, target_alive: Callable[[], bool] | None = None) -> int:
        """Turn our kdamond on; returns its pid."""
        try:
            self.sysfs.write(f"{self.base}/state", "on")
        except SysfsWriteError as err:
            if err.errno == errno.EINVAL and self.setup.pids and target_alive and not target_alive():
                raise DamoError(f"the target (pid {' '.join(map(str, self.setup.pids))}) exited before "
                                f"monitoring started") from None
            if err.errno == errno.EBUSY:
                raise DamoError(f"the kernel refused to start DAMON (EBUSY): another DAMON user, such as "
                                f"DAMON_STAT (on from boot in some kernels; off: write N to "
                                f"/sys/module/damon_stat/parameters/enabled), DAMON_RECLAIM or DAMON_LRU_SORT, "
                                f"is active. {ALTERNATIVES}") from None
            raise
        info = self.sysfs.kdamond(self.index)
        self.pid = info.pid
        return self.pid or -1

    def running(self) -> bool:
        """Is our kdamond still on? (It stops by itself when all its processes exit.)"""
        try:
            return self.sysfs.read(f"{self.base}/state") == "on"
        except OSError:
            return False

    def update_tried_regions(self) -> None:
        self.sysfs.write(f"{self.base}/state", "update_schemes_tried_regions")

    def read_tried_regions(self) -> tuple[list[int], list[int], list[int], list[int]]:
        """start, end, nr_accesses and age lists of the stat scheme's tried regions."""
        base = self.sysfs.root / f"{self.ctx}/schemes/0/tried_regions"
        dirs = sorted((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
        cols: tuple[list[int], ...] = ([], [], [], [])
        for d in dirs:
            for col, name in zip(cols, ("start", "end", "nr_accesses", "age")):
                col.append(int((d / name).read_text()))
        return cols

    def close(self) -> None:
        """Turn our kdamond off and restore ``nr_kdamonds``; never touches another kdamond."""
        if self.index is None or self._nr_before is None:
            return
        index, nr_before = self.index, self._nr_before
        try:
            if self.sysfs.nr_kdamonds() != index + 1:
                return      # not the tree we made: leave it alone
            self.turn_off()
            self.sysfs.write("kdamonds/nr_kdamonds", nr_before)
        finally:
            self.index = None
            self._nr_before = None

    def turn_off(self) -> None:
        """Turn this kdamond off if it runs, and wait until it has stopped."""
        if self.running():
            try:
                self.sysfs.write(f"{self.base}/state", "off")
            except SysfsWriteError as err:
                # EINVAL/EPERM: it stopped by itself meanwhile (the target exited).
                if err.errno not in (errno.EINVAL, errno.EPERM):
                    raise
            self._wait_off()

    def _wait_off(self, timeout: float = 5.0) -> None:
        import time
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(STATE_POLL_SECONDS)


class OwnedKdamonds(MonitorGuard):
    """Several kdamonds of ours, one context each (damo 3.x's ``--kdamond`` groups; the kernel
    runs one context per kdamond): created together when there is no kdamond at all, staged and
    started in order, turned off and removed together. It stands in for one OwnedKdamond in
    the recorder: ``running`` while any member runs, ``pids`` every member's kdamond pid."""

    def __init__(self, sysfs: DamonSysfs, setups: list[KdamondSetup]):
        self.sysfs = sysfs
        self.members = [OwnedKdamond(sysfs, setup) for setup in setups]
        self.setup = setups[0]
        self.index: int | None = None
        self.pids: list[int] = []

    def prepare(self) -> None:
        check_free(self.sysfs)
        self.index = 0
        self.sysfs.write("kdamonds/nr_kdamonds", len(self.members),
                         hint=f"another DAMON user is active (a kdamond started meanwhile). {ALTERNATIVES}")
        for k, member in enumerate(self.members):
            member.index = k
            member.stage()

    def start(self, target_alive: Callable[[], bool] | None = None) -> int:
        """Turn every member on, in order; the first member's kdamond pid."""
        self.pids = [member.start(target_alive) for member in self.members]
        return self.pids[0]

    def running(self) -> bool:
        return any(member.running() for member in self.members if member.index is not None)

    def tuned_sample_us(self) -> int | None:
        return self.members[0].tuned_sample_us()

    def close(self) -> None:
        """Every member off, then ``nr_kdamonds`` back to 0; never touches a tree we did not make."""
        if self.index is None:
            return
        try:
            if self.sysfs.nr_kdamonds() != len(self.members):
                return
            for member in self.members:
                if member.index is not None:
                    member.turn_off()
            self.sysfs.write("kdamonds/nr_kdamonds", 0)
        finally:
            self.index = None
            for member in self.members:
                member.index = None
