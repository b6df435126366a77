"""Analyse a record file: ``damo report REPORT [options]``.

Each report is a module with ``add_arguments(parser)`` and ``run(args) -> int``; analysis lives in
pure numpy functions beside the renderers, so tests can check numbers without parsing text.
"""
from __future__ import annotations

import argparse
import importlib

# report name -> (module, help)
REPORTS: dict[str, tuple[str, str]] = {
    "raw": ("damo.raw", "print the snapshots region by region (damo 2.x's raw report)"),
    "heats": ("damo.heats", "when which address ranges were how frequently accessed (damo 2.x)"),
    "heatmap": ("damo.heatmap", "the access heatmap (damo 3.x name of heats)"),
    "wss": ("damo.wss", "distribution of the working set size"),
    "nr_regions": ("damo.nr_regions", "distribution of the number of monitoring regions"),
    "html": ("damo.html_report", "one self-contained interactive HTML page of the record"),
    "diff": ("damo.diff_cli", "compare records (repeated runs) for CI regression gates"),
}


def add_input_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", default="damon.data", metavar="FILE",
                        help="record file (default: damon.data)")


def address(text: str) -> int:
    """An address on the command line: decimal, or 0x-prefixed hexadecimal (as /proc/PID/maps shows)."""
    return int(text, 0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from damo.cli import ArgumentParser

    sub = parser.add_subparsers(dest="report", metavar="REPORT", parser_class=ArgumentParser)
    sub.required = True
    for name, (module_name, help_text) in REPORTS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(cmd)
        cmd.set_defaults(_report_run=module.run)


def run(args: argparse.Namespace) -> int:
    return int(args._report_run(args) or 0)
