"""A registered model's lifecycle: renamed, moved to another project, deleted and restored,
with its versions and tags.

Deletion is soft, as everywhere in Registrum: a deleted model or version disappears from
reads and lists but keeps its rows, so it can be restored. A deleted model gives its name up
(MLflow lets a deleted model's name be registered again): its row is renamed `deleted/<id>`,
which no model name can be (names hold no '/'), and keeps the name in `deleted_name`. A
deleted version keeps its number, which is never handed out again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, select, update

from registrum import validation as v
from registrum.entities import ModelVersion, RegisteredModel
from registrum.errors import (
    AlreadyExists,
    ApprovalRequired,
    Conflict,
    InvalidArgument,
    ModelVersionNotFound,
)
from registrum.store import schema as t
from registrum.store._base import StoreBase, now
from registrum.store.governance.approvals import protected_aliases
from registrum.store.registry.moves import AliasMovesMixin


class RegistryLifecycleMixin(AliasMovesMixin, StoreBase):
    # -- models ----------------------------------------------------------------------

    def rename_model(self, name: str, new_name: str) -> RegisteredModel:
        """Renames a model; its versions, aliases, tags and policy stay with it."""
        name = v.name(name, "model name")
        new_name = v.name(new_name, "new model name")
        with self._tx() as conn:
            row = self._model_row(conn, name, need="editor")
            if new_name != name:
                self._refuse_taken(conn, new_name)
                self._set_model(conn, row.id, name=new_name)
                self._audit(
                    conn,
                    "model.renamed",
                    "model",
                    new_name,
                    project=self._project_name(conn, row.project_id),
                    before={"name": name},
                    after={"name": new_name},
                )
            return self._load_model(conn, row.id)

    def move_model(self, name: str, project: str) -> RegisteredModel:
        """Moves a model (not its versions' artifacts, which stay with their runs) to another
        project; needs editor on both."""
        name = v.name(name, "model name")
        project = v.name(project, "project name")
        with self._tx() as conn:
            row = self._model_row(conn, name, need="editor")
            target = self._project_id(conn, project, need="editor")
            if target != row.project_id:
                before = self._project_name(conn, row.project_id)
                self._set_model(conn, row.id, project_id=target)
                self._audit(
                    conn,
                    "model.moved",
                    "model",
                    name,
                    project=project,
                    before={"project": before},
                    after={"project": project},
                )
            return self._load_model(conn, row.id)

    def delete_model(self, name: str) -> None:
        """Soft-deletes a model with its versions (a project admin); `restore_model` brings
        it back. A model whose policy protects an alias that is set is not deleted (that
        would move the alias without a request): a project admin unprotects the alias first."""
        name = v.name(name, "model name")
        with self._tx() as conn:
            row = self._model_row(conn, name, need="admin")
            a = t.aliases.c
            set_aliases = conn.execute(select(a.alias).where(a.model_id == row.id)).scalars()
            guarded = _protected_among(conn, row.id, set_aliases)
            if guarded:
                raise ApprovalRequired(
                    f"model {name!r} has protected alias {guarded[0]!r} set; a project admin "
                    "unprotects it first (registrum policy set), then delete the model",
                    model=name,
                    alias=guarded[0],
                )
            stamp = now()
            self._set_model(
                conn, row.id, name=f"deleted/{row.id}", deleted_name=name, deleted_at=stamp
            )
            self._audit(
                conn,
                "model.deleted",
                "model",
                name,
                project=self._project_name(conn, row.project_id),
                before={"description": row.description, "last_version": row.last_version},
            )

    def restore_model(self, name: str) -> RegisteredModel:
        """Restores the model last deleted under `name`, unless a live model took the name."""
        name = v.name(name, "model name")
        m = t.registered_models.c
        with self._tx() as conn:
            row = conn.execute(
                select(t.registered_models)
                .where(m.deleted_name == name, m.deleted_at.is_not(None))
                .order_by(m.deleted_at.desc())
                .limit(1)
            ).first()
            if row is None:
                # A live model of that name: only its admins learn that it is not deleted.
                self._model_row(conn, name, need="admin")
                raise Conflict(f"model {name!r} is not deleted: nothing to restore", model=name)
            self._require(conn, row.project_id, "admin")
            self._refuse_taken(conn, name)
            self._set_model(conn, row.id, name=name, deleted_name=None, deleted_at=None)
            self._audit(
                conn,
                "model.restored",
                "model",
                name,
                project=self._project_name(conn, row.project_id),
            )
            return self._load_model(conn, row.id)

    def delete_model_tag(self, name: str, key: str) -> RegisteredModel:
        """Removes tag `key` of a model (a missing tag is no error: the result is the same)."""
        name = v.name(name, "model name")
        v.key(key, "tag key")
        with self._tx() as conn:
            row = self._model_row(conn, name, need="editor")
            c = t.model_tags.c
            before = conn.execute(
                select(c.value).where(c.model_id == row.id, c.key == key)
            ).scalar()
            if before is not None:
                conn.execute(delete(t.model_tags).where(c.model_id == row.id, c.key == key))
                self._set_model(conn, row.id)
                self._audit(
                    conn,
                    "model.tag_deleted",
                    "model",
                    name,
                    project=self._project_name(conn, row.project_id),
                    before={"tags": {key: before}},
                )
            return self._load_model(conn, row.id)

    # -- versions --------------------------------------------------------------------

    def delete_model_version(self, ref: str, *, remove_aliases: bool = False) -> None:
        """Soft-deletes version `name@N` (a project admin); `restore_model_version` brings it
        back. Refused (`Conflict`) while an alias points at it, unless `remove_aliases`
        (MLflow's way: the aliases go with it), and while an open promotion request would
        move an alias to it. A protected alias always moves through a request first."""
        name, number = _numbered(ref)
        with self._tx() as conn:
            model = self._model_row(conn, name, need="admin")
            version_id = self._resolve(conn, name, number)
            a = t.aliases.c
            pointing = list(
                conn.execute(
                    select(a.alias).where(a.model_id == model.id, a.version_id == version_id)
                ).scalars()
            )
            r = t.promotion_requests.c
            waiting = conn.execute(
                select(r.id, r.alias)
                .where(r.model_id == model.id, r.version == number, r.state == "open")
                .order_by(r.id)
            ).first()
            if waiting is not None:
                raise Conflict(
                    f"open request {waiting.id} would move {name}@{waiting.alias} to version "
                    f"{number}: cancel or decide it first (registrum requests cancel "
                    f"{waiting.id}), then delete the version",
                    model=name,
                    version=number,
                    request_id=waiting.id,
                )
            if pointing and not remove_aliases:
                shown = ", ".join(f"{name}@{x}" for x in pointing)
                raise Conflict(
                    f"{name}@{number} is what {shown} point{'s' if len(pointing) == 1 else ''} "
                    f"at: move or remove {'it' if len(pointing) == 1 else 'them'} first "
                    f"(registrum models alias {name} {pointing[0]} VERSION, or registrum "
                    f"models unalias {name} {pointing[0]}), then delete the version",
                    model=name,
                    version=number,
                    aliases=pointing,
                )
            guarded = _protected_among(conn, model.id, pointing)
            if guarded:
                raise ApprovalRequired(
                    f"{name}@{number} is what protected alias {guarded[0]!r} points at: move "
                    f"{name}@{guarded[0]} to another version through a promotion request "
                    f"(client.request_promotion({name!r}, {guarded[0]!r}, VERSION)) first",
                    model=name,
                    alias=guarded[0],
                )
            for alias in pointing:
                conn.execute(delete(t.aliases).where(a.model_id == model.id, a.alias == alias))
                self._audit_alias(conn, model.id, alias, version_id, None)
            stamp = now()
            conn.execute(
                update(t.model_versions)
                .where(t.model_versions.c.id == version_id)
                .values(deleted_at=stamp, updated_at=stamp)
            )
            self._set_model(conn, model.id)
            self._audit(
                conn,
                "model_version.deleted",
                "model_version",
                f"{name}@{number}",
                project=self._project_name(conn, model.project_id),
                before={"aliases": pointing},
            )

    def restore_model_version(self, ref: str) -> ModelVersion:
        """Restores deleted version `name@N` (its aliases are not: set them again)."""
        name, number = _numbered(ref)
        mv = t.model_versions.c
        with self._tx() as conn:
            model = self._model_row(conn, name, need="admin")
            version_id = conn.execute(
                select(mv.id).where(
                    mv.model_id == model.id, mv.version == number, mv.deleted_at.is_not(None)
                )
            ).scalar()
            if version_id is None:
                raise ModelVersionNotFound(
                    f"model {name!r} has no deleted version {number}", model=name, version=number
                )
            conn.execute(
                update(t.model_versions)
                .where(mv.id == version_id)
                .values(deleted_at=None, updated_at=now())
            )
            self._audit(
                conn,
                "model_version.restored",
                "model_version",
                f"{name}@{number}",
                project=self._project_name(conn, model.project_id),
            )
            return self._load_version(conn, int(version_id))

    def delete_model_version_tag(self, ref: str, key: str) -> ModelVersion:
        """Removes tag `key` of a version (a missing tag is no error: the result is the same)."""
        name, wanted = v.model_ref(ref)
        v.key(key, "tag key")
        with self._tx() as conn:
            version_id = self._resolve(conn, name, wanted, need="editor")
            c = t.model_version_tags.c
            before = conn.execute(
                select(c.value).where(c.version_id == version_id, c.key == key)
            ).scalar()
            if before is not None:
                conn.execute(
                    delete(t.model_version_tags).where(c.version_id == version_id, c.key == key)
                )
                conn.execute(
                    update(t.model_versions)
                    .where(t.model_versions.c.id == version_id)
                    .values(updated_at=now())
                )
            version = self._load_version(conn, version_id)
            if before is not None:
                self._audit(
                    conn,
                    "model_version.tag_deleted",
                    "model_version",
                    version.ref,
                    project=version.project,
                    before={"tags": {key: before}},
                )
            return version

    # -- helpers ---------------------------------------------------------------------

    def _refuse_taken(self, conn: Connection, name: str) -> None:
        m = t.registered_models.c
        if conn.execute(select(m.id).where(m.name == name)).first() is not None:
            raise AlreadyExists(f"model {name!r} already exists: choose another name", model=name)

    def _set_model(self, conn: Connection, model_id: int, **values: Any) -> None:
        """Updates a model's row (and its `updated_at`)."""
        conn.execute(
            update(t.registered_models)
            .where(t.registered_models.c.id == model_id)
            .values(updated_at=now(), **values)
        )


def _protected_among(conn: Connection, model_id: int, aliases: Iterable[str]) -> list[str]:
    """Which of `aliases` the model's policy protects (they move only through a request)."""
    return sorted(set(aliases) & set(protected_aliases(conn, model_id)))


def _numbered(ref: str) -> tuple[str, int]:
    """`name@N`: a version is deleted and restored by its number, never through an alias."""
    name, wanted = v.model_ref(ref)
    if not isinstance(wanted, int):
        raise InvalidArgument(f"give the version by its number ({name}@3), not {ref!r}")
    return name, wanted
