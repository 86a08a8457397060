// Small line charts of a few points (a model's evaluations across versions), drawn with
// the vendored uPlot (global `uPlot`).
//
// The chart keeps what it was given on its container, so tests and users can check it:
//   container.series        [{label, points: [[x, y], ...]}] as received
//   container.dataset.points  the same, as JSON

import { color, track, yRange, yTicks } from "./chart.js";
import { h, num } from "./dom.js";

// x values the chart draws: the sorted union of every series' x.
function xValues(series) {
  const xs = new Set();
  for (const s of series) for (const [x] of s.points) xs.add(x);
  return [...xs].sort((a, b) => a - b);
}

// uPlot's aligned data: [xs, ys of series 1, ...]; a missing or non-finite value is a gap.
function aligned(series, xs) {
  const data = [xs];
  for (const s of series) {
    const at = new Map(s.points.map(([x, y]) => [x, num(y)]));
    data.push(xs.map((x) => {
      const y = at.get(x);
      return y === undefined || y === null || !Number.isFinite(y) ? null : y;
    }));
  }
  return data;
}

// Draws `series` in `container` (which must be in the page, to be measured).
// Options: xLabel (axis title), xFormat (x tick -> text), height, integerX (ticks on
// whole numbers only: version numbers).
export function lineChart(container, series, { xLabel = "", xFormat = String, height = 220,
  integerX = false } = {}) {
  container.series = series;
  container.dataset.points = JSON.stringify(series);
  container.classList.add("minichart");
  const xs = xValues(series);
  if (!xs.length) {
    container.append(h("p", { class: "empty" }, "No values to draw."));
    return null;
  }
  const width = Math.max(240, Math.floor(container.clientWidth || 460));
  const xAxis = { label: xLabel, values: (u, ticks) => ticks.map((t) => xFormat(t)) };
  if (integerX) xAxis.incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
  const opts = {
    width,
    height,
    scales: { x: { time: false }, y: { range: yRange } },
    legend: { show: series.length > 1 },
    cursor: { drag: { x: false, y: false } },
    axes: [xAxis, { size: 60, values: yTicks }],
    series: [
      { label: xLabel || "x" },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: color(i),
        width: 2,
        points: { show: true, size: 7, fill: color(i) },
        spanGaps: true,
      })),
    ],
  };
  // One x value has no range: widen it so the lone point sits in the middle.
  if (xs.length === 1) opts.scales.x.range = () => [xs[0] - 1, xs[0] + 1];
  return track(new uPlot(opts, aligned(series, xs), container), container);
}
