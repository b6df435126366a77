"""Query results as a text table, JSON or CSV."""
from __future__ import annotations

import csv
import io
import json
import math

from damo.fleet.engines import Result
from damo.fmt import format_sz


def _cell(value, is_bytes: bool, raw: bool) -> str:
    if value is None:
        return "-"
    if is_bytes and not raw and isinstance(value, (int, float)):
        return format_sz(value)
    if isinstance(value, float):
        return f"{value:.1f}" if is_bytes else f"{value:g}"
    return str(value)


def text_table(result: Result, bytes_columns: set[str] = frozenset(), raw: bool = False) -> str:
    """Columns left-aligned for text and right-aligned for numbers; sizes in binary units unless ``raw``."""
    cells = [[_cell(v, c in bytes_columns, raw) for c, v in zip(result.columns, row)] for row in result.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(result.columns)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in result.rows) and result.rows
               for i in range(len(result.columns))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(result.columns)] + [line(r) for r in cells]
    if not result.rows:
        out.append("(no rows)")
    return "\n".join(out)


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def to_json(result: Result) -> str:
    """One object per row."""
    return json.dumps([dict(zip(result.columns, map(_plain, row))) for row in result.rows], indent=2)


def to_csv(result: Result) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow(["" if v is None else v for v in map(_plain, row)])
    return buf.getvalue().rstrip("\n")
