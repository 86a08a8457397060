// One run: what it is, its params and tags, metric charts (server-side downsampled), the data
// it read, what it wrote (artifacts, its file tree), its children, and the code and
// environment it ran in.

import { api, apiUrl, can, download, token } from "../api.js";
import { rerender, setQuery } from "../app.js";
import { describeAndTag } from "../edits.js";
import { mediaSection, previewButton } from "../media.js";
import { Chart, chartControls, pointsFor, settingsFromQuery, settingsToQuery } from "../chart.js";
import {
  act, badge, errorBox, facts, fmtBytes, fmtDuration, fmtNum, fmtTime, fmtValue, h, link, route, table,
} from "../dom.js";

const MAX_CHARTS = 30; // charts drawn at once; a filter picks among more keys
const DIFF_BYTES = 256 * 1024; // the most of a code diff shown
const FILES_SHOWN = 1000; // files of a run listed at once

const LIVE_INTERVAL_MS = 2000; // how often the page of a running run asks for news

export default async function render(root, params, query) {
  const run = await api(`/runs/${encodeURIComponent(params.run_id)}`);
  const live = {}; // what following a running run updates: filled by the parts
  const parts = [
    ["metrics", "Metrics", (el) => metrics(el, run, query, live)],
    ["media", "Media", (el) => mediaSection(el, run)],
    ["params", "Params", (el) => el.append(keyValues(run.params, "No params logged."))],
    ["tags", "Tags", (el) => el.append(keyValues(run.tags, "No tags."))],
    ["datasets", "Datasets and models used", (el) => inputs(el, run)],
    ["artifacts", "Artifacts", (el) => artifacts(el, run)],
    ["files", "Files", (el) => runFiles(el, run)],
    ["models", "Models registered", (el) => registered(el, run)],
    ["children", "Child runs", (el) => children(el, run)],
    ["code", "Code", (el) => code(el, run)],
    ["environment", "Environment", (el) => environment(el, run)],
  ];
  if (can(run.project, "editor")) parts.push(["change", "Change it", (el) => changeIt(el, run)]);
  const sections = parts.map(([id, title]) => h("section", { id: `run-${id}` }, h("h2", {}, title)));
  const [metricsPart, mediaPart, paramsPart, tagsPart, ...rest] = sections;
  live.header = header(run);
  root.append(live.header, jumpTo(parts, sections), metricsPart, mediaPart,
    h("div", { class: "split" }, paramsPart, tagsPart), ...rest);
  // Every part loads at once; one that fails says so in its place and the others still show.
  await Promise.all(parts.map(async ([, , load], i) => {
    try {
      await load(sections[i]);
    } catch (err) {
      sections[i].append(errorBox(err));
    }
  }));
  if (run.status === "running") follow(root, run, live);
}

// What an editor may change: the name, the description, tags; and delete or restore the run.
function changeIt(el, run) {
  const status = h("div", { class: "action-status", id: "run-status" });
  const path = `/runs/${encodeURIComponent(run.id)}`;
  const done = (message) => () => rerender(message);
  const deleted = run.deleted_at !== null && run.deleted_at !== undefined;
  if (deleted) {
    const restore = h("button", { type: "button", id: "restore-run", onclick: () => act(restore, status,
      () => api(`${path}/restore`, { method: "POST" }), done("Run restored.")) }, "Restore this run");
    el.append(status, h("p", {}, restore));
    return;
  }
  const name = h("input", { id: "run-name", value: run.name || "", size: 30, placeholder: "a readable name" });
  const rename = h("button", { type: "button", id: "rename-run", onclick: () => act(rename, status,
    () => api(path, { method: "PATCH", body: { name: name.value } }), done("Run renamed.")) }, "Rename");
  const remove = h("button", { type: "button", id: "delete-run", class: "danger", onclick: () => act(remove, status,
    () => api(path, { method: "DELETE" }), done("Run deleted: restore it here within the grace period.")) }, "Delete this run");
  el.append(status,
    h("div", { class: "edit-name" }, name, " ", rename),
    ...describeAndTag(run, { prefix: "run", path, tagsPath: `${path}/tags`, status }),
    h("div", { class: "edit-lifecycle" }, remove));
}

