"""The ``record`` command: options into a ``RecordRequest``, pick a source, run it.

TARGET picks the source: a masim config (``*.cfg``, or ``--ops sim``) runs the user-space
DAMON engine on the simulator; ``--vm`` runs the kernel record inside a VM; ``ongoing``
follows kdamonds that are already running (someone else's too) without touching them; anything
else (a command, a pid, ``paddr``) uses this machine's kernel DAMON. What the sources share (the
request, the sink, the metadata, finishing) is the recording core, damo.recording; sources
never import this module.
"""
from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
from typing import TYPE_CHECKING

from damo.errors import DamoError
from damo.formats import DEFAULT_FORMAT, FORMATS
from damo.labels import parse_label, record_labels
from damo.options import bounded_float
from damo.vm_accel import ACCEL_CHOICES, TLB_FLUSH_CHOICES

if TYPE_CHECKING:       # loaded by run(), so that --help and option errors stay light
    from damo.recording import RecordRequest

# source name -> module with `record(request: RecordRequest) -> int` (see damo.recording)
MAX_TIMEOUT_SECONDS = 1e7          # about 115 days
SOURCES = {
    "sim": "damo.sources.sim",
    "kernel": "damo.sources.kernel",
    "vm": "damo.sources.vm",
    "page_idle": "damo.sources.page_idle",
    "debugfs": "damo.sources.debugfs",
    "ongoing": "damo.sources.ongoing",
}
# damo record's backend (damo.kernel.backend) -> source name
BACKEND_SOURCES = {"sysfs": "kernel", "debugfs": "debugfs", "page_idle": "page_idle"}
DAMON_INTERFACES = ("auto", "sysfs", "debugfs")


def add_monitoring_arguments(parser: argparse.ArgumentParser) -> None:
    """damo's monitoring attribute options, shared by every command that starts monitoring."""
    parser.add_argument("-s", "--sample", type=int, default=5000, metavar="US",
                        help="sampling interval in microseconds")
    parser.add_argument("-a", "--aggr", type=int, default=100000, metavar="US",
                        help="aggregation interval in microseconds")
    parser.add_argument("-u", "--updr", type=int, default=1000000, metavar="US",
                        help="regions update interval in microseconds")
    parser.add_argument("-n", "--minr", type=int, default=10, help="minimum number of monitoring regions")
    parser.add_argument("-m", "--maxr", type=int, default=1000, help="maximum number of monitoring regions")


def parse_regions(text: str) -> list[tuple[int, int]]:
    """``"S-E S-E ..."`` into address pairs."""
    regions = []
    for item in text.replace(",", " ").split():
        try:
            start, end = (int(x, 0) for x in item.split("-"))
        except ValueError:
            raise DamoError(f"--regions: '{item}' is not START-END") from None
        if start >= end:
            raise DamoError(f"--regions: '{item}' is empty or reversed")
        regions.append((start, end))
    return sorted(regions)


DESCRIPTION = """\
Record which memory a workload accesses into a record file (default: damon.data; an existing
file is kept as damon.data.old). TARGET picks how:

  FILE.cfg        a masim config: the user-space DAMON engine watches the simulated workload,
                  with no kernel support needed (a 70 s config records in about a second);
                  a bundled config goes by its name (zigzag, stairs_30secs; `masim --list`);
                  several configs are several targets
  COMMAND / PID   this machine's kernel DAMON watches that process (needs root), and every
                  task it forks, each a target of its own; several PIDs are several targets;
                  on a kernel without DAMON but with idle page tracking, damo's own engine
                  watches the one process (--ops page_idle)
  paddr           this machine's kernel DAMON watches physical memory (needs root)
  --vm            the same, inside a VM whose kernel has full DAMON (see `damo vm`)
  ongoing         the snapshots of kdamonds that are already running, someone else's too,
                  without touching them (needs root; `damo report damon` shows their setup)

A kernel record stops when the workload exits, after --timeout, or on Ctrl-C."""

