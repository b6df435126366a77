"""Every --help is user documentation: what the command does, an example, every option's default,
and no developer notes (those stay in the module docstrings)."""
from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys

import pytest

from damo.cli import COMMANDS, LazySubcommands, build_parser, command_parser
from damo.report import REPORTS

from conftest import REPO

DEVELOPER_MARKUP = ("``", "add_arguments", "run(args", "numpy", "docstring")


def command_paths() -> list[list[str]]:
    paths = [[]]
    for name in COMMANDS:
        paths.append([name])
    paths += [["report", name] for name in REPORTS]
    paths += [["vm", "setup"], ["vm", "status"]]
    return paths


def subparser(path: list[str]) -> argparse.ArgumentParser:
    if not path:
        return build_parser()
    if path[0] == "vm" and len(path) == 2:          # vm's actions are plain argparse subparsers
        parent = command_parser(["vm"])
        (sub,) = [a for a in parent._actions if isinstance(a, argparse._SubParsersAction)]
        return sub.choices[path[1]]
    return command_parser(path)


def module_of(path: list[str]):
    if not path:
        return importlib.import_module("damo.cli")
    if path[0] == "report" and len(path) == 2:
        return importlib.import_module(REPORTS[path[1]].module)
    return importlib.import_module(COMMANDS[path[0]].module)


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(["damo", *p]))
def test_help_is_for_users(path):
    parser = subparser(path)
    text = parser.format_help()
    for markup in DEVELOPER_MARKUP:
        assert markup not in text, f"developer text {markup!r} in `damo {' '.join(path)} --help`"
    doc = (module_of(path).__doc__ or "").strip().splitlines()
    if doc and not (path and path[0] == "vm" and len(path) == 2):
        assert doc[0] not in text, "the module docstring is developer text, not --help"
    if len(path) < 2 or path[0] != "vm":
        assert re.search(r"\nexamples:\n  (sudo )?damo ", text), f"`damo {' '.join(path)} --help` shows no example"


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(["damo", *p]))
def test_every_option_says_its_default(path):
    parser = subparser(path)
    formatter = parser._get_formatter()
    missing = []
    for action in parser._actions:
        if (not action.option_strings or action.nargs == 0 or action.required
                or action.help == argparse.SUPPRESS or isinstance(action, LazySubcommands)):
            continue            # positionals, flags (off unless given), required options
        if "default" not in formatter._expand_help(action):
            missing.append(action.option_strings[-1])
    assert missing == [], f"`damo {' '.join(path)} --help`: no default shown for {missing}"


def test_defaults_are_appended_in_plain_words():
    text = command_parser(["record"]).format_help()
    for line in ("sampling interval in microseconds (default: 5000)", "(default: 100000)",
                 "(default: 1000000)", "(default: 10)", "(default: 1000)"):
        assert line in " ".join(text.split()), line
    assert "median interval, else 80000 120000)" in " ".join(command_parser(["validate"]).format_help().split())


# Runs the command line and lists the modules loaded by then (-X importtime misses importlib's).
LOADED_MODULES = """\
import sys
from damo.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("MODULES", *sorted(sys.modules), file=sys.stderr)
"""


def loaded_modules(args: list[str]) -> set[str]:
    done = subprocess.run([sys.executable, "-c", LOADED_MODULES, *args], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    return set(line.split()[1:])


@pytest.mark.parametrize("args", [["--help"], ["report", "--help"], ["nosuch"], ["report", "nosuch"], ["report"],
                                  ["record", "--help"], ["record", "--nosuch"], ["convert", "--help"]],
                         ids=" ".join)
def test_help_and_argument_errors_import_no_numpy_rich_or_matplotlib(args):
    """The registry imports a command's module only when it is chosen (bench/startup.py times it)."""
    loaded = loaded_modules(args)
    assert "damo.cli" in loaded
    assert loaded & {"numpy", "rich", "matplotlib"} == set()


def test_a_chosen_report_is_the_only_one_loaded():
    loaded = loaded_modules(["report", "nr_regions", "--help"])
    assert {"damo.report", "damo.report_commands.nr_regions"} <= loaded
    assert loaded & {"damo.heats", "damo.raw", "damo.diff.command", "damo.record", "matplotlib"} == set()
