"""The real workload: exact bytes touched, output lines, RSS growth, and agreement with the model."""
from __future__ import annotations

import json
import locale
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from masim.cli import main
from masim.config import bundled_configs_dir, load_config, parse_config
from masim.model import AccessModel
from masim.runner import (FLUSH_CHUNK_ACCESSES, PatternRunner, PhaseResult, RegionMemory,
                          TlbFlusher, Workload, interval_line, mincore,
                          phase_line, run_phase)
from masim.schedule import BATCH_ACCESSES, WeightedTurns, sequential_positions, turn_cycle

REPO = Path(__file__).resolve().parents[1]
PAGE = 4096


@pytest.fixture
def c_locale():
    old = locale.setlocale(locale.LC_NUMERIC)
    locale.setlocale(locale.LC_NUMERIC, "C")
    yield
    locale.setlocale(locale.LC_NUMERIC, old)


def one_pattern(size: int, pattern: str):
    config = parse_config(f"r, {size}\n\np\n10\nr, {pattern}\n")
    memory = RegionMemory(config.regions[0])
    return PatternRunner(config.phases[0].patterns[0], memory, np.random.default_rng(0)), memory


def test_sequential_batch_writes_each_strided_offset():
    runner, memory = one_pattern(100_000, "0, 8192, 1")
    assert memory.resident_pages().sum() == 0          # mapped, never touched
    assert runner.run_batch() == BATCH_ACCESSES
    resident = memory.resident_pages()
    assert len(resident) == 25 and resident.tolist() == [i % 2 == 0 for i in range(25)]
    positions = sequential_positions(100_000, 8192)
    assert positions == 13
    expected = np.zeros(100_000, dtype=np.uint8)
    expected[np.arange(positions) * 8192] = 1
    np.testing.assert_array_equal(memory.array, expected)     # (reading maps the other pages)
    # The sweep goes on where it stopped.
    assert runner.next_access == BATCH_ACCESSES


@pytest.mark.parametrize("pattern", ["0, 4096, 1, wo", "0, 64, 1, rw", "1, 64, 1, ro"])
def test_flushing_the_tlb_makes_the_same_accesses(pattern):
    plain, plain_memory = one_pattern(300_000, pattern)
    flushing, flushing_memory = one_pattern(300_000, pattern)
    flushing.flusher = TlbFlusher()
    for _ in range(3):
        assert flushing.run_batch() == plain.run_batch() == BATCH_ACCESSES
    # The bytes written are the same (rw counts differ: a batch's repeated offsets are
    # incremented once in one numpy scatter, once per chunk when chunked).
    np.testing.assert_array_equal(flushing_memory.array != 0, plain_memory.array != 0)
    np.testing.assert_array_equal(flushing_memory.resident_pages(), plain_memory.resident_pages())
    assert plain_memory.resident_pages().any()
    assert flushing.flusher.nr_flushes == 3 * BATCH_ACCESSES // FLUSH_CHUNK_ACCESSES
    # The flush leaves its own pages writable.
    flushing.flusher.mapping[0] = 7


def test_read_write_and_read_only_modes():
    runner, memory = one_pattern(3 * PAGE, "0, 64, 1, rw")
    runner.run_batch()
    np.testing.assert_array_equal(memory.array[::64], 1)     # read 0, wrote 0 + 1
    assert memory.array.sum() == 3 * PAGE // 64
    runner, memory = one_pattern(3 * PAGE, "0, 64, 1, ro")
    runner.run_batch()
    assert memory.array.sum() == 0
    # Reads map the zero page, which counts as resident.
    assert memory.resident_pages().tolist() == [True, True, True]


def test_random_batch_stays_in_the_region():
    runner, memory = one_pattern(10 * PAGE + 100, "1, 64, 1")
    runner.run_batch()
    assert memory.array.min() == 0 and memory.array.max() == 1
    assert memory.resident_pages().all()          # 128Ki random accesses hit all 11 pages


def test_mincore_of_untouched_and_touched_memory():
    runner, memory = one_pattern(8 * PAGE, "0, 4096, 1")
    assert mincore(memory.address, 8 * PAGE).tolist() == [False] * 8
    memory.array[5 * PAGE + 7] = 3
    assert mincore(memory.address, 8 * PAGE).tolist() == [i == 5 for i in range(8)]


def test_weighted_turns_share_by_weight():
    assert turn_cycle([1, 1]).tolist() == [0, 1]
    assert turn_cycle([3, 1]).tolist() == [0, 0, 1, 0]
    cycle = turn_cycle([50, 30, 20])            # reduced by the gcd to 5:3:2
    assert len(cycle) == 10 and np.bincount(cycle).tolist() == [5, 3, 2]
    turns = WeightedTurns([2, 1])
    assert [turns.next() for _ in range(6)] == [0, 1, 0, 0, 1, 0]


def test_run_phase_runs_for_the_duration_and_logs(c_locale):
    config = parse_config("a, 65536\nb, 65536\n\np\n10\na, 0, 4096, 3\nb, 1, 64, 1\n")
    workload = Workload(config)
    now = [0]

    def clock():             # each reading is 1 ms later: one batch per ms
        now[0] += 1_000_000
        return now[0]

    lines = []

    class Out:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    result = run_phase(config.phases[0], workload.phase_runners[0], log_interval_ms=4,
                       out=Out(), clock=clock)
    assert result == PhaseResult("p", 10 * BATCH_ACCESSES, 10_000_000)
    assert result.accesses_per_ms == BATCH_ACCESSES and result.elapsed_ms == 10
    text = "".join(lines)
    assert text == (interval_line("p", 4 * BATCH_ACCESSES, 4) + "\n") * 2
    assert text.startswith(f"p:\t{4 * BATCH_ACCESSES:20d} accesses / 4 msec\n")
    # a got 3 of every 4 turns: after 10 turns, 7 or 8 of them.
    assert workload.phase_runners[0][0].next_access in (7 * BATCH_ACCESSES, 8 * BATCH_ACCESSES)


