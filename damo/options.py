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


_TIME_UNITS_US = {"ns": 1e-3, "us": 1, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6, "d": 86400e6}


def time_us(text: str) -> int:
    """damo's time text in microseconds: a plain number (µs) or a number with a unit (``5ms``,
    ``10s``, ``1.5 m``). ValueError for anything else."""
    text = text.strip().replace(",", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
    unit = text[len(text.rstrip("abcdefghijklmnopqrstuvwxyz")):] or "us"
    if unit not in _TIME_UNITS_US:
        raise ValueError(f"'{text}': unknown time unit '{unit}' (ns, us, ms, s, m, h, d)")
    value = float(number) * _TIME_UNITS_US[unit]
    if not math.isfinite(value):
        raise ValueError(f"'{text}' is not a time")
    return int(value)


def basis_points(text: str) -> int:
    """damo's ratio text in basis points: a plain number (bp) or a percentage (``4%`` is 400)."""
    text = text.strip()
    value = float(text[:-1]) * 100 if text.endswith("%") else float(text)
    if not math.isfinite(value):
        raise ValueError(f"'{text}' is not a ratio")
    return int(value)
