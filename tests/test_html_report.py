"""``damo report html``: the page's numbers against the record, the file, bad input, and the page in
headless Chromium (tests/browser_support.py: skipped naming what is missing, except with CI=true)."""
from __future__ import annotations

import base64
import json
import os
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from damo.errors import DamoError
from damo.formats import read_record, write_record
from damo.html_report import report_data, wss_by_threshold
from damo.model import RecordBuilder, RecordMeta
from damo.wss import wss_per_snapshot

from conftest import REPO, make_record, run_cli

CONFIGS = REPO / "masim" / "configs"


def decode(enc: dict) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(enc["b64"]))
    return np.frombuffer(raw, dtype=np.dtype(enc["dtype"]).newbyteorder("<")).reshape(enc["shape"])


def page_data(html_path) -> dict:
    text = Path(html_path).read_text()
    block = re.search(r'<script type="application/json" id="damo-data">(.*?)</script>', text, re.S).group(1)
    return json.loads(block)


def fine_heat(target: dict) -> np.ndarray:
    """The finest level as (time, address) floats."""
    level = target["levels"][-1]
    return decode(level["heat"]).T / target["heat_scale"]


# --- numbers ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    record = make_record(nr_snapshots=24, nr_regions=12, seed=3)
    return record, report_data(record, "small", levels=3)


def test_a_cell_inside_one_region_and_snapshot_holds_its_nr_accesses(small):
    record, data = small
    target = data["targets"][0]
    heat = fine_heat(target)
    nt, na = heat.shape
    axis = target["axis"]
    assert len(axis["start"]) == 1          # one contiguous area: the axis is plain bytes
    a0, a1 = axis["start"][0], axis["end"][0]
    t0, t1 = target["t0"], target["t1"]
    checked = 0
    for s in range(record.nr_snapshots):
        snap = record.snapshot(s)
        c_lo = int(np.ceil((snap.start_ns - t0) * nt / (t1 - t0)))
        c_hi = int(np.floor((snap.end_ns - t0) * nt / (t1 - t0))) - 1
        for start, end, nr in zip(snap.start.tolist(), snap.end.tolist(), snap.nr_accesses.tolist()):
            r_lo = int(np.ceil((start - a0) * na / (a1 - a0)))
            r_hi = int(np.floor((end - a0) * na / (a1 - a0))) - 1
            if c_lo <= c_hi and r_lo <= r_hi:
                assert np.allclose(heat[c_lo:c_hi + 1, r_lo:r_hi + 1], nr), (s, start)
                checked += 1
    assert checked > record.nr_snapshots * 5


def test_heat_is_conserved_and_levels_average_the_finer_one(small):
    record, data = small
    target = data["targets"][0]
    duration = (record.end_ns - record.start_ns).astype(np.float64)
    sizes = (record.end - record.start).astype(np.float64)
    truth = float((record.nr_accesses * sizes * np.repeat(duration, record.regions_per_snapshot())).sum())
    span_ns = target["t1"] - target["t0"]
    span_bytes = target["axis"]["end"][0] - target["axis"]["start"][0]
    levels = [decode(lv["heat"]).T / target["heat_scale"] for lv in target["levels"]]
    for heat in levels:
        total = heat.sum() * span_ns / heat.shape[0] * span_bytes / heat.shape[1]
        assert total == pytest.approx(truth, rel=1e-4)
    for coarse, fine in zip(levels, levels[1:]):
        nt, na = coarse.shape
        mean = fine.reshape(nt, 2, na, 2).mean(axis=(1, 3))
        assert np.abs(coarse - mean).max() <= 2 / target["heat_scale"]
    assert levels[-1].shape == (levels[0].shape[0] * 4, levels[0].shape[1] * 4)


def test_wss_series_match_wss_per_snapshot_and_report_wss(small, tmp_path):
    record, data = small
    target = data["targets"][0]
    series = decode(target["wss"])
    for i, thres in enumerate(target["wss_thresholds"]):
        assert np.array_equal(series[i], wss_per_snapshot(record, acc_thres=thres))
    assert np.array_equal(wss_by_threshold(record, np.array([1])).ravel(), wss_per_snapshot(record))
    path = tmp_path / "r.data"
    write_record(record, path)
    text = run_cli("report", "wss", "-i", str(path), "--raw_number", "--exclude_samples", "20").stdout
    printed = {int(p): int(v) for p, v in re.findall(r"^\s*(\d+)\s+(\d+) ", text, re.M)}
    assert printed and all(target["wss_percentiles"][str(p)] == v for p, v in printed.items())


