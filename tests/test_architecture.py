"""The import rules of docs/architecture.md, checked by walking every module's imports (ast).

Every ``import`` counts, also those inside functions and under ``if TYPE_CHECKING``: a rule is
about what a module knows, not only about what it loads first.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("damo", "masim")

# The command line: the entry point, the command registry and the commands that parse options
# for the layers below (record -> sources, report -> reports).
CLI = ("damo.cli", "damo.__main__", "damo.record", "damo.report", "damo.diff.command")
# What reports may not touch: anything that monitors live.
LIVE = ("damo.sources", "damo.kernel", "damo.engine", "damo.recording", "damo.record", "masim")
# Below the command line: the data flow from source to rendering, and its helpers.
BELOW_CLI = ("damo.model", "damo.formats", "damo.sources", "damo.kernel", "damo.engine", "damo.recording",
             "damo.selection", "damo.progress", "damo.fmt", "damo.plot", "damo.errors", "damo.accuracy",
             "damo.diff.analysis", "damo.diff.gates", "damo.diff.render", "masim")


@dataclass(frozen=True)
class Rule:
    text: str                              # as docs/architecture.md words it
    modules: tuple[str, ...]               # the modules (or packages) the rule is about
    may_import: tuple[str, ...] | None = None   # if set: the only project modules they may import
    must_not: tuple[str, ...] = ()         # project modules (or packages) they must not import


# `report damon` is damo's name for a status command: it shows the live kernel's DAMON, so it
# reads damo.kernel.status (and only that; the rule below keeps it from sources and the engine).
LIVE_STATUS_REPORTS = {"damo.damon_report"}


def report_modules() -> tuple[str, ...]:
    """Every module registered as a report, with its package when it lives in one, and selection."""
    from damo.report import REPORTS

    names = {"damo.selection"}
    for module, _ in REPORTS.values():
        if module in LIVE_STATUS_REPORTS:
            continue
        parent, _, name = module.rpartition(".")
        names.add(parent if parent != "damo" else module)
        if parent == "damo.report_commands":      # the options of a report whose analysis is damo/NAME.py
            names.add(f"damo.{name}")
    return tuple(sorted(names))


RULES = (
    Rule("the model knows no report and no source", ("damo.model",), may_import=("damo.errors",)),
    Rule("reports read files, never a live source", report_modules(), must_not=LIVE),
    Rule("the engine sees only the operations interface", ("damo.engine.core",),
         may_import=("damo.engine.ops", "damo.model", "damo.errors")),
    Rule("the engine sees only the operations interface", ("damo.engine",),
         must_not=("damo.sources", "damo.kernel", "damo.formats", "damo.recording", "masim")),
    Rule("masim knows nothing of the monitor", ("masim",),
         may_import=("masim", "damo.errors", "damo.kernel.emulation")),
    Rule("nothing below the CLI imports the CLI", BELOW_CLI, must_not=CLI),
    Rule("report damon reads DAMON's status, never a source or the engine", tuple(LIVE_STATUS_REPORTS),
         must_not=("damo.sources", "damo.engine", "damo.recording", "damo.record")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_sources() -> dict[str, str]:
    """``{module name: source text}`` of every module of the project's packages."""
    return {module_name(p): p.read_text() for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


@functools.lru_cache(maxsize=None)
def imports_of(source: str, known: frozenset[str]) -> frozenset[str]:
    """Project modules that ``source`` imports (``from damo import vm`` is the module damo.vm)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{alias.name}" for alias in node.names} & known
            found.update(subs or {node.module})
    return frozenset(name for name in found if name.split(".")[0] in PACKAGES)


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(sources: dict[str, str]) -> list[str]:
    """One line per import that breaks a rule: ``module imports other: rule``."""
    known = frozenset(sources)
    out = []
    for module, source in sorted(sources.items()):
        for imported in sorted(imports_of(source, known)):
            if imported == module or imported in PACKAGES:
                continue        # a package's own __init__ (__version__) belongs to no layer
            for rule in RULES:
                if not within(module, rule.modules):
                    continue
                allowed = rule.may_import is None or within(imported, rule.may_import)
                if not allowed or within(imported, rule.must_not):
                    out.append(f"{module} imports {imported}: {rule.text}")
    return out


def test_the_code_keeps_every_import_rule():
    assert violations(project_sources()) == []


@pytest.mark.parametrize("module, line, rule", [
    ("damo.sources.sim", "from damo.record import RecordRequest", "nothing below the CLI imports the CLI"),
    ("damo.kernel.sysfs", "import damo.cli", "nothing below the CLI imports the CLI"),
    ("damo.model", "from damo.formats import read_record", "the model knows no report and no source"),
    ("damo.heats", "from damo.sources.kernel import record", "reports read files, never a live source"),
    ("damo.diff.analysis", "from damo.kernel import sysfs", "reports read files, never a live source"),
    ("damo.engine.core", "from damo.engine.sim_ops import sim_context",
     "the engine sees only the operations interface"),
    ("masim.model", "from damo.engine.core import Context", "masim knows nothing of the monitor"),
])
def test_a_forbidden_import_is_caught(module, line, rule):
    sources = project_sources()
    sources[module] += f"\n\ndef _late():\n    {line}\n"
    found = violations(sources)
    assert any(v.startswith(f"{module} imports ") and v.endswith(rule) for v in found), found


def test_architecture_doc_names_every_module_and_rule():
    doc = (REPO / "docs" / "architecture.md").read_text()
    missing = [m for m in project_sources() if f"`{m.replace('.', '/')}" not in doc]
    assert missing == [], "docs/architecture.md does not mention these modules (as `path`)"
    for rule in {r.text for r in RULES}:
        assert rule in doc
