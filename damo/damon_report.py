"""``damo report damon`` (alias ``damo status``): what the kernel's DAMON is doing now.

Reads DAMON's sysfs and module parameters through damo.kernel.status (never writing) and prints
them in damo 3.4.3's ``report damon`` layout, or as JSON.
"""
from __future__ import annotations

import argparse
import json

from damo import fmt
from damo.kernel.status import read_status

DESCRIPTION = """\
Show what the kernel's DAMON is doing now: every kdamond, its contexts (operations set,
intervals and their goal, nr_regions range, targets), its schemes (action, access pattern,
quotas and goals, watermarks, filters, statistics, tried regions), DAMON_RECLAIM/LRU_SORT and
DAMON_STAT. Only reads /sys/kernel/mm/damon and /sys/module/damon_*, so it is safe on a machine
whose DAMON belongs to someone else; scheme statistics and tried regions are shown as the kernel
last updated them (asking for an update would be a write). Works without root where those
files are readable."""

EXAMPLES = """\
examples:
  damo report damon                    # or: damo status
  damo report damon --json             # the same as JSON
  damo status --omit_damos_tried_regions"""

AGE_UNIT = "aggr_intervals"


def _range(values: dict, format_one) -> str:
    return "[%s, %s]" % (format_one(values["min"]), format_one(values["max"]))


def _intervals_lines(ctx: dict, raw: bool) -> list[str]:
    iv = ctx["intervals"]
    main = "sample %s, aggr %s, update %s" % (fmt.format_time_us(iv["sample_us"], raw),
                                            fmt.format_time_us(iv["aggr_us"], raw),
                                            fmt.format_time_us(iv["update_us"], raw))
    goal = ctx["intervals_goal"]
    if not goal or not goal["aggrs"]:
        return [f"intervals: {main}"]
    goal_line = "target %s accesses per %s aggrs, [%s, %s] sampling interval" % (
        fmt.format_bp(goal["access_bp"], raw), fmt.format_nr(goal["aggrs"], raw),
        fmt.format_time_us(goal["min_sample_us"], raw), fmt.format_time_us(goal["max_sample_us"], raw))
    return ["intervals", fmt.indent_lines(f"{main}\n{goal_line}", 4)]


def _filter_text(item: dict, raw: bool) -> str:
    words = ["allow" if item["allow"] else "reject"]
    if not item["matching"]:
        words.append("none")
    words.append(item["type"])
    if item["type"] == "memcg":
        words.append(item.get("memcg_path", ""))
    elif item["type"] == "addr":
        words.append(fmt.format_addr_range(item["addr_start"], item["addr_end"], raw))
    elif item["type"] == "target":
        words.append(fmt.format_nr(item["damon_target_idx"], raw))
    elif item["type"] == "hugepage_size":
        words.append("[%s, %s]" % (fmt.format_sz(item["min"], raw), fmt.format_sz(item["max"], raw)))
    return " ".join(words)


def _scheme_lines(scheme: dict, raw: bool, with_tried_regions: bool) -> list[str]:
    action = f"action: {scheme['action']}"
    if scheme["action"] in ("migrate_hot", "migrate_cold"):
        action += f" to node {scheme['target_nid']}"
    interval = scheme["apply_interval_us"]
    action += " per " + (fmt.format_time_us(interval, raw) if interval else "aggr interval")
    pattern = scheme["access_pattern"]
    nr_text = lambda v: f"{fmt.format_nr(v, raw)} samples"           # noqa: E731
    age_text = lambda v: f"{fmt.format_nr(v, raw)} {AGE_UNIT}"        # noqa: E731
    pattern_lines = [f"sz: {_range(pattern['sz_bytes'], lambda v: fmt.format_sz(v, raw))}",
                     f"nr_accesses: {_range(pattern['nr_accesses_samples'], nr_text)}",
                     f"age: {_range(pattern['age_aggr_intervals'], age_text)}"]
    q = scheme["quotas"]
    quota_lines = ["%s / %s / %s per %s" % (fmt.format_time_ns(q["time_ms"] * 1000000, raw),
                                            fmt.format_sz(q["sz_bytes"], raw),
                                            fmt.format_sz(q["effective_sz_bytes"], raw),
                                            fmt.format_time_ms(q["reset_interval_ms"], raw))]
    for i, goal in enumerate(q["goals"]):
        extra = []
        if goal["nid"] is not None and goal["metric"].startswith("node_"):
            extra.append(f"nid {fmt.format_nr(goal['nid'], raw)}")
        if goal["path"] and "memcg" in goal["metric"]:
            extra.append(f"memcg {goal['path']}")
        metric = goal["metric"] + (f" ({', '.join(extra)})" if extra else "")
        quota_lines.append("goal %d: metric %s target %s current %s" % (
            i, metric, fmt.format_nr(goal["target_value"] or 0, raw), fmt.format_nr(goal["current_value"] or 0, raw)))
    w = q["weights"]
    quota_lines.append("priority: sz %s, nr_accesses %s, age %s" % (
        fmt.format_permil(w["sz_permil"], raw), fmt.format_permil(w["nr_accesses_permil"], raw),
        fmt.format_permil(w["age_permil"], raw)))
    wm = scheme["watermarks"]
    lines = [action, "target access pattern", fmt.indent_lines("\n".join(pattern_lines), 4),
             "quotas", fmt.indent_lines("\n".join(quota_lines), 4),
             "watermarks", fmt.indent_lines("metric %s, interval %s\n%s, %s, %s" % (
                 wm["metric"], fmt.format_time_us(wm["interval_us"], raw), fmt.format_permil(wm["high_permil"], raw),
                 fmt.format_permil(wm["mid_permil"], raw), fmt.format_permil(wm["low_permil"], raw)), 4)]
    for i, item in enumerate(scheme["filters"]):
        lines += [f"filter {i}", fmt.indent_lines(_filter_text(item, raw), 4)]
    st = scheme["stats"]
    if st:
        get = lambda name: st.get(name) or 0                        # noqa: E731
        lines += ["statistics", fmt.indent_lines("\n".join([
            "tried %s times (%s)" % (fmt.format_nr(get("nr_tried"), raw), fmt.format_sz(get("sz_tried"), raw)),
            "applied %s times (%s)" % (fmt.format_nr(get("nr_applied"), raw), fmt.format_sz(get("sz_applied"), raw)),
            "%s passed filters" % fmt.format_sz(get("sz_ops_filter_passed"), raw),
            "quota exceeded %s times" % fmt.format_nr(get("qt_exceeds"), raw)]), 4)]
    if with_tried_regions:
        tried = scheme["tried_regions"]
        total = scheme["tried_bytes"] if scheme["tried_bytes"] is not None else sum(r["end"] - r["start"] for r in tried)
        lines.append(f"tried regions ({fmt.format_sz(total, raw)})")
        for r in tried:
            lines.append(fmt.indent_lines("%s: nr_accesses: %s samples, age: %s %s" % (
                fmt.format_addr_range(r["start"], r["end"], raw), fmt.format_nr(r["nr_accesses"], raw),
                fmt.format_nr(r["age"], raw), AGE_UNIT), 4))
    return lines


