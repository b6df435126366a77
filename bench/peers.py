"""The real damo, installed from PyPI into cached virtualenvs outside the repo.

Its package is also called ``damo``, so it never goes into our environment. Tests that compare
against it skip where the install is impossible; benchmarks run it as a subprocess.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import venv
from pathlib import Path

CACHE = Path(os.environ.get("DAMO_PEERS_CACHE", Path.home() / ".cache" / "damo-peers"))
VERSIONS = ("2.6.4", "3.4.3")


class PeerUnavailable(RuntimeError):
    """The peer damo could not be installed here (no network, no PyPI)."""


def peer_damo(version: str = "2.6.4") -> list[str]:
    """The argv prefix that runs damo ``version`` (installing it first if needed)."""
    home = CACHE / f"damo-{version}"
    python = home / "bin" / "python"
    marker = home / ".installed"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".lock-{version}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # several test workers may ask at once
        if not marker.exists():
            try:
                venv.EnvBuilder(with_pip=True, clear=True).create(home)
                subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                f"damo=={version}"], check=True, capture_output=True, text=True, timeout=600)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
                detail = getattr(err, "stderr", "") or str(err)
                raise PeerUnavailable(f"cannot install damo=={version}: {detail.strip()[-300:]}") from None
            marker.write_text(version)
    # -I: a PYTHONPATH pointing at this repo must not make the peer import our ``damo`` package.
    return [str(python), "-I", str(home / "bin" / "damo")]


def peer_python(version: str = "2.6.4") -> str:
    """The python of the peer's virtualenv, for running its modules directly.

    damo's modules import each other as top-level modules, so a script run with this python
    must put the installed ``damo`` package directory first on ``sys.path`` (see peer_module_dir),
    and should run with ``-I`` so that a PYTHONPATH holding this repo does not shadow it.
    """
    peer_damo(version)
    return str(CACHE / f"damo-{version}" / "bin" / "python")


def peer_module_dir(version: str = "2.6.4") -> str:
    """The directory holding the peer's ``_damo_*.py`` modules."""
    python = peer_python(version)
    out = subprocess.run([python, "-I", "-c", "import damo, os; print(os.path.dirname(damo.__file__))"],
                         cwd="/", capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run_peer(version: str, *args: str, cwd=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the peer damo with ``args``; its stdout/stderr are captured as text."""
    return subprocess.run([*peer_damo(version), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


if __name__ == "__main__":
    for v in sys.argv[1:] or VERSIONS:
        print(v, peer_damo(v))
