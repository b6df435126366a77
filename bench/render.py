"""Markdown for the results document: machine, headline, figure checklist, one section per benchmark.

A benchmark's dict is rendered generically (scalars as a key/value table, lists of dicts and dicts
of dicts as tables, nested dicts flattened to dotted columns), unless a renderer for it is
registered in ``SECTIONS``. A module may also hand over ready tables as
``tables: [{title, columns, rows}]`` and headline rows as ``headline: [{...}]``.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import textwrap
from pathlib import Path
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
        f"on {m['date']} (each benchmark's own time and date: Runs, at the end). A ratio is ours over "
        "damo's (below 1: we are faster or smaller); the reports' rows say \"N x faster\" (damo's CPU "
        "seconds over ours) and \"N x less memory\" (damo's peak RSS over ours). damo's figures are "
        "measured once and cached; each row gives their date and the load they were measured at.",
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
        try:
            return SECTIONS[name](result)
        except (KeyError, TypeError, IndexError, ValueError):
            pass        # the module changed its dict: fall back (tests catch this)
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


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def readme_section(results: dict) -> str:
    """The README's Benchmarks section: the headline table and the machine it came from."""
    m = results["machine"]
    cores = f"{m['cores']} core{'s' if m['cores'] != 1 else ''}"
    return "\n".join([
        README_START,
        "## Benchmarks",
        "",
        *textwrap.wrap(
        f"`python -m bench` measures us and damo 2.6.4 and 3.4.3 (from PyPI, in cached virtualenvs) "
        f"side by side; `python -m bench --quick` (under 2 minutes: small records, no damo reports) is part of "
        f"the test suite. "
        f"The headline of the last full run, on {m['cpu_model']}, {cores}, {size(m['memory_bytes'])} "
        f"of memory, Linux {m['kernel_release']}, {m['python']}, numpy {m['numpy']}, on {m['date'][:10]} "
        f"(commit {m['commit'] or 'unknown'}). Ratios are ours over damo's (below 1 is faster or "
        "smaller); the reports' rows give CPU seconds (wall seconds in brackets, and the machine's "
        "load), and \"N x faster\" is damo's CPU time over ours, \"N x less memory\" its peak RSS over "
        "ours. damo's figures are measured once and cached (damo and the input do not change), so "
        "each gives its date: `nice python -m bench.reports --peers-only` measures the missing ones in "
        "the background (one damo at a time; a 6 M-region run takes up to 10 GiB and an hour) and "
        "`python -m bench.reports --refresh-peers` puts them into the tables. Every figure and how it was taken: bench/results.md "
        "(and bench/results.json).", width=100, break_on_hyphens=False),
        "",
        *headline_table(results),
        README_END,
    ]) + "\n"


def update_readme(readme: str, results: dict) -> str:
    """``readme`` with its Benchmarks section replaced (or appended)."""
    section = readme_section(results)
    if README_START in readme and README_END in readme:
        head, rest = readme.split(README_START, 1)
        return head + section + "\n" + rest.split(README_END, 1)[1].lstrip("\n")
    return readme.rstrip("\n") + "\n\n" + section


def headline_rows(results: dict) -> list[dict]:
    """The headline figures: each benchmark's own ``headline`` rows, else what HEADLINES picks."""
    rows = []
    for name, entry in results["benchmarks"].items():
        if entry["status"] != "ok":
            continue
        result = entry["result"]
        picked = result.get("headline") or []
        if name in HEADLINES:
            try:
                picked = HEADLINES[name](result)
            except (KeyError, TypeError, IndexError, ValueError):
                pass    # the module changed its dict: keep its own rows (tests catch this)
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
    header = [c if c.startswith("damo") else c[0].upper() + c[1:] for c in columns]
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


PEER_VERSIONS = ("2.6.4", "3.4.3")


