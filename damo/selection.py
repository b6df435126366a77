"""Access-pattern selection: which snapshots and regions of a record a report looks at.

Every selection is a pure function of a ``Record``: either a boolean mask over its snapshots
(``*_mask``, apply it with ``Record.select``) or a new ``Record``. Reports select first and
analyse what is left, so the same option means the same thing in every report. The
``add_*_option`` builders give those reports one spelling, metavar and default per option.

Today: target (``--tid``), time range (``--time_range``, raw's ``--duration``), address range
(``--address_range``) and snapshot index (the first snapshots of each target that damo skips,
``--exclude_samples``). damo 3.x's region filters (``--access_rate``, ``--age``,
``--sz_region``, ``--temperature``, ``--snapshot_idx``, ...) go here too: a ``*_mask`` (or a
region mask) function and an ``add_*_option`` builder each.
"""
from __future__ import annotations

import argparse

import numpy as np

from damo.errors import DamoError
from damo.model import Record


def address(text: str) -> int:
    """An address on the command line: decimal, or 0x-prefixed hexadecimal (as /proc/PID/maps shows)."""
    return int(text, 0)


# --- targets -----------------------------------------------------------------------------------

def target_order(record: Record) -> np.ndarray:
    """Per snapshot: the index of its target among the record's targets, in first-seen order."""
    order = {tid: i for i, tid in enumerate(record.target_ids())}
    uniq, inverse = np.unique(record.target_id, return_inverse=True)
    return np.array([order[int(u)] for u in uniq], dtype=np.int64)[inverse]


def target_mask(record: Record, target_id: int) -> np.ndarray:
    """The snapshots of one target."""
    return record.target_id == np.uint64(target_id)


def select_target(record: Record, target_id: int) -> Record:
    """The record of one target (``record`` itself when it is the only one)."""
    ids = record.target_ids()
    if target_id not in ids:
        raise DamoError(f"no target {target_id} in the record")
    return record if len(ids) == 1 else record.select(target_mask(record, target_id))


# --- snapshot index ----------------------------------------------------------------------------

def snapshot_rank(record: Record, targets: np.ndarray | None = None) -> np.ndarray:
    """Per snapshot: how many snapshots of the same target come before it (``targets`` from
    ``target_order``, computed when not given)."""
    target = target_order(record) if targets is None else targets
    order = np.argsort(target, kind="stable")
    sorted_t = target[order]
    first = np.searchsorted(sorted_t, sorted_t, side="left")
    rank = np.empty(len(target), dtype=np.int64)
    rank[order] = np.arange(len(target)) - first
    return rank


def nr_skipped(nr_snapshots: int, exclude: int) -> int:
    """How many leading snapshots of one target ``--exclude_samples N`` drops; a negative N
    keeps only the last -N, as the Python slice in damo does."""
    if exclude >= 0:
        return min(exclude, nr_snapshots)
    return max(nr_snapshots + exclude, 0)


def skip_first_mask(record: Record, exclude: int, targets: np.ndarray | None = None) -> np.ndarray:
    """All snapshots but the first ``exclude`` (>= 0) of each target."""
    return snapshot_rank(record, targets) >= exclude


# --- time --------------------------------------------------------------------------------------

def duration_window(offsets_s: np.ndarray, duration: tuple[float, float]) -> np.ndarray:
    """Positions of one target's snapshots to keep for raw's ``--duration FROM TO``.

    ``offsets_s`` are the snapshots' start times in seconds from the target's first snapshot.
    A snapshot is kept when its offset is at least FROM; the selection stops at the first one
    past TO, as damo's does.
    """
    past = np.flatnonzero(offsets_s > duration[1])
    stop = int(past[0]) if len(past) else len(offsets_s)
    return np.flatnonzero(offsets_s[:stop] >= duration[0])


# --- addresses ---------------------------------------------------------------------------------

def check_address_range(address_range: tuple[int, int]) -> tuple[int, int]:
    """``(START, END)`` if START < END and both are addresses; else a DamoError naming the option."""
    lo, hi = int(address_range[0]), int(address_range[1])
    if not 0 <= lo < hi:
        raise DamoError(f"--address_range: START ({lo}) must be below END ({hi}), both not negative")
    return lo, hi


def clip_addresses(record: Record, address_range: tuple[int, int]) -> Record:
    """The same snapshots with their regions cut to [START, END); regions outside are dropped."""
    lo, hi = check_address_range(address_range)
    return record.clip(lo, hi)


# --- shared options ----------------------------------------------------------------------------

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
