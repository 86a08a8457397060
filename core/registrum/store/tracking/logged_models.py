"""Logged models (MLflow 3): a model's files collect while it is pending; when it turns
ready they become a model artifact of its run (type "model", named after the logged model),
so it is a first-class Registrum artifact: listed with the run, registrable, in lineage.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from registrum import validation as v
from registrum.entities import Artifact, ArtifactFile, LoggedModel
from registrum.errors import ArtifactNotFound, InvalidArgument
from registrum.store import schema as t
from registrum.store._base import StoreBase, dumps, loads, now
from registrum.store.tracking.files import RunFilesMixin, folder

STATUSES = ("pending", "ready", "failed")
ORDERS = ("created_at", "updated_at", "name")
_MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")
_REFUSED = re.compile(r"[/@\s]+")


def model_id(value: Any) -> str:
    if not isinstance(value, str) or not _MODEL_ID.match(value):
        raise InvalidArgument(
            f"logged model id {value!r} is not valid: expected 'm-' and 32 hex digits"
        )
    return value


def artifact_name(name: str) -> str:
    """The artifact name a logged model's files take: its own name where Registrum's naming
    rule allows it, else with each run of '/', '@' or spaces replaced by '-'."""
    try:
        return v.name(name, "artifact name")
    except InvalidArgument:
        return v.name(_REFUSED.sub("-", name).strip("-") or "model", "artifact name")


class LoggedModelsMixin(RunFilesMixin, StoreBase):
    def create_logged_model(
        self,
        project: str,
        name: str,
        *,
        run_id: str | None = None,
        model_type: str | None = None,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        id: str | None = None,
    ) -> LoggedModel:
        """A new pending logged model. `id` keeps a known id (an import): creating it again
        in the same project answers the existing model."""
        project = v.name(project, "project name")
        name = v.name(name, "logged model name", slash=True)
        if model_type is not None:
            model_type = v.name(model_type, "model type", slash=True)
        if run_id is not None:
            v.run_id(run_id)
        params_text = dumps(v.string_map(params, "params", max_value=8000))
        tags_text = dumps(v.string_map(tags, "tags", max_value=8000))
        new_id = model_id(id) if id is not None else f"m-{uuid.uuid4().hex}"
        with self._tx() as conn:
            project_id = self._project_id(conn, project, create=True, need="editor")
            if run_id is not None:
                run = self._run_row(conn, run_id, need="editor")
                if run.project_id != project_id:
                    raise InvalidArgument(
                        f"run {run_id} belongs to another project than {project!r}; "
                        "log the model in the run's experiment"
                    )
            existing = conn.execute(
                select(t.logged_models).where(t.logged_models.c.id == new_id)
            ).first()
            if existing is not None:
                if existing.project_id != project_id:
                    raise InvalidArgument(f"logged model {new_id} belongs to another project")
                return self._logged_model_record(conn, existing, project)
            stamp = now()
            conn.execute(
                t.logged_models.insert().values(
                    id=new_id,
                    project_id=project_id,
                    run_id=run_id,
                    name=name,
                    status="pending",
                    model_type=model_type,
                    params=params_text,
                    tags=tags_text,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
            self._audit(
                conn,
                "logged_model.created",
                "logged_model",
                new_id,
                project=project,
                after={"name": name, "run_id": run_id, "model_type": model_type},
            )
            return self._logged_model_record(conn, self._logged_model_row(conn, new_id), project)

    def get_logged_model(self, model_id: str) -> LoggedModel:
        with self._read() as conn:
            row = self._logged_model_row(conn, model_id, need="viewer")
            return self._logged_model_record(conn, row)

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, str]) -> LoggedModel:
        wanted = v.string_map(tags, "tags", max_value=8000)
        return self._merge_logged_model(model_id, "tags", wanted, [])

    def delete_logged_model_tag(self, model_id: str, key: str) -> LoggedModel:
        return self._merge_logged_model(model_id, "tags", {}, [v.key(key, "tag key")])

    def log_logged_model_params(self, model_id: str, params: Mapping[str, str]) -> LoggedModel:
        return self._merge_logged_model(
            model_id, "params", v.string_map(params, "params", max_value=8000), []
        )

    def _merge_logged_model(
        self, model_id: str, column: str, values: dict[str, str], removed: list[str]
    ) -> LoggedModel:
        with self._tx() as conn:
            row = self._logged_model_row(conn, model_id, need="editor", lock=True)
            before: dict[str, str] = loads(getattr(row, column))
            after = {**before, **values}
            for key in removed:
                after.pop(key, None)
            if after != before:
                conn.execute(
                    update(t.logged_models)
                    .where(t.logged_models.c.id == row.id)
                    .values({column: dumps(after), "updated_at": now()})
                )
                self._audit_logged_model(conn, row, f"logged_model.{column}_set", before, after)
            return self._logged_model_record(conn, self._logged_model_row(conn, row.id))

    def finalize_logged_model(self, model_id: str, status: str) -> LoggedModel:
        """Sets the status; on `ready` the model's files become its artifact (see
        `freeze_logged_model`)."""
        if status not in STATUSES:
            raise InvalidArgument(
                f"logged model status {status!r} is not one of {', '.join(STATUSES)}"
            )
        with self._tx() as conn:
            row = self._logged_model_row(conn, model_id, need="editor")
            if row.status != status:
                conn.execute(
                    update(t.logged_models)
                    .where(t.logged_models.c.id == row.id)
                    .values(status=status, updated_at=now())
                )
                self._audit_logged_model(
                    conn,
                    row,
                    "logged_model.status_set",
                    {"status": row.status},
                    {"status": status},
                )
        if status == "ready":
            self.freeze_logged_model(model_id)
        return self.get_logged_model(model_id)

    def freeze_logged_model(self, model_id: str) -> Artifact | None:
        """The model's files as a version of the model artifact of its run, recorded as the
        model's `artifact_id` (None while it has no files). The same files give the same
        version, so freezing again changes nothing."""
        with self._read() as conn:
            row = self._logged_model_row(conn, model_id, need="editor")
            project = self._project_name(conn, row.project_id)
            files = self._tree_files(conn, t.logged_model_files, "model_id", row.id, None)
        if not files:
            return None
        artifact = self.create_artifact(
            project,
            artifact_name(row.name),
            type="model",
            files=[f.to_dict() for f in files],
            run_id=row.run_id,
            metadata={"mlflow_model_id": row.id, "model_type": row.model_type},
        )
        if artifact.id != row.artifact_id:
            with self._tx() as conn:
                conn.execute(
                    update(t.logged_models)
                    .where(t.logged_models.c.id == row.id)
                    .values(artifact_id=artifact.id, updated_at=now())
                )
                self._audit_logged_model(
                    conn,
                    row,
                    "logged_model.frozen",
                    {"artifact_id": row.artifact_id},
                    {"artifact_id": artifact.id},
                )
        return artifact

    def delete_logged_model(self, model_id: str) -> None:
        """Marks the model deleted: it leaves reads and searches; its artifact stays."""
        with self._tx() as conn:
            row = self._logged_model_row(conn, model_id, need="editor")
            conn.execute(
                update(t.logged_models)
                .where(t.logged_models.c.id == row.id)
                .values(deleted_at=now())
            )
            self._audit_logged_model(
                conn, row, "logged_model.deleted", {"status": row.status}, None
            )

    def search_logged_models(
        self,
        projects: Sequence[str],
        *,
        name: str | None = None,
        status: str | None = None,
        run_id: str | None = None,
        order_by: str = "created_at",
        descending: bool = True,
        limit: int = 100,
        offset: int = 0,
    ) -> list[LoggedModel]:
        """Logged models of `projects` (each needs viewer), one page at a time."""
        if order_by not in ORDERS:
            raise InvalidArgument(
                f"logged models are ordered by one of {', '.join(ORDERS)}, not {order_by!r}"
            )
        c = t.logged_models.c
        with self._read() as conn:
            ids = [self._project_id(conn, p, need="viewer") for p in projects]
            query = select(t.logged_models).where(c.project_id.in_(ids), c.deleted_at.is_(None))
            if name is not None:
                query = query.where(c.name == name)
            if status is not None:
                query = query.where(c.status == status)
            if run_id is not None:
                query = query.where(c.run_id == run_id)
            column = c[order_by]
            query = query.order_by(column.desc() if descending else column.asc(), c.id)
            rows = conn.execute(self._window(query, limit, offset)).all()
            names = {pid: self._project_name(conn, pid) for pid in set(ids)}
            return [self._logged_model_record(conn, r, names[r.project_id]) for r in rows]

    # -- files -----------------------------------------------------------------------

    def put_logged_model_file(
        self, model_id: str, path: str, *, sha256: str, size: int
    ) -> ArtifactFile:
        """Puts an uploaded blob at `path` among the model's files. A model already ready
        is frozen again, so its artifact has the files it now has."""
        f = ArtifactFile(
            v.artifact_path(path), v.sha256(sha256), v.integer(size, "size", minimum=0, bits=64)
        )
        with self._tx() as conn:
            row = self._logged_model_row(conn, model_id, need="editor")
            self._check_file_blob(conn, f.path, f.sha256, f.size)
            old = self._write_tree_file(conn, t.logged_model_files, "model_id", row.id, f)
            self._audit_logged_model(
                conn,
                row,
                "logged_model.file_written",
                None if old is None else old.to_dict(),
                f.to_dict(),
            )
        if row.status == "ready":
            self.freeze_logged_model(model_id)
        return f

    def list_logged_model_files(
        self, model_id: str, prefix: str | None = None
    ) -> list[ArtifactFile]:
        where = folder(prefix)
        with self._read() as conn:
            row = self._logged_model_row(conn, model_id, need="viewer")
            return self._tree_files(conn, t.logged_model_files, "model_id", row.id, where)

    def get_logged_model_file(self, model_id: str, path: str) -> ArtifactFile:
        path = v.artifact_path(path)
        with self._read() as conn:
            row = self._logged_model_row(conn, model_id, need="viewer")
            return self._tree_file(conn, t.logged_model_files, "model_id", row.id, path)

    # -- a run's outputs ----------------------------------------------------------------

    def log_run_outputs(self, run_id: str, models: Sequence[tuple[str, int]]) -> None:
        """Records logged models as outputs of a run (at a training step)."""
        v.run_id(run_id)
        outputs = [(model_id(m), v.integer(step, "step", bits=64)) for m, step in models]
        with self._tx() as conn:
            run = self._run_row(conn, run_id, need="editor")
            for m, _ in outputs:
                self._logged_model_row(conn, m, need="viewer")
            if not outputs:
                return
            conn.execute(
                self._upsert(t.run_model_outputs, ("run_id", "model_id"), ("step",)),
                [
                    {"run_id": run_id, "model_id": m, "step": step, "created_at": now()}
                    for m, step in outputs
                ],
            )
            self._audit_run(
                conn,
                run,
                "run.outputs_logged",
                after=[{"model_id": m, "step": s} for m, s in outputs],
            )

    def run_model_outputs(self, run_id: str) -> list[tuple[str, int]]:
        """(model id, step) of the logged models the run produced, oldest first."""
        v.run_id(run_id)
        o, m = t.run_model_outputs.c, t.logged_models.c
        with self._read() as conn:
            self._run_row(conn, run_id, need="viewer")
            rows = conn.execute(
                select(o.model_id, o.step)
                .join(t.logged_models, m.id == o.model_id)
                .where(o.run_id == run_id, m.deleted_at.is_(None))
                .order_by(o.created_at, o.model_id)
            )
            return [(r.model_id, int(r.step)) for r in rows]

    # -- helpers ------------------------------------------------------------------------

    def _logged_model_row(
        self, conn: Connection, model: str, *, need: str | None = None, lock: bool = False
    ) -> Any:
        """A live logged model's row; with `need`, the caller must hold that role; with
        `lock`, the row stays locked until the transaction ends (PostgreSQL: concurrent
        read-modify-writes of its tags wait for each other)."""
        c = t.logged_models.c
        query = select(t.logged_models).where(c.id == model_id(model), c.deleted_at.is_(None))
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            raise ArtifactNotFound(f"logged model {model} does not exist", model_id=model)
        if need is not None:
            self._require(conn, row.project_id, need)
        return row

    def _logged_model_record(
        self, conn: Connection, row: Any, project: str | None = None
    ) -> LoggedModel:
        return LoggedModel(
            id=row.id,
            project=project or self._project_name(conn, row.project_id),
            name=row.name,
            status=row.status,
            run_id=row.run_id,
            model_type=row.model_type,
            params=loads(row.params),
            tags=loads(row.tags),
            artifact_id=row.artifact_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _audit_logged_model(
        self, conn: Connection, row: Any, action: str, before: Any, after: Any
    ) -> None:
        self._audit(
            conn,
            action,
            "logged_model",
            row.id,
            project=self._project_name(conn, row.project_id),
            before=before,
            after=after,
        )
