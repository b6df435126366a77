"""What the kernel's DAMON is doing right now, read from sysfs without writing anything.

``read_status`` turns DAMON's sysfs tree (every kdamond, context, target and scheme) and the
DAMON modules' parameters (DAMON_STAT, DAMON_RECLAIM, DAMON_LRU_SORT) into plain dicts of
numbers and strings: the JSON of ``damo report damon --json``, the text report's input, and the
metadata of ``damo record ongoing``. Nothing here writes: scheme statistics and tried regions
are shown as the kernel last updated them (it refreshes them by itself only where the kdamond's
``refresh_ms`` is set; asking it to would be a write to ``state``).
"""
from __future__ import annotations

import os
from pathlib import Path

from damo.kernel.sysfs import DamonSysfs, read_checked

MODULES_DIR = Path("/sys/module")
DAMON_STAT = "damon_stat"
# DAMON's own modules: each runs a kdamond that is not in the admin sysfs tree.
DAMON_MODULES = ("damon_stat", "damon_reclaim", "damon_lru_sort")

Tree = dict[str, "str | Tree"]


def read_tree(path: Path) -> Tree:
    """Every readable file under ``path`` as a nested dict of stripped strings (read-only).

    A file that cannot be read (permissions, or a handler busy with a running kdamond for
    longer than the retry period) is left out rather than failing the whole status.
    """
    tree: Tree = {}
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return tree
    sysfs = DamonSysfs(path)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            tree[entry.name] = read_tree(Path(entry.path))
        elif entry.is_file(follow_symlinks=False):
            try:
                tree[entry.name] = sysfs.read(entry.name)
            except OSError:
                continue
    return tree