// A running run's page follows it: every LIVE_INTERVAL_MS it reads the run again, grows the
// charts whose metrics moved on (a new key brings its own chart), and updates the header;
// it stops once the run has ended or the page is left. `main[data-live]` says which.
function follow(root, run, live) {
  const address = location.hash;
  root.dataset.live = "true";
  let counts = counted(run);
  const stop = () => {
    root.dataset.live = "false";
  };
  const tick = async () => {
    if (!root.isConnected || location.hash !== address) return stop();
    let fresh;
    try {
      fresh = await api(`/runs/${encodeURIComponent(run.id)}`);
    } catch {
      setTimeout(tick, LIVE_INTERVAL_MS * 2); // a hiccup of the server: try again later
      return;
    }
    if (!root.isConnected || location.hash !== address) return stop();
    const now = counted(fresh);
    const moved = Object.keys(now).filter((k) => now[k] !== counts[k]);
    counts = now;
    const next = header(fresh);
    live.header.replaceWith(next);
    live.header = next;
    if (moved.length && live.metrics) await live.metrics(fresh, moved);
    root.dataset.refreshed = String(Number(root.dataset.refreshed || 0) + 1);
    if (fresh.status === "running") setTimeout(tick, LIVE_INTERVAL_MS);
    else stop();
  };
  setTimeout(tick, LIVE_INTERVAL_MS);
}

function counted(run) {
  return Object.fromEntries(Object.entries(run.metrics || {}).map(([k, m]) => [k, m.count]));
}

function header(run) {
  const end = run.end_time ?? (run.status === "running" ? Date.now() / 1000 : null);
  return h("div", { class: "run-header" },
    h("h1", {}, run.name || run.id, " ", badge(run.status),
      run.deleted_at !== null && run.deleted_at !== undefined ? [" ", badge("deleted")] : null),
    facts([
      ["Run ID", h("code", {}, run.id)],
      ["Project", link(route("projects", run.project), run.project)],
      ["Parent run", run.parent_id ? link(route("runs", run.parent_id), run.parent_id) : null],
      ["Job type", run.job_type],
      ["User", run.user],
      ["Host", run.host],
      ["Started", fmtTime(run.start_time)],
      ["Ended", run.end_time ? fmtTime(run.end_time) : null],
      ["Duration", end ? `${fmtDuration(end - run.start_time)}${run.end_time ? "" : " so far"}` : null],
      ["Description", run.description],
      ["Lineage", link(route("lineage", { node: `run:${run.id}` }), "Show the lineage graph")],
    ]));
}

function jumpTo(parts, sections) {
  return h("nav", { class: "jump" }, parts.map(([id, title], i) =>
    h("button", { type: "button", class: "link", dataset: { section: id },
      onclick: () => sections[i].scrollIntoView({ behavior: "smooth" }) }, title)));
}

function keyValues(map, empty) {
  const rows = Object.entries(map || {}).sort(([a], [b]) => a.localeCompare(b));
  return table([["Key", ([k]) => k], ["Value", ([, v]) => fmtValue(v)]], rows, { empty, cls: "keyvalue" });
}

// -- metrics -------------------------------------------------------------------------------

