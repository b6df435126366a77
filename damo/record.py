"""Record data accesses into a record file.

TARGET picks the source: a masim config (``*.cfg``, or ``--ops sim``) runs the user-space
DAMON engine on the simulator; ``--vm`` runs the kernel record inside a VM; anything else
(a command, a pid, ``paddr``) uses this machine's kernel DAMON.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from dataclasses import dataclass, field

from damo import __version__
from damo.errors import DamoError
from damo.kernel.backend import ALTERNATIVES, INTERFACES, choose_backend
from damo.formats import DEFAULT_FORMAT, FORMATS, open_writer, rotate_existing
from damo.model import MonitoringAttrs, RecordMeta
from damo.progress import RecordProgress

# source name -> module with `record(request, sink) -> int`
SOURCES = {
    "sim": "damo.sources.sim",
    "kernel": "damo.sources.kernel",
    "vm": "damo.sources.vm",
    "page_idle": "damo.sources.page_idle",
    "debugfs": "damo.sources.debugfs",
}
# damo record's backend (damo.kernel.backend) -> source name
BACKEND_SOURCES = {"sysfs": "kernel", "debugfs": "debugfs", "page_idle": "page_idle"}
# Set by `damo record --vm` for the record inside the VM: the -o path on the host, which is
# what the messages should name (the guest writes to a temporary directory).
HOST_OUT_ENV = "DAMO_HOST_OUT"


@dataclass
class RecordRequest:
    """Everything a record source needs to know, parsed once from the command line."""

    target: list[str]
    attrs: MonitoringAttrs
    ops: str | None = None
    damon_interface: str = "auto"
    timeout: float | None = None
    seed: int = 0
    shell: bool = False
    regions: list[tuple[int, int]] = field(default_factory=list)
    vm_kernel: str | None = None
    out: str = "damon.data"
    output_type: str = DEFAULT_FORMAT
    argv: list[str] = field(default_factory=list)   # the original record arguments, for --vm


class SnapshotSink:
    """Where a source puts snapshots: the record writer plus the progress display."""

    def __init__(self, writer, progress: RecordProgress):
        self.writer = writer
        self.progress = progress
        self.nr_snapshots = 0
        self.nr_regions = 0

    def append(self, target_id, start_ns, end_ns, start, end, nr_accesses, age=None) -> None:
        self.writer.append(target_id, start_ns, end_ns, start, end, nr_accesses, age)
        self.nr_snapshots += 1
        self.nr_regions += len(start)
        self.progress.update(end_ns, self.nr_snapshots, len(start))

    def flush(self) -> None:
        self.writer.flush()


def add_monitoring_arguments(parser: argparse.ArgumentParser) -> None:
    """damo's monitoring attribute options, shared by every command that starts monitoring."""
    parser.add_argument("-s", "--sample", type=int, default=5000, metavar="US", help="sampling interval (us)")
    parser.add_argument("-a", "--aggr", type=int, default=100000, metavar="US", help="aggregation interval (us)")
    parser.add_argument("-u", "--updr", type=int, default=1000000, metavar="US",
                        help="regions update interval (us)")
    parser.add_argument("-n", "--minr", type=int, default=10, help="minimum number of regions")
    parser.add_argument("-m", "--maxr", type=int, default=1000, help="maximum number of regions")


def parse_regions(text: str) -> list[tuple[int, int]]:
    """``"S-E S-E ..."`` into address pairs."""
    regions = []
    for item in text.replace(",", " ").split():
        try:
            start, end = (int(x, 0) for x in item.split("-"))
        except ValueError:
            raise DamoError(f"--regions: '{item}' is not START-END") from None
        if start >= end:
            raise DamoError(f"--regions: '{item}' is empty or reversed")
        regions.append((start, end))
    return sorted(regions)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # nargs="*" (not REMAINDER) so options may follow TARGET, as in damo; a command line
    # with its own options goes after "--" or in one quoted string.
    parser.add_argument("target", nargs="*", metavar="TARGET",
                        help="masim config (.cfg), command line, pid, or 'paddr'")
    add_monitoring_arguments(parser)
    parser.add_argument("-o", "--out", default="damon.data", help="output file (default: damon.data)")
    parser.add_argument("--output_type", choices=list(FORMATS), default=DEFAULT_FORMAT,
                        help=f"output format (default: {DEFAULT_FORMAT})")
    parser.add_argument("--timeout", type=float, metavar="SEC", help="stop recording after SEC seconds")
    parser.add_argument("--ops", choices=["vaddr", "fvaddr", "paddr", "sim", "page_idle"],
                        help="operations set (default: deduced from TARGET); page_idle: damo's own "
                             "engine over idle page tracking, for kernels without DAMON")
    parser.add_argument("--damon_interface", choices=list(INTERFACES), default="auto",
                        help="the kernel DAMON interface to use: sysfs, debugfs (Linux 5.15 and older), "
                             "or auto: sysfs if present, else debugfs, else idle page tracking "
                             "(default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the simulator engine")
    parser.add_argument("--shell", action="store_true",
                        help="run the command line through bash (else /bin/sh); DAMON monitors the "
                             "shell's pid, which bash gives to the line's last command")
    parser.add_argument("-r", "--regions", type=parse_regions, default=[], metavar="'S-E ...'",
                        help="monitoring regions (paddr, fvaddr)")
    parser.add_argument("--vm", action="store_true", help="record inside a VM with a DAMON-capable kernel")
    parser.add_argument("--vm-kernel", dest="vm_kernel", metavar="PATH", help="kernel image for --vm")


