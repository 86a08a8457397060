"""Lineage: the graph from data and code through runs to artifacts, model versions and the runs
that used them, walked from any node upstream, downstream or both.

Node ids:
    `run:RUN_ID`
    `model:NAME/VERSION` (`model:NAME@ALIAS` and `model:NAME`, every version, are accepted)
    `dataset:PROJECT/NAME/VERSION` (`dataset:NAME/VERSION` and `dataset:NAME`, every version,
        are accepted when the name is in one project only)
    `artifact:PROJECT/NAME/VERSION`
    `code:COMMIT`

Every edge points the way data flows: dataset -> run (role train/val/test), code -> run,
run -> artifact, run -> model version, model version -> run (the runs that used it, as
evaluation or fine-tuning), artifact -> run.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from registrum import validation as v
from registrum.entities import LineageEdge, LineageGraph
from registrum.errors import DatasetNotFound, Forbidden, InvalidArgument, NotFound
from registrum.store import schema as t
from registrum.store._base import StoreBase
from registrum.store.registry.read import RegistryReadMixin

DIRECTIONS = ("up", "down", "both")
MAX_DEPTH = 20
MAX_NODES = 2000  # a walk stops growing here and says it was cut
_VERSIONED = re.compile(r"^(?:(?P<project>[^/]+)/)?(?P<name>[^/@]+)(?:/(?P<version>[0-9]+))?$")

Edge = tuple[str, str, str]  # source, target, role


class LineageMixin(RegistryReadMixin, StoreBase):
    def lineage(self, node: str, *, direction: str = "both", depth: int = 3) -> LineageGraph:
        """The nodes and edges reachable from `node` within `depth` steps, following edges
        forwards (`down`), backwards (`up`) or both ways from the start (`both`: the start's
        ancestors and its descendants, not the descendants of its ancestors)."""
        if direction not in DIRECTIONS:
            raise InvalidArgument(f"direction must be one of {', '.join(DIRECTIONS)}")
        v.integer(depth, "depth", minimum=0)
        if depth > MAX_DEPTH:
            raise InvalidArgument(f"depth must be at most {MAX_DEPTH}, got {depth}")
        with self._read() as conn:
            starts = self._start_nodes(conn, node)
            visible = self._visible_projects(conn)
            if visible is not None:
                for start in starts:
                    self._require_node(conn, start, visible)
            edges: set[Edge] = set()
            seen: set[str] = set(starts)
            truncated = False
            for way in ("up", "down") if direction == "both" else (direction,):
                frontier = deque((s, 0) for s in starts)
                reached = set(starts)
                while frontier:
                    current, hops = frontier.popleft()
                    if hops == depth:
                        continue
                    for edge in self._neighbours(conn, current, way):
                        edges.add(edge)
                        other = edge[0] if way == "up" else edge[1]
                        if other in reached:
                            continue
                        if len(seen) >= MAX_NODES:
                            truncated = True
                            continue
                        reached.add(other)
                        seen.add(other)
                        frontier.append((other, hops + 1))
            if visible is not None:
                seen, edges = self._readable(conn, seen, edges, starts, visible)
            edges = {e for e in edges if e[0] in seen and e[1] in seen}
            nodes = [self._describe(conn, n) for n in sorted(seen)]
        return LineageGraph(
            start=starts,
            nodes=nodes,
            edges=[LineageEdge(source=s, target=d, role=r) for s, d, r in sorted(edges)],
            truncated=truncated,
        )

    # -- what the signed-in user may see -------------------------------------------

    def _node_project(self, conn: Connection, node: str) -> int | None:
        """The project a node belongs to; None for a code commit (it belongs to its runs)."""
        kind, _, ident = node.partition(":")
        if kind == "run":
            return int(
                conn.execute(select(t.runs.c.project_id).where(t.runs.c.id == ident)).scalar_one()
            )
        if kind == "model":
            name = ident.rpartition("/")[0]
            m = t.registered_models.c
            return int(conn.execute(select(m.project_id).where(m.name == name)).scalar_one())
        if kind in ("dataset", "artifact"):
            project = ident.split("/")[0]
            return int(
                conn.execute(
                    select(t.projects.c.id).where(t.projects.c.name == project)
                ).scalar_one()
            )
        return None

    def _require_node(self, conn: Connection, node: str, visible: list[int]) -> None:
        project_id = self._node_project(conn, node)
        if project_id is not None:
            self._require(conn, project_id, "viewer")
            return
        c, r = t.code_versions.c, t.runs.c
        seen_by_user = conn.execute(
            select(r.id)
            .join(t.code_versions, c.run_id == r.id)
            .where(c.commit == node.partition(":")[2], r.project_id.in_(visible))
            .limit(1)
        ).first()
        if seen_by_user is None:
            raise Forbidden(
                f"{node} was recorded only by runs of projects you cannot read; "
                "ask a project admin for viewer"
            )

    def _readable(
        self,
        conn: Connection,
        seen: set[str],
        edges: set[Edge],
        starts: list[str],
        visible: list[int],
    ) -> tuple[set[str], set[Edge]]:
        """The nodes and edges left once those of projects the user cannot read are dropped;
        a code commit stays while it links to a node that stays."""
        allowed = set(visible)
        kept = {n for n in seen if self._node_project(conn, n) in allowed}
        linked = {n for e in edges for n in e[:2] if e[0] in kept or e[1] in kept}
        kept |= {n for n in seen if n.startswith("code:") and (n in linked or n in starts)}
        return kept, {e for e in edges if e[0] in kept and e[1] in kept}

    # -- parsing a node id into the nodes it stands for ----------------------------

    def _start_nodes(self, conn: Connection, node: Any) -> list[str]:
        if not isinstance(node, str) or ":" not in node:
            raise InvalidArgument(
                f"node {node!r} is not KIND:ID, e.g. model:NAME/3, run:ID, dataset:NAME/2"
            )
        kind, _, ident = node.partition(":")
        if kind == "run":
            self._run_row(conn, v.run_id(ident))
            return [f"run:{ident}"]
        if kind == "model":
            return self._model_nodes(conn, ident)
        if kind in ("dataset", "artifact"):
            return self._versioned_nodes(conn, kind, ident)
        if kind == "code":
            c = t.code_versions.c
            if conn.execute(select(c.run_id).where(c.commit == ident).limit(1)).first() is None:
                raise NotFound(f"no run recorded code commit {ident!r}")
            return [f"code:{ident}"]
        raise InvalidArgument(f"node kind {kind!r} is not run, model, dataset, artifact or code")

    def _model_nodes(self, conn: Connection, ident: str) -> list[str]:
        name, _, version = ident.partition("/")
        if version:
            ref = f"{name}@{version}"
        elif "@" in name:
            ref = name
        else:
            model = self._model_row(conn, v.name(name, "model name"))
            mv = t.model_versions.c
            numbers = conn.execute(
                select(mv.version).where(mv.model_id == model.id).order_by(mv.version)
            ).scalars()
            return [f"model:{name}/{n}" for n in numbers]
        name, wanted = v.model_ref(ref)
        version_id = self._resolve(conn, name, wanted)
        number = conn.execute(
            select(t.model_versions.c.version).where(t.model_versions.c.id == version_id)
        ).scalar_one()
        return [f"model:{name}/{number}"]

    def _versioned_nodes(self, conn: Connection, kind: str, ident: str) -> list[str]:
        table = t.dataset_versions if kind == "dataset" else t.artifacts
        m = _VERSIONED.match(ident)
        if m is None:
            raise InvalidArgument(f"{kind} node {ident!r} is not [PROJECT/]NAME[/VERSION]")
        c = table.c
        query = (
            select(t.projects.c.name, c.name, c.version)
            .join(t.projects, t.projects.c.id == c.project_id)
            .where(c.name == m["name"])
        )
        if m["project"]:
            query = query.where(t.projects.c.name == m["project"])
        if m["version"]:
            query = query.where(c.version == int(m["version"]))
        rows = conn.execute(query.order_by(t.projects.c.name, c.version)).all()
        if not rows:
            error = DatasetNotFound if kind == "dataset" else NotFound
            raise error(f"{kind} {ident!r} does not exist")
        if len({r[0] for r in rows}) > 1:
            raise InvalidArgument(
                f"{kind} {m['name']!r} exists in several projects; write {kind}:PROJECT/NAME"
            )
        return [f"{kind}:{p}/{n}/{ver}" for p, n, ver in rows]

    # -- one step from a node ----------------------------------------------------

    def _neighbours(self, conn: Connection, node: str, way: str) -> Iterable[Edge]:
        kind, _, ident = node.partition(":")
        if kind == "run":
            return self._run_edges(conn, ident, way)
        if kind == "code":
            if way == "up":
                return []
            c = t.code_versions.c
            runs = conn.execute(select(c.run_id).where(c.commit == ident).limit(MAX_NODES))
            return [(node, f"run:{r}", "code") for (r,) in runs]
        target_kind = {"model": "model_version", "dataset": "dataset", "artifact": "artifact"}
        target_id = self._node_row_id(conn, node)
        if way == "down":
            i = t.run_inputs.c
            rows = conn.execute(
                select(i.run_id, i.role)
                .where(i.kind == target_kind[kind], i.target_id == target_id)
                .limit(MAX_NODES)
            )
            return [(node, f"run:{r}", role) for r, role in rows]
        table = {"model": t.model_versions, "artifact": t.artifacts}.get(kind)
        if table is None:
            return []  # a dataset version is where lineage starts
        run = conn.execute(select(table.c.run_id).where(table.c.id == target_id)).scalar()
        if run is None:
            return []
        return [(f"run:{run}", node, "registered" if kind == "model" else "output")]

    def _run_edges(self, conn: Connection, run_id: str, way: str) -> list[Edge]:
        node = f"run:{run_id}"
        if way == "down":
            mv, a = t.model_versions.c, t.artifacts.c
            models = conn.execute(
                select(t.registered_models.c.name, mv.version)
                .join(t.registered_models, t.registered_models.c.id == mv.model_id)
                .where(mv.run_id == run_id)
            )
            artifacts = conn.execute(
                select(t.projects.c.name, a.name, a.version)
                .join(t.projects, t.projects.c.id == a.project_id)
                .where(a.run_id == run_id)
            )
            return [(node, f"model:{n}/{ver}", "registered") for n, ver in models] + [
                (node, f"artifact:{p}/{n}/{ver}", "output") for p, n, ver in artifacts
            ]
        edges: list[Edge] = []
        i = t.run_inputs.c
        for kind, target_id, role in conn.execute(
            select(i.kind, i.target_id, i.role).where(i.run_id == run_id).order_by(i.id)
        ):
            edges.append((self._node_of(conn, kind, target_id), node, role))
        commit = conn.execute(
            select(t.code_versions.c.commit).where(t.code_versions.c.run_id == run_id)
        ).scalar()
        if commit:
            edges.append((f"code:{commit}", node, "code"))
        return edges

    def _node_of(self, conn: Connection, kind: str, target_id: int) -> str:
        if kind == "model_version":
            mv = t.model_versions.c
            name, number = conn.execute(
                select(t.registered_models.c.name, mv.version)
                .join(t.registered_models, t.registered_models.c.id == mv.model_id)
                .where(mv.id == target_id)
            ).one()
            return f"model:{name}/{number}"
        table = t.dataset_versions if kind == "dataset" else t.artifacts
        project, name, number = conn.execute(
            select(t.projects.c.name, table.c.name, table.c.version)
            .join(t.projects, t.projects.c.id == table.c.project_id)
            .where(table.c.id == target_id)
        ).one()
        return f"{kind}:{project}/{name}/{number}"

    def _node_row_id(self, conn: Connection, node: str) -> int:
        """The row id behind a model, dataset or artifact node id in canonical form."""
        kind, _, ident = node.partition(":")
        if kind == "model":
            name, _, number = ident.rpartition("/")
            mv = t.model_versions.c
            return int(
                conn.execute(
                    select(mv.id)
                    .join(t.registered_models, t.registered_models.c.id == mv.model_id)
                    .where(t.registered_models.c.name == name, mv.version == int(number))
                ).scalar_one()
            )
        project, name, number = ident.split("/")
        table = t.dataset_versions if kind == "dataset" else t.artifacts
        return int(
            conn.execute(
                select(table.c.id)
                .join(t.projects, t.projects.c.id == table.c.project_id)
                .where(
                    t.projects.c.name == project,
                    table.c.name == name,
                    table.c.version == int(number),
                )
            ).scalar_one()
        )

    # -- what a node shows ---------------------------------------------------------

    def _describe(self, conn: Connection, node: str) -> dict[str, Any]:
        kind, _, ident = node.partition(":")
        # A deleted node (restorable until collected) shows as deleted, not missing.
        out: dict[str, Any] = {"id": node, "kind": kind, "deleted": False}
        if kind == "run":
            r = t.runs.c
            row = conn.execute(
                select(t.projects.c.name, r.name, r.status, r.job_type, r.start_time, r.deleted_at)
                .join(t.projects, t.projects.c.id == r.project_id)
                .where(r.id == ident)
            ).one()
            out.update(
                label=row[1] or ident[:8],
                project=row[0],
                name=row[1],
                status=row[2],
                job_type=row[3],
                start_time=row[4],
                deleted=row[5] is not None,
            )
        elif kind == "code":
            c = t.code_versions.c
            branch, remote = conn.execute(
                select(c.branch, c.remote).where(c.commit == ident).limit(1)
            ).one()
            out.update(label=ident[:12], commit=ident, branch=branch, remote=remote)
        elif kind == "model":
            name, _, number = ident.rpartition("/")
            a = t.aliases.c
            aliases = conn.execute(
                select(a.alias)
                .join(t.model_versions, t.model_versions.c.id == a.version_id)
                .join(t.registered_models, t.registered_models.c.id == a.model_id)
                .where(
                    t.registered_models.c.name == name,
                    t.model_versions.c.version == int(number),
                )
                .order_by(a.alias)
            ).scalars()
            m, mv = t.registered_models.c, t.model_versions.c
            state = conn.execute(
                select(m.deleted_name, m.deleted_at, mv.deleted_at.label("version_deleted"))
                .join(t.model_versions, mv.model_id == m.id)
                .where(m.name == name, mv.version == int(number))
            ).one()
            name = state.deleted_name or name
            out.update(
                label=f"{name} v{number}",
                name=name,
                version=int(number),
                aliases=list(aliases),
                deleted=state.deleted_at is not None or state.version_deleted is not None,
            )
        else:
            project, name, number = ident.split("/")
            out.update(label=f"{name} v{number}", project=project, name=name, version=int(number))
            row_id = self._node_row_id(conn, node)
            if kind == "dataset":
                d = t.dataset_versions.c
                fp, rows = conn.execute(select(d.fingerprint, d.rows).where(d.id == row_id)).one()
                out.update(fingerprint=fp, rows=rows)
            else:
                a = t.artifacts.c
                kind_of, deleted_at = conn.execute(
                    select(a.type, a.deleted_at).where(a.id == row_id)
                ).one()
                out.update(type=kind_of, deleted=deleted_at is not None)
        return out
