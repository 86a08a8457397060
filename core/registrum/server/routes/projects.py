"""Projects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from registrum.server.deps import StoreDep
from registrum.server.pagination import Cursor, Limit, page
from registrum.server.responses import JSON
from registrum.server.routes._schemas import CreateProject, Retention

router = APIRouter(tags=["projects"])


@router.get("/projects")
def list_projects(
    store: StoreDep,
    limit: Limit = 100,
    cursor: Cursor = None,
    run_counts: bool = False,
    deleted: bool = False,
) -> JSON:
    """Projects by name; with `run_counts=true` each also says how many live runs it holds
    (`runs`); with `deleted=true` deleted projects are listed too."""

    def listed(n: int, at: int) -> list[Any]:
        return store.list_projects(limit=n, offset=at, include_deleted=deleted)

    if not run_counts:
        return page(listed, limit, cursor)

    def counted(n: int, at: int) -> list[dict[str, Any]]:
        projects = listed(n, at)
        counts = store.run_counts([p.name for p in projects])
        return [{**p.to_dict(), "runs": counts.get(p.name, 0)} for p in projects]

    return page(counted, limit, cursor)


@router.post("/projects", status_code=201)
def create_project(body: CreateProject, store: StoreDep) -> JSON:
    return JSON(store.create_project(body.name, description=body.description), status_code=201)


@router.get("/projects/{project}")
def get_project(project: str, store: StoreDep, deleted: bool = False) -> JSON:
    """The project; a deleted one answers 404 (saying how to restore it) unless `deleted=true`."""
    return JSON(store.get_project(project, include_deleted=deleted))


@router.delete("/projects/{project}", status_code=204)
def delete_project(project: str, store: StoreDep) -> Response:
    """Soft-deletes the project with its runs and artifacts (a project admin), restorable
    until collected; 409 while it holds live registered models."""
    store.delete_project(project)
    return Response(status_code=204)


@router.post("/projects/{project}/restore")
def restore_project(project: str, store: StoreDep) -> JSON:
    """Restores the project with the runs and artifacts deleted with it."""
    return JSON(store.restore_project(project))


@router.put("/projects/{project}/retention")
def set_retention(project: str, body: Retention, store: StoreDep) -> JSON:
    """Sets the project's retention policy (a project admin): `keep_checkpoints` per run
    beyond the best, and `artifact_ttl` (seconds or a duration such as "30d") after which
    the artifacts of runs that registered nothing expire; null keeps everything."""
    return JSON(
        store.set_retention(
            project, keep_checkpoints=body.keep_checkpoints, artifact_ttl=body.artifact_ttl
        )
    )


@router.post("/projects/{project}/retention/apply")
def apply_retention(project: str, store: StoreDep) -> JSON:
    """Applies the policy now (a project admin): deletes what it no longer keeps, to be
    collected after the grace period; answers how many checkpoints and artifacts went."""
    return JSON(store.apply_retention(project).get(project, {"checkpoints": 0, "artifacts": 0}))
