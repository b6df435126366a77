"""The command line: a registry of commands, each a module with ``add_arguments`` and ``run``.

``main`` is the one place where errors become exit codes.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys

from damo import __version__
from damo.errors import DamoError

# name -> (module, help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "record": ("damo.record", "record data accesses into a record file"),
    "report": ("damo.report", "analyse a record file"),
    "convert": ("damo.convert", "convert a record file to another format"),
    "export": ("damo.export", "export records as a Parquet dataset"),
    "fleet": ("damo.fleet_cli", "SQL over records of many machines (a dataset from damo export)"),
    "validate": ("damo.validate", "check that a record file is plausible DAMON output"),
    "features": ("damo.features", "say what DAMON features this machine has"),
    "vm": ("damo.vm", "set up the VM that runs `damo record --vm`"),
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so main() owns exit codes."""

    def error(self, message):
        raise DamoError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="damo", description="Data access monitoring, recording and reporting.")
    parser.add_argument("--version", action="version", version=f"damo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the damo command line; return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help()
            return 2
        return int(args._run(args) or 0)
    except DamoError as err:
        print(f"damo: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. `head`) went away; exit quietly like a Unix tool.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        return 0