def expected_hottest(record):
    """The record's hottest range, computed plainly: most accesses, then largest, oldest, earliest."""
    best = None
    for s in range(record.nr_snapshots):
        snap = record.snapshot(s)
        for start, end, nr, age in zip(snap.start.tolist(), snap.end.tolist(), snap.nr_accesses.tolist(),
                                       snap.age.tolist()):
            key = (nr, end - start, age)
            if best is None or key > best[0]:
                best = (key, start, end, s)
    return best


def test_hottest_and_coldest_ranges(small):
    record, data = small
    target = data["targets"][0]
    (_, start, end, s) = expected_hottest(record)
    top = target["hottest"][0]
    assert (top["start"], top["end"], top["snapshot_start"]) == (start, end, int(record.start_ns[s]))
    spans = [(r["start"], r["end"]) for r in target["hottest"]]
    assert len(spans) == len(set(spans)) == 20
    accs = [r["nr_accesses"] for r in target["hottest"]]
    assert accs == sorted(accs, reverse=True)
    cold = [r["nr_accesses"] for r in target["coldest"]]
    assert cold == sorted(cold) and cold[0] == int(record.nr_accesses.min())


def test_several_targets_each_have_their_own_data():
    record = make_record(nr_snapshots=6, nr_regions=8, nr_targets=2)
    data = report_data(record, "two", levels=2)
    assert [t["target_id"] for t in data["targets"]] == [0, 1]
    assert all(t["nr_snapshots"] == 6 for t in data["targets"])


# --- the file and the command line ------------------------------------------------------------------

