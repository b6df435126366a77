"""A fake DAMON debugfs directory (``<debugfs>/damon``) with the kernel's side effects on writes:
``target_ids`` takes pids or ``paddr`` (shown as 42), ``init_regions`` checks its target column
(an index since 5.16, the target id before: ``init_regions_by_id``), ``monitor_on_DEPRECATED``
starts and stops a pretend kdamond, and any write can be made to fail.
"""
from __future__ import annotations

import errno
from pathlib import Path


class FakeDebugfs:
    def __init__(self, tmp: Path, init_regions_by_id: bool = False, alive_pids: set[int] | None = None):
        self.root = tmp / "damon"
        self.root.mkdir(parents=True)
        self.init_regions_by_id = init_regions_by_id
        self.alive_pids = alive_pids if alive_pids is not None else set()
        self.log: list[tuple[str, str]] = []
        self.fail: dict[str, int] = {}            # file name -> errno of its next writes
        for name, value in (("attrs", "5000 100000 60000000 10 1000\n"), ("target_ids", "\n"),
                            ("init_regions", ""), ("monitor_on_DEPRECATED", "off\n"), ("kdamond_pid", "none\n"),
                            ("mk_contexts", ""), ("rm_contexts", ""), ("schemes", ""), ("DEPRECATED", "")):
            (self.root / name).write_text(value)

    def get(self, name: str) -> str:
        return (self.root / name).read_text()

    def snapshot(self) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted(self.root.iterdir())}

    def start_foreign(self, pid: int = 77) -> None:
        (self.root / "monitor_on_DEPRECATED").write_text("on\n")
        (self.root / "kdamond_pid").write_text(f"{pid}\n")

    def stop(self) -> None:
        """The kdamond ends (turned off, or its targets exited)."""
        (self.root / "monitor_on_DEPRECATED").write_text("off\n")
        (self.root / "kdamond_pid").write_text("none\n")

    def write(self, path: Path, value: str) -> None:
        name = Path(path).name
        self.log.append((name, value))
        if name in self.fail:
            raise OSError(self.fail[name], "injected")
        running = self.get("monitor_on_DEPRECATED").strip() == "on"
        if name == "monitor_on_DEPRECATED":
            if value.strip() == "on":
                if running:
                    raise OSError(errno.EBUSY, "busy")
                ids = self.get("target_ids").split()
                if not ids or any(int(i) != 42 and int(i) not in self.alive_pids for i in ids):
                    raise OSError(errno.EINVAL, "invalid")
                (self.root / name).write_text("on\n")
                (self.root / "kdamond_pid").write_text("4242\n")
            elif value.strip() == "off":
                if not running:
                    raise OSError(errno.EPERM, "not running")
                self.stop()
            else:
                raise OSError(errno.EINVAL, "invalid")
            return
        if running and name in ("attrs", "target_ids", "init_regions"):
            raise OSError(errno.EBUSY, "busy")
        if name == "target_ids":
            ids = ["42" if w == "paddr" else w for w in value.split()]
            value = " ".join(ids) + "\n"
        elif name == "init_regions":
            ids = self.get("target_ids").split()
            for line in value.splitlines():
                if not line.strip():
                    continue
                tid = int(line.split()[0])
                valid = tid in [int(i) for i in ids] if self.init_regions_by_id else tid < len(ids)
                if not valid:
                    raise OSError(errno.EINVAL, "invalid")
        (self.root / name).write_text(value)