def pick_source(request: RecordRequest, use_vm: bool) -> str:
    if use_vm:
        return "vm"
    # A lone masim config is simulated; "masim X.cfg" (one quoted command line) runs masim for real.
    lone = request.target[0] if len(request.target) == 1 else ""
    if request.ops == "sim" or (lone.endswith(".cfg") and len(lone.split()) == 1):
        return "sim"
    backend = choose_backend(request.damon_interface, request.ops)
    if backend.name not in BACKEND_SOURCES:
        raise DamoError(f"the DAMON {backend.name} backend is not available in this version of damo "
                        f"({backend.reason}). {ALTERNATIVES}")
    return BACKEND_SOURCES[backend.name]


def request_from_args(args: argparse.Namespace) -> RecordRequest:
    target = list(args.target)
    if target and target[0] == "--":
        target = target[1:]
    if not target:
        raise DamoError("record: a TARGET is needed (a masim .cfg file, a command, a pid or 'paddr')")
    attrs = MonitoringAttrs(args.sample, args.aggr, args.updr, args.minr, args.maxr)
    try:
        attrs.check()
    except ValueError as err:
        raise DamoError(f"record: bad monitoring attributes: {err}") from None
    if args.timeout is not None and args.timeout <= 0:
        raise DamoError("--timeout must be positive")
    return RecordRequest(target=target, attrs=attrs, ops=args.ops, damon_interface=args.damon_interface,
                         timeout=args.timeout, seed=args.seed,
                         shell=args.shell, regions=args.regions, vm_kernel=args.vm_kernel, out=args.out,
                         output_type=args.output_type)


def base_meta(request: RecordRequest, target_kind: str, target: str) -> RecordMeta:
    a = request.attrs
    return RecordMeta(target_kind=target_kind, target=target, sample_us=a.sample_us, aggr_us=a.aggr_us,
                      update_us=a.update_us, min_nr_regions=a.min_nr_regions, max_nr_regions=a.max_nr_regions,
                      tool_version=__version__)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    request = request_from_args(args)
    source_name = pick_source(request, args.vm)
    source = importlib.import_module(SOURCES[source_name])
    # SIGTERM stops a record like Ctrl-C does: sources clean up in their finally blocks.
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return source.record(request)
    finally:
        signal.signal(signal.SIGTERM, previous)


def open_sink(request: RecordRequest, meta: RecordMeta, total_ns: int | None = None,
              clock: str = "time") -> SnapshotSink:
    """Rotate an existing output to ``*.old`` and open the writer and progress display."""
    rotate_existing(request.out)
    try:
        writer = open_writer(request.out, meta, request.output_type)
    except OSError as err:
        raise DamoError(f"{request.out}: cannot create ({err.strerror})") from None
    return SnapshotSink(writer, RecordProgress(total_ns=total_ns, clock=clock))


def finish(sink: SnapshotSink, request: RecordRequest, interrupted: bool = False) -> None:
    """Close the writer and the progress display, then say where the record went."""
    sink.progress.close()
    sink.writer.close()
    how = "interrupted; " if interrupted else ""
    out = os.environ.get(HOST_OUT_ENV) or request.out
    print(f"{how}wrote {sink.nr_snapshots} snapshots ({sink.nr_regions} regions) to {out}",
          file=sys.stderr)
    print(f"view it with: damo report heatmap -i {out}", file=sys.stderr)
