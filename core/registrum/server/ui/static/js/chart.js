// Metric charts over the vendored uPlot (the global `uPlot`): zoom, step or time axis, log
// scale, smoothing, several series overlaid.
//
//   const chart = await lineChart(container, {series: [{label, x, y, t, start, color}]});
//   chart.update({xMode: "relative", log: true, smoothing: 0.6});  // resolves once redrawn
//
// x: steps; y: values (numbers, or the API's "NaN"/"Infinity" markers: non-finite values
// are drawn as gaps); t: wall times in epoch seconds (optional; without them only the step
// axis is offered); start: the epoch second relative time counts from (default t[0]).
// Drag across a chart to zoom in, double-click to zoom out.
//
// What a chart drew is kept on its container, for tests and for anyone curious:
//   container.__series       the series as received (label, x, y, t, and any other field)
//   container.__chart        the Chart; its `.plot` is the uPlot instance
//   data-points              how many points the series hold together
//   data-drawn               "true" once the current settings are drawn
//   data-x-mode, data-log, data-smoothing   the settings drawn

import { h, num } from "./dom.js";

// Colors of series (and of runs, on the compare page), in order.
export const PALETTE = ["#2f5bd3", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8",
  "#0c8599", "#b08900", "#5c677d", "#d6336c", "#37b24d"];

export const color = (i) => PALETTE[i % PALETTE.length];

export const X_MODES = { step: "Step", wall: "Wall time", relative: "Relative time" };

const DEFAULTS = { xMode: "step", log: false, smoothing: 0 };
const live = new Set(); // charts whose uPlot holds window listeners until destroyed

// Draws a line chart into `container`; resolves to the Chart once it is on the canvas.
export function lineChart(container, options) {
  const chart = new Chart(container, options);
  return chart.draw();
}

export class Chart {
  constructor(container, { series, xLabel = "step", height = 240, ...settings }) {
    sweep();
    this.container = container;
    this.height = height;
    this.xLabel = xLabel;
    this.series = series.map((s, i) => ({
      label: s.label,
      color: s.color || color(i),
      x: s.x,
      y: s.y.map(num),
      t: s.t || null,
      start: s.start ?? (s.t && s.t.length ? s.t[0] : 0),
    }));
    this.hasTime = this.series.every((s) => s.t && s.t.length === s.x.length);
    this.settings = { ...DEFAULTS, ...settings };
    if (!this.hasTime) this.settings.xMode = "step";
    this.plot = null;
    container.classList.add("chart");
    container.__chart = this;
    container.__series = series.map((s) => ({ ...s, t: s.t || null }));
    container.dataset.points = String(this.series.reduce((n, s) => n + s.x.length, 0));
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(container);
    live.add(this);
  }

  // New points for the same series (a live run): the lines are redrawn from the new data,
  // keeping the chart, its settings and its size. Resolves once drawn.
  replace(series) {
    const next = series.map((s, i) => ({
      label: s.label,
      color: s.color || this.series[i]?.color || color(i),
      x: s.x,
      y: s.y.map(num),
      t: s.t || null,
      start: s.start ?? (s.t && s.t.length ? s.t[0] : 0),
    }));
    this.container.__series = series.map((s) => ({ ...s, t: s.t || null }));
    this.container.dataset.points = String(next.reduce((n, s) => n + s.x.length, 0));
    const sameLines = this.plot && next.length === this.series.length;
    this.series = next;
    if (!sameLines) return this.draw();
    const layers = this.layers();
    this.data = align(layers);
    this.plot.setData(this.data);
    return Promise.resolve(this);
  }

  // Redraws with new settings ({xMode, log, smoothing}); resolves once drawn.
  update(settings) {
    this.settings = { ...this.settings, ...settings };
    if (!this.hasTime) this.settings.xMode = "step";
    return this.draw();
  }

