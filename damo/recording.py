"""The recording core: what every record source shares, and nothing of the command line.

A source (``damo.sources.*``) receives a ``RecordRequest``, builds the record's metadata with
``base_meta``, opens a ``SnapshotSink`` with ``open_sink`` (the existing output rotates to
``*.old``), appends snapshots to it and ends with ``finish``. ``damo.record`` turns command-line
options into the request; sources must not import it (see docs/architecture.md).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from dataclasses import dataclass, field

from damo import __version__
from damo.errors import DamoError
from damo.formats import DEFAULT_FORMAT, open_writer, rotate_existing
from damo.model import INTERVALS_GOAL_FIELDS, INTERVALS_GOAL_KEY, MonitoringAttrs, RecordMeta
from damo.output_path import check_output
from damo.progress import RecordProgress

# Set by `damo record --vm` for the record inside the VM: the -o path on the host, which is
# what the messages should name (the guest writes to a temporary directory).
HOST_OUT_ENV = "DAMO_HOST_OUT"


@dataclass
class RecordRequest:
    """Everything a record source needs to know, parsed once from the command line."""

    target: list[str]
    attrs: MonitoringAttrs
    ops: str | None = None
    damon_interface: str = "auto"       # auto | sysfs | debugfs (damo.kernel.backend)
    timeout: float | None = None
    seed: int = 0
    shell: bool = False
    regions: list[tuple[int, int]] = field(default_factory=list)
    vm_kernel: str | None = None
    vm_accel: str = "auto"              # --vm-accel: auto | kvm | tcg (damo.vm_accel)
    vm_tlb_flush: str = "auto"          # --vm-tlb-flush: auto | on | off
    out: str = "damon.data"
    output_type: str = DEFAULT_FORMAT
    argv: list[str] = field(default_factory=list)   # the original record arguments, for --vm
    kdamonds: list[str] = field(default_factory=list)   # record ongoing: kdamond indexes, or "stat"
    labels: dict[str, str] = field(default_factory=dict)   # KEY=VALUE labels kept in the record
    # Several targets, child tasks, damo 3.4.3's record options (damo.record's one block of them)
    child_tasks: bool = True                 # --include_child_tasks / --exclude_child_tasks
    numa_nodes: list[int] = field(default_factory=list)    # --numa_node: paddr over those nodes' memory
    output_permission: int = 0o600           # --output_permission, applied once the record is complete
    snapshot: tuple[float, int] | None = None   # --snapshot DELAY COUNT
    # --do_record: "access" and what is sampled beside it (damo.sources.proc_sampler.SIDE_KINDS)
    do_record: tuple[str, ...] = ("access", "mem_footprint", "vmas", "proc_stats")
    # --monitoring_intervals_goal ACCESS_BP AGGRS MIN_SAMPLE_US MAX_SAMPLE_US, None: not tuned
    intervals_goal: tuple[int, int, int, int] | None = None
    # damo 3.x's --kdamond markers: each kdamond's pids ([]: one kdamond, the usual record)
    kdamond_pids: list[list[int]] = field(default_factory=list)


class SnapshotSink:
    """Where a source puts snapshots: the record writer plus the progress display."""

    def __init__(self, writer, progress: RecordProgress):
        self.writer = writer
        self.progress = progress
        # perf_script files hold neither side data nor per-snapshot intervals: they are dropped
        self.keeps_side = hasattr(writer, "append_side")
        self.nr_snapshots = 0
        self.nr_regions = 0

    def append(self, target_id, start_ns, end_ns, start, end, nr_accesses, age=None,
               sample_us: int | None = None) -> None:
        """Write one snapshot and show it in the progress display; ``sample_us`` is the snapshot's
        own sampling interval when intervals are auto-tuned."""
        if sample_us is not None and self.keeps_side:
            self.writer.append(target_id, start_ns, end_ns, start, end, nr_accesses, age, sample_us=sample_us)
        else:
            self.writer.append(target_id, start_ns, end_ns, start, end, nr_accesses, age)
        self.nr_snapshots += 1
        self.nr_regions += len(start)
        self.progress.update(end_ns, self.nr_snapshots, len(start))

    def append_side(self, kind: str, entry: dict) -> None:
        """Keep one sample of what damo records beside the accesses (damo.sources.proc_sampler)."""
        if self.keeps_side:
            self.writer.append_side(kind, entry)

    def flush(self) -> None:
        self.writer.flush()

    def update_meta(self, meta: RecordMeta) -> bool:
        """Keep changed metadata (targets found while recording) where the format can."""
        return self.writer.update_meta(meta)


def base_meta(request: RecordRequest, target_kind: str, target: str) -> RecordMeta:
    """The metadata every source records: what was monitored and with which attributes."""
    a = request.attrs
    meta = RecordMeta(target_kind=target_kind, target=target, sample_us=a.sample_us, aggr_us=a.aggr_us,
                      update_us=a.update_us, min_nr_regions=a.min_nr_regions, max_nr_regions=a.max_nr_regions,
                      tool_version=__version__, labels=dict(request.labels))
    if request.intervals_goal is not None:
        meta.extra[INTERVALS_GOAL_KEY] = dict(zip(INTERVALS_GOAL_FIELDS, request.intervals_goal))
    return meta


def open_sink(request: RecordRequest, meta: RecordMeta, total_ns: int | None = None,
              clock: str = "time", meta_reserve: int = 0) -> SnapshotSink:
    """Rotate an existing output to ``*.old`` and open the writer and progress display
    (``meta_reserve``: room for metadata that grows while recording, see ``SnapshotSink.update_meta``)."""
    check_output(request.out, "-o")
    rotate_existing(request.out)
    try:
        writer = open_writer(request.out, meta, request.output_type, meta_reserve=meta_reserve)
    except OSError as err:
        raise DamoError(f"{request.out}: cannot create ({err.strerror})") from None
    return SnapshotSink(writer, RecordProgress(total_ns=total_ns, clock=clock))


def finish(sink: SnapshotSink, request: RecordRequest, interrupted: bool = False) -> None:
    """Close the writer and the progress display, then say where the record went.

    SIGINT and SIGTERM wait until the record is closed: a second Ctrl-C during the final
    write-out (or a JSON conversion) would otherwise lose it.
    """
    with deferred_signals():
        sink.progress.close()
        sink.writer.close()
        if request.output_permission != 0o600 and os.path.exists(request.out):
            os.chmod(request.out, request.output_permission)
        how = "interrupted; " if interrupted else ""
        out = os.environ.get(HOST_OUT_ENV) or request.out
        # The writer's own counts: the sink's may miss a snapshot a signal interrupted mid-append.
        nr_snapshots = getattr(sink.writer, "nr_snapshots", sink.nr_snapshots)
        nr_regions = getattr(sink.writer, "nr_regions", sink.nr_regions)
        print(f"{how}wrote {nr_snapshots} snapshots ({nr_regions} regions) to {out}", file=sys.stderr)
        print(f"view it with: damo report heatmap -i {out}", file=sys.stderr)


@contextlib.contextmanager
def deferred_signals():
    """Hold SIGINT and SIGTERM until the block is done (then they are delivered)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