def require_plotly() -> None:
    """The page vendors plotly.min.js from the plotly package (the [html] extra): skip, or fail in CI."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("plotly is not installed (pip install -e '.[html]')")
        pytest.skip("plotly is not installed (pip install -e '.[html]')")


@pytest.fixture
def plotly_installed():
    require_plotly()


def test_without_plotly_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    import damo.html_report as html_report

    def missing(package):
        raise ModuleNotFoundError(package)

    monkeypatch.setattr(html_report.resources, "files", missing)
    with pytest.raises(DamoError, match=r"pip install 'damo-profiler\[html\]'"):
        html_report.write_report(make_record(nr_snapshots=3, nr_regions=4), "x", str(tmp_path / "o.html"))
    assert not list(tmp_path.iterdir())


def test_cli_writes_one_self_contained_page(tmp_path, plotly_installed):
    record = make_record(nr_snapshots=10, nr_regions=10)
    write_record(record, tmp_path / "r.data")
    proc = run_cli("report", "html", "-i", "r.data", "-o", "out.html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "out.html").read_text()
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=|<link\b|@import|url\(\s*['\"]?https?:", text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert "plotly.js v" in text
    assert page_data(tmp_path / "out.html")["targets"][0]["nr_regions_total"] == record.nr_regions_total
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob(".damo-html-*"))


def test_record_text_cannot_break_out_of_the_page(tmp_path, plotly_installed):
    from damo.html_report import write_report

    record = make_record(nr_snapshots=3, nr_regions=4)
    record.meta.target = "</script><!--<script>alert(1)</script>"
    write_report(record, "r.data", str(tmp_path / "o.html"))
    text = (tmp_path / "o.html").read_text()
    assert "alert(1)</script>" not in text and "<!--<script>" not in text
    assert ["target", record.meta.target] in page_data(tmp_path / "o.html")["metadata"]


def test_tid_time_and_address_range_select_what_the_page_shows(tmp_path, plotly_installed):
    record = make_record(nr_snapshots=12, nr_regions=10, nr_targets=2)
    write_record(record, tmp_path / "r.data")
    lo = int(record.start.min()) + (1 << 24)
    hi = lo + (1 << 24)
    t0 = int(record.start_ns[4])
    t1 = int(record.end_ns[9])
    proc = run_cli("report", "html", "-i", "r.data", "-o", "o.html", "--tid", "1", "--time_range", str(t0), str(t1),
                   "--address_range", hex(lo), hex(hi), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (target,) = page_data(tmp_path / "o.html")["targets"]
    assert target["target_id"] == 1
    assert (target["t0"], target["t1"]) == (int(record.start_ns[4]), int(record.end_ns[9]))
    assert target["axis"]["start"][0] == lo and target["axis"]["end"][-1] == hi
    proc = run_cli("report", "html", "-i", "r.data", "-o", "o.html", "--tid", "7", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "damo: error: no target 7 in the record"


def test_help_has_an_example_and_the_default():
    proc = run_cli("report", "html", "--help")
    assert "report.html" in proc.stdout and "example" in proc.stdout


def _record_with_an_empty_target(path):
    meta = RecordMeta(target_kind="vaddr", sample_us=5000, aggr_us=100000)
    builder = RecordBuilder(meta)
    for t in range(3):
        builder.add(0, t * 100_000_000, (t + 1) * 100_000_000, [4096], [8192], [3])
        builder.add(1, t * 100_000_000, (t + 1) * 100_000_000, [], [], [])
    write_record(builder.build(), path)


@pytest.mark.parametrize("case", ["empty", "target_without_addresses", "unwritable_dir", "output_is_directory"])
def test_bad_input_is_one_line_exit_2_and_no_file(tmp_path, case, plotly_installed):
    out = tmp_path / "out.html"
    record_path = tmp_path / "r.data"
    write_record(make_record(nr_snapshots=4, nr_regions=5), record_path)
    expect = "cannot write the report"
    if case == "empty":
        write_record(RecordBuilder(RecordMeta()).build(), record_path)
        expect = "no snapshot"
    elif case == "target_without_addresses":
        _record_with_an_empty_target(record_path)
        expect = "target 1 has no region"
    elif case == "unwritable_dir":
        out = tmp_path / "missing" / "out.html"
    else:
        out.mkdir()
    proc = run_cli("report", "html", "-i", str(record_path), "-o", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], proc.stderr
    assert not out.is_file() and not list(tmp_path.rglob(".damo-html-*"))


def test_empty_record_is_an_error_in_the_api():
    with pytest.raises(DamoError, match="no snapshot"):
        report_data(RecordBuilder(RecordMeta()).build(), "x")


# --- in a real browser ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    from browser_support import Browser

    require_plotly()

    b = Browser()
    yield b
    b.close()


@pytest.fixture(scope="module")
def zigzag(tmp_path_factory):
    """A masim zigzag record (two 100 MB regions hot in turns, 5 s each) and its page."""
    d = tmp_path_factory.mktemp("zigzag")
    proc = run_cli("record", str(CONFIGS / "zigzag.cfg"), "-o", str(d / "z.data"))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("report", "html", "-i", str(d / "z.data"), "-o", str(d / "z.html"))
    assert proc.returncode == 0, proc.stderr
    return read_record(d / "z.data"), d / "z.data", d / "z.html"


@pytest.fixture
def zpage(browser, zigzag):
    page = browser.open(zigzag[2])
    yield page
    page.close()


@pytest.mark.slow
def test_page_has_no_console_error_and_no_network_request(zpage, zigzag):
    assert [m for m in zpage.messages if m[0] in ("error", "pageerror", "warning")] == []
    assert zpage.requests == [f"file://{zigzag[2]}"]
    assert zpage.evaluate("document.querySelectorAll('#heatmap canvas, #heatmap image').length") > 0


def _big_area(record):
    from damo.heats import guide_of

    return max(guide_of(record, 0).areas, key=lambda a: a[1] - a[0])


@pytest.mark.slow
def test_zigzag_halves_alternate_in_the_screenshot(zpage, zigzag):
    from io import BytesIO

    from PIL import Image

    record = zigzag[0]
    lo, hi = _big_area(record)
    box = zpage.evaluate("damoReport.plotBox()")
    y_lo = zpage.evaluate(f"damoReport.pixelOf(0, {lo}).y")
    y_hi = zpage.evaluate(f"damoReport.pixelOf(0, {hi}).y")
    y_mid = (y_lo + y_hi) / 2
    shot = Image.open(BytesIO(zpage.screenshot(clip=box))).convert("L")
    pixels = np.asarray(shot, dtype=np.float64)
    scale = pixels.shape[0] / box["height"]
    low_half = pixels[int((y_mid - box["y"]) * scale):int((y_lo - box["y"]) * scale)]      # a: lower addresses
    high_half = pixels[int((y_hi - box["y"]) * scale):int((y_mid - box["y"]) * scale)]    # b
    diff = low_half.sum(axis=0) / len(low_half) - high_half.sum(axis=0) / len(high_half)
    signs = np.sign(diff[np.abs(diff) > 20])
    flips = int((signs[1:] != signs[:-1]).sum())
    assert flips >= 6, flips


def _brightness(css_colour: str) -> int:
    """Sum of the red, green and blue of '#rrggbb' or 'rgb(r, g, b)'."""
    if css_colour.startswith("#"):
        return sum(int(css_colour[i:i + 2], 16) for i in (1, 3, 5))
    return sum(int(c) for c in re.findall(r"\d+", css_colour)[:3])


def _drag(page, x0, y0, x1, y1):
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x0 + (x1 - x0) * i / 10, y0 + (y1 - y0) * i / 10)
    page.mouse.up()


@pytest.mark.slow
def test_zoom_into_a_hot_area_shows_finer_cells(zpage, zigzag):
    record = zigzag[0]
    lo, hi = _big_area(record)
    before = zpage.evaluate("damoReport.view()")
    # low phase 0 (10-15 s) hammers region a, the lower half of the big area: zoom to a corner of it
    p0 = zpage.evaluate(f"damoReport.pixelOf(11.0, {lo + (hi - lo) // 8})")
    p1 = zpage.evaluate(f"damoReport.pixelOf(13.5, {lo + (hi - lo) // 8 + (hi - lo) // 40})")
    _drag(zpage, p0["x"], p0["y"], p1["x"], p1["y"])
    zpage.wait_for_function(f"damoReport.view().level > {before['level']}")
    after = zpage.evaluate("damoReport.view()")
    assert after["x"][1] - after["x"][0] < (before["x"][1] - before["x"][0]) / 16
    assert after["y"][1] - after["y"][0] < (before["y"][1] - before["y"][0]) / 16
    assert after["level"] == 4
    assert after["cellSeconds"] <= before["cellSeconds"] / 16
    assert after["cellBytes"] <= before["cellBytes"] / 16


@pytest.mark.slow
def test_hover_shows_the_hz_that_report_raw_prints(zpage, zigzag):
    record, data_path, _ = zigzag
    s = int(np.searchsorted(record.end_ns, record.start_ns[0] + 17_500_000_000))   # high phase 0: b is hot
    snap = record.snapshot(s)
    r = int(np.argmax((snap.end - snap.start) * (snap.nr_accesses > 0)))
    start, end, nr = int(snap.start[r]), int(snap.end[r]), int(snap.nr_accesses[r])
    assert nr > 0
    raw = run_cli("report", "raw", "-i", str(data_path), "--raw_number").stdout
    block = raw.split("monitoring_start:")[s + 1]
    assert re.search(rf"^{start:x}-{end:x}\s+\(\s*{end - start}\)\s+{nr}\s", block, re.M), block[:800]
    t_mid = ((snap.start_ns + snap.end_ns) / 2 - record.start_ns.min()) / 1e9
    a_mid = (start + end) // 2
    zpage.evaluate(f"damoReport.setView([{t_mid - 0.5}, {t_mid + 0.5}], "
                   f"[damoReport.positionOf({a_mid - (1 << 20)}), damoReport.positionOf({a_mid + (1 << 20)})])")
    assert zpage.evaluate("damoReport.view().level") == 4
    p = zpage.evaluate(f"damoReport.pixelOf({t_mid}, {a_mid})")
    zpage.mouse.move(p["x"] - 3, p["y"])
    zpage.mouse.move(p["x"], p["y"])
    zpage.wait_for_selector("#tooltip:not([hidden])")
    text = zpage.inner_text("#tooltip")
    hz = nr * 1e6 / record.meta.aggr_us
    assert re.search(r"access rate: (\S+) Hz", text).group(1) == f"{hz:.0f}", text
    assert f"nr_accesses: {nr}\n" in text
    assert f"({nr * 100 / record.meta.max_nr_accesses:.1f} % of the maximum)" in text
    cell_lo, cell_hi = (int(a, 16) for a in re.search(r"address: 0x([0-9a-f]+)-0x([0-9a-f]+)", text).groups())
    assert start <= cell_lo < a_mid < cell_hi <= end
    assert re.search(r"^time: .* - .*$", text, re.M) and re.search(r"^age: ", text, re.M)


@pytest.mark.slow
def test_wss_percentiles_follow_the_threshold_slider(zpage, zigzag):
    from damo.html_report import WSS_PERCENTILES
    from damo.wss import wss_percentiles

    record = zigzag[0]
    for thres in (1, 15):
        expected = wss_percentiles(record, WSS_PERCENTILES, acc_thres=thres)[0].tolist()
        zpage.evaluate(f"""() => {{ const s = document.getElementById('thres');
            s.value = String({thres} - 1); s.dispatchEvent(new Event('input')); }}""")   # thresholds 1..20
        shown = zpage.evaluate("damoReport.wssPercentiles")
        assert [shown[str(p)] for p in WSS_PERCENTILES] == expected, thres
        assert zpage.inner_text("#thres-value").startswith(f"{thres} ")


@pytest.mark.slow
def test_table_hottest_row_is_the_hottest_range_and_click_moves_the_heatmap(zpage, zigzag):
    record = zigzag[0]
    (_, start, end, s) = expected_hottest(record)
    row = zpage.locator("#range-table tbody tr").first
    assert row.locator("td").nth(2).inner_text() == f"{start:#x}-{end:#x}"
    before = zpage.evaluate("damoReport.view()")
    row.click()
    zpage.wait_for_function(f"damoReport.view().x[1] - damoReport.view().x[0] < {before['x'][1] - before['x'][0]}")
    after = zpage.evaluate("damoReport.view()")
    v0, v1 = zpage.evaluate(f"[damoReport.positionOf({start}), damoReport.positionOf({end})]")
    t = (record.start_ns[s] - record.start_ns.min()) / 1e9
    assert after["y"][0] <= v0 < v1 <= after["y"][1] and after["y"][1] - after["y"][0] < before["y"][1]
    assert after["x"][0] <= t <= after["x"][1]
    # sorting by size puts the largest range first
    zpage.click("#range-table th[data-key=size]")
    sizes = zpage.evaluate("[...document.querySelectorAll('#range-table tbody tr')]"
                           ".map(r => BigInt(r.dataset.end) - BigInt(r.dataset.start)).map(Number)")
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.slow
def test_several_targets_dark_scheme_and_one_printed_page(browser, tmp_path):
    record = make_record(nr_snapshots=30, nr_regions=10, nr_targets=2)
    write_record(record, tmp_path / "two.data")
    assert run_cli("report", "html", "-i", "two.data", "-o", "two.html", cwd=tmp_path).returncode == 0
    page = browser.open(tmp_path / "two.html", color_scheme="dark")
    try:
        assert page.evaluate("damoReport.view().target") == 0
        page.select_option("#target", "1")
        page.wait_for_function("damoReport.view().target === 1")
        bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert _brightness(bg) < 150, bg
        paper = page.evaluate("document.getElementById('heatmap')._fullLayout.paper_bgcolor")
        assert _brightness(paper) < 150, paper
        page.select_option("#axis-mode", "raw")
        page.wait_for_function("damoReport.view().mode === 'raw'")
        span = page.evaluate("damoReport.view().y[1]")
        assert span == int(record.end.max() - record.start.min())
        page.emulate_media(color_scheme="dark", media="print")
        page.wait_for_function("document.getElementById('heatmap')._fullLayout.height < 400")
        overlap = page.evaluate("""() => {
            const svg = document.querySelector('#heatmap .main-svg').getBoundingClientRect();
            return svg.bottom - document.getElementById('ranges').getBoundingClientRect().top; }""")
        assert overlap <= 0, "the printed heatmap runs into the table"
        pdf = page.pdf(format="A4", landscape=True, print_background=True)
        assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
        assert [m for m in page.messages if m[0] in ("error", "pageerror")] == []
    finally:
        page.close()


@pytest.mark.slow
def test_a_redraw_while_another_target_decodes_draws_the_shown_one(browser, tmp_path):
    """Switching the target and the axis mode in one go (the second target still decoding, which
    is asynchronous) once threw "Cannot read properties of undefined" (seen in a CI run)."""
    record = make_record(nr_snapshots=30, nr_regions=10, nr_targets=2)
    write_record(record, tmp_path / "two.data")
    assert run_cli("report", "html", "-i", "two.data", "-o", "two.html", cwd=tmp_path).returncode == 0
    page = browser.open(tmp_path / "two.html")
    try:
        page.wait_for_function("damoReport.ready === true")
        page.evaluate("""() => {
            const target = document.getElementById('target'), mode = document.getElementById('axis-mode');
            target.value = '1'; target.dispatchEvent(new Event('change'));
            mode.value = 'raw'; mode.dispatchEvent(new Event('change'));
            target.value = '0'; target.dispatchEvent(new Event('change'));
            target.value = '1'; target.dispatchEvent(new Event('change')); }""")
        page.wait_for_function("damoReport.view().target === 1 && damoReport.view().mode === 'raw'")
        assert page.evaluate("damoReport.view().y[1]") == int(record.end.max() - record.start.min())
        assert [m for m in page.messages if m[0] in ("error", "pageerror")] == []
    finally:
        page.close()
