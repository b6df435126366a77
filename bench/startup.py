"""Start-up cost of the command line: ``damo --help`` and friends against a bare interpreter.

Every command runs in a fresh process, hyperfine-style: one warm-up run, then REPEATS timed runs,
of which the minimum and the median are kept. The figure is the median above ``python -c pass``
(issue 22 asks for at most 0.1 s). ``python -X importtime`` tells which of numpy, rich and
matplotlib each command imports: help and argument errors should import none.
"""
from __future__ import annotations

import statistics
import subprocess
import time

from bench.measure import python_argv, repo_env

COMMANDS: dict[str, list[str]] = {
    "damo --help": ["--help"],
    "damo report --help": ["report", "--help"],
    "damo nosuch (argument error)": ["nosuch"],
    "damo record --help": ["record", "--help"],
    "damo report heats --help": ["report", "heats", "--help"],
}
HEAVY = ("numpy", "rich", "matplotlib")
REPEATS, QUICK_REPEATS = 30, 5


def wall_times(argv: list[str], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` runs of ``argv`` after one warm-up run."""
    env = repo_env()
    times = []
    for i in range(repeats + 1):
        started = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if i:
            times.append(time.perf_counter() - started)
    return times


def heavy_imports(args: list[str]) -> list[str]:
    """Which of HEAVY ``damo ARGS`` imports, from ``-X importtime``."""
    done = subprocess.run(python_argv("-X", "importtime", "-m", "damo", *args), env=repo_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return [name for name in HEAVY if name in names]


def run(quick: bool) -> dict:
    repeats = QUICK_REPEATS if quick else REPEATS
    bare = wall_times(python_argv("-c", "pass"), repeats)
    rows = [{"command": "python -c pass", "min_s": min(bare), "median_s": statistics.median(bare),
             "above_bare_s": 0.0, "imports": ""}]
    for name, args in COMMANDS.items():
        times = wall_times(python_argv("-m", "damo", *args), repeats)
        rows.append({"command": name, "min_s": min(times), "median_s": statistics.median(times),
                     "above_bare_s": statistics.median(times) - statistics.median(bare),
                     "imports": " ".join(heavy_imports(args)) or "none of " + ", ".join(HEAVY)})
    return {"repeats": repeats, "startup": rows,
            "notes": ["median wall time of a fresh process, after one warm-up run; the goal is "
                      "at most 0.1 s above `python -c pass` for `damo --help` and `damo report --help`"]}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=2))
