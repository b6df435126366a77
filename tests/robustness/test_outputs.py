"""The ``-o`` matrix (issue 14, items 7, 8 and 12): outputs never clobber what is not ours, get a
fixed mode, and every unusable path is one line and exit 2, checked before anything is written."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import pytest

from damo.cli import main
from damo.formats import read_record, write_record
from tests.conftest import REPO, make_record, run_cli

CONFIG = str(REPO / "masim" / "configs" / "zigzag.cfg")


def _record_cmd(out) -> list[str]:
    return ["record", CONFIG, "--timeout", "1", "-o", str(out)]


def _convert_cmd(out, src) -> list[str]:
    return ["convert", "-i", str(src), "-o", str(out), "--format", "json_compressed"]


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src.data"
    write_record(make_record(nr_snapshots=5), path)
    return path


def _commands(source):
    return {"record": _record_cmd, "convert": lambda out: _convert_cmd(out, source)}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("damo: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", ["record", "convert"])
def test_symlink_is_renamed_not_followed(tmp_path, source, capsys, command):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    victim.chmod(0o644)
    link = tmp_path / "out.data"
    link.symlink_to(victim)
    assert main(_commands(source)[command](link)) in (0, 130)
    assert victim.read_text() == "precious" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert (tmp_path / "out.data.old").is_symlink()
    assert link.is_file() and not link.is_symlink()
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    read_record(link)


@pytest.mark.parametrize("command", ["record", "convert"])
def test_dangling_symlink_target_is_not_created(tmp_path, source, command):
    link = tmp_path / "out.data"
    link.symlink_to(tmp_path / "elsewhere")
    assert main(_commands(source)[command](link)) in (0, 130)
    assert not (tmp_path / "elsewhere").exists()
    assert link.is_file() and not link.is_symlink()


@pytest.mark.parametrize("command", ["record", "convert"])
@pytest.mark.parametrize("kind", ["directory", "device", "link to directory", "empty", "missing directory",
                                  "file as directory"])
def test_unusable_outputs_are_one_line_and_exit_2(tmp_path, source, capsys, command, kind):
    out = tmp_path / "out.data"
    if kind == "directory":
        out.mkdir()
        (out / "keep").write_text("x")
    elif kind == "device":
        os.mknod(out, 0o600 | stat.S_IFCHR, os.makedev(1, 3))       # like /dev/null
    elif kind == "link to directory":
        (tmp_path / "d").mkdir()
        out.symlink_to(tmp_path / "d")
    elif kind == "empty":
        out = ""
    elif kind == "missing directory":
        out = tmp_path / "nonexistent" / "x.data"
    elif kind == "file as directory":
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" / "x.data"
    before = sorted(os.listdir(tmp_path))
    assert main(_commands(source)[command](out)) == 2
    line = _one_error_line(capsys)
    assert "-o" in line
    assert sorted(os.listdir(tmp_path)) == before          # nothing renamed, nothing created
    if kind == "directory":
        assert (tmp_path / "out.data" / "keep").read_text() == "x"
    if kind == "device":
        assert stat.S_ISCHR(os.lstat(tmp_path / "out.data").st_mode)


def test_convert_over_an_existing_file_keeps_it_as_old(tmp_path, source):
    out = tmp_path / "out.data"
    out.write_bytes(b"old content")
    assert main(_convert_cmd(out, source)) == 0
    assert (tmp_path / "out.data.old").read_bytes() == b"old content"
    assert read_record(out).same_data(read_record(source))


def test_modes_do_not_follow_the_umask(tmp_path, source):
    old = os.umask(0)
    try:
        image = tmp_path / "wss.png"
        assert main(["report", "wss", "-i", str(source), "--plot", str(image)]) == 0
        assert main(_convert_cmd(tmp_path / "j.data", source)) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(image.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "j.data").stat().st_mode) == 0o600


def test_diff_checks_every_output_before_writing_any(tmp_path, source, capsys):
    """`--markdown "$GITHUB_STEP_SUMMARY"` with the variable unset: no other output is written first."""
    json_out = tmp_path / "diff.json"
    code = main(["report", "diff", str(source), str(source), "--json", str(json_out), "--markdown", ""])
    assert code == 2
    assert "--markdown" in _one_error_line(capsys)
    assert not json_out.exists()


def test_stdout_on_a_full_device_is_one_line(source):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "damo", "report", "raw", "-i", str(source)], stdout=full,
                              stderr=subprocess.PIPE, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "No space left" in proc.stderr


def _in_private_tmpfs(tmp_path, size: str, script: str) -> subprocess.CompletedProcess:
    """Run ``script`` (Python) with a tmpfs of ``size`` mounted at tmp_path/small, in a private mount
    namespace (so nothing is mounted on the host); MNT is its path."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    code = (f"import subprocess; subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size={size}', 'tmpfs', {str(mnt)!r}], "
            f"check=True)\nMNT = {str(mnt)!r}\n" + script)
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", code],
                          capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    if proc.returncode and "unshare failed" in proc.stderr:
        pytest.skip(f"unshare refused here: {proc.stderr.strip()}")
    return proc


