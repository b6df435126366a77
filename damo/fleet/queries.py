"""The canned fleet queries: one SQL text each, run as is by every engine (damo.fleet.engines).

The numbers follow the per-record reports exactly:

- WSS percentiles follow ``damo report wss``: the first ``exclude_samples`` snapshots of each
  target are skipped, each target's sizes are sorted and the targets summed position by
  position; the value at percentile p is the one at index ``int(p / 100.0 * n)`` (clamped to
  the last). Across the records of a group, the records' summed sizes are pooled and sorted and
  the same rule picks the percentiles (for one record that is ``report wss``'s own number).
- Hot, warm and cold bytes follow ``damo report diff``: a region is hot when its access rate is
  at least the hot threshold, cold when at most the cold one and not hot, warm otherwise; a
  record's bytes of a class are its kept snapshots' bytes of that class summed and divided by
  the number of positions (the longest target's kept snapshots), a time mean. A group adds its
  records' means and rounds the sum to whole bytes.
- The idle tail: bytes of regions not accessed (nr_accesses 0) for at least ``idle_s`` seconds
  (age x aggregation interval), as a time mean like the heat classes.

Every floating-point step is written to round as the numpy code does, so both engines and the
reports agree to the last bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from damo.diff.analysis import Rate, parse_rate
from damo.errors import DamoError
from damo.labels import KEY_RE

# The regions files hold the stored columns (view ``stored_regions``); the ``regions`` view adds
# the access rate in Hz and the age in seconds from each record's aggregation interval, computed
# as report diff does: nr_accesses * (1e6 / aggr_us) and age * (aggr_us / 1e6), null for an
# unknown age (-1). Every engine creates it from this one text.
STORED_REGIONS = "stored_regions"


def access_hz_sql(nr_accesses: str, aggr_us: str) -> str:
    """SQL for the access rate in Hz, rounded as report diff's numpy: nr * (1e6 / aggr_us)."""
    return f"CAST({nr_accesses} AS DOUBLE) * (CAST('1000000.0' AS DOUBLE) / {aggr_us})"


def age_s_sql(age: str, aggr_us: str) -> str:
    """SQL for the age in seconds, age * (aggr_us / 1e6); null for an unknown age (-1)."""
    return f"CASE WHEN {age} >= 0 THEN CAST({age} AS DOUBLE) * ({aggr_us} / CAST('1000000.0' AS DOUBLE)) END"


REGIONS_VIEW = f"""
SELECT g.*, {access_hz_sql('g.nr_accesses', 'r.aggr_us')} AS access_hz, {age_s_sql('g.age', 'r.aggr_us')} AS age_s
FROM {STORED_REGIONS} g JOIN records r ON g.record_id = r.record_id
"""
DEFAULT_PERCENTILES = (0, 25, 50, 75, 100)
DEFAULT_IDLE_S = 10.0
# Columns of the records table that --by may name directly; any other name is a label.
RECORD_COLUMNS = ("record_id", "source", "format", "target_kind", "target", "kernel_release", "tool_version")


@dataclass
class SummaryOptions:
    """What the summary groups by and which thresholds it uses (report diff's and report wss's defaults)."""

    by: list[str] = field(default_factory=list)       # label names, record columns, or "record"
    exclude_samples: int = 20
    percentiles: tuple[int, ...] = DEFAULT_PERCENTILES
    hot: Rate = field(default_factory=lambda: parse_rate("50%"))
    cold: Rate = field(default_factory=lambda: parse_rate("0Hz"))
    idle_s: float = DEFAULT_IDLE_S


def _double(value: float) -> str:
    """A double literal both engines read as the same IEEE value (plain decimals are DECIMAL in SQL)."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def _threshold(rate: Rate) -> str:
    """The threshold in Hz of each record: a fixed rate, or a share of the record's maximum rate."""
    if rate.unit == "Hz":
        return _double(rate.value)
    # report diff: value / 100.0 * max_hz, in that order.
    return f"({_double(rate.value / 100.0)} * r.max_access_hz)"


def group_columns(by: list[str]) -> list[tuple[str, str]]:
    """``(output name, SQL expression over the records table r)`` for each --by name."""
    columns = []
    for name in by:
        if name == "record":
            columns.append(("record_id", "r.record_id"))
        elif name in RECORD_COLUMNS:
            columns.append((name, f"r.{name}"))
        elif KEY_RE.match(name):
            columns.append((name, f"r.labels['{name}']"))
        else:
            raise DamoError(f"--by: '{name}' is not a label name, a record column or 'record'")
    return columns


