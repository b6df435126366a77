"""Record labels: ``KEY=VALUE`` pairs kept in a record's metadata, for grouping records of a fleet.

Keys and values become directory names of a hive-partitioned dataset (``service=web/``) and
column names in SQL, so both are kept to characters that are safe in paths and identifiers.
"""
from __future__ import annotations

import os
import re
import socket

from damo import __version__
from damo.errors import DamoError

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
VALUE_RE = re.compile(r"^[A-Za-z0-9._:+@-]{1,255}$")
# Recorded by default; a --label of the same key replaces the default.
DEFAULT_KEYS = ("host", "kernel", "damo_version")


def check_label(key: str, value: str, where: str = "--label") -> None:
    """Raise DamoError unless ``key`` and ``value`` are a usable label."""
    if not KEY_RE.match(key):
        raise DamoError(f"{where}: bad label key '{key}' (letters, digits and _, not starting with a digit)")
    if not VALUE_RE.match(value):
        raise DamoError(f"{where}: bad value '{value}' of label '{key}' "
                        f"(letters, digits and . _ - + : @ only, not empty)")


def parse_label(text: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` into ``(key, value)``; one-line DamoError if it is not that."""
    key, sep, value = text.partition("=")
    if not sep:
        raise DamoError(f"--label: '{text}' is not KEY=VALUE (for example service=web)")
    check_label(key, value)
    return key, value


def default_labels() -> dict[str, str]:
    """The labels every record gets: this host's name, kernel release and damo's version."""
    host = socket.gethostname().split(".")[0] or "unknown"
    labels = {"host": host, "kernel": os.uname().release, "damo_version": __version__}
    # Keep the defaults usable as labels even where a host name has unusual characters.
    return {k: re.sub(r"[^A-Za-z0-9._:+@-]", "_", v) for k, v in labels.items()}


def record_labels(given: list[tuple[str, str]] | None) -> dict[str, str]:
    """The default labels, then the given ones (which win), in that order."""
    labels = default_labels()
    labels.update(given or [])
    return labels
