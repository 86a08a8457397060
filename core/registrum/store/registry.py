"""The model registry: registered models, consecutive versions, aliases with compare-and-set."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from registrum.entities import (
    UNSET,
    ArtifactFile,
    ModelVersion,
    RegisteredModel,
    _Unset,
    decode_float,
    encode_float,
)
from registrum.errors import (
    AliasMoved,
    AliasNotFound,
    AlreadyExists,
    InvalidArgument,
    ModelNotFound,
    ModelVersionNotFound,
    RunNotFound,
    StoreError,
)
from registrum.store import schema as t
from registrum.store import validation as v
from registrum.store._base import StoreBase, dumps, loads, now
from registrum.store.artifacts import ArtifactsMixin


def _metrics(value: Mapping[str, Any] | None) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument("metrics must be an object of names to numbers")
    out = {}
    for k, x in value.items():
        v.key(k, "metric name")
        out[k] = v.number(x, f"metric {k!r}")
    return out


def _metrics_json(metrics: dict[str, float]) -> str:
    return dumps({k: encode_float(x) for k, x in metrics.items()})


@dataclass(frozen=True)
class _Registration:
    """A checked registration request, applied in one transaction."""

    name: str
    project: str | None
    run_id: str | None
    artifact_id: int | None
    manifest: tuple[list[ArtifactFile], str] | None
    flavor: str | None
    signature_text: str | None
    metrics: dict[str, float]
    params_text: str | None
    description: str | None
    tags: dict[str, str]
    aliases: list[str]


class RegistryMixin(ArtifactsMixin, StoreBase):
    def create_model(
        self,
        name: str,
        *,
        project: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        v.name(name, "model name")
        v.optional_text(description, "description")
        tag_map = v.string_map(tags, "tags")
        try:
            with self._tx() as conn:
                model_id = self._create_model(conn, name, project, description)
                self._write_owner_tags(t.model_tags, "model_id", conn, model_id, tag_map)
                return self._load_model(conn, model_id)
        except IntegrityError:
            raise AlreadyExists(f"model {name!r} already exists", model=name) from None

    def _create_model(
        self, conn: Connection, name: str, project: str, description: str | None
    ) -> int:
        if conn.execute(
            select(t.registered_models.c.id).where(t.registered_models.c.name == name)
        ).scalar():
            raise AlreadyExists(f"model {name!r} already exists", model=name)
        project_id = self._project_id(conn, project, create=True)
        stamp = now()
        return int(
            conn.execute(
                t.registered_models.insert()
                .values(
                    project_id=project_id,
                    name=name,
                    description=description,
                    last_version=0,
                    created_at=stamp,
                    updated_at=stamp,
                )
                .returning(t.registered_models.c.id)
            ).scalar_one()
        )

    def get_model(self, name: str) -> RegisteredModel:
        v.name(name, "model name")
        with self._read() as conn:
            return self._load_model(conn, self._model_row(conn, name).id)

    def list_models(
        self, *, project: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[RegisteredModel]:
        """Registered models by name, of one project or all; `limit`/`offset` select one page."""
        with self._read() as conn:
            query = select(t.registered_models.c.id).order_by(t.registered_models.c.name)
            if project is not None:
                query = query.where(
                    t.registered_models.c.project_id == self._project_id(conn, project)
                )
            query = self._window(query, limit, offset)
            return [self._load_model(conn, int(i)) for i in conn.execute(query).scalars()]

    def update_model(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        v.name(name, "model name")
        v.optional_text(description, "description")
        tag_map = v.string_map(tags, "tags")
        with self._tx() as conn:
            row = self._model_row(conn, name)
            values: dict[str, Any] = {"updated_at": now()}
            if description is not None:
                values["description"] = description
            conn.execute(
                update(t.registered_models)
                .where(t.registered_models.c.id == row.id)
                .values(**values)
            )
            self._write_owner_tags(t.model_tags, "model_id", conn, row.id, tag_map)
            return self._load_model(conn, row.id)

    def register_model_version(
        self,
        name: str,
        *,
        project: str | None = None,
        run_id: str | None = None,
        artifact_id: int | None = None,
        files: Sequence[Mapping[str, Any]] | None = None,
        flavor: str | None = None,
        signature: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        aliases: Sequence[str] = (),
    ) -> ModelVersion:
        """Registers the next version of `name` (created if new), numbered 1, 2, 3...

        The model's files are an existing artifact (`artifact_id`) or a manifest
        of uploaded blobs (`files`). Without `metrics`/`params`, the source
        run's last metric values and params are snapshotted.
        """
        v.name(name, "model name")
        if run_id is not None:
            v.run_id(run_id)
        if (artifact_id is None) == (files is None):
            raise InvalidArgument(
                "give exactly one of artifact_id (an artifact) or files (a manifest)"
            )
        if flavor is not None:
            v.name(flavor, "flavor")
        if signature is not None and not isinstance(signature, Mapping):
            raise InvalidArgument("signature must be an object")
        metric_map = _metrics(metrics)
        if params is not None and not isinstance(params, Mapping):
            raise InvalidArgument("params must be an object")
        v.optional_text(description, "description")
        tag_map = v.string_map(tags, "tags")
        if isinstance(aliases, str):
            aliases = [aliases]
        alias_list = [v.alias(a) for a in aliases]
        signature_text = None if signature is None else _json_text(dict(signature), "signature")
        params_text = (
            None
            if params is None
            else _json_text({k: _jsonable(x) for k, x in params.items()}, "params")
        )

        manifest = None if files is None else self._verified_manifest(files)
        if artifact_id is not None:
            v.integer(artifact_id, "artifact_id", minimum=1)

        for _ in range(8):
            try:
                with self._tx() as conn:
                    return self._register(
                        conn,
                        _Registration(
                            name=name,
                            project=project,
                            run_id=run_id,
                            artifact_id=artifact_id,
                            manifest=manifest,
                            flavor=flavor,
                            signature_text=signature_text,
                            metrics=metric_map,
                            params_text=params_text,
                            description=description,
                            tags=tag_map,
                            aliases=alias_list,
                        ),
                    )
            except (IntegrityError, AlreadyExists):
                # Two first registrations created the model at once (PostgreSQL
                # reports it as either, depending on timing): retry, now it exists.
                continue
        raise StoreError(f"could not register a version of {name!r}; try again")

    def _register(self, conn: Connection, r: _Registration) -> ModelVersion:
        """One registration, inside one transaction: all of it happens or none."""
        m = t.registered_models.c
        run = None
        if r.run_id is not None:
            found = self._load_runs(conn, [r.run_id])
            if not found:
                raise RunNotFound(f"run {r.run_id!r} does not exist", run_id=r.run_id)
            run = found[0]
        row = conn.execute(select(t.registered_models).where(m.name == r.name)).first()
        # A model lives in one project; a new one takes the given project or the run's.
        if row is not None:
            project: str | None = self._project_name(conn, row.project_id)
        else:
            project = r.project or (run.project if run else None)
        if row is None:
            if project is None:
                raise InvalidArgument(
                    f"model {r.name!r} is new: give a project (or a run_id to take it from)"
                )
            model_id = self._create_model(conn, r.name, project, None)
        else:
            model_id = row.id
        if r.manifest is not None:
            assert project is not None
            files, digest = r.manifest
            artifact_id = self._create_artifact(
                conn,
                project,
                r.name,
                "model",
                files,
                digest,
                r.run_id,
                dumps({"flavor": r.flavor}),
            ).id
        else:
            assert r.artifact_id is not None
            artifact_id = self._load_artifact(conn, r.artifact_id).id
        metric_map = r.metrics
        params_text = r.params_text
        if run is not None and not metric_map:
            metric_map = {k: s.last for k, s in run.metrics.items()}
        if run is not None and params_text is None:
            params_text = dumps({k: _jsonable(x) for k, x in run.params.items()})
        # The row lock (PostgreSQL) or the write lock (SQLite) taken by this
        # UPDATE serialises concurrent registrations: numbers stay consecutive.
        conn.execute(
            update(t.registered_models)
            .where(m.id == model_id)
            .values(last_version=m.last_version + 1, updated_at=now())
        )
        number = int(conn.execute(select(m.last_version).where(m.id == model_id)).scalar_one())
        stamp = now()
        version_id = int(
            conn.execute(
                t.model_versions.insert()
                .values(
                    model_id=model_id,
                    version=number,
                    run_id=r.run_id,
                    artifact_id=artifact_id,
                    flavor=r.flavor,
                    signature=r.signature_text,
                    metrics=_metrics_json(metric_map),
                    params=params_text or "{}",
                    description=r.description,
                    created_at=stamp,
                    updated_at=stamp,
                )
                .returning(t.model_versions.c.id)
            ).scalar_one()
        )
        self._write_owner_tags(t.model_version_tags, "version_id", conn, version_id, r.tags)
        for alias in r.aliases:
            self._move_alias(conn, model_id, alias, version_id, UNSET)
        return self._load_version(conn, version_id)

    def get_model_version(self, ref: str) -> ModelVersion:
        """Resolves `name`, `name@latest`, `name@3` or `name@alias`."""
        name, wanted = v.model_ref(ref)
        with self._read() as conn:
            return self._load_version(conn, self._resolve(conn, name, wanted))

    def list_model_versions(
        self, name: str, *, limit: int | None = None, offset: int = 0
    ) -> list[ModelVersion]:
        """A model's versions, newest first; `limit`/`offset` select one page."""
        v.name(name, "model name")
        with self._read() as conn:
            model = self._model_row(conn, name)
            query = (
                select(t.model_versions.c.id)
                .where(t.model_versions.c.model_id == model.id)
                .order_by(t.model_versions.c.version.desc())
            )
            ids = conn.execute(self._window(query, limit, offset)).scalars()
            return [self._load_version(conn, int(i)) for i in ids]

    def update_model_version(
        self, ref: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> ModelVersion:
        name, wanted = v.model_ref(ref)
        v.optional_text(description, "description")
        tag_map = v.string_map(tags, "tags")
        with self._tx() as conn:
            version_id = self._resolve(conn, name, wanted)
            values: dict[str, Any] = {"updated_at": now()}
            if description is not None:
                values["description"] = description
            conn.execute(
                update(t.model_versions).where(t.model_versions.c.id == version_id).values(**values)
            )
            self._write_owner_tags(t.model_version_tags, "version_id", conn, version_id, tag_map)
            return self._load_version(conn, version_id)

    def set_alias(
        self, name: str, alias: str, version: int, *, expected_version: int | _Unset | None = UNSET
    ) -> ModelVersion:
        """Points `alias` at `version`.

        With `expected_version`, the move is a compare-and-set: it happens only
        if the alias still points at that version (None: only if the alias does
        not exist yet); otherwise `AliasMoved` is raised and nothing changes.
        """
        v.name(name, "model name")
        v.alias(alias)
        v.integer(version, "version", minimum=1)
        if expected_version is not None and not isinstance(expected_version, _Unset):
            v.integer(expected_version, "expected_version", minimum=1)
        try:
            with self._tx() as conn:
                model = self._model_row(conn, name)
                version_id = self._resolve(conn, name, version)
                expected_id: int | _Unset | None = expected_version
                if isinstance(expected_version, int):
                    expected_id = self._version_id_or_none(conn, model.id, expected_version)
                    if expected_id is None:
                        raise AliasMoved(
                            f"{name}@{alias} does not point at version {expected_version}"
                        )
                self._move_alias(
                    conn, model.id, alias, version_id, expected_id, label=f"{name}@{alias}"
                )
                return self._load_version(conn, version_id)
        except IntegrityError:
            raise AliasMoved(
                f"{name}@{alias} was set concurrently; read it again and retry"
            ) from None

    def delete_alias(
        self, name: str, alias: str, *, expected_version: int | _Unset = UNSET
    ) -> None:
        v.name(name, "model name")
        v.alias(alias)
        with self._tx() as conn:
            model = self._model_row(conn, name)
            a = t.aliases.c
            query = delete(t.aliases).where(a.model_id == model.id, a.alias == alias)
            if isinstance(expected_version, int):
                query = query.where(
                    a.version_id == self._version_id_or_none(conn, model.id, expected_version)
                )
            if conn.execute(query).rowcount == 0:
                exists = conn.execute(
                    select(a.alias).where(a.model_id == model.id, a.alias == alias)
                ).first()
                if exists is None:
                    raise AliasNotFound(
                        f"model {name!r} has no alias {alias!r}", model=name, alias=alias
                    )
                raise AliasMoved(f"{name}@{alias} does not point at version {expected_version}")

    # -- helpers -------------------------------------------------------------

    def _move_alias(
        self,
        conn: Connection,
        model_id: int,
        alias: str,
        version_id: int,
        expected_id: int | _Unset | None,
        *,
        label: str = "",
    ) -> None:
        a = t.aliases.c
        stamp = now()
        if isinstance(expected_id, _Unset):
            stmt = self._insert(t.aliases)
            conn.execute(
                stmt.values(
                    model_id=model_id, alias=alias, version_id=version_id, updated_at=stamp
                ).on_conflict_do_update(
                    index_elements=["model_id", "alias"],
                    set_={"version_id": stmt.excluded.version_id, "updated_at": stamp},
                )
            )
            return
        if expected_id is None:
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT's rowcount.
            inserted = conn.execute(
                self._insert(t.aliases)
                .values(model_id=model_id, alias=alias, version_id=version_id, updated_at=stamp)
                .on_conflict_do_nothing(index_elements=["model_id", "alias"])
                .returning(a.alias)
            ).first()
            if inserted is None:
                raise AliasMoved(f"{label} already exists; expected it not to")
            return
        done = conn.execute(
            update(t.aliases)
            .where(a.model_id == model_id, a.alias == alias, a.version_id == expected_id)
            .values(version_id=version_id, updated_at=stamp)
        ).rowcount
        if not done:
            raise AliasMoved(
                f"{label} no longer points at the expected version; read it again and retry"
            )

    def _model_row(self, conn: Connection, name: str) -> Any:
        row = conn.execute(
            select(t.registered_models).where(t.registered_models.c.name == name)
        ).first()
        if row is None:
            raise ModelNotFound(f"model {name!r} does not exist", model=name)
        return row

    def _version_id_or_none(self, conn: Connection, model_id: int, version: int) -> int | None:
        mv = t.model_versions.c
        found = conn.execute(
            select(mv.id).where(mv.model_id == model_id, mv.version == version)
        ).scalar()
        return None if found is None else int(found)

    def _resolve(self, conn: Connection, name: str, wanted: int | str | None) -> int:
        model = self._model_row(conn, name)
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
                select(mv.id).where(mv.model_id == model.id).order_by(mv.version.desc()).limit(1)
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

    def _write_owner_tags(
        self, table: Any, owner: str, conn: Connection, owner_id: int, tags: dict[str, str]
    ) -> None:
        if not tags:
            return
        stmt = self._insert(table)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[owner, "key"], set_={"value": stmt.excluded.value}
            ),
            [{owner: owner_id, "key": k, "value": val} for k, val in tags.items()],
        )

    def _load_model(self, conn: Connection, model_id: int) -> RegisteredModel:
        r = conn.execute(
            select(t.registered_models, t.projects.c.name.label("project"))
            .join(t.projects, t.projects.c.id == t.registered_models.c.project_id)
            .where(t.registered_models.c.id == model_id)
        ).one()
        mv = t.model_versions.c
        latest = conn.execute(
            select(mv.version).where(mv.model_id == model_id).order_by(mv.version.desc()).limit(1)
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
        metrics = {k: _float(x) for k, x in loads(r.metrics).items()}
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


def _float(x: Any) -> float:
    return decode_float(x)


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return encode_float(x)
    return x


def _json_text(value: dict[str, Any], what: str) -> str:
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} must be JSON-serialisable: {exc}") from None
