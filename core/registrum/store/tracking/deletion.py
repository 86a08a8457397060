"""Soft deletion of projects and artifacts, and what a deleted run or project takes with it.

A deletion stamps `deleted_at` on the rows it hides; what it takes along (a run's artifacts,
a project's runs and artifacts) gets the same stamp, so a restore brings back exactly what
went with it and nothing deleted on its own before. Garbage collection (store/gc.py) removes
stamped rows for good once the grace period has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from registrum import validation as v
from registrum.entities import Artifact, Project
from registrum.errors import ArtifactNotFound, Conflict
from registrum.store import schema as t
from registrum.store._base import StoreBase, now, project_record
from registrum.store.tracking.artifacts import ArtifactsMixin, artifact_in_use


def hide_run_outputs(conn: Connection, run_ids: Sequence[str], stamp: float) -> None:
    """Stamps the live artifacts these runs alone produced (checkpoints, files, models) as
    deleted with them. An artifact that a dataset version or a live model version stands on
    is shared, not the run's alone, and stays."""
    a = t.artifacts.c
    conn.execute(
        update(t.artifacts)
        .where(a.run_id.in_(list(run_ids)), a.deleted_at.is_(None), ~artifact_in_use(a.id))
        .values(deleted_at=stamp)
    )


def show_run_outputs(conn: Connection, run_ids: Sequence[str], stamp: float) -> None:
    """Undoes `hide_run_outputs` for the artifacts deleted with the runs (same stamp)."""
    a = t.artifacts.c
    conn.execute(
        update(t.artifacts)
        .where(a.run_id.in_(list(run_ids)), a.deleted_at == stamp)
        .values(deleted_at=None)
    )


class DeletionMixin(ArtifactsMixin, StoreBase):
    # -- projects ---------------------------------------------------------------------

    def delete_project(self, name: str) -> None:
        """Soft-deletes a project (a project admin) with its runs and artifacts: it leaves
        lists, its name refuses new runs, and `restore_project` brings it all back until
        collected. Refused (`Conflict`) while it holds live registered models: delete those
        first. Deleting twice is a no-op."""
        name = v.name(name, "project name")
        with self._tx() as conn:
            project_id = self._project_id(conn, name, need="admin", deleted_ok=True)
            row = _project_row(conn, project_id)
            if row.deleted_at is not None:
                return
            m = t.registered_models.c
            models = (
                conn.execute(
                    select(m.name)
                    .where(m.project_id == project_id, m.deleted_at.is_(None))
                    .order_by(m.name)
                )
                .scalars()
                .all()
            )
            if models:
                shown = ", ".join(models[:5]) + (f" and {len(models) - 5} more" * (len(models) > 5))
                raise Conflict(
                    f"project {name!r} holds registered models {shown}: delete them first "
                    f"(registrum models delete {models[0]}), then the project",
                    project=name,
                    models=list(models),
                )
            stamp = now()
            counts = _stamp_project(conn, project_id, None, stamp)
            self._audit(
                conn,
                "project.deleted",
                "project",
                name,
                project=name,
                after={"deleted_at": stamp, **counts},
            )

    def restore_project(self, name: str) -> Project:
        """Undoes `delete_project`: the project, and the runs and artifacts deleted with it
        (not those deleted on their own before), come back."""
        name = v.name(name, "project name")
        with self._tx() as conn:
            project_id = self._project_id(conn, name, need="admin", deleted_ok=True)
            row = _project_row(conn, project_id)
            if row.deleted_at is not None:
                stamp = row.deleted_at
                _stamp_project(conn, project_id, stamp, None)
                self._audit(
                    conn,
                    "project.restored",
                    "project",
                    name,
                    project=name,
                    before={"deleted_at": stamp},
                )
            return project_record(_project_row(conn, project_id))

    # -- artifacts --------------------------------------------------------------------

    def delete_artifact(self, project: str, name: str, version: int) -> None:
        """Soft-deletes one version of an artifact (an editor); `restore_artifact` brings it
        back until collected. Refused (`Conflict`) while a live model version, a dataset
        version or a logged model stands on it. Deleting twice is a no-op."""
        name = v.name(name, "artifact name")
        number = v.integer(version, "artifact version", minimum=1)
        with self._tx() as conn:
            row = self._artifact_row(conn, project, name, number, need="editor")
            if row.deleted_at is not None:
                return
            users = _artifact_users(conn, int(row.id))
            if users:
                raise Conflict(
                    f"artifact {name}:{number} of project {project!r} is in use by "
                    f"{', '.join(users)}: delete {'those' if len(users) > 1 else 'that'} "
                    "first, then the artifact",
                    artifact=f"{name}:{number}",
                    used_by=users,
                )
            stamp = now()
            a = t.artifacts.c
            conn.execute(update(t.artifacts).where(a.id == row.id).values(deleted_at=stamp))
            self._audit(
                conn,
                "artifact.deleted",
                "artifact",
                f"{project}/{name}/{number}",
                project=project,
                after={"deleted_at": stamp, "run_id": row.run_id},
            )

    def restore_artifact(self, project: str, name: str, version: int) -> Artifact:
        """Undoes `delete_artifact`; an artifact deleted with its run comes back with the
        run (`restore_run`), not alone."""
        name = v.name(name, "artifact name")
        number = v.integer(version, "artifact version", minimum=1)
        with self._tx() as conn:
            row = self._artifact_row(conn, project, name, number, need="editor")
            if row.deleted_at is not None:
                if row.run_id is not None:
                    run = self._run_row(conn, row.run_id)
                    if run.deleted_at is not None:
                        raise Conflict(
                            f"artifact {name}:{number} belongs to run {row.run_id}, which is "
                            f"deleted: restore the run (registrum runs restore {row.run_id})",
                            run_id=row.run_id,
                        )
                a = t.artifacts.c
                conn.execute(update(t.artifacts).where(a.id == row.id).values(deleted_at=None))
                self._audit(
                    conn,
                    "artifact.restored",
                    "artifact",
                    f"{project}/{name}/{number}",
                    project=project,
                    before={"deleted_at": row.deleted_at},
                )
            return self._load_artifact(conn, int(row.id))

    def _artifact_row(
        self, conn: Connection, project: str, name: str, number: int, *, need: str
    ) -> Any:
        project_id = self._project_id(conn, project, need=need)
        a = t.artifacts.c
        row = conn.execute(
            select(t.artifacts).where(
                a.project_id == project_id, a.name == name, a.version == number
            )
        ).first()
        if row is None:
            raise ArtifactNotFound(
                f"artifact {name!r} version {number} does not exist in project {project!r}",
                name=name,
            )
        return row


