"""The model registry: registered models and their consecutively numbered versions."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from registrum import validation as v
from registrum.entities import (
    UNSET,
    ArtifactFile,
    ModelVersion,
    RegisteredModel,
    decode_float,
    encode_nonfinite,
)
from registrum.errors import (
    AliasNotFound,
    AlreadyExists,
    InvalidArgument,
    ModelVersionNotFound,
    StoreError,
)
from registrum.store import schema as t
from registrum.store._base import RETRIES, StoreBase, dumps, json_text, loads, now
from registrum.store.idempotency import claim
from registrum.store.registry.aliases import AliasesMixin
from registrum.store.registry.lifecycle import RegistryLifecycleMixin
from registrum.store.tracking.runs import RunsMixin

# Built once (see _base.py): the statements of every registration.
_m = t.registered_models.c
_MODEL_BY_NAME = (
    select(t.registered_models, t.projects.c.name.label("project_name"))
    .join(t.projects, t.projects.c.id == _m.project_id)
    .where(_m.name == bindparam("name"))
)
# The row lock (PostgreSQL) or the write lock (SQLite) taken by this UPDATE serialises
# concurrent registrations: numbers stay consecutive.
_NEXT_NUMBER = (
    update(t.registered_models)
    .where(_m.id == bindparam("model_id"))
    .values(last_version=_m.last_version + 1, updated_at=bindparam("at"))
    .returning(_m.last_version)
)
_INSERT_VERSION = t.model_versions.insert().returning(t.model_versions.c.id)


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
    return dumps(encode_nonfinite(metrics))


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


class RegistryMixin(RegistryLifecycleMixin, AliasesMixin, RunsMixin, StoreBase):
    def create_model(
        self,
        name: str,
        *,
        project: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        name = v.name(name, "model name")
        v.optional_text(description, "description")
        tag_map = v.string_map(tags, "tags")
        try:
            with self._tx() as conn:
                model_id = self._create_model(conn, name, project, description)
                self._write_tags(conn, t.model_tags, "model_id", model_id, tag_map)
                return self._load_model(conn, model_id)
        except IntegrityError:
            raise AlreadyExists(f"model {name!r} already exists", model=name) from None

    def _create_model(
        self, conn: Connection, name: str, project: str, description: str | None
    ) -> int:
        project = v.name(project, "project name")
        project_id = self._project_id(conn, project, create=True, need="editor")
        if conn.execute(
            select(t.registered_models.c.id).where(t.registered_models.c.name == name)
        ).scalar():
            raise AlreadyExists(f"model {name!r} already exists", model=name)
        stamp = now()
        model_id = int(
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
        self._audit(
            conn,
            "model.created",
            "model",
            name,
            project=project,
            after={"description": description},
        )
        return model_id

    def get_model(self, name: str) -> RegisteredModel:
        name = v.name(name, "model name")
        with self._read() as conn:
            return self._load_model(conn, self._model_row(conn, name, need="viewer").id)

    def list_models(
        self,
        *,
        project: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[RegisteredModel]:
        """Registered models by name, of one project or all (deleted ones too with
        `include_deleted`); `limit`/`offset` select one page."""
        with self._read() as conn:
            query = select(t.registered_models.c.id).order_by(t.registered_models.c.name)
            if not include_deleted:
                query = query.where(t.registered_models.c.deleted_at.is_(None))
            if project is not None:
                query = query.where(
                    t.registered_models.c.project_id
                    == self._project_id(conn, project, need="viewer")
                )
            else:
                visible = self._visible_projects(conn)
                if visible is not None:
                    query = query.where(t.registered_models.c.project_id.in_(visible))
            query = self._window(query, limit, offset)
            return [self._load_model(conn, int(i)) for i in conn.execute(query).scalars()]

    def update_model(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        name = v.name(name, "model name")
        v.optional_text(description, "description")
        tag_map = v.string_map(tags, "tags")
        with self._tx() as conn:
            row = self._model_row(conn, name, need="editor")
            values: dict[str, Any] = {"updated_at": now()}
            if description is not None:
                values["description"] = description
            conn.execute(
                update(t.registered_models)
                .where(t.registered_models.c.id == row.id)
                .values(**values)
            )
            self._write_tags(conn, t.model_tags, "model_id", row.id, tag_map)
            self._audit(
                conn,
                "model.updated",
                "model",
                name,
                project=self._project_name(conn, row.project_id),
                before={"description": row.description},
                after={"description": description, "tags": tag_map},
            )
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
        idempotency_key: str | None = None,
    ) -> ModelVersion:
        """Registers the next version of `name` (created if new), numbered 1, 2, 3...

        The model's files are an existing artifact (`artifact_id`) or a manifest
        of uploaded blobs (`files`). Without `metrics`/`params`, the source
        run's last metric values and params are snapshotted. Retried with the
        same `idempotency_key`, it returns the version the first call made.
        Aliases the model's policy protects are not set: a promotion request is opened
        for each (once, when retried with the same key).
        """
        name = v.name(name, "model name")
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
        requested = v.aliases(aliases)
        # Aliases the model's policy protects are not set: each gets a promotion request,
        # opened once the version exists.
        protected = self._protected_of(name, requested)
        alias_list = [a for a in requested if a not in protected]
        signature_text = None if signature is None else json_text(dict(signature), "signature")
        params_text = (
            None
            if params is None
            # Top-level non-finite floats only, as in a run's params; deeper ones are refused.
            else json_text(
                {k: encode_nonfinite(x) if isinstance(x, float) else x for k, x in params.items()},
                "params",
            )
        )

        manifest = None if files is None else self._verified_manifest(files)
        if artifact_id is not None:
            v.integer(artifact_id, "artifact_id", minimum=1)
        keyed = claim(
            idempotency_key,
            "model_version.register",
            [
                name,
                project,
                run_id,
                artifact_id,
                None if manifest is None else manifest[1],
                flavor,
                signature_text,
                metric_map,
                params_text,
                description,
                tag_map,
                alias_list,
            ],
        )

        for _ in range(RETRIES):
            try:
                with self._tx() as conn:
                    answer = self._recall(conn, keyed)
                    if answer is not None:
                        registered = ModelVersion.from_dict(answer.body)
                        break
                    version = self._register(
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
                    self._remember(conn, keyed, 201, version.to_dict())
                    registered = version
                    break
            except (IntegrityError, AlreadyExists):
                # Two first registrations created the model at once (PostgreSQL
                # reports it as either, depending on timing): retry, now it exists.
                continue
        else:
            raise StoreError(f"could not register a version of {name!r}; try again")
        self._open_for_registration(name, protected, registered.version, idempotency_key)
        return registered

    def _register(self, conn: Connection, r: _Registration) -> ModelVersion:
        """One registration, inside one transaction: all of it happens or none."""
        run_project_id = None
        if r.run_id is not None:
            run_project_id = self._run_row(conn, r.run_id, need="viewer").project_id
        row = conn.execute(_MODEL_BY_NAME, {"name": r.name}).first()
        # A model lives in one project; a new one takes the given project or the run's.
        if row is not None:
            project: str | None = row.project_name
            self._require(conn, row.project_id, "editor", name=project)
        elif r.project is not None:
            project = r.project
        else:
            project = None if run_project_id is None else self._project_name(conn, run_project_id)
        if row is None:
            if project is None:
                raise InvalidArgument(
                    f"model {r.name!r} is new: give a project (or a run_id to take it from)"
                )
            model_id = self._create_model(conn, r.name, project, None)
        else:
            model_id = row.id
        assert project is not None
        if r.manifest is not None:
            files, digest = r.manifest
            artifact = self._create_artifact(
                conn,
                project,
                r.name,
                "model",
                files,
                digest,
                r.run_id,
                dumps({"flavor": r.flavor}),
            )
        else:
            assert r.artifact_id is not None
            artifact = self._load_artifact(conn, r.artifact_id, need="viewer")
        metric_map, params_text = self._run_snapshot(conn, r)
        number = int(conn.execute(_NEXT_NUMBER, {"model_id": model_id, "at": now()}).scalar_one())
        stamp = now()
        version_id = int(
            conn.execute(
                _INSERT_VERSION,
                {
                    "model_id": model_id,
                    "version": number,
                    "run_id": r.run_id,
                    "artifact_id": artifact.id,
                    "flavor": r.flavor,
                    "signature": r.signature_text,
                    "metrics": _metrics_json(metric_map),
                    "params": params_text or "{}",
                    "description": r.description,
                    "created_at": stamp,
                    "updated_at": stamp,
                },
            ).scalar_one()
        )
        self._write_tags(conn, t.model_version_tags, "version_id", version_id, r.tags)
        self._audit(
            conn,
            "model_version.created",
            "model_version",
            f"{r.name}@{number}",
            project=project,
            after={
                "run_id": r.run_id,
                "artifact_id": artifact.id,
                "flavor": r.flavor,
                "metrics": _metrics_json(metric_map),
                "tags": r.tags,
            },
        )
        for alias in r.aliases:
            # A protected alias fails the whole registration: nothing is kept half-done.
            self._refuse_protected(conn, model_id, r.name, alias, number)
            self._move_alias(conn, model_id, alias, version_id, UNSET)
        # What was just written, as `_load_version` would read it back.
        return ModelVersion(
            id=version_id,
            model=r.name,
            version=number,
            project=project,
            run_id=r.run_id,
            artifact=artifact,
            flavor=r.flavor,
            signature=loads(r.signature_text),
            metrics={k: decode_float(x) for k, x in loads(_metrics_json(metric_map)).items()},
            params=loads(params_text or "{}"),
            description=r.description,
            aliases=sorted(r.aliases),
            tags=dict(sorted(r.tags.items())),
            created_at=stamp,
            updated_at=stamp,
        )

    def _run_snapshot(
        self, conn: Connection, r: _Registration
    ) -> tuple[dict[str, float], str | None]:
        """The metrics and params a version records: those given, else the source run's
        last metric values and its params (read only when needed)."""
        metric_map, params_text = r.metrics, r.params_text
        if r.run_id is None:
            return metric_map, params_text
        if not metric_map:
            summaries = self._runs_metrics(conn, [r.run_id]).get(r.run_id, {})
            metric_map = {k: summaries[k].last for k in sorted(summaries)}
        if params_text is None:
            params = self._runs_params(conn, [r.run_id]).get(r.run_id, {})
            params_text = dumps(encode_nonfinite(dict(sorted(params.items()))))
        return metric_map, params_text

    def get_model_version(self, ref: str, *, at: float | str | None = None) -> ModelVersion:
        """Resolves `name`, `name@latest`, `name@3` or `name@alias`; with `at` (Unix seconds
        or ISO 8601), what `ref` named at that time: the version the alias pointed at (from
        its history), the newest version registered by then, or version N if it existed."""
        name, wanted = v.model_ref(ref)
        when = None if at is None else v.instant(at, "at")
        with self._read() as conn:
            if when is None:
                found = self._resolve(conn, name, wanted, need="viewer")
            else:
                found = self._resolve_at(conn, name, wanted, when)
            return self._load_version(conn, found)

    def _resolve_at(
        self, conn: Connection, name: str, wanted: int | str | None, when: float
    ) -> int:
        model = self._model_row(conn, name, need="viewer")
        mv, h = t.model_versions.c, t.alias_history.c
        then = _iso(when)
        number: int | None
        if isinstance(wanted, str):
            number = conn.execute(
                select(h.to_version)
                .where(h.model_id == model.id, h.alias == wanted, h.at <= when)
                .order_by(h.id.desc())
                .limit(1)
            ).scalar()
            if number is None:
                raise AliasNotFound(
                    f"model {name!r} had no alias {wanted!r} at {then}", model=name, alias=wanted
                )
        else:
            number = conn.execute(
                select(func.max(mv.version)).where(
                    mv.model_id == model.id,
                    mv.created_at <= when,
                    *([mv.version == wanted] if wanted is not None else []),
                )
            ).scalar()
            if number is None:
                what = f"version {wanted}" if wanted is not None else "versions"
                raise ModelVersionNotFound(
                    f"model {name!r} had no {what} at {then}", model=name, version=wanted
                )
        # A version deleted since still answers what the reference named then.
        return int(
            conn.execute(
                select(mv.id).where(mv.model_id == model.id, mv.version == int(number))
            ).scalar_one()
        )

    def list_model_versions(
        self,
        name: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[ModelVersion]:
        """A model's versions, newest first (deleted ones too with `include_deleted`);
        `limit`/`offset` select one page."""
        name = v.name(name, "model name")
        with self._read() as conn:
            model = self._model_row(conn, name, need="viewer")
            mv = t.model_versions.c
            query = select(mv.id).where(mv.model_id == model.id).order_by(mv.version.desc())
            if not include_deleted:
                query = query.where(mv.deleted_at.is_(None))
            ids = conn.execute(self._window(query, limit, offset)).scalars()
            return [self._load_version(conn, int(i)) for i in ids]

    def update_model_version(
        self, ref: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> ModelVersion:
        name, wanted = v.model_ref(ref)
        v.optional_text(description, "description")
        tag_map = v.string_map(tags, "tags")
        with self._tx() as conn:
            version_id = self._resolve(conn, name, wanted, need="editor")
            values: dict[str, Any] = {"updated_at": now()}
            if description is not None:
                values["description"] = description
            conn.execute(
                update(t.model_versions).where(t.model_versions.c.id == version_id).values(**values)
            )
            self._write_tags(conn, t.model_version_tags, "version_id", version_id, tag_map)
            version = self._load_version(conn, version_id)
            self._audit(
                conn,
                "model_version.updated",
                "model_version",
                f"{name}@{version.version}",
                project=version.project,
                after={"description": description, "tags": tag_map},
            )
            return version


def _iso(when: float) -> str:
    """A time as the messages show it: ISO 8601 in UTC, to the second."""
    stamp = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
