"""The audit trail: every mutation, newest first, and a check of the whole chain."""

from __future__ import annotations

from fastapi import APIRouter

from registrum.server.deps import StoreDep
from registrum.server.pagination import Cursor, Limit, page
from registrum.server.responses import JSON

router = APIRouter(tags=["audit"])


@router.get("/audit")
def list_audit(
    store: StoreDep,
    project: str | None = None,
    action: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> JSON:
    """Audit events, newest first, filtered by project, action, entity, actor and time."""
    return page(
        lambda n, at: store.list_audit(
            project=project,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            actor=actor,
            since=since,
            until=until,
            limit=n,
            offset=at,
        ),
        limit,
        cursor,
    )


@router.get("/audit/verify")
def verify_audit(store: StoreDep) -> JSON:
    """Checks every event's hash and link: `{"ok", "events", "problems"}`."""
    return JSON(store.verify_audit())