def _int(value, default: int | None = None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _numbered(tree: Tree, count_name: str) -> list[Tree]:
    """The numbered subdirectories of ``tree``, as many as its ``count_name`` file says."""
    count = _int(tree.get(count_name), 0) if isinstance(tree, dict) else 0
    return [tree[str(i)] for i in range(count) if isinstance(tree.get(str(i)), dict)]


def _min_max(tree: Tree) -> dict:
    return {"min": _int(tree.get("min")), "max": _int(tree.get("max"))}


def _filter(tree: Tree, layer: str) -> dict:
    kind = tree.get("type", "")
    item = {"layer": layer, "type": kind, "matching": tree.get("matching") == "Y",
            "allow": (tree.get("allow") or tree.get("pass")) == "Y"}
    if kind == "memcg":
        item["memcg_path"] = tree.get("memcg_path", "")
    elif kind == "addr":
        item["addr_start"], item["addr_end"] = _int(tree.get("addr_start")), _int(tree.get("addr_end"))
    elif kind == "target":
        item["damon_target_idx"] = _int(tree.get("damon_target_idx"))
    elif kind == "hugepage_size":
        item["min"], item["max"] = _int(tree.get("min")), _int(tree.get("max"))
    return item


def _scheme(tree: Tree) -> dict:
    quotas = tree.get("quotas", {})
    weights = quotas.get("weights", {})
    goals = []
    for goal in _numbered(quotas.get("goals", {}), "nr_goals"):
        goals.append({"metric": goal.get("target_metric", "user_input"), "target_value": _int(goal.get("target_value")),
                      "current_value": _int(goal.get("current_value")), "nid": _int(goal.get("nid")),
                      "path": goal.get("path")})
    watermarks = tree.get("watermarks", {})
    filters = []
    for layer in ("core_filters", "ops_filters", "filters"):
        filters += [_filter(f, layer) for f in _numbered(tree.get(layer, {}), "nr_filters")]
    stats = {name: _int(value) for name, value in tree.get("stats", {}).items()}
    tried = tree.get("tried_regions", {})
    tried_regions = [{"start": _int(r.get("start")), "end": _int(r.get("end")),
                      "nr_accesses": _int(r.get("nr_accesses")), "age": _int(r.get("age")),
                      "sz_filter_passed": _int(r.get("sz_filter_passed"))}
                     for r in (tried[k] for k in sorted((k for k in tried if k.isdigit()), key=int))]
    pattern = tree.get("access_pattern", {})
    return {
        "action": tree.get("action", ""),
        "target_nid": _int(tree.get("target_nid")),
        "apply_interval_us": _int(tree.get("apply_interval_us"), 0),
        "access_pattern": {"sz_bytes": _min_max(pattern.get("sz", {})),
                           "nr_accesses_samples": _min_max(pattern.get("nr_accesses", {})),
                           "age_aggr_intervals": _min_max(pattern.get("age", {}))},
        "quotas": {"time_ms": _int(quotas.get("ms"), 0), "sz_bytes": _int(quotas.get("bytes"), 0),
                   "reset_interval_ms": _int(quotas.get("reset_interval_ms"), 0),
                   "effective_sz_bytes": _int(quotas.get("effective_bytes"), 0),
                   "weights": {"sz_permil": _int(weights.get("sz_permil"), 0),
                               "nr_accesses_permil": _int(weights.get("nr_accesses_permil"), 0),
                               "age_permil": _int(weights.get("age_permil"), 0)},
                   "goals": goals},
        "watermarks": {"metric": watermarks.get("metric", "none"),
                       "interval_us": _int(watermarks.get("interval_us"), 0),
                       "high_permil": _int(watermarks.get("high"), 0), "mid_permil": _int(watermarks.get("mid"), 0),
                       "low_permil": _int(watermarks.get("low"), 0)},
        "filters": filters,
        "stats": stats,
        "tried_regions": tried_regions,
        "tried_bytes": _int(tried.get("total_bytes")),
    }


def _context(tree: Tree) -> dict:
    attrs = tree.get("monitoring_attrs", {})
    intervals = attrs.get("intervals", {})
    goal = intervals.get("intervals_goal")
    targets = []
    for target in _numbered(tree.get("targets", {}), "nr_targets"):
        regions = [{"start": _int(r.get("start")), "end": _int(r.get("end"))}
                   for r in _numbered(target.get("regions", {}), "nr_regions")]
        targets.append({"pid": _int(target.get("pid_target")), "obsolete": target.get("obsolete_target") == "Y",
                        "regions": regions})
    return {
        "ops": tree.get("operations", ""),
        "addr_unit": _int(tree.get("addr_unit"), 1),
        "intervals": {"sample_us": _int(intervals.get("sample_us")), "aggr_us": _int(intervals.get("aggr_us")),
                      "update_us": _int(intervals.get("update_us"))},
        "intervals_goal": None if goal is None else {
            "access_bp": _int(goal.get("access_bp"), 0), "aggrs": _int(goal.get("aggrs"), 0),
            "min_sample_us": _int(goal.get("min_sample_us"), 0), "max_sample_us": _int(goal.get("max_sample_us"), 0)},
        "nr_regions": _min_max(attrs.get("nr_regions", {})),
        "targets": targets,
        "schemes": [_scheme(s) for s in _numbered(tree.get("schemes", {}), "nr_schemes")],
    }


def kdamond_status(index: int, tree: Tree) -> dict:
    """One kdamond directory's tree as a status dict."""
    pid = _int(tree.get("pid"))
    return {"index": index, "state": tree.get("state", "unknown"),
            "pid": pid if pid is not None and pid > 0 else None,
            "refresh_ms": _int(tree.get("refresh_ms"), 0),
            "contexts": [_context(c) for c in _numbered(tree.get("contexts", {}), "nr_contexts")]}


def read_kdamonds(sysfs: DamonSysfs | None = None) -> list[dict]:
    """Every kdamond of DAMON's sysfs interface; raises DamoError naming what cannot be read."""
    sysfs = sysfs or DamonSysfs()
    nr_kdamonds = read_checked(sysfs, sysfs.nr_kdamonds)
    return [kdamond_status(i, read_tree(sysfs.kdamonds_dir / str(i))) for i in range(nr_kdamonds)]


def read_module(name: str, modules_dir: Path = MODULES_DIR) -> dict | None:
    """A DAMON module's parameters (``/sys/module/NAME/parameters``), or None where it is absent."""
    params_dir = modules_dir / name / "parameters"
    if not params_dir.is_dir():
        return None
    return {key: value for key, value in read_tree(params_dir).items() if isinstance(value, str)}


def damon_stat_status(modules_dir: Path = MODULES_DIR) -> dict | None:
    """DAMON_STAT's parameters with its estimates decoded, or None where the kernel lacks it."""
    params = read_module(DAMON_STAT, modules_dir)
    if params is None:
        return None
    percentiles = [_int(x) for x in params.get("memory_idle_ms_percentiles", "").split(",") if x.strip()]
    return {"enabled": params.get("enabled") == "Y",
            "estimated_memory_bandwidth": _int(params.get("estimated_memory_bandwidth")),
            "memory_idle_ms_percentiles": percentiles,
            "aggr_interval_us": _int(params.get("aggr_interval_us")),
            "parameters": params}


def module_kdamond_pids(exclude: set[int], proc: Path = Path("/proc")) -> list[int]:
    """Pids of kdamond threads (``kdamond.N``) that are not among ``exclude``: the kdamonds of
    DAMON's modules, which the admin sysfs tree does not list."""
    pids = []
    try:
        entries = [e for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return pids
    for entry in entries:
        try:
            comm = (proc / entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("kdamond.") and int(entry) not in exclude:
            pids.append(int(entry))
    return sorted(pids)


def read_status(sysfs: DamonSysfs | None = None, modules_dir: Path = MODULES_DIR) -> dict:
    """Everything ``damo report damon`` shows: kdamonds, DAMON modules and DAMON_STAT."""
    modules = {}
    for name in DAMON_MODULES:
        params = read_module(name, modules_dir)
        if params is not None:
            modules[name] = "on" if (params.get("enabled") or params.get("enable")) == "Y" else "off"
    sysfs = sysfs or DamonSysfs()
    return {"kdamonds": read_kdamonds(sysfs) if sysfs.present() else [],
            "sysfs": str(sysfs.root) if sysfs.present() else None,
            "modules": modules,
            "damon_stat": damon_stat_status(modules_dir)}
