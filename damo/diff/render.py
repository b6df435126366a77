"""Renderers of a ``damo.diff.Comparison``: plain text, rich table, markdown, JSON, heatmap image."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from damo.diff.analysis import Comparison, MetricChange, RecordSummary
from damo.diff.gates import GateResult
from damo.errors import DamoError
from damo.fmt import format_sz

SCHEMA_ID = "damo-diff/1"


# ----------------------------------------------------------------------------- values

def fmt_value(unit: str, v: float) -> str:
    if unit == "bytes":
        return format_sz(v) if v >= 0 else "-" + format_sz(-v)
    if unit == "seconds":
        return f"{v:.3f} s"
    return f"{v:g}" if v == int(v) else f"{v:.1f}"


def fmt_signed(unit: str, v: float) -> str:
    text = fmt_value(unit, v)
    return text if text.startswith("-") else "+" + text


def fmt_pct(p: float | None) -> str:
    return "n/a" if p is None else f"{p:+.2f}%"


def fmt_hz(v: float) -> str:
    return f"{v:.1f} Hz"


def fmt_range(r: tuple[int, int] | None) -> str:
    return "-" if r is None else f"{r[0]:#x}-{r[1]:#x}"


def _side_cell(c: MetricChange, side: str) -> str:
    stats = getattr(c, side)
    text = fmt_value(c.unit, stats.mean)
    if stats.n > 1:
        text += f" ±{fmt_value(c.unit, stats.stdev)}"
    return text


def _side_line(name: str, side: list[RecordSummary], cmp: Comparison) -> str:
    files = ", ".join(s.path for s in side)
    n = len(side)
    dur = [s.metrics["duration"] for s in side]
    first = side[0]
    sample = "?" if first.sample_us is None else f"{first.sample_us}"
    return (f"{name}: {files} ({n} record{'s' if n > 1 else ''}; duration {np.mean(dur):.3f} s; "
            f"sample {sample} us, aggr {first.aggr_us:g} us; "
            f"{sum(s.nr_snapshots_used for s in side)} snapshots used)")


def header_lines(cmp: Comparison) -> list[str]:
    o, t = cmp.options, cmp.thresholds
    return [_side_line("base", cmp.base, cmp), _side_line("new", cmp.new, cmp),
            f"heat classes: hot >= {t.hot_hz:g} Hz ({o.hot}), cold <= {t.cold_hz:g} Hz ({o.cold}), warm between "
            f"(max rate {t.max_hz:g} Hz); wss: nr_accesses >= {o.acc_thres}, size >= {o.sz_thres} B; "
            f"first {o.exclude_samples} snapshots of each target excluded"]


def _noisy(cmp: Comparison) -> bool:
    return len(cmp.base) > 1 or len(cmp.new) > 1


def metric_rows(cmp: Comparison, noise_k: float) -> tuple[list[str], list[list[str]]]:
    head = ["metric", "base", "new", "change", "change%"]
    if _noisy(cmp):
        head.append(f"noise({noise_k:g}xSE)")
    rows = []
    for c in cmp.metrics.values():
        row = [c.name, _side_cell(c, "base"), _side_cell(c, "new"), fmt_signed(c.unit, c.delta),
               fmt_pct(c.delta_pct)]
        if _noisy(cmp):
            row.append("±" + fmt_value(c.unit, noise_k * c.noise))
        rows.append(row)
    return head, rows


def heat_rows(cmp: Comparison) -> tuple[list[str], list[list[str]]]:
    head = ["area", "offset", "size", "base", "new", "change", "base address", "new address"]
    rows = [[str(h.slot), "+" + format_sz(h.offset_start) if h.offset_start else "+0", format_sz(h.size),
             fmt_hz(h.base_hz), fmt_hz(h.new_hz), ("+" if h.delta_hz >= 0 else "") + fmt_hz(h.delta_hz),
             fmt_range(h.base_addr), fmt_range(h.new_addr)] for h in cmp.heat_changes]
    return head, rows


def _areas_line(cmp: Comparison) -> str:
    nb = len(cmp.base)
    base_areas = sum(len(s.areas) for s in cmp.base) / max(nb, 1)
    new_areas = sum(len(s.areas) for s in cmp.new) / max(len(cmp.new), 1)
    return (f"heat changes (time-averaged access rate per byte, mapped areas aligned by order and size: "
            f"base {base_areas:g}, new {new_areas:g} areas per record -> {len(cmp.slots)} aligned areas; "
            f"{format_sz(cmp.layout.bin_bytes)} bins):")


# ----------------------------------------------------------------------------- plain text

def _table(head: list[str], rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    def line(r):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        return (indent + "  ".join(cells)).rstrip()
    return [line(head)] + [line(r) for r in rows]


def render_text(cmp: Comparison, results: list[GateResult], noise_k: float) -> str:
    out = header_lines(cmp) + [""]
    out += _table(*metric_rows(cmp, noise_k))
    out += [""]
    if cmp.heat_changes:
        out += [_areas_line(cmp)] + _table(*heat_rows(cmp), indent="  ")
    else:
        out += ["heat changes: none"]
    if results:
        out += ["", "gates:"] + ["  " + r.line() for r in results]
    out += [f"warning: {w}" for w in cmp.warnings]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- rich

def render_rich(cmp: Comparison, results: list[GateResult], noise_k: float, console) -> None:
    """The same content as ``render_text`` as rich tables, for a terminal."""
    from rich.table import Table

    for line in header_lines(cmp):
        console.print(line, highlight=False, markup=False)
    tripped = {r.change.name for r in results if r.tripped}
    head, rows = metric_rows(cmp, noise_k)
    table = Table(title="damo report diff", title_justify="left")
    for i, h in enumerate(head):
        table.add_column(h, justify="left" if i == 0 else "right")
    for c, row in zip(cmp.metrics.values(), rows):
        style = "bold red" if c.name in tripped else ("yellow" if c.delta else None)
        table.add_row(*row, style=style)
    console.print(table)
    if cmp.heat_changes:
        head, rows = heat_rows(cmp)
        table = Table(title=_areas_line(cmp), title_justify="left")
        for i, h in enumerate(head):
            table.add_column(h, justify="right" if 1 <= i <= 5 else "left")
        for h, row in zip(cmp.heat_changes, rows):
            table.add_row(*row, style="red" if h.delta_hz > 0 else "green")
        console.print(table)
    else:
        console.print("heat changes: none")
    for r in results:
        console.print(r.line(), style="bold red" if r.tripped else "green", highlight=False, markup=False)
    for w in cmp.warnings:
        console.print(f"warning: {w}", style="yellow", highlight=False, markup=False)


# ----------------------------------------------------------------------------- markdown

def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(head) - 1)
    return (["| " + " | ".join(_md_escape(h) for h in head) + " |", "| " + " | ".join(align) + " |"]
            + ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows])


def render_markdown(cmp: Comparison, results: list[GateResult], noise_k: float) -> str:
    nr_tripped = sum(r.tripped for r in results)
    if not results:
        verdict = "no gates"
    elif nr_tripped:
        verdict = f"❌ {nr_tripped} of {len(results)} gates tripped"
    else:
        verdict = f"✅ all {len(results)} gates passed"
    out = [f"### damo report diff: {verdict}", ""]
    out += [f"- {_md_escape(line)}" for line in header_lines(cmp)] + [""]
    if results:
        out += ["**Gates**", ""]
        out += [f"- {'❌' if r.tripped else '✅'} `{r.gate.text}`: {_md_escape(r.line().split(': ', 1)[1])}"
                for r in results] + [""]
    out += _md_table(*metric_rows(cmp, noise_k)) + [""]
    if cmp.heat_changes:
        out += [f"**Heat changes** ({_md_escape(_areas_line(cmp).split('(', 1)[1].rstrip(':'))}", ""]
        out += _md_table(*heat_rows(cmp)) + [""]
    out += [f"> warning: {_md_escape(w)}" for w in cmp.warnings]
    return "\n".join(out).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------- JSON

def _stats(s) -> dict:
    return {"n": s.n, "mean": s.mean, "stdev": s.stdev, "min": s.min, "max": s.max, "values": list(s.values)}


def _record(s: RecordSummary) -> dict:
    return {"path": s.path, "target_kind": s.target_kind, "target": s.target, "sample_us": s.sample_us,
            "aggr_us": s.aggr_us, "nr_snapshots": s.nr_snapshots, "nr_snapshots_used": s.nr_snapshots_used,
            "areas": [[a.target, a.start, a.end] for a in s.areas]}


def to_json(cmp: Comparison, results: list[GateResult], noise_k: float) -> dict:
    """The comparison as JSON-ready data, described by docs/diff-schema.json."""
    o, t = cmp.options, cmp.thresholds
    nb = len(cmp.base)
    return {
        "schema": SCHEMA_ID,
        "base": [_record(s) for s in cmp.base],
        "new": [_record(s) for s in cmp.new],
        "options": {"exclude_samples": o.exclude_samples, "acc_thres": o.acc_thres, "sz_thres": o.sz_thres,
                    "hot": str(o.hot), "cold": str(o.cold), "hot_hz": t.hot_hz, "cold_hz": t.cold_hz,
                    "max_hz": t.max_hz, "bins": o.bins, "bin_bytes": cmp.layout.bin_bytes, "top": o.top,
                    "noise_k": noise_k},
        "metrics": {c.name: {"unit": c.unit, "base": _stats(c.base), "new": _stats(c.new), "delta": c.delta,
                             "delta_pct": c.delta_pct, "noise": c.noise}
                    for c in cmp.metrics.values()},
        "areas": [{"target": s.target, "size": s.size,
                   "base": [s.members.get(r) for r in range(nb)],
                   "new": [s.members.get(r) for r in range(nb, nb + len(cmp.new))]} for s in cmp.slots],
        "heat_changes": [{"area": h.slot, "offset_start": h.offset_start, "offset_end": h.offset_end,
                          "size": h.size, "base_hz": h.base_hz, "new_hz": h.new_hz, "delta_hz": h.delta_hz,
                          "base_addr": None if h.base_addr is None else list(h.base_addr),
                          "new_addr": None if h.new_addr is None else list(h.new_addr)}
                         for h in cmp.heat_changes],
        "gates": [{"expr": r.gate.text, "metric": r.gate.metric, "op": r.gate.op, "value": r.gate.value,
                   "percent": r.gate.percent, "threshold": r.threshold, "margin": r.margin,
                   "delta": r.change.delta, "tripped": r.tripped} for r in results],
        "nr_tripped": sum(r.tripped for r in results),
        "warnings": list(cmp.warnings),
    }


def render_json(cmp: Comparison, results: list[GateResult], noise_k: float) -> str:
    return json.dumps(to_json(cmp, results, noise_k), indent=2, allow_nan=False) + "\n"


def schema_path() -> Path:
    return Path(__file__).resolve().parents[2] / "docs" / "diff-schema.json"


# ----------------------------------------------------------------------------- heatmap image

def heatmap_diff_data(cmp: Comparison) -> dict[str, np.ndarray]:
    """What the heatmap image shows: Hz grids (address bins x time rows) and their axes."""
    if cmp.base_grid is None or cmp.new_grid is None or cmp.time_edges is None:
        raise ValueError("the comparison was made without time_rows")
    return {"base": cmp.base_grid.T, "new": cmp.new_grid.T, "diff": (cmp.new_grid - cmp.base_grid).T,
            "time_edges_s": cmp.time_edges, "addr_edges": cmp.layout.x_edges,
            "area_starts": cmp.layout.slot_base.astype(np.float64)}


def _finite_max(a: np.ndarray) -> float:
    finite = a[np.isfinite(a)]
    return float(finite.max()) if finite.size else 0.0


def plot_heatmap_diff(cmp: Comparison, path: str | os.PathLike) -> None:
    """Base, new and new - base side by side on shared axes (time x aligned address offset)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize, TwoSlopeNorm

    data = heatmap_diff_data(cmp)
    mib = float(1 << 20)
    x = data["time_edges_s"]
    y = data["addr_edges"] / mib
    if not data["base"].size:
        raise DamoError("nothing to draw: the records have no regions")
    top = max(_finite_max(data["base"]), _finite_max(data["new"]), 1e-9)
    span = max(_finite_max(np.abs(data["diff"])), 1e-9)
    fig, axes = plt.subplots(1, 3, sharex=True, sharey=True, figsize=(15, 5), constrained_layout=True)
    panels = [("base", data["base"], "viridis", Normalize(0, top)),
              ("new", data["new"], "viridis", Normalize(0, top)),
              ("new - base", data["diff"], "RdBu_r", TwoSlopeNorm(0.0, -span, span))]
    for ax, (title, grid, cmap, norm) in zip(axes, panels):
        mesh = ax.pcolormesh(x, y, np.ma.masked_invalid(grid), cmap=cmap, norm=norm, shading="flat")
        for boundary in data["area_starts"][1:] / mib:
            ax.axhline(boundary, color="white" if cmap == "viridis" else "gray", lw=0.5, ls="--")
        ax.set_title(title)
        ax.set_xlabel("time (s)")
        fig.colorbar(mesh, ax=ax, label="access rate (Hz)")
    axes[0].set_ylabel("aligned address offset (MiB)")
    fig.suptitle("damo report diff: " + ", ".join(s.path for s in cmp.base) + " vs "
                 + ", ".join(s.path for s in cmp.new))
    fig.savefig(path)
    plt.close(fig)
