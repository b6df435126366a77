"""masim's config format: the bundled configs, what we accept, and line-numbered errors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from damo.errors import DamoError
from masim.cli import main
from masim.config import ConfigError, bundled_configs_dir, load_config, parse_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = Path(bundled_configs_dir())
MB = 1_000_000

MASIM_CONFIGS = ["zigzag", "zigzag_30secs", "stairs", "stairs_30secs", "demo", "2mb", "100mb",
                 "200mb", "default"]
OUR_CONFIGS = ["hotspot", "interleaved", "drift"]


def test_every_bundled_config_parses():
    names = sorted(p.stem for p in CONFIGS.glob("*.cfg"))
    assert names == sorted(MASIM_CONFIGS + OUR_CONFIGS)
    for name in names:
        config = load_config(CONFIGS / f"{name}.cfg")
        assert config.regions and config.phases
        for phase in config.phases:
            assert phase.duration_ms > 0 and phase.patterns


@pytest.mark.parametrize("name, init_ms, step_ms, rounds", [
    ("zigzag", 10000, 5000, 6), ("zigzag_30secs", 5000, 2500, 6), ("demo", 10000, 5000, 3)])
def test_zigzag_configs_follow_masim(name, init_ms, step_ms, rounds):
    config = load_config(CONFIGS / f"{name}.cfg")
    assert [(r.name, r.size) for r in config.regions] == [("a", 100 * MB), ("b", 100 * MB)]
    first = config.phases[0]
    assert (first.name, first.duration_ms) == ("initial phase", init_ms)
    assert [(p.region, p.random, p.stride, p.weight, p.rw_mode) for p in first.patterns] == [
        ("a", False, 4096, 1, "wo"), ("b", False, 4096, 1, "wo")]
    rest = config.phases[1:]
    assert len(rest) == 2 * rounds
    for i in range(rounds):
        low, high = rest[2 * i], rest[2 * i + 1]
        assert (low.name, low.duration_ms, low.patterns[0].region) == (f"low phase {i}", step_ms, "a")
        assert (high.name, high.duration_ms, high.patterns[0].region) == (f"high phase {i}", step_ms, "b")
        assert low.patterns[0].weight == high.patterns[0].weight == 50


@pytest.mark.parametrize("name, init_ms, step_ms", [("stairs", 10000, 5000),
                                                    ("stairs_30secs", 5000, 2500)])
def test_stairs_configs_follow_masim(name, init_ms, step_ms):
    config = load_config(CONFIGS / f"{name}.cfg")
    assert [(r.name, r.size) for r in config.regions] == [(f"s{i}", 10 * MB) for i in range(10)]
    assert config.phases[0].duration_ms == init_ms
    assert [p.region for p in config.phases[0].patterns] == [f"s{i}" for i in range(10)]
    assert [(p.name, p.duration_ms, [q.region for q in p.patterns]) for p in config.phases[1:]] == [
        (f"phase {i}", step_ms, [f"s{i}"]) for i in range(10)]
    assert config.duration_ms == init_ms + 10 * step_ms


@pytest.mark.parametrize("name, size", [("2mb", 2097152), ("100mb", 100 * MB), ("200mb", 200 * MB)])
def test_single_random_region_configs(name, size):
    config = load_config(CONFIGS / f"{name}.cfg")
    assert [(r.name, r.size) for r in config.regions] == [("a", size)]
    (phase,) = config.phases
    assert phase.duration_ms == 5000
    assert [(p.region, p.random, p.weight) for p in phase.patterns] == [("a", True, 80)]


def test_default_config_is_the_readme_example():
    config = load_config(CONFIGS / "default.cfg")
    assert [(r.name, r.size, r.init_file) for r in config.regions] == [
        ("a", 256, None), ("b", 64, None), ("c", 128, None)]
    assert [[(p.region, p.random, p.stride, p.weight, p.rw_mode) for p in ph.patterns]
            for ph in config.phases] == [[("a", True, 64, 80, "wo")],
                                         [("c", True, 64, 50, "ro"), ("b", False, 4096, 50, "rw")]]


GOOD = """\
# regions
a, 8192
b, 4096, none

