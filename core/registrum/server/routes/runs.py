"""Runs: create or resume, status, params, tags, environment, code version, inputs, search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from registrum.server.deps import StoreDep
from registrum.server.responses import JSON, records
from registrum.server.routes import _schemas as s

router = APIRouter(tags=["runs"])


@router.post("/runs")
def create_run(body: s.CreateRun, store: StoreDep) -> JSON:
    run = store.create_run(
        body.project,
        run_id=body.id,
        name=body.name,
        job_type=body.job_type,
        parent_id=body.parent_id,
        user=body.user,
        host=body.host,
        description=body.description,
        start_time=body.start_time,
        config=body.config,
        tags=body.tags,
    )
    return JSON(run)


@router.get("/runs/{run_id}")
def get_run(run_id: str, store: StoreDep) -> JSON:
    return JSON(store.get_run(run_id))


@router.patch("/runs/{run_id}")
def update_run(run_id: str, body: s.UpdateRun, store: StoreDep) -> JSON:
    return JSON(store.update_run(run_id, name=body.name, description=body.description))


@router.delete("/runs/{run_id}", status_code=204)
def delete_run(run_id: str, store: StoreDep) -> Response:
    """Soft-deletes the run (an editor): gone from lists and searches, restorable until
    collected; 409 while a live model version was registered from it."""
    store.delete_run(run_id)
    return Response(status_code=204)


@router.post("/runs/{run_id}/restore")
def restore_run(run_id: str, store: StoreDep) -> JSON:
    return JSON(store.restore_run(run_id))


@router.post("/runs/{run_id}/move")
def move_run(run_id: str, body: s.MoveRun, store: StoreDep) -> JSON:
    """Moves the run, with its child runs, to `project` (an editor of both projects);
    its metrics, params, artifacts and logged models go with it, lineage is kept."""
    return JSON(store.move_run(run_id, body.project))


@router.post("/runs/{run_id}/status")
def set_status(run_id: str, body: s.SetStatus, store: StoreDep) -> JSON:
    return JSON(store.set_run_status(run_id, body.status, end_time=body.end_time))


@router.post("/runs/{run_id}/heartbeat", status_code=204)
def heartbeat(run_id: str, store: StoreDep) -> Response:
    store.heartbeat(run_id)
    return Response(status_code=204)


@router.post("/runs/{run_id}/params")
def log_params(run_id: str, body: s.Params, store: StoreDep) -> JSON:
    return JSON({"params": store.log_params(run_id, body.params)})


@router.get("/runs/{run_id}/params/{key:path}/history")
def param_history(run_id: str, key: str, store: StoreDep) -> JSON:
    return JSON({"items": store.param_history(run_id, key)})


@router.patch("/runs/{run_id}/tags", status_code=204)
def set_tags(run_id: str, body: s.Tags, store: StoreDep) -> Response:
    store.set_tags(run_id, body.tags)
    return Response(status_code=204)


@router.delete("/runs/{run_id}/tags/{key:path}", status_code=204)
def delete_tag(run_id: str, key: str, store: StoreDep) -> Response:
    store.delete_tag(run_id, key)
    return Response(status_code=204)


@router.put("/runs/{run_id}/environment", status_code=204)
def set_environment(run_id: str, body: dict[str, object], store: StoreDep) -> Response:
    store.set_environment(run_id, body)
    return Response(status_code=204)


@router.get("/runs/{run_id}/environment")
def get_environment(run_id: str, store: StoreDep) -> JSON:
    return JSON(store.get_environment(run_id))


@router.put("/runs/{run_id}/code", status_code=204)
def set_code_version(run_id: str, body: s.CodeVersion, store: StoreDep) -> Response:
    store.set_code_version(run_id, **body.model_dump())
    return Response(status_code=204)


@router.get("/runs/{run_id}/code")
def get_code_version(run_id: str, store: StoreDep) -> JSON:
    return JSON(store.get_code_version(run_id))


@router.post("/runs/{run_id}/inputs", status_code=204)
def add_input(run_id: str, body: s.RunInput, store: StoreDep) -> Response:
    store.add_run_input(run_id, kind=body.kind, target_id=body.target_id, role=body.role)
    return Response(status_code=204)


@router.get("/runs/{run_id}/inputs")
def run_inputs(run_id: str, store: StoreDep) -> JSON:
    return JSON({"items": store.run_inputs(run_id)})


@router.post("/projects/{project}/runs/search")
def search_runs(project: str, body: s.Search, store: StoreDep) -> JSON:
    page = store.search_runs(
        project,
        filter=body.filter,
        order_by=body.order_by,
        limit=body.limit,
        cursor=body.cursor,
        deleted=body.deleted,
        top_level=body.top_level,
    )
    return JSON({"items": records(page.items), "next_cursor": page.next_cursor})


@router.get("/projects/{project}/runs")
def list_runs(
    project: str,
    store: StoreDep,
    filter: str | None = None,
    order_by: Annotated[list[str] | None, Query()] = None,
    limit: int = 100,
    cursor: str | None = None,
    deleted: str = "exclude",
    top_level: bool = False,
) -> JSON:
    """`deleted`: soft-deleted runs are left out ("exclude"), listed too ("include"), or
    alone ("only"); `top_level=true`: only runs without a parent (no sweep trials)."""
    page = store.search_runs(
        project,
        filter=filter,
        order_by=order_by,
        limit=limit,
        cursor=cursor,
        deleted=deleted,
        top_level=top_level,
    )
    return JSON({"items": records(page.items), "next_cursor": page.next_cursor})


@router.get("/projects/{project}/keys")
def project_keys(project: str, store: StoreDep) -> JSON:
    """The keys runs of the project have, for choosing columns and writing filters:
    `{"params": [...], "metrics": [...], "tags": [...]}`."""
    return JSON(store.project_keys(project))
