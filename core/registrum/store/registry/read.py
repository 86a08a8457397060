"""Reading the model registry: a name, version or alias resolved, and records loaded."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from registrum import validation as v
from registrum.entities import ModelVersion, RegisteredModel, decode_float
from registrum.errors import AliasNotFound, ModelNotFound, ModelVersionNotFound
from registrum.store import schema as t
from registrum.store._base import StoreBase, loads
from registrum.store.tracking.artifacts import ArtifactsMixin

_mv, _alias, _model = t.model_versions, t.aliases.c, t.registered_models
# Built once (see _base.py): the reads behind every model and version answer.
_LIVE_MODEL = select(_model).where(
    _model.c.name == bindparam("name"), _model.c.deleted_at.is_(None)
)
_MODEL = (
    select(_model, t.projects.c.name.label("project"))
    .join(t.projects, t.projects.c.id == _model.c.project_id)
    .where(_model.c.id == bindparam("id"))
)
_LATEST_NUMBER = (
    select(_mv.c.version)
    .where(_mv.c.model_id == bindparam("id"), _mv.c.deleted_at.is_(None))
    .order_by(_mv.c.version.desc())
    .limit(1)
)
_MODEL_ALIASES = (
    select(_alias.alias, _mv.c.version)
    .join(_mv, _mv.c.id == _alias.version_id)
    .where(_alias.model_id == bindparam("id"))
    .order_by(_alias.alias)
)
_MODEL_TAGS = (
    select(t.model_tags.c.key, t.model_tags.c.value)
    .where(t.model_tags.c.model_id == bindparam("id"))
    .order_by(t.model_tags.c.key)
)
_VERSION = (
    select(_mv, _model.c.name.label("model"), t.projects.c.name.label("project"))
    .join(_model, _model.c.id == _mv.c.model_id)
    .join(t.projects, t.projects.c.id == _model.c.project_id)
    .where(_mv.c.id == bindparam("id"))
)
_VERSION_ALIASES = (
    select(_alias.alias).where(_alias.version_id == bindparam("id")).order_by(_alias.alias)
)
_VERSION_TAGS = (
    select(t.model_version_tags.c.key, t.model_version_tags.c.value)
    .where(t.model_version_tags.c.version_id == bindparam("id"))
    .order_by(t.model_version_tags.c.key)
)


class RegistryReadMixin(ArtifactsMixin, StoreBase):
    def _model_row(self, conn: Connection, name: str, *, need: str | None = None) -> Any:
        """A model's row; with `need`, the signed-in user must hold that role on its project."""
        row = conn.execute(_LIVE_MODEL, {"name": name}).first()
        if row is None:
            raise ModelNotFound(f"model {name!r} does not exist", model=name)
        if need is not None:
            self._require(conn, row.project_id, need)
        return row

    def _version_id_or_none(self, conn: Connection, model_id: int, version: int) -> int | None:
        mv = t.model_versions.c
        found = conn.execute(
            select(mv.id).where(
                mv.model_id == model_id, mv.version == version, mv.deleted_at.is_(None)
            )
        ).scalar()
        return None if found is None else int(found)

    def _resolve(
        self, conn: Connection, name: str, wanted: int | str | None, *, need: str | None = None
    ) -> int:
        model = self._model_row(conn, name, need=need)
        mv = t.model_versions.c
        if isinstance(wanted, int):
            found = self._version_id_or_none(conn, model.id, wanted)
            if found is None:
                raise ModelVersionNotFound(
                    f"model {name!r} has no version {wanted}", model=name, version=wanted
                )
            return found
        if wanted is None:
            found = conn.execute(
                select(mv.id)
                .where(mv.model_id == model.id, mv.deleted_at.is_(None))
                .order_by(mv.version.desc())
                .limit(1)
            ).scalar()
            if found is None:
                raise ModelVersionNotFound(f"model {name!r} has no versions yet", model=name)
            return int(found)
        found = conn.execute(
            select(t.aliases.c.version_id).where(
                t.aliases.c.model_id == model.id, t.aliases.c.alias == wanted
            )
        ).scalar()
        if found is None:
            raise AliasNotFound(f"model {name!r} has no alias {wanted!r}", model=name, alias=wanted)
        return int(found)

    def latest_versions_by_tag(self, name: str, key: str) -> dict[str | None, ModelVersion]:
        """For each value of version tag `key` (None: versions without it), the newest live
        version of model `name` holding it: MLflow's latest version per stage, read without
        loading every version."""
        name = v.name(name, "model name")
        v.key(key, "tag key")
        mv, tag = t.model_versions.c, t.model_version_tags.c
        with self._read() as conn:
            model = self._model_row(conn, name, need="viewer")
            rows = conn.execute(
                select(tag.value, func.max(mv.version))
                .select_from(
                    t.model_versions.outerjoin(
                        t.model_version_tags, (tag.version_id == mv.id) & (tag.key == key)
                    )
                )
                .where(mv.model_id == model.id, mv.deleted_at.is_(None))
                .group_by(tag.value)
            ).all()
            found = {value: self._version_id_or_none(conn, model.id, n) for value, n in rows}
            return {value: self._load_version(conn, i) for value, i in found.items() if i}

    def _load_model(self, conn: Connection, model_id: int) -> RegisteredModel:
        key = {"id": model_id}
        r = conn.execute(_MODEL, key).one()
        latest = conn.execute(_LATEST_NUMBER, key).scalar()
        alias_rows = conn.execute(_MODEL_ALIASES, key)
        tags = conn.execute(_MODEL_TAGS, key)
        return RegisteredModel(
            id=r.id,
            name=r.deleted_name or r.name,  # a deleted model gave its name up, and keeps it
            project=r.project,
            description=r.description,
            latest_version=latest,
            aliases={a.alias: a.version for a in alias_rows},
            tags={x.key: x.value for x in tags},
            created_at=r.created_at,
            updated_at=r.updated_at,
            deleted_at=r.deleted_at,
        )

    def _load_version(self, conn: Connection, version_id: int) -> ModelVersion:
        key = {"id": version_id}
        r = conn.execute(_VERSION, key).one()
        aliases = conn.execute(_VERSION_ALIASES, key).scalars()
        tags = conn.execute(_VERSION_TAGS, key)
        metrics = {k: decode_float(x) for k, x in loads(r.metrics).items()}
        return ModelVersion(
            id=r.id,
            model=r.model,
            version=r.version,
            project=r.project,
            run_id=r.run_id,
            artifact=self._load_artifact(conn, r.artifact_id),
            flavor=r.flavor,
            signature=loads(r.signature),
            metrics=metrics,
            params=loads(r.params),
            description=r.description,
            aliases=list(aliases),
            tags={x.key: x.value for x in tags},
            created_at=r.created_at,
            updated_at=r.updated_at,
            deleted_at=r.deleted_at,
        )
