"""Access control: the signed-in user, users, API tokens and project members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from registrum.server.deps import IdempotencyKey, StoreDep, csrf_token
from registrum.server.responses import JSON, records
from registrum.server.routes._schemas import Body
from registrum.store.acting import current_principal

router = APIRouter(tags=["access"])


class CreateUser(Body):
    name: Any
    server_admin: bool = False
    service: bool = False


class CreateToken(Body):
    name: Any = "default"
    user: Any = None
    expires_at: float | None = None
    project: Any = None
    role: Any = None


class SetMember(Body):
    role: Any


@router.get("/me")
def whoami(request: Request, store: StoreDep) -> JSON:
    """The signed-in user, with `roles`: their role in each project they are a member of
    (a server admin, and the local user of a server without auth, holds every role). Signed
    in through a browser session, `csrf_token` is what its writes send as X-CSRF-Token."""
    body = {**store.whoami().to_dict(), "roles": store.my_roles()}
    principal = current_principal()
    if principal is not None and principal.scope is not None:
        body["scope"] = {"project": principal.scope[0], "role": principal.scope[1]}
    session = getattr(request.state, "session", None)
    if session is not None:
        body["csrf_token"] = csrf_token(session)
    return JSON(body)


@router.get("/users")
def list_users(store: StoreDep) -> JSON:
    return JSON({"items": records(store.list_users())})


@router.post("/users", status_code=201)
def create_user(body: CreateUser, store: StoreDep, key: IdempotencyKey = None) -> JSON:
    user = store.create_user(
        body.name, server_admin=body.server_admin, service=body.service, idempotency_key=key
    )
    return JSON(user, status_code=201)


@router.post("/users/{name}/disable")
def disable_user(name: str, store: StoreDep) -> JSON:
    return JSON(store.disable_user(name))


@router.get("/tokens")
def list_tokens(store: StoreDep, user: str | None = None) -> JSON:
    return JSON({"items": records(store.list_tokens(user=user))})


@router.post("/tokens", status_code=201)
def create_token(body: CreateToken, store: StoreDep, key: IdempotencyKey = None) -> JSON:
    """The answer holds the token itself, shown this once. `project` and `role` scope it:
    it may do at most `role` on `project`, whatever its user may do."""
    token = store.create_token(
        name=body.name,
        user=body.user,
        expires_at=body.expires_at,
        project=body.project,
        role=body.role,
        idempotency_key=key,
    )
    return JSON(token, status_code=201)


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: int, store: StoreDep) -> JSON:
    return JSON(store.revoke_token(token_id))


@router.get("/projects/{project}/members")
def list_members(project: str, store: StoreDep) -> JSON:
    return JSON({"items": records(store.list_members(project))})


@router.put("/projects/{project}/members/{user}")
def set_member(project: str, user: str, body: SetMember, store: StoreDep) -> JSON:
    return JSON(store.add_member(project, user, body.role))


@router.delete("/projects/{project}/members/{user}", status_code=204)
def remove_member(project: str, user: str, store: StoreDep) -> Response:
    store.remove_member(project, user)
    return Response(status_code=204)
