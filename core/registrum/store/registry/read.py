"""Reading the model registry: a name, version or alias resolved, and records loaded."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from registrum import validation as v
from registrum.entities import ModelVersion, RegisteredModel, decode_float
from registrum.errors import AliasNotFound, ModelNotFound, ModelVersionNotFound
from registrum.store import schema as t
from registrum.store._base import StoreBase, loads
from registrum.store.tracking.artifacts import ArtifactsMixin


class RegistryReadMixin(ArtifactsMixin, StoreBase):
    def _model_row(self, conn: Connection, name: str, *, need: str | None = None) -> Any:
        """A model's row; with `need`, the signed-in user must hold that role on its project."""
        row = conn.execute(
            select(t.registered_models).where(
                t.registered_models.c.name == name, t.registered_models.c.deleted_at.is_(None)
            )
        ).first()
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
        r = conn.execute(
            select(t.registered_models, t.projects.c.name.label("project"))
            .join(t.projects, t.projects.c.id == t.registered_models.c.project_id)
            .where(t.registered_models.c.id == model_id)
        ).one()
        mv = t.model_versions.c
        latest = conn.execute(
            select(mv.version)
            .where(mv.model_id == model_id, mv.deleted_at.is_(None))
            .order_by(mv.version.desc())
            .limit(1)
        ).scalar()
        alias_rows = conn.execute(
            select(t.aliases.c.alias, mv.version)
            .join(t.model_versions, mv.id == t.aliases.c.version_id)
            .where(t.aliases.c.model_id == model_id)
            .order_by(t.aliases.c.alias)
        )
        tags = conn.execute(
            select(t.model_tags)
            .where(t.model_tags.c.model_id == model_id)
            .order_by(t.model_tags.c.key)
        )
        return RegisteredModel(
            id=r.id,
            name=r.name,
            project=r.project,
            description=r.description,
            latest_version=latest,
            aliases={a.alias: a.version for a in alias_rows},
            tags={x.key: x.value for x in tags},
            created_at=r.created_at,
            updated_at=r.updated_at,
        )

    def _load_version(self, conn: Connection, version_id: int) -> ModelVersion:
        mv = t.model_versions
        r = conn.execute(
            select(
                mv, t.registered_models.c.name.label("model"), t.projects.c.name.label("project")
            )
            .join(t.registered_models, t.registered_models.c.id == mv.c.model_id)
            .join(t.projects, t.projects.c.id == t.registered_models.c.project_id)
            .where(mv.c.id == version_id)
        ).one()
        aliases = conn.execute(
            select(t.aliases.c.alias)
            .where(t.aliases.c.version_id == version_id)
            .order_by(t.aliases.c.alias)
        ).scalars()
        tags = conn.execute(
            select(t.model_version_tags)
            .where(t.model_version_tags.c.version_id == version_id)
            .order_by(t.model_version_tags.c.key)
        )
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
        )
