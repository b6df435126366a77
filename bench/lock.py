"""Refresh constraints.txt: resolve the newest versions in a clean virtualenv, run the suite, then pin.

    python -m bench.lock            # resolve, test (pytest in the new venv), rewrite constraints.txt
    python -m bench.lock --no-test  # resolve and pin only (do not commit the result untested)

Every optional extra in pyproject.toml is installed, so the pins cover what CI installs. The file is
rewritten only when the suite passes with the new set.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import tomllib
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / "constraints.txt"
HEADER = ("# Tested versions of every runtime and test dependency (pip install -c constraints.txt ...).\n"
          "# Refresh: python -m bench.lock   (resolves in a clean venv, runs the suite, then rewrites this file)\n")


def extras() -> list[str]:
    """Every optional extra that pyproject.toml declares."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return sorted(project.get("optional-dependencies", {}))


def resolve(home: Path) -> str:
    """Install the project with every extra into a new venv at ``home``; return its pins."""
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    python = str(home / "bin" / "python")
    spec = f"{REPO}[{','.join(extras())}]" if extras() else str(REPO)
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", spec], check=True)
    frozen = subprocess.run([python, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout
    return "".join(line + "\n" for line in sorted(frozen.splitlines(), key=str.lower) if "==" in line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lock", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-test", action="store_true", help="pin without running the suite")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="damo-lock-") as tmp:
        home = Path(tmp) / "venv"
        pins = resolve(home)
        if not args.no_test:
            done = subprocess.run([str(home / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                                  cwd=REPO)
            if done.returncode != 0:
                print("bench.lock: the suite fails with the new versions; constraints.txt left as it was",
                      file=sys.stderr)
                return 1
    CONSTRAINTS.write_text(HEADER + pins)
    print(f"bench.lock: wrote {CONSTRAINTS.name} ({len(pins.splitlines())} pins)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
