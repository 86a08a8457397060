"""Soft deletion of runs: a deleted run leaves searches but keeps its data until restored."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update

from registrum import validation as v
from registrum.store import schema as t
from registrum.store._base import StoreBase, now


class LifecycleMixin(StoreBase):
    def delete_run(self, run_id: str) -> None:
        """Marks a run deleted: searches leave it out unless asked for deleted runs, reads
        by id still answer it, and `restore_run` brings it back. Deleting twice is a no-op."""
        v.run_id(run_id)
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            if row.deleted_at is not None:
                return
            stamp = now()
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(deleted_at=stamp))
            self._audit_run(conn, row, "run.deleted", after={"deleted_at": stamp})

    def restore_run(self, run_id: str) -> None:
        """Undoes `delete_run`; restoring a run that is not deleted is a no-op."""
        v.run_id(run_id)
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            if row.deleted_at is None:
                return
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(deleted_at=None))
            self._audit_run(conn, row, "run.restored", before={"deleted_at": row.deleted_at})

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
