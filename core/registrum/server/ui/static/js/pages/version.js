// One model version (#/models/NAME/versions/N): how to load it, its metrics, params snapshot,
// signature, files, source run, datasets, evaluations, aliases and tags. Editors change its
// description, tags and aliases (a protected alias through a promotion request); project
// admins delete and restore it. Each action shows the server's answer in place.

import { ApiError, api, can, download } from "../api.js";
import { describeAndTag } from "../edits.js";
import { previewButton } from "../media.js";
import { rerender } from "../app.js";
import {
  act as run, badge, errorBox, facts, fmtBytes, fmtNum, fmtTime, fmtValue, h, link, route, section, table,
} from "../dom.js";

// What each flavor's own loader is called.
const LOADERS = {
  sklearn: "registrum_sklearn",
  xgboost: "registrum_xgboost",
  lightning: "registrum_lightning",
  keras: "registrum_keras",
};

export default async function render(root, params) {
  const name = params.name;
  const enc = encodeURIComponent(name);
  const ref = params.version;
  // All at once: a version number is known from the address; an alias is resolved first.
  const known = /^\d+$/.test(ref) ? Number(ref) : null;
  const found = known !== null ? byNumber(name, known) : api(`/models/${enc}/versions/${encodeURIComponent(ref)}`);
  const upstream = (number) => api("/lineage", { query: { node: `model:${name}/${number}`, direction: "up", depth: 2 } })
    .catch((err) => (err.status === 404 ? { nodes: [], edges: [] } : Promise.reject(err))); // deleted
  const [version, policy, lineage, evaluations] = await Promise.all([
    found,
    api(`/models/${enc}/policy`),
    known !== null ? upstream(known) : found.then((v) => upstream(v.version)),
    api(`/models/${enc}/evaluations`),
  ]);
  const status = h("div", { class: "action-status", id: "version-status" });
  root.append(...[
    header(version),
    status,
    loadSnippet(version),
    h("div", { class: "split" }, metricsSection(version), paramsSection(version)),
    signatureSection(version),
    filesSection(version, status),
    datasetsSection(version, lineage),
    evaluationsSection(version, evaluations),
    editSection(version, policy, status),
  ].filter(Boolean));
}

// A version by its number, deleted ones included (they stay restorable for a while).
async function byNumber(name, number) {
  let cursor = null;
  do {
    const page = await api(`/models/${encodeURIComponent(name)}/versions`,
      { query: { deleted: true, limit: 1000, cursor } });
    const found = page.items.find((v) => v.version === number);
    if (found) return found;
    cursor = page.next_cursor;
  } while (cursor);
  throw new ApiError(404, `model ${name} has no version ${number}`, null);
}

function header(version) {
  const deleted = version.deleted_at !== null && version.deleted_at !== undefined;
  return h("div", { class: "version-header" },
    h("h1", {},
      h("a", { href: "#/models", class: "muted" }, "Models"), " / ",
      link(route("models", version.model), version.model), ` / v${version.version}`, " ",
      deleted ? badge("deleted") : null),
    facts([
      ["Project", link(route("projects", version.project), version.project)],
      ["Source run", version.run_id ? link(route("runs", version.run_id), h("code", {}, version.run_id.slice(0, 8))) : "none (registered from files)"],
      ["Flavor", version.flavor || "none recorded"],
      ["Aliases", version.aliases.length ? h("span", { class: "chips" }, version.aliases.map((a) => h("span", { class: "alias" }, a))) : "none"],
      ["Tags", Object.keys(version.tags || {}).length ? h("span", { class: "kv" },
        Object.entries(version.tags).map(([k, v]) => h("span", {}, h("span", { class: "muted" }, `${k} `), v))) : null],
      ["Description", version.description],
      ["Created", fmtTime(version.created_at)],
      ["Updated", fmtTime(version.updated_at)],
      ["Deleted", deleted ? fmtTime(version.deleted_at) : null],
      ["Lineage", link(route("lineage", { node: `model:${version.model}/${version.version}` }), "Show the lineage graph")],
    ]));
}

// -- how to load it ------------------------------------------------------------------------

