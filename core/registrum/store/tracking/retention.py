"""Retention: a project's policy deletes (softly, so garbage collection frees the bytes after
its grace period) the checkpoints and artifacts it no longer wants.

* `keep_checkpoints` N: per run, checkpoint artifacts beyond the newest N are deleted; the
  run's best checkpoint (the newest marked `best`) is always kept.
* `artifact_ttl` seconds: the artifacts of a run that registered nothing expire that long
  after they were made.

Never expired: what a live model version, a dataset version, a live logged model or a live
run's input stands on, and every artifact of a run with live registered versions (TTL).
Policies are applied by `apply_retention` and at the start of every garbage collection.

Separately, a checkpoint logged as the run's new best with `replaces_best` in its metadata
(what the integrations' `checkpoints="best"` logs) deletes the run's earlier best
checkpoints of the same name: a run keeps its current best, not every improvement.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, exists, select, update

from registrum import validation as v
from registrum.entities import Project
from registrum.store import schema as t
from registrum.store._base import StoreBase, loads, now, project_record
from registrum.store.tracking.artifacts import artifact_in_use


class RetentionMixin(StoreBase):
    def set_retention(
        self,
        project: str,
        *,
        keep_checkpoints: int | None = None,
        artifact_ttl: float | str | None = None,
    ) -> Project:
        """Sets a project's retention policy (a project admin); None keeps everything of
        that kind. `artifact_ttl` is seconds or a duration such as "30d"."""
        keep = None
        if keep_checkpoints is not None:
            keep = v.integer(keep_checkpoints, "keep_checkpoints", minimum=0)
        ttl = None if artifact_ttl is None else v.duration(artifact_ttl, "artifact_ttl")
        with self._tx() as conn:
            project_id = self._project_id(conn, project, need="admin")
            p = t.projects.c
            before = conn.execute(
                select(p.keep_checkpoints, p.artifact_ttl).where(p.id == project_id)
            ).one()
            conn.execute(
                update(t.projects)
                .where(p.id == project_id)
                .values(keep_checkpoints=keep, artifact_ttl=ttl)
            )
            self._audit(
                conn,
                "project.retention_set",
                "project",
                project,
                project=project,
                before={"keep_checkpoints": before[0], "artifact_ttl": before[1]},
                after={"keep_checkpoints": keep, "artifact_ttl": ttl},
            )
            return project_record(conn.execute(select(t.projects).where(p.id == project_id)).one())

    def apply_retention(self, project: str | None = None) -> dict[str, dict[str, int]]:
        """Applies the retention policy of `project` (a project admin), or of every project
        that has one (a server admin): deletes the checkpoints and artifacts it no longer
        keeps; answers, per project, how many of each went. Idempotent."""
        with self._tx() as conn:
            if project is None:
                self._require_server_admin("applying every project's retention policy")
                ids = None
            else:
                ids = [self._project_id(conn, project, need="admin")]
            return self._apply_retention(conn, ids, now())

    def _apply_retention(
        self, conn: Connection, project_ids: list[int] | None, stamp: float
    ) -> dict[str, dict[str, int]]:
        p = t.projects.c
        query = select(t.projects).where(
            p.deleted_at.is_(None),
            (p.keep_checkpoints.is_not(None)) | (p.artifact_ttl.is_not(None)),
        )
        if project_ids is not None:
            query = query.where(p.id.in_(project_ids))
        applied: dict[str, dict[str, int]] = {}
        for row in conn.execute(query).all():
            counts = {"checkpoints": 0, "artifacts": 0}
            if row.keep_checkpoints is not None:
                doomed = _surplus_checkpoints(conn, int(row.id), int(row.keep_checkpoints))
                counts["checkpoints"] = _expire(conn, doomed, stamp)
            if row.artifact_ttl is not None:
                doomed = _expired_artifacts(conn, int(row.id), stamp - float(row.artifact_ttl))
                counts["artifacts"] = _expire(conn, doomed, stamp)
            if any(counts.values()):
                applied[str(row.name)] = counts
                self._audit(
                    conn,
                    "retention.applied",
                    "project",
                    row.name,
                    project=row.name,
                    after={
                        **counts,
                        "keep_checkpoints": row.keep_checkpoints,
                        "artifact_ttl": row.artifact_ttl,
                    },
                )
        return applied


def _expire(conn: Connection, ids: Iterable[int], stamp: float) -> int:
    doomed = list(ids)
    a = t.artifacts.c
    for i in range(0, len(doomed), 500):
        conn.execute(
            update(t.artifacts).where(a.id.in_(doomed[i : i + 500])).values(deleted_at=stamp)
        )
    return len(doomed)


def _live_run_artifacts(project_id: int) -> Any:
    a, r = t.artifacts.c, t.runs.c
    return (
        select(a.id, a.run_id, a.metadata)
        .join(t.runs, r.id == a.run_id)
        .where(
            a.project_id == project_id,
            a.deleted_at.is_(None),
            r.deleted_at.is_(None),
            ~artifact_in_use(a.id),
        )
    )


def _surplus_checkpoints(conn: Connection, project_id: int, keep: int) -> list[int]:
    """Per run, the checkpoints beyond the newest `keep` and beyond the best."""
    a = t.artifacts.c
    query = (
        _live_run_artifacts(project_id)
        .where(a.type == "checkpoint")
        .order_by(a.run_id, a.created_at.desc(), a.id.desc())
    )
    doomed: list[int] = []
    run, seen, best_seen = None, 0, False
    for row in conn.execute(query):
        if row.run_id != run:
            run, seen, best_seen = row.run_id, 0, False
        seen += 1
        best = not best_seen and loads(row.metadata).get("best") is True
        best_seen = best_seen or best
        if seen > keep and not best:
            doomed.append(int(row.id))
    return doomed


def _expired_artifacts(conn: Connection, project_id: int, made_before: float) -> list[int]:
    """Artifacts made before `made_before` by runs that registered nothing live."""
    a, mv, m = t.artifacts.c, t.model_versions.c, t.registered_models.c
    registered = exists().where(
        mv.run_id == a.run_id,
        mv.deleted_at.is_(None),
        exists().where(and_(m.id == mv.model_id, m.deleted_at.is_(None))),
    )
    query = _live_run_artifacts(project_id).where(a.created_at < made_before, ~registered)
    return [int(row.id) for row in conn.execute(query)]
