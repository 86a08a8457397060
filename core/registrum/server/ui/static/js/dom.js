// Building the page: an element helper and the formatting every page shares.

// h("a", {href: "#/", class: "x", onclick: fn, dataset: {id: 1}}, "text", child, [more])
// makes an element; attributes starting with "on" become listeners, `style` takes a string
// or an object, children are nodes, strings, numbers or (nested) arrays; null, undefined
// and false children are skipped.
export function h(tag, attrs = {}, ...children) {
  const el = tag.includes(":")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.split(":")[1])
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "style" && typeof value === "object") {
      Object.assign(el.style, value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// The API sends NaN and infinities as "NaN", "Infinity", "-Infinity".
export function num(value) {
  if (typeof value === "number") return value;
  if (value === "NaN") return NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  return value === null || value === undefined ? null : Number(value);
}

// A number for a table cell: integers as they are, others to 4 significant digits.
export function fmtNum(value) {
  const x = num(value);
  if (x === null) return "";
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  const abs = Math.abs(x);
  return abs !== 0 && (abs < 1e-3 || abs >= 1e6) ? x.toExponential(3) : String(+x.toPrecision(4));
}

// Any value for a cell: numbers formatted, objects as JSON, null as "".
export function fmtValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number" || value === "NaN" || value === "Infinity" || value === "-Infinity") {
    return fmtNum(value);
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// A timestamp (seconds since the epoch, as the API sends them) as local date and time.
export function fmtTime(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

// A run status as a colored badge (class "badge status-<status>").
export function badge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

export function link(href, ...children) {
  return h("a", { href }, ...children);
}

// The hash route of a page: route("runs", "abc") -> "#/runs/abc"; query values are encoded.
export function route(...parts) {
  let query = null;
  if (parts.length && typeof parts[parts.length - 1] === "object") query = parts.pop();
  let hash = `#/${parts.map((p) => encodeURIComponent(p)).join("/")}`;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined) q.set(k, v);
    const s = q.toString();
    if (s) hash += `?${s}`;
  }
  return hash;
}

export function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, err && err.message ? err.message : String(err));
}

export function section(title, ...children) {
  return h("section", {}, h("h2", {}, title), ...children);
}

// A definition list from [label, value] pairs; values may be nodes.
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v instanceof Node ? v : fmtValue(v))]),
  );
}

// A plain table: columns are [label, (row) => cell] pairs.
export function table(columns, rows, { empty = "Nothing yet.", cls = "" } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    { class: ["grid", cls] },
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", {}, label)))),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h("tr", {}, columns.map(([, cell]) => {
          const value = cell(row);
          return h("td", {}, value instanceof Node ? value : fmtValue(value));
        })),
      ),
    ),
  );
}

// Wires previous / next buttons over cursor pages: `state.chain` holds the cursors of the
// pages before the one shown, `current()` is the page shown ({next_cursor, ...}), and
// `reload()` shows the page the chain now leads to.
export function pageThrough(state, prev, next, current, reload) {
  prev.addEventListener("click", () => {
    state.chain = state.chain.slice(0, -1);
    reload();
  });
  next.addEventListener("click", () => {
    const cursor = current().next_cursor;
    if (!cursor) return;
    state.chain = [...state.chain, cursor];
    reload();
  });
}

// An action behind a button: the button is disabled while `work()` runs; then `done()`
// (which usually re-renders the page), or, when it failed, the server's message in `status`
// and the button back for another try.
export async function act(button, status, work, done) {
  button.disabled = true;
  status.replaceChildren();
  try {
    await work();
  } catch (err) {
    status.replaceChildren(errorBox(err));
    button.disabled = false;
    return;
  }
  await done();
}
