"""The fleet summary: the canned summary query on any engine, with its columns named."""
from __future__ import annotations

from damo.fleet.engines import Result
from damo.fleet.queries import SummaryOptions, summary_sql


def summary(engine, options: SummaryOptions | None = None) -> Result:
    """Per group of records: WSS percentiles, hot/warm/cold bytes and the idle tail (see damo.fleet.queries)."""
    sql, names = summary_sql(options or SummaryOptions())
    result = engine.run(sql)
    return Result(names, result.rows)
