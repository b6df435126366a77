"""Progress display for long-running commands: rich on a terminal, silent otherwise."""
from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


def stderr_console() -> Console:
    """A console on stderr that honours NO_COLOR and stays plain when not a terminal."""
    return Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")))


class RecordProgress:
    """Shows recorded time, snapshots and regions while a record runs."""

    def __init__(self, total_ns: int | None = None, clock: str = "time"):
        self.console = stderr_console()
        self.enabled = self.console.is_terminal and sys.stderr.isatty()
        self._progress = None
        if self.enabled:
            self._progress = Progress(TextColumn("[bold]recording[/]"), BarColumn(),
                                      TextColumn("{task.fields[clock]} {task.fields[elapsed]:.1f} s"),
                                      TextColumn("{task.fields[snapshots]} snapshots"),
                                      TextColumn("{task.fields[regions]} regions"),
                                      TimeElapsedColumn(), console=self.console, transient=False)
            self._progress.start()
            self._task = self._progress.add_task("record", total=total_ns, clock=clock, elapsed=0.0,
                                                 snapshots=0, regions=0)
        self._first_ns: int | None = None

    def update(self, now_ns: int, nr_snapshots: int, nr_regions: int) -> None:
        if not self._progress:
            return
        if self._first_ns is None:
            self._first_ns = now_ns
        self._progress.update(self._task, completed=now_ns, elapsed=(now_ns - self._first_ns) / 1e9,
                              snapshots=nr_snapshots, regions=nr_regions)

    def close(self) -> None:
        if self._progress:
            self._progress.stop()
            self._progress = None
