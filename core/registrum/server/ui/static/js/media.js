// A run's media (run.log_image, log_figure, log_table, log_text): one card per key, with a
// step slider where the key was logged at several steps. Images and matplotlib figures are
// shown as they are; plotly figures are drawn with the metric charts (their line and scatter
// traces); tables can be sorted (click a column) and filtered; text is shown as it is.
//
// Each card keeps what it shows on its element, for tests:
//   data-key, data-kind      the media's key and kind
//   data-step                the step shown
//   data-ready               "true" once that step is drawn

import { api, apiUrl, authHeaders } from "./api.js";
import { Chart } from "./chart.js";
import { errorBox, fmtNum, h } from "./dom.js";

const MEDIA_SHOWN = 1000; // media records read at once
const ROWS_SHOWN = 500; // table rows drawn at once

export async function mediaSection(el, run) {
  const page = await api(`/runs/${encodeURIComponent(run.id)}/media`, { query: { limit: MEDIA_SHOWN } });
  if (!page.items.length) {
    el.append(h("p", { class: "empty" },
      "No media logged. Log some with run.log_image(key, image), log_figure, log_table or log_text."));
    return;
  }
  const groups = new Map();
  for (const item of page.items) {
    if (!groups.has(item.key)) groups.set(item.key, []);
    groups.get(item.key).push(item);
  }
  const grid = h("div", { class: "cards media-cards" });
  el.append(grid);
  if (page.next_cursor) {
    el.append(h("p", { class: "muted" }, `Showing the first ${fmtNum(MEDIA_SHOWN)} media.`));
  }
  await Promise.all([...groups].map(([key, items]) => card(grid, run, key, items)));
}

async function card(grid, run, key, items) {
  items.sort((a, b) => a.step - b.step);
  const kind = items[items.length - 1].kind;
  const body = h("div", { class: "media-body" });
  const stepLabel = h("span", { class: "muted small media-step" });
  const caption = h("p", { class: "media-caption muted" });
  const el = h("div", { class: "card media-card", dataset: { key, kind } },
    h("h3", {}, key, " ", h("span", { class: "muted small" }, kind)));
  grid.append(el);
  let ticket = 0;
  async function show(index) {
    const mine = ++ticket;
    const item = items[index];
    el.dataset.ready = "false";
    el.dataset.step = String(item.step);
    stepLabel.textContent = `step ${fmtNum(item.step)}${items.length > 1 ? ` (${index + 1} of ${items.length})` : ""}`;
    caption.textContent = item.meta.caption || "";
    let shown;
    try {
      shown = await view(run, item);
    } catch (err) {
      shown = errorBox(err);
    }
    if (mine !== ticket) return; // the slider moved on meanwhile
    for (const img of body.querySelectorAll("img")) URL.revokeObjectURL(img.src);
    body.replaceChildren(shown);
    if (shown.__draw) await shown.__draw();
    el.dataset.ready = "true";
  }
  if (items.length > 1) {
    const slider = h("input", { type: "range", class: "media-slider", min: 0, max: items.length - 1,
      value: items.length - 1, "aria-label": `step of ${key}`,
      oninput: () => show(Number(slider.value)) });
    el.append(h("div", { class: "media-steps" }, slider, " ", stepLabel));
  } else {
    el.append(h("div", { class: "media-steps" }, stepLabel));
  }
  el.append(body, caption);
  await show(items.length - 1);
}

async function bytesOf(run, item) {
  const where = item.path.split("/").map(encodeURIComponent).join("/");
  const response = await fetch(apiUrl(`/runs/${encodeURIComponent(run.id)}/files/${where}`),
    { headers: authHeaders() });
  if (!response.ok) throw new Error(`${item.key} at step ${item.step} could not be read: ${response.status}`);
  return response;
}

