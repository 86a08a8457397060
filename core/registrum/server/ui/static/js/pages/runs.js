// A project's runs: a filter in the search language, sorting by any column, chosen param,
// metric and tag columns, 50 runs a page (the server's keyset cursors), and a selection
// to compare. Filter, sort, columns and page live in the hash query, so reload and back
// keep them.
//
// One request draws a page: the search returns each run with its params, tags and metric
// summaries, so choosing columns needs no further request; the list of keys to choose
// from is fetched only when the column picker is opened.

import { setQuery } from "../app.js";
import { ApiError, api, can } from "../api.js";
import {
  badge, clear, errorBox, fmtDuration, fmtNum, fmtTime, fmtValue, h, link, pageThrough, route,
} from "../dom.js";

const PAGE_SIZE = 50;
const DEFAULT_METRICS = 4; // shown when no columns were chosen: the metrics most runs share
const DEFAULT_PARAMS = 4; // ... and the params whose values differ between the runs
const COMPARE_MIN = 2;
const COMPARE_MAX = 10;
const BARE_KEY = /^[A-Za-z0-9_.:/-]+$/;
const KINDS = { params: "param", metrics: "metric", tags: "tag" };
const EXAMPLES = "metrics.val_loss < 0.3 and params.lr = 0.001 · status = 'failed' · "
  + "tags.team in ('vision', 'nlp') · name like 'bert%'";

// The columns every table has; `order` is the field the server sorts by.
const FIXED = [
  { id: "name", label: "Name", order: "name", cell: nameCell },
  { id: "status", label: "Status", order: "status", cell: (run) => badge(run.status) },
  { id: "started", label: "Started", order: "start_time", cell: (run) => fmtTime(run.start_time) },
  { id: "duration", label: "Duration", order: "duration", num: true, cell: durationCell },
];

function nameCell(run) {
  return link(route("runs", run.id), run.name || run.id.slice(0, 12));
}

function durationCell(run) {
  if (run.end_time !== null && run.end_time !== undefined) return fmtDuration(run.end_time - run.start_time);
  if (run.status === "running") return `${fmtDuration(Date.now() / 1000 - run.start_time)} so far`;
  return "";
}

// `params.lr` -> a column of the run's param "lr"; keys outside [A-Za-z0-9_.:/-] are quoted
// with backticks in the filter and order language.
function field(kindPlural, key) {
  const quoted = BARE_KEY.test(key) ? key : `\`${key.replace(/`/g, "\\`")}\``;
  return `${kindPlural}.${quoted}`;
}

function keyColumn(id) {
  const dot = id.indexOf(".");
  const plural = id.slice(0, dot);
  const key = id.slice(dot + 1);
  const kind = KINDS[plural];
  if (dot < 1 || !kind || !key) return null;
  const column = { id, label: key, kind, order: field(plural, key) };
  if (kind === "metric") {
    column.num = true;
    column.cell = (run) => {
      const m = run.metrics[key];
      return m ? fmtNum(m.last) : "";
    };
    column.title = (run) => {
      const m = run.metrics[key];
      return m ? `last ${fmtNum(m.last)} at step ${m.last_step}; min ${fmtNum(m.min)}, max ${fmtNum(m.max)}, ${m.count} points` : null;
    };
  } else if (kind === "param") {
    column.cell = (run) => fmtValue(run.params[key]);
  } else {
    column.cell = (run) => run.tags[key] ?? "";
  }
  return column;
}

// When no columns were chosen: the metrics most runs on the page share (then by name),
// before the params whose values differ between them (those that differ the most first):
// what tells runs apart, not the alphabetically first config keys.
function defaultColumns(runs) {
  const metricCount = new Map();
  const paramValues = new Map();
  for (const run of runs) {
    for (const k of Object.keys(run.metrics)) metricCount.set(k, (metricCount.get(k) || 0) + 1);
    for (const [k, v] of Object.entries(run.params)) {
      if (!paramValues.has(k)) paramValues.set(k, new Set());
      paramValues.get(k).add(JSON.stringify(v));
    }
  }
  const metrics = [...metricCount].sort(([a, n], [b, m]) => m - n || a.localeCompare(b))
    .slice(0, DEFAULT_METRICS).map(([k]) => `metrics.${k}`);
  const params = [...paramValues].filter(([, values]) => values.size > 1 || runs.length === 1)
    .sort(([a, x], [b, y]) => y.size - x.size || a.localeCompare(b))
    .slice(0, DEFAULT_PARAMS).map(([k]) => `params.${k}`);
  return [...metrics, ...params];
}

