"""Questions across runs: how each model version did on each dataset version, how two dataset
versions differ and which models were trained on them, and how two runs' code differs."""

from __future__ import annotations

import difflib
import math
from typing import Any

from sqlalchemy import Connection, select

from registrum import validation as v
from registrum.entities import EvaluationHistory
from registrum.errors import DatasetNotFound, InvalidArgument
from registrum.store import schema as t
from registrum.store._base import StoreBase
from registrum.store.registry.read import RegistryReadMixin
from registrum.store.tracking.datasets import DatasetsMixin
from registrum.store.tracking.provenance import ProvenanceMixin

DIFF_MAX_BYTES = 1 << 20  # larger uncommitted diffs are compared by digest only


class EvaluationsMixin(DatasetsMixin, ProvenanceMixin, RegistryReadMixin, StoreBase):
    def evaluations(self, name: str) -> EvaluationHistory:
        """A model's evaluation history: for every version, every dataset version the
        evaluating runs used (`use_dataset`) and every metric they logged, the latest value
        with its run. Runs that `use_model` a version are its evaluations; a run that used no
        dataset is keyed by dataset None."""
        return EvaluationHistory.from_dict(self._evaluation_history(name))

    def _evaluation_history(self, name: str) -> dict[str, Any]:
        """`evaluations` as plain data, as the evaluation gates read it."""
        name = v.name(name, "model name")
        with self._read() as conn:
            model = self._model_row(conn, name, need="viewer")
            mv, i, r = t.model_versions.c, t.run_inputs.c, t.runs.c
            query = (
                select(mv.version, i.run_id, r.status, r.job_type)
                .join(t.run_inputs, (i.target_id == mv.id) & (i.kind == "model_version"))
                .join(t.runs, r.id == i.run_id)
                .where(mv.model_id == model.id, mv.deleted_at.is_(None))
                .order_by(mv.version, r.start_time)
            )
            visible = self._visible_projects(conn)
            if visible is not None:  # evaluations run in projects the user cannot read are left out
                query = query.where(r.project_id.in_(visible))
            uses = conn.execute(query).all()
            datasets: dict[str, dict[str, Any]] = {}
            cells: dict[tuple[int, str | None, str], dict[str, Any]] = {}
            for version, run_id, status, job_type in uses:
                metrics = self._run_metrics(conn, run_id)
                if not metrics:
                    continue
                used = self._run_datasets(conn, run_id)
                for d in used:
                    datasets.setdefault(d["id"], d)
                for key, value, step, at in metrics:
                    for dataset in [d["id"] for d in used] or [None]:
                        cell = (version, dataset, key)
                        if cell in cells and cells[cell]["time"] > at:
                            continue
                        cells[cell] = {
                            "version": version,
                            "dataset": dataset,
                            "metric": key,
                            "value": value,
                            "step": step,
                            "time": at,
                            "run_id": run_id,
                            "run_status": status,
                            "job_type": job_type,
                        }
        return {
            "model": name,
            "versions": sorted({u[0] for u in uses}),
            "datasets": sorted(datasets.values(), key=lambda d: str(d["id"])),
            "metrics": sorted({c[2] for c in cells}),
            "evaluations": [cells[k] for k in sorted(cells, key=lambda c: (c[0], str(c[1]), c[2]))],
        }

    def _run_datasets(self, conn: Connection, run_id: str) -> list[dict[str, Any]]:
        i, d = t.run_inputs.c, t.dataset_versions.c
        rows = conn.execute(
            select(t.projects.c.name, d.name, d.version, d.fingerprint, d.rows, i.role)
            .join(t.dataset_versions, d.id == i.target_id)
            .join(t.projects, t.projects.c.id == d.project_id)
            .where(i.run_id == run_id, i.kind == "dataset")
            .order_by(i.id)
        )
        return [
            {
                "id": f"dataset:{p}/{n}/{ver}",
                "project": p,
                "name": n,
                "version": ver,
                "fingerprint": fp,
                "rows": rows_,
                "role": role,
            }
            for p, n, ver, fp, rows_, role in rows
        ]

    def _run_metrics(self, conn: Connection, run_id: str) -> list[tuple[str, float, int, float]]:
        s, k = t.metric_summaries.c, t.keys.c
        rows = conn.execute(
            select(k.name, s.last_value, s.last_step, s.last_time)
            .join(t.keys, k.id == s.key_id)
            .where(s.run_id == run_id)
            .order_by(k.name)
        )
        return [
            (n, math.nan if val is None else float(val), int(step), float(at))
            for n, val, step, at in rows
        ]

    # -- datasets --------------------------------------------------------------------

    def diff_datasets(self, project: str, name: str, a: int | str, b: int | str) -> dict[str, Any]:
        """How versions `a` and `b` of a dataset differ: fingerprint, rows and schema."""
        first, second = self.get_dataset(project, name, a), self.get_dataset(project, name, b)
        left, right = _flatten(first.schema), _flatten(second.schema)
        return {
            "name": name,
            "a": first.to_dict(),
            "b": second.to_dict(),
            "same_content": first.fingerprint == second.fingerprint,
            "rows": {
                "a": first.rows,
                "b": second.rows,
                "change": None
                if first.rows is None or second.rows is None
                else second.rows - first.rows,
            },
            "schema": {
                "added": {k: right[k] for k in sorted(right.keys() - left.keys())},
                "removed": {k: left[k] for k in sorted(left.keys() - right.keys())},
                "changed": {
                    k: [left[k], right[k]]
                    for k in sorted(left.keys() & right.keys())
                    if left[k] != right[k]
                },
            },
        }

    def dataset_models(
        self, project: str, name: str, *, version: int | str | None = None
    ) -> list[dict[str, Any]]:
        """For each version of a dataset (or one), the model versions registered by runs that
        used it for training (role `train`), oldest dataset version first."""
        project = v.name(project, "project name")
        name = v.name(name, "dataset name")
        wanted = None if version is None else v.version(version)
        with self._read() as conn:
            project_id = self._project_id(conn, project, need="viewer")
            visible = self._visible_projects(conn)
            d, i, mv = t.dataset_versions.c, t.run_inputs.c, t.model_versions.c
            query = select(d.id, d.version, d.fingerprint).where(
                d.project_id == project_id, d.name == name
            )
            if version is not None:
                if wanted is None:
                    query = query.order_by(d.version.desc()).limit(1)
                else:
                    query = query.where(d.version == wanted)
            found = conn.execute(query).all()
            if not found:
                raise DatasetNotFound(f"dataset {name!r} has no such version in {project!r}")
            out = []
            for dataset_id, number, fp in sorted(found, key=lambda row: row[1]):
                models_query = (
                    select(t.registered_models.c.name, mv.version, mv.run_id)
                    .join(t.registered_models, t.registered_models.c.id == mv.model_id)
                    .join(t.run_inputs, i.run_id == mv.run_id)
                    .where(i.kind == "dataset", i.target_id == dataset_id, i.role == "train")
                    .where(mv.deleted_at.is_(None), t.registered_models.c.deleted_at.is_(None))
                    .distinct()
                    .order_by(t.registered_models.c.name, mv.version)
                )
                if visible is not None:  # models of projects the user cannot read are left out
                    models_query = models_query.where(t.registered_models.c.project_id.in_(visible))
                models = conn.execute(models_query).all()
                out.append(
                    {
                        "version": number,
                        "fingerprint": fp,
                        "models": [
                            {"name": n, "version": ver, "run_id": run} for n, ver, run in models
                        ],
                    }
                )
        return out

    # -- code ----------------------------------------------------------------------

    def compare_code(self, run_a: str, run_b: str) -> dict[str, Any]:
        """Two runs' code versions side by side: which fields differ and, when both have an
        uncommitted diff, how those diffs differ (a unified diff of the two)."""
        a, b = self.get_code_version(run_a), self.get_code_version(run_b)
        if a is None or b is None:
            missing = run_a if a is None else run_b
            raise InvalidArgument(f"run {missing} has no recorded code version")
        fields = ("commit", "branch", "remote", "dirty", "diff_sha256")
        out: dict[str, Any] = {
            "a": dict(a, run_id=run_a),
            "b": dict(b, run_id=run_b),
            "same_code": all(a[f] == b[f] for f in ("commit", "diff_sha256")),
            "differences": {f: [a[f], b[f]] for f in fields if a[f] != b[f]},
            "diff_of_diffs": None,
        }
        if a["diff_sha256"] != b["diff_sha256"]:
            left, right = self._diff_text(a["diff_sha256"]), self._diff_text(b["diff_sha256"])
            if left is not None and right is not None:
                out["diff_of_diffs"] = "".join(
                    difflib.unified_diff(
                        left.splitlines(keepends=True),
                        right.splitlines(keepends=True),
                        fromfile=f"{run_a} uncommitted",
                        tofile=f"{run_b} uncommitted",
                    )
                )
        return out

    def _diff_text(self, sha256: str | None) -> str | None:
        if sha256 is None:
            return ""
        if not self.blobs.exists(sha256) or self.blobs.size(sha256) > DIFF_MAX_BYTES:
            return None
        return b"".join(self.blobs.iter_range(sha256)).decode("utf-8", errors="replace")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A schema as dotted keys: `{"columns": {"a": "int64"}}` -> `{"columns.a": "int64"}`."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value} if prefix else {"": value}
