"""The command line: the ``damo`` entry point and its lazy command registry.

Commands (and the reports under ``damo report``) are registered by name with their module and a
one-line summary, so ``damo --help`` lists them without importing any of them: a command's
module is imported only when that command is chosen (to run it, or to show its ``--help``).
Start-up stays at a bare interpreter's cost; no numpy, rich or matplotlib for help and for
mistyped commands.

A command module defines ``DESCRIPTION`` and ``EXAMPLES`` (the user text of its ``--help``),
``add_arguments(parser)`` and ``run(args) -> int``. Its docstring is for developers and never
shown to users. ``main`` is the one place where errors become exit codes.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import NamedTuple

from damo import __version__
from damo.errors import DamoError


class Command(NamedTuple):
    """A registry entry: where the command lives and its line in the parent's --help."""

    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "record": Command("damo.record", "record data accesses into a record file"),
    "report": Command("damo.report", "analyse a record file: heatmaps, working set sizes, ..."),
    "convert": Command("damo.convert", "convert a record file to another format"),
    "convert_record_format": Command("damo.convert_record_format",
                                     "convert a record file in place (damo 3.x's name of convert)"),
    "export": Command("damo.export", "export records as a Parquet dataset (for damo fleet, DuckDB, Spark)"),
    "fleet": Command("damo.fleet_cli", "SQL over the records of many machines (a dataset from damo export)"),
    "validate": Command("damo.validate", "check that a record file is plausible DAMON output"),
    "status": Command("damo.damon_report", "what the kernel's DAMON is doing now (same as damo report damon)"),
    "features": Command("damo.features", "say what DAMON features this machine has"),
    "vm": Command("damo.vm", "set up the VM that runs `damo record --vm`"),
}

DESCRIPTION = """\
Record which memory a workload accesses, with the kernel's DAMON (Data Access MONitor) or with
a user-space DAMON engine on the bundled simulator masim, and report on the records: heatmaps,
working set sizes, region listings and regression checks. Commands and reports speak the
language of the upstream damo tool."""

EXAMPLES = """\
examples:
  damo record zigzag                      # simulate a bundled workload; writes damon.data
  damo report heatmap                     # its access heatmap in the terminal
  damo report wss                         # its working set size percentiles
  damo COMMAND --help                     # the options of one command"""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so main() owns exit codes."""

    def error(self, message):
        raise DamoError(f"{self.prog}: {message}")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of the description and examples; shows every option's default.

    An option that takes a value and has a default gets ``(default: VALUE)`` unless its help
    already says what the default is; an option without one must say so in its help.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or not action.option_strings or action.nargs == 0
                or default in (None, argparse.SUPPRESS) or default == []):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


class LazySubcommands(argparse._SubParsersAction):
    """Subcommands whose parsers are filled in (their module imported) only when chosen."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending: dict[str, tuple[Command, str]] = {}

    def add_command(self, name: str, command: Command, run_dest: str) -> None:
        """Register ``name``; ``args.<run_dest>`` becomes the module's ``run`` once it is chosen."""
        command = Command(*command)
        self.add_parser(name, help=command.summary, formatter_class=HelpFormatter)
        self._pending[name] = (command, run_dest)

    def load(self, name: str) -> argparse.ArgumentParser:
        """The parser of ``name``, its module's options and user text added on first use."""
        parser = self._name_parser_map[name]
        if name in self._pending:
            command, run_dest = self._pending.pop(name)
            module = importlib.import_module(command.module)
            parser.description = getattr(module, "DESCRIPTION", command.summary)
            parser.epilog = getattr(module, "EXAMPLES", None)
            module.add_arguments(parser)
            parser.set_defaults(**{run_dest: module.run})
        return parser

    def __call__(self, parser, namespace, values, option_string=None):
        if values and values[0] in self._name_parser_map:
            self.load(values[0])
        super().__call__(parser, namespace, values, option_string)


def add_commands(parser: argparse.ArgumentParser, commands: dict[str, Command], dest: str, metavar: str,
                 run_dest: str, required: bool = False) -> LazySubcommands:
    """Add ``commands`` to ``parser`` as lazily loaded subcommands."""
    parser.register("action", "parsers", LazySubcommands)
    sub = parser.add_subparsers(dest=dest, metavar=metavar, parser_class=ArgumentParser)
    sub.required = required
    for name, command in commands.items():
        sub.add_command(name, command, run_dest)
    return sub


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="damo", description=DESCRIPTION, epilog=EXAMPLES, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"damo {__version__}")
    add_commands(parser, COMMANDS, "command", "COMMAND", "_run")
    return parser


def command_parser(path: list[str]) -> argparse.ArgumentParser:
    """The full parser of a command, e.g. ``["report", "heats"]`` (for tests and docs)."""
    parser = build_parser()
    for name in path:
        (sub,) = [a for a in parser._actions if isinstance(a, LazySubcommands)]
        parser = sub.load(name)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the damo command line; return the exit code."""
    try:
        parser = build_parser()      # imports every command: Ctrl-C may land here too
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help()
            return 2
        status = int(args._run(args) or 0)
        sys.stdout.flush()           # a full disk or /dev/full shows here, not at interpreter exit
        return status
    except DamoError as err:
        print(f"damo: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. `head`) went away; exit quietly like a Unix tool.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        _discard_stdout()
        return 0
    except OSError as err:
        # A write that failed where no code expected it (stdout on a full disk, ...): one line.
        where = f"{err.filename}: " if err.filename else ("stdout: " if _stdout_failed() else "")
        _discard_stdout()
        print(f"damo: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2


def _stdout_failed() -> bool:
    try:
        sys.stdout.flush()
    except OSError:
        return True
    return False


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of what is left cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