// Columns chosen in a project are remembered in this browser, for the next visit.
function savedColumns(project) {
  try {
    const saved = JSON.parse(localStorage.getItem(`registrum.columns.${project}`) || "null");
    return Array.isArray(saved) ? saved.filter((c) => typeof c === "string") : null;
  } catch {
    return null;
  }
}

function saveColumns(project, cols) {
  localStorage.setItem(`registrum.columns.${project}`, JSON.stringify(cols));
}

function readState(query) {
  return {
    filter: query.get("filter") || "",
    sort: query.get("sort") || "", // a column id, "-" in front for descending
    cols: query.getAll("col"),
    chosen: query.has("col"),
    chain: (query.get("at") || "").split(".").filter(Boolean), // cursors of the pages so far
  };
}

function writeState(state) {
  const pairs = [];
  if (state.filter) pairs.push(["filter", state.filter]);
  if (state.sort) pairs.push(["sort", state.sort]);
  if (state.chosen) {
    if (state.cols.length) for (const c of state.cols) pairs.push(["col", c]);
    else pairs.push(["col", ""]);
  }
  if (state.chain.length) pairs.push(["at", state.chain.join(".")]);
  setQuery(pairs);
}

function orderBy(state, columns) {
  if (!state.sort) return null;
  const desc = state.sort.startsWith("-");
  const id = desc ? state.sort.slice(1) : state.sort;
  const column = columns.find((c) => c.id === id) || keyColumn(id);
  if (!column || !column.order) return null;
  return `${desc ? "-" : ""}${column.order}`;
}

