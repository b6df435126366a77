"""What ``damo record ongoing`` costs, and whether it sees real accesses.

- Parser: a replayed high-rate trace (10,000 regions every 100 ms, i.e. 100 k regions/s, in
  tracefs's text) fed through the recorder's parser in the chunks a 0.2 s poll would read;
  regions per CPU-second (goal: at least 1 M), and the share of one CPU at that rate.
- Own CPU on this machine's kdamond: records of two lengths, so that Python's start-up cancels
  out; the difference of their CPU times over the difference of their durations (goal: <= 1 %).
- Hot buffer (full runs only): the mean nr_accesses of a hot 1 GiB buffer's pages against the
  rest of the monitored memory, over several 22 s records; tests/test_ongoing_host.py's
  threshold comes from these numbers.

    python -m bench.ongoing [--quick]     (or as part of: python -m bench --only ongoing)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from damo.kernel.tracefs import AggregatedParser

REPO = Path(__file__).resolve().parent.parent
REGIONS_PER_SNAPSHOT = 10_000
SNAPSHOT_SECONDS = 0.1
POLL_SECONDS = 0.2
HOT_RUNS = 6
HOT_RECORD_SECONDS = 22


def replayed_trace(nr_snapshots: int) -> list[bytes]:
    """tracefs text of ``nr_snapshots`` snapshots of 10,000 regions, 100 ms apart, one bytes per snapshot."""
    snapshots = []
    base = 4 << 30
    for k in range(nr_snapshots):
        stamp = 1387.8495 + k * SNAPSHOT_SECONDS
        lines = [b"       kdamond.0-77      [001] d..1.  %.6f: damon_aggregated: target_id=0 nr_regions=%d "
                 b"%d-%d: %d %d\n" % (stamp + i * 1e-6, REGIONS_PER_SNAPSHOT, base + i * 2097152,
                                      base + (i + 1) * 2097152, (i * 7 + k) % 11, (i + k) % 300)
                 for i in range(REGIONS_PER_SNAPSHOT)]
        snapshots.append(b"".join(lines))
    return snapshots


def parser_rate(nr_snapshots: int) -> dict:
    """Regions per CPU-second of AggregatedParser on the replayed trace, in 0.2 s poll chunks."""
    trace = replayed_trace(nr_snapshots)
    per_poll = round(POLL_SECONDS / SNAPSHOT_SECONDS)
    chunks = [b"".join(trace[i:i + per_poll]) for i in range(0, len(trace), per_poll)]
    parser = AggregatedParser()
    cpu = time.process_time()
    snapshots = [snap for chunk in chunks for snap in parser.feed(chunk)]
    cpu = time.process_time() - cpu
    regions = sum(len(s.start) for s in snapshots)
    assert len(snapshots) == nr_snapshots and regions == nr_snapshots * REGIONS_PER_SNAPSHOT
    rate = regions / cpu
    return {"regions": regions, "cpu_seconds": round(cpu, 4), "regions_per_cpu_second": round(rate),
            "cpu_share_at_100k_regions_per_s": round(REGIONS_PER_SNAPSHOT / SNAPSHOT_SECONDS / rate, 4),
            "bytes_per_region": round(sum(map(len, trace)) / regions, 1)}


def _record_cpu(seconds: float, out: Path) -> tuple[float, float, str]:
    """CPU seconds (user + system) and wall seconds of one ``damo record ongoing``, and its stderr."""
    argv = [sys.executable, "-m", "damo", "record", "ongoing", "--timeout", str(seconds), "-o", str(out)]
    begin = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - begin, stderr


def host_cpu(short: float, long: float) -> dict:
    """The recorder's own CPU share while following this machine's kdamond."""
    with tempfile.TemporaryDirectory() as tmp:
        cpu_short, wall_short, _ = _record_cpu(short, Path(tmp) / "short.data")
        cpu_long, wall_long, stderr = _record_cpu(long, Path(tmp) / "long.data")
    wrote = [line for line in stderr.splitlines() if line.startswith("wrote ")]
    return {"short_record_s": short, "short_cpu_s": round(cpu_short, 3), "long_record_s": long,
            "long_cpu_s": round(cpu_long, 3),
            "cpu_share_of_one_cpu": round((cpu_long - cpu_short) / (wall_long - wall_short), 5),
            "long_record": wrote[0] if wrote else ""}


def hot_buffer_runs(nr_runs: int) -> list[dict]:
    """The hot buffer's mean nr_accesses against the rest, one row per 22 s record."""
    sys.path.insert(0, str(REPO / "tests"))
    from damo.formats import read_record
    from hot_buffer import HotBuffer, access_means

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(nr_runs):
            with HotBuffer(1 << 30) as hot:
                pages = hot.physical_pages()
                _record_cpu(HOT_RECORD_SECONDS, Path(tmp) / "hot.data")
            means = access_means(read_record(Path(tmp) / "hot.data"), pages)
            rows.append({"run": run + 1, "hot_mean": round(means.hot, 3), "rest_mean": round(means.rest, 3),
                         "hot_over_rest": round(means.hot / means.rest, 2), "coverage": round(means.coverage, 4),
                         "hot_seen": round(means.hot_seen, 4)})
    return rows


def run(quick: bool = False) -> dict:
    parsing = parser_rate(20 if quick else 300)
    result = {"parser": parsing, "notes": [], "not_measured": {}}
    result["headline"] = [{"figure": "`record ongoing` parser, replayed 10,000 regions every 100 ms",
                           "value": f"{parsing['regions_per_cpu_second'] / 1e6:.2f} M regions per CPU-second "
                                    f"({parsing['cpu_share_at_100k_regions_per_s']:.1%} of one CPU at 100 k "
                                    f"regions/s; goal >= 1 M)"}]
    can_follow = os.geteuid() == 0 and Path("/sys/kernel/mm/damon/admin/kdamonds/0/state").exists()
    if quick or not can_follow:
        why = "quick run" if quick else "needs root and a running kdamond"
        result["not_measured"]["record ongoing's own CPU on this machine's kdamond"] = why
        result["not_measured"]["hot buffer nr_accesses against the rest"] = why
        return result
    own = host_cpu(10, 70)
    result["host"] = own
    result["headline"].append({"figure": "`record ongoing` own CPU following this machine's kdamond",
                               "value": f"{own['cpu_share_of_one_cpu']:.2%} of one CPU (goal <= 1 %)"})
    rows = hot_buffer_runs(HOT_RUNS)
    result["tables"] = [
        {"title": "Parser on a replayed trace", "columns": list(parsing), "rows": [list(parsing.values())]},
        {"title": "Own CPU following this machine's kdamond", "columns": list(own), "rows": [list(own.values())]},
        {"title": "Hot 1 GiB buffer vs the rest of the monitored memory (mean nr_accesses, 22 s records)",
         "columns": list(rows[0]), "rows": [list(r.values()) for r in rows]}]
    result["notes"].append(f"hot/rest over {len(rows)} runs: {min(r['hot_over_rest'] for r in rows)}-"
                           f"{max(r['hot_over_rest'] for r in rows)}; the host test requires > 4")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
