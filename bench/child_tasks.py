"""CPU cost of following child tasks: ours (/proc/PID/task/*/children, and which targets
exited) against damo 3.4.3's way (``ps --ppid PID`` per process, recursively), on a tree of 100
processes that are all targets already (the steady state: nothing new to commit).

A shell starts 10 shells, each starting 9 sleeps (100 processes with the root). Each method
polls the tree ROUNDS times; the cost of one poll is the CPU (ours: this process's; ps: its
children's) over the rounds. damo polls every second, we every half second.

    python -m bench.child_tasks
"""
from __future__ import annotations

import os
import resource
import subprocess
import time

from damo.kernel.tasks import descendants
from damo.sources.task_targets import TaskTargets

ROUNDS = 20
PS_ROUNDS = 3        # one poll of damo's way takes seconds of wall time here
TREE = "for i in 0 1 2 3 4 5 6 7 8 9; do sh -c 'for j in 1 2 3 4 5 6 7 8 9; do sleep 600 & done; wait' & done; wait"


def ps_descendants(pid: int) -> list[int]:
    """damo 3.4.3's get_childs_pids, as it works (one ps per process of the tree)."""
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True).stdout.split()
    found = [int(x) for x in out]
    for child in list(found):
        found += ps_descendants(child)
    return found


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measure(poll, who: int, rounds: int) -> tuple[float, int]:
    before = cpu_seconds(who)
    for _ in range(rounds):
        found = poll()
    return (cpu_seconds(who) - before) / rounds, len(found)


def main() -> None:
    root = subprocess.Popen(["sh", "-c", TREE])
    try:
        deadline = time.monotonic() + 30
        while len(descendants([root.pid])) < 99 and time.monotonic() < deadline:
            time.sleep(0.1)
        table = TaskTargets()
        table.start([root.pid, *descendants([root.pid])], time.monotonic_ns())

        def poll():
            assert table.proposal(time.monotonic_ns()) is None and not table.refresh_command_lines()
            return table.live_pids()[1:]

        ours, n_ours = measure(poll, resource.RUSAGE_SELF, ROUNDS)
        theirs, n_theirs = measure(lambda: ps_descendants(root.pid), resource.RUSAGE_CHILDREN, PS_ROUNDS)
    finally:
        for pid in reversed(descendants([root.pid])):
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        root.kill()
        root.wait()
    print(f"load {os.getloadavg()[0]:.1f}; tree of {n_ours + 1} processes ({n_theirs} by ps)")
    print(f"ours: {ours * 1e3:.2f} ms CPU per poll, {ours * 2 * 100:.2f}% of a CPU at 2 polls/s")
    print(f"damo 3.4.3 (ps --ppid): {theirs * 1e3:.1f} ms CPU per poll, {theirs * 100:.1f}% of a CPU at 1 poll/s")


if __name__ == "__main__":
    main()
