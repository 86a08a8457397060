"""Artifacts (versioned manifests) and dataset versions."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from registrum.server.deps import StoreDep
from registrum.server.pagination import Cursor, Limit, page
from registrum.server.responses import JSON
from registrum.server.routes import _schemas as s

router = APIRouter(tags=["artifacts"])


@router.post("/projects/{project}/artifacts")
def create_artifact(project: str, body: s.CreateArtifact, store: StoreDep) -> JSON:
    artifact = store.create_artifact(
        project,
        body.name,
        type=body.type,
        files=body.files,
        run_id=body.run_id,
        metadata=body.metadata,
    )
    return JSON(artifact)


@router.get("/projects/{project}/artifacts")
def list_artifacts(
    project: str,
    store: StoreDep,
    name: str | None = None,
    run_id: str | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    deleted: bool = False,
) -> JSON:
    """Artifact versions, newest first; with `deleted=true` deleted ones are listed too."""
    return page(
        lambda n, at: store.list_artifacts(
            project, name=name, run_id=run_id, limit=n, offset=at, include_deleted=deleted
        ),
        limit,
        cursor,
    )


@router.get("/projects/{project}/artifacts/{name}/versions/{version}")
def get_artifact(project: str, name: str, version: str, store: StoreDep) -> JSON:
    return JSON(store.get_artifact(project, name, version))


@router.delete("/projects/{project}/artifacts/{name}/versions/{version}", status_code=204)
def delete_artifact(project: str, name: str, version: int, store: StoreDep) -> Response:
    """Soft-deletes one artifact version (an editor), restorable until collected; 409 while
    a model version, a dataset version or a logged model stands on it."""
    store.delete_artifact(project, name, version)
    return Response(status_code=204)


@router.post("/projects/{project}/artifacts/{name}/versions/{version}/restore")
def restore_artifact(project: str, name: str, version: int, store: StoreDep) -> JSON:
    return JSON(store.restore_artifact(project, name, version))


@router.get("/artifacts/{artifact_id}")
def get_artifact_by_id(artifact_id: int, store: StoreDep) -> JSON:
    return JSON(store.get_artifact_by_id(artifact_id))


@router.post("/projects/{project}/datasets")
def log_dataset(project: str, body: s.LogDataset, store: StoreDep) -> JSON:
    dataset = store.log_dataset(
        project,
        body.name,
        fingerprint=body.fingerprint,
        schema=body.schema_,
        rows=body.rows,
        metadata=body.metadata,
        artifact_id=body.artifact_id,
        run_id=body.run_id,
        role=body.role,
    )
    return JSON(dataset)


@router.get("/projects/{project}/datasets")
def list_datasets(
    project: str,
    store: StoreDep,
    name: str | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> JSON:
    return page(
        lambda n, at: store.list_datasets(project, name=name, limit=n, offset=at), limit, cursor
    )


@router.get("/projects/{project}/datasets/{name}/versions/{version}")
def get_dataset(project: str, name: str, version: str, store: StoreDep) -> JSON:
    return JSON(store.get_dataset(project, name, version))