NEEDS_UNSHARE = pytest.mark.skipif(not shutil.which("unshare") or os.geteuid() != 0,
                                   reason="needs root and unshare (util-linux)")


@NEEDS_UNSHARE
@pytest.mark.parametrize("fmt", ["native", "json_compressed"])
def test_full_disk_keeps_the_record_so_far(tmp_path, fmt):
    """A writer on a small tmpfs that fills up: a one-line error, and every chunk written before
    reads back (for JSON, from the native .partial file)."""
    script = f"""
import numpy as np
from damo.errors import DamoError
from damo.formats import native, open_writer, read_record
from tests.conftest import make_record
native.FLUSH_REGIONS = 200
record = make_record(nr_snapshots=400, nr_regions=50, seed=3)
writer = open_writer(MNT + "/r.data", record.meta, {fmt!r})
try:
    for snap in record.snapshots():
        writer.append(snap.target_id, snap.start_ns, snap.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age)
    writer.close()
    print("no error")
except DamoError as err:
    print("error:", err)
path = MNT + "/r.data" + ("" if {fmt!r} == "native" else ".partial")
back = read_record(path)
print(back.nr_snapshots, back.same_data(record.select(np.arange(record.nr_snapshots) < back.nr_snapshots)))
"""
    proc = _in_private_tmpfs(tmp_path, "32k", script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    message, result = proc.stdout.strip().splitlines()
    assert message.startswith("error:") and "r.data" in message and "No space left" in message
    kept, exact = result.split()
    assert 0 < int(kept) < 400 and exact == "True"


@NEEDS_UNSHARE
def test_full_disk_record_is_one_line_exit_2(tmp_path):
    script = f"""
import subprocess, sys
proc = subprocess.run([sys.executable, "-m", "damo", "record", {CONFIG!r}, "-o", MNT + "/r.data"],
                      capture_output=True, text=True)
print(proc.returncode)
sys.stdout.write(proc.stderr)
"""
    proc = _in_private_tmpfs(tmp_path, "4k", script + "\n")
    assert proc.returncode == 0, proc.stderr
    code, *err = proc.stdout.splitlines()
    assert code == "2", proc.stdout
    assert not any("Traceback" in line for line in err)
    assert [line for line in err if line.startswith("damo: error:")] and "No space left" in proc.stdout


@NEEDS_UNSHARE
@pytest.mark.parametrize("command", [["record", CONFIG], ["convert", "--format", "json_compressed"],
                                     ["report", "heatmap", "--output", "PNG"]])
def test_a_directory_we_cannot_write_is_one_line_exit_2(tmp_path, command):
    """Root passes permission checks, so the directory is made unwritable the only way that binds root:
    a read-only bind mount, in a private mount namespace (nothing changes on the host)."""
    source = tmp_path / "in.data"
    done = run_cli("record", CONFIG, "-o", str(source))
    assert done.returncode == 0, done.stderr
    argv = [a.replace("PNG", "MNT/h.png") for a in command]
    if command[0] == "convert":
        argv += ["-i", str(source), "-o", "MNT/out.data"]
    elif command[0] == "record":
        argv += ["-o", "MNT/r.data"]
    else:
        argv += ["-i", str(source)]
    script = f"""
import subprocess, sys
subprocess.run(["mount", "--bind", "-o", "ro", MNT, MNT], check=True)
subprocess.run(["mount", "-o", "remount,bind,ro", MNT], check=True)
argv = [a.replace("MNT", MNT) for a in {argv!r}]
proc = subprocess.run([sys.executable, "-m", "damo", *argv], capture_output=True, text=True)
print(proc.returncode)
sys.stdout.write(proc.stderr)
import os
print("left:", sorted(os.listdir(MNT)))
"""
    proc = _in_private_tmpfs(tmp_path, "1m", script)
    assert proc.returncode == 0, proc.stderr
    code, *err, left = proc.stdout.splitlines()
    assert code == "2", proc.stdout
    assert len(err) == 1 and err[0].startswith("damo: error:") and "MNT" not in err[0], err
    assert str(tmp_path / "small") in err[0] and "not writable" in err[0], err
    assert left == "left: []"
