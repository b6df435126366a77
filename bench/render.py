"""Markdown for the results document: machine, headline, figure checklist, one section per benchmark.

A benchmark's dict is rendered generically (scalars as a key/value table, lists of dicts and dicts
of dicts as tables, nested dicts flattened to dotted columns), unless a renderer for it is
registered in ``SECTIONS``. A module may also hand over ready tables as
``tables: [{title, columns, rows}]`` and headline rows as ``headline: [{...}]``.
"""
from __future__ import annotations

import importlib
import importlib.util
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
        lines += section(name, entry["result"])
    lines += [
        "## Runs",
        "",
        *table(["Benchmark", "Mode", "Status", "Wall time", "Peak RSS (largest process)", "Date"],
               [[name, e.get("mode", results["mode"]), e["status"] if e["status"] == "ok"
                 else f"{e['status']}: {e['reason']}", seconds(e["seconds"]), size(e["peak_rss_bytes"]),
                 e.get("date", "")] for name, e in results["benchmarks"].items()]),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def section(name: str, result: dict) -> list[str]:
    """A benchmark's section: a renderer registered here, else the module's own
    ``render(result) -> str`` (markdown), else the generic tables; notes always follow."""
    if name in SECTIONS:
        return SECTIONS[name](result)
    own = module_render(name)
    if own is not None:
        return [own(result).rstrip("\n"), ""] + notes_lines(result)
    return generic_section(result)


def module_render(name: str) -> Callable[[dict], str] | None:
    try:
        if importlib.util.find_spec(f"bench.{name}") is None:
            return None
        own = getattr(importlib.import_module(f"bench.{name}"), "render", None)
    except ImportError:
        return None
    return own if callable(own) else None


HEADLINE_COLUMNS = ["figure", "ours", "damo 2.6.4", "damo 3.4.3", "ours/damo 2.6.4", "ours/damo 3.4.3"]


def headline_rows(results: dict) -> list[dict]:
    """The headline figures: each benchmark's own ``headline`` rows, else what HEADLINES picks."""
    rows = []
    for name, entry in results["benchmarks"].items():
        if entry["status"] != "ok":
            continue
        result = entry["result"]
        picked = result.get("headline")
        if not picked and name in HEADLINES:
            try:
                picked = HEADLINES[name](result)
            except (KeyError, TypeError, IndexError, ValueError):
                picked = []     # the module changed its dict; its section still shows everything
        picked = picked or []
        for row in picked:
            row = dict(row)
            if "value" in row and "ours" not in row:
                row["ours"] = row.pop("value")
            rows.append(row)
    return rows


def headline_table(results: dict) -> list[str]:
    """The headline table (the README copies it)."""
    rows = headline_rows(results)
    if not rows:
        return ["No headline figures were measured in this run.", ""]
    columns = [c for c in HEADLINE_COLUMNS if any(c in r for r in rows)]
    columns += [c for r in rows for c in r if c not in columns]
    columns = list(dict.fromkeys(columns))
    header = [c[0].upper() + c[1:] for c in columns]
    return table(header, [[cell(c, r.get(c)) for c in columns] for r in rows])


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
    if result.get("tables"):
        return lines + notes_lines(result)      # the module chose its tables; the rest is in the JSON
    # Top-level flat dicts with the same keys become one table, a row each.
    groups: dict[tuple, dict] = {}
    for key, value in result.items():
        if key in RESERVED or is_scalar(value):
            continue
        if isinstance(value, dict) and value and all(is_scalar(v) for v in value.values()):
            groups.setdefault(tuple(value), {})[key] = value
        else:
            groups[(key,)] = {key: value}
    for members in groups.values():
        if len(members) == 1:
            [(key, value)] = members.items()
            lines += [f"### {key}", ""] + value_table(value)
        else:
            lines += value_table(members)
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
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
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


def engine_headline(result: dict) -> list[dict]:
    cli = result["cli"]
    per_workload: dict[str, list[float]] = {}
    for r in result["by_size"]:
        per_workload.setdefault(r.get("workload", ""), []).append(r["wall_per_sim_s"])
    by_max = result["by_max_nr_regions"]
    return [
        {"figure": f"Simulator speed, `damo record {cli['config'].rsplit('/', 1)[-1]}`",
         "ours": f"{cli['speed_x_real_time']:.0f}x real time ({cli['simulated_s']:g} s simulated in "
                 f"{cli['wall_s']:.2f} s)"},
        {"figure": f"Simulator wall time per simulated second, {size(result['by_size'][0]['size_bytes'])} "
                   f"to {size(result['by_size'][-1]['size_bytes'])} target",
         "ours": ", ".join(f"{name + ' ' if name else ''}{min(v) * 1000:.0f}-{max(v) * 1000:.0f} ms "
                           f"({max(v) / min(v):.2f}x)" for name, v in per_workload.items())},
        {"figure": f"Simulator wall time per simulated second, max_nr_regions "
                   + " / ".join(str(r["max_nr_regions"]) for r in by_max)
                   + f" ({by_max[0].get('workload', '')} workload, {size(by_max[0]['size_bytes'])} target)",
         "ours": " / ".join(f"{r['wall_per_sim_s'] * 1000:.0f}" for r in by_max) + " ms"},
    ]


def accuracy_headline(result: dict) -> list[dict]:
    rows = result["configs"]
    judged = [r for r in rows if r["config"] not in result.get("goal_exempt", [])] or rows
    worst = max(judged, key=lambda r: abs(r["wss_p50_error_worst_over_seeds"]))
    cell_err = sorted(r["heatmap_relative_error"] for r in rows)
    nr_seeds = len(result["seeds"])
    return [
        {"figure": f"Accuracy: worst p50 WSS error over {len(judged)} masim configs, {nr_seeds} "
                   f"seed{'s' if nr_seeds > 1 else ''}",
         "ours": f"{worst['wss_p50_error_worst_over_seeds'] * 100:+.2f}% ({worst['config']})"},
        {"figure": f"Accuracy: heatmap cell relative error, median over {len(rows)} configs",
         "ours": f"{cell_err[len(cell_err) // 2] * 100:.1f}%"},
    ]


# Per-benchmark renderers and headline pickers, for modules whose dicts carry neither.
SECTIONS: dict[str, Callable[[dict], list[str]]] = {}
HEADLINES: dict[str, Callable[[dict], list[dict]]] = {
    "engine_scaling": engine_headline,
    "accuracy": accuracy_headline,
}
