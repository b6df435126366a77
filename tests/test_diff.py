"""damo report diff on hand-built records: metrics, alignment, heat ranges, gates, noise, output."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from damo.cli import main
from damo.diff.analysis import Options, compare, parse_rate
from damo.diff.gates import evaluate, parse_gate
from damo.diff.render import heatmap_diff_data, plot_heatmap_diff, render_json, render_markdown, render_text
from damo.errors import DamoError
from damo.formats import write_record
from damo.model import RecordBuilder, RecordMeta

import schema_check
from conftest import REPO, make_record, run_cli

MIB = 1 << 20
NO_SKIP = Options(exclude_samples=0)
SCHEMA = json.loads((REPO / "docs" / "diff-schema.json").read_text())


def layout_record(areas, heat, nr_snapshots=10, sample_us=5000, aggr_us=100000, region=MIB, scale=1):
    """A record with fixed mapped ``areas`` [(start, size)] cut into ``region``-sized regions.

    ``heat(t, area, offset) -> nr_accesses`` (before ``scale``) gives every region's access count.
    """
    meta = RecordMeta(target_kind="sim", sample_us=sample_us, aggr_us=aggr_us)
    builder = RecordBuilder(meta)
    for t in range(nr_snapshots):
        starts, ends, nrs = [], [], []
        for a, (start, size) in enumerate(areas):
            for off in range(0, size, region):
                starts.append(start + off)
                ends.append(start + min(off + region, size))
                nrs.append(heat(t, a, off) * scale)
        builder.add(0, t * aggr_us * 1000, (t + 1) * aggr_us * 1000, starts, ends, nrs)
    return builder.build()


def hot_at(offset, size=MIB, area=0, nr=20, background=0):
    return lambda t, a, off: nr if a == area and offset <= off < offset + size else background


BASE_AREAS = [(0x5555_0000_0000, 8 * MIB), (0x7F00_0000_0000, 16 * MIB), (0x7FFF_F000_0000, 2 * MIB)]
ASLR_AREAS = [(0x5612_3450_0000, 8 * MIB), (0x7F3A_0000_0000, 16 * MIB), (0x7FFC_1000_0000, 2 * MIB)]


# ----------------------------------------------------------------------------- analysis

def test_same_record_diffs_to_zero():
    record = make_record(seed=3)
    cmp = compare([("a", record)], [("b", record)], NO_SKIP)
    assert all(c.delta == 0 and c.delta_pct == 0 for c in cmp.metrics.values())
    assert cmp.heat_changes == [] and cmp.warnings == []
    assert np.array_equal(cmp.base_heat, cmp.new_heat)


def test_metrics_match_ground_truth():
    # Area 1 (16 MiB): 4 MiB hot (20 samples = 200 Hz), 4 MiB warm (5 = 50 Hz), the rest cold.
    heat = lambda t, a, off: (20 if off < 4 * MIB else 5 if off < 8 * MIB else 0) if a == 1 else 0
    record = layout_record(BASE_AREAS, heat, nr_snapshots=30)
    m = compare([("a", record)], [("a", record)], Options(exclude_samples=20)).metrics
    assert m["hot_bytes"].base.mean == 4 * MIB
    assert m["warm_bytes"].base.mean == 4 * MIB
    assert m["cold_bytes"].base.mean == 18 * MIB
    assert m["total_bytes"].base.mean == 26 * MIB
    assert m["wss.p50"].base.mean == 8 * MIB and m["wss.avg"].base.mean == 8 * MIB
    assert m["nr_regions.p100"].base.mean == 26
    assert m["duration"].base.mean == pytest.approx(3.0)
    # Thresholds: hot >= 50% of 200 Hz = 100 Hz; with --hot 40Hz the warm part is hot too.
    m = compare([("a", record)], [("a", record)], Options(exclude_samples=0, hot=parse_rate("40Hz"))).metrics
    assert m["hot_bytes"].base.mean == 8 * MIB and m["warm_bytes"].base.mean == 0


def test_time_averaged_heat_per_bin_is_exact():
    # Hot 1 MiB at offset 3 MiB of area 0 half of the time: 200 Hz * 1/2 = 100 Hz there.
    heat = lambda t, a, off: 20 if (a == 0 and off == 3 * MIB and t % 2 == 0) else 0
    record = layout_record(BASE_AREAS, heat)
    cmp = compare([("a", record)], [("a", record)], Options(exclude_samples=0, bins=26))
    assert cmp.layout.bin_bytes == MIB and cmp.layout.nr_bins == 26
    expected = np.zeros(26)
    expected[3] = 100.0
    assert np.allclose(cmp.base_heat, expected)


def test_aslr_moved_areas_align_and_diff_to_zero():
    heat = lambda t, a, off: (20 if off < 2 * MIB else 3) if a == 1 else 1
    base = layout_record(BASE_AREAS, heat)
    new = layout_record(ASLR_AREAS, heat)
    cmp = compare([("base", base)], [("new", new)], NO_SKIP)
    assert [(s.members, s.size) for s in cmp.slots] == [({0: 0, 1: 0}, 8 * MIB), ({0: 1, 1: 1}, 16 * MIB),
                                                          ({0: 2, 1: 2}, 2 * MIB)]
    assert all(c.delta == 0 for c in cmp.metrics.values())
    assert cmp.heat_changes == [] and cmp.warnings == []


def test_moved_hot_spot_is_found_by_offset_not_address():
    base = layout_record(BASE_AREAS, hot_at(2 * MIB, area=1))
    new = layout_record(ASLR_AREAS, hot_at(10 * MIB, size=2 * MIB, area=1))
    cmp = compare([("base", base)], [("new", new)], Options(exclude_samples=0, bins=26))
    got = [(h.slot, h.offset_start, h.offset_end, round(h.base_hz, 6), round(h.new_hz, 6))
           for h in cmp.heat_changes]
    # 2 MiB gained 200 Hz (the biggest change in Hz x bytes), 1 MiB lost 200 Hz.
    assert got == [(1, 10 * MIB, 12 * MIB, 0.0, 200.0), (1, 2 * MIB, 3 * MIB, 200.0, 0.0)]
    gained, lost = cmp.heat_changes
    assert gained.base_addr == (0x7F00_0000_0000 + 10 * MIB, 0x7F00_0000_0000 + 12 * MIB)
    assert gained.new_addr == (0x7F3A_0000_0000 + 10 * MIB, 0x7F3A_0000_0000 + 12 * MIB)
    assert lost.delta_hz == pytest.approx(-200.0)
    assert cmp.metrics["hot_bytes"].delta == MIB


def test_new_mapping_gets_its_own_slot():
    base = layout_record(BASE_AREAS, lambda t, a, off: 1)
    areas = BASE_AREAS[:2] + [(0x7F80_0000_0000, 64 * MIB)] + BASE_AREAS[2:]
    new = layout_record(areas, lambda t, a, off: 20 if a == 2 else 1)
    cmp = compare([("base", base)], [("new", new)], NO_SKIP)
    assert [s.members for s in cmp.slots] == [{0: 0, 1: 0}, {0: 1, 1: 1}, {1: 2}, {0: 2, 1: 3}]
    assert cmp.warnings == ["1 mapped areas of new have no counterpart in base (64.000 MiB)"]
    top = cmp.heat_changes[0]
    assert (top.slot, top.size, top.base_addr, top.new_addr) == (2, 64 * MIB, None,
                                                                   (0x7F80_0000_0000, 0x7F80_0000_0000 + 64 * MIB))


def test_different_intervals_warn_and_compare_rates():
    heat = lambda t, a, off: (10 if off < 4 * MIB else 1) if a == 1 else 0
    base = layout_record(BASE_AREAS, heat)
    # Twice the aggregation interval counts twice the samples for the same rate.
    new = layout_record(ASLR_AREAS, heat, aggr_us=200000, nr_snapshots=5, scale=2)
    cmp = compare([("base", base)], [("new", new)], NO_SKIP)
    assert cmp.metrics["hot_bytes"].delta == 0 and cmp.metrics["warm_bytes"].delta == 0
    assert cmp.metrics["duration"].delta == 0
    assert np.allclose(cmp.base_heat, cmp.new_heat) and cmp.heat_changes == []
    assert len(cmp.warnings) == 1
    assert cmp.warnings[0].startswith("monitoring intervals differ (base: sample 5000 us / aggr 100000 us; "
                                      "new: sample 5000 us / aggr 200000 us): access counts are compared as "
                                      "per-second rates (Hz)")


def test_exclude_samples_leaving_nothing_is_bad_input():
    record = make_record(nr_snapshots=10)
    with pytest.raises(DamoError, match="no snapshots left after excluding the first 20"):
        compare([("a", record)], [("a", record)])


def test_wss_percentiles_are_report_wss_numbers():
    from damo.wss import wss_percentiles
    record = make_record(nr_snapshots=60, nr_targets=2, seed=5)
    cmp = compare([("a", record)], [("a", record)])
    expected = wss_percentiles(record)[0]
    assert [cmp.metrics[f"wss.p{p}"].base.mean for p in (0, 25, 50, 75, 100)] == [float(v) for v in expected]


# ----------------------------------------------------------------------------- gates

@pytest.mark.parametrize("text,metric,op,value,percent", [
    ("wss.p50>+10%", "wss.p50", ">", 10.0, True),
    ("wss.p100>+64MiB", "wss.p100", ">", 64.0 * MIB, False),
    ("hot_bytes>+5%", "hot_bytes", ">", 5.0, True),
    ("hot_bytes < -5%", "hot_bytes", "<", -5.0, True),
    ("cold_bytes<=-1.5GiB", "cold_bytes", "<=", -1.5 * (1 << 30), False),
    ("wss.avg>=4096", "wss.avg", ">=", 4096.0, False),
    ("wss.p0>+2k", "wss.p0", ">", 2048.0, False),
    ("nr_regions.avg>+100", "nr_regions.avg", ">", 100.0, False),
    ("duration>+500ms", "duration", ">", 0.5, False),
])
def test_gate_syntax(text, metric, op, value, percent):
    gate = parse_gate(text)
    assert (gate.metric, gate.op, gate.value, gate.percent) == (metric, op, value, percent)


@pytest.mark.parametrize("text,why", [
    ("wss.p50>>10%", "not a gate expression"),
    ("wss.p50=10%", "not a gate expression"),
    ("wss.p50>", "not a gate expression"),
    ("wss.p50>+10%%", "not a gate expression"),
    ("wss.p99>+10%", "unknown metric 'wss.p99'; metrics: wss.p0 wss.p25"),
    ("wss.p50>+10s", "unit 's' does not fit wss.p50 (bytes); use % or b/kib/mib/gib/tib"),
    ("nr_regions.p50>+10MiB", "unit 'MiB' does not fit nr_regions.p50 (count); use none (a count)"),
])
def test_bad_gates_show_the_syntax(text, why):
    with pytest.raises(DamoError) as err:
        parse_gate(text)
    message = str(err.value)
    assert message.startswith(f"bad --fail-if '{text}': {why}")
    if "unknown metric" not in why:
        assert "expected METRIC OP [+|-]NUMBER[%|UNIT]" in message and "'wss.p50>+10%'" in message


def two_sided(base_values, new_values, name="wss.p50"):
    from damo.diff.analysis import MetricChange, Stats
    return MetricChange(name, "bytes", Stats(list(base_values)), Stats(list(new_values)))


def test_gate_thresholds_single_runs():
    change = two_sided([100 * MIB], [111 * MIB])
    assert evaluate(parse_gate("wss.p50>+10%"), change, 2).tripped
    assert not evaluate(parse_gate("wss.p50>+11%"), change, 2).tripped      # strictly greater
    assert evaluate(parse_gate("wss.p50>=+11%"), change, 2).tripped
    assert evaluate(parse_gate("wss.p50>+10MiB"), change, 2).tripped
    assert not evaluate(parse_gate("wss.p50>+11MiB"), change, 2).tripped
    assert not evaluate(parse_gate("wss.p50<-10%"), change, 2).tripped
    shrink = two_sided([100 * MIB], [80 * MIB])
    assert evaluate(parse_gate("wss.p50<-10%"), shrink, 2).tripped
    assert not evaluate(parse_gate("wss.p50>+10%"), shrink, 2).tripped
    result = evaluate(parse_gate("wss.p50<-10%"), shrink, 2)
    assert result.line() == ("FAIL wss.p50<-10%: wss.p50 100.000 MiB -> 80.000 MiB (change -20.000 MiB, "
                             "-20.00%; threshold -10.000 MiB)")
    # From zero, any rise is an unbounded relative change.
    from_zero = two_sided([0], [1])
    assert evaluate(parse_gate("wss.p50>+1000%"), from_zero, 2).tripped
    assert from_zero.delta_pct is None


def test_gate_noise_margin():
    base = [100, 104, 96, 102, 98]                    # mean 100, stdev ~3.16
    new = [112, 108, 116, 110, 114]                   # mean 112
    change = two_sided(np.array(base) * MIB, np.array(new) * MIB)
    se = np.sqrt(np.var(base, ddof=1) / 5 + np.var(new, ddof=1) / 5) * MIB
    assert change.noise == pytest.approx(se)
    result = evaluate(parse_gate("wss.p50>+10%"), change, 2)
    assert result.margin == pytest.approx(2 * se)
    assert result.tripped == (12 * MIB > 10 * MIB + 2 * se)
    assert not evaluate(parse_gate("wss.p50>+10%"), change, 3).tripped   # 12 < 10 + 3 * 1.41


# ----------------------------------------------------------------------------- noise across runs

def noisy_record(seed: int, wss_mib: float, areas=BASE_AREAS, noise=0.05):
    """Area 1 holds a working set of about ``wss_mib`` MiB whose size jitters per snapshot and run."""
    rng = np.random.default_rng(seed)
    run_scale = 1 + rng.normal(0, noise)
    sizes = np.clip(wss_mib * run_scale * (1 + rng.normal(0, 0.02, 60)), 1, 16)
    return layout_record(areas, lambda t, a, off: 20 if a == 1 and off < sizes[t] * MIB else 0,
                         nr_snapshots=60, region=MIB // 4)


def test_noise_within_spread_does_not_trip_but_a_shift_does():
    base = [(f"base{i}", noisy_record(100 + i, 8.0)) for i in range(5)]
    same = [(f"same{i}", noisy_record(200 + i, 8.0, ASLR_AREAS)) for i in range(5)]
    shifted = [(f"more{i}", noisy_record(300 + i, 10.0, ASLR_AREAS)) for i in range(5)]
    gate = parse_gate("wss.p50>+5%")

    # Single runs are noisy enough that some pairs trip the gate on their own...
    pairs = [evaluate(gate, compare([b], [n]).metrics["wss.p50"], 2).tripped for b in base for n in same]
    assert any(pairs)
    # ...but the distributions of five runs each do not differ beyond their noise,
    cmp = compare(base, same)
    c = cmp.metrics["wss.p50"]
    assert c.base.n == 5 and c.base.stdev > 0 and c.new.stdev > 0
    assert not evaluate(gate, c, 2).tripped
    assert not evaluate(parse_gate("wss.p50<-5%"), c, 2).tripped
    # while a 25% larger working set does, and only upwards.
    c = compare(base, shifted).metrics["wss.p50"]
    assert c.delta_pct > 15
    assert evaluate(gate, c, 2).tripped and not evaluate(parse_gate("wss.p50<-5%"), c, 2).tripped
    # The spread is reported per side.
    assert c.base.min <= c.base.mean <= c.base.max and c.new.min > c.base.max


# ----------------------------------------------------------------------------- output

@pytest.fixture
def moved(tmp_path):
    base = layout_record(BASE_AREAS, hot_at(2 * MIB, area=1), nr_snapshots=30)
    new = layout_record(ASLR_AREAS, hot_at(10 * MIB, size=2 * MIB, area=1), nr_snapshots=30)
    paths = tmp_path / "base.data", tmp_path / "new.data"
    write_record(base, paths[0])
    write_record(new, paths[1])
    return [str(p) for p in paths]


def check_schema(doc):
    assert schema_check.errors(doc, SCHEMA) == []
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)


def test_json_output_validates_against_the_schema(moved, capsys):
    assert main(["report", "diff", *moved, "--json", "--fail-if", "hot_bytes>+50%",
                 "--fail-if", "wss.p100>+64MiB"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    check_schema(doc)
    assert doc["metrics"]["hot_bytes"]["base"]["mean"] == MIB and doc["metrics"]["hot_bytes"]["delta_pct"] == 100
    assert [g["tripped"] for g in doc["gates"]] == [True, False] and doc["nr_tripped"] == 1
    assert doc["heat_changes"][0]["offset_start"] == 10 * MIB
    assert captured.err.startswith("FAIL hot_bytes>+50%: hot_bytes 1024.000 KiB -> 2.000 MiB")
    assert captured.err.count("\n") == 1


def test_json_schema_rejects_broken_documents(moved, capsys):
    main(["report", "diff", *moved, "--json"])
    doc = json.loads(capsys.readouterr().out)
    check_schema(doc)
    broken = json.loads(json.dumps(doc))
    del broken["metrics"]["wss.p50"]["noise"]
    broken["gates"] = [{"expr": "x"}]
    broken["heat_changes"][0]["base_addr"] = [1]
    broken["base"][0]["sample_us"] = "5000"
    problems = schema_check.errors(broken, SCHEMA)
    assert any("missing 'noise'" in p for p in problems)
    assert any("$.gates[0]: missing 'tripped'" in p for p in problems)
    assert any("heat_changes[0].base_addr" in p for p in problems)
    assert any("sample_us" in p for p in problems)


def test_multi_record_json_validates(tmp_path, capsys):
    for i in range(3):
        write_record(noisy_record(i, 8.0), tmp_path / f"b{i}.data")
        write_record(noisy_record(10 + i, 9.0, ASLR_AREAS), tmp_path / f"n{i}.data")
    (tmp_path / "base").mkdir()
    assert main(["report", "diff", "--base", *(str(tmp_path / f"b{i}.data") for i in range(3)),
                 "--new", *(str(tmp_path / f"n{i}.data") for i in range(3)), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    check_schema(doc)
    assert doc["metrics"]["wss.p50"]["base"]["n"] == 3 and doc["metrics"]["wss.p50"]["noise"] > 0


def test_text_output(moved, capsys):
    assert main(["report", "diff", *moved, "--exclude_samples", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"base: {moved[0]} (1 record; duration 3.000 s; sample 5000 us, aggr 100000 us; 30 snapshots used)"
    assert out[2] == ("heat classes: hot >= 100 Hz (50%), cold <= 0 Hz (0Hz), warm between (max rate 200 Hz); "
                      "wss: nr_accesses >= 1, size >= 1 B; first 0 snapshots of each target excluded")
    assert re.split(r"\s+", out[4]) == ["metric", "base", "new", "change", "change%"]
    row = {line.split()[0]: line for line in out[5:22]}
    assert re.split(r"\s{2,}", row["hot_bytes"]) == ["hot_bytes", "1024.000 KiB", "2.000 MiB", "+1024.000 KiB",
                                                      "+100.00%"]
    assert re.split(r"\s{2,}", row["wss.p50"].strip()) == ["wss.p50", "1024.000 KiB", "2.000 MiB", "+1024.000 KiB",
                                                           "+100.00%"]
    heat = out[out.index(next(l for l in out if l.startswith("heat changes"))) + 2]
    assert re.split(r"\s{2,}", heat.strip()) == [
        "1", "+10.000 MiB", "2.000 MiB", "0.0 Hz", "200.0 Hz", "+200.0 Hz",
        "0x7f0000a00000-0x7f0000c00000", "0x7f3a00a00000-0x7f3a00c00000"]


def test_markdown_output(moved, tmp_path, capsys):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    assert main(["report", "diff", *moved, "--markdown", str(summary), "--fail-if", "hot_bytes>+50%"]) == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n### damo report diff: ❌ 1 of 1 gates tripped\n")
    assert "- ❌ `hot_bytes>+50%`: hot_bytes 1024.000 KiB -> 2.000 MiB (change +1024.000 KiB, +100.00%; " \
           "threshold +512.000 KiB)" in text
    assert "| metric | base | new | change | change% |\n| --- | ---: | ---: | ---: | ---: |\n" in text
    assert "| hot_bytes | 1024.000 KiB | 2.000 MiB | +1024.000 KiB | +100.00% |" in text
    capsys.readouterr()
    assert main(["report", "diff", *moved, "--markdown", "--fail-if", "hot_bytes>+500%"]) == 0
    assert capsys.readouterr().out.startswith("### damo report diff: ✅ all 1 gates passed\n")


def test_rich_table_on_a_terminal(moved):
    from rich.console import Console
    from damo.diff.render import render_rich
    from damo.formats import read_record
    cmp = compare([("b", read_record(moved[0]))], [("n", read_record(moved[1]))])
    console = Console(file=io.StringIO(), width=160, force_terminal=True, color_system=None)
    render_rich(cmp, [evaluate(parse_gate("hot_bytes>+50%"), cmp.metrics["hot_bytes"], 2)], 2, console)
    out = console.file.getvalue()
    assert "damo report diff" in out and "│ hot_bytes " in out and "+100.00%" in out
    assert "FAIL hot_bytes>+50%" in out


def test_heatmap_diff(moved, tmp_path):
    from damo.formats import read_record
    base, new = read_record(moved[0]), read_record(moved[1])
    cmp = compare([("b", base)], [("n", new)], Options(exclude_samples=0, bins=26, time_rows=10))
    data = heatmap_diff_data(cmp)
    assert data["base"].shape == data["new"].shape == data["diff"].shape == (26, 10)
    assert np.array_equal(data["diff"], data["new"] - data["base"])
    assert np.allclose(data["base"][8 + 2], 200) and np.allclose(data["new"][8 + 10:8 + 12], 200)
    assert np.allclose(data["base"].sum(axis=0), 200) and np.allclose(data["new"].sum(axis=0), 400)
    png = tmp_path / "d.png"
    plot_heatmap_diff(cmp, png)
    import matplotlib.image
    assert matplotlib.image.imread(png).shape[2] == 4


def test_heatmap_diff_cli(moved, tmp_path):
    png = tmp_path / "h.png"
    assert main(["report", "diff", *moved, "--heatmap-diff", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["report", "diff", *moved, "--heatmap-diff", str(tmp_path / "h.nosuchformat")]) == 2


# ----------------------------------------------------------------------------- command line

def test_directories_are_sets_of_runs(tmp_path, capsys):
    for side, seeds in (("base", (1, 2)), ("new", (3, 4, 5))):
        (tmp_path / side).mkdir()
        for s in seeds:
            write_record(noisy_record(s, 8.0), tmp_path / side / f"run{s}.data")
    (tmp_path / "new" / "notes.txt").write_text("not a record")
    assert main(["report", "diff", str(tmp_path / "base"), str(tmp_path / "new"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in doc["new"]] == [str(tmp_path / "new" / f"run{s}.data") for s in (3, 4, 5)]


@pytest.mark.parametrize("args,message", [
    (["a.data"], "expected BASE NEW (or --base FILE... --new FILE...), got 1 paths"),
    (["--base", "a.data"], "--base and --new go together"),
    (["x", "y", "--base", "a", "--new", "b"], "give BASE NEW or --base/--new, not both"),
    (["/nonexistent/a.data", "/nonexistent/b.data"], "/nonexistent/a.data: no such file"),
    (["A", "B", "--fail-if", "wss.p50 > ten%"], "bad --fail-if 'wss.p50 > ten%': not a gate expression"),
    (["A", "B", "--json", "--markdown"], "--json and --markdown cannot both go to stdout"),
    (["A", "B", "--hot", "hot"], "bad access rate 'hot'"),
    (["A", "B", "--cold", "60%"], "the cold threshold (60% = 120 Hz) must be below the hot threshold"),
    (["EMPTYDIR", "B"], "directory holds no *.data records"),
])
def test_bad_input_exits_2(moved, tmp_path, capsys, args, message):
    (tmp_path / "emptydir").mkdir()
    args = [{"A": moved[0], "B": moved[1], "EMPTYDIR": str(tmp_path / "emptydir")}.get(a, a) for a in args]
    assert main(["report", "diff", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("damo: error: ")


def test_subprocess_exit_codes_and_streams(moved, tmp_path):
    done = run_cli("report", "diff", *moved, "--fail-if", "hot_bytes>+50%", "--fail-if", "wss.p50<-10%",
                   env={"NO_COLOR": "1"})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "FAIL hot_bytes>+50%: hot_bytes 1024.000 KiB -> 2.000 MiB (change +1024.000 KiB, +100.00%; "
        "threshold +512.000 KiB)"]
    assert "gates:" in done.stdout and "  pass wss.p50<-10%" in done.stdout
    assert "\x1b[" not in done.stdout
    done = run_cli("report", "diff", moved[0], moved[0], "--fail-if", "hot_bytes>+0%", "--fail-if",
                   "wss.p50<-0%")
    assert done.returncode == 0 and done.stderr == ""


def test_chunked_integration_matches_one_pass(monkeypatch):
    """Heat and class sums are computed a chunk of snapshots at a time; chunking changes nothing."""
    import damo.diff.analysis
    base, new = make_record(nr_snapshots=40, nr_targets=3, seed=1), make_record(nr_snapshots=40, nr_targets=3, seed=2)
    options = Options(exclude_samples=5, time_rows=8)
    whole = compare([("a", base)], [("b", new)], options)
    monkeypatch.setattr(damo.diff.analysis, "REGION_CHUNK", 7)
    chunked = compare([("a", base)], [("b", new)], options)
    assert whole.metrics.keys() == chunked.metrics.keys()
    for name, metric in whole.metrics.items():
        other = chunked.metrics[name]
        assert (metric.base.mean, metric.new.mean) == pytest.approx((other.base.mean, other.new.mean)), name
    assert np.allclose(whole.base_heat, chunked.base_heat) and np.allclose(whole.new_grid, chunked.new_grid,
                                                                           equal_nan=True)
    assert len(whole.slots) == 3 and [s.target for s in whole.slots] == [0, 1, 2]


def test_loaders_keep_one_record_in_memory_and_give_the_same_result():
    records = {"a": make_record(seed=1), "b": make_record(seed=2)}
    calls = []

    def loader(name):
        def load():
            calls.append(name)
            return records[name]
        return load

    options = Options(exclude_samples=0)
    direct = compare([("a", records["a"])], [("b", records["b"])], options)
    lazy = compare([("a", loader("a"))], [("b", loader("b"))], options)
    assert calls == ["a", "b"]
    assert np.array_equal(direct.base_heat, lazy.base_heat) and direct.heat_changes == lazy.heat_changes
    calls.clear()
    compare([("a", loader("a"))], [("b", loader("b"))], Options(exclude_samples=0, time_rows=4))
    assert calls == ["a", "b", "a", "b"]           # heat grids read the records again


def test_help():
    done = run_cli("report", "diff", "--help")
    assert done.returncode == 0 and "--fail-if EXPR" in done.stdout and "'wss.p50>+10%'" in done.stdout
    assert "damo report diff --base A1 A2 A3 --new B1 B2 B3" in done.stdout