# a phase
one
100
a, 0, 4096, 3
b, 1, 0, 1, ro"""        # no trailing newline: masim drops this line, we keep it


def test_accepts_comments_and_a_missing_trailing_newline():
    config = parse_config(GOOD, "good.cfg")
    assert [r.name for r in config.regions] == ["a", "b"]
    (phase,) = config.phases
    assert phase.name == "one" and phase.duration_ms == 100
    assert [(p.region, p.random, p.stride, p.weight, p.rw_mode, p.line) for p in phase.patterns] == [
        ("a", False, 4096, 3, "wo", 8), ("b", True, 0, 1, "ro", 9)]
    assert phase.total_weight == 4


def test_comment_lines_do_not_split_paragraphs_and_extra_blank_lines_are_one():
    text = "a, 4096\n# comment\nb, 4096\n\n\n\np\n  # indented comment\n10\na, 0, 64, 1\n\n\n"
    config = parse_config(text)
    assert [r.name for r in config.regions] == ["a", "b"]
    assert [(p.name, p.duration_ms) for p in config.phases] == [("p", 10)]


def test_default_rw_mode_applies_to_patterns_without_one():
    config = parse_config(GOOD, default_rw_mode="rw")
    assert [p.rw_mode for p in config.phases[0].patterns] == ["rw", "ro"]


REGIONS = "a, 4096\nb, 8192\n\n"     # lines 1-2, phases start at line 4

ERRORS = [
    ("", 1, "no regions and no phases"),
    ("# only a comment\n", 1, "no regions and no phases"),
    ("a, 4096\nb, 4096\n", 2, "no phases after the regions"),
    ("a\n\np\n10\na, 0, 64, 1\n", 1, "a region line has 2 or 3 fields (name, size[, init_file]), not 1"),
    ("a, 1, x, y\n\np\n10\na, 0, 64, 1\n", 1, "not 4"),
    ("a, 10MB\n\np\n10\na, 0, 64, 1\n", 1, "size of region 'a' '10MB' is not a whole number"),
    ("a, 0\n\np\n10\na, 0, 64, 1\n", 1, "size of region 'a' must be at least 1, not 0"),
    ("a, -5\n\np\n10\na, 0, 64, 1\n", 1, "size of region 'a' must be at least 1, not -5"),
    (", 4096\n\np\n10\na, 0, 64, 1\n", 1, "region name is empty"),
    ("a, 4096,\n\np\n10\na, 0, 64, 1\n", 1, "init file of region 'a' is empty"),
    ("a, 4096\na, 8192\n\np\n10\na, 0, 64, 1\n", 2, "region 'a' is defined twice (first at line 1)"),
    (REGIONS + "p\n", 4, "phase 'p' has no duration line and no access patterns"),
    (REGIONS + "p\n100\n", 5, "phase 'p' has no access pattern lines"),
    (REGIONS + "p\n100\na, 0, 64, 1\n\nq\n100\n", 9, "phase 'q' has no access pattern lines"),
    (REGIONS + "p\n1s\na, 0, 64, 1\n", 5, "duration (ms) of phase 'p' '1s' is not a whole number"),
    (REGIONS + "p\n0\na, 0, 64, 1\n", 5, "duration (ms) of phase 'p' must be at least 1, not 0"),
    (REGIONS + "p\n10\nz, 0, 64, 1\n", 6, "unknown region 'z' (regions: a, b)"),
    (REGIONS + "p\n10\na, 0, 64, 1\nb, 0, 64\n", 7,
     "an access pattern line has 4 or 5 fields (region, random, stride, weight[, ro|wo|rw]), not 3"),
    (REGIONS + "p\n10\na, 0, 64, 1, rw, x\n", 6, "not 6"),
    (REGIONS + "p\n10\na, 2, 64, 1\n", 6, "randomness must be 0 (sequential) or 1 (random), not '2'"),
    (REGIONS + "p\n10\na, 0, 64, 0\n", 6, "weight must be at least 1, not 0"),
    (REGIONS + "p\n10\na, 0, 64, 1.5\n", 6, "weight '1.5' is not a whole number"),
    (REGIONS + "p\n10\na, 0, 0, 1\n", 6, "stride must be at least 1, not 0"),
    (REGIONS + "p\n10\na, 1, -64, 1\n", 6, "stride must be at least 0, not -64"),
    (REGIONS + "p\n10\na, 0, 4k, 1\n", 6, "stride '4k' is not a whole number"),
    (REGIONS + "p\n10\na, 0, 64, 1, rx\n", 6, "read/write mode must be ro, wo or rw, not 'rx'"),
]


@pytest.mark.parametrize("text, line, problem", ERRORS)
def test_errors_name_file_and_line(text, line, problem):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.cfg")
    assert info.value.line == line
    assert str(info.value).startswith(f"bad.cfg:{line}: ")
    assert problem in str(info.value)
    assert isinstance(info.value, DamoError) and info.value.exit_code == 2


def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.cfg"
    bad.write_text(REGIONS + "p\n10\nz, 0, 64, 1\n")
    assert main([str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"masim: error: {bad}:6: unknown region 'z' (regions: a, b)\n"


def test_cli_reports_a_missing_file_and_bad_options(tmp_path, capsys):
    assert main([str(tmp_path / "nope.cfg")]) == 2
    assert capsys.readouterr().err == f"masim: error: {tmp_path / 'nope.cfg'}: no such file\n"
    assert main(["-c", "0", "default"]) == 2
    assert capsys.readouterr().err == "masim: error: --repeat must be at least 1, not 0\n"
    assert main(["--bogus"]) == 2
    assert capsys.readouterr().err.startswith("masim: error: unrecognized arguments: --bogus")


def test_pr_config_and_dry_run_print_masims_text(capsys):
    assert main(["-p", "-d", str(CONFIGS / "default.cfg")]) == 0
    assert capsys.readouterr().out == (
        "memory regions\n\ta: 256 bytes\n\tb: 64 bytes\n\tc: 128 bytes\n\n"
        "Phase (example phase 1) for 1000 ms\n"
        "\tPattern 0\n\t\trandomly access region a with stride 64\n"
        "Phase (example phase 2) for 1000 ms\n"
        "\tPattern 0\n\t\trandomly access region c with stride 64\n"
        "\tPattern 1\n\t\tsequentially access region b with stride 4096\n")
    # A bare name picks the bundled config; quiet silences -p.
    assert main(["-q", "-p", "-d", "stairs_30secs"]) == 0
    assert capsys.readouterr().out == ""


def test_python_dash_m_masim_reports_errors_as_a_subprocess(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("a, 4096\n\np\nten\na, 0, 64, 1\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "masim", str(bad)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (f"masim: error: {bad}:4: duration (ms) of phase 'p' 'ten' "
                           f"is not a whole number\n")


def test_phase_names_keep_leading_blanks_and_crlf_files_parse():
    text = "big, 1073741824\r\nsmall, 64\r\n\r\n  1 GiB warm-up \r\n50\r\nbig, 0, 64,1\r\nsmall, 1, 64, 9\r\n"
    config = parse_config(text)
    (phase,) = config.phases
    assert phase.name == "  1 GiB warm-up"
    assert [(p.region, p.stride, p.weight) for p in phase.patterns] == [("big", 64, 1), ("small", 64, 9)]
