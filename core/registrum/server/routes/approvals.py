"""Promotion with approval: model policies, promotion requests and their decisions, and the
alias history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from registrum.server.deps import IdempotencyKey, StoreDep
from registrum.server.pagination import Cursor, Limit, page
from registrum.server.responses import JSON
from registrum.server.routes._schemas import Body

router = APIRouter(tags=["approvals"])


class SetPolicy(Body):
    protected: Any = ()
    approver_role: Any = "reviewer"
    approvals_needed: Any = 1
    allow_self_approval: Any = False
    gates: Any = ()


class OpenRequest(Body):
    alias: Any
    version: Any
    comment: Any = None


class Decision(Body):
    comment: Any = None


def _comment(body: Decision | None) -> Any:
    return None if body is None else body.comment


@router.put("/models/{name}/policy")
def set_policy(name: str, body: SetPolicy, store: StoreDep, key: IdempotencyKey = None) -> JSON:
    """Replaces the model's policy; needs admin on its project."""
    return JSON(
        store.set_policy(
            name,
            protected=body.protected,
            approver_role=body.approver_role,
            approvals_needed=body.approvals_needed,
            allow_self_approval=body.allow_self_approval,
            gates=body.gates,
            idempotency_key=key,
        )
    )


@router.get("/models/{name}/policy")
def get_policy(name: str, store: StoreDep) -> JSON:
    return JSON(store.get_policy(name))


@router.post("/models/{name}/requests", status_code=201)
def open_request(name: str, body: OpenRequest, store: StoreDep, key: IdempotencyKey = None) -> JSON:
    """Opens a request to move a protected alias; needs editor."""
    record = store.request_promotion(
        name, body.alias, body.version, comment=body.comment, idempotency_key=key
    )
    return JSON(record, status_code=201)


@router.get("/models/{name}/requests")
def list_requests(
    name: str,
    store: StoreDep,
    state: str | None = None,
    alias: str | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> JSON:
    """The model's requests, newest first; `state`: open, approved, rejected, cancelled or
    stale (the alias moved after it opened)."""
    return page(
        lambda n, at: store.list_requests(name, state=state, alias=alias, limit=n, offset=at),
        limit,
        cursor,
    )


@router.get("/models/{name}/aliases/history")
def alias_history(
    name: str, store: StoreDep, alias: str | None = None, limit: Limit = 100, cursor: Cursor = None
) -> JSON:
    """Every move of the model's aliases (or of `alias`), oldest first."""
    return page(lambda n, at: store.alias_history(name, alias, limit=n, offset=at), limit, cursor)


@router.get("/requests/{request_id}")
def get_request(request_id: int, store: StoreDep) -> JSON:
    return JSON(store.get_request(request_id))


@router.post("/requests/{request_id}/approve")
def approve(
    request_id: int, store: StoreDep, body: Decision | None = None, key: IdempotencyKey = None
) -> JSON:
    """Needs the policy's approver role; the last approval needed moves the alias."""
    return JSON(store.approve_request(request_id, comment=_comment(body), idempotency_key=key))


@router.post("/requests/{request_id}/reject")
def reject(
    request_id: int, store: StoreDep, body: Decision | None = None, key: IdempotencyKey = None
) -> JSON:
    return JSON(store.reject_request(request_id, comment=_comment(body), idempotency_key=key))


@router.post("/requests/{request_id}/cancel")
def cancel(
    request_id: int, store: StoreDep, body: Decision | None = None, key: IdempotencyKey = None
) -> JSON:
    """The requester, or an admin of the model's project."""
    return JSON(store.cancel_request(request_id, comment=_comment(body), idempotency_key=key))
