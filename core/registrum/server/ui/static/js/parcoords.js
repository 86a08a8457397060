// A parallel-coordinates plot in SVG: one axis per param that varies across runs, then the
// objective metric; each run a line colored by its objective. Hovering a line shows the run,
// clicking it opens the run's page.
//
//   parallelCoordinates(container, {runs: [{id, label, params, metrics}], objective: "loss"})
//
// `metrics` maps a key to its summary (`last` is plotted). The container records what it
// drew: `data-lines` (runs drawn), `data-axes` (the axes' names, comma-separated).

import { fmtValue, h, num, route } from "./dom.js";

const HEIGHT = 380;
const MARGIN = { top: 40, right: 90, bottom: 24, left: 70 };
const MAX_CATEGORIES = 24;
// Colors from low to high objective (plasma, without its pale yellow end).
const STOPS = ["#0d0887", "#5b02a3", "#9a179b", "#cb4678", "#eb7852", "#f9a242"];

// The axes worth drawing: params that differ between runs, numeric or with few categories.
export function paramAxes(runs) {
  const keys = new Set(runs.flatMap((r) => Object.keys(r.params || {})));
  const axes = [];
  for (const key of [...keys].sort()) {
    const values = runs.map((r) => (r.params || {})[key]).filter((v) => v !== undefined && v !== null);
    if (values.length < 2) continue;
    const distinct = new Set(values.map((v) => JSON.stringify(v)));
    if (distinct.size < 2) continue;
    if (values.every((v) => typeof v === "number")) {
      axes.push(numericAxis(key, key, values));
    } else if (distinct.size <= MAX_CATEGORIES) {
      axes.push(categoryAxis(key, values.map(fmtValue)));
    }
  }
  return axes;
}

// How many runs carry a numeric param: the compare page draws the plot when two do.
export function numericParamRuns(runs) {
  return runs.filter((r) => Object.values(r.params || {}).some((v) => typeof v === "number")).length;
}

function numericAxis(key, name, values) {
  let min = Math.min(...values);
  let max = Math.max(...values);
  const log = min > 0 && max / min >= 100;
  if (min === max) {
    min -= 1;
    max += 1;
  }
  const f = log ? Math.log10 : (x) => x;
  const lo = f(min);
  const hi = f(max);
  return {
    key, name, kind: "number", log,
    pos: (v) => {
      const x = num(v);
      return Number.isFinite(x) && (!log || x > 0) ? (f(x) - lo) / (hi - lo) : null;
    },
    ticks: log ? logTicks(min, max) : linearTicks(min, max),
  };
}

function categoryAxis(key, labels) {
  const categories = [...new Set(labels)].sort();
  const n = categories.length;
  const at = (label) => (n === 1 ? 0.5 : categories.indexOf(label) / (n - 1));
  return {
    key, name: key, kind: "category", log: false,
    pos: (v) => (v === undefined || v === null ? null : at(fmtValue(v))),
    ticks: categories.map((c) => [at(c), c]),
  };
}

// A tick label: three significant digits, exponents only where JavaScript writes them.
const tick = (v) => String(+v.toPrecision(3));

function linearTicks(min, max) {
  return [0, 0.25, 0.5, 0.75, 1].map((t) => [t, tick(min + t * (max - min))]);
}

function logTicks(min, max) {
  const ticks = [];
  const lo = Math.log10(min);
  const hi = Math.log10(max);
  const every = Math.max(1, Math.ceil((Math.floor(hi) - Math.ceil(lo)) / 6));
  for (let e = Math.floor(hi); e >= Math.ceil(lo); e -= every) ticks.push([(e - lo) / (hi - lo), tick(10 ** e)]);
  if (ticks.length < 2) return [[0, tick(min)], [1, tick(max)]];
  return ticks;
}

export function rampColor(t) {
  if (t === null || !Number.isFinite(t)) return "#98a2b3";
  const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const a = hex(STOPS[i]);
  const b = hex(STOPS[i + 1]);
  const mix = a.map((c, k) => Math.round(c + (b[k] - c) * (x - i)));
  return `rgb(${mix.join(",")})`;
}

function hex(s) {
  return [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16));
}