async function metrics(el, run, query, live) {
  let keys = Object.keys(run.metrics || {}).sort();
  if (!keys.length) {
    const empty = h("p", { class: "empty" }, "No metrics logged. Log some with run.log({\"loss\": 0.3}).");
    el.append(empty);
    // A running run's first points: the section is drawn anew around them.
    live.metrics = async (fresh) => {
      el.replaceChildren(el.querySelector("h2"));
      await metrics(el, fresh, query, live);
    };
    return;
  }
  let summary = summaries(run, keys);
  el.append(summary);
  let settings = settingsFromQuery(query);
  let charts = [];
  const grid = h("div", { class: "cards charts", id: "charts" });
  const note = h("p", { class: "muted" });
  const controls = chartControls(settings, async (next) => {
    settings = next;
    setQuery(settingsToQuery(settings, query));
    await Promise.all(charts.map((c) => c.update(settings)));
  });
  const filter = h("input", { type: "search", id: "metric-filter", placeholder: "filter metric keys",
    size: 28, hidden: keys.length <= 6, oninput: () => show(filter.value) });
  controls.prepend(filter);
  el.append(controls, note, grid);

  let ticket = 0;
  async function show(text) {
    const mine = ++ticket;
    for (const c of charts) c.destroy();
    charts = [];
    const needle = text.trim().toLowerCase();
    const matching = keys.filter((k) => k.toLowerCase().includes(needle));
    const chosen = matching.slice(0, MAX_CHARTS);
    note.textContent = matching.length > chosen.length
      ? `Showing ${chosen.length} of ${matching.length} metrics: filter to see others.`
      : (matching.length ? "" : "No metric key matches the filter.");
    const drawn = await drawCharts(grid, run, chosen, settings);
    if (mine === ticket) charts = drawn;
    else for (const c of drawn) c.destroy(); // a later filter has replaced these
  }
  await show("");

  // Following a running run: new summaries; the charts of keys that moved get their new
  // points; new keys get charts of their own.
  live.metrics = async (fresh, moved) => {
    run = fresh;
    const fresher = summaries(fresh, Object.keys(fresh.metrics).sort());
    summary.replaceWith(fresher);
    summary = fresher;
    const all = Object.keys(fresh.metrics).sort();
    if (all.length !== keys.length) {
      keys = all;
      filter.hidden = keys.length <= 6;
      await show(filter.value);
      return;
    }
    const shown = new Map(charts.filter((c) => c.container.dataset.key).map((c) => [c.container.dataset.key, c]));
    const together = charts.filter((c) => c.container.dataset.overlay)
      .map((c) => ({ chart: c, members: c.series.map((x) => x.label) }))
      .filter((o) => o.members.some((k) => moved.includes(k)));
    const grow = new Set([...moved.filter((k) => shown.has(k)), ...together.flatMap((o) => o.members)]);
    if (!grow.size) return;
    const maxPoints = pointsFor(charts[0].container.clientWidth);
    const answer = await api("/metrics/histories", { query: { run_id: fresh.id, key: [...grow], max_points: maxPoints } });
    const line = (hist) => ({ label: hist.key, x: hist.steps, y: hist.values, t: hist.timestamps, start: fresh.start_time });
    const byKey = new Map(answer.items.map((hist) => [hist.key, hist]));
    await Promise.all([
      ...answer.items.filter((hist) => shown.has(hist.key)).map((hist) => {
        const chart = shown.get(hist.key);
        chart.container.dataset.total = String(hist.total);
        return chart.replace([line(hist)]);
      }),
      ...together.map(({ chart, members }) => chart.replace(members.filter((k) => byKey.has(k)).map((k) => line(byKey.get(k))))),
    ]);
  };
}

function summaries(run, keys) {
  const m = run.metrics;
  return table([
    ["Metric", (k) => h("button", { type: "button", class: "link", onclick: () => {
      const card = document.querySelector(`.chart-card[data-key="${CSS.escape(k)}"]`);
      if (card) card.scrollIntoView({ behavior: "smooth" });
    } }, k)],
    ["Last", (k) => fmtNum(m[k].last)],
    ["Step", (k) => fmtNum(m[k].last_step)],
    ["Min", (k) => fmtNum(m[k].min)],
    ["Max", (k) => fmtNum(m[k].max)],
    ["Points", (k) => fmtNum(m[k].count)],
  ], keys, { cls: "metric-summaries" });
}

// `train_loss`, `val/loss`: the split a key names and what it measures; null for others.
const SPLIT = /^(train|training|val|valid|validation|test|eval)[_/](.+)$/;

// The keys measuring one thing on several splits (train_loss, val_loss): drawn together too.
function overlays(keys) {
  const byName = new Map();
  for (const key of keys) {
    const m = key.match(SPLIT);
    if (!m) continue;
    if (!byName.has(m[2])) byName.set(m[2], []);
    byName.get(m[2]).push(key);
  }
  return [...byName].filter(([, ks]) => ks.length > 1);
}

// Keys grouped by what comes before their first "/" (train/, val/, system/), ungrouped first.
function groups(keys) {
  const out = new Map();
  for (const key of keys) {
    const cut = key.indexOf("/");
    const group = cut > 0 ? key.slice(0, cut) : "";
    if (!out.has(group)) out.set(group, []);
    out.get(group).push(key);
  }
  return [...out].sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b)));
}

