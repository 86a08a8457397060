"""Projects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from registrum.server.deps import StoreDep
from registrum.server.pagination import Cursor, Limit, page
from registrum.server.responses import JSON
from registrum.server.routes._schemas import CreateProject

router = APIRouter(tags=["projects"])


@router.get("/projects")
def list_projects(
    store: StoreDep, limit: Limit = 100, cursor: Cursor = None, run_counts: bool = False
) -> JSON:
    """Projects by name; with `run_counts=true` each also says how many runs it holds (`runs`)."""
    if not run_counts:
        return page(lambda n, at: store.list_projects(limit=n, offset=at), limit, cursor)

    def counted(n: int, at: int) -> list[dict[str, Any]]:
        projects = store.list_projects(limit=n, offset=at)
        counts = store.run_counts([p.name for p in projects])
        return [{**p.to_dict(), "runs": counts.get(p.name, 0)} for p in projects]

    return page(counted, limit, cursor)


@router.post("/projects", status_code=201)
def create_project(body: CreateProject, store: StoreDep) -> JSON:
    return JSON(store.create_project(body.name, description=body.description), status_code=201)


@router.get("/projects/{project}")
def get_project(project: str, store: StoreDep) -> JSON:
    return JSON(store.get_project(project))
