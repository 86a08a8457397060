"""The audit trail: every mutation, newest first, a check of the whole chain, and the chain's
head signed for keeping off-site."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from registrum.server.deps import StoreDep
from registrum.server.pagination import Cursor, Limit, page
from registrum.server.responses import JSON
from registrum.server.routes._schemas import Body

router = APIRouter(tags=["audit"])


class VerifyAgainst(Body):
    anchors: Any = None


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
    exclude_action: Annotated[list[str] | None, Query()] = None,
) -> JSON:
    """Audit events, newest first, filtered by project, action, entity, actor and time;
    `exclude_action` (repeated) leaves actions out, such as `metrics.logged`."""
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
            exclude_actions=exclude_action or (),
        ),
        limit,
        cursor,
    )


@router.get("/audit/verify")
def verify_audit(store: StoreDep) -> JSON:
    """Checks every event's hash and link, and the anchors recorded beside the audit key:
    `{"ok", "events", "problems", "anchors", "anchor"}`."""
    return JSON(store.verify_audit())


@router.post("/audit/verify")
def verify_audit_against(body: VerifyAgainst, store: StoreDep) -> JSON:
    """As `GET /audit/verify`, and also that the chain still extends each of `anchors` (signed
    heads from `GET /audit/anchor`); a problem names the anchor it breaks."""
    return JSON(store.verify_audit(body.anchors if body.anchors is not None else []))


@router.get("/audit/anchor")
def audit_anchor(store: StoreDep) -> JSON:
    """The chain head, signed with the server's audit key: `{"event", "hash", "time", "key",
    "signature"}`, to keep off-site and verify against later (server admins only)."""
    return JSON(store.audit_anchor())
