// damo report html: the page's behaviour. Data comes from the JSON block written by
// damo/html_report.py; heat grids are deflated uint16 arrays inflated with DecompressionStream.
"use strict";
(function () {
  const marks = { script: performance.now() };
  const DATA = JSON.parse(document.getElementById("damo-data").textContent);
  const OVERVIEW_A = DATA.targets.length ? DATA.targets[0].levels[0].na : 0;
  const AGE_UNKNOWN = 65535;
  // matplotlib's inferno (perceptually uniform, dark to bright): hotter is always brighter
  const INFERNO = [[0, "#000004"], [0.1, "#160b39"], [0.2, "#420a68"], [0.3, "#6a176e"], [0.4, "#932667"],
    [0.5, "#bc3754"], [0.6, "#dd513a"], [0.7, "#f37819"], [0.8, "#fca50a"], [0.9, "#f6d746"], [1, "#fcffa4"]];
  const TYPES = { uint16: Uint16Array, int32: Int32Array, float64: Float64Array, float32: Float32Array };
  const api = { ready: false, allLevels: false, errors: [], marks };
  marks.parsed = performance.now();
  window.damoReport = api;
  const state = { target: 0, mode: "mapped", thres: 0, view: null, shown: null, sort: null };
  const decoded = new Map();   // target index -> {levels: [...], raw, series}

  // --- decoding -------------------------------------------------------------------------------
  async function decode(enc) {
    const bin = atob(enc.b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    const buf = await new Response(stream).arrayBuffer();
    return new TYPES[enc.dtype](buf);
  }
  async function decodeLevel(level) {
    return { nt: level.nt, na: level.na, heat: await decode(level.heat), age: await decode(level.age) };
  }
  async function targetData(i) {
    if (decoded.has(i)) return decoded.get(i);
    const t = DATA.targets[i];
    const d = { levels: [await decodeLevel(t.levels[0])], raw: t.raw_level ? await decodeLevel(t.raw_level) : null,
                times: await decode(t.snapshot_end), nrRegions: await decode(t.nr_regions),
                wss: await decode(t.wss) };
    decoded.set(i, d);
    d.rest = (async () => {
      for (let k = 1; k < t.levels.length; k++) d.levels.push(await decodeLevel(t.levels[k]));
    })();
    return d;
  }

  // --- formatting (damo's units) -----------------------------------------------------------------
  function fmtSize(b) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    while (Math.abs(b) >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return i ? b.toFixed(3) + " " + units[i] : Math.round(b) + " B";
  }
  function fmtTime(s) {
    if (s < 1e-3) return (s * 1e6).toFixed(0) + " us";
    if (s < 1) return (s * 1e3).toFixed(3).replace(/\.?0+$/, "") + " ms";
    if (s < 60) return s.toFixed(3) + " s";
    const m = Math.floor(s / 60);
    return m + " m " + (s - 60 * m).toFixed(3) + " s";
  }
  function fmtHz(hz) { return (Number.isInteger(Math.round(hz * 1000) / 1000) ? hz.toFixed(0) : hz.toFixed(3)) + " Hz"; }
  const hex = (a) => "0x" + BigInt(Math.round(a)).toString(16);
  const hexBig = (a) => "0x" + BigInt(a).toString(16);
  const target = () => DATA.targets[state.target];
  const axis = () => (state.mode === "raw" ? target().raw_axis : target().axis);
  const axisLength = (ax) => ax.vstart[ax.vstart.length - 1] + ax.vlen[ax.vlen.length - 1];

  // axis position -> address, and back (the areas are laid end to end on the axis)
  function areaAt(ax, v) {
    let i = 0;
    while (i + 1 < ax.vstart.length && ax.vstart[i + 1] <= v) i++;
    return i;
  }
  function addressOf(ax, v) {
    const i = areaAt(ax, v);
    const bytes = ax.end[i] - ax.start[i];
    const f = Math.min(Math.max((v - ax.vstart[i]) / ax.vlen[i], 0), 1);
    return ax.start[i] + f * bytes;
  }
  function positionOf(ax, addr) {
    for (let i = 0; i < ax.start.length; i++) {
      if (addr < ax.end[i] || i === ax.start.length - 1) {
        const f = Math.min(Math.max((addr - ax.start[i]) / (ax.end[i] - ax.start[i]), 0), 1);
        return ax.vstart[i] + f * ax.vlen[i];
      }
    }
    return 0;
  }
  // the addresses of an axis interval: one [start, end) per area it touches
  function addressRanges(ax, v0, v1) {
    const out = [];
    for (let i = 0; i < ax.start.length; i++) {
      const a = Math.max(v0, ax.vstart[i]), b = Math.min(v1, ax.vstart[i] + ax.vlen[i]);
      if (b > a) out.push([addressOf(ax, a), i === areaAt(ax, b) ? addressOf(ax, b) : ax.end[i]]);
    }
    return out;
  }

  // --- theme -------------------------------------------------------------------------------------
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  function baseLayout(extra) {
    return Object.assign({ paper_bgcolor: css("--bg"), plot_bgcolor: css("--bg"),
      font: { color: css("--fg"), size: 11 }, margin: { l: 70, r: 10, t: 8, b: 36 }, showlegend: false },
      extra);
  }
  const axisStyle = (title) => ({ title: { text: title }, gridcolor: css("--line"), zerolinecolor: css("--line") });
  const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["toImage", "lasso2d", "select2d"] };

  // --- heatmap -------------------------------------------------------------------------------------
  function fullView() {
    const t = target();
    return { x: [0, (t.t1 - t.t0) / 1e9], y: [0, axisLength(axis())] };
  }
  function levelFor(view, d) {
    if (state.mode === "raw" && d.raw) return d.raw;
    const full = fullView();
    const f = Math.min((view.x[1] - view.x[0]) / (full.x[1] - full.x[0]), (view.y[1] - view.y[0]) / (full.y[1] - full.y[0]));
    const k = Math.max(0, Math.min(d.levels.length - 1, Math.ceil(Math.log2(1 / f) - 1e-9)));
    return d.levels[k];
  }
  function addressTicks(ax, y0, y1) {
    const vals = [], text = [];
    for (let i = 0; i <= 6; i++) {
      const v = y0 + (y1 - y0) * i / 6;
      vals.push(v);
      text.push(hex(addressOf(ax, v)));
    }
    return { tickvals: vals, ticktext: text };
  }
  function drawHeatmap() {
    const d = decoded.get(state.target);
    if (!d) return Promise.resolve();     // nothing decoded yet: the first showTarget draws
    const t = target();
    const ax = axis();
    const view = state.view || fullView();
    const full = fullView();
    const lv = levelFor(view, d);
    const dt = (full.x[1] - full.x[0]) / lv.nt, dv = full.y[1] / lv.na;
    const c0 = Math.max(0, Math.floor(view.x[0] / dt) - 1), c1 = Math.min(lv.nt, Math.ceil(view.x[1] / dt) + 1);
    const r0 = Math.max(0, Math.floor(view.y[0] / dv) - 1), r1 = Math.min(lv.na, Math.ceil(view.y[1] / dv) + 1);
    const z = [];
    const scale = t.heat_scale;
    for (let r = r0; r < r1; r++) {
      const row = new Array(c1 - c0);
      const base = r * lv.nt;
      for (let c = c0; c < c1; c++) row[c - c0] = lv.heat[base + c] / scale;
      z.push(row);
    }
    state.shown = { lv, c0, r0, dt, dv, level: d.levels.indexOf(lv) };
    const trace = { type: "heatmap", z, x0: (c0 + 0.5) * dt, dx: dt, y0: (r0 + 0.5) * dv, dy: dv, zmin: 0,
      zmax: DATA.max_nr_accesses, colorscale: INFERNO, hoverinfo: "none", zsmooth: false,
      colorbar: { title: { text: "accesses per<br>aggregation" }, thickness: 12 } };
    const layout = baseLayout({ dragmode: "zoom", margin: { l: 110, r: 10, t: 8, b: 36 },
      xaxis: Object.assign(axisStyle("time (s, from the record start)"), { range: view.x.slice() }),
      yaxis: Object.assign(axisStyle(state.mode === "raw" ? "address (raw)" : "address (mapped areas, gaps collapsed)"),
        { range: view.y.slice(), tickmode: "array" }, addressTicks(ax, view.y[0], view.y[1])) });
    if (state.mode === "mapped") {
      layout.shapes = t.axis.vstart.slice(1).map((v) => ({ type: "line", xref: "paper", x0: 0, x1: 1, y0: v, y1: v,
        line: { color: "rgba(128,128,128,0.6)", width: 1, dash: "dot" } }));
    }
    document.getElementById("heat-info").textContent =
      `(level ${state.shown.level} of ${d.levels.length - 1}: ${fmtTime(dt)} x ${fmtSize(dv * bytesPerUnit(ax, view))} cells)`;
    return Plotly.react("heatmap", [trace], layout, CONFIG);
  }
  function bytesPerUnit(ax, view) {
    const i = areaAt(ax, (view.y[0] + view.y[1]) / 2);
    return (ax.end[i] - ax.start[i]) / ax.vlen[i];
  }
  function cellText(row, col) {
    const s = state.shown, t = target(), ax = axis();
    const a = s.r0 + row, c = s.c0 + col;
    if (a < 0 || c < 0 || a >= s.lv.na || c >= s.lv.nt) return null;
    const heat = s.lv.heat[a * s.lv.nt + c] / t.heat_scale;
    const ageCells = s.lv.age[a * s.lv.nt + c];
    const lines = [`time: ${fmtTime(c * s.dt)} - ${fmtTime((c + 1) * s.dt)}`];
    for (const [lo, hi] of addressRanges(ax, a * s.dv, (a + 1) * s.dv)) {
      lines.push(`address: ${hex(lo)}-${hex(hi)} (${fmtSize(hi - lo)})`);
    }
    lines.push(`access rate: ${DATA.aggr_us ? fmtHz(heat * 1e6 / DATA.aggr_us) : heat.toFixed(3) + " per aggregation"}` +
               ` (${(heat * 100 / DATA.max_nr_accesses).toFixed(1)} % of the maximum)`);
    lines.push(`nr_accesses: ${(Math.round(heat * 1000) / 1000)}`);
    if (ageCells !== AGE_UNKNOWN) {
      lines.push(`age: ${DATA.aggr_us ? fmtTime(ageCells * DATA.aggr_us / 1e6) : ageCells + " aggregations"}`);
    }
    return lines.join("\n");
  }
  function showTooltip(ev) {
    const p = ev.points && ev.points[0];
    const tip = document.getElementById("tooltip");
    if (!p || !Array.isArray(p.pointIndex)) { tip.hidden = true; return; }
    const text = cellText(p.pointIndex[0], p.pointIndex[1]);
    if (!text) { tip.hidden = true; return; }
    tip.textContent = text;
    tip.hidden = false;
    const e = ev.event || {};
    tip.style.left = Math.min((e.clientX || 0) + 14, window.innerWidth - tip.offsetWidth - 4) + "px";
    tip.style.top = Math.min((e.clientY || 0) + 14, window.innerHeight - tip.offsetHeight - 4) + "px";
  }
  function onRelayout(ev) {
    if (!ev) return;
    if (ev["xaxis.autorange"] || ev["yaxis.autorange"]) { state.view = null; drawHeatmap(); return; }
    const view = state.view || fullView();
    const x = ev["xaxis.range[0]"] !== undefined ? [ev["xaxis.range[0]"], ev["xaxis.range[1]"]] : (ev["xaxis.range"] || view.x);
    const y = ev["yaxis.range[0]"] !== undefined ? [ev["yaxis.range[0]"], ev["yaxis.range[1]"]] : (ev["yaxis.range"] || view.y);
    if (x[0] === view.x[0] && x[1] === view.x[1] && y[0] === view.y[0] && y[1] === view.y[1]) return;
    setView({ x: x.slice(), y: y.slice() });
  }
  function setView(view) {
    state.view = view;
    return drawHeatmap();
  }

  // --- side plots ------------------------------------------------------------------------------------
  function drawWss() {
    const d = decoded.get(state.target), t = target();
    const n = d.times.length, k = state.thres;
    const series = Array.from(d.wss.subarray(k * n, (k + 1) * n));
    document.getElementById("thres-value").textContent = `${t.wss_thresholds[k]}` +
      (DATA.aggr_us ? ` (${fmtHz(t.wss_thresholds[k] * 1e6 / DATA.aggr_us)})` : "");
    Plotly.react("wss", [{ type: "scatter", mode: "lines", x: Array.from(d.times), y: series,
      line: { color: css("--accent"), width: 1 }, hovertemplate: "%{x:.3f} s: %{y:.4s}B<extra></extra>" }],
      baseLayout({ xaxis: axisStyle("time (s)"), yaxis: Object.assign(axisStyle("bytes"), { tickformat: ".3s" }) }), CONFIG);
    // damo's percentiles: skip the first snapshots, sort, take element int(p / 100 * n)
    const sorted = series.slice(DATA.exclude_samples).sort((a, b) => a - b);
    const ps = Object.keys(t.wss_percentiles).map(Number);
    const vals = ps.map((p) => sorted.length ? sorted[Math.min(Math.floor(p / 100 * sorted.length), sorted.length - 1)] : 0);
    Plotly.react("wss-pct", [{ type: "scatter", mode: "lines+markers", x: ps, y: vals,
      line: { color: css("--accent") }, hovertemplate: "p%{x}: %{y:.4s}B<extra></extra>" }],
      baseLayout({ xaxis: axisStyle("percentile"), yaxis: Object.assign(axisStyle("bytes"), { tickformat: ".3s" }) }), CONFIG);
    api.wssPercentiles = Object.fromEntries(ps.map((p, i) => [p, vals[i]]));
  }
  function drawNrRegions() {
    const d = decoded.get(state.target);
    Plotly.react("nr-regions", [{ type: "scatter", mode: "lines", x: Array.from(d.times), y: Array.from(d.nrRegions),
      line: { color: css("--fg"), width: 1 }, hovertemplate: "%{x:.3f} s: %{y} regions<extra></extra>" }],
      baseLayout({ xaxis: axisStyle("time (s)"), yaxis: axisStyle("regions") }), CONFIG);
  }

  // --- table ---------------------------------------------------------------------------------------------
  function tableRows() {
    const t = target();
    const rows = [];
    for (const [kind, list] of [["hottest", t.hottest], ["coldest", t.coldest]]) {
      list.forEach((r, i) => rows.push({ kind, rank: i + 1, start: r.start, end: r.end, size: r.end - r.start,
        hz: DATA.aggr_us ? r.nr_accesses * 1e6 / DATA.aggr_us : r.nr_accesses,
        percent: r.nr_accesses * 100 / DATA.max_nr_accesses, age: r.age,
        time: (r.snapshot_start - t.t0) / 1e9, timeEnd: (r.snapshot_end - t.t0) / 1e9 }));
    }
    if (state.sort) {
      const { key, dir } = state.sort;
      rows.sort((a, b) => (a[key] < b[key] ? -dir : a[key] > b[key] ? dir : 0));
    }
    return rows;
  }
  function drawTable() {
    const body = document.querySelector("#range-table tbody");
    body.textContent = "";
    for (const r of tableRows()) {
      const tr = document.createElement("tr");
      tr.dataset.start = String(r.start);
      tr.dataset.end = String(r.end);
      const cells = [r.kind, r.rank, `${hexBig(r.start)}-${hexBig(r.end)}`, fmtSize(r.size),
        DATA.aggr_us ? fmtHz(r.hz) : String(r.hz), r.percent.toFixed(1), r.age < 0 ? "unknown" :
        (DATA.aggr_us ? fmtTime(r.age * DATA.aggr_us / 1e6) : String(r.age)), fmtTime(r.time)];
      for (const c of cells) {
        const td = document.createElement("td");
        td.textContent = c;
        tr.appendChild(td);
      }
      if (r.kind === "hottest") tr.firstChild.className = "hot";
      tr.addEventListener("click", () => { body.querySelectorAll(".selected").forEach((x) => x.classList.remove("selected"));
        tr.classList.add("selected"); jumpTo(r); });
      body.appendChild(tr);
    }
    document.querySelectorAll("#range-table th").forEach((th) => {
      th.setAttribute("aria-sort", state.sort && state.sort.key === th.dataset.key ?
        (state.sort.dir > 0 ? "ascending" : "descending") : "none");
    });
  }
  function jumpTo(r) {
    const full = fullView(), ax = axis();
    const v0 = positionOf(ax, r.start), v1 = positionOf(ax, r.end);
    const padV = Math.max((v1 - v0) * 0.5, full.y[1] / (OVERVIEW_A * 16) * 4);
    const width = Math.max((full.x[1] - full.x[0]) / 16, (r.timeEnd - r.time) * 8);
    const mid = (r.time + r.timeEnd) / 2;
    return setView({ x: [Math.max(0, mid - width / 2), Math.min(full.x[1], mid + width / 2)],
                     y: [Math.max(0, v0 - padV), Math.min(full.y[1], v1 + padV)] });
  }

  // --- the whole page ---------------------------------------------------------------------------------
  let showing = 0;              // the latest target asked for (a quicker earlier one must not win)
  async function showTarget(i) {
    // The target becomes the page's only once its data is decoded: until then every draw (a
    // colour-scheme change, the axis mode) keeps drawing the previous one.
    const ticket = ++showing;
    const d = await targetData(i);
    if (ticket !== showing) return;
    state.target = i;
    state.view = null;
    const t = target();
    const slider = document.getElementById("thres");
    slider.max = String(t.wss_thresholds.length - 1);
    state.thres = Math.max(0, t.wss_thresholds.indexOf(DATA.default_acc_thres));
    slider.value = String(state.thres);
    marks.decoded = performance.now();
    await drawHeatmap();
    marks.heatmap = performance.now();
    drawWss();
    drawNrRegions();
    drawTable();
    if (!api.ready) api.readyMs = performance.now();
    api.ready = true;
    document.getElementById("status").textContent = "";
    await d.rest;
    api.allLevels = true;
    if (state.target === i) await drawHeatmap();
  }
  // Printing: A4 landscape less margins is about 1070 CSS px wide; the heights are those of the
  // print style sheet. Plotly.relayout redraws at once (Plots.resize would wait for a timer and
  // miss the print).
  const PRINT_WIDTH_PX = 1070, PRINT_HEIGHTS_PX = { heatmap: 330, other: 132 };
  let printing = false;
  function fitForPrint(on) {
    if (!api.ready) return;
    if (on) {
      if (printing) return;
      printing = true;
      const page = document.documentElement.clientWidth;
      document.querySelectorAll(".plot").forEach((gd) => Plotly.relayout(gd, {
        width: Math.round(gd.clientWidth * PRINT_WIDTH_PX / page),
        height: gd.id === "heatmap" ? PRINT_HEIGHTS_PX.heatmap : PRINT_HEIGHTS_PX.other }));
    } else if (printing && !window.matchMedia("print").matches) {   // else the media change comes later
      printing = false;
      document.querySelectorAll(".plot").forEach((gd) => Plotly.relayout(gd, { width: null, height: null, autosize: true }));
    }
  }
  function redrawAll() {
    if (!decoded.has(state.target)) return;
    drawHeatmap(); drawWss(); drawNrRegions();
  }
  function init() {
    document.getElementById("title").textContent = "damo report: " + DATA.title;
    document.getElementById("excluded").textContent = DATA.exclude_samples;
    const meta = document.querySelector("#meta-table tbody");
    for (const [k, v] of DATA.metadata) {
      const tr = meta.insertRow();
      tr.insertCell().textContent = k;
      tr.insertCell().textContent = v;
    }
    const sel = document.getElementById("target");
    DATA.targets.forEach((t, i) => sel.add(new Option(`${t.target_id}`, String(i))));
    sel.disabled = DATA.targets.length < 2;
    sel.addEventListener("change", () => showTarget(Number(sel.value)));
    document.getElementById("axis-mode").addEventListener("change", (e) => {
      state.mode = e.target.value; state.view = null; drawHeatmap(); });
    document.getElementById("reset").addEventListener("click", () => setView(null));
    document.getElementById("thres").addEventListener("input", (e) => { state.thres = Number(e.target.value); drawWss(); });
    document.querySelectorAll("#range-table th").forEach((th) => th.addEventListener("click", () => {
      const key = th.dataset.key;
      state.sort = { key, dir: state.sort && state.sort.key === key ? -state.sort.dir : (key === "kind" ? 1 : -1) };
      drawTable();
    }));
    const heat = document.getElementById("heatmap");
    showTarget(0).then(() => {
      heat.on("plotly_relayout", onRelayout);
      heat.on("plotly_hover", showTooltip);
      heat.on("plotly_unhover", () => { document.getElementById("tooltip").hidden = true; });
    }).catch((err) => { api.errors.push(String(err)); document.getElementById("status").textContent = String(err); throw err; });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawAll);
    window.addEventListener("beforeprint", () => fitForPrint(true));
    window.addEventListener("afterprint", () => fitForPrint(false));
    window.matchMedia("print").addEventListener("change", (e) => fitForPrint(e.matches));
  }

  // --- for tests and scripting -----------------------------------------------------------------------
  api.view = () => {
    const s = state.shown, v = state.view || fullView();
    return { x: v.x.slice(), y: v.y.slice(), level: s.level, cellSeconds: s.dt, cellBytes: s.dv * bytesPerUnit(axis(), v),
             levelCells: [s.lv.nt, s.lv.na], target: target().target_id, mode: state.mode };
  };
  api.positionOf = (addr) => positionOf(axis(), addr);
  // page coordinates (CSS pixels) of a time (s from the record start) and an address
  api.pixelOf = (sec, addr) => {
    const gd = document.getElementById("heatmap"), fl = gd._fullLayout, box = gd.getBoundingClientRect();
    return { x: box.left + fl.xaxis._offset + fl.xaxis.l2p(sec), y: box.top + fl.yaxis._offset + fl.yaxis.l2p(positionOf(axis(), addr)) };
  };
  api.plotBox = () => {
    const gd = document.getElementById("heatmap"), fl = gd._fullLayout, box = gd.getBoundingClientRect();
    return { x: box.left + fl.xaxis._offset, y: box.top + fl.yaxis._offset, width: fl.xaxis._length, height: fl.yaxis._length };
  };
  api.setView = (x, y) => setView({ x, y });
  api.selectTarget = (i) => showTarget(i);
  init();
})();