  draw() {
    const { container, settings } = this;
    if (this.plot) this.plot.destroy();
    container.dataset.drawn = "false";
    container.dataset.xMode = settings.xMode;
    container.dataset.log = String(settings.log);
    container.dataset.smoothing = String(settings.smoothing);
    const layers = this.layers();
    const data = align(layers);
    this.data = data;
    return new Promise((resolve) => {
      const opts = this.options(layers, () => {
        container.dataset.drawn = "true";
        resolve(this);
      });
      this.plot = new uPlot(opts, data, container);
      hideRawFromLegend(this.plot, layers);
      if (!layers.some((l) => l.ys.some((y) => y !== null))) {
        this.plot.root.append(h("p", { class: "empty chart-note" }, settings.log
          ? "No positive finite values to draw on a log scale."
          : "No finite values to draw."));
      }
    });
  }

  // The lines to draw: each series' (x, y) in the current settings, and when smoothing
  // both the faint raw line and the smoothed one.
  layers() {
    const { xMode, log, smoothing } = this.settings;
    const out = [];
    for (const s of this.series) {
      let [xs, ys] = xValues(s, xMode);
      ys = ys.map((y) => (Number.isFinite(y) && !(log && y <= 0) ? y : null));
      if (smoothing > 0) {
        out.push({ label: `${s.label} (raw)`, color: s.color, raw: true, xs, ys });
        out.push({ label: s.label, color: s.color, xs, ys: ema(ys, smoothing) });
      } else {
        out.push({ label: s.label, color: s.color, xs, ys });
      }
    }
    return out;
  }

  options(layers, drawn) {
    const { xMode, log } = this.settings;
    let first = true;
    return {
      width: this.width(),
      height: this.height,
      scales: {
        x: { time: xMode === "wall", range: xRange(this.data[0], xMode) },
        y: log ? { distr: 3, log: 10 } : { range: yRange },
      },
      series: [
        { label: X_MODES[xMode] === "Step" ? this.xLabel : X_MODES[xMode], value: xLegend(xMode) },
        ...layers.map((l) => ({
          label: l.label,
          stroke: l.raw ? fade(l.color) : l.color,
          width: l.raw ? 1 : 1.5,
          spanGaps: false,
          // At the cursor, the value there; elsewhere the last value, so the legend says
          // something before the mouse comes.
          value: (u, v, sidx, idx) => {
            const shown = idx === null || idx === undefined ? lastValue(u.data[sidx]) : v;
            return shown === null || shown === undefined ? "–" : fmtY(shown);
          },
        })),
      ],
      axes: [
        { values: xAxis(xMode, this.data[0]) },
        { size: axisSize, values: log ? (u, splits) => splits.map(fmtY) : yTicks },
      ],
      cursor: { drag: { x: true, y: false, setScale: true } },
      legend: { live: true },
      hooks: {
        draw: [() => {
          if (first) {
            first = false;
            drawn();
          }
        }],
      },
    };
  }

  width() {
    return Math.max(240, Math.floor(this.container.clientWidth || 600));
  }

  resize() {
    if (!this.plot || !this.container.isConnected) return;
    const width = this.width();
    if (Math.abs(width - this.plot.width) > 1) this.plot.setSize({ width, height: this.height });
  }

  destroy() {
    this.observer.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
    live.delete(this);
  }
}

// A uPlot made elsewhere (minichart.js): destroyed like these charts once its page is gone.
export function track(plot, container) {
  sweep();
  const entry = { container, destroy: () => { plot.destroy(); live.delete(entry); } };
  live.add(entry);
  return plot;
}

// Charts whose page is gone: their uPlot still listens on window until destroyed.
function sweep() {
  for (const chart of live) if (!chart.container.isConnected) chart.destroy();
}

function xValues(s, xMode) {
  if (xMode === "step") return [s.x, s.y];
  const xs = xMode === "wall" ? s.t.slice() : s.t.map((t) => t - s.start);
  return ascending(xs) ? [xs, s.y] : sortBy(xs, s.y);
}

function ascending(xs) {
  for (let i = 1; i < xs.length; i++) if (xs[i] < xs[i - 1]) return false;
  return true;
}

function sortBy(xs, ys) {
  const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b] || a - b);
  return [order.map((i) => xs[i]), order.map((i) => ys[i])];
}