EXAMPLES = """\
examples:
  damo record zigzag
  damo record masim/configs/stairs.cfg -o stairs.data
  damo record zigzag --monitoring_intervals_autotune --do_record access,mem_footprint
  sudo damo record -- ./my_workload --its-option
  sudo damo record --timeout 10 paddr
  sudo damo record --exclude_child_tasks --timeout 10 1234 5678
  sudo damo record --snapshot 1 5 -- ./my_workload
  damo record zigzag stairs
  sudo damo record --ops page_idle --timeout 10 1234
  sudo damo record --damon_interface debugfs -- ./my_workload
  sudo damo record ongoing --kdamond 0 --timeout 60 -o host.data
  damo record --vm -o stairs.data 'masim masim/configs/stairs_30secs.cfg'"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # nargs="*" (not REMAINDER) so options may follow TARGET, as in damo; a command line
    # with its own options goes after "--" or in one quoted string.
    parser.add_argument("target", nargs="*", metavar="TARGET",
                        help="masim config (.cfg), command line, pid, 'paddr', or 'ongoing'")
    add_monitoring_arguments(parser)
    parser.add_argument("-o", "--out", default="damon.data", help="output file (default: damon.data)")
    parser.add_argument("--output_type", choices=list(FORMATS), default=DEFAULT_FORMAT,
                        help=f"output format (default: {DEFAULT_FORMAT})")
    parser.add_argument("--timeout", type=bounded_float(0, MAX_TIMEOUT_SECONDS, lo_open=True), metavar="SEC",
                        help="stop recording after SEC seconds, at most 1e7 (default: when the workload ends, or "
                             "Ctrl-C; a masim config runs its whole length)")
    parser.add_argument("--ops", choices=["vaddr", "fvaddr", "paddr", "sim", "page_idle"],
                        help="operations set (default: deduced from TARGET); page_idle: damo's own engine "
                             "over idle page tracking, for kernels without DAMON")
    parser.add_argument("--damon_interface", choices=DAMON_INTERFACES, default="auto",
                        help="the kernel DAMON interface: sysfs, debugfs (Linux 5.15 and older), or auto: "
                             "sysfs if present, else debugfs, else idle page tracking (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the simulator engine")
    parser.add_argument("--shell", action="store_true",
                        help="run the command line through bash (else /bin/sh); DAMON monitors the "
                             "shell's pid, which bash gives to the line's last command")
    parser.add_argument("-r", "--regions", type=parse_regions, default=[], metavar="'S-E ...'",
                        help="monitoring regions, for paddr and fvaddr (default: paddr watches the largest "
                             "System RAM range; fvaddr needs them)")
    parser.add_argument("--kdamond", action=KdamondAction, nargs="?", default=[], metavar="N",
                        help="with 'ongoing': a kdamond index to follow, or 'stat' for DAMON_STAT's; "
                             "repeatable (default: every running kdamond). Without N, as in damo 3.x: "
                             "starts the options of a kdamond of its own, e.g. --kdamond --target_pid A "
                             "--kdamond --target_pid B records A and B with two kdamonds (their child tasks "
                             "are not followed)")
    parser.add_argument("--vm", action="store_true", help="record inside a VM with a DAMON-capable kernel")
    parser.add_argument("--vm-kernel", dest="vm_kernel", metavar="PATH",
                        help="kernel image for --vm, or a series that `damo vm setup --kernel` fetched: 6.12 or 6.17 "
                             "(6.17 has the intervals goal; default: the 6.12 one `damo vm setup` fetched)")
    parser.add_argument("--vm-accel", dest="vm_accel", choices=ACCEL_CHOICES, default="auto",
                        help="how the --vm guest runs: kvm (hardware virtualisation), tcg (QEMU's software "
                             "emulation, many times slower), or auto: KVM if a first boot of the kernel under KVM "
                             "reaches its command (checked once per kernel and machine), else tcg (default: auto)")
    parser.add_argument("--vm-tlb-flush", dest="vm_tlb_flush", choices=TLB_FLUSH_CHOICES, default="auto",
                        help="run a TLB-flush ticker beside the --vm record, so that DAMON sees the accesses of a "
                             "busy workload under software emulation; auto: on under software emulation (tcg), "
                             "off under KVM, whose TLB is real (default: auto)")
    parser.add_argument("--label", action="append", type=parse_label, default=[], metavar="KEY=VALUE",
                        help="a label kept in the record, e.g. --label service=web (repeatable; default: "
                             "host, kernel and damo_version only)")
    add_targets_arguments(parser)
    add_side_and_goal_arguments(parser)


# --- several targets, child tasks and damo 3.4.3's record options (one block, see issue 17) ------

class KdamondAction(argparse.Action):
    """``--kdamond N`` (record ongoing's selection) or bare ``--kdamond`` (damo 3.x's marker of a
    new kdamond's options). Actions run in command-line order, so the markers counted so far
    say which kdamond a later --target_pid or --damon_ctx belongs to."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None:
            namespace.kdamond_marks = getattr(namespace, "kdamond_marks", 0) + 1
        else:
            namespace.kdamond = [*getattr(namespace, "kdamond", []), values]


class TargetPidAction(argparse.Action):
    """--target_pid PID, remembering the kdamond (the --kdamond markers before it) it belongs to."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.target_pid = [*getattr(namespace, "target_pid", []), values]
        marks = getattr(namespace, "kdamond_marks", 0)
        namespace.target_pid_kdamonds = [*getattr(namespace, "target_pid_kdamonds", []), max(marks - 1, 0)]


class ContextMarkAction(argparse.Action):
    """--damon_ctx: the kdamond (by the markers before it) that gets one more context."""

    def __call__(self, parser, namespace, values, option_string=None):
        marks = getattr(namespace, "kdamond_marks", 0)
        namespace.damon_ctx = [*getattr(namespace, "damon_ctx", []), max(marks - 1, 0)]


def kdamond_groups(args: argparse.Namespace) -> list[list[int]]:
    """damo 3.x's --kdamond markers as the pids of each kdamond ([] for one kdamond, the usual
    record); more than one context in a kdamond, or a kdamond without a pid, is one DamoError."""
    marks = getattr(args, "kdamond_marks", 0)
    contexts = list(getattr(args, "damon_ctx", []) or [])
    crowded = sorted({k for k in contexts if contexts.count(k) > 1})
    if crowded:
        raise DamoError(f"--damon_ctx: kdamond {crowded[0]} is given {contexts.count(crowded[0])} contexts, but the "
                        f"Linux kernel runs one DAMON context per kdamond: start each context with its own --kdamond")
    if marks <= 1:
        return []
    if args.target:
        raise DamoError("several kdamonds (--kdamond ... --kdamond ...) record running processes: give each its "
                        "--target_pid, and no TARGET")
    groups: list[list[int]] = [[] for _ in range(marks)]
    for pid, k in zip(args.target_pid, getattr(args, "target_pid_kdamonds", [])):
        groups[k].append(pid)
    empty = [k for k, pids in enumerate(groups) if not pids]
    if empty:
        raise DamoError(f"--kdamond: kdamond {empty[0]} has no --target_pid (each kdamond records its own processes)")
    seen = [pid for pids in groups for pid in pids]
    if len(set(seen)) != len(seen):
        raise DamoError("--kdamond: a process is given to two kdamonds; give each pid once")
    return groups


def add_targets_arguments(parser: argparse.ArgumentParser) -> None:
    """damo 3.4.3's names for targets and attributes, beside the 2.x ones above."""
    parser.add_argument("--target_pid", type=int, action=TargetPidAction, default=[], metavar="PID",
                        help="a process to record; repeatable, like giving several PIDs as TARGET "
                             "(default: TARGET)")
    parser.add_argument("--damon_target", action="count", default=0,
                        help="marks the start of a target's options (--target_pid, -r), as in damo 3.x; "
                             "each --target_pid is a target of its own either way")
    parser.add_argument("--damon_ctx", action=ContextMarkAction, nargs=0, default=[],
                        help="marks the start of a DAMON context's options, as in damo 3.x; the Linux kernel "
                             "runs one context per kdamond, so a second one needs its own --kdamond")
    parser.add_argument("--include_child_tasks", dest="child_tasks", action="store_true", default=True,
                        help="every process that a recorded process forks (children of children too) is "
                             "recorded as a target of its own from about a second after its birth until "
                             "it exits (the default; also with --ops page_idle; not through DAMON's debugfs "
                             "interface, whose target list cannot change while monitoring, nor with several "
                             "--kdamond groups)")
    parser.add_argument("--exclude_child_tasks", dest="child_tasks", action="store_false",
                        help="record only the given processes, not the ones they fork")
    parser.add_argument("--monitoring_intervals", nargs=3, metavar=("SAMPLE", "AGGR", "UPDATE"),
                        help="sampling, aggregation and regions update intervals, as -s -a -u, with damo's "
                             "units: 5ms, 100ms, 1s (a bare number is microseconds; default: 5ms 100ms 1s)")
    parser.add_argument("--monitoring_nr_regions_range", nargs=2, metavar=("MIN", "MAX"),
                        help="minimum and maximum number of monitoring regions, as -n -m (default: 10 1000)")
    parser.add_argument("--numa_node", type=int, nargs="+", metavar="N",
                        help="with paddr: watch only the memory of these NUMA nodes (default: the largest "
                             "System RAM range)")
    parser.add_argument("--output_permission", default="600", metavar="OCTAL",
                        help="permission bits of the record file (default: 600)")
    parser.add_argument("--snapshot", nargs=2, metavar=("DELAY", "COUNT"),
                        help="take COUNT snapshots DELAY seconds apart (each a full picture of the target's "
                             "regions, from a DAMOS 'stat' scheme's tried regions on damo's own kdamond) and "
                             "write them as a normal record (default: record every aggregation)")


