"""Helpers for the report tests: golden files, ANSI stripping, damo json_compressed files, the peer."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from damo.model import Record

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("DAMO_UPDATE_GOLDEN") == "1"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with tests/golden/NAME; DAMO_UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"golden file {path} is missing; run with DAMO_UPDATE_GOLDEN=1 to create it")
    assert text == path.read_text()


def write_damo_json_compressed(record: Record, path) -> None:
    """A json_compressed file as damo writes it, for feeding the real damo (our own writer)."""
    from damo.formats import write_record
    write_record(record, path, "json_compressed")


def peer_or_skip(version: str = "2.6.4") -> list[str]:
    """The real damo's argv, or skip the test where it cannot be installed."""
    from bench.peers import PeerUnavailable, peer_damo
    try:
        return peer_damo(version)
    except PeerUnavailable as err:
        pytest.skip(str(err))