function loadSnippet(version) {
  const ref = `${version.model}@${version.version}`;
  const lines = [
    ["Any flavor", `import registrum\nmodel = registrum.load_model("${ref}")\nmodel.predict(data)`],
  ];
  const own = LOADERS[version.flavor];
  if (own) lines.push([`The ${version.flavor} object`, `from ${own} import load_model\nmodel = load_model("${ref}")`]);
  const files = (version.artifact && version.artifact.files) || [];
  if (files.some((f) => f.path === "MLmodel" || f.path.endsWith("/MLmodel"))) {
    lines.push(["MLflow", `import mlflow\nmodel = mlflow.pyfunc.load_model("models:/${version.model}/${version.version}")`]);
  }
  lines.push(["Serve it", `registrum serve ${ref}`]);
  return section("Load it", h("div", { class: "snippets" }, lines.map(([label, code]) => {
    const pre = h("pre", { class: "snippet" }, code);
    const copy = h("button", { type: "button", class: "copy", onclick: async () => {
      try {
        await navigator.clipboard.writeText(code);
        copy.textContent = "Copied";
      } catch {
        getSelection().selectAllChildren(pre); // no clipboard (not a secure origin): select it
        copy.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => { copy.textContent = "Copy"; }, 2000);
    } }, "Copy");
    return h("div", { class: "snippet-box", dataset: { snippet: label } }, h("div", { class: "snippet-head" }, h("span", { class: "muted small" }, label), copy), pre);
  })));
}

// -- what it is ----------------------------------------------------------------------------

function metricsSection(version) {
  const rows = Object.entries(version.metrics || {}).sort(([a], [b]) => a.localeCompare(b));
  return section("Metrics", table([["Metric", ([k]) => k], ["Value", ([, v]) => fmtNum(v)]], rows,
    { cls: "version-metrics", empty: "No metrics recorded with this version." }));
}

function paramsSection(version) {
  const rows = Object.entries(version.params || {}).sort(([a], [b]) => a.localeCompare(b));
  return section("Params", table([["Param", ([k]) => k], ["Value", ([, v]) => fmtValue(v)]], rows,
    { cls: "version-params", empty: "No params snapshot." }));
}

function signatureSection(version) {
  const sig = version.signature;
  if (!sig) {
    return section("Signature", h("p", { class: "empty" },
      "No signature: inputs go to the model as given (register_model(..., signature=...) records one)."));
  }
  const io = (items) => table([
    ["Name", (x) => (x.name === null || x.name === undefined ? h("span", { class: "muted" }, "(array)") : x.name)],
    ["Type", (x) => x.dtype || x.type || ""],
    ["Shape", (x) => (x.shape ? `(${x.shape.map((d) => (d === null ? "N" : d)).join(", ")})` : "")],
  ], items || [], { empty: "none recorded" });
  return section("Signature", h("div", { class: "split signature" },
    h("div", {}, h("h3", {}, "Inputs"), io(sig.inputs)),
    h("div", {}, h("h3", {}, "Outputs"), io(sig.outputs))),
    sig.method ? h("p", { class: "muted small" }, `Predicts with ${sig.method}.`) : null);
}

function filesSection(version, status) {
  const files = (version.artifact && version.artifact.files) || [];
  const shown = h("div", { class: "version-preview" });
  const total = files.reduce((n, f) => n + f.size, 0);
  return section("Files",
    h("p", { class: "muted" }, `${fmtNum(files.length)} file${files.length === 1 ? "" : "s"}, ${fmtBytes(total)}`),
    table([
      ["Path", (f) => f.path],
      ["Size", (f) => fmtBytes(f.size)],
      ["sha256", (f) => h("code", { title: f.sha256 }, f.sha256.slice(0, 12))],
      ["", (f) => h("span", {}, h("button", { type: "button", class: "download", dataset: { path: f.path }, onclick: async () => {
        try {
          await download(`/blobs/${f.sha256}`, f.path.split("/").pop());
        } catch (err) {
          status.replaceChildren(errorBox(err));
        }
      } }, "Download"), " ", previewButton(f, `/blobs/${f.sha256}`, shown))],
    ], files, { cls: "version-files", empty: "This version holds no files." }), shown);
}