def _parse_us(option: str, text: str) -> int:
    from damo.selection import parse_time_ns

    try:
        value = parse_time_ns(text, bare_unit_ns=1000) / 1000
    except ValueError:
        raise DamoError(f"{option}: '{text}' is not a time (e.g. 5ms, 100ms, 1s)") from None
    if value != int(value) or value <= 0:
        raise DamoError(f"{option}: '{text}' is not a positive number of microseconds")
    return int(value)


def _parse_count(option: str, text: str) -> int:
    try:
        return int(text.replace(",", ""))
    except ValueError:
        raise DamoError(f"{option}: '{text}' is not a whole number") from None


def _parse_snapshot(values: list[str] | None) -> tuple[float, int] | None:
    if values is None:
        return None
    delay_text, count_text = values
    try:
        delay, count = float(delay_text), int(count_text)
    except ValueError:
        raise DamoError(f"--snapshot: '{delay_text} {count_text}' is not DELAY (seconds) and COUNT") from None
    if not 0 <= delay <= MAX_TIMEOUT_SECONDS or count < 1:
        raise DamoError(f"--snapshot {delay_text} {count_text}: DELAY must be 0 to 1e7 seconds and COUNT at least 1")
    return delay, count


def _parse_permission(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise DamoError(f"--output_permission: '{text}' is not an octal file mode (e.g. 600)")
    return mode


def targets_options(args: argparse.Namespace, attrs_args: list[int]) -> tuple[list[int], dict]:
    """The monitoring attributes (-s -a -u -n -m, overridden by damo 3.4.3's names) and the
    request fields of the options above."""
    sample, aggr, updr, minr, maxr = attrs_args
    if args.monitoring_intervals:
        sample, aggr, updr = (_parse_us("--monitoring_intervals", t) for t in args.monitoring_intervals)
    if args.monitoring_nr_regions_range:
        minr, maxr = (_parse_count("--monitoring_nr_regions_range", t) for t in args.monitoring_nr_regions_range)
    fields = {"child_tasks": args.child_tasks,
              "numa_nodes": list(args.numa_node or []), "output_permission": _parse_permission(args.output_permission),
              "snapshot": _parse_snapshot(args.snapshot)}
    return [sample, aggr, updr, minr, maxr], fields


def numa_regions(target: list[str], ops: str | None, regions: list, nodes: list[int]) -> list[tuple[int, int]]:
    """--numa_node's physical address ranges, checked before anything else happens."""
    from damo.kernel.numa import node_ranges

    if target != ["paddr"] or ops not in (None, "paddr"):
        raise DamoError("--numa_node limits paddr monitoring: give 'paddr' as TARGET")
    if regions:
        raise DamoError("--numa_node and -r both say what to monitor: give one of them")
    return node_ranges(nodes)


def merge_target_pids(target: list[str], target_pids: list[int]) -> list[str]:
    """TARGET words with the --target_pid ones: several pids are several targets."""
    if not target_pids:
        return target
    if target and not all(word.isdigit() for word in target):
        raise DamoError("--target_pid records running processes: give no command with it")
    return target + [str(pid) for pid in target_pids]


# --- what is recorded beside the accesses, and the intervals goal (damo 3.x) ----------------
DO_RECORD_CHOICES = ("access", "mem_footprint", "vmas", "proc_stats")
AUTOTUNE_GOAL = ("4%", "3", "5ms", "10s")     # damo 3.4.3's --monitoring_intervals_autotune goal
MAX_GOAL_AGGRS = 1 << 20


def parse_do_record(text: str) -> tuple[str, ...]:
    """``access,mem_footprint,...`` into the kinds, in DO_RECORD_CHOICES order."""
    kinds = {k.strip() for k in text.replace(" ", ",").split(",") if k.strip()}
    unknown = sorted(kinds - set(DO_RECORD_CHOICES))
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"'{text}': choose from {','.join(DO_RECORD_CHOICES)}")
    return tuple(k for k in DO_RECORD_CHOICES if k in kinds)