export default async function render(root, params, query) {
  const project = params.project;
  const state = readState(query);
  if (!state.chosen) {
    const saved = savedColumns(project);
    if (saved) Object.assign(state, { cols: saved, chosen: true });
  }
  state.cols = state.cols.filter((c) => keyColumn(c));
  const runsPath = `/projects/${encodeURIComponent(project)}/runs/search`;
  const selected = new Set();
  const expanded = new Set(); // parents whose children are shown
  let page = { items: [], next_cursor: null };
  let failed = false;
  let missing = false; // the project does not exist

  const filterInput = h("input", { type: "search", class: "query", id: "filter", name: "filter",
    value: state.filter, placeholder: "filter, e.g. metrics.val_loss < 0.3 and params.lr = 0.001",
    spellcheck: "false", autocomplete: "off", "aria-label": "Filter runs" });
  const message = h("div", { id: "runs-message" });
  const head = h("thead");
  const body = h("tbody");
  const table = h("table", { class: "grid runs", id: "runs" }, head, body);
  const empty = h("div", { class: "empty", id: "runs-empty", hidden: true });
  const prev = h("button", { type: "button", id: "prev" }, "‹ Previous");
  const next = h("button", { type: "button", id: "next" }, "Next ›");
  const pageLabel = h("span", { id: "page-label", class: "muted" });
  const pager = h("div", { class: "pager" }, prev, next, pageLabel);
  const compare = h("button", { type: "button", id: "compare", class: "primary", disabled: true }, "Compare");
  const remove = h("button", { type: "button", id: "delete-runs", class: "danger", hidden: !can(project, "editor"),
    disabled: true, onclick: () => deleteSelected() }, "Delete");
  const selection = h("span", { id: "selection", class: "muted" });
  const picker = columnPicker();

  const columns = () => [...FIXED, ...state.cols.map(keyColumn).filter(Boolean)];

  function drawHead() {
    const sortId = state.sort.replace(/^-/, "") || "started";
    const desc = state.sort ? state.sort.startsWith("-") : true; // the default: newest first
    const cells = [h("th", { class: "select" }, "")];
    for (const column of columns()) {
      const sorted = column.order && column.id === sortId;
      const arrow = sorted ? (desc ? " ▼" : " ▲") : "";
      const th = h("th", {
        class: [column.num && "num", column.order && "sortable", sorted && "sorted", column.kind && `key-${column.kind}`],
        dataset: { col: column.id },
        title: column.order ? `Sort by ${column.order}` : "Worked out from start and end; sort by Started instead",
        "aria-sort": sorted ? (desc ? "descending" : "ascending") : null,
      }, column.kind ? h("span", { class: "kind" }, column.kind) : null, column.label, arrow);
      if (column.order) {
        th.tabIndex = 0;
        th.addEventListener("click", () => sortBy(column, sorted && !desc));
        th.addEventListener("keydown", (event) => {
          if (event.key !== "Enter" && event.key !== " ") return;
          event.preventDefault();
          sortBy(column, sorted && !desc);
        });
      }
      cells.push(th);
    }
    clear(head).append(h("tr", {}, cells));
  }

  // A run whose parent is on the page is drawn under it (a sweep's trials under the sweep),
  // folded until the parent's toggle opens it.
  function ordered() {
    const onPage = new Set(page.items.map((r) => r.id));
    const children = new Map();
    for (const run of page.items) {
      if (run.parent_id && onPage.has(run.parent_id)) {
        if (!children.has(run.parent_id)) children.set(run.parent_id, []);
        children.get(run.parent_id).push(run);
      }
    }
    const out = [];
    const walk = (run, depth) => {
      out.push({ run, depth, children: (children.get(run.id) || []).length });
      if (expanded.has(run.id)) for (const child of children.get(run.id) || []) walk(child, depth + 1);
    };
    for (const run of page.items) if (!(run.parent_id && onPage.has(run.parent_id))) walk(run, 0);
    return out;
  }

  function drawRows() {
    const cols = columns();
    const rows = document.createDocumentFragment();
    for (const { run, depth, children } of ordered()) {
      const box = h("input", { type: "checkbox", class: "select-run", "aria-label": `Select ${run.name || run.id}`,
        dataset: { runId: run.id }, checked: selected.has(run.id) });
      box.addEventListener("change", () => {
        if (box.checked) selected.add(run.id);
        else selected.delete(run.id);
        drawSelection();
      });
      const tr = h("tr", { class: depth ? "child-run" : null, dataset: { runId: run.id, status: run.status, depth: String(depth) } },
        h("td", { class: "select" }, box));
      for (const column of cols) {
        const value = column.cell(run);
        const title = column.title ? column.title(run) : null;
        const td = h("td", { class: column.num && "num", dataset: { col: column.id }, title },
          value instanceof Node ? value : String(value));
        if (column.id === "name") {
          td.style.paddingLeft = `${8 + depth * 20}px`;
          if (children) {
            const open = expanded.has(run.id);
            td.append(" ", h("button", { type: "button", class: "link toggle-children", "aria-expanded": String(open),
              dataset: { children: String(children) }, onclick: () => {
                if (open) expanded.delete(run.id);
                else expanded.add(run.id);
                drawRows();
              } }, `${open ? "▾" : "▸"} ${children} ${children === 1 ? "child" : "children"}`));
          }
        }
        tr.append(td);
      }
      rows.append(tr);
    }
    clear(body).append(rows);
    table.hidden = !page.items.length;
  }

  function drawEmpty() {
    clear(empty);
    empty.hidden = page.items.length > 0 || failed;
    if (empty.hidden) return;
    if (state.filter || state.chain.length) {
      empty.append(h("p", {}, state.filter ? "No runs match this filter." : "No more runs."));
      return;
    }
    empty.append(
      h("p", {}, "No runs in this project yet. Log one with:"),
      h("pre", {}, `import registrum\n\nrun = registrum.init(project=${JSON.stringify(project)}, store="${location.origin}")\nrun.log({"loss": 0.31}, step=1)\nrun.finish()`),
    );
  }

  function drawPager() {
    const first = state.chain.length * PAGE_SIZE;
    pager.hidden = !page.items.length && !state.chain.length;
    prev.disabled = !state.chain.length;
    next.disabled = !page.next_cursor;
    pageLabel.textContent = page.items.length
      ? `Runs ${(first + 1).toLocaleString("en-US")}–${(first + page.items.length).toLocaleString("en-US")}${page.next_cursor ? "" : " (last page)"}`
      : "";
  }

  // Deletes the selected runs (restorable from each run's page until collected), then says
  // how it went: the server's reason for each run it refused.
  async function deleteSelected() {
    if (remove.dataset.confirm !== "true") {
      remove.dataset.confirm = "true";
      remove.textContent = `Really delete ${selected.size}?`;
      return;
    }
    remove.disabled = true;
    const refused = [];
    let deleted = 0;
    for (const id of selected) {
      try {
        await api(`/runs/${encodeURIComponent(id)}`, { method: "DELETE" });
        deleted += 1;
      } catch (err) {
        refused.push(`${id.slice(0, 8)}: ${err.message}`);
      }
    }
    selected.clear();
    await reload();
    message.append(deleted ? h("div", { class: "notice", role: "status" }, `Deleted ${deleted} run${deleted === 1 ? "" : "s"}: each can be restored from its page.`) : "",
      refused.length ? errorBox(new Error(`Not deleted: ${refused.join("; ")}`)) : "");
  }

  function drawSelection() {
    const n = selected.size;
    remove.disabled = n === 0;
    remove.dataset.confirm = "false";
    remove.textContent = n ? `Delete ${n}` : "Delete";
    compare.disabled = n < COMPARE_MIN || n > COMPARE_MAX;
    compare.textContent = n ? `Compare ${n}` : "Compare";
    selection.textContent = n > COMPARE_MAX
      ? `${n} selected: compare at most ${COMPARE_MAX}`
      : n ? `${n} selected` : `Select ${COMPARE_MIN}–${COMPARE_MAX} runs to compare`;
  }

  function draw() {
    if (!state.chosen && page.items.length && !state.cols.length) state.cols = defaultColumns(page.items);
    drawHead();
    drawRows();
    drawEmpty();
    drawPager();
    drawSelection();
    picker.sync();
  }

  async function load() {
    const body = { filter: state.filter || null, order_by: orderBy(state, columns()), limit: PAGE_SIZE,
      cursor: state.chain.length ? state.chain[state.chain.length - 1] : null };
    clear(message);
    failed = false;
    try {
      page = await api(runsPath, { method: "POST", body });
    } catch (err) {
      failed = true;
      missing = err instanceof ApiError && err.status === 404;
      page = { items: [], next_cursor: null };
      message.append(errorBox(err));
    }
    draw();
  }

  // Loads again after a change of filter, sort or page, with the page marked busy meanwhile.
  async function reload() {
    root.dataset.ready = "false";
    writeState(state);
    try {
      await load();
    } finally {
      root.dataset.ready = "true";
    }
  }

  function sortBy(column, descending) {
    state.sort = `${descending ? "-" : ""}${column.id}`;
    state.chain = [];
    reload();
  }

  function columnPicker() {
    const list = h("div", { class: "picker-list" }, h("p", { class: "muted" }, "Loading keys…"));
    const search = h("input", { type: "search", placeholder: "find a key", "aria-label": "Find a key" });
    const details = h("details", { class: "picker", id: "columns" },
      h("summary", {}, "Columns"), h("div", { class: "picker-panel" }, search, list));
    let keys = null;

    function toggle(id, on) {
      state.chosen = true;
      state.cols = on ? [...state.cols.filter((c) => c !== id), id] : state.cols.filter((c) => c !== id);
      saveColumns(project, state.cols);
      writeState(state);
      drawHead();
      drawRows();
    }

    function fill() {
      const wanted = search.value.trim().toLowerCase();
      const groups = document.createDocumentFragment();
      for (const [plural, title] of [["params", "Params"], ["metrics", "Metrics"], ["tags", "Tags"]]) {
        const names = keys[plural].filter((k) => !wanted || k.toLowerCase().includes(wanted));
        const items = names.map((k) => {
          const id = `${plural}.${k}`;
          const box = h("input", { type: "checkbox", dataset: { col: id }, checked: state.cols.includes(id) });
          box.addEventListener("change", () => toggle(id, box.checked));
          return h("label", {}, box, " ", k);
        });
        groups.append(h("fieldset", { dataset: { kind: plural } }, h("legend", {}, title),
          items.length ? items : h("span", { class: "muted" }, keys[plural].length ? "none match" : "none")));
      }
      clear(list).append(groups);
    }

    details.addEventListener("toggle", async () => {
      if (!details.open || keys) return;
      try {
        keys = await api(`/projects/${encodeURIComponent(project)}/keys`);
        fill();
      } catch (err) {
        clear(list).append(errorBox(err));
      }
    });
    search.addEventListener("input", () => keys && fill());
    return Object.assign(details, { sync: () => keys && fill() });
  }

  pageThrough(state, prev, next, () => page, reload);
  compare.addEventListener("click", () => {
    location.hash = `#/compare?runs=${[...selected].map(encodeURIComponent).join(",")}`;
  });
  const form = h("form", { class: "toolbar", id: "filter-form", onsubmit: (event) => {
    event.preventDefault();
    state.filter = filterInput.value.trim();
    state.chain = [];
    reload();
  } }, filterInput, h("button", { type: "submit", id: "apply-filter" }, "Filter"),
  h("button", { type: "button", id: "clear-filter", onclick: () => {
    filterInput.value = "";
    form.requestSubmit();
  } }, "Clear"));

  const title = h("h1", {}, h("span", { class: "muted" }, "Project "), project);
  await load();
  if (missing) {
    root.append(title, message);
    return;
  }
  root.append(
    title,
    form,
    h("p", { class: "muted hint" }, "Examples: ", h("code", {}, EXAMPLES)),
    message,
    h("div", { class: "toolbar" }, picker, compare, remove, selection),
    h("div", { class: "scroll-x" }, table),
    empty,
    pager,
  );
}
