"""Convert a record file between formats (native, json_compressed, json, perf_script)."""
from __future__ import annotations

import argparse

from damo.formats import DEFAULT_FORMAT, FORMATS, read_record, write_record


DESCRIPTION = """\
Convert a record file to another format: native (this tool's own, the smallest and fastest),
the upstream damo tool's json_compressed and json, or perf_script text. The input format is
recognised by content."""

EXAMPLES = """\
examples:
  damo convert -i stairs.data -o stairs.json_compressed --format json_compressed
  damo convert -i damo_record.data -o stairs.data"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", default="damon.data", metavar="FILE", help="record file to read")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    parser.add_argument("--format", choices=list(FORMATS), default=DEFAULT_FORMAT,
                        help=f"output format (default: {DEFAULT_FORMAT})")


def convert(input_path: str, output_path: str, fmt: str = DEFAULT_FORMAT) -> None:
    """Read ``input_path`` in whatever format it is and write it as ``fmt``."""
    write_record(read_record(input_path), output_path, fmt)


def run(args: argparse.Namespace) -> int:
    convert(args.input, args.output, args.format)
    return 0