// One card per key, grouped by prefix, after a card per overlay of splits; laid out first,
// so the chart's width sets how many points to fetch.
async function drawCharts(grid, run, keys, settings) {
  const cards = keys.map((key) => {
    const box = h("div", { class: "chart-box", dataset: { key } });
    return { key, box, card: h("div", { class: "card chart-card", dataset: { key } }, h("h3", {}, key), box) };
  });
  const together = overlays(keys).map(([name, ks]) => {
    const box = h("div", { class: "chart-box", dataset: { overlay: name } });
    const card = h("div", { class: "card chart-card overlay-card", dataset: { overlay: name } },
      h("h3", {}, name, " ", h("span", { class: "muted small" }, ks.join(" · "))), box);
    return { name, keys: ks, box, card };
  });
  const byGroup = groups(keys);
  const laid = [];
  if (together.length) {
    laid.push(h("h3", { class: "chart-group", dataset: { group: "splits" } }, "Splits together"), ...together.map((o) => o.card));
  }
  for (const [group, members] of byGroup) {
    if (group || byGroup.length > 1 || together.length) {
      laid.push(h("h3", { class: "chart-group", dataset: { group } }, group ? `${group}/` : "Other metrics"));
    }
    laid.push(...members.map((key) => cards.find((c) => c.key === key).card));
  }
  grid.replaceChildren(...laid);
  if (!cards.length) return [];
  const maxPoints = pointsFor(cards[0].box.clientWidth);
  const answer = await api("/metrics/histories", {
    query: { run_id: run.id, key: keys, max_points: maxPoints },
  });
  const byKey = new Map(answer.items.map((hist) => [hist.key, hist]));
  const drawn = [];
  for (const { key, box, card } of cards) {
    const hist = byKey.get(key);
    box.dataset.maxPoints = String(maxPoints);
    if (!hist) {
      box.append(h("p", { class: "empty" }, "No points."));
      continue;
    }
    box.dataset.total = String(hist.total);
    if (hist.downsampled) {
      card.querySelector("h3").append(" ", h("span", { class: "muted small" },
        `${fmtNum(hist.total)} points, ${fmtNum(hist.steps.length)} drawn (each bucket's min and max)`));
    }
    const chart = new Chart(box, {
      series: [{ label: key, x: hist.steps, y: hist.values, t: hist.timestamps, start: run.start_time }],
      ...settings,
    });
    drawn.push(chart.draw());
  }
  for (const { keys: members, box } of together) {
    const series = members.filter((k) => byKey.has(k)).map((k) => {
      const hist = byKey.get(k);
      return { label: k, x: hist.steps, y: hist.values, t: hist.timestamps, start: run.start_time };
    });
    if (series.length > 1) drawn.push(new Chart(box, { series, ...settings }).draw());
  }
  return Promise.all(drawn);
}

// -- what the run read and wrote -------------------------------------------------------------

// The run's neighbours in the lineage graph, upstream (what it used) or downstream (what it
// made); one request serves both.
const graphs = new WeakMap();

async function neighbours(run, direction) {
  if (!graphs.has(run)) {
    graphs.set(run, api("/lineage", { query: { node: `run:${run.id}`, direction: "both", depth: 1 } }));
  }
  const graph = await graphs.get(run);
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));
  const self = `run:${run.id}`;
  return graph.edges
    .filter((e) => (direction === "up" ? e.target === self : e.source === self))
    .map((e) => ({ role: e.role, node: nodes.get(direction === "up" ? e.source : e.target) }))
    .filter((e) => e.node);
}

async function inputs(el, run) {
  const used = (await neighbours(run, "up")).filter((e) => e.node.kind !== "code");
  el.append(table([
    ["Kind", (e) => (e.node.kind === "model" ? "model version" : e.node.kind)],
    ["Name", (e) => nodeLink(e.node)],
    ["Role", (e) => e.role],
    ["Rows", (e) => (e.node.rows ?? "")],
    ["Fingerprint", (e) => (e.node.fingerprint ? h("code", { title: e.node.fingerprint }, e.node.fingerprint.slice(0, 16)) : "")],
    ["Lineage", (e) => link(route("lineage", { node: e.node.id }), "lineage")],
  ], used, { cls: "datasets", empty: "This run recorded no datasets or models it used (run.use_dataset(...))." }));
}

function nodeLink(node) {
  if (node.kind === "model") return link(route("models", node.name), node.label);
  if (node.kind === "run") return link(route("runs", node.id.slice(4)), node.label);
  return node.label;
}

async function registered(el, run) {
  const out = (await neighbours(run, "down")).filter((e) => e.node.kind === "model");
  el.append(table([
    ["Model version", (e) => link(route("models", e.node.name), e.node.label)],
    ["Aliases", (e) => (e.node.aliases || []).join(", ")],
    ["Lineage", (e) => link(route("lineage", { node: e.node.id }), "lineage")],
  ], out, { cls: "registered", empty: "No model versions were registered from this run." }));
}

