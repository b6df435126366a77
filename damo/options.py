"""Bounded numeric option types: a value outside its documented limits is one argparse error
(exit 2) naming the option and the limit, never a runaway allocation or a traceback.

The limits are listed in docs/reliability.md.
"""
from __future__ import annotations

import argparse
import math


def bounded_int(lo: int, hi: int):
    """An argparse type: an integer in [lo, hi]."""
    def parse(text: str) -> int:
        try:
            value = int(text, 0) if text.strip().lower().startswith(("0x", "-0x")) else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value
    parse.__name__ = "integer"
    return parse


def bounded_float(lo: float, hi: float, lo_open: bool = False):
    """An argparse type: a finite number in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
            raise argparse.ArgumentTypeError(f"{text} is outside {'(' if lo_open else '['}{lo:g}, {hi:g}]")
        return value
    parse.__name__ = "number"
    return parse


def address(text: str) -> int:
    """An address on the command line: decimal, or 0x-prefixed hexadecimal (as /proc/PID/maps shows),
    in [0, 2^64] (an END may be 2^64, the end of the address space)."""
    value = int(text, 0)          # a ValueError: argparse says "invalid address value"
    if not 0 <= value <= 1 << 64:
        raise argparse.ArgumentTypeError(f"{text} is outside the 64-bit address space (0..2^64)")
    return value


# --- options shared by the reports (damo.selection re-exports them) ----------------------------------------------------------------------------

def add_target_option(parser: argparse.ArgumentParser, default_text: str) -> None:
    parser.add_argument("--tid", type=int, metavar="ID", help=f"target id (default: {default_text})")


def add_time_range_option(parser: argparse.ArgumentParser, default_text: str) -> None:
    parser.add_argument("--time_range", type=int, nargs=2, metavar=("START", "END"),
                        help=f"absolute time range in ns (default: {default_text})")


def add_address_range_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--address_range START END``; ``what`` says what the range does, with its default."""
    parser.add_argument("--address_range", type=address, nargs=2, metavar=("START", "END"),
                        help=f"{what}; decimal or 0x hex")


def add_duration_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, nargs=2, metavar=("FROM", "TO"),
                        help="only snapshots starting between these offsets (seconds) from each target's "
                             "first (default: all)")


def add_exclude_samples_option(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument("--exclude_samples", type=int, default=default, metavar="N",
                        help=f"skip the first N snapshots of each target (default: {default})")
