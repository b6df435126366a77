"""The ``report`` command: a lazy registry of reports, each a module of its own.

A report module defines ``DESCRIPTION``, ``EXAMPLES``, ``add_arguments(parser)`` and
``run(args) -> int`` (see damo.cli); its analysis lives in pure numpy functions beside the
renderers, so tests can check numbers without parsing text. Its selection options (target,
time, addresses, snapshots) come from damo.selection. Register it in ``REPORTS`` below with the
line ``damo report --help`` shows for it: the module is imported only when the report runs.
"""
from __future__ import annotations

import argparse
import os

from damo.cli import Command, add_commands

REPORTS: dict[str, Command] = {
    "raw": Command("damo.raw", "print the snapshots region by region (damo 2.x's raw report)"),
    "heats": Command("damo.report_commands.heats", "when which address ranges were how frequently accessed (damo 2.x)"),
    "heatmap": Command("damo.report_commands.heatmap", "the access heatmap (damo 3.x name of heats)"),
    "wss": Command("damo.report_commands.wss", "distribution of the working set size"),
    "nr_regions": Command("damo.report_commands.nr_regions", "distribution of the number of monitoring regions"),
    "access": Command("damo.access", "each snapshot's regions, heatmap and temperatures (damo 3.x)"),
    "times": Command("damo.times", "time ranges of the snapshots with regions of an access pattern (damo 3.x)"),
    "footprints": Command("damo.footprints", "distribution of the recorded memory footprints (damo 3.x)"),
    "record_info": Command("damo.record_info", "time span and address areas of each target (damo 3.x)"),
    "html": Command("damo.html_report", "one self-contained interactive HTML page of the record"),
    "diff": Command("damo.diff.command", "compare records (repeated runs) for CI regression gates"),
    "damon": Command("damo.damon_report", "what the kernel's DAMON is doing now (read-only; alias: damo status)"),
}

DESCRIPTION = """\
Analyse a record file that `damo record` (or the upstream damo tool) wrote. Each report reads
the record given with -i (default: damon.data), in any of the formats damo reads."""

EXAMPLES = """\
examples:
  damo report heatmap -i stairs.data       # the access heatmap in the terminal
  damo report wss --raw_number             # working set size percentiles in bytes
  damo report raw | head                   # the snapshots, region by region
  damo report REPORT --help                # the options of one report"""


def add_input_argument(parser: argparse.ArgumentParser) -> None:
    """``-i FILE``: the record a report reads."""
    parser.add_argument("-i", "--input", default="damon.data", metavar="FILE",
                        help="record file (default: damon.data)")


def keep_freed_memory() -> None:
    """Have glibc's malloc keep freed memory for reuse rather than hand it back at once.

    A report frees and allocates tens of MB of numpy temporaries per record chunk or pixel
    buffer. By default glibc returns such blocks to the kernel when freed, and touching them
    again costs a page fault per 4 KiB: on a 6 M-region record that was 50-80 thousand faults
    and 0.3-0.7 s of system time, three to four times fewer with these two settings. Other C
    libraries are left as they are.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)      # blocks below 32 MiB come from the heap...
    mallopt(m_trim_threshold, 256 << 20)     # ...which keeps up to 256 MiB free for reuse


def load_record(path: str, columns: tuple[str, ...] | None = None):
    """Read a record for a report; a record without a single region is one named error (exit 2).

    ``columns``: the region columns the report reads, if not all (see read_record).
    """
    from damo.errors import RecordFileError
    from damo.formats import read_record

    keep_freed_memory()
    record = read_record(path, columns)
    if len(record.start) == 0:
        what = "no snapshots" if record.nr_snapshots == 0 else f"{record.nr_snapshots} snapshots but no regions"
        raise RecordFileError(path, f"the record holds {what}: nothing to report")
    return record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_commands(parser, REPORTS, "report", "REPORT", "_report_run", required=True)


def run(args: argparse.Namespace) -> int:
    no_transparent_huge_pages()
    return int(args._report_run(args) or 0)


def no_transparent_huge_pages() -> None:
    """Keep numpy from asking for transparent huge pages (unless the user says otherwise).

    numpy advises the kernel to back every array of 4 MiB and more with 2 MiB pages. Where
    free huge pages are scarce (any machine that has run a while), each such fault compacts
    memory on the spot: a 6 M-region heatmap took 0.5-0.6 s of system time with the advice and
    0.2 s without, for the same user time (a loaded 2-core machine). numpy reads the setting
    when it is first imported, which for a report is after this.
    """
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
