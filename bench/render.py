"""Markdown for the results document: machine, headline, figure checklist, one section per benchmark.

A benchmark's dict is rendered generically (scalars as a key/value table, lists of dicts and dicts
of dicts as tables, nested dicts flattened to dotted columns), unless a renderer for it is
registered in ``SECTIONS``. A module may also hand over ready tables as
``tables: [{title, columns, rows}]`` and headline rows as ``headline: [{...}]``.
"""
from __future__ import annotations

from typing import Callable, Iterable

from bench import run as suite

RESERVED = ("tables", "notes", "not_measured", "headline")


def markdown(results: dict) -> str:
    """The whole results.md."""
    m = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Made by `python -m bench{' --quick' if results['mode'] == 'quick' else ''}` "
        f"on {m['date']} in {results['elapsed_seconds']:.0f} s. Every ratio is ours over damo's, both "
        "measured in the same run; below 1 means we are faster or smaller.",
        "",
        "## Machine",
        "",
        *table(["Property", "Value"], [
            ["CPU", m["cpu_model"]],
            ["Cores", f"{m['cores']} ({m['usable_cores']} usable)"],
            ["Memory", size(m["memory_bytes"])],
            ["Kernel", m["kernel_release"]],
            ["Python", m["python"]],
            ["numpy", m["numpy"]],
            ["Commit", m["commit"] or "unknown"],
            ["Date", m["date"]],
        ]),
        "## Headline",
        "",
        *headline_table(results),
        "## Figures",
        "",
        *table(["Figure", "Benchmark", "Status"],
               [[f["figure"], f["benchmark"], f["status"]] for f in results["figures"]]),
    ]
    for name, entry in results["benchmarks"].items():
        lines += [f"## {name}: {suite.BENCHMARKS.get(name, '')}", ""]
        if entry["status"] != "ok":
            lines += [f"Not measured: {entry['reason']}.", ""]
            continue
        lines += SECTIONS.get(name, generic_section)(entry["result"])
    lines += [
        "## Runs",
        "",
        *table(["Benchmark", "Mode", "Status", "Wall time", "Peak RSS (largest process)", "Date"],
               [[name, e.get("mode", results["mode"]), e["status"] if e["status"] == "ok"
                 else f"{e['status']}: {e['reason']}", seconds(e["seconds"]), size(e["peak_rss_bytes"]),
                 e.get("date", "")] for name, e in results["benchmarks"].items()]),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def headline_table(results: dict) -> list[str]:
    """The rows benchmarks offer as headline figures (the README copies this table)."""
    rows = []
    for name, entry in results["benchmarks"].items():
        if entry["status"] != "ok":
            continue
        rows += HEADLINES.get(name, lambda r: r.get("headline") or [])(entry["result"])
    if not rows:
        return ["No headline figures were measured in this run.", ""]
    return dict_rows_table(rows)


def generic_section(result: dict) -> list[str]:
    """Tables for an arbitrary benchmark dict."""
    lines: list[str] = []
    scalars = {k: v for k, v in result.items() if k not in RESERVED and is_scalar(v)}
    if scalars:
        lines += table(["Figure", "Value"], [[k, cell(k, v)] for k, v in scalars.items()])
    for spec in result.get("tables") or []:
        if spec.get("title"):
            lines += [f"### {spec['title']}", ""]
        lines += table(spec["columns"], [[cell(c, v) for c, v in zip(spec["columns"], row)]
                                         for row in spec["rows"]])
    for key, value in result.items():
        if key in RESERVED or is_scalar(value):
            continue
        lines += [f"### {key}", ""] + value_table(value)
    lines += notes_lines(result)
    return lines


def notes_lines(result: dict) -> list[str]:
    lines = [f"- {note}" for note in result.get("notes") or []]
    lines += [f"- not measured: {what}: {why}" for what, why in (result.get("not_measured") or {}).items()]
    return lines + [""] if lines else []


def value_table(value) -> list[str]:
    """A list of dicts or a dict of dicts as rows; anything else as flattened key/value pairs."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return dict_rows_table(value)
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return dict_rows_table([{"": k, **v} for k, v in value.items()])
    if isinstance(value, dict):
        return table(["Figure", "Value"], [[k, cell(k, v)] for k, v in flatten(value).items()])
    return [cell("", value), ""]


def dict_rows_table(rows: list[dict]) -> list[str]:
    flat = [flatten(r) for r in rows]
    columns: list[str] = []
    for r in flat:
        columns += [c for c in r if c not in columns]
    return table(columns, [[cell(c, r.get(c)) for c in columns] for r in flat])


def flatten(value: dict, prefix: str = "") -> dict:
    out = {}
    for key, v in value.items():
        name = f"{prefix}{key}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{name}."))
        else:
            out[name] = v
    return out


def is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or (
        isinstance(value, list) and all(is_scalar(v) and not isinstance(v, list) for v in value))


def cell(key: str, value) -> str:
    """A value as table text; byte counts and durations are recognised by their key names."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(cell(key, v) for v in value)
    if isinstance(value, (int, float)):
        k = key.lower()
        if k.endswith("bytes") or k.endswith("rss") or k.endswith("_size"):
            return size(value)
        if k.endswith("seconds") or k.endswith("_s") or k.endswith("_sec"):
            return seconds(value)
        return number(value)
    return str(value)


def number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def size(nbytes: float | None) -> str:
    if nbytes is None:
        return "–"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(nbytes) >= scale:
            return f"{nbytes / scale:.3g} {unit}" if abs(nbytes) / scale < 1000 else f"{nbytes / scale:,.0f} {unit}"
    return f"{nbytes:.3g} B" if isinstance(nbytes, float) else f"{nbytes} B"


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s" if value < 1000 else f"{value:,.0f} s"


def ratio(ours: float | None, theirs: float | None) -> str:
    """ours/theirs as text, '–' where either is missing."""
    if ours is None or not theirs:
        return "–"
    return f"{ours / theirs:.3g}"


def table(columns: list[str], rows: Iterable[list]) -> list[str]:
    """A markdown table (with a trailing blank line); '|' in cells is escaped."""
    def esc(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines + [""]


# Per-benchmark renderers, filled in as the benchmark modules settle their dicts.
SECTIONS: dict[str, Callable[[dict], list[str]]] = {}
HEADLINES: dict[str, Callable[[dict], list[dict]]] = {}
