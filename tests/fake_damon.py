"""A fake DAMON sysfs tree in a temporary directory, with the kernel's side effects on writes.

Only what the driver relies on is modelled: ``nr_*`` files re-create their child directories
(wiping them), ``operations`` checks ``avail_operations``, ``state`` commands start and stop,
EBUSY/EINVAL/EPERM where the kernel gives them, and injectable errors for any file.
"""
from __future__ import annotations

import errno
import shutil
from pathlib import Path


class FakeDamon:
    def __init__(self, tmp: Path, avail_operations: str = "vaddr fvaddr paddr",
                 alive_pids: set[int] | None = None):
        self.root = tmp / "admin"
        self.avail_operations = avail_operations
        self.alive_pids = alive_pids if alive_pids is not None else set()
        self.log: list[tuple[str, str]] = []          # (path relative to root, value)
        self.fail: dict[tuple[str, str | None], int] = {}   # (relpath, value or None) -> errno
        self.next_kdamond_pid = 4242
        self.tried_regions: list[tuple[int, int, int, int]] = []
        self.commits: list[list[int]] = []            # the target pids of each accepted `commit`
        self.running_pids: list[int] = []             # the targets the kdamond works on (on, commit)
        # Set: tried regions are those of each running target in turn, regions_of(pid) each.
        self.regions_of = None
        (self.root / "kdamonds").mkdir(parents=True)
        self._put("kdamonds/nr_kdamonds", "0")

    # --- tree helpers ------------------------------------------------------------------------
    def _put(self, rel: str, value: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")

    def get(self, rel: str) -> str:
        return (self.root / rel).read_text().strip()

    def _recreate(self, parent: str, n: int, make) -> None:
        base = self.root / parent
        for child in base.iterdir():
            if child.is_dir() and child.name.isdigit():
                shutil.rmtree(child)
        for i in range(n):
            make(f"{parent}/{i}")

    def _make_kdamond(self, d: str) -> None:
        self._put(f"{d}/state", "off")
        self._put(f"{d}/pid", "-1")
        self._put(f"{d}/refresh_ms", "0")
        self._put(f"{d}/contexts/nr_contexts", "0")

    def _make_context(self, d: str) -> None:
        self._put(f"{d}/avail_operations", self.avail_operations)
        self._put(f"{d}/operations", "vaddr")
        for name, value in (("sample_us", "5000"), ("aggr_us", "100000"), ("update_us", "60000000")):
            self._put(f"{d}/monitoring_attrs/intervals/{name}", value)
        self._put(f"{d}/monitoring_attrs/nr_regions/min", "10")
        self._put(f"{d}/monitoring_attrs/nr_regions/max", "1000")
        self._put(f"{d}/targets/nr_targets", "0")
        self._put(f"{d}/schemes/nr_schemes", "0")

    def _make_target(self, d: str) -> None:
        self._put(f"{d}/pid_target", "0")
        self._put(f"{d}/regions/nr_regions", "0")

    def _make_region(self, d: str) -> None:
        self._put(f"{d}/start", "0")
        self._put(f"{d}/end", "0")

    def _make_scheme(self, d: str) -> None:
        for name in ("sz", "nr_accesses", "age"):
            self._put(f"{d}/access_pattern/{name}/min", "0")
            self._put(f"{d}/access_pattern/{name}/max", "0")
        self._put(f"{d}/action", "stat")
        self._put(f"{d}/tried_regions/total_bytes", "0")

    def add_foreign_kdamond(self, state: str = "on", pid: int = 77) -> None:
        """A kdamond set up (and maybe running) by someone else, like this host's kdamond 0."""
        self._put("kdamonds/nr_kdamonds", "1")
        self._make_kdamond("kdamonds/0")
        self._put("kdamonds/0/contexts/nr_contexts", "1")
        self._make_context("kdamonds/0/contexts/0")
        self._put("kdamonds/0/contexts/0/operations", "paddr")
        self._put("kdamonds/0/state", state)
        self._put("kdamonds/0/pid", str(pid if state == "on" else -1))

    def snapshot(self) -> dict[str, str]:
        """Every file's content, for before/after comparisons."""
        return {str(p.relative_to(self.root)): p.read_text() for p in sorted(self.root.rglob("*")) if p.is_file()}

    def running(self) -> list[int]:
        return [int(p.parent.name) for p in (self.root / "kdamonds").glob("*/state") if p.read_text().strip() == "on"]

    # --- the write hook ----------------------------------------------------------------------
    def write(self, path: Path, value: str) -> None:
        rel = str(Path(path).relative_to(self.root))
        self.log.append((rel, value))
        for key in ((rel, value), (rel, None)):
            if key in self.fail:
                raise OSError(self.fail[key], "injected")
        if not (self.root / rel).is_file():
            raise OSError(errno.ENOENT, "no such file")
        name = Path(rel).name
        parent = str(Path(rel).parent)
        if rel == "kdamonds/nr_kdamonds":
            if self.running():
                raise OSError(errno.EBUSY, "busy")
            self._recreate("kdamonds", int(value), self._make_kdamond)
        elif name == "nr_contexts":
            if int(value) not in (0, 1):
                raise OSError(errno.EINVAL, "invalid")
            self._recreate(parent, int(value), self._make_context)
        elif name == "nr_targets":
            self._recreate(parent, int(value), self._make_target)
        elif name == "nr_regions" and parent.endswith("/regions"):
            self._recreate(parent, int(value), self._make_region)
        elif name == "nr_schemes":
            self._recreate(parent, int(value), self._make_scheme)
        elif name == "operations" and value not in self.avail_operations.split():
            raise OSError(errno.EINVAL, "invalid")
        elif name == "state":
            self._state(parent, value)
            return
        self._put(rel, value)

    def _state(self, kdamond: str, command: str) -> None:
        state = self.get(f"{kdamond}/state")
        if command == "on":
            if state == "on":
                raise OSError(errno.EBUSY, "busy")
            self.running_pids = self._check_targets(kdamond)
            self._put(f"{kdamond}/state", "on")
            self._put(f"{kdamond}/pid", str(self.next_kdamond_pid))
        elif command == "off":
            if state != "on":
                raise OSError(errno.EPERM, "not running")
            self.stop(kdamond)
        elif command == "commit":
            # The kernel reads the whole directory again and refuses a pid that is gone.
            if state != "on":
                raise OSError(errno.EINVAL, "invalid")
            self.running_pids = self._check_targets(kdamond)
            self.commits.append(self.running_pids)
        elif command == "update_schemes_tried_regions":
            if state != "on":
                raise OSError(errno.EINVAL, "invalid")
            base = f"{kdamond}/contexts/0/schemes/0/tried_regions"
            self._recreate(base, 0, None)
            regions = self.tried_regions
            if self.regions_of is not None:
                regions = [r for pid in self.running_pids for r in self.regions_of(pid)]
            for i, (s, e, a, g) in enumerate(regions):
                for key, v in (("start", s), ("end", e), ("nr_accesses", a), ("age", g)):
                    self._put(f"{base}/{i}/{key}", str(v))
        else:
            raise OSError(errno.EINVAL, "invalid")

    def _check_targets(self, kdamond: str) -> list[int]:
        """The context's target pids, in order; EINVAL if one is not alive (vaddr, fvaddr)."""
        ctx = f"{kdamond}/contexts/0"
        dirs = sorted((self.root / ctx / "targets").glob("[0-9]*"), key=lambda p: int(p.name))
        pids = [int((t / "pid_target").read_text()) for t in dirs]
        if self.get(f"{ctx}/operations") != "paddr" and any(p not in self.alive_pids for p in pids):
            raise OSError(errno.EINVAL, "invalid")
        return pids

    def stop(self, kdamond: str = "kdamonds/0") -> None:
        """The kdamond ends (turned off, or its targets exited)."""
        self._put(f"{kdamond}/state", "off")
        self._put(f"{kdamond}/pid", "-1")