async function artifacts(el, run) {
  const page = await api(`/projects/${encodeURIComponent(run.project)}/artifacts`,
    { query: { run_id: run.id, limit: 200 } });
  const files = h("div", { class: "artifact-files" });
  el.append(table([
    ["Artifact", (a) => `${a.name} v${a.version}`],
    ["Type", (a) => a.type],
    ["Files", (a) => fmtNum(a.file_count)],
    ["Size", (a) => fmtBytes(a.size)],
    ["Created", (a) => fmtTime(a.created_at)],
    ["", (a) => artifactAction(a, files)],
  ], page.items, { cls: "artifacts", empty: "This run logged no artifacts (run.log_artifact(path))." }));
  if (page.next_cursor) el.append(h("p", { class: "muted" }, "Showing the newest 200 artifacts."));
  el.append(files);
}

function artifactAction(artifact, files) {
  const single = artifact.file_count === 1;
  return h("button", { type: "button", class: "download", dataset: { artifact: `${artifact.name}/${artifact.version}` },
    onclick: async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      try {
        const full = await api(`/artifacts/${artifact.id}`);
        if (single) await downloadFile(full.files[0]);
        else files.replaceChildren(fileList(full));
      } catch (err) {
        files.replaceChildren(errorBox(err));
      } finally {
        button.disabled = false;
      }
    } }, single ? "Download" : `Show ${artifact.file_count} files`);
}

function fileList(artifact) {
  const shown = h("div", { class: "artifact-preview" });
  return h("div", { class: "card" }, h("h3", {}, `${artifact.name} v${artifact.version}`),
    table([
      ["Path", (f) => f.path],
      ["Size", (f) => fmtBytes(f.size)],
      ["sha256", (f) => h("code", { title: f.sha256 }, f.sha256.slice(0, 12))],
      ["", (f) => h("span", {}, h("button", { type: "button", class: "download", onclick: () => downloadFile(f) }, "Download"), " ",
        previewButton(f, `/blobs/${f.sha256}`, shown))],
    ], artifact.files, { empty: "This artifact holds no files." }), shown);
}

function downloadFile(file) {
  return download(`/blobs/${file.sha256}`, file.path.split("/").pop());
}

// The run's file tree: what MLflow's log_artifact (or the importer) wrote, path by path.
async function runFiles(el, run) {
  const page = await api(`/runs/${encodeURIComponent(run.id)}/files`, { query: { limit: FILES_SHOWN } });
  const status = h("div", { class: "run-files-status" });
  const shown = h("div", { class: "run-files-preview" });
  if (page.items.length) {
    const total = page.items.reduce((sum, f) => sum + f.size, 0);
    const count = `${fmtNum(page.items.length)}${page.next_cursor ? "+" : ""}`;
    el.append(h("p", { class: "muted" }, `${count} files, ${fmtBytes(total)}${page.next_cursor ? "+" : ""}`));
  }
  el.append(table([
    ["Path", (f) => filePath(f.path)],
    ["Size", (f) => fmtBytes(f.size)],
    ["sha256", (f) => h("code", { title: f.sha256 }, f.sha256.slice(0, 12))],
    ["", (f) => h("span", {}, h("button", { type: "button", class: "download", dataset: { path: f.path },
      onclick: () => downloadRunFile(run, f, status) }, "Download"), " ",
    previewButton(f, `/runs/${encodeURIComponent(run.id)}/files/${f.path.split("/").map(encodeURIComponent).join("/")}`, shown))],
  ], page.items, { cls: "run-files", empty: "This run has no files (MLflow's mlflow.log_artifact writes them here)." }));
  if (page.next_cursor) {
    el.append(h("p", { class: "muted" }, `Showing the first ${fmtNum(FILES_SHOWN)} files; `,
      h("code", {}, `registrum runs files ${run.id}`), " lists them all."));
  }
  el.append(status, shown);
}

// A path with its folder muted, so that a file's name stands out in a deep tree.
function filePath(path) {
  const cut = path.lastIndexOf("/");
  if (cut < 0) return h("span", { class: "file-path" }, path);
  return h("span", { class: "file-path" }, h("span", { class: "muted" }, path.slice(0, cut + 1)), path.slice(cut + 1));
}

async function downloadRunFile(run, file, status) {
  const where = file.path.split("/").map(encodeURIComponent).join("/");
  try {
    await download(`/runs/${encodeURIComponent(run.id)}/files/${where}`, file.path.split("/").pop());
    status.replaceChildren();
  } catch (err) {
    status.replaceChildren(errorBox(err));
  }
}