def test_phase_line_is_masims(c_locale):
    result = PhaseResult("p0", 430789 * 300, 300_400_000)
    assert phase_line(result) == "p0:\t              430789 accesses/msec, 300 msecs run"


def test_cli_runs_a_short_config_in_process(tmp_path, capsys, c_locale):
    cfg = tmp_path / "short.cfg"
    cfg.write_text("a, 1000000\n\nfirst\n20\na, 0, 4096, 1\n\nsecond\n20\na, 1, 64, 1, ro")
    assert main([str(cfg), "-c", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["first", "second"] * 2
    for line in lines:
        assert re.fullmatch(r"(first|second):\t +\d+ accesses/msec, \d+ msecs run", line)
        assert int(line.split(", ")[1].split()[0]) >= 20
    assert main([str(cfg), "-q"]) == 0
    assert capsys.readouterr().out == ""


# ---- real runs in a child process ---------------------------------------------

def run_masim(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), LC_ALL="C")
    return subprocess.run([sys.executable, "-m", "masim", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def read_status(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def resident_bitmap(entry: dict, nr_pages: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(entry["resident"]), dtype=np.uint8),
                         bitorder="little")
    return bits[:nr_pages].astype(bool)


MODEL_VS_RUNNER = """\
# every region fully swept many times per phase, so which pages are touched
# does not depend on how fast this machine runs
a, 3000000
b, 2500000
c, 1000000
d, 700001
r, 2097152
e, 3000
g, 3000000
f, 5000000

p0
300
a, 0, 4096, 3
b, 0, 8192, 2
c, 0, 64, 1, ro
d, 0, 6000, 1, rw
r, 1, 64, 1

p1
300
e, 0, 4096, 1
g, 0, 12288, 2
"""


@pytest.mark.parametrize("flush_tlb", ["off", "on"])
def test_pages_the_runner_touches_are_the_pages_the_model_says(tmp_path, flush_tlb):
    cfg = tmp_path / "mvr.cfg"
    cfg.write_text(MODEL_VS_RUNNER)
    status = tmp_path / "status.jsonl"
    done = run_masim([str(cfg), "--status_out", str(status), "--flush_tlb", flush_tlb], timeout=60)
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["p0", "p1"]
    config = load_config(cfg)
    model = AccessModel(config)
    entries = read_status(status)
    assert [(e["event"], e["phase"]) for e in entries] == [("start", None), ("phase", 0), ("phase", 1)]
    expected = {r.name: np.zeros(-(-r.size // PAGE), dtype=bool) for r in config.regions}
    assert all(r["nr_resident"] == 0 for r in entries[0]["regions"].values())
    for entry, (name, start, end) in zip(entries[1:], model.phase_spans):
        # Residency accumulates: what any phase so far touched.
        for region_name, pages in model.accessed_pages(start, end).items():
            expected[region_name] |= pages
        for region in config.regions:
            want = expected[region.name]
            got = resident_bitmap(entry["regions"][region.name], len(want))
            assert got.tolist() == want.tolist(), (name, region.name)
    # Not trivial: stride gaps leave pages out, and f is never touched.
    final = entries[-1]["regions"]
    assert final["b"]["nr_resident"] == sequential_positions(2_500_000, 8192)
    assert final["g"]["nr_resident"] == sequential_positions(3_000_000, 12288)
    assert final["f"]["nr_resident"] == 0


@pytest.mark.slow
def test_stairs_30secs_runs_in_real_time_and_rss_grows_by_the_regions(tmp_path):
    cfg = Path(bundled_configs_dir()) / "stairs_30secs.cfg"
    config = load_config(cfg)
    status = tmp_path / "status.jsonl"
    done = run_masim([str(cfg), "--status_out", str(status)], timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(config.phases) == 11
    for line, phase in zip(lines, config.phases):
        match = re.fullmatch(r"(.+):\t +(\d+) accesses/msec, (\d+) msecs run", line)
        assert match and match[1] == phase.name
        assert int(match[2]) > 0
        assert int(match[3]) >= phase.duration_ms
    entries = read_status(status)
    assert len(entries) == 12
    regions_kb = sum(-(-r.size // PAGE) for r in config.regions) * PAGE // 1024   # 97680 kB
    grown = entries[1]["rss_anon_kb"] - entries[0]["rss_anon_kb"]
    # Allow 1 MiB (1%) for the interpreter's own allocations.
    assert abs(grown - regions_kb) <= 1024, (grown, regions_kb)
    assert entries[1]["vm_rss_kb"] - entries[0]["vm_rss_kb"] >= 0.99 * regions_kb
    # The initial phase touched everything; the stairs add nothing more.
    for entry in entries[2:]:
        assert abs(entry["rss_anon_kb"] - entries[1]["rss_anon_kb"]) <= 1024
        assert all(r["nr_resident"] == 2442 for r in entry["regions"].values())
