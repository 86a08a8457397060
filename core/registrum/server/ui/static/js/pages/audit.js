// The audit log: every change to the store, newest first, filtered by actor, action,
// project, entity and time; each event opens to show the entity before and after. A server
// admin can check the whole hash chain. Filters and page live in the hash query.

import { setQuery } from "../app.js";
import { api, session } from "../api.js";
import { clear, errorBox, fmtNum, fmtTime, h, link, pageThrough, route } from "../dom.js";

const PAGE_SIZE = 50;
const TEXT_FILTERS = [
  ["actor", "Actor", "e.g. alice"],
  ["action", "Action", "e.g. alias.moved"],
  ["project", "Project", ""],
  ["entity_type", "Entity type", "run, model, alias…"],
  ["entity_id", "Entity id", ""],
];
const TIME_FILTERS = [
  ["since", "From"],
  ["until", "Until"],
];
// Suggestions for the action box; any action may be typed.
const ACTIONS = [
  "alias.deleted", "alias.moved", "approval.decided", "approval.requested", "approval.voted",
  "artifact.created", "blob.stored", "dataset.created", "member.added", "member.changed",
  "member.removed", "metrics.logged", "model.created", "model.updated", "model_version.created",
  "model_version.updated", "policy.updated", "project.created", "run.code_set", "run.created",
  "run.environment_set", "run.finished", "run.input_added", "run.params_logged", "run.resumed",
  "run.status", "run.tag_deleted", "run.tags_set", "run.updated", "token.created",
  "token.reissued", "token.revoked", "user.created", "user.disabled", "webhook.created", "webhook.deleted",
];
// What tracking writes by the thousand: left out unless "Governance events only" is
// unticked (or an action is asked for by name), so that registrations, alias moves,
// approvals, access changes and deletions are what the page shows first.
export const TRACKING_ACTIONS = [
  "artifact.created", "artifact.superseded", "blob.stored", "dataset.created",
  "logged_model.created", "logged_model.file_written", "logged_model.frozen",
  "logged_model.status_set", "metrics.logged", "metrics.step_scale_set", "project.tags_set",
  "run.code_set", "run.created", "run.environment_set", "run.file_written", "run.files_deleted",
  "run.finished", "run.input_added", "run.media_logged", "run.outputs_logged",
  "run.params_logged", "run.resumed", "run.status", "run.tag_deleted", "run.tags_set",
  "run.updated",
];
const ENTITY_TYPES = ["alias", "artifact", "blob", "dataset", "membership", "model",
  "model_version", "project", "run", "token", "user", "webhook"];

// Where an event's entity can be looked at in the UI, if anywhere.
function entityHref(event) {
  const id = event.entity_id;
  switch (event.entity_type) {
    case "run":
      return route("runs", id);
    case "project":
      return route("projects", id);
    case "model":
      return route("models", id);
    case "model_version":
    case "alias":
      return route("models", id.split("@")[0]);
    case "dataset": {
      const [, name, version] = id.split("/");
      return name && version ? route("lineage", { node: `dataset:${name}/${version}` }) : null;
    }
    default:
      return null;
  }
}

// A datetime-local value ("2024-05-01T09:30") as seconds since the epoch, local time.
function epoch(local) {
  const ms = new Date(local).getTime();
  return Number.isFinite(ms) ? ms / 1000 : null;
}

function json(value) {
  return value === null || value === undefined ? "—" : JSON.stringify(value, null, 2);
}

function details(event) {
  return h(
    "div",
    { class: "audit-details" },
    h("div", {}, h("h4", {}, "Before"), h("pre", {}, json(event.before))),
    h("div", {}, h("h4", {}, "After"), h("pre", {}, json(event.after))),
    h("p", { class: "muted mono" }, `event ${event.id} · hash ${event.hash}`),
  );
}