def add_side_and_goal_arguments(parser: argparse.ArgumentParser) -> None:
    """--do_record, --monitoring_intervals_goal and --monitoring_intervals_autotune."""
    parser.add_argument("--do_record", type=parse_do_record, default=DO_RECORD_CHOICES, metavar="WHAT,...",
                        help="what to record, comma-separated: access (the DAMON snapshots, always recorded), mem_footprint "
                             "(targets' /proc/PID/statm and the system's /proc/meminfo), vmas (/proc/PID/maps), "
                             "proc_stats (/proc/PID/stat); the last three once a second (default: all)")
    parser.add_argument("--monitoring_intervals_goal", nargs=4,
                        metavar=("ACCESS_BP", "AGGRS", "MIN_SAMPLE_US", "MAX_SAMPLE_US"),
                        help="tune the sampling and aggregation intervals so that ACCESS_BP (basis points, "
                             "or e.g. 4%%) of the possible accesses are seen every AGGRS aggregations, the "
                             "sampling interval kept within [MIN, MAX] (times in us, or with a unit: 5ms, 10s); "
                             "kernel: Linux 6.15 or later (default: not tuned)")
    parser.add_argument("--monitoring_intervals_autotune", action="store_true",
                        help="the same with damo's goal: 4%% 3 5ms 10s")