async function view(run, item) {
  const response = await bytesOf(run, item);
  if (item.media_type === "image/png") {
    const url = URL.createObjectURL(await response.blob());
    const { width, height } = item.meta;
    return h("img", { class: "media-image", src: url, alt: item.meta.caption || `${item.key} at step ${item.step}`,
      width, height, style: { imageRendering: width && width < 64 ? "pixelated" : "auto" } });
  }
  if (item.media_type === "application/vnd.plotly.v1+json") return plotly(await response.json());
  if (item.kind === "table") return curveAndTable(await response.json());
  return h("pre", { class: "media-text" }, await response.text());
}

// A plotly figure's line and scatter traces, drawn as a chart; other traces are named.
function plotly(figure) {
  const traces = (figure.data || []).filter((t) => Array.isArray(t.y));
  const series = traces.map((t, i) => ({
    label: t.name || `trace ${i}`,
    x: Array.isArray(t.x) ? t.x.map(Number) : t.y.map((_, j) => j),
    y: t.y,
  })).filter((s) => s.x.every(Number.isFinite));
  const title = figure.layout && figure.layout.title;
  const box = h("div", { class: "chart-box plotly-box" });
  const el = h("div", { class: "plotly-figure" },
    title ? h("p", { class: "small" }, typeof title === "string" ? title : title.text || "") : null, box);
  const skipped = (figure.data || []).length - series.length;
  if (skipped) el.append(h("p", { class: "muted small" }, `${skipped} trace(s) of other types are not drawn here.`));
  if (series.length) el.__draw = () => new Chart(box, { series, height: 220 }).draw();
  else box.append(h("p", { class: "empty" }, "No line or scatter traces to draw."));
  return el;
}

// Curves logged as tables (a ROC curve's fpr and tpr, a precision-recall curve) are drawn
// above their table.
const CURVES = [["fpr", "tpr", "ROC curve"], ["recall", "precision", "precision-recall curve"]];

function curveAndTable(stored) {
  const table = tableView(stored);
  const at = (name) => (stored.columns || []).indexOf(name);
  const found = CURVES.find(([x, y]) => at(x) >= 0 && at(y) >= 0);
  if (!found) return table;
  const [xName, yName, title] = found;
  const xs = stored.data[at(xName)];
  const ys = stored.data[at(yName)];
  const pairs = xs.map((x, i) => [x, ys[i]]).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
    .sort((a, b) => a[0] - b[0]);
  const box = h("div", { class: "chart-box curve-box", dataset: { curve: xName } });
  const el = h("div", { class: "media-curve" }, h("p", { class: "small muted" }, `${title}: ${yName} against ${xName}`), box, table);
  el.__draw = () => new Chart(box, { xLabel: xName, height: 220,
    series: [{ label: yName, x: pairs.map(([x]) => x), y: pairs.map(([, y]) => y) }] }).draw();
  return el;
}

// A columnar table ({columns, data: [[column], ...]}) with sorting and a filter.
export function tableView(stored) {
  const columns = stored.columns || [];
  const count = columns.length ? (stored.data[0] || []).length : 0;
  const rows = Array.from({ length: count }, (_, i) => columns.map((_, j) => stored.data[j][i]));
  let sortBy = null;
  let descending = false;
  const note = h("p", { class: "muted small table-note" });
  const body = h("tbody");
  const heads = columns.map((name, j) => h("th", {}, h("button", { type: "button", class: "link sort",
    dataset: { column: name }, onclick: () => {
      descending = sortBy === j ? !descending : false;
      sortBy = j;
      draw();
    } }, name)));
  const filter = h("input", { type: "search", class: "table-filter", placeholder: "filter rows",
    oninput: () => draw() });
  function draw() {
    const needle = filter.value.trim().toLowerCase();
    let shown = needle ? rows.filter((r) => r.some((x) => cell(x).toLowerCase().includes(needle))) : rows.slice();
    if (sortBy !== null) {
      shown.sort((a, b) => compare(a[sortBy], b[sortBy]) * (descending ? -1 : 1));
    }
    heads.forEach((th, j) => {
      th.dataset.sorted = sortBy === j ? (descending ? "desc" : "asc") : "";
    });
    const total = shown.length;
    shown = shown.slice(0, ROWS_SHOWN);
    body.replaceChildren(...shown.map((r) => h("tr", {}, r.map((x) => h("td", { class: typeof x === "number" ? "num" : null }, cell(x))))));
    note.textContent = `${fmtNum(total)} of ${fmtNum(rows.length)} rows${total > ROWS_SHOWN ? `; the first ${ROWS_SHOWN} shown` : ""}`;
  }
  draw();
  return h("div", { class: "media-table" }, filter, note,
    h("div", { class: "table-scroll" }, h("table", { class: "grid media-rows" }, h("thead", {}, h("tr", {}, heads)), body)));
}

