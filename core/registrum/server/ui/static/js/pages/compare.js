// Compare 2-10 runs (#/compare?runs=a,b,c) or a sweep's child runs (#/compare?parent=ID):
// a parallel-coordinates plot of params against an objective, a table of attributes, params
// and metrics that highlights what differs, and overlaid charts of the metrics they share.

import { api } from "../api.js";
import { setQuery } from "../app.js";
import { Chart, chartControls, color, pointsFor, settingsFromQuery, settingsToQuery } from "../chart.js";
import { badge, errorBox, fmtDuration, fmtTime, fmtValue, h, link, num, route } from "../dom.js";
import { numericParamRuns, parallelCoordinates } from "../parcoords.js";

const MIN_RUNS = 2;
const MAX_RUNS = 10; // runs in the table and the charts
const MAX_SWEEP = 200; // child runs of a sweep in the parallel-coordinates plot
const MAX_CHARTS = 30;

export default async function render(root, params, query) {
  const parent = query.get("parent");
  const picked = await (parent ? sweep(parent) : listed(query.get("runs")));
  if (picked.error) {
    root.append(h("h1", {}, "Compare runs"), h("div", { class: "error", role: "alert", id: "compare-error" }, picked.error),
      h("p", { class: "muted" }, "Pick runs in a project's runs table and press Compare, or open ",
        h("code", {}, "#/compare?runs=ID1,ID2"), " (2 to 10 runs), or ",
        h("code", {}, "#/compare?parent=ID"), " for the child runs of a sweep."));
    return;
  }
  const { title, all, note } = picked;
  const runs = all.slice(0, MAX_RUNS).map((run, i) => ({ ...run, color: color(i) }));
  root.append(h("h1", {}, title));
  if (note) root.append(h("p", { class: "muted" }, note));
  root.append(runLegend(runs));

  const parts = [];
  const objective = defaultObjective(picked.parent, all, query);
  if (picked.parent) root.append(history(all, objective, picked.parent));
  if (parent || numericParamRuns(all) >= 2) parts.push(coordinates(root, all, query, objective));
  const charts = h("section", { id: "compare-charts" }, h("h2", {}, "Metrics"));
  root.append(h("section", { id: "compare-table" }, h("h2", {}, "Params and metrics"), compareTable(runs)), charts);
  parts.push(overlaid(charts, runs, query).catch((err) => charts.append(errorBox(err))));
  await Promise.all(parts);
}

// -- which runs ----------------------------------------------------------------------------

async function listed(text) {
  const ids = [...new Set((text || "").split(",").map((s) => s.trim()).filter(Boolean))];
  if (ids.length < MIN_RUNS || ids.length > MAX_RUNS) {
    return { error: `Compare takes ${MIN_RUNS} to ${MAX_RUNS} runs; this link names ${ids.length}.` };
  }
  const runs = await Promise.all(ids.map((id) => api(`/runs/${encodeURIComponent(id)}`)));
  return { title: `Compare ${runs.length} runs`, all: runs };
}

async function sweep(parentId) {
  const parent = await api(`/runs/${encodeURIComponent(parentId)}`);
  const page = await api(`/projects/${encodeURIComponent(parent.project)}/runs`, {
    query: { filter: `parent_id = "${parent.id}"`, order_by: "start_time", limit: MAX_SWEEP },
  });
  const runs = page.items;
  const name = parent.name || parent.id;
  if (runs.length < MIN_RUNS) {
    return { error: `Run ${name} has ${runs.length} child run${runs.length === 1 ? "" : "s"}; a comparison needs at least ${MIN_RUNS}.` };
  }
  const notes = [];
  if (runs.length > MAX_RUNS) {
    notes.push(`The table and charts show the first ${MAX_RUNS} of ${runs.length} child runs; the parallel-coordinates plot shows all of them.`);
  }
  if (page.next_cursor) notes.push(`Only the first ${MAX_SWEEP} child runs are plotted.`);
  return {
    title: h("span", {}, "Sweep ", link(route("runs", parent.id), name), `: ${runs.length} child runs`),
    all: runs,
    note: notes.join(" "),
    parent,
  };
}

function runLabel(run) {
  return run.name || run.id.slice(0, 8);
}