export default async function render(root, params, query) {
  const state = { chain: (query.get("at") || "").split(".").filter(Boolean), all: query.get("all") === "1" };
  for (const [name] of [...TEXT_FILTERS, ...TIME_FILTERS]) state[name] = query.get(name) || "";
  let page = { items: [], next_cursor: null };

  const inputs = {};
  const fields = [];
  for (const [name, label, placeholder] of TEXT_FILTERS) {
    inputs[name] = h("input", { type: "text", name, id: `audit-${name}`, value: state[name], placeholder,
      list: name === "action" ? "audit-actions" : name === "entity_type" ? "audit-entity-types" : null,
      autocomplete: "off", spellcheck: "false" });
    fields.push(h("label", {}, label, inputs[name]));
  }
  for (const [name, label] of TIME_FILTERS) {
    inputs[name] = h("input", { type: "datetime-local", name, id: `audit-${name}`, value: state[name], step: 1 });
    fields.push(h("label", {}, label, inputs[name]));
  }
  const message = h("div", { id: "audit-message" });
  const body = h("tbody");
  const table = h("table", { class: "grid audit", id: "audit" },
    h("thead", {}, h("tr", {}, ["Time", "Actor", "Action", "Project", "Entity", ""].map((t) => h("th", {}, t)))),
    body);
  const empty = h("p", { class: "empty", id: "audit-empty", hidden: true });
  const prev = h("button", { type: "button", id: "prev" }, "‹ Newer");
  const next = h("button", { type: "button", id: "next" }, "Older ›");
  const pageLabel = h("span", { id: "page-label", class: "muted" });

  function writeState() {
    const pairs = [];
    for (const [name] of [...TEXT_FILTERS, ...TIME_FILTERS]) if (state[name]) pairs.push([name, state[name]]);
    if (state.all) pairs.push(["all", "1"]);
    if (state.chain.length) pairs.push(["at", state.chain.join(".")]);
    setQuery(pairs);
  }

  function filterBy(name, value) {
    return h("button", { type: "button", class: "link", title: `Show only ${name.replace("_", " ")} ${value}`,
      onclick: () => {
        inputs[name].value = value;
        form.requestSubmit();
      } }, value);
  }

  function eventRows(event) {
    const href = entityHref(event);
    const entity = [h("span", { class: "muted" }, `${event.entity_type} `),
      href ? link(href, event.entity_id) : event.entity_id];
    const more = h("tr", { class: "audit-more", hidden: true },
      h("td", { colspan: 6 }, details(event)));
    const toggle = h("button", { type: "button", class: "link toggle", "aria-expanded": "false" }, "Details");
    toggle.addEventListener("click", () => {
      more.hidden = !more.hidden;
      toggle.setAttribute("aria-expanded", String(!more.hidden));
      toggle.textContent = more.hidden ? "Details" : "Hide";
    });
    const row = h("tr", { dataset: { eventId: event.id, action: event.action } },
      h("td", {}, fmtTime(event.at)),
      h("td", {}, filterBy("actor", event.actor)),
      h("td", {}, filterBy("action", event.action)),
      h("td", {}, event.project ? filterBy("project", event.project) : ""),
      h("td", { class: "entity" }, entity),
      h("td", {}, toggle));
    return [row, more];
  }

  function draw() {
    const rows = document.createDocumentFragment();
    for (const event of page.items) rows.append(...eventRows(event));
    clear(body).append(rows);
    table.hidden = !page.items.length;
    const filtered = [...TEXT_FILTERS, ...TIME_FILTERS].some(([name]) => state[name]);
    empty.hidden = page.items.length > 0 || message.hasChildNodes();
    empty.textContent = filtered ? "No audit events match these filters."
      : state.all ? "No audit events yet." : "No governance events yet: untick \"Governance events only\" to see every event.";
    const first = state.chain.length * PAGE_SIZE;
    prev.disabled = !state.chain.length;
    next.disabled = !page.next_cursor;
    pageLabel.textContent = page.items.length
      ? `Events ${fmtNum(first + 1)}–${fmtNum(first + page.items.length)}, newest first` : "";
  }

  async function load() {
    clear(message);
    const q = { limit: PAGE_SIZE, cursor: state.chain.length ? state.chain[state.chain.length - 1] : null };
    for (const [name] of TEXT_FILTERS) q[name] = state[name] || null;
    if (!state.all && !state.action) q.exclude_action = TRACKING_ACTIONS;
    for (const [name, label] of TIME_FILTERS) {
      if (!state[name]) continue;
      q[name] = epoch(state[name]);
      if (q[name] === null) message.append(errorBox(new Error(`${label}: not a date and time`)));
    }
    if (message.hasChildNodes()) {
      page = { items: [], next_cursor: null };
    } else {
      try {
        page = await api("/audit", { query: q });
      } catch (err) {
        page = { items: [], next_cursor: null };
        message.append(errorBox(err));
      }
    }
    draw();
  }

  async function reload() {
    root.dataset.ready = "false";
    writeState();
    try {
      await load();
    } finally {
      root.dataset.ready = "true";
    }
  }

  const governance = h("input", { type: "checkbox", id: "audit-governance", checked: !state.all,
    onchange: () => form.requestSubmit() });
  fields.push(h("label", { class: "inline", title: "Leave out what tracking writes by the thousand: metrics, params, tags, files, blobs" },
    governance, " Governance events only"));
  const form = h("form", { class: "audit-filters", id: "audit-filters", onsubmit: (event) => {
    event.preventDefault();
    for (const [name] of [...TEXT_FILTERS, ...TIME_FILTERS]) state[name] = inputs[name].value.trim();
    state.all = !governance.checked;
    state.chain = [];
    reload();
  } }, fields,
  h("div", { class: "buttons" },
    h("button", { type: "submit", id: "apply-filters", class: "primary" }, "Filter"),
    h("button", { type: "button", id: "clear-filters", onclick: () => {
      for (const input of Object.values(inputs)) input.value = "";
      form.requestSubmit();
    } }, "Clear")));

  pageThrough(state, prev, next, () => page, reload);

  root.append(...[
    h("h1", {}, "Audit log"),
    h("datalist", { id: "audit-actions" }, ACTIONS.map((a) => h("option", { value: a }))),
    h("datalist", { id: "audit-entity-types" }, ENTITY_TYPES.map((a) => h("option", { value: a }))),
    form,
    session.me && session.me.server_admin ? verifier() : null,
    message,
    h("div", { class: "scroll-x" }, table),
    empty,
    h("div", { class: "pager" }, prev, next, pageLabel),
  ].filter(Boolean));
  await load();
}

// "Verify chain": recomputes every event's hash and link on the server, and checks the chain
// against its signed anchors (server admins only).
function verifier() {
  const result = h("span", { id: "verify-result", role: "status" });
  const button = h("button", { type: "button", id: "verify" }, "Verify chain");
  button.addEventListener("click", async () => {
    button.disabled = true;
    clear(result).append(h("span", { class: "muted" }, "Checking every event…"));
    try {
      const report = await api("/audit/verify");
      clear(result);
      if (report.ok) {
        result.append(h("span", { class: "ok" },
          `✓ Chain intact: ${fmtNum(report.events)} events checked, and it extends all ` +
          `${fmtNum(report.anchors)} signed anchors.`));
      } else {
        result.append(h("div", { class: "error" },
          `✗ The chain is broken (${fmtNum(report.events)} events checked):`,
          h("ul", {}, report.problems.map((p) =>
            h("li", {}, p.anchor ? p.problem : `event ${p.id}: ${p.problem}`)))));
      }
    } catch (err) {
      clear(result).append(errorBox(err));
    } finally {
      button.disabled = false;
    }
  });
  return h("div", { class: "toolbar verify" }, button, result);
}