def _stamp_project(
    conn: Connection, project_id: int, was: float | None, becomes: float | None
) -> dict[str, int]:
    """Moves the project, and its runs and artifacts whose `deleted_at` is `was`, to
    `becomes`: a deletion stamps what is live, a restore clears what carries the project's
    stamp. Answers how many runs and artifacts it moved."""
    conn.execute(update(t.projects).where(t.projects.c.id == project_id).values(deleted_at=becomes))
    counts = {}
    for key, table in (("runs", t.runs), ("artifacts", t.artifacts)):
        c = table.c
        same = c.deleted_at.is_(None) if was is None else c.deleted_at == was
        moved = conn.execute(
            update(table)
            .where(c.project_id == project_id, same)
            .values(deleted_at=becomes)
            .returning(c.id)
        ).all()
        counts[key] = len(moved)
    return counts


def _project_row(conn: Connection, project_id: int) -> Any:
    return conn.execute(select(t.projects).where(t.projects.c.id == project_id)).one()


def _artifact_users(conn: Connection, artifact_id: int) -> list[str]:
    """What stands on an artifact: live model versions, dataset versions, live logged models."""
    mv, m, d, lm = (
        t.model_versions.c,
        t.registered_models.c,
        t.dataset_versions.c,
        t.logged_models.c,
    )
    versions = conn.execute(
        select(m.name, mv.version)
        .join(t.registered_models, m.id == mv.model_id)
        .where(mv.artifact_id == artifact_id, mv.deleted_at.is_(None), m.deleted_at.is_(None))
        .order_by(m.name, mv.version)
    ).all()
    datasets = conn.execute(
        select(d.name, d.version).where(d.artifact_id == artifact_id).order_by(d.name, d.version)
    ).all()
    logged = conn.execute(
        select(lm.id).where(lm.artifact_id == artifact_id, lm.deleted_at.is_(None))
    ).scalars()
    return (
        [f"model version {r.name}@{r.version}" for r in versions]
        + [f"dataset version {r.name}:{r.version}" for r in datasets]
        + [f"logged model {i}" for i in logged]
    )