def _context_lines(ctx: dict, raw: bool, with_tried_regions: bool) -> list[str]:
    ops = f"ops: {ctx['ops']}"
    if ctx["addr_unit"] != 1:
        ops += f" addr_unit {fmt.format_sz(ctx['addr_unit'], raw)}"
    lines = [ops]
    for i, target in enumerate(ctx["targets"]):
        target_lines = [] if target["pid"] is None else [f"pid: {target['pid']}"]
        if target["obsolete"]:
            target_lines.append("(obsolete)")
        target_lines += ["region " + fmt.format_addr_range(r["start"], r["end"], raw) for r in target["regions"]]
        lines += [f"target {i}"] + ([fmt.indent_lines("\n".join(target_lines), 4)] if target_lines else [])
    lines += _intervals_lines(ctx, raw)
    lines.append("nr_regions: " + _range(ctx["nr_regions"], lambda v: fmt.format_nr(v, raw)))
    for i, scheme in enumerate(ctx["schemes"]):
        lines += [f"scheme {i}", fmt.indent_lines("\n".join(_scheme_lines(scheme, raw, with_tried_regions)), 4)]
    return lines


def _damon_stat_lines(stat: dict | None, raw: bool) -> list[str]:
    if stat is None:
        return ["DAMON_STAT: not in this kernel (no /sys/module/damon_stat)"]
    lines = [f"DAMON_STAT: {'on' if stat['enabled'] else 'off'}"]
    if stat["estimated_memory_bandwidth"] is not None:
        lines.append(fmt.indent_lines("estimated memory bandwidth: %s per second" % fmt.format_sz(
            stat["estimated_memory_bandwidth"], raw), 4))
    percentiles = stat["memory_idle_ms_percentiles"]
    if len(percentiles) == 101:
        shown = ", ".join("p%d %s" % (p, fmt.format_time_ms(percentiles[p], raw)) for p in (0, 25, 50, 75, 90, 99, 100))
        lines.append(fmt.indent_lines(f"memory idle time percentiles: {shown}", 4))
    if stat["aggr_interval_us"] is not None:
        lines.append(fmt.indent_lines(f"aggr interval: {fmt.format_time_us(stat['aggr_interval_us'], raw)}", 4))
    return lines


def render(status: dict, raw: bool = False, with_tried_regions: bool = True) -> str:
    """The text report: 3.4.3's ``report damon`` layout, then DAMON modules and DAMON_STAT."""
    lines = []
    if status["sysfs"] is None:
        lines.append("DAMON sysfs: not in this kernel (no /sys/kernel/mm/damon/admin)")
    elif not status["kdamonds"]:
        lines.append("no kdamond in DAMON's sysfs interface")
    stale = []
    for k in status["kdamonds"]:
        summary = [f"state: {k['state']}"] + ([f"pid: {k['pid']}"] if k["pid"] is not None else [])
        if k["refresh_ms"]:
            summary.append(f"stats refresh per: {fmt.format_time_ms(k['refresh_ms'], raw)}")
        elif any(c["schemes"] for c in k["contexts"]):
            stale.append(str(k["index"]))
        body = [", ".join(summary)]
        for i, ctx in enumerate(k["contexts"]):
            body += [f"context {i}", fmt.indent_lines("\n".join(_context_lines(ctx, raw, with_tried_regions)), 4)]
        lines += [f"kdamond {k['index']}", fmt.indent_lines("\n".join(body), 4)]
    for name, state in sorted(status["modules"].items()):
        if name != "damon_stat":
            lines.append(f"{name}: {state}")
    lines += _damon_stat_lines(status["damon_stat"], raw)
    if stale:
        lines.append(f"note: scheme statistics and tried regions are as the kernel last updated them: kdamond "
                     f"{', '.join(stale)} has refresh_ms 0, and this report never asks for an update")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the status as JSON (default: text)")
    parser.add_argument("--raw", action="store_true", help="print plain integers instead of units (default: off)")
    parser.add_argument("--omit_damos_tried_regions", action="store_true",
                        help="leave out schemes' tried regions (default: shown)")


def run(args: argparse.Namespace) -> int:
    status = read_status()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(render(status, raw=args.raw, with_tried_regions=not args.omit_damos_tried_regions))
    return 0