function cell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return fmtNum(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1; // empty cells last
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}


// -- previews of files --------------------------------------------------------------------

const PREVIEW_BYTES = 1 << 20; // files up to 1 MiB are previewed
const IMAGE = /\.(png|jpe?g|gif|webp|bmp)$/i;
const TEXT = /\.(txt|log|md|json|jsonl|ya?ml|csv|tsv|py|cfg|ini|toml|diff|patch|sh)$|(^|\/)(MLmodel|requirements\.txt|conda\.yaml)$/i;

// Whether a file can be shown in the page: an image, or text of a known kind, up to 1 MiB.
export function previewable(file) {
  return file.size <= PREVIEW_BYTES && (IMAGE.test(file.path) || TEXT.test(file.path));
}

// A preview of a file's bytes (a Response): images as images, CSV and TSV as a table that
// sorts and filters, JSON pretty-printed, other text as it is.
export async function preview(file, response) {
  const name = file.path.split("/").pop();
  const el = h("div", { class: "card file-preview", dataset: { path: file.path } },
    h("h3", {}, name, " ", h("span", { class: "muted small" }, "preview")));
  if (IMAGE.test(file.path)) {
    const url = URL.createObjectURL(await response.blob());
    el.append(h("img", { class: "media-image preview-image", src: url, alt: name }));
    return el;
  }
  const text = await response.text();
  if (/\.(csv|tsv)$/i.test(file.path)) {
    el.append(tableView(parseDelimited(text, /\.tsv$/i.test(file.path) ? "\t" : ",")));
  } else if (/\.json$/i.test(file.path)) {
    let shown = text;
    try {
      shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // not valid JSON: shown as it is
    }
    el.append(h("pre", { class: "media-text preview-text" }, shown));
  } else {
    el.append(h("pre", { class: "media-text preview-text" }, text));
  }
  return el;
}

// CSV (RFC 4180: quoted fields, doubled quotes, line breaks inside quotes) as the columnar
// form tableView draws; the first row names the columns; numbers become numbers.
export function parseDelimited(text, sep = ",") {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"' && field === "") {
      quoted = true;
    } else if (c === sep) {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else {
      field += c;
    }
  }
  if (field !== "" || row.length) {
    row.push(field);
    rows.push(row);
  }
  const [head = [], ...body] = rows;
  const value = (x) => (x !== undefined && x.trim() !== "" && Number.isFinite(Number(x)) ? Number(x) : x ?? null);
  return { columns: head, data: head.map((_, j) => body.map((r) => value(r[j]))) };
}

// A "Preview" button for `file`, whose bytes are at the API path `path`; the preview (or the
// error) goes into `target`. Null for a file that cannot be shown.
export function previewButton(file, path, target) {
  if (!previewable(file)) return null;
  const button = h("button", { type: "button", class: "preview", dataset: { path: file.path }, onclick: async () => {
    button.disabled = true;
    try {
      const response = await fetch(apiUrl(path), { headers: authHeaders() });
      if (!response.ok) throw new Error(`${file.path} could not be read: ${response.status} ${response.statusText}`);
      for (const img of target.querySelectorAll("img")) URL.revokeObjectURL(img.src);
      target.replaceChildren(await preview(file, response));
      target.scrollIntoView({ behavior: "smooth", block: "nearest" });
    } catch (err) {
      target.replaceChildren(errorBox(err));
    } finally {
      button.disabled = false;
    }
  } }, "Preview");
  return button;
}
