"""Rewrite a record file in another format: ``damo convert_record_format`` (damo 3.x's name of convert).

Without ``--output_file`` the record file is replaced in place (written to a temporary file
beside it first, so a failure leaves the original untouched).

Example: damo convert_record_format --record_file damon.data --format json_compressed
"""
from __future__ import annotations

import argparse
import os
import tempfile

from damo.errors import DamoError
from damo.formats import FORMATS, read_record, write_record
from damo.output_path import check_output


DESCRIPTION = """\
damo 3.x's name and options for convert: rewrite a record file in another format, in place
unless --output_file is given (the original stays untouched if writing fails)."""

EXAMPLES = """\
examples:
  damo convert_record_format --record_file damon.data
  damo convert_record_format --record_file damon.data --format native --output_file small.data"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--record_file", default="damon.data", metavar="FILE",
                        help="the record file (default: damon.data)")
    parser.add_argument("--format", choices=list(FORMATS), default="json_compressed",
                        help="new file format (default: json_compressed)")
    parser.add_argument("--output_file", metavar="FILE", help="where to write (default: the record file itself)")


def run(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.record_file):
        raise DamoError(f"--record_file: {args.record_file} does not exist")
    if args.output_file:
        check_output(args.output_file, "--output_file")
    record = read_record(args.record_file)
    if args.output_file:
        write_record(record, args.output_file, args.format)
        return 0
    directory = os.path.dirname(os.path.abspath(args.record_file))
    fd, tmp = tempfile.mkstemp(prefix=".convert-", dir=directory)
    os.close(fd)
    try:
        write_record(record, tmp, args.format, sidecars=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, args.record_file)
        if args.format in ("json", "json_compressed"):
            from damo.formats.damo_json import write_sidecars
            write_sidecars(record, args.record_file)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 0
