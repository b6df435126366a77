"""Distribution of the number of regions per snapshot: ``damo report nr_regions``.

Like damo 2.x, the first 20 snapshots of each target are skipped (DAMON has not adapted its
regions yet), the counts are sorted unless ``--sortby time``, and each target is reported alone.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import numpy as np

from damo.errors import DamoError
from damo.model import Record
from damo.report import load_record
from damo.selection import skip_first_mask, target_mask
from damo.wss import DEFAULT_PERCENTILES, percentile_values

SKIPPED_SNAPSHOTS = 20


def nr_regions_distributions(record: Record, sort: bool = True,
                             skip: int = SKIPPED_SNAPSHOTS) -> dict[int, np.ndarray]:
    """``{target_id: number of regions of each snapshot}``, after the first ``skip`` snapshots."""
    counts = record.regions_per_snapshot()
    kept = skip_first_mask(record, skip)
    out = {}
    for tid in record.target_ids():       # per-snapshot columns only: the regions are never read
        mine = counts[kept & target_mask(record, tid)]
        out[tid] = np.sort(mine) if sort else mine
    return out


def format_nr_regions(dists: dict[int, np.ndarray], percentiles: Sequence[int]) -> str:
    """damo's text: a header, then per target its id, the average and one line per percentile."""
    lines = ["# <percentile> <# regions>"]
    for tid, dist in dists.items():
        if not len(dist):
            raise DamoError(f"target {tid} has no more than {SKIPPED_SNAPSHOTS} snapshots")
        values = [int(v) for v in dist.tolist()]
        lines.append("# target_id\t%s" % tid)
        lines.append("# avr:\t%d" % (sum(values) / len(values)))
        for p, v in zip(percentiles, percentile_values(dist, percentiles).tolist()):
            lines.append("%d\t%d" % (p, v))
    return "\n".join(lines)


def nr_regions_json(dists: dict[int, np.ndarray], percentiles: Sequence[int]) -> dict:
    targets = []
    for tid, dist in dists.items():
        values = [int(v) for v in dist.tolist()]
        targets.append({"target_id": tid, "nr_snapshots": len(values),
                        "average": sum(values) / len(values) if values else None,
                        "percentiles": {str(p): int(v) for p, v in
                                        zip(percentiles, percentile_values(dist, percentiles).tolist())}})
    return {"skipped_snapshots": SKIPPED_SNAPSHOTS, "targets": targets}


def run(args: argparse.Namespace) -> int:

    percentiles = list(DEFAULT_PERCENTILES)
    if args.range:
        if args.range[2] == 0:
            raise DamoError("--range: step must not be zero")
        percentiles = list(range(*args.range))
    sort = args.sortby != "time"
    dists = nr_regions_distributions(load_record(args.input, columns=()), sort)
    if args.plot:
        from damo.plot import plot_distributions

        series = {f"target {tid}": (np.asarray(percentiles[:len(percentile_values(d, percentiles))]),
                                    percentile_values(d, percentiles)) for tid, d in dists.items()}
        plot_distributions(args.plot, series, "percentile" if sort else "runtime (percent)",
                           "number of monitoring regions", f"regions: {args.input}")
        return 0
    if args.json:
        print(json.dumps(nr_regions_json(dists, percentiles), indent=2))
        return 0
    print(format_nr_regions(dists, percentiles))
    return 0
