"""`registrum lineage`: where a model, run or dataset came from and what came from it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from registrum.cli._common import add_store, open_client
from registrum.cli._output import add_format, emit_one
from registrum.entities import LineageGraph


def _node_line(node: dict[str, Any]) -> str:
    kind = node["kind"]
    if kind == "run":
        detail = f"{node['name'] or '-'} ({node['job_type'] or '-'}, {node['status']})"
    elif kind == "model":
        aliases = " @" + " @".join(node["aliases"]) if node["aliases"] else ""
        detail = f"{node['label']}{aliases}"
    elif kind == "dataset":
        rows = f", {node['rows']:,} rows" if node.get("rows") is not None else ""
        detail = f"{node['label']} (fingerprint {node['fingerprint'][:12]}{rows})"
    elif kind == "code":
        detail = f"branch {node['branch'] or '-'}, {node['remote'] or 'no remote'}"
    else:
        detail = f"{node['label']} ({node['type']})"
    gone = "  (deleted)" if node.get("deleted") else ""
    return f"{node['id']}  {detail}{gone}"


def print_lineage(graph: LineageGraph, print_: Callable[[str], None] = print) -> None:
    """The graph as trees from its start nodes: upstream with `<-`, downstream with `->`."""
    nodes = {n["id"]: n for n in graph.nodes}
    parents: dict[str, list[tuple[str, str]]] = {}
    children: dict[str, list[tuple[str, str]]] = {}
    for e in graph.edges:
        parents.setdefault(e.target, []).append((e.source, e.role))
        children.setdefault(e.source, []).append((e.target, e.role))

    def walk(
        node: str, links: dict[str, list[tuple[str, str]]], arrow: str, depth: int, path: set[str]
    ) -> None:
        for other, role in sorted(links.get(node, [])):
            cycle = " (shown above)" if other in path else ""
            print_(f"{'    ' * depth}{arrow} {role}: {_node_line(nodes[other])}{cycle}")
            if not cycle:
                walk(other, links, arrow, depth + 1, path | {other})

    for start in graph.start:
        print_(_node_line(nodes[start]))
        walk(start, parents, "<-", 1, {start})
        walk(start, children, "->", 1, {start})
    if graph.truncated:
        print_("(the graph was cut at its size limit: ask for a smaller --depth)")


def _lineage(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        graph = client.lineage(args.node, direction=args.direction, depth=args.depth)
    emit_one(args, graph.to_dict(), lambda: print_lineage(graph))
    return 0


def add_commands(commands: Any) -> None:
    """Adds `lineage` to the `registrum` command."""
    lineage = commands.add_parser(
        "lineage", help="where a model, run or dataset came from and what came from it"
    )
    lineage.add_argument(
        "node", help="NAME@VERSION, NAME@ALIAS, model:NAME/3, run:ID, dataset:NAME[/2], code:COMMIT"
    )
    lineage.add_argument("--direction", choices=["up", "down", "both"], default="both")
    lineage.add_argument("--depth", type=int, default=3, help="steps to follow (default 3)")
    add_format(lineage)
    add_store(lineage)
    lineage.set_defaults(handler=_lineage)
