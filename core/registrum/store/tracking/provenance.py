"""Run provenance: the environment a run ran on and the git state of its code."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from registrum import validation as v
from registrum.errors import BlobNotFound, InvalidArgument
from registrum.store import schema as t
from registrum.store._base import StoreBase, json_object, json_text, loads, now
from registrum.store.tracking.blob_access import BlobsMixin


class ProvenanceMixin(BlobsMixin, StoreBase):
    def set_environment(self, run_id: str, environment: Mapping[str, Any]) -> None:
        """Stores what the run ran on (python, OS, CPUs, GPUs, packages, command line)."""
        v.run_id(run_id)
        if not isinstance(environment, Mapping):
            raise InvalidArgument("environment must be an object")
        data = json_text(environment, "environment")
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            digest = hashlib.sha256(data.encode()).hexdigest()
            self._audit_run(conn, row, "run.environment_set", after={"sha256": digest})
            conn.execute(
                self._insert(t.run_environments)
                .values(run_id=run_id, data=data, updated_at=now())
                .on_conflict_do_update(
                    index_elements=["run_id"], set_={"data": data, "updated_at": now()}
                )
            )

    def get_environment(self, run_id: str) -> dict[str, Any] | None:
        v.run_id(run_id)
        with self._read() as conn:
            self._run_row(conn, run_id, need="viewer")
            text = conn.execute(
                select(t.run_environments.c.data).where(t.run_environments.c.run_id == run_id)
            ).scalar()
        environment: dict[str, Any] | None = loads(text)
        return environment

    def set_code_version(
        self,
        run_id: str,
        *,
        commit: str | None = None,
        branch: str | None = None,
        remote: str | None = None,
        dirty: bool | None = None,
        diff_sha256: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Stores the git state of the run's code; the uncommitted diff is a blob."""
        v.run_id(run_id)
        if commit is not None and not (isinstance(commit, str) and 0 < len(commit) <= 64):
            raise InvalidArgument("commit must be a string of at most 64 characters")
        if branch is not None:
            v.name(branch, "branch", slash=True)
        v.optional_text(remote, "remote", max_len=1024)
        if dirty is not None and not isinstance(dirty, bool):
            raise InvalidArgument("dirty must be true or false")
        if diff_sha256 is not None:
            v.sha256(diff_sha256)
        data = json_object(extra, "extra")
        values = {
            "commit": commit,
            "branch": branch,
            "remote": remote,
            "dirty": dirty,
            "diff_sha256": diff_sha256,
            "data": data,
            "updated_at": now(),
        }
        with self._tx() as conn:
            row = self._run_row(conn, run_id, need="editor")
            if diff_sha256 is not None and self._unusable_blob(conn, [diff_sha256]):
                # Naming a hash must not make another project's bytes readable through this run.
                raise BlobNotFound(
                    f"the diff, blob {diff_sha256}, was not uploaded; upload it first",
                    sha256=diff_sha256,
                )
            if diff_sha256 is not None:
                self._claim_blobs(conn, {diff_sha256: None})
            self._audit_run(
                conn, row, "run.code_set", after={k: x for k, x in values.items() if k != "data"}
            )
            conn.execute(
                self._insert(t.code_versions)
                .values(run_id=run_id, **values)
                .on_conflict_do_update(index_elements=["run_id"], set_=values)
            )

    def get_code_version(self, run_id: str) -> dict[str, Any] | None:
        v.run_id(run_id)
        with self._read() as conn:
            self._run_row(conn, run_id, need="viewer")
            row = conn.execute(
                select(t.code_versions).where(t.code_versions.c.run_id == run_id)
            ).first()
        if row is None:
            return None
        return {
            "commit": row.commit,
            "branch": row.branch,
            "remote": row.remote,
            "dirty": row.dirty,
            "diff_sha256": row.diff_sha256,
            "extra": loads(row.data),
        }
