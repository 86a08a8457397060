// The lineage graph around one node (a model version, run, dataset, artifact or commit):
// data flows left to right, from datasets and code through runs to model versions and the
// runs that evaluated or fine-tuned them. Clicking a node centres the graph on it.

import { api } from "../api.js";
import { errorBox, fmtNum, h, route, table } from "../dom.js";

const NODE_W = 190;
const NODE_H = 46;
const GAP_X = 90;
const GAP_Y = 18;
const PAD = 24;
const DEPTHS = [1, 2, 3, 4, 5, 6, 8, 10];
const DIRECTIONS = [["both", "upstream and downstream"], ["up", "upstream"], ["down", "downstream"]];
const KIND_ORDER = { dataset: 0, code: 1, artifact: 2, run: 3, model: 4 };

// -- what a node shows and where it leads --------------------------------------------

function subtitle(node) {
  if (node.kind === "run") return [node.job_type, node.status].filter(Boolean).join(" · ") || "run";
  if (node.kind === "model") {
    return node.aliases && node.aliases.length ? `model · ${node.aliases.join(", ")}` : "model version";
  }
  if (node.kind === "dataset") return node.rows === null || node.rows === undefined ? "dataset" : `dataset · ${fmtNum(node.rows)} rows`;
  if (node.kind === "artifact") return node.type ? `artifact · ${node.type}` : "artifact";
  if (node.kind === "code") return node.branch ? `commit · ${node.branch}` : "commit";
  return node.kind;
}

function lineageHref(id, depth, direction) {
  return route("lineage", { node: id, depth: depth === 3 ? null : depth,
    direction: direction === "both" ? null : direction });
}

// The node's own page, when it has one.
function pageOf(node) {
  if (node.kind === "run") return [route("runs", node.id.slice(4)), "run page"];
  if (node.kind === "model") return [route("models", node.name), "model page"];
  return null;
}

