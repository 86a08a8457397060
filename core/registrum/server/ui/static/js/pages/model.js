// One registered model: its aliases, promotion requests (approve and reject for those who
// may), versions, evaluation history across versions and every alias move.

import { api, can, session } from "../api.js";
import { rerender } from "../app.js";
import { describeAndTag } from "../edits.js";
import { act, errorBox, facts, fmtTime, fmtValue, h, link, route, section, table } from "../dom.js";
import { lineChart } from "../minichart.js";


// Every item of a paginated list route.
async function all(path, query = {}) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(path, { query: { ...query, limit: 1000, cursor } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

function lineageHref(name, version) {
  return route("lineage", { node: `model:${name}/${version}` });
}

function versionHref(name, version) {
  return route("models", name, "versions", String(version));
}

function runLink(runId) {
  return runId ? h("a", { href: route("runs", runId), class: "mono" }, runId.slice(0, 8)) : "";
}

function chips(items, cls = "alias") {
  return h("span", { class: "chips" }, items.map((x) => h("span", { class: cls }, x)));
}

function keyValues(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return "";
  return h("span", { class: "kv" },
    entries.map(([k, v]) => h("span", {}, h("span", { class: "muted" }, `${k} `), fmtValue(v))));
}

// -- header -------------------------------------------------------------------------

function header(model) {
  return [
    h("h1", {}, h("a", { href: "#/models", class: "muted" }, "Models"), " / ", model.name),
    model.description ? h("p", { class: "description" }, model.description) : null,
    facts([
      ["Project", link(route("projects", model.project), model.project)],
      ["Latest version", model.latest_version ? `v${model.latest_version}` : "none yet"],
      ["Tags", Object.keys(model.tags || {}).length ? keyValues(model.tags) : null],
      ["Created", fmtTime(model.created_at)],
      ["Updated", fmtTime(model.updated_at)],
    ]),
  ];
}

// -- aliases ------------------------------------------------------------------------

function aliasesSection(model, policy, history) {
  const lastMove = {};
  for (const move of history) lastMove[move.alias] = move;
  const rows = Object.entries(model.aliases || {}).map(([alias, version]) => ({ alias, version }));
  const protectedSet = new Set(policy.protected || []);
  for (const alias of protectedSet) {
    if (!(alias in (model.aliases || {}))) rows.push({ alias, version: null });
  }
  return section("Aliases", table([
    ["Alias", (r) => h("span", { class: "alias" }, r.alias)],
    ["Version", (r) => (r.version === null ? h("span", { class: "muted" }, "not set")
      : h("a", { href: versionHref(model.name, r.version) }, `v${r.version}`))],
    ["Protected", (r) => (protectedSet.has(r.alias) ? "yes: moves by approved request" : "no")],
    ["Last moved", (r) => (lastMove[r.alias] ? fmtTime(lastMove[r.alias].at) : "")],
    ["By", (r) => (lastMove[r.alias] ? lastMove[r.alias].actor : "")],
  ], rows, { cls: "aliases", empty: "No aliases yet." }));
}

function historySection(history) {
  const moves = [...history].reverse();
  return section("Alias history", table([
    ["When", (m) => fmtTime(m.at)],
    ["Alias", (m) => h("span", { class: "alias" }, m.alias)],
    ["From", (m) => (m.from_version === null ? "(unset)" : `v${m.from_version}`)],
    ["To", (m) => (m.to_version === null ? "(removed)" : `v${m.to_version}`)],
    ["By", (m) => m.actor],
    ["Request", (m) => (m.request_id ? `#${m.request_id}` : "")],
  ], moves, { cls: "alias-history", empty: "No alias has moved yet." }));
}

// -- approval requests --------------------------------------------------------------

function policyFacts(policy) {
  if (!policy.protected || !policy.protected.length) {
    return h("p", { class: "muted policy" }, "No alias is protected: aliases move directly.");
  }
  const gates = (policy.gates || []).map(gateText);
  return h("p", { class: "policy" },
    "Protected: ", chips(policy.protected), ". ",
    `Approved by ${policy.approver_role}s, ${policy.approvals_needed} approval(s) needed; `,
    policy.allow_self_approval ? "requesters may approve their own requests." :
      "requesters may not approve their own requests.",
    gates.length ? ` Gates: ${gates.join("; ")}.` : "");
}

function gateText(gate) {
  if (gate.type === "tags") {
    return `tags ${Object.entries(gate.tags).map(([k, v]) => (v === null ? k : `${k}=${v}`)).join(", ")}`;
  }
  const data = gate.dataset || `fingerprint ${gate.fingerprint}`;
  if (!gate.metric) return `an evaluation on ${data}`;
  return `${gate.metric} on ${data}, ${gate.direction} is better` +
    (gate.tolerance !== null && gate.tolerance !== undefined ? ` (tolerance ${gate.tolerance})` : "");
}

// Why the signed-in user may not approve or reject `request`; null when they may.
function refusal(request, policy, project) {
  const me = session.me;
  const role = policy.approver_role || "reviewer";
  if (!me || !can(project, role)) return `Approving needs ${role} on project ${project}.`;
  if (me.name === request.requested_by && !policy.allow_self_approval) {
    return "You opened this request: another approver decides it.";
  }
  if ((request.votes || []).some((v) => v.voter === me.name)) return "You have voted on this request.";
  return null;
}

function mayCancel(request, project) {
  const me = session.me;
  return !!me && (me.name === request.requested_by || can(project, "admin"));
}

async function decide(request, action, comment, box) {
  const status = box.querySelector(".decision-status");
  status.replaceChildren();
  try {
    const body = comment ? { comment } : {};
    const done = await api(`/requests/${request.id}/${action}`, { method: "POST", body });
    const notice = done.state === "approved"
      ? `Request #${request.id} approved: ${done.alias} now points at v${done.version}.`
      : done.state === "open"
        ? `Your approval of request #${request.id} is in: ${done.approvals} of ${done.approvals_needed}.`
        : `Request #${request.id} ${done.state}.`;
    await rerender(notice);
  } catch (err) {
    status.replaceChildren(errorBox(err)); // the buttons stay, for another try
  }
}

function rejectForm(request, box) {
  const reason = h("input", { type: "text", class: "reason", name: "reason", size: 40,
    placeholder: "why (shown to the requester)", required: true });
  const form = h("form", { class: "reject-form", onsubmit: async (event) => {
    event.preventDefault();
    if (!reason.value.trim()) return;
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    await decide(request, "reject", reason.value.trim(), box);
    for (const b of form.querySelectorAll("button")) b.disabled = false; // still here: it failed
  } },
  reason,
  h("button", { type: "submit", class: "danger confirm-reject" }, "Reject request"),
  h("button", { type: "button", class: "keep", onclick: () => form.remove() }, "Keep open"));
  return { form, reason };
}

// Why approving `request` cannot succeed now, whoever clicks: a gate fails, or the alias
// moved since the request was opened (the move it asks for is stale). Null when it can.
function blocked(request, aliases) {
  const failing = (request.gates || []).filter((g) => !g.passed);
  if (failing.length) return `A gate fails: ${failing.map((g) => g.detail).join("; ")}.`;
  const now = (aliases || {})[request.alias] ?? null;
  if ((request.from_version ?? null) !== now) {
    return `Stale: ${request.alias} has moved to ${now === null ? "nothing" : `v${now}`} since this request; open a new one.`;
  }
  return null;
}

function actions(request, policy, project, aliases) {
  const box = h("div", { class: "decision" });
  const row = h("div", { class: "actions" });
  box.append(row, h("div", { class: "decision-status" }));
  const why = refusal(request, policy, project);
  if (why) {
    row.append(h("span", { class: "muted why" }, why));
  } else {
    const stuck = blocked(request, aliases);
    const approve = h("button", { type: "button", class: "primary approve", disabled: !!stuck,
      title: stuck, onclick: async () => {
        approve.disabled = true;
        await decide(request, "approve", null, box);
        approve.disabled = false;
      } }, "Approve");
    if (stuck) row.append(h("span", { class: "muted why blocked" }, stuck), " ");
    const reject = h("button", { type: "button", class: "danger reject", onclick: () => {
      if (box.querySelector(".reject-form")) return;
      const { form, reason } = rejectForm(request, box);
      box.append(form);
      reason.focus();
    } }, "Reject…");
    row.append(approve, reject);
  }
  if (mayCancel(request, project)) {
    row.append(h("button", { type: "button", class: "link cancel", onclick: () =>
      decide(request, "cancel", null, box) }, "Cancel request"));
  }
  return box;
}

function gatesList(gates) {
  if (!gates || !gates.length) return null;
  return h("ul", { class: "gates" }, gates.map((g) => h("li", { class: g.passed ? "pass" : "fail" },
    h("span", { class: "mark" }, g.passed ? "✓" : "✗"), " ", g.detail)));
}

function requestCard(request, policy, project, aliases) {
  const open = request.state === "open";
  const move = `${request.alias}: ${request.from_version ? `v${request.from_version}` : "(unset)"} → v${request.version}`;
  return h("div", { class: "card request", dataset: { requestId: request.id, state: request.state } },
    h("h3", {}, h("span", { class: `badge status-${request.state}` }, request.state), " ",
      `#${request.id} `, h("span", { class: "move" }, move)),
    facts([
      ["Requested by", `${request.requested_by} at ${fmtTime(request.created_at)}`],
      ["Comment", request.comment],
      ["Approvals", `${request.approvals} of ${request.approvals_needed}`],
      ["Votes", (request.votes || []).length ? h("span", {}, request.votes.map((v) =>
        h("span", { class: "vote" }, `${v.voter}: ${v.decision}${v.comment ? ` (“${v.comment}”)` : ""}`)))
        : null],
      ["Decided", request.decided_by ? `${request.decided_by} at ${fmtTime(request.decided_at)}` : null],
      ["Reason", request.decision_comment],
    ]),
    gatesList(request.gates),
    open ? actions(request, policy, project, aliases) : null);
}

function requestsSection(requests, policy, project, aliases) {
  const open = requests.filter((r) => r.state === "open");
  const closed = requests.filter((r) => r.state !== "open");
  return section("Approval requests",
    policyFacts(policy),
    requests.length
      ? h("div", { class: "requests" }, [...open, ...closed].map((r) => requestCard(r, policy, project, aliases)))
      : h("p", { class: "empty" }, "No promotion requests yet."));
}

// -- versions -----------------------------------------------------------------------

function versionsSection(name, versions) {
  return section("Versions", h("div", { class: "scroll-x" }, table([
    ["Version", (v) => h("strong", { id: `version-${v.version}` }, h("a", { href: versionHref(name, v.version), class: "version-link" }, `v${v.version}`))],
    ["Created", (v) => fmtTime(v.created_at)],
    ["Source run", (v) => runLink(v.run_id)],
    ["Flavor", (v) => v.flavor || ""],
    ["Stage / tags", (v) => keyValues(v.tags)],
    ["Metrics", (v) => keyValues(v.metrics)],
    ["Aliases", (v) => chips(v.aliases || [])],
    ["Lineage", (v) => h("a", { href: lineageHref(name, v.version), class: "lineage" }, "lineage")],
  ], versions, { cls: "versions", empty: "No versions yet." })));
}

// -- evaluation history -------------------------------------------------------------

function datasetLabel(datasets, id) {
  if (id === null) return "no dataset";
  const d = datasets.find((x) => x.id === id);
  return d ? `${d.name} v${d.version}` : id;
}

// One chart per (dataset, metric): the metric's value for each version evaluated on it.
function evaluationGroups(history) {
  const groups = new Map();
  for (const cell of history.evaluations) {
    const key = `${cell.dataset}\u0000${cell.metric}`;
    if (!groups.has(key)) groups.set(key, { dataset: cell.dataset, metric: cell.metric, cells: [] });
    groups.get(key).cells.push(cell);
  }
  return [...groups.values()].sort((a, b) =>
    String(a.dataset).localeCompare(String(b.dataset)) || a.metric.localeCompare(b.metric));
}

function evaluationsSection(history) {
  const groups = evaluationGroups(history);
  const cards = h("div", { class: "cards evaluations" });
  const out = section("Evaluation history", groups.length ? cards : h("p", { class: "empty" },
    "No evaluations yet: runs that use_model() a version and log metrics show up here."));
  out.draw = () => {
    for (const g of groups) {
      const title = `${g.metric} on ${datasetLabel(history.datasets, g.dataset)}`;
      const plot = h("div", { class: "eval-chart", dataset: { metric: g.metric,
        dataset: g.dataset === null ? "" : g.dataset } });
      const runs = h("p", { class: "muted small" }, "Runs: ", g.cells.map((c, i) =>
        [i ? ", " : "", h("a", { href: route("runs", c.run_id) }, `v${c.version}`)]));
      cards.append(h("div", { class: "card" }, h("h3", {}, title), plot, runs));
      const points = g.cells.map((c) => [c.version, c.value]);
      lineChart(plot, [{ label: g.metric, points }], { xLabel: "version", integerX: true,
        xFormat: (x) => (Number.isInteger(x) ? `v${x}` : "") });
    }
  };
  return out;
}

// -- the page -----------------------------------------------------------------------

export default async function render(root, params) {
  const name = params.name;
  const enc = encodeURIComponent(name);
  const model = await api(`/models/${enc}`);
  const [versions, policy, requests, history, evaluations] = await Promise.all([
    all(`/models/${enc}/versions`),
    api(`/models/${enc}/policy`),
    api(`/models/${enc}/requests`, { query: { limit: 100 } }).then((p) => p.items),
    all(`/models/${enc}/aliases/history`),
    api(`/models/${enc}/evaluations`),
  ]);
  const evals = evaluationsSection(evaluations);
  root.append(
    ...header(model).filter(Boolean),
    aliasesSection(model, policy, history),
    requestsSection(requests, policy, model.project, model.aliases),
    versionsSection(name, versions),
    evals,
    historySection(history),
    ...[changeIt(model)].filter(Boolean),
  );
  evals.draw();
}

// What the roles allow on the model itself: editors change its description and tags,
// project admins delete it (with its versions; restorable from the list of deleted ones).
function changeIt(model) {
  const parts = [];
  const status = h("div", { class: "action-status", id: "model-status" });
  const path = `/models/${encodeURIComponent(model.name)}`;
  if (can(model.project, "editor")) {
    parts.push(...describeAndTag(model, { prefix: "model", path, status }));
  }
  if (can(model.project, "admin")) {
    const remove = h("button", { type: "button", id: "delete-model", class: "danger", onclick: () => act(remove, status,
      () => api(path, { method: "DELETE" }), async () => {
        location.hash = "#/models";
      }) }, "Delete this model");
    parts.push(h("div", { class: "edit-lifecycle" }, remove));
  }
  return parts.length ? section("Change it", status, ...parts) : null;
}