function datasetsSection(version, lineage) {
  const datasets = (lineage.nodes || []).filter((n) => n.kind === "dataset");
  return section("Datasets", table([
    ["Dataset", (n) => n.label],
    ["Rows", (n) => (n.rows ?? "")],
    ["Fingerprint", (n) => (n.fingerprint ? h("code", { title: n.fingerprint }, n.fingerprint.slice(0, 16)) : "")],
    ["Lineage", (n) => link(route("lineage", { node: n.id }), "lineage")],
  ], datasets, { cls: "version-datasets", empty: "Its source run recorded no datasets (run.use_dataset(...))." }));
}

function evaluationsSection(version, history) {
  const mine = (history.evaluations || []).filter((c) => c.version === version.version);
  const label = (id) => {
    if (id === null) return "no dataset";
    const d = (history.datasets || []).find((x) => x.id === id);
    return d ? `${d.name} v${d.version}` : String(id);
  };
  return section("Evaluations", table([
    ["Metric", (c) => c.metric],
    ["Dataset", (c) => label(c.dataset)],
    ["Value", (c) => fmtNum(c.value)],
    ["Run", (c) => link(route("runs", c.run_id), h("code", {}, c.run_id.slice(0, 8)))],
  ], mine, { cls: "version-evaluations", empty: "No evaluations yet: runs that use_model() this version and log metrics show up here." }));
}

// -- actions -------------------------------------------------------------------------------

function editSection(version, policy, status) {
  const project = version.project;
  const deleted = version.deleted_at !== null && version.deleted_at !== undefined;
  const enc = encodeURIComponent(version.model);
  const path = `/models/${enc}/versions/${version.version}`;
  const parts = [];
  const act = (button, work, message) => run(button, status, work, () => rerender(message));
  if (can(project, "editor") && !deleted) {
    parts.push(...describeAndTag(version, { prefix: "version", path, status }));

    const protectedSet = new Set(policy.protected || []);
    const alias = h("input", { id: "alias-name", placeholder: "alias, e.g. champion", size: 20 });
    const move = h("button", { type: "button", id: "move-alias", onclick: () => {
      const name = alias.value.trim();
      if (protectedSet.has(name)) {
        act(move, () => api(`/models/${enc}/requests`, { method: "POST",
          body: { alias: name, version: version.version, comment: "from the version page" } }),
        `@${name} is protected: a promotion request was opened for a reviewer.`);
      } else {
        act(move, () => api(`/models/${enc}/aliases/${encodeURIComponent(name)}`, { method: "PUT",
          body: { version: version.version } }), `@${name} now points at v${version.version}.`);
      }
    } }, "Point the alias here");
    const unsetters = version.aliases.filter((a) => !protectedSet.has(a)).map((a) => {
      const b = h("button", { type: "button", class: "link remove-alias", dataset: { alias: a }, onclick: () => act(b,
        () => api(`/models/${enc}/aliases/${encodeURIComponent(a)}`, { method: "DELETE" }), `@${a} removed.`) }, `remove @${a}`);
      return b;
    });
    parts.push(h("div", { class: "edit-aliases" }, alias, " ", move, " ", unsetters,
      protectedSet.size ? h("p", { class: "muted small" }, `Protected (moved by an approved request): ${[...protectedSet].join(", ")}.`) : null));
  }
  if (can(project, "admin")) {
    const b = deleted
      ? h("button", { type: "button", id: "restore-version", onclick: () => act(b,
        () => api(`${path}/restore`, { method: "POST" }), `v${version.version} restored.`) }, "Restore this version")
      : h("button", { type: "button", id: "delete-version", class: "danger", onclick: () => act(b,
        () => api(path, { method: "DELETE" }), `v${version.version} deleted: restore it here within the grace period.`) }, "Delete this version");
    parts.push(h("div", { class: "edit-lifecycle" }, b));
  }
  if (!parts.length) return null;
  return section("Change it", ...parts);
}
