"""Soft deletion of runs (a deleted run leaves searches but keeps its data until restored),
and moving runs between projects."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select, update

from registrum import validation as v
from registrum.entities import Run
from registrum.errors import Conflict
from registrum.store import schema as t
from registrum.store._base import now
from registrum.store.tracking.deletion import hide_run_outputs, show_run_outputs
from registrum.store.tracking.runs import RunsMixin

# The run-owned tables whose rows name a metric or param key (keys are interned per
# project, so a moved run's rows are pointed at the target project's ids).
_KEYED = (
    t.params,
    t.param_history,
    t.metric_chunks,
    t.metric_summaries,
    t.metric_step_scales,
)


class LifecycleMixin(RunsMixin):
    def delete_run(self, run_id: str) -> None:
        """Marks a run deleted, with the artifacts it alone produced (checkpoints, files):
        searches and artifact lists leave them out unless asked for deleted ones, reads by
        id still answer the run, and `restore_run` brings it all back. Deleting twice is a
        no-op.
        Refused (`Conflict`) while a live model version was registered from it: delete
        those versions first."""
        v.run_id(run_id)
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            if row.deleted_at is not None:
                return
            mv, m = t.model_versions.c, t.registered_models.c
            registered = conn.execute(
                select(m.name, mv.version)
                .join(t.registered_models, m.id == mv.model_id)
                .where(mv.run_id == run_id, mv.deleted_at.is_(None), m.deleted_at.is_(None))
                .order_by(m.name, mv.version)
            ).all()
            if registered:
                shown = ", ".join(f"{r.name}@{r.version}" for r in registered[:5])
                more = f" and {len(registered) - 5} more" if len(registered) > 5 else ""
                raise Conflict(
                    f"run {run_id} produced registered model versions {shown}{more}: delete "
                    f"those versions first (registrum models delete {registered[0].name}@"
                    f"{registered[0].version}), then the run",
                    run_id=run_id,
                    versions=[f"{r.name}@{r.version}" for r in registered],
                )
            stamp = now()
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(deleted_at=stamp))
            hide_run_outputs(conn, [run_id], stamp)
            self._audit_run(conn, row, "run.deleted", after={"deleted_at": stamp})

    def restore_run(self, run_id: str) -> Run:
        """Undoes `delete_run` and answers the run; restoring a run that is not deleted is a
        no-op."""
        v.run_id(run_id)
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            if row.deleted_at is not None:
                project = conn.execute(
                    select(t.projects.c.name, t.projects.c.deleted_at).where(
                        t.projects.c.id == row.project_id
                    )
                ).one()
                if project.deleted_at is not None:
                    raise Conflict(
                        f"run {run_id} is in project {project.name!r}, which is deleted: "
                        f"restore the project (registrum projects restore {project.name})",
                        run_id=run_id,
                        project=project.name,
                    )
                conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(deleted_at=None))
                show_run_outputs(conn, [run_id], row.deleted_at)
                self._audit_run(conn, row, "run.restored", before={"deleted_at": row.deleted_at})
            return self._load_runs(conn, [run_id])[0]

    def deleted_runs(self, run_ids: Sequence[str]) -> dict[str, float]:
        """When each of these runs was deleted, for the deleted ones the signed-in user may
        read (the others are left out)."""
        ids = list(dict.fromkeys(v.run_id(r) for r in run_ids))
        if not ids:
            return {}
        r = t.runs.c
        with self._read() as conn:
            rows = conn.execute(
                select(r.id, r.project_id, r.deleted_at).where(
                    r.id.in_(ids), r.deleted_at.is_not(None)
                )
            ).all()
            for project_id in {int(row.project_id) for row in rows}:
                self._require(conn, project_id, "viewer")
        return {str(row.id): float(row.deleted_at) for row in rows}

    def move_run(self, run_id: str, project: str) -> Run:
        """Moves a run, with its child runs, to `project` (an editor of both projects).
        Its metrics, params, artifacts and logged models go with it; lineage is kept (it
        links ids, which do not change); registered versions stay in their models. An
        artifact takes the next free version of its name in the target project."""
        v.run_id(run_id)
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            target = self._project_id(conn, project, need="editor")
            source = int(row.project_id)
            if target == source:
                return self._load_runs(conn, [run_id])[0]
            moved = _with_descendants(conn, run_id)
            self._move_keys(conn, moved, target)
            r = t.runs.c
            conn.execute(update(t.runs).where(r.id.in_(moved)).values(project_id=target))
            a = t.artifacts.c
            artifacts = conn.execute(
                select(a.id, a.name).where(a.run_id.in_(moved)).order_by(a.id)
            ).all()
            for artifact in artifacts:
                number = self._next_version(conn, t.artifacts, target, artifact.name)
                conn.execute(
                    update(t.artifacts)
                    .where(a.id == artifact.id)
                    .values(project_id=target, version=number)
                )
            lm = t.logged_models.c
            conn.execute(
                update(t.logged_models).where(lm.run_id.in_(moved)).values(project_id=target)
            )
            names = (self._project_name(conn, source), self._project_name(conn, target))
            for side in names:  # seen in the audit of either project
                self._audit(
                    conn,
                    "run.moved",
                    "run",
                    run_id,
                    project=side,
                    before={"project": names[0]},
                    after={"project": names[1], "runs": moved},
                )
            return self._load_runs(conn, [run_id])[0]

    def _move_keys(self, conn: Connection, runs: list[str], target: int) -> None:
        """Points the moved runs' metric and param rows at the target project's key ids."""
        used: set[int] = set()
        for table in _KEYED:
            used.update(
                int(k)
                for k in conn.execute(
                    select(table.c.key_id).where(table.c.run_id.in_(runs)).distinct()
                ).scalars()
            )
        names = self._key_names(conn, used)
        ids = self._key_ids(conn, target, names.values())
        for old, name in names.items():
            new = ids[name]
            for table in _KEYED:
                conn.execute(
                    update(table)
                    .where(table.c.run_id.in_(runs), table.c.key_id == old)
                    .values(key_id=new)
                )


def _with_descendants(conn: Connection, run_id: str) -> list[str]:
    """The run and every run below it (children, their children, ...)."""
    found, frontier = [run_id], [run_id]
    parent = t.runs.c.parent_id
    while frontier:
        frontier = [
            str(i)
            for i in conn.execute(select(t.runs.c.id).where(parent.in_(frontier))).scalars()
            if i not in found
        ]
        found += frontier
    return found