// Draws the plot into `container` (emptied first); `info` shows the run under the pointer.
export function parallelCoordinates(container, { runs, objective, info = null }) {
  const axes = paramAxes(runs);
  const objectiveValues = runs.map((r) => num(((r.metrics || {})[objective] || {}).last));
  const finite = objectiveValues.filter((x) => Number.isFinite(x));
  const objectiveAxis = finite.length
    ? numericAxis(`metrics.${objective}`, objective, finite)
    : null;
  if (objectiveAxis) axes.push(objectiveAxis);
  container.replaceChildren();
  container.classList.add("parcoords");
  container.dataset.axes = axes.map((a) => a.name).join(",");
  if (axes.length < 2) {
    container.dataset.lines = "0";
    container.append(h("p", { class: "empty" },
      "Nothing to plot: the runs' params do not differ, or the objective has no values."));
    return;
  }
  const width = Math.max(640, container.clientWidth || 900);
  const inner = width - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const xOf = (i) => MARGIN.left + (axes.length === 1 ? inner / 2 : (i * inner) / (axes.length - 1));
  const yOf = (p) => MARGIN.top + (1 - p) * plotH;
  const svg = h("svg:svg", { width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img",
    "aria-label": "Parallel coordinates of params against the objective" });

  const lines = h("svg:g", { class: "lines" });
  let drawn = 0;
  runs.forEach((run, r) => {
    const value = (axis) => (axis === objectiveAxis ? objectiveValues[r] : (run.params || {})[axis.key]);
    const d = pathOf(axes.map((axis, i) => {
      const p = axis.pos(value(axis));
      return p === null ? null : [xOf(i), yOf(p)];
    }));
    if (!d) return;
    drawn += 1;
    const t = objectiveAxis ? objectiveAxis.pos(objectiveValues[r]) : null;
    const stroke = rampColor(t);
    const describe = `${run.label}: ${axes.map((a) => `${a.name} = ${fmtValue(value(a))}`).join(", ")}`;
    const open = () => {
      location.hash = route("runs", run.id);
    };
    lines.append(h("svg:g", { class: "run", dataset: { run: run.id },
      onmouseenter: () => {
        container.classList.add("hovering");
        if (info) info.textContent = describe;
      },
      onmouseleave: () => {
        container.classList.remove("hovering");
        if (info) info.textContent = "";
      },
      onclick: open },
    h("svg:title", {}, `${describe} (click to open)`),
    h("svg:path", { class: "line", d, stroke }),
    h("svg:path", { class: "hit", d })));
  });
  svg.append(lines, ...axes.map((axis, i) => axisOf(axis, xOf(i), yOf, axis === objectiveAxis)));
  if (objectiveAxis) svg.append(colorbar(width - MARGIN.right + 40, objectiveAxis, yOf));
  container.append(svg);
  container.dataset.lines = String(drawn);
}

// An SVG path through the points, broken where a run has no value on an axis.
function pathOf(points) {
  let d = "";
  let pen = false;
  let segments = 0;
  for (const p of points) {
    if (!p) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`;
    if (pen) segments += 1;
    pen = true;
  }
  return segments ? d : null;
}

function axisOf(axis, x, yOf, isObjective) {
  const label = `${axis.name}${axis.log ? " (log)" : ""}`;
  return h("svg:g", { class: "axis", dataset: { axis: axis.name } },
    h("svg:line", { x1: x, x2: x, y1: yOf(0), y2: yOf(1) }),
    h("svg:text", { class: "name", x, y: yOf(1) - 16, "text-anchor": "middle" },
      isObjective ? `${label} ★` : label),
    axis.ticks.map(([p, text]) => [
      h("svg:line", { x1: x - 4, x2: x, y1: yOf(p), y2: yOf(p) }),
      h("svg:text", { x: x - 7, y: yOf(p) + 4, "text-anchor": "end" }, shorten(text)),
    ]));
}

function shorten(text) {
  return text.length > 14 ? `${text.slice(0, 13)}…` : text;
}

function colorbar(x, axis, yOf) {
  const id = "parcoords-ramp";
  const steps = STOPS.map((c, i) => h("svg:stop", { offset: `${(100 * i) / (STOPS.length - 1)}%`, "stop-color": c }));
  return h("svg:g", { class: "colorbar" },
    h("svg:defs", {}, h("svg:linearGradient", { id, x1: 0, y1: 1, x2: 0, y2: 0 }, steps)),
    h("svg:rect", { x, y: yOf(1), width: 10, height: yOf(0) - yOf(1), fill: `url(#${id})` }),
    h("svg:text", { x: x + 14, y: yOf(1) + 4 }, "high"),
    h("svg:text", { x: x + 14, y: yOf(0) + 4 }, "low"));
}
