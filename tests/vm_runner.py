"""Boot a test VM once and run one marker's real-kernel tests inside it (``pytest -m MARKER``).

In CI (CI=true) a missing prerequisite fails the calling test; elsewhere it skips with the reason.
DAMO_VM_TESTS_K="EXPR" passes ``-k EXPR`` to the guest's pytest, to run some of the tests while
developing them. With CI=true no test inside may be skipped or deselected: CI must run them all.
The VM is stopped only when it shows no progress (no console line and no new line in the
guest's pytest log) for ``quiet_seconds``, or after ``limit_seconds`` in all: on a busy machine
the same tests take 2-3x as long as on a quiet one.
"""
from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

import pytest

from damo.sources.vm import boot_and_run

REPO = Path(__file__).resolve().parent.parent


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; with CI=true the test fails instead, since CI must run it."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def check_prerequisites() -> None:
    from damo import vm

    if os.environ.get("DAMO_SKIP_VM_TESTS") == "1" and os.environ.get("CI") != "true":
        pytest.skip("DAMO_SKIP_VM_TESTS=1")
    missing = vm.missing_prerequisites()
    if missing:
        skip_or_fail(f"the VM needs {', '.join(p.name for p in missing)}: {missing[0].fix}")


def tail(text: str, nr_lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-nr_lines:])


def run_marker_in_vm(kernel: Path, marker: str, test_dir: str, limit_seconds: float,
                     quiet_seconds: float, guest_env: dict[str, str] | None = None) -> str:
    """Boot ``kernel``, run ``pytest -m marker test_dir`` inside (with ``guest_env`` added to its
    environment), assert it passed; its output."""
    with tempfile.TemporaryDirectory(prefix="damo-vm-test-") as rwdir:
        log = Path(rwdir) / "pytest.log"
        rc_file = Path(rwdir) / "rc"
        pytest_cmd = [sys.executable, "-m", "pytest", "-m", marker, test_dir, "-v", "-rsP",
                      "--durations=5", "-p", "no:cacheprovider", "--basetemp", f"/tmp/damo-{marker}-tests"]
        selector = os.environ.get("DAMO_VM_TESTS_K")
        if selector and os.environ.get("CI") != "true":
            pytest_cmd += ["-k", selector]
        extra = "".join(f"{k}={shlex.quote(v)} " for k, v in (guest_env or {}).items())
        script = (f"cd {shlex.quote(str(REPO))} && env DAMO_TEST_IN_VM=1 PYTHONUNBUFFERED=1 {extra}"
                  f"PYTHONPATH={shlex.quote(str(REPO))} "
                  f"{shlex.join(pytest_cmd)} > {shlex.quote(str(log))} 2>&1; echo $? > {shlex.quote(str(rc_file))}")
        started = time.monotonic()
        # verbose: the guest kernel's messages too, so a guest crash shows in the console tail
        run = boot_and_run(str(kernel), Path(rwdir), script, limit_seconds, quiet_limit=quiet_seconds,
                           heartbeat=log, verbose=True)
        elapsed = time.monotonic() - started
        output = log.read_text() if log.exists() else "(no pytest output: the VM did not run the tests)"
        print(output)
        print(f"VM boot + {marker} tests: {elapsed:.0f} s")
        # Read while the directory still exists: a failure shows what happened inside the VM.
        why = (f"{run.timed_out or 'the VM finished'} after {elapsed:.0f} s (vng exit {run.returncode})\n"
               f"--- the guest's pytest log, last 40 lines ---\n{tail(output)}\n"
               f"--- the guest console, last lines ---\n" + "\n".join(run.console_tail))
        assert run.timed_out is None, why
        assert rc_file.exists(), why
        assert rc_file.read_text().strip() == "0", why
        assert " passed" in output and " failed" not in output, why
        if os.environ.get("CI") == "true":
            # A skip inside the guest would hide a missing prerequisite of the VM image.
            assert not re.search(r"\d+ (skipped|deselected)", output), why
        return output
