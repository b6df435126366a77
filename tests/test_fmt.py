"""damo's number formatting: exact values, and the real damo's own functions as the oracle."""
from __future__ import annotations

import json
import random
import subprocess

import pytest

from damo import fmt


@pytest.mark.parametrize("value,text", [
    (0, "0 B"), (1, "1 B"), (1024, "1024 B"), (1025, "1.001 KiB"), (4096, "4.000 KiB"),
    (1 << 20, "1024.000 KiB"), ((1 << 20) + 1, "1.000 MiB"), (4140032, "3.948 MiB"),
    (33153024, "31.617 MiB"), (1 << 30, "1024.000 MiB"), (3 << 30, "3.000 GiB"),
    (5 << 40, "5.000 TiB"), (7 << 50, "7.000 PiB"), (9 << 60, "9.000 EiB"), (2**64 - 1, "max"),
])
def test_format_sz(value, text):
    assert fmt.format_sz(value) == text
    assert fmt.format_sz(value, True) == str(value)


@pytest.mark.parametrize("value,text", [
    (0, "0 ns"), (999, "999 ns"), (1000, "1 us"), (1500, "1.500 us"), (104_599_000, "104.599 ms"),
    (2_000_000_000, "2 s"), (2_500_000_000, "2.500 s"), (59_999_999_999, "60.000 s"),
    (60_000_000_000, "1 m"), (61_000_000_000, "1 m 1 s"), (539_809_434_100, "8 m 59.809 s"),
    (3_600_000_000_000, "1 h"), (3_661_500_000_000, "1 h 1 m 1.500 s"),
    (7_200_000_000_123, "2 h 123 ns"), (90_000_000_000_000, "25 h"), (-5, "-5 ns"),
])
def test_format_time_ns(value, text):
    assert fmt.format_time_ns(value) == text
    assert fmt.format_time_ns(value, True) == str(value)


def test_other_time_units():
    assert fmt.format_time_us(100_000) == "100 ms"
    assert fmt.format_time_ms(1500) == "1.500 s"
    assert fmt.format_time_sec(120) == "2 m"
    assert fmt.format_time_us(5000, True) == "5000"
    assert fmt.format_time_ns_exact(3_661_000_000_001) == "1 h 1 m 1 s 1 ns"
    assert fmt.format_time_ns_min_unit(1_500_000, fmt.MS) == "1.500 ms"
    assert fmt.format_time_us_exact(0) == "0 ns"


@pytest.mark.parametrize("value,text", [
    (0, "0"), (999, "999"), (1000, "1,000"), (94827419009024, "94,827,419,009,024"),
    (-1234567, "-1,234,567"), (18446623438842320000, "18,446,623,438,842,320,000"),
])
def test_format_nr(value, text):
    assert fmt.format_nr(value) == text
    assert fmt.format_nr(value, True) == str(value)


def test_format_ratio_and_range():
    assert fmt.format_percent(12.5) == "12.5 %"
    assert fmt.format_percent(100) == "100 %"
    assert fmt.format_addr_range(4096, 8192) == "[4,096, 8,192) (4.000 KiB)"
    assert fmt.format_sz_many([1, 2048]) == ["1 B", "2.000 KiB"]


def _sample_values(seed: int = 1) -> tuple[list[int], list[int]]:
    """Sizes and times around every unit edge, plus random values across magnitudes."""
    rng = random.Random(seed)
    sizes, times = [], []
    for shift in range(0, 64, 10):
        for delta in (-1, 0, 1, 511, 512, 513):
            sizes.append(max(0, (1 << shift) + delta))
    for unit in (1, fmt.US, fmt.MS, fmt.SEC, fmt.MINUTE, fmt.HOUR, fmt.DAY):
        for k in (1, 2, 59, 60, 61, 999, 1000, 1001):
            for delta in (-1, 0, 1, 500):
                times.append(max(0, k * unit + delta))
    for _ in range(3000):
        sizes.append(rng.randrange(1 << rng.randrange(1, 64)))
        times.append(rng.randrange(1 << rng.randrange(1, 60)))
    sizes.append(2**64 - 1)
    return sizes, times