// One x array shared by every line (uPlot's aligned data). Lines on the same x values are
// simply stacked; otherwise uPlot.join makes the union, where a line has no point it holds
// `undefined` (spanned over), while its own gaps (null) stay gaps.
function align(layers) {
  if (layers.length === 1 || layers.every((l) => l.xs === layers[0].xs)) {
    return [layers[0] ? layers[0].xs : [], ...layers.map((l) => l.ys)];
  }
  return uPlot.join(layers.map((l) => [l.xs, l.ys]));
}

// TensorBoard's smoothing: an exponential moving average, debiased so that the start is not
// pulled towards zero. Gaps stay gaps and do not reset the average.
export function ema(ys, weight) {
  const out = new Array(ys.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (y === null || y === undefined) {
      out[i] = y;
      continue;
    }
    last = last * weight + (1 - weight) * y;
    n += 1;
    out[i] = last / (1 - weight ** n);
  }
  return out;
}

function fade(hex) {
  return `${hex}40`; // a quarter opaque
}

// The raw lines behind smoothed ones are left out of the legend.
function hideRawFromLegend(plot, layers) {
  const rows = plot.root.querySelectorAll(".u-legend .u-series");
  layers.forEach((l, i) => {
    if (l.raw && rows[i + 1]) rows[i + 1].style.display = "none";
  });
}

function lastValue(ys) {
  for (let i = (ys || []).length - 1; i >= 0; i--) if (ys[i] !== null && ys[i] !== undefined) return ys[i];
  return null;
}

// Tick labels with as many decimals as the distance between ticks needs (0.0095, 0.01,
// 0.0105 rather than 0.01 three times), in exponent form for very small or large values.
export function yTicks(u, splits, axisIdx, space, incr) {
  const step = incr || (splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1);
  const largest = Math.max(...splits.map((v) => Math.abs(v)));
  if (largest !== 0 && (largest < 1e-3 || largest >= 1e6)) {
    const digits = Math.max(1, Math.min(8, Math.ceil(Math.log10(largest / step) - 1e-9)));
    return splits.map((v) => (v === 0 ? "0" : v.toExponential(digits)));
  }
  // As many decimals as the spacing itself has: 0.25 apart needs two, 0.0002 apart four.
  let decimals = 0;
  while (decimals < 12 && Math.abs(step * 10 ** decimals - Math.round(step * 10 ** decimals)) > 1e-6) decimals += 1;
  return splits.map((v) => v.toFixed(decimals));
}

// The data's range with a little room; values that are all between 0 and 1 (accuracies,
// probabilities) stay inside [0, 1] instead of running on to 1.5.
export function yRange(u, min, max) {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (min === max) {
    const pad = Math.abs(min) * 0.05 || 1;
    return [min - pad, max + pad];
  }
  const pad = (max - min) * 0.05;
  let low = min - pad;
  let high = max + pad;
  if (min >= 0 && max <= 1) {
    low = Math.max(0, low);
    high = Math.min(1, high);
  }
  return [low, high];
}

export function fmtY(v) {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return v.toExponential(3);
  return String(+v.toPrecision(5));
}

// Seconds as "1h 2m", "3m 20s", "12.5s", "0.004s"; `incr`, the distance between axis ticks,
// sets how many decimals tell them apart.
export function fmtElapsed(seconds, incr = null) {
  const sign = seconds < 0 ? "-" : "";
  let s = Math.abs(seconds);
  if (s < 60) {
    if (incr) return `${sign}${s.toFixed(Math.max(0, Math.min(6, Math.ceil(-Math.log10(incr) - 1e-9))))}s`;
    return `${sign}${+s.toFixed(s < 1 ? 4 : s < 10 ? 2 : 1)}s`;
  }
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  s = Math.round(s % 60);
  return hours ? `${sign}${hours}h ${minutes}m` : `${sign}${minutes}m ${s}s`;
}

// A single x value gets a step or a second either side (uPlot would stretch a time axis over
// years), a wall-time span too short for uPlot's millisecond ticks is widened to 5 ms; otherwise
// the data's own range.
function xRange(xs, xMode) {
  const first = xs[0];
  const last = xs[xs.length - 1];
  const single = xs.length > 0 && first === last;
  const short = xMode === "wall" && last - first < 0.005;
  return (u, min, max) => {
    if (single) return [first - 1, first + 1];
    if (short) return [first, first + 0.005];
    return [min, max];
  };
}

