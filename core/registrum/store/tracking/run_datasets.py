"""The dataset versions runs used, read for many runs at once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from registrum import validation as v
from registrum.entities import DatasetVersion
from registrum.store import schema as t
from registrum.store._base import StoreBase, loads


class RunDatasetsMixin(StoreBase):
    def run_datasets(self, run_ids: Sequence[str]) -> dict[str, list[tuple[str, DatasetVersion]]]:
        """The (role, dataset version) pairs each run used, in the order they were recorded;
        runs without any are left out. Two queries, whatever the number of runs."""
        ids = list(dict.fromkeys(v.run_id(r) for r in run_ids))
        if not ids:
            return {}
        i, d, p = t.run_inputs.c, t.dataset_versions.c, t.projects.c
        with self._read() as conn:
            projects = conn.execute(
                select(t.runs.c.project_id).where(t.runs.c.id.in_(ids)).distinct()
            ).scalars()
            for project_id in list(projects):
                self._require(conn, int(project_id), "viewer")
            rows = conn.execute(
                select(i.run_id, i.role, t.dataset_versions, p.name.label("project"))
                .join(t.dataset_versions, d.id == i.target_id)
                .join(t.projects, p.id == d.project_id)
                .where(i.run_id.in_(ids), i.kind == "dataset")
                .order_by(i.id)
            ).all()
        out: dict[str, list[tuple[str, DatasetVersion]]] = {}
        for r in rows:
            dataset = DatasetVersion(
                id=r.id,
                project=r.project,
                name=r.name,
                version=r.version,
                fingerprint=r.fingerprint,
                schema=loads(r.schema),
                rows=r.rows,
                metadata=loads(r.metadata),
                artifact_id=r.artifact_id,
                created_at=r.created_at,
            )
            out.setdefault(r.run_id, []).append((r.role, dataset))
        return out
