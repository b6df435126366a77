"""This machine's own DAMON: read-only checks that damo refuses to touch a foreign kdamond."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from damo.kernel.sysfs import DamonSysfs, ForeignKdamondError, check_free

DAMON = Path("/sys/kernel/mm/damon")


def foreign_running():
    sysfs = DamonSysfs()
    if not sysfs.present():
        pytest.skip("this machine has no DAMON sysfs interface")
    running = [k for k in sysfs.kdamonds() if k.running]
    if not running:
        pytest.skip("no kdamond is running on this machine: the refusal needs a foreign one")
    return running[0]


def tree_contents() -> dict[str, str]:
    """Every readable file under /sys/kernel/mm/damon (reading is harmless)."""
    contents = {}
    for path in sorted(DAMON.rglob("*")):
        if path.is_file():
            try:
                contents[str(path)] = path.read_text()
            except OSError as err:
                contents[str(path)] = f"<{err.errno}>"
    return contents


def test_check_free_names_the_running_kdamond_read_only():
    info = foreign_running()
    with pytest.raises(ForeignKdamondError) as err:
        check_free(DamonSysfs())
    assert str(err.value).startswith(f"kdamond {info.index} (pid {info.pid}) is already running and belongs "
                                      f"to someone else; damo will not touch it.")


def test_record_refuses_and_leaves_damon_unchanged(tmp_path):
    info = foreign_running()
    before = tree_contents()
    result = run_cli("record", "true", "-o", str(tmp_path / "x.data"))
    after = tree_contents()
    assert result.returncode == 2
    assert result.stderr == (f"damo: error: kdamond {info.index} (pid {info.pid}) is already running and belongs to "
                             f"someone else; damo will not touch it. Use --vm or the simulator "
                             f"(damo record zigzag, a bundled masim config).\n")
    assert after == before
    assert not (tmp_path / "x.data").exists()
