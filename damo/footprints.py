"""Memory footprint distribution: ``damo report footprints`` (damo 3.4.3's ``report footprints``).

Per footprint sample (one a second while recording, ``--do_record mem_footprint``) the metric is
summed over the target processes: ``vsz`` is statm's size, ``rss`` its resident pages (times
4096, as damo does whatever the page size), ``sys_used`` the system's MemTotal - MemFree. The
distribution prints with damo's percentile table (damo.wss.format_distribution), sorted by size
unless ``--sortby time``.

The samples come from the record (native: its side chunks; damo's JSON: the ``<record>.
mem_footprint`` file beside it) or from a damo ``.mem_footprint`` file given with ``-i``.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from damo.errors import DamoError, RecordFileError
from damo.model import FOOTPRINT_PAGE_SIZE, MemFootprints
from damo.report import add_input_argument
from damo.wss import (add_distribution_output_options, checked_percentiles, distribution_json, format_distribution,
                      plot_distribution_series)

METRICS = ("vsz", "rss", "sys_used")
SIDECAR_SUFFIX = ".mem_footprint"


# --- input -----------------------------------------------------------------------------------

def load_footprints(path: str) -> MemFootprints:
    """The footprint samples of a record file, or of a damo ``.mem_footprint`` file."""
    from damo.formats import damo_json, detect_format, native

    if path.endswith(SIDECAR_SUFFIX) or _is_sidecar(path):
        return _from_damo(damo_json.read_sidecar(path), path)
    fmt = detect_format(path)
    if fmt == "native":
        side = native.read_side(path)
        entries = side.get("mem_footprint")
    else:
        sidecar = damo_json.sidecar_path(path, "mem_footprint")
        entries = damo_json.read_sidecar(sidecar) if os.path.isfile(sidecar) else None
        path = sidecar if entries is not None else path
    if entries is None:
        raise RecordFileError(path, "holds no memory footprints (record with `--do_record mem_footprint`, "
                                    "the default, or name damo's .mem_footprint file with -i)")
    return _from_damo(entries, path)


def _is_sidecar(path: str) -> bool:
    """A JSON list (damo's sidecar) rather than a record: records are never a bare '[' of objects
    holding "footprints"; peek at the start only."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return False
    return head.lstrip().startswith(b"[") and b'"footprints"' in head


def _from_damo(entries: list, path: str) -> MemFootprints:
    try:
        return MemFootprints.from_damo(entries)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise RecordFileError(path, f"not damo's mem_footprint JSON ({type(err).__name__}: {err})") from None


# --- analysis --------------------------------------------------------------------------------

def footprint_values(footprints: MemFootprints, metric: str, sort: bool = True) -> np.ndarray:
    """Bytes of ``metric`` per sample (summed over the processes), sorted unless ``sort`` is false."""
    if metric == "vsz":
        values = footprints.proc_total("size") * FOOTPRINT_PAGE_SIZE
    elif metric == "rss":
        values = footprints.proc_total("resident") * FOOTPRINT_PAGE_SIZE
    elif metric == "sys_used":
        values = footprints.sys_used_kib() * 1024
    else:
        raise ValueError(f"unknown footprint metric {metric}")
    return np.sort(values) if sort else values


# --- rendering -------------------------------------------------------------------------------

def format_footprints(dists: dict[str, np.ndarray], percentiles: list[int], all_values: bool = False,
                      raw_number: bool = False, nr_cols_bar: int = 59) -> str:
    """damo 3.4.3's text: one percentile table per metric."""
    return "\n".join(format_distribution(metric, dist, percentiles, all_values, raw_number, nr_cols_bar)
                     for metric, dist in dists.items())


def footprints_json(dists: dict[str, np.ndarray], percentiles: list[int], all_values: bool) -> dict:
    return {"unit": "bytes", "metrics": {metric: distribution_json(dist, percentiles, all_values, "nr_samples",
                                                                   "values")
                                         for metric, dist in dists.items()}}


def plot_footprints(path: str, dists: dict[str, np.ndarray], percentiles: list[int], all_values: bool,
                    sort: bool, title: str) -> None:
    plot_distribution_series(path, dists, percentiles, all_values, sort, "memory footprint", title, "sample")


# --- command line ----------------------------------------------------------------------------

DESCRIPTION = """\
The distribution of the memory footprint recorded beside the accesses (`damo record` samples it
once a second; --do_record mem_footprint, on by default): vsz and rss of the target processes
(summed), and the system's used memory (MemTotal - MemFree), as percentiles with a bar each, in
damo 3.4.3's text. It reads a record of any format (damo's JSON records keep the samples in a
<record>.mem_footprint file beside them) or such a .mem_footprint file itself."""

EXAMPLES = """\
examples:
  damo report footprints                         # vsz, rss and sys_used of damon.data
  damo report footprints rss --sortby time       # rss in time order
  damo report footprints -i damon.data.mem_footprint --raw_number
  damo report footprints rss --plot rss.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("metric", nargs="?", choices=[*METRICS, "all"], default="all",
                        help="the footprint to show (default: all)")
    add_input_argument(parser)
    parser.add_argument("-r", "--range", type=int, nargs=3, default=[0, 101, 25],
                        metavar=("START", "STOP", "STEP"), help="percentiles to print (default: 0 101 25)")
    parser.add_argument("-s", "--sortby", choices=["time", "size"], default="size",
                        help="order of the footprints: by size or in time order (default: size)")
    add_distribution_output_options(parser)
    parser.add_argument("--all_footprint", action="store_true", help="print every sample, not percentiles")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    percentiles = checked_percentiles(args.range, args.nr_cols_bar)
    sort = args.sortby == "size"
    footprints = load_footprints(args.input)
    metrics = METRICS if args.metric == "all" else (args.metric,)
    dists = {m: footprint_values(footprints, m, sort) for m in metrics}
    if args.plot:
        plot_footprints(args.plot, dists, percentiles, args.all_footprint, sort,
                        f"memory footprint: {args.input}")
        return 0
    if args.json:
        print(json.dumps(footprints_json(dists, percentiles, args.all_footprint), indent=2))
        return 0
    print(format_footprints(dists, percentiles, args.all_footprint, args.raw_number, args.nr_cols_bar))
    return 0