def intervals_goal_from_args(args: argparse.Namespace, attrs) -> tuple[int, int, int, int] | None:
    """The goal of --monitoring_intervals_goal/--monitoring_intervals_autotune in (bp, aggrs, us, us);
    a value out of range is one DamoError."""
    from damo.options import basis_points

    text = args.monitoring_intervals_goal or (AUTOTUNE_GOAL if args.monitoring_intervals_autotune else None)
    if text is None:
        return None
    option = "--monitoring_intervals_goal"
    try:
        access_bp = basis_points(text[0])
    except ValueError as err:
        raise DamoError(f"{option}: {err}") from None
    goal = (access_bp, _parse_count(option, text[1]), _parse_us(option, text[2]), _parse_us(option, text[3]))
    access_bp, aggrs, min_us, max_us = goal
    if not 0 < access_bp <= 10000:
        raise DamoError(f"--monitoring_intervals_goal: ACCESS_BP {text[0]} is outside (0, 10000] bp (0-100%)")
    if not 0 < aggrs <= MAX_GOAL_AGGRS:
        raise DamoError(f"--monitoring_intervals_goal: AGGRS {text[1]} is outside 1..{MAX_GOAL_AGGRS}")
    if not 0 < min_us <= max_us:
        raise DamoError(f"--monitoring_intervals_goal: MIN_SAMPLE_US {text[2]} and MAX_SAMPLE_US {text[3]} "
                        f"must be positive, the minimum at most the maximum")
    if not min_us <= attrs.sample_us <= max_us:
        raise DamoError(f"--monitoring_intervals_goal: the sampling interval ({attrs.sample_us} us) is outside "
                        f"[{min_us}, {max_us}] us")
    return goal