ORACLE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import _damo_fmt_str as f
sizes, times = json.load(sys.stdin)
out = {
  "sz": [f.format_sz(v, False) for v in sizes],
  "nr": [f.format_nr(v, False) for v in sizes],
  "ns": [f.format_time_ns(v, False) for v in times],
  "us": [f.format_time_us(v // 1000, False) for v in times],
  "exact": [f.format_time_ns_exact(v, False) for v in times],
  "pct": [f.format_percent(v % 100003 / 7.0, False) for v in times],
}
json.dump(out, sys.stdout)
"""


@pytest.mark.interop
def test_matches_real_damo_functions(tmp_path):
    from bench.peers import PeerUnavailable, peer_module_dir, peer_python
    try:
        python, module_dir = peer_python("2.6.4"), peer_module_dir("2.6.4")
    except PeerUnavailable as err:
        pytest.skip(str(err))
    sizes, times = _sample_values()
    proc = subprocess.run([python, "-I", "-c", ORACLE, module_dir], input=json.dumps([sizes, times]),
                          capture_output=True, text=True, cwd=tmp_path, check=True)
    want = json.loads(proc.stdout)
    assert [fmt.format_sz(v) for v in sizes] == want["sz"]
    assert [fmt.format_nr(v) for v in sizes] == want["nr"]
    assert [fmt.format_time_ns(v) for v in times] == want["ns"]
    assert [fmt.format_time_us(v // 1000) for v in times] == want["us"]
    assert [fmt.format_time_ns_exact(v) for v in times] == want["exact"]
    assert [fmt.format_percent(v % 100003 / 7.0) for v in times] == want["pct"]


# --- fixed-width columns (report raw's fast path) -------------------------------------------------

def _rows(matrix) -> list[str]:
    return [bytes(row).decode() for row in matrix]


def test_columns_equal_printf_and_format_sz():
    import numpy as np

    rng = np.random.default_rng(11)
    for width in (1, 4, 5, 8, 11, 12):
        values = (rng.integers(0, 10, 3000) * 10 ** rng.integers(0, width, 3000)).astype(np.int64)
        values = np.concatenate([values, [0, 9, 10, 9999, 10000, 10**width - 1]])
        values = values[values < 10**width]
        assert _rows(fmt.decimal_column(values, width)) == ["%*d" % (width, v) for v in values.tolist()]
    for width in (4, 8, 12):
        values = rng.integers(0, 16**width, 3000, dtype=np.uint64)
        assert _rows(fmt.hex_column(values, width)) == ["%0*x" % (width, v) for v in values.tolist()]
    # sizes at every unit boundary, '%.3f' ties (rounded half to even) and random magnitudes
    ties = [(2 * k + 1) << (unit - 4) for unit in (10, 20, 30, 40) for k in range(1, 40)]
    bounds = [b + d for b in (1 << 10, 1 << 20, 1 << 30, 1 << 40) for d in (-1, 0, 1)]
    randoms = (rng.integers(1, 1 << 20, 5000) << rng.integers(0, 29, 5000)).tolist()
    sizes = np.array([0, 1, 999, (1 << 49) + 123] + ties + bounds + randoms, dtype=np.int64)
    assert _rows(fmt.size_column(sizes)) == ["%12s" % fmt.format_sz(v) for v in sizes.tolist()]


def test_assemble_lines_places_fields():
    import numpy as np

    lines = fmt.assemble_lines(b"[ ]-[  ]\n", [(1, np.array([[65], [66]], dtype=np.uint8)),
                                               (5, np.array([[67, 68], [69, 70]], dtype=np.uint8))])
    assert lines.tobytes() == b"[A]-[CD]\n[B]-[EF]\n"
