"""Webhooks: subscriptions to a project's or a model's events, and their delivery logs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from registrum.server.deps import IdempotencyKey, StoreDep
from registrum.server.pagination import Cursor, Limit, page
from registrum.server.responses import JSON
from registrum.server.routes._schemas import Body

router = APIRouter(tags=["webhooks"])


class CreateWebhook(Body):
    url: Any
    events: Any
    project: Any = None
    model: Any = None
    secret: Any = None


@router.post("/webhooks", status_code=201)
def create_webhook(body: CreateWebhook, store: StoreDep, key: IdempotencyKey = None) -> JSON:
    """Subscribes a URL; the answer holds the signing secret, shown this once."""
    hook = store.create_webhook(
        body.url,
        body.events,
        project=body.project,
        model=body.model,
        secret=body.secret,
        idempotency_key=key,
    )
    return JSON(hook, status_code=201)


@router.get("/webhooks")
def list_webhooks(
    store: StoreDep,
    project: str | None = None,
    model: str | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> JSON:
    """Hooks, oldest first: of a project (its model hooks too), of a model, or all."""
    return page(
        lambda n, at: store.list_webhooks(project=project, model=model, limit=n, offset=at),
        limit,
        cursor,
    )


@router.get("/webhooks/{webhook_id}")
def get_webhook(webhook_id: str, store: StoreDep) -> JSON:
    return JSON(store.get_webhook(webhook_id))


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: str, store: StoreDep) -> Response:
    """Removes the hook and its delivery log."""
    store.delete_webhook(webhook_id)
    return Response(status_code=204)


@router.get("/webhooks/{webhook_id}/deliveries")
def list_deliveries(
    webhook_id: str,
    store: StoreDep,
    status: str | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> JSON:
    """The hook's delivery log, newest event first; `status`: pending, delivered or failed."""
    return page(
        lambda n, at: store.list_deliveries(webhook_id, status=status, limit=n, offset=at),
        limit,
        cursor,
    )