def reports_section(result: dict) -> list[str]:
    """Report time and peak RSS, ours (on our native file and on damo's json_compressed file) and
    damo's (json_compressed), with ours/damo ratios from this run."""
    rows = result["rows"]
    peers = [v for v in PEER_VERSIONS if any(r.get(f"damo_{v}") for r in rows)]
    ours_cols = [("ours_native", "native"), ("ours_json_compressed", "json_c")]

    def run_cell(run: dict | None, what: str) -> str:
        if not run:
            return "–"
        if run.get("seconds") is None:
            return f"failed: {run.get('error') or 'no figure'}"
        if what == "time":
            return f"{seconds(run['seconds'])} ({seconds(run.get('cpu_seconds'))} CPU)"
        return size(run["peak_rss_bytes"])

    def ratio_cell(ours: dict | None, theirs: dict | None, what: str) -> str:
        if not ours or not theirs or ours.get("seconds") is None or theirs.get("seconds") is None:
            return "–"
        if what == "time":
            return f"{ratio(ours['seconds'], theirs['seconds'])} ({ratio(ours.get('cpu_seconds'), theirs.get('cpu_seconds'))} CPU)"
        return ratio(ours["peak_rss_bytes"], theirs["peak_rss_bytes"])

    lines = []
    for what, title in (("time", "Wall time (CPU time)"), ("rss", "Peak RSS")):
        columns = ["Regions", "Report", "Ours, native file", "Ours, json_c file"]
        columns += [f"damo {v}, json_c file" for v in peers]
        columns += [f"Ours/damo {v} ({label} file)" for v in peers for _, label in ours_cols]
        if what == "time" and peers:
            columns.append("Same text as damo")
        body = []
        for r in rows:
            row = [f"{r['nr_regions']:,}", f"`report {r['report']}`"]
            row += [run_cell(r.get(key), what) for key, _ in ours_cols]
            row += [run_cell(r.get(f"damo_{v}"), what) for v in peers]
            row += [ratio_cell(r.get(key), r.get(f"damo_{v}"), what) for v in peers for key, _ in ours_cols]
            if what == "time" and peers:
                same = {True: "yes", False: "NO"}.get(r.get("same_output_as_damo_2.6.4"))
                same = same or {True: "yes (3.4.3)", False: "NO (3.4.3)"}.get(r.get("same_output_as_damo_3.4.3"), "–")
                row.append(same)
            body.append(row)
        lines += [f"### {title}", ""] + table(columns, body)
    if peers:
        lines += ["Ratios are ours over damo's (below 1: we are faster or smaller). damo 3.x has no "
                  "`report heats`, so its row is empty; `report heatmap` prints damo 3.4.3's text and is "
                  "compared with 3.4.3, damo 2.6.4's `report heatmap` with our `heats --resol 40 80`. "
                  "damo 3.x prints `report raw` as `report access --raw_form`.", ""]
    return lines + notes_lines(result)


def load_headline(result: dict) -> list[dict]:
    """The load module's own rows, plus our bytes over damo's: native against json_compressed."""
    rows = list(result.get("headline") or [])
    native, damo = result["formats"]["native"], result["formats"]["json_compressed"]
    rows.append({"figure": f"Record file size, {result['nr_regions'] / 1e6:g} M regions: bytes per region "
                           "(ours: native format; damo: json_compressed)",
                 "ours": f"{native['bytes_per_region']:.3g} B", "damo 2.6.4": f"{damo['bytes_per_region']:.3g} B",
                 "ours/damo 2.6.4": ratio(native["file_bytes"], damo["file_bytes"])})
    return rows


# Per-benchmark renderers and headline pickers; a picker here wins over the module's own rows.
SECTIONS: dict[str, Callable[[dict], list[str]]] = {
    "reports": reports_section,
}
HEADLINES: dict[str, Callable[[dict], list[dict]]] = {
    "load": load_headline,
}


# A section that a benchmark run on its own put into results.md (put_section): <!-- NAME:start --> ... <!-- NAME:end -->
_OWN_SECTION = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->\n", re.DOTALL)


def with_own_sections(old: str, new: str) -> str:
    """``new`` (a whole results.md) with the sections of ``old`` that benchmarks run on their own
    wrote (put_section) and ``new`` lacks, so that a suite run does not drop them."""
    for match in _OWN_SECTION.finditer(old):
        name = match.group(1)
        if f"<!-- {name}:start -->" not in new:
            new = with_section(new, f"<!-- {name}:start -->", f"<!-- {name}:end -->", match.group(0))
    return new


def with_section(text: str, start: str, end: str, section: str) -> str:
    """``text`` with the part between the markers ``start`` and ``end`` replaced by ``section``
    (which holds the markers), or with ``section`` appended."""
    if start in text:
        return text[:text.index(start)] + section + text[text.index(end) + len(end) + 1:]
    return text.rstrip("\n") + "\n\n" + section


def put_section(results: Path, start: str, end: str, section: str) -> None:
    """``with_section`` on the file ``results``; for benchmarks run on their own."""
    results.write_text(with_section(results.read_text() if results.exists() else "", start, end, section))