function runLegend(runs) {
  return h("p", { class: "legend-runs" }, runs.map((run) =>
    h("span", { class: "run-chip" }, h("span", { class: "swatch", style: { background: run.color } }),
      link(route("runs", run.id), runLabel(run)), " ")));
}

// -- parallel coordinates ------------------------------------------------------------------

// The objective: the address's; else the sweep's own (an Optuna sweep records its
// `metric_names`); else a metric called value, objective or loss; else the first by name.
function defaultObjective(parent, runs, query) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics || {})))].sort();
  if (keys.includes(query.get("objective"))) return query.get("objective");
  const named = parent && parent.params && parent.params.metric_names;
  if (Array.isArray(named) && keys.includes(named[0])) return named[0];
  return ["value", "objective", "loss", "val_loss"].find((k) => keys.includes(k)) || keys[0];
}

// Whether the sweep minimizes its objective (Optuna records `directions`; else by name).
function minimizes(parent, objective) {
  const directions = parent && parent.params && parent.params.directions;
  if (Array.isArray(directions) && directions.length) return directions[0] !== "maximize";
  return !/acc|auc|f1|precision|recall|score|r2/i.test(objective || "");
}

async function coordinates(root, runs, query, chosen) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics || {})))].sort();
  let objective = chosen;
  const plot = h("div", { id: "parcoords" });
  const info = h("p", { class: "parcoords-info muted" });
  const select = h("select", { id: "objective", onchange: () => {
    objective = select.value;
    setQuery({ ...Object.fromEntries(new URLSearchParams(location.hash.split("?")[1] || "")), objective });
    draw();
  } }, keys.map((k) => h("option", { value: k, selected: k === objective }, k)));
  root.append(h("section", { id: "compare-parcoords" }, h("h2", {}, "Params against the objective"),
    keys.length ? h("div", { class: "toolbar" }, h("label", { for: "objective" }, "Objective"), select,
      h("span", { class: "muted" }, "The last value of each run; lines are colored by it. Click a line to open its run.")) : null,
    plot, info));
  const draw = () => parallelCoordinates(plot, {
    runs: runs.map((r) => ({ id: r.id, label: runLabel(r), params: r.params, metrics: r.metrics })),
    objective,
    info,
  });
  draw();
}

// -- a sweep: optimisation history and param importance ------------------------------------

function history(runs, objective, parent) {
  const el = h("section", { id: "compare-history" }, h("h2", {}, `Optimisation history: ${objective || "no objective"}`));
  const trials = runs.map((r, i) => ({ i, run: r, value: num(((r.metrics || {})[objective] || {}).last) }))
    .filter((t) => Number.isFinite(t.value));
  if (trials.length < 2) {
    el.append(h("p", { class: "empty" }, "Fewer than two trials report the objective."));
    return el;
  }
  const minimize = minimizes(parent, objective);
  let best = null;
  const bestSoFar = trials.map((t) => {
    best = best === null ? t.value : minimize ? Math.min(best, t.value) : Math.max(best, t.value);
    return best;
  });
  const box = h("div", { class: "chart-box", id: "history-chart", dataset: { objective } });
  const top = trials.reduce((a, b) => ((minimize ? b.value < a.value : b.value > a.value) ? b : a));
  el.append(
    h("p", { class: "muted" }, `Each trial's ${objective} in the order the trials started, and the best so far (${minimize ? "lower" : "higher"} is better). Best: `,
      link(route("runs", top.run.id), runLabel(top.run)), ` with ${fmtValue(top.value)}.`),
    h("div", { class: "card chart-card" }, box),
    importance(runs, objective));
  const xs = trials.map((t) => t.i);
  requestAnimationFrame(() => new Chart(box, {
    xLabel: "trial",
    series: [
      { label: objective, x: xs, y: trials.map((t) => t.value) },
      { label: "best so far", x: xs, y: bestSoFar },
    ],
  }).draw());
  return el;
}

