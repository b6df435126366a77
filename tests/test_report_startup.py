"""Reports answer --help and option mistakes without loading numpy, rich or matplotlib.

Their options and help text live in damo/report_commands/, which imports a report's analysis
module only when the report runs.
"""
from __future__ import annotations

import pytest

from test_cli_help import loaded_modules

HEAVY = {"numpy", "rich", "matplotlib"}


@pytest.mark.parametrize("args", [
    ["report", "heats", "--help"],
    ["report", "heatmap", "--help"],
    ["report", "wss", "--help"],
    ["report", "nr_regions", "--help"],
    ["report", "heats", "--nosuch"],
    ["report", "heats", "--resol", "forty", "80"],
    ["report", "heatmap", "--draw_range", "coldest"],
    ["report", "wss", "--range", "0", "101"],
    ["report", "wss", "--address_range", "0x10", "nowhere"],
    ["report", "nr_regions", "--sortby", "colour"],
], ids=" ".join)
def test_report_help_and_option_errors_stay_light(args):
    loaded = loaded_modules(args)
    command = f"damo.report_commands.{args[1]}"
    assert command in loaded                 # the report's options were really parsed
    assert loaded & HEAVY == set()
    assert f"damo.{args[1]}" not in loaded   # nor its analysis


def test_running_a_report_loads_its_analysis(tmp_path):
    """The other side: the command module hands over to the analysis (a missing file is the
    first thing the analysis side reports)."""
    loaded = loaded_modules(["report", "wss", "-i", str(tmp_path / "missing.data")])
    assert {"damo.report_commands.wss", "damo.wss", "numpy"} <= loaded