// Integer steps get integer ticks only; decimal steps (an import from Neptune) get every tick.
function xAxis(xMode, xs) {
  if (xMode === "relative") return (u, splits, axis, space, incr) => splits.map((v) => fmtElapsed(v, incr));
  const decimal = xs.some((x) => !Number.isInteger(x));
  if (xMode === "step") return (u, splits) => splits.map((v) => (decimal || Number.isInteger(v) ? v.toLocaleString("en-US") : ""));
  return undefined; // uPlot's own date ticks
}

// The x value at the cursor, else the last one (what the series' last values are at).
function xLegend(xMode) {
  const text = xMode === "relative" ? fmtElapsed
    : xMode === "wall" ? (v) => new Date(v * 1000).toLocaleString() : String;
  return (u, v, sidx, idx) => {
    const shown = idx === null || idx === undefined ? lastValue(u.data[0]) : v;
    return shown === null || shown === undefined ? "–" : text(shown);
  };
}

// Wide enough for the longest tick label of the y axis.
function axisSize(self, values, axisIdx, cycleNum) {
  const axis = self.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  let size = axis.ticks.size + axis.gap;
  const longest = (values || []).reduce((a, v) => (String(v).length > a.length ? String(v) : a), "");
  if (longest) {
    self.ctx.font = axis.font[0];
    size += self.ctx.measureText(longest).width / devicePixelRatio;
  }
  return Math.ceil(size) + 4;
}

// The settings every chart of a page shares: x axis, log scale, smoothing. `onChange`
// receives the new settings (after the slider settles into an animation frame).
export function chartControls(settings, onChange, { time = true } = {}) {
  const current = { ...DEFAULTS, ...settings };
  let pending = false;
  const changed = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      onChange({ ...current });
    });
  };
  const xSelect = h("select", { id: "x-mode", onchange: (e) => {
    current.xMode = e.target.value;
    changed();
  } }, Object.entries(X_MODES).map(([value, label]) =>
    h("option", { value, selected: value === current.xMode, disabled: !time && value !== "step" }, label)));
  const logBox = h("input", { type: "checkbox", id: "log-scale", checked: current.log, onchange: (e) => {
    current.log = e.target.checked;
    changed();
  } });
  const shown = h("output", { for: "smoothing", class: "mono" }, current.smoothing.toFixed(2));
  const slider = h("input", { type: "range", id: "smoothing", min: 0, max: 0.99, step: 0.01,
    value: current.smoothing, oninput: (e) => {
      current.smoothing = Number(e.target.value);
      shown.textContent = current.smoothing.toFixed(2);
      changed();
    } });
  return h("div", { class: "toolbar chart-controls" },
    h("label", {}, "X axis ", xSelect),
    h("label", {}, logBox, " Log scale"),
    h("label", { title: "Exponential moving average, as in TensorBoard; 0 is off" }, "Smoothing ", slider, " ", shown),
    h("span", { class: "muted" }, "Drag across a chart to zoom in, double-click to zoom out."));
}

// Chart settings from the address (x=relative&log=1&smooth=0.6) and back.
export function settingsFromQuery(query) {
  const xMode = query.get("x");
  const smoothing = Number(query.get("smooth"));
  return {
    xMode: X_MODES[xMode] ? xMode : "step",
    log: query.get("log") === "1",
    smoothing: Number.isFinite(smoothing) && smoothing > 0 && smoothing < 1 ? smoothing : 0,
  };
}

// The address's query (a URLSearchParams) with these chart settings, as a plain object.
export function settingsToQuery(settings, query = new URLSearchParams()) {
  const out = Object.fromEntries(query);
  delete out.x;
  delete out.log;
  delete out.smooth;
  if (settings.xMode !== "step") out.x = settings.xMode;
  if (settings.log) out.log = "1";
  if (settings.smoothing > 0) out.smooth = String(settings.smoothing);
  return out;
}

// How many points to ask the server for, for a chart this many pixels wide: the server keeps
// each bucket's minimum and maximum, so two points a pixel show every spike.
export function pointsFor(width) {
  return Math.min(5000, Math.max(400, 2 * Math.round(width || 600)));
}