// How much each param goes with the objective across the trials: for numbers, the absolute
// Spearman rank correlation; for categories, the share of the objective's variance that the
// categories explain (η²). Both run from 0 (nothing) to 1.
function importance(runs, objective) {
  const rows = [];
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.params || {})))];
  for (const key of keys) {
    const pairs = runs.map((r) => [(r.params || {})[key], num(((r.metrics || {})[objective] || {}).last)])
      .filter(([p, y]) => p !== undefined && p !== null && typeof p !== "object" && Number.isFinite(y));
    if (pairs.length < 3 || new Set(pairs.map(([p]) => JSON.stringify(p))).size < 2) continue;
    const numeric = pairs.every(([p]) => typeof p === "number");
    const score = numeric ? Math.abs(spearman(pairs.map(([p]) => p), pairs.map(([, y]) => y))) : etaSquared(pairs);
    if (Number.isFinite(score)) rows.push({ key, score, how: numeric ? "rank correlation" : "variance explained" });
  }
  rows.sort((a, b) => b.score - a.score);
  if (!rows.length) return h("p", { class: "muted" }, "No param varies across the trials.");
  return h("div", { class: "importance" }, h("h3", {}, "Param importance"),
    h("table", { class: "grid importance-table" }, h("tbody", {}, rows.map((r) =>
      h("tr", { dataset: { param: r.key } }, h("th", { scope: "row" }, r.key),
        h("td", { class: "bar-cell" }, h("span", { class: "bar", style: { width: `${Math.round(r.score * 100)}%` } })),
        h("td", { class: "num" }, r.score.toFixed(2)), h("td", { class: "muted small" }, r.how))))));
}

function ranks(values) {
  const order = values.map((v, i) => [v, i]).sort((a, b) => a[0] - b[0]);
  const out = new Array(values.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j += 1;
    for (let k = i; k <= j; k++) out[order[k][1]] = (i + j) / 2; // ties share their mean rank
    i = j + 1;
  }
  return out;
}

function spearman(xs, ys) {
  const rx = ranks(xs);
  const ry = ranks(ys);
  const mean = (a) => a.reduce((s, v) => s + v, 0) / a.length;
  const mx = mean(rx);
  const my = mean(ry);
  let cov = 0;
  let vx = 0;
  let vy = 0;
  for (let i = 0; i < rx.length; i++) {
    cov += (rx[i] - mx) * (ry[i] - my);
    vx += (rx[i] - mx) ** 2;
    vy += (ry[i] - my) ** 2;
  }
  return vx && vy ? cov / Math.sqrt(vx * vy) : 0;
}

function etaSquared(pairs) {
  const ys = pairs.map(([, y]) => y);
  const mean = ys.reduce((s, v) => s + v, 0) / ys.length;
  const total = ys.reduce((s, v) => s + (v - mean) ** 2, 0);
  if (!total) return 0;
  const groups = new Map();
  for (const [p, y] of pairs) {
    const k = JSON.stringify(p);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(y);
  }
  let between = 0;
  for (const g of groups.values()) {
    const m = g.reduce((s, v) => s + v, 0) / g.length;
    between += g.length * (m - mean) ** 2;
  }
  return between / total;
}

// -- the table -----------------------------------------------------------------------------

function same(values) {
  const shown = values.map((v) => JSON.stringify(v === undefined ? null : v));
  return shown.every((v) => v === shown[0]);
}

