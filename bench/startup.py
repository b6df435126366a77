"""Start-up cost of the command line: ``damo --help`` and friends against a bare interpreter.

Every command runs in a fresh process, hyperfine-style: one warm-up run, then REPEATS timed runs,
of which the minimum and the median are kept, of the wall time and of the CPU time (user + system,
from wait4: on a busy machine the wall time mostly measures the wait for a CPU). The figure is the
median above ``python -c pass`` (issue 22 asks for at most 0.1 s). ``python -X importtime`` tells
which of numpy, rich and matplotlib each command imports: help and argument errors import none.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import time

from bench.measure import compile_sources, python_argv, repo_env

COMMANDS: dict[str, list[str]] = {
    "damo --help": ["--help"],
    "damo report --help": ["report", "--help"],
    "damo nosuch (argument error)": ["nosuch"],
    "damo record --help": ["record", "--help"],
    "damo report heats --help": ["report", "heats", "--help"],
}
HEAVY = ("numpy", "rich", "matplotlib")
REPEATS, QUICK_REPEATS = 30, 5


def timings(argv: list[str], repeats: int) -> dict:
    """Min and median wall and CPU seconds of ``repeats`` runs of ``argv`` after one warm-up run."""
    compile_sources()
    env = repo_env()
    wall, cpu = [], []
    for i in range(repeats + 1):
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0          # reaped by wait4; keeps Popen from waiting again
        if i:
            wall.append(time.perf_counter() - started)
            cpu.append(usage.ru_utime + usage.ru_stime)
    return {"wall_min_s": min(wall), "wall_median_s": statistics.median(wall),
            "cpu_min_s": min(cpu), "cpu_median_s": statistics.median(cpu)}


def heavy_imports(args: list[str]) -> list[str]:
    """Which of HEAVY ``damo ARGS`` imports, from ``-X importtime``."""
    done = subprocess.run(python_argv("-X", "importtime", "-m", "damo", *args), env=repo_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return [name for name in HEAVY if name in names]


def run(quick: bool) -> dict:
    repeats = QUICK_REPEATS if quick else REPEATS
    bare = timings(python_argv("-c", "pass"), repeats)
    rows = [{"command": "python -c pass", **bare, "wall_above_bare_s": 0.0, "cpu_above_bare_s": 0.0,
             "imports": ""}]
    for name, args in COMMANDS.items():
        took = timings(python_argv("-m", "damo", *args), repeats)
        rows.append({"command": name, **took,
                     "wall_above_bare_s": took["wall_median_s"] - bare["wall_median_s"],
                     "cpu_above_bare_s": took["cpu_median_s"] - bare["cpu_median_s"],
                     "imports": " ".join(heavy_imports(args)) or "none of " + ", ".join(HEAVY)})
    return {"repeats": repeats, "load_average": os.getloadavg()[0], "startup": rows,
            "notes": ["median of fresh processes after one warm-up run; the goal is at most 0.1 s above "
                      "`python -c pass` for `damo --help` and `damo report --help`"]}

if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=2))
