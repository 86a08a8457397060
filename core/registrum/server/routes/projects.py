"""Health and projects."""

from __future__ import annotations

from fastapi import APIRouter

from registrum import __version__
from registrum.server.deps import PublicStoreDep, StoreDep
from registrum.server.pagination import Cursor, Limit, page
from registrum.server.responses import JSON
from registrum.server.routes._schemas import CreateProject

router = APIRouter(tags=["projects"])


@router.get("/health")
def health(store: PublicStoreDep) -> JSON:
    """Whether the server is up; needs no token."""
    return JSON({"status": "ok", "version": __version__, "database": store.engine.dialect.name})


@router.get("/projects")
def list_projects(store: StoreDep, limit: Limit = 100, cursor: Cursor = None) -> JSON:
    return page(lambda n, at: store.list_projects(limit=n, offset=at), limit, cursor)


@router.post("/projects", status_code=201)
def create_project(body: CreateProject, store: StoreDep) -> JSON:
    return JSON(store.create_project(body.name, description=body.description), status_code=201)


@router.get("/projects/{project}")
def get_project(project: str, store: StoreDep) -> JSON:
    return JSON(store.get_project(project))
