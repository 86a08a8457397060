// The model registry: every registered model the user may read, by name.

import { api } from "../api.js";
import { errorBox, fmtTime, h, link, route, table } from "../dom.js";

const PAGE = 100;

function aliasChips(model) {
  const entries = Object.entries(model.aliases || {});
  if (!entries.length) return "";
  return h("span", { class: "aliases" },
    entries.map(([alias, version]) =>
      h("a", { class: "alias", href: route("models", model.name), title: `${alias} -> v${version}` },
        `${alias}: v${version}`)));
}

const COLUMNS = [
  ["Name", (m) => link(route("models", m.name), m.name)],
  ["Project", (m) => link(route("projects", m.project), m.project)],
  ["Description", (m) => h("span", { class: "clip" }, m.description || "")],
  ["Latest version", (m) => (m.latest_version ? `v${m.latest_version}` : "none yet")],
  ["Aliases", aliasChips],
  ["Updated", (m) => fmtTime(m.updated_at)],
];

function projectFilter(current) {
  const input = h("input", { type: "search", id: "model-project", name: "project",
    placeholder: "all projects", value: current || "", size: 24 });
  return h("form", { class: "toolbar", onsubmit: (event) => {
    event.preventDefault();
    const project = input.value.trim();
    location.hash = route("models", project ? { project } : null);
  } }, h("label", { for: "model-project" }, "Project"), input,
  h("button", { type: "submit" }, "Show"));
}

export default async function render(root, params, query) {
  const project = query.get("project") || null;
  const models = [];
  let cursor = null;
  const body = h("div", { id: "models" });
  const more = h("button", { type: "button", id: "more-models", hidden: true });

  async function load() {
    const page = await api("/models", { query: { project, limit: PAGE, cursor } });
    models.push(...page.items);
    cursor = page.next_cursor;
    body.replaceChildren(table(COLUMNS, models, {
      cls: "models",
      empty: project
        ? `Project ${project} has no registered models yet.`
        : "No models yet. Register one from a run: run.register_model(\"name\", path=...).",
    }));
    more.hidden = !cursor;
    more.textContent = `Show ${PAGE} more`;
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await load();
    } catch (err) {
      body.append(errorBox(err));
    }
    more.disabled = false;
  });
  root.append(h("h1", {}, "Models"), projectFilter(project), body, h("div", { class: "pager" }, more));
  await load();
}
