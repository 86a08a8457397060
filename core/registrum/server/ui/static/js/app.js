// The router: each hash route renders one page module from ./pages/.
//
// A page module's default export is `async render(root, params, query)`: `root` is the
// emptied <main>, `params` the route's named parts (decoded), `query` a URLSearchParams of
// what follows "?" in the hash. A page re-renders when the hash changes; a page that
// changes only its query (filters, sort) may call `setQuery` to update the address
// without a re-render.

import { ApiError, loadSession, session, signOut } from "./api.js";
import { clear, errorBox, h } from "./dom.js";

const ROUTES = [
  [/^\/?$/, "projects", []],
  [/^\/projects\/([^/]+)$/, "runs", ["project"]],
  [/^\/runs\/([^/]+)$/, "run", ["run_id"]],
  [/^\/compare$/, "compare", []],
  [/^\/models$/, "models", []],
  [/^\/models\/([^/]+)\/versions\/([^/]+)$/, "version", ["name", "version"]],
  [/^\/models\/([^/]+)$/, "model", ["name"]],
  [/^\/lineage$/, "lineage", []],
  [/^\/audit$/, "audit", []],
  [/^\/signin$/, "signin", []],
];

const NAV = { projects: "projects", runs: "projects", run: "projects", compare: "projects",
  models: "models", model: "models", version: "models", lineage: "models", audit: "audit" };

let rendering = 0;
let quietHash = null;

function parse(hash) {
  const raw = hash.replace(/^#/, "") || "/";
  const [path, q = ""] = raw.split("?", 2);
  for (const [pattern, page, names] of ROUTES) {
    const m = path.match(pattern);
    if (m) {
      const params = {};
      names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1])));
      return { page, params, query: new URLSearchParams(q) };
    }
  }
  return null;
}

// Replaces the hash's query without rendering the page again (for filters and sorting).
export function setQuery(query) {
  const path = (location.hash.replace(/^#/, "") || "/").split("?")[0];
  const q = new URLSearchParams(query).toString();
  const hash = `#${path}${q ? `?${q}` : ""}`;
  if (hash !== location.hash) {
    quietHash = hash;
    history.replaceState(null, "", hash);
    document.getElementById("page").dataset.route = hash;
  }
}

function showUser() {
  const el = clear(document.getElementById("whoami"));
  const me = session.me;
  // The audit log is read by server admins and project admins; nobody else is offered it.
  const audit = document.querySelector("[data-nav='audit']");
  if (audit) {
    audit.hidden = !!session.auth && !(me && (me.server_admin
      || Object.values(me.roles || {}).includes("admin")));
  }
  if (!session.auth || !me) {
    if (session.auth) el.append(h("a", { href: "#/signin" }, "Sign in"));
    return;
  }
  el.append(
    h("span", { class: "user" }, me.name, me.server_admin ? " (admin)" : ""),
    " ",
    h("button", { type: "button", class: "link", id: "signout", onclick: async () => {
      await signOut();
      location.hash = "#/signin";
    } }, "Sign out"),
  );
}

// Tells the page has loaded its data, and for which address (tests wait on both, so that
// a page still showing the previous address is not taken for the next one).
function markReady(root) {
  root.dataset.route = location.hash;
  root.dataset.ready = "true";
}

// A message kept across the re-render that follows an action ("Tag set.", "request 3
// approved: ..."), shown at the top of the page it re-renders.
let flashed = null;

export async function rerender(message) {
  flashed = message;
  await render();
}

export async function render() {
  if (quietHash !== null && quietHash === location.hash) {
    quietHash = null;
    return;
  }
  quietHash = null;
  const ticket = ++rendering;
  const root = clear(document.getElementById("page"));
  root.dataset.page = "";
  root.dataset.ready = "false";
  const target = parse(location.hash);
  if (!target) {
    root.append(errorBox(new Error(`No page at ${location.hash}`)));
    markReady(root);
    return;
  }
  if (session.auth && !session.me && target.page !== "signin") {
    location.hash = `#/signin?next=${encodeURIComponent(location.hash || "#/")}`;
    return;
  }
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === NAV[target.page]);
  }
  showUser();
  root.dataset.page = target.page;
  if (flashed) {
    root.append(h("div", { class: "notice", role: "status" }, flashed));
    flashed = null;
  }
  try {
    const module = await import(`./pages/${target.page}.js`);
    if (ticket !== rendering) return;
    await module.default(root, target.params, target.query);
  } catch (err) {
    if (ticket !== rendering) return;
    if (!(err instanceof ApiError && err.status === 401)) console.warn(err);
    root.append(errorBox(err));
  }
  // Tests and users alike can tell a page has finished loading its data.
  if (ticket === rendering) markReady(root);
}

async function start() {
  // The first page's module loads while the session is asked for.
  const first = parse(location.hash);
  if (first) import(`./pages/${first.page}.js`).catch(() => {}); // render says what failed
  try {
    await loadSession();
  } catch (err) {
    document.getElementById("page").append(errorBox(err));
    return;
  }
  window.addEventListener("hashchange", render);
  await render();
}

start();
