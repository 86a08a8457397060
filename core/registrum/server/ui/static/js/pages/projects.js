// Projects: every project the user may see, with its run count; each opens its runs table.

import { api } from "../api.js";
import { fmtNum, fmtTime, h, link, route } from "../dom.js";

const PAGE_SIZE = 100;

function firstRunHelp() {
  const snippet = [
    "import registrum",
    "",
    `run = registrum.init(project="my-project", config={"lr": 1e-3}, store="${location.origin}")`,
    'run.log({"loss": 0.31, "acc": 0.9}, step=1)',
    "run.finish()",
  ].join("\n");
  return h(
    "div",
    { class: "empty-state", id: "no-projects" },
    h("p", {}, "No projects yet. A project appears when its first run is logged, for example:"),
    h("pre", {}, snippet),
    h("p", { class: "muted" }, "Or try ", h("code", {}, "registrum demo"),
      ", which logs a small training run with metrics and a registered model."),
  );
}

function projectRow(project) {
  return h(
    "tr",
    { dataset: { project: project.name } },
    h("td", {}, link(route("projects", project.name), project.name)),
    h("td", { class: "muted" }, project.description || ""),
    h("td", { class: "num" }, project.runs === undefined ? "" : fmtNum(project.runs)),
    h("td", {}, fmtTime(project.created_at)),
  );
}

export default async function render(root) {
  root.append(h("h1", {}, "Projects"));
  const body = h("tbody");
  const more = h("button", { type: "button", id: "more-projects", hidden: true }, "Show more");
  let cursor = null;

  async function load() {
    const page = await api("/projects", { query: { run_counts: true, limit: PAGE_SIZE, cursor } });
    const rows = document.createDocumentFragment();
    for (const project of page.items) rows.append(projectRow(project));
    body.append(rows);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    return page.items.length;
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await load();
    } finally {
      more.disabled = false;
    }
  });

  if (!(await load())) {
    root.append(firstRunHelp());
    return;
  }
  root.append(
    h(
      "table",
      { class: "grid", id: "projects" },
      h("thead", {}, h("tr", {}, h("th", {}, "Project"), h("th", {}, "Description"),
        h("th", { class: "num" }, "Runs"), h("th", {}, "Created"))),
      body,
    ),
    more,
  );
}
