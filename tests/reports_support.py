"""Helpers for the report tests: golden files, ANSI stripping, damo json_compressed files, the peer."""
from __future__ import annotations

import json
import os
import re
import zlib
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
    """A json_compressed file as damo writes it, for feeding the real damo."""
    try:
        from damo.formats import write_record
        from damo.formats.damo_json import Writer  # noqa: F401  (present once the formats land)
        write_record(record, path, "json_compressed")
        return
    except Exception:
        pass
    out = []
    for tid in record.target_ids():
        rec = record.for_target(tid)
        snaps = []
        for s in rec.snapshots():
            regions = [{"start": f"{a:,}", "end": f"{b:,}", "nr_accesses": {"samples": n, "percent": None},
                        "age": {"usec": None, "aggr_intervals": g if g >= 0 else None}}
                       for a, b, n, g in zip(s.start.tolist(), s.end.tolist(), s.nr_accesses.tolist(),
                                             s.age.tolist())]
            snaps.append({"start_time": str(s.start_ns), "end_time": str(s.end_ns), "regions": regions,
                          "total_bytes": None})
        out.append({"kdamond_idx": 0, "context_idx": 0,
                    "intervals": {"sample_us": "5 ms", "aggr_us": "100 ms", "ops_update_us": "1 s"},
                    "scheme_idx": None, "target_id": tid, "snapshots": snaps})
    with open(path, "wb") as f:
        f.write(zlib.compress(json.dumps(out, indent=4).encode()))


def peer_or_skip(version: str = "2.6.4") -> list[str]:
    """The real damo's argv, or skip the test where it cannot be installed."""
    from bench.peers import PeerUnavailable, peer_damo
    try:
        return peer_damo(version)
    except PeerUnavailable as err:
        pytest.skip(str(err))
