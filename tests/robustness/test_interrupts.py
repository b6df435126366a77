"""Deterministic signal injection: a KeyboardInterrupt raised before each statement of the record
writers' append, flush and close paths (via sys.settrace), then ``close()`` as ``damo record``'s
finish does. The file must read back as an exact prefix of what was appended, holding at least
every snapshot whose append returned, and the writer's count (the closing message) must match it.

This is issue 14, items 1-3: a signal between the statements of ``append`` used to make the whole
native record unreadable, one between a chunk's write and its buffer reset wrote the chunk twice,
and a JSON record interrupted while being written out was lost.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from damo.formats import damo_json, native, open_writer, read_record
from tests.conftest import make_record

WRITER_FILES = {native.__file__, damo_json.__file__, str(Path(native.__file__).parent.parent / "output_path.py")}
# Keep the run short: at most this many injection points per format, spread over all of them.
# (The JSON writers convert on close, so each of their points costs more.)
MAX_POINTS = int(os.environ.get("ROBUSTNESS_INTERRUPT_POINTS", 150))
POINTS_SHARE = {"native": 1.0, "json_compressed": 0.4, "json": 0.3}


class _InterruptAt:
    """A tracer that raises KeyboardInterrupt at the ``target``-th line executed in the writers."""

    def __init__(self, target: int | None):
        self.target = target
        self.count = 0

    def __call__(self, frame, event, arg):
        if frame.f_code.co_filename not in WRITER_FILES:
            return None
        return self._line

    def _line(self, frame, event, arg):
        if event == "line":
            self.count += 1
            if self.count == self.target:
                raise KeyboardInterrupt
        return self._line


def _append_all(writer, record, tracer) -> int:
    """Append every snapshot and close under ``tracer``; the number of appends that returned."""
    appended = 0
    sys.settrace(tracer)
    try:
        for snap in record.snapshots():
            writer.append(snap.target_id, snap.start_ns, snap.end_ns, snap.start, snap.end, snap.nr_accesses,
                          snap.age)
            appended += 1
        writer.close()
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    return appended


@pytest.mark.parametrize("fmt", ["native", "json_compressed", "json"])
def test_interrupt_before_each_writer_statement(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(native, "FLUSH_REGIONS", 40)          # a chunk every few snapshots
    monkeypatch.setattr(os, "fsync", lambda fd: None)          # durability is not what this tests; speed is
    record = make_record(nr_snapshots=12, nr_regions=9, nr_targets=2)
    counter = _InterruptAt(None)
    path = tmp_path / "count.data"
    _append_all(open_writer(path, record.meta, fmt), record, counter)
    assert read_record(path).same_data(record)
    nr_points = min(int(MAX_POINTS * POINTS_SHARE[fmt]), counter.count)
    points = np.unique(np.linspace(1, counter.count, nr_points).astype(int))
    checked = 0
    for point in points.tolist():
        path = tmp_path / f"r{point}.data"
        writer = open_writer(path, record.meta, fmt)
        appended = _append_all(writer, record, _InterruptAt(point))
        writer.close()                         # what finish() does after the interruption
        back = read_record(path)
        kept = back.nr_snapshots
        # The interrupted append may or may not have landed; nothing before it is lost.
        assert appended <= kept <= min(appended + 1, record.nr_snapshots), point
        assert back.same_data(record.select(np.arange(record.nr_snapshots) < kept)), point
        assert writer.nr_snapshots == kept, point
        assert not os.path.exists(damo_json.partial_path(path))
        path.unlink()
        checked += 1
    assert checked >= nr_points // 2
