"""Output files that never clobber what is not ours.

Every file damo writes goes through here:

- ``check_output(path, option)`` refuses, with one line naming the option and the path, what
  cannot be written: an empty path, a directory, a device or other non-regular file (also
  behind a symlink), a missing or non-writable directory. Commands call it for every output
  before they write anything, so a bad last output does not leave the first ones written.
- ``rotate(path)`` renames an existing regular file (or a symlink itself, never its target)
  to ``*.old``, as damo does.
- ``create(path, mode)`` creates a new file with ``O_EXCL | O_NOFOLLOW``: it never writes
  through a symlink, into a device or into an existing file.
- ``replace_atomically(path, mode)`` writes a temporary file beside ``path`` and renames it
  over ``path`` only when complete, so a reader never sees half a file and an interrupted
  write leaves the old file as it was.

Modes are fixed, not taken from the umask: records and anything else that holds addresses
are 0600 (``PRIVATE``); pictures are 0644 (``PUBLIC``).
"""
from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO, Iterator

from damo.errors import DamoError

PRIVATE = 0o600       # records, JSON and markdown reports, masim status: they carry addresses
PUBLIC = 0o644        # images


def _problem(path: str) -> str | None:
    """Why ``path`` cannot be an output file, or None if it can."""
    if path == "":
        return "an empty path"
    try:
        st = os.stat(path)            # follows a symlink: what would we write into?
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        return "a path component is not a directory"
    except OSError as err:
        return err.strerror or str(err)
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            return "is a directory"
        if not stat.S_ISREG(st.st_mode):
            return "is not a regular file (a device, fifo or socket)"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"no such directory {parent}"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {parent} is not writable"
    return None


def check_output(path: str | os.PathLike, option: str) -> None:
    """Raise a DamoError naming ``option`` if ``path`` cannot be written as an output file."""
    text = os.fspath(path)
    problem = _problem(text)
    if problem:
        raise DamoError(f"{option} '{text}': {problem}")


def rotate(path: str | os.PathLike) -> None:
    """Rename an existing output to ``*.old`` so nothing is overwritten (a symlink is renamed
    itself; its target is untouched)."""
    p = Path(path)
    if not p.is_symlink() and not p.exists():
        return
    if not p.is_symlink() and not p.is_file():
        raise DamoError(f"{p}: will not replace a directory or device")
    old = p.with_name(p.name + ".old")
    if old.is_dir() and not old.is_symlink():
        raise DamoError(f"{p}: cannot keep the existing file as {old}, which is a directory")
    try:
        os.replace(p, old)
    except OSError as err:
        raise DamoError(f"{p}: cannot rename to {old} ({err.strerror})") from None


def create(path: str | os.PathLike, mode: int = PRIVATE, binary: bool = True) -> IO:
    """A new file at ``path`` with ``mode``, open for writing.

    ``O_EXCL | O_NOFOLLOW``: an existing regular file is removed first (callers rotate or
    replace when they must keep it); anything else at ``path`` is refused.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise DamoError(f"{path}: exists and is not a regular file; will not write into it") from None
        os.unlink(path)
        fd = os.open(path, flags, mode)
    os.fchmod(fd, mode)              # the umask does not decide
    return os.fdopen(fd, "wb" if binary else "w")


def temp_beside(path: str | os.PathLike) -> str:
    """A temporary name in the same directory as ``path`` (so a rename is atomic)."""
    p = Path(path)
    return str(p.with_name(f".{p.name}.tmp{os.getpid()}"))


@contextlib.contextmanager
def replace_atomically(path: str | os.PathLike, mode: int = PRIVATE) -> Iterator[str]:
    """Yield a temporary path to write; on success it is renamed over ``path`` with ``mode``.

    On any failure or interruption the temporary file is removed and ``path`` is untouched.
    """
    tmp = temp_beside(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str, mode: int = PRIVATE, append: bool = False) -> None:
    """Write ``text`` to ``path`` (or append to it), with ``mode``; one-line errors."""
    try:
        if append and os.path.isfile(path):
            with open(path, "a") as f:
                f.write(text)
            return
        with replace_atomically(path, mode) as tmp, create(tmp, mode, binary=False) as f:
            f.write(text)
    except OSError as err:
        raise DamoError(f"{path}: cannot write ({err.strerror or err})") from None
