"""The ``masim`` command: run a memory access pattern config for real.

``main`` is the one place where errors become exit codes: a bad config or
option prints one ``masim: error: ...`` line and exits 2.
"""
from __future__ import annotations

import argparse
import os
import locale
import signal
import sys

from damo.errors import DamoError
from masim.config import (DEFAULT_RW_MODE, RW_MODES, bundled_configs, check_memory, format_config, load_config,
                          resolve_config_path)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() owns exit codes."""

    def error(self, message):
        raise DamoError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="masim", description="Simulate the memory access pattern that a config describes.",
        epilog="CONFIG defaults to the bundled 'default' config; a bare name such as "
               "'zigzag' or 'stairs_30secs' picks a bundled config.")
    parser.add_argument("config", nargs="?", default="default", metavar="CONFIG",
                        help="memory access pattern config file")
    parser.add_argument("--list", action="store_true",
                        help="list the bundled configs (name and file) and exit")
    parser.add_argument("-p", "--pr_config", action="store_true",
                        help="print the parsed config before running")
    parser.add_argument("-d", "--dry_run", action="store_true",
                        help="parse (and print, with -p) the config, but make no accesses")
    parser.add_argument("-q", "--quiet", "--silent", action="store_true",
                        help="print nothing but errors")
    parser.add_argument("-c", "--repeat", type=int, default=1, metavar="N",
                        help="run all phases N times (default 1)")
    parser.add_argument("--log_interval", type=int, default=0, metavar="MS",
                        help="also print the number of accesses every MS milliseconds")
    parser.add_argument("-r", "--default_rw_mode", choices=RW_MODES, default=DEFAULT_RW_MODE,
                        help="read/write mode of patterns that do not set one (default wo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random patterns")
    parser.add_argument("--status_out", metavar="FILE",
                        help="after start-up and after each phase, append one JSON line with "
                             "VmRSS, RssAnon, the regions' addresses and resident pages")
    parser.add_argument("--fork", type=int, default=0, metavar="N",
                        help="run the config in N child processes at once, each with its own memory, "
                             "while this process waits idle (a forking server's shape); the children's "
                             "status lines go to FILE.0 ... FILE.N-1 of --status_out (default: 0, run it here)")
    parser.add_argument("--flush_tlb", choices=("auto", "on", "off"), default="auto",
                        help="flush the TLB every few thousand accesses, so that DAMON sees them "
                             "under QEMU's software emulation, whose TLB never forgets by itself; "
                             "auto (the default): only on an emulated (QEMU TCG) CPU")
    return parser


MAX_FORKS = 1024
_children: list[int] = []


def fork_children(count: int) -> int | None:
    """Fork ``count`` children: a child gets its index, the parent None (numpy is loaded once,
    before the fork, so the children start at once)."""
    sys.stdout.flush()
    sys.stderr.flush()
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            _children.clear()
            return index
        _children.append(pid)
    return None


def _forward_to_children(signum, frame) -> None:
    """A SIGTERM to the waiting parent ends its children too, then the parent, as it would."""
    for pid in _children:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def wait_children() -> int:
    """Reap the forked children; the first non-zero exit code, else 0."""
    signal.signal(signal.SIGTERM, _forward_to_children)
    code = 0
    for pid in _children:
        _, status = os.waitpid(pid, 0)
        code = code or os.waitstatus_to_exitcode(status)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the masim command line; return the exit code."""
    try:
        args = build_parser().parse_args(argv)
        if args.repeat < 1:
            raise DamoError(f"--repeat must be at least 1, not {args.repeat}")
        if args.log_interval < 0:
            raise DamoError(f"--log_interval must not be negative, not {args.log_interval}")
        if args.list:
            for name, path in bundled_configs().items():
                print(f"{name:<16} {path}")
            return 0
        config = load_config(resolve_config_path(args.config), args.default_rw_mode)
        if args.pr_config and not args.quiet:
            print(format_config(config), end="", flush=True)
        check_memory(config)      # a dry run refuses what the real run could not map
        if args.dry_run:
            return 0
        try:
            # Thousands grouping of the counts follows the locale, as in masim.
            locale.setlocale(locale.LC_NUMERIC, "")
        except locale.Error:
            pass
        # Imported late: a dry run needs no numpy.
        from damo.kernel.emulation import cpu_is_emulated
        from masim.runner import Workload

        flush_tlb = args.flush_tlb == "on" or (args.flush_tlb == "auto" and cpu_is_emulated())
        if args.fork < 0 or args.fork > MAX_FORKS:
            raise DamoError(f"--fork takes 0 to {MAX_FORKS} children, not {args.fork}")
        status_path = args.status_out
        if args.fork:
            index = fork_children(args.fork)
            if index is None:
                return wait_children()
            status_path = f"{args.status_out}.{index}" if args.status_out else None
        workload = Workload(config, seed=args.seed, flush_tlb=flush_tlb)
        # 0600 whatever the umask: the status lines carry the mappings' addresses.
        status_out = (os.fdopen(os.open(status_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a")
                      if status_path else None)
        try:
            workload.run(repeat=args.repeat, quiet=args.quiet, log_interval_ms=args.log_interval,
                         status_out=status_out)
        finally:
            if status_out is not None:
                status_out.close()
        return 0
    except DamoError as err:
        print(f"masim: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        return 0