async function children(el, run) {
  const filter = `parent_id = "${run.id}"`;
  const page = await api(`/projects/${encodeURIComponent(run.project)}/runs`,
    { query: { filter, order_by: "start_time", limit: 100 } });
  const runs = page.items;
  if (runs.length >= 2) {
    el.append(h("p", {}, link(route("compare", { parent: run.id }), `Compare the ${runs.length}${page.next_cursor ? "+" : ""} child runs`)));
  }
  el.append(table([
    ["Run", (r) => link(route("runs", r.id), r.name || r.id.slice(0, 8))],
    ["Status", (r) => badge(r.status)],
    ["Job type", (r) => r.job_type || ""],
    ["Started", (r) => fmtTime(r.start_time)],
    ["Duration", (r) => (r.end_time ? fmtDuration(r.end_time - r.start_time) : "")],
  ], runs, { cls: "children", empty: "No child runs." }));
}

// -- code and environment -------------------------------------------------------------------

async function code(el, run) {
  const version = await api(`/runs/${encodeURIComponent(run.id)}/code`);
  if (!version) {
    el.append(h("p", { class: "empty" }, "No code version recorded (the run did not start inside a git repository)."));
    return;
  }
  const dirty = version.dirty === null || version.dirty === undefined ? "unknown" : version.dirty ? "yes: uncommitted changes" : "no";
  el.append(facts([
    ["Commit", version.commit ? h("code", { class: "commit" }, version.commit) : "none yet"],
    ["Branch", version.branch || "detached HEAD"],
    ["Remote", version.remote],
    ["Dirty", dirty],
    ["Lineage", version.commit ? link(route("lineage", { node: `code:${version.commit}` }), "runs from this commit") : null],
  ]));
  if (version.diff_sha256) {
    const text = await blobText(version.diff_sha256, DIFF_BYTES);
    el.append(h("h3", {}, "Uncommitted changes"), diffBlock(text.body));
    if (text.cut) el.append(h("p", { class: "muted" }, `Showing the first ${fmtBytes(DIFF_BYTES)} of ${fmtBytes(text.size)}.`));
  }
}

// The start of a blob as text (the blob route answers Range requests).
async function blobText(sha256, limit) {
  const headers = { Range: `bytes=0-${limit - 1}` };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const response = await fetch(apiUrl(`/blobs/${sha256}`), { headers });
  if (!response.ok) throw new Error(`The diff could not be read: ${response.status} ${response.statusText}`);
  const range = response.headers.get("content-range");
  const size = range ? Number(range.split("/")[1]) : Number(response.headers.get("content-length"));
  return { body: await response.text(), size, cut: size > limit };
}

function diffBlock(text) {
  return h("pre", { class: "diff" }, text.split("\n").map((line) => {
    const cls = line.startsWith("+++") || line.startsWith("---") ? "file"
      : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : null;
    return [cls ? h("span", { class: cls }, line) : line, "\n"];
  }));
}

async function environment(el, run) {
  const env = await api(`/runs/${encodeURIComponent(run.id)}/environment`);
  if (!env) {
    el.append(h("p", { class: "empty" }, "No environment recorded."));
    return;
  }
  const { python, os, packages, gpus, command, memory_bytes: memory, cpu_count: cpus, ...rest } = env;
  el.append(facts([
    ["Python", python ? `${python.version || ""} ${python.implementation || ""}`.trim() : null],
    ["Interpreter", python && python.executable],
    ["OS", os ? [os.platform, os.release, os.machine].filter(Boolean).join(" ") : null],
    ["CPUs", cpus],
    ["Memory", memory ? fmtBytes(memory) : null],
    ["GPUs", gpus && gpus.length ? gpus.map((g) => (typeof g === "object" ? g.name || JSON.stringify(g) : g)).join(", ") : "none"],
    ["Command", Array.isArray(command) ? h("code", {}, command.join(" ")) : command],
    ...Object.entries(rest).map(([k, v]) => [k.replace(/_/g, " "), v]),
  ]));
  const names = Object.entries(packages || {}).sort(([a], [b]) => a.localeCompare(b));
  if (names.length) {
    el.append(h("details", { class: "packages" }, h("summary", {}, `${names.length} installed packages`),
      table([["Package", ([n]) => n], ["Version", ([, v]) => v]], names)));
  }
}