def summary_sql(options: SummaryOptions) -> tuple[str, list[str]]:
    """The summary query and its output column names."""
    if options.exclude_samples < 0:
        raise DamoError("--exclude_samples must not be negative")
    groups = group_columns(options.by)
    group_select = ", ".join(f"{expr} AS g_{i}" for i, (_, expr) in enumerate(groups))
    g_names = [f"g_{i}" for i in range(len(groups))]
    g_list = ", ".join(g_names)
    g_on = " AND ".join(f"a.{g} IS NOT DISTINCT FROM b.{g}" for g in g_names) or "TRUE"
    partition = f"PARTITION BY {g_list}" if groups else ""
    group_by = f"GROUP BY {g_list}" if groups else ""
    n = options.exclude_samples
    hot, cold = _threshold(options.hot), _threshold(options.cold)
    pct_cols = []
    for p in options.percentiles:
        if not 0 <= p <= 100:
            raise DamoError(f"--percentiles: {p} is not between 0 and 100")
        # damo: int(p / 100.0 * n), clamped to the last element.
        index = f"LEAST(CAST(FLOOR({_double(p / 100.0)} * CAST(n AS DOUBLE)) AS BIGINT), n - 1)"
        pct_cols.append(f"MAX(CASE WHEN k = {index} THEN wss END) AS wss_p{p}")
    sql = f"""
WITH rec AS (
    SELECT r.record_id, r.max_access_hz, r.aggr_us, {hot} AS hot_hz, {cold} AS cold_hz
           {', ' + group_select if groups else ''}
    FROM records r
),
ranked AS (
    SELECT record_id, target, wss_bytes,
           ROW_NUMBER() OVER (PARTITION BY record_id, target ORDER BY wss_bytes) - 1 AS pos
    FROM snapshots WHERE target_snapshot >= {n}
),
collapsed AS (
    SELECT record_id, pos, SUM(wss_bytes) AS wss FROM ranked GROUP BY record_id, pos
),
positions AS (
    SELECT record_id, COUNT(*) AS nr_pos FROM collapsed GROUP BY record_id
),
levels AS (
    -- One pass over the regions: bytes per access level, and per age for the idle ones; the
    -- thresholds are applied to these few rows per record (no join of every region).
    SELECT record_id, nr_accesses, CASE WHEN nr_accesses = 0 THEN age END AS idle_age, SUM(size) AS bytes
    FROM {STORED_REGIONS} WHERE target_snapshot >= {n}
    GROUP BY record_id, nr_accesses, CASE WHEN nr_accesses = 0 THEN age END
),
rated AS (
    SELECT v.record_id, v.bytes, x.hot_hz, x.cold_hz, v.nr_accesses,
           {access_hz_sql('v.nr_accesses', 'x.aggr_us')} AS access_hz,
           {age_s_sql('v.idle_age', 'x.aggr_us')} AS age_s
    FROM levels v JOIN rec x ON v.record_id = x.record_id
),
heat AS (
    SELECT record_id,
           SUM(CASE WHEN access_hz >= hot_hz THEN bytes ELSE 0 END) AS hot,
           SUM(CASE WHEN access_hz < hot_hz AND access_hz > cold_hz THEN bytes ELSE 0 END) AS warm,
           SUM(CASE WHEN access_hz < hot_hz AND access_hz <= cold_hz THEN bytes ELSE 0 END) AS cold,
           SUM(CASE WHEN nr_accesses = 0 AND age_s >= {_double(options.idle_s)} THEN bytes ELSE 0 END) AS idle
    FROM rated
    GROUP BY record_id
),
per_record AS (
    SELECT x.record_id {', ' + ', '.join('x.' + g for g in g_names) if groups else ''},
           CAST(h.hot AS DOUBLE) / CAST(p.nr_pos AS DOUBLE) AS hot_bytes,
           CAST(h.warm AS DOUBLE) / CAST(p.nr_pos AS DOUBLE) AS warm_bytes,
           CAST(h.cold AS DOUBLE) / CAST(p.nr_pos AS DOUBLE) AS cold_bytes,
           CAST(h.idle AS DOUBLE) / CAST(p.nr_pos AS DOUBLE) AS idle_bytes
    FROM rec x JOIN heat h ON h.record_id = x.record_id JOIN positions p ON p.record_id = x.record_id
),
pooled AS (
    SELECT {g_list + ',' if groups else ''} c.wss,
           ROW_NUMBER() OVER ({partition} ORDER BY c.wss) - 1 AS k,
           COUNT(*) OVER ({partition}) AS n
    FROM collapsed c JOIN rec x ON c.record_id = x.record_id
),
wss AS (
    SELECT {g_list + ',' if groups else ''} MAX(n) AS nr_snapshots,
           CAST(SUM(wss) AS DOUBLE) / CAST(MAX(n) AS DOUBLE) AS wss_avg,
           {', '.join(pct_cols)}
    FROM pooled {group_by}
),
classes AS (
    SELECT {g_list + ',' if groups else ''} COUNT(*) AS nr_records,
           CAST(ROUND(SUM(hot_bytes)) AS BIGINT) AS hot_bytes,
           CAST(ROUND(SUM(warm_bytes)) AS BIGINT) AS warm_bytes,
           CAST(ROUND(SUM(cold_bytes)) AS BIGINT) AS cold_bytes,
           CAST(ROUND(SUM(idle_bytes)) AS BIGINT) AS idle_bytes
    FROM per_record {group_by}
)
SELECT {', '.join('a.' + g for g in g_names) + ',' if groups else ''} a.nr_records, b.nr_snapshots,
       {', '.join(f'b.wss_p{p}' for p in options.percentiles)}, b.wss_avg,
       a.hot_bytes, a.warm_bytes, a.cold_bytes, a.idle_bytes
FROM classes a JOIN wss b ON {g_on}
ORDER BY {', '.join('a.' + g for g in g_names) + ',' if groups else ''} a.nr_records
"""
    names = ([name for name, _ in groups] + ["nr_records", "nr_snapshots"]
             + [f"wss_p{p}" for p in options.percentiles]
             + ["wss_avg", "hot_bytes", "warm_bytes", "cold_bytes", "idle_bytes"])
    return sql, names