def pick_source(request: RecordRequest, use_vm: bool) -> str:
    if use_vm:
        return "vm"
    if request.target == ["ongoing"]:
        return "ongoing"
    # A lone masim config is simulated; "masim X.cfg" (one quoted command line) runs masim for real.
    lone = request.target[0] if len(request.target) == 1 else ""
    if lone and len(lone.split()) == 1:
        from masim.config import resolve_config_path

        # A bundled config by name ("zigzag", or "zigzag.cfg" where no such file is here), unless
        # the name is a file or a command of this machine.
        bundled = resolve_config_path(lone)
        if bundled != lone and not os.path.exists(lone) and (lone.endswith(".cfg") or not shutil.which(lone)):
            request.target = [bundled]
            return "sim"
    if request.ops == "sim" or (lone.endswith(".cfg") and len(lone.split()) == 1):
        return "sim"
    if len(request.target) > 1 and all(_is_config(word) for word in request.target):
        from masim.config import resolve_config_path

        request.target = [resolve_config_path(word) for word in request.target]
        return "sim"      # several masim configs: one simulated target each
    from damo.kernel.backend import choose_backend
    return BACKEND_SOURCES[choose_backend(request.damon_interface, request.ops).name]


def _is_config(word: str) -> bool:
    """A masim config file, or a bundled config's name that is no file or command here."""
    from masim.config import resolve_config_path

    if word.endswith(".cfg") and len(word.split()) == 1:
        return True
    return resolve_config_path(word) != word and not os.path.exists(word) and not shutil.which(word)


def request_from_args(args: argparse.Namespace) -> RecordRequest:
    """The request of ``damo record``'s options; bad values raise DamoError."""
    from damo.model import MonitoringAttrs
    from damo.recording import RecordRequest

    target = list(args.target)
    if target and target[0] == "--":
        target = target[1:]
    groups = kdamond_groups(args)
    target = merge_target_pids(target, args.target_pid)
    if not target:
        raise DamoError("record: a TARGET is needed (a masim .cfg file, a command, a pid or 'paddr')")
    attrs_args, target_fields = targets_options(args, [args.sample, args.aggr, args.updr, args.minr, args.maxr])
    attrs = MonitoringAttrs(*attrs_args)
    try:
        attrs.check()
    except ValueError as err:
        raise DamoError(f"record: bad monitoring attributes: {err}") from None
    if args.timeout is not None and args.timeout <= 0:
        raise DamoError("--timeout must be positive")
    regions = args.regions
    if target_fields["numa_nodes"]:
        regions = numa_regions(target, args.ops, args.regions, target_fields["numa_nodes"])
    return RecordRequest(target=target, attrs=attrs, ops=args.ops, damon_interface=args.damon_interface,
                         timeout=args.timeout, seed=args.seed,
                         shell=args.shell, regions=regions, vm_kernel=args.vm_kernel, out=args.out,
                         vm_accel=args.vm_accel, vm_tlb_flush=args.vm_tlb_flush,
                         output_type=args.output_type, kdamonds=list(args.kdamond),
                         labels=record_labels(args.label), do_record=args.do_record,
                         intervals_goal=intervals_goal_from_args(args, attrs), kdamond_pids=groups,
                         **target_fields)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    request = request_from_args(args)
    if request.kdamonds and request.target != ["ongoing"]:
        raise DamoError("--kdamond goes with 'damo record ongoing'")
    source_name = pick_source(request, args.vm)
    if request.kdamond_pids and source_name != "kernel":
        raise DamoError("several kdamonds (--kdamond markers) are for recording this machine's processes with its "
                        "kernel DAMON, not for --vm or the simulator")
    if request.intervals_goal is not None and source_name in ("ongoing", "page_idle"):
        raise DamoError(f"--monitoring_intervals_goal/--monitoring_intervals_autotune: not for {source_name} "
                        "records (only the simulator and the kernel's sysfs interface tune intervals)")
    source = importlib.import_module(SOURCES[source_name])
    # SIGTERM stops a record like Ctrl-C does: sources clean up in their finally blocks.
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return source.record(request)
    finally:
        signal.signal(signal.SIGTERM, previous)