function clip(text, n) {
  const s = String(text ?? "");
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

// -- layout: layers left to right ----------------------------------------------------

// Each node's column: the longest path to it from a node with no inputs; then nodes with
// no inputs move right to sit just before their first consumer (a test set next to the
// evaluation that used it, not beside the training data). Cycles cannot loop forever.
function layers(nodes, edges) {
  const layer = new Map(nodes.map((n) => [n.id, 0]));
  for (let pass = 0; pass < nodes.length; pass += 1) {
    let changed = false;
    for (const e of edges) {
      const want = layer.get(e.source) + 1;
      if (want > layer.get(e.target)) {
        layer.set(e.target, want);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const hasInput = new Set(edges.map((e) => e.target));
  for (const n of nodes) {
    if (hasInput.has(n.id)) continue;
    const next = edges.filter((e) => e.source === n.id).map((e) => layer.get(e.target));
    if (next.length) layer.set(n.id, Math.max(0, Math.min(...next) - 1));
  }
  return layer;
}

// Orders each column: by kind and label, then a few sweeps placing nodes near the middle
// of their neighbours in the column before (fewer crossing edges).
function columns(nodes, edges, layer) {
  const cols = [];
  for (const n of nodes) (cols[layer.get(n.id)] ||= []).push(n);
  const filled = cols.filter(Boolean);
  for (const col of filled) {
    col.sort((a, b) => (KIND_ORDER[a.kind] ?? 9) - (KIND_ORDER[b.kind] ?? 9)
      || String(a.label).localeCompare(String(b.label)));
  }
  const index = new Map();
  const reindex = () => filled.forEach((col) => col.forEach((n, i) => index.set(n.id, i)));
  reindex();
  const neighbours = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) {
    neighbours.get(e.source).push(e.target);
    neighbours.get(e.target).push(e.source);
  }
  for (let sweep = 0; sweep < 4; sweep += 1) {
    const order = sweep % 2 ? [...filled].reverse() : filled;
    for (const col of order) {
      const centre = (n) => {
        const around = neighbours.get(n.id).filter((m) => layer.get(m) !== layer.get(n.id));
        if (!around.length) return index.get(n.id);
        return around.reduce((sum, m) => sum + index.get(m), 0) / around.length;
      };
      const keyed = col.map((n) => [centre(n), index.get(n.id), n]);
      keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      col.splice(0, col.length, ...keyed.map((k) => k[2]));
      reindex();
    }
  }
  return filled;
}

function place(nodes, edges) {
  const layer = layers(nodes, edges);
  const cols = columns(nodes, edges, layer);
  const tallest = Math.max(...cols.map((c) => c.length));
  const height = tallest * NODE_H + (tallest - 1) * GAP_Y;
  const at = new Map();
  cols.forEach((col, ci) => {
    const colHeight = col.length * NODE_H + (col.length - 1) * GAP_Y;
    const top = PAD + (height - colHeight) / 2;
    col.forEach((n, i) => at.set(n.id, { x: PAD + ci * (NODE_W + GAP_X), y: top + i * (NODE_H + GAP_Y) }));
  });
  return {
    at,
    width: 2 * PAD + cols.length * NODE_W + (cols.length - 1) * GAP_X,
    height: 2 * PAD + height,
  };
}

// -- drawing -------------------------------------------------------------------------

function edgePath(a, b) {
  const x1 = a.x + NODE_W;
  const y1 = a.y + NODE_H / 2;
  const x2 = b.x;
  const y2 = b.y + NODE_H / 2;
  if (x2 > x1) {
    const dx = (x2 - x1) / 2;
    return { d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`, mx: (x1 + x2) / 2, my: (y1 + y2) / 2 };
  }
  // Back or same-column edges go round the right side.
  const bend = Math.max(x1, b.x + NODE_W) + 40;
  return { d: `M${x1},${y1} C${bend},${y1} ${bend},${y2} ${b.x + NODE_W},${y2}`, mx: bend - 10, my: (y1 + y2) / 2 };
}

function drawEdge(edge, at) {
  const { d, mx, my } = edgePath(at.get(edge.source), at.get(edge.target));
  return h("svg:g", { class: "edge", dataset: { source: edge.source, target: edge.target } },
    h("svg:path", { d, "marker-end": "url(#lineage-arrow)" }),
    edge.role ? h("svg:text", { x: mx, y: my - 4, "text-anchor": "middle", class: "edge-label" }, edge.role) : null);
}

function drawNode(node, pos, start, navigate) {
  const own = pageOf(node);
  const g = h("svg:g", {
    class: ["node", `kind-${node.kind}`, start ? "start" : ""],
    transform: `translate(${pos.x},${pos.y})`,
    dataset: { node: node.id },
    tabindex: 0,
    role: "link",
    "aria-label": `${node.kind} ${node.label}: show its lineage`,
    onclick: () => navigate(node.id),
    onkeydown: (event) => {
      if (event.key === "Enter") navigate(node.id);
    },
  },
  h("svg:title", {}, `${node.id}\n${subtitle(node)}\nclick: centre the graph here`),
  h("svg:rect", { width: NODE_W, height: NODE_H, rx: 6, ry: 6 }),
  h("svg:text", { x: 10, y: 19, class: "label" }, clip(node.label, own ? 20 : 24)),
  h("svg:text", { x: 10, y: 36, class: "sub" }, clip(subtitle(node), 28)));
  if (own) {
    const [href, what] = own;
    g.append(h("svg:a", { href, class: "open", onclick: (event) => event.stopPropagation() },
      h("svg:title", {}, `open the ${what}`),
      h("svg:text", { x: NODE_W - 10, y: 19, "text-anchor": "end" }, "open ↗")));
  }
  return g;
}

function highlight(svg, id, on) {
  for (const e of svg.querySelectorAll("g.edge")) {
    if (e.dataset.source === id || e.dataset.target === id) e.classList.toggle("hl", on);
  }
}

function drawGraph(graph, navigate) {
  const { at, width, height } = place(graph.nodes, graph.edges);
  const starts = new Set(graph.start);
  const svg = h("svg:svg", { class: "lineage-graph", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": "lineage graph" },
  h("svg:defs", {}, h("svg:marker", { id: "lineage-arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
  h("svg:path", { d: "M0,0 L10,5 L0,10 z" }))),
  h("svg:g", { class: "edges" }, graph.edges.map((e) => drawEdge(e, at))),
  h("svg:g", { class: "nodes" }, graph.nodes.map((n) => drawNode(n, at.get(n.id), starts.has(n.id), navigate))));
  for (const g of svg.querySelectorAll("g.node")) {
    g.addEventListener("mouseenter", () => highlight(svg, g.dataset.node, true));
    g.addEventListener("mouseleave", () => highlight(svg, g.dataset.node, false));
  }
  svg.graph = graph;
  return svg;
}

// -- the page ------------------------------------------------------------------------

function toolbar(node, depth, direction) {
  const input = h("input", { type: "text", id: "lineage-node", name: "node", class: "query",
    value: node || "", placeholder: "model:NAME/3, run:ID, dataset:NAME/2, code:COMMIT" });
  const depthSelect = h("select", { id: "lineage-depth", name: "depth" },
    DEPTHS.map((d) => h("option", { value: d, selected: d === depth }, `${d} step${d > 1 ? "s" : ""}`)));
  const directionSelect = h("select", { id: "lineage-direction", name: "direction" },
    DIRECTIONS.map(([value, label]) => h("option", { value, selected: value === direction }, label)));
  const go = () => {
    const wanted = input.value.trim();
    if (wanted) location.hash = lineageHref(wanted, Number(depthSelect.value), directionSelect.value);
  };
  depthSelect.addEventListener("change", go);
  directionSelect.addEventListener("change", go);
  return h("form", { class: "toolbar lineage-toolbar", onsubmit: (event) => {
    event.preventDefault();
    go();
  } },
  h("label", { for: "lineage-node" }, "Node"), input,
  h("label", { for: "lineage-depth" }, "Depth"), depthSelect,
  h("label", { for: "lineage-direction" }, "Show"), directionSelect,
  h("button", { type: "submit" }, "Show"));
}

function legend() {
  return h("p", { class: "lineage-legend muted" },
    ["dataset", "code", "run", "model", "artifact"].map((k) =>
      h("span", { class: `key kind-${k}` }, k === "model" ? "model version" : k)),
    " Click a node to centre the graph on it; “open ↗” goes to its page.");
}

function nodeTable(graph, depth, direction) {
  return table([
    ["Kind", (n) => n.kind],
    ["Node", (n) => h("a", { href: lineageHref(n.id, depth, direction) }, n.label)],
    ["Details", (n) => subtitle(n)],
    ["Page", (n) => {
      const own = pageOf(n);
      return own ? h("a", { href: own[0] }, own[1]) : "";
    }],
  ], graph.nodes, { cls: "lineage-nodes" });
}

function depthOf(query) {
  const d = Number(query.get("depth") || 3);
  return Number.isInteger(d) && d >= 0 && d <= 20 ? d : 3;
}

export default async function render(root, params, query) {
  const node = query.get("node");
  const depth = depthOf(query);
  const direction = ["both", "up", "down"].includes(query.get("direction")) ? query.get("direction") : "both";
  root.append(h("h1", {}, "Lineage"), toolbar(node, depth, direction));
  if (!node) {
    root.append(h("p", { class: "empty" },
      "Name a node to see where it came from and what used it, e.g. model:NAME/3, run:ID or dataset:NAME/2. ",
      "A model's page links the lineage of each version."));
    return;
  }
  let graph;
  try {
    graph = await api("/lineage", { query: { node, direction, depth } });
  } catch (err) {
    root.append(errorBox(new Error(`No lineage for ${node}: ${err.message}`)));
    return;
  }
  const navigate = (id) => {
    location.hash = lineageHref(id, depth, direction);
  };
  const svg = drawGraph(graph, navigate);
  if (graph.truncated) {
    root.append(h("p", { class: "error" }, "The graph was cut short: it has too many nodes. Lower the depth."));
  }
  root.append(
    legend(),
    h("div", { class: "lineage-canvas", id: "lineage" }, svg),
    h("h2", {}, `Nodes (${graph.nodes.length})`),
    nodeTable(graph, depth, direction),
  );
}
