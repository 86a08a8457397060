"""The model registry: models, versions, aliases (with compare-and-set)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from registrum.entities import UNSET, decode_float
from registrum.errors import InvalidArgument
from registrum.server.deps import IdempotencyKey, StoreDep
from registrum.server.pagination import Cursor, Limit, page
from registrum.server.responses import JSON
from registrum.server.routes import _schemas as s

router = APIRouter(tags=["models"])


def _ref(name: str, ref: str) -> str:
    return f"{name}@{ref}"


@router.post("/models", status_code=201)
def create_model(body: s.CreateModel, store: StoreDep) -> JSON:
    model = store.create_model(
        body.name, project=body.project, description=body.description, tags=body.tags
    )
    return JSON(model, status_code=201)


@router.get("/models")
def list_models(
    store: StoreDep,
    project: str | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    deleted: bool = False,
) -> JSON:
    """Registered models by name; with `deleted=true` deleted ones too (`deleted_at` set)."""
    return page(
        lambda n, at: store.list_models(
            project=project, limit=n, offset=at, include_deleted=deleted
        ),
        limit,
        cursor,
    )


@router.get("/models/{name}")
def get_model(name: str, store: StoreDep) -> JSON:
    return JSON(store.get_model(name))


@router.patch("/models/{name}")
def update_model(name: str, body: s.UpdateModel, store: StoreDep) -> JSON:
    return JSON(store.update_model(name, description=body.description, tags=body.tags))


@router.post("/models/{name}/versions", status_code=201)
def register_version(
    name: str, body: s.RegisterVersion, store: StoreDep, key: IdempotencyKey = None
) -> JSON:
    metrics = body.metrics
    if isinstance(metrics, dict):
        try:
            metrics = {k: decode_float(x) if isinstance(x, str) else x for k, x in metrics.items()}
        except ValueError as exc:
            raise InvalidArgument(f"metrics: {exc}") from None
    version = store.register_model_version(
        name,
        project=body.project,
        run_id=body.run_id,
        artifact_id=body.artifact_id,
        files=body.files,
        flavor=body.flavor,
        signature=body.signature,
        metrics=metrics,
        params=body.params,
        description=body.description,
        tags=body.tags,
        aliases=body.aliases,
        idempotency_key=key,
    )
    return JSON(version, status_code=201)


@router.get("/models/{name}/versions")
def list_versions(
    name: str, store: StoreDep, limit: Limit = 100, cursor: Cursor = None, deleted: bool = False
) -> JSON:
    """A model's versions, newest first; with `deleted=true` deleted ones too."""
    return page(
        lambda n, at: store.list_model_versions(name, limit=n, offset=at, include_deleted=deleted),
        limit,
        cursor,
    )


@router.get("/models/{name}/versions/{ref}")
def get_version(name: str, ref: str, store: StoreDep, at: str | None = None) -> JSON:
    """`ref` is a version number, an alias or `latest`; with `at` (Unix seconds, or ISO 8601
    such as `2026-11-01T00:00:00Z`), what it named at that time (an alias: from its
    history)."""
    return JSON(store.get_model_version(_ref(name, ref), at=at))


@router.patch("/models/{name}/versions/{ref}")
def update_version(name: str, ref: str, body: s.UpdateModel, store: StoreDep) -> JSON:
    return JSON(
        store.update_model_version(_ref(name, ref), description=body.description, tags=body.tags)
    )


@router.delete("/models/{name}", status_code=204)
def delete_model(name: str, store: StoreDep) -> Response:
    """Soft-deletes the model with its versions (a project admin); restorable."""
    store.delete_model(name)
    return Response(status_code=204)


@router.post("/models/{name}/restore")
def restore_model(name: str, store: StoreDep) -> JSON:
    """Restores the model last deleted under `name`."""
    return JSON(store.restore_model(name))


@router.delete("/models/{name}/versions/{ref}", status_code=204)
def delete_version(name: str, ref: str, store: StoreDep, remove_aliases: bool = False) -> Response:
    """Soft-deletes a version (a project admin); 409 while an alias points at it (unless
    `remove_aliases`) or an open promotion request names it."""
    store.delete_model_version(_ref(name, ref), remove_aliases=remove_aliases)
    return Response(status_code=204)


@router.post("/models/{name}/versions/{ref}/restore")
def restore_version(name: str, ref: str, store: StoreDep) -> JSON:
    return JSON(store.restore_model_version(_ref(name, ref)))


@router.delete("/models/{name}/tags/{key}")
def delete_model_tag(name: str, key: str, store: StoreDep) -> JSON:
    """Removes a model's tag (a missing tag is no error); answers the model."""
    return JSON(store.delete_model_tag(name, key))


@router.delete("/models/{name}/versions/{ref}/tags/{key}")
def delete_version_tag(name: str, ref: str, key: str, store: StoreDep) -> JSON:
    """Removes a version's tag (a missing tag is no error); answers the version."""
    return JSON(store.delete_model_version_tag(_ref(name, ref), key))


@router.put("/models/{name}/aliases/{alias}")
def set_alias(
    name: str, alias: str, body: s.SetAlias, store: StoreDep, key: IdempotencyKey = None
) -> JSON:
    """With `expected_version` in the body the move is a compare-and-set
    (`null`: only if the alias does not exist yet); 409 `alias_moved` when it lost."""
    expected = body.expected_version if "expected_version" in body.model_fields_set else UNSET
    return JSON(
        store.set_alias(name, alias, body.version, expected_version=expected, idempotency_key=key)
    )


@router.delete("/models/{name}/aliases/{alias}", status_code=204)
def delete_alias(
    name: str, alias: str, store: StoreDep, expected_version: int | None = None
) -> Response:
    store.delete_alias(
        name, alias, expected_version=UNSET if expected_version is None else expected_version
    )
    return Response(status_code=204)