function compareTable(runs) {
  const onlyDiff = h("input", { type: "checkbox", id: "only-diff", checked: true, onchange: () => {
    tableEl.classList.toggle("only-diff", onlyDiff.checked);
  } });
  const rows = [];
  const group = (title) => rows.push(h("tr", { class: "group" }, h("td", { colspan: runs.length + 1 }, title)));
  const row = (name, key, values, cells, highlight = true) => {
    const differs = highlight && !same(values);
    rows.push(h("tr", { class: differs ? "diff" : null, dataset: { row: key } },
      h("th", { scope: "row" }, name), cells.map((c) => h("td", {}, c))));
  };
  group("Run");
  const attr = (name, fn, highlight = false) => {
    const values = runs.map(fn);
    row(name, `run.${name.toLowerCase().replace(/ /g, "_")}`, values, values.map((v) => (v instanceof Node ? v : fmtValue(v))), highlight);
  };
  row("Status", "run.status", runs.map((r) => r.status), runs.map((r) => badge(r.status)));
  attr("Project", (r) => r.project, true);
  attr("Job type", (r) => r.job_type || "", true);
  attr("User", (r) => r.user || "", true);
  attr("Started", (r) => fmtTime(r.start_time));
  attr("Duration", (r) => (r.end_time ? fmtDuration(r.end_time - r.start_time) : ""));
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params || {})))].sort();
  group(paramKeys.length ? "Params" : "Params: none logged");
  for (const key of paramKeys) {
    const values = runs.map((r) => (r.params || {})[key]);
    row(key, `params.${key}`, values, values.map((v) => (v === undefined ? "–" : fmtValue(v))));
  }
  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics || {})))].sort();
  group(metricKeys.length ? "Metrics (last value)" : "Metrics: none logged");
  for (const key of metricKeys) {
    const values = runs.map((r) => ((r.metrics || {})[key] || {}).last);
    row(key, `metrics.${key}`, values, values.map((v) => (v === undefined ? "–" : fmtValue(v))));
  }
  const tableEl = h("table", { class: "grid compare only-diff" },
    h("thead", {}, h("tr", {}, h("th", {}, ""), runs.map((r) =>
      h("th", { dataset: { run: r.id } }, h("span", { class: "swatch", style: { background: r.color } }),
        link(route("runs", r.id), runLabel(r)))))),
    h("tbody", {}, rows));
  return h("div", {},
    h("div", { class: "toolbar" }, h("label", {}, onlyDiff, " Show only rows that differ")),
    h("div", { class: "scroll-x" }, tableEl));
}

// -- overlaid charts -----------------------------------------------------------------------

async function overlaid(el, runs, query) {
  const counts = new Map();
  const series = new Set(); // keys some run logged at more than one step
  for (const run of runs) {
    for (const [key, m] of Object.entries(run.metrics || {})) {
      counts.set(key, (counts.get(key) || 0) + 1);
      if (m.count > 1) series.add(key);
    }
  }
  const shared = [...counts].filter(([, n]) => n >= 2).map(([k]) => k).sort();
  // A value logged once per run (a trial's objective) is a dot at one step: it is in the
  // table, and for a sweep in the optimisation history, not in a chart of its own.
  const once = shared.filter((k) => !series.has(k));
  const keys = shared.filter((k) => series.has(k));
  if (once.length) {
    el.append(h("p", { class: "muted", id: "logged-once" },
      `Logged once per run, so compared in the table above: ${once.join(", ")}.`));
  }
  if (!keys.length) {
    if (!once.length) el.append(h("p", { class: "empty" }, "These runs share no metric."));
    return;
  }
  const shown = keys.slice(0, MAX_CHARTS);
  if (keys.length > shown.length) el.append(h("p", { class: "muted" }, `Showing ${shown.length} of ${keys.length} shared metrics.`));
  let settings = settingsFromQuery(query);
  let charts = [];
  el.append(chartControls(settings, async (next) => {
    settings = next;
    setQuery(settingsToQuery(settings, new URLSearchParams(location.hash.split("?")[1] || "")));
    await Promise.all(charts.map((c) => c.update(settings)));
  }));
  const cards = shown.map((key) => {
    const box = h("div", { class: "chart-box", dataset: { key } });
    return { key, box, card: h("div", { class: "card chart-card", dataset: { key } }, h("h3", {}, key), box) };
  });
  const grid = h("div", { class: "cards charts" }, cards.map((c) => c.card));
  el.append(grid);
  const maxPoints = pointsFor(cards[0].box.clientWidth);
  const answer = await api("/metrics/histories", {
    query: { run_id: runs.map((r) => r.id), key: shown, max_points: maxPoints },
  });
  const byPair = new Map(answer.items.map((hist) => [`${hist.run_id}\n${hist.key}`, hist]));
  charts = await Promise.all(cards.map(({ key, box }) => {
    box.dataset.maxPoints = String(maxPoints);
    const series = [];
    for (const run of runs) {
      const hist = byPair.get(`${run.id}\n${key}`);
      if (hist) {
        series.push({ label: runLabel(run), color: run.color, run: run.id, x: hist.steps, y: hist.values,
          t: hist.timestamps, start: run.start_time });
      }
    }
    return new Chart(box, { series, ...settings }).draw();
  }));
}
