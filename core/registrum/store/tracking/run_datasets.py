"""The dataset versions runs used, read for many runs at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BindParameter, bindparam, select

from registrum import validation as v
from registrum.entities import DatasetVersion
from registrum.store import schema as t
from registrum.store._base import StoreBase
from registrum.store.tracking.datasets import dataset_record

# Built once (see _base.py): the two reads, for a list of run ids.
_ids: BindParameter[Any] = bindparam("ids", expanding=True)
_i, _d, _p = t.run_inputs.c, t.dataset_versions.c, t.projects.c
_PROJECTS = select(t.runs.c.project_id).where(t.runs.c.id.in_(_ids)).distinct()
_INPUTS = (
    select(_i.run_id, _i.role, t.dataset_versions, _p.name.label("project"))
    .join(t.dataset_versions, _d.id == _i.target_id)
    .join(t.projects, _p.id == _d.project_id)
    .where(_i.run_id.in_(_ids), _i.kind == "dataset")
    .order_by(_i.id)
)


class RunDatasetsMixin(StoreBase):
    def run_datasets(self, run_ids: Sequence[str]) -> dict[str, list[tuple[str, DatasetVersion]]]:
        """The (role, dataset version) pairs each run used, in the order they were recorded;
        runs without any are left out. Two queries, whatever the number of runs."""
        ids = list(dict.fromkeys(v.run_id(r) for r in run_ids))
        if not ids:
            return {}
        with self._read() as conn:
            projects = conn.execute(_PROJECTS, {"ids": ids}).scalars()
            for project_id in list(projects):
                self._require(conn, int(project_id), "viewer")
            rows = conn.execute(_INPUTS, {"ids": ids}).all()
        out: dict[str, list[tuple[str, DatasetVersion]]] = {}
        for r in rows:
            out.setdefault(r.run_id, []).append((r.role, dataset_record(r)))
        return out
