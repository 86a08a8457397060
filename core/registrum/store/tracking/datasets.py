"""Dataset versions by content fingerprint, and what each run used as its inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from registrum import validation as v
from registrum.entities import DatasetVersion
from registrum.errors import DatasetNotFound, InvalidArgument, StoreError
from registrum.store import schema as t
from registrum.store._base import RETRIES, StoreBase, json_object, loads, now
from registrum.store.tracking.artifacts import ArtifactsMixin

INPUT_KINDS = ("dataset", "model_version", "artifact")


class DatasetsMixin(ArtifactsMixin, StoreBase):
    def log_dataset(
        self,
        project: str,
        name: str,
        *,
        fingerprint: str,
        schema: Mapping[str, Any] | None = None,
        rows: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        artifact_id: int | None = None,
        run_id: str | None = None,
        role: str = "input",
    ) -> DatasetVersion:
        """A dataset version by content fingerprint: same fingerprint, same version.
        With `run_id`, also records that the run used it (in `role`)."""
        project = v.name(project, "project name")
        name = v.name(name, "dataset name")
        if not isinstance(fingerprint, str) or not 8 <= len(fingerprint) <= 128:
            raise InvalidArgument("fingerprint must be a string of 8 to 128 characters")
        schema_text = json_object(schema, "schema")
        meta = json_object(metadata, "metadata")
        if rows is not None:
            v.integer(rows, "rows", minimum=0, bits=64)
        if artifact_id is not None:
            v.integer(artifact_id, "artifact_id", minimum=1)
        if run_id is not None:
            v.run_id(run_id)
            v.name(role, "role")
        for _ in range(RETRIES):
            try:
                with self._tx() as conn:
                    project_id = self._project_id(conn, project, create=True, need="editor")
                    if run_id is not None:
                        self._run_row(conn, run_id, need="editor")
                    if artifact_id is not None:
                        self._load_artifact(conn, artifact_id, need="viewer")
                    d = t.dataset_versions.c
                    found = conn.execute(
                        select(d.id).where(
                            d.project_id == project_id, d.name == name, d.fingerprint == fingerprint
                        )
                    ).scalar()
                    if found is None:
                        found = conn.execute(
                            t.dataset_versions.insert()
                            .values(
                                project_id=project_id,
                                name=name,
                                version=self._next_version(
                                    conn, t.dataset_versions, project_id, name
                                ),
                                fingerprint=fingerprint,
                                schema=schema_text,
                                rows=rows,
                                metadata=meta,
                                artifact_id=artifact_id,
                                created_at=now(),
                            )
                            .returning(d.id)
                        ).scalar_one()
                        created = self._load_dataset(conn, int(found))
                        self._audit(
                            conn,
                            "dataset.created",
                            "dataset",
                            f"{project}/{name}/{created.version}",
                            project=project,
                            after={"fingerprint": fingerprint, "rows": rows, "run_id": run_id},
                        )
                    if run_id is not None:
                        self._add_input(conn, run_id, "dataset", int(found), role)
                    return self._load_dataset(conn, int(found))
            except IntegrityError:
                continue
        raise StoreError(f"could not allocate a version for dataset {name!r}; try again")

    def get_dataset(self, project: str, name: str, version: int | str = "latest") -> DatasetVersion:
        name = v.name(name, "dataset name")
        wanted = v.version(version)
        with self._read() as conn:
            project_id = self._project_id(conn, project, need="viewer")
            found = self._version_id(conn, t.dataset_versions, project_id, name, wanted)
            if found is None:
                raise DatasetNotFound(
                    f"dataset {name!r} version {version} does not exist in project {project!r}"
                )
            return self._load_dataset(conn, found)

    def list_datasets(
        self, project: str, *, name: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DatasetVersion]:
        """Dataset versions by name, newest first; `limit`/`offset` select one page."""
        with self._read() as conn:
            project_id = self._project_id(conn, project, need="viewer")
            d = t.dataset_versions.c
            query = select(d.id).where(d.project_id == project_id)
            if name is not None:
                query = query.where(d.name == v.name(name, "dataset name"))
            query = query.order_by(d.name, d.version.desc())
            ids = conn.execute(self._window(query, limit, offset)).scalars().all()
            return [self._load_dataset(conn, int(i)) for i in ids]

    def add_run_input(self, run_id: str, *, kind: str, target_id: int, role: str = "input") -> None:
        """Records that a run used a dataset version, model version or artifact."""
        v.run_id(run_id)
        if kind not in INPUT_KINDS:
            raise InvalidArgument(f"input kind {kind!r} is not one of {', '.join(INPUT_KINDS)}")
        v.integer(target_id, "target_id", minimum=1)
        v.name(role, "role")
        with self._tx() as conn:
            self._run_row(conn, run_id, need="editor")
            self._require_target(conn, kind, target_id)
            self._add_input(conn, run_id, kind, target_id, role)

    def run_inputs(self, run_id: str) -> list[dict[str, Any]]:
        v.run_id(run_id)
        with self._read() as conn:
            self._run_row(conn, run_id, need="viewer")
            i = t.run_inputs.c
            rows = conn.execute(select(t.run_inputs).where(i.run_id == run_id).order_by(i.id))
            return [
                {
                    "kind": r.kind,
                    "target_id": r.target_id,
                    "role": r.role,
                    "created_at": r.created_at,
                }
                for r in rows
            ]

    def _require_target(self, conn: Connection, kind: str, target_id: int) -> None:
        """An input must exist, and the signed-in user must be able to read it."""
        found = None
        if kind == "model_version":
            mv, m = t.model_versions.c, t.registered_models.c
            found = conn.execute(
                select(m.project_id)
                .join(t.model_versions, mv.model_id == m.id)
                .where(mv.id == target_id)
            ).scalar()
        else:
            table = t.dataset_versions if kind == "dataset" else t.artifacts
            found = conn.execute(select(table.c.project_id).where(table.c.id == target_id)).scalar()
        if found is None:
            raise InvalidArgument(f"{kind} {target_id} does not exist")
        self._require(conn, int(found), "viewer")

    def _add_input(
        self, conn: Connection, run_id: str, kind: str, target_id: int, role: str
    ) -> None:
        added = conn.execute(
            self._insert(t.run_inputs)
            .values(run_id=run_id, kind=kind, target_id=target_id, role=role, created_at=now())
            .on_conflict_do_nothing(index_elements=["run_id", "kind", "target_id", "role"])
            .returning(t.run_inputs.c.id)
        ).first()
        if added is not None:
            row = self._run_row(conn, run_id)
            self._audit_run(
                conn, row, "run.input_added", after={"kind": kind, "id": target_id, "role": role}
            )

    def _load_dataset(self, conn: Connection, dataset_id: int) -> DatasetVersion:
        r = conn.execute(
            select(t.dataset_versions, t.projects.c.name.label("project"))
            .join(t.projects, t.projects.c.id == t.dataset_versions.c.project_id)
            .where(t.dataset_versions.c.id == dataset_id)
        ).one()
        return dataset_record(r)


def dataset_record(r: Any) -> DatasetVersion:
    """A dataset version from its row (with the project's name as `project`)."""
    return DatasetVersion(
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
