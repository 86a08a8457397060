"""Request dependencies, read from `app.state`."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from registrum.errors import Forbidden, Unauthorized
from registrum.store import Store
from registrum.store.acting import Principal, set_principal
from registrum.store.audit_chain import set_actor


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized("this server needs an API token: set REGISTRUM_TOKEN")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send the API token as 'Authorization: Bearer TOKEN'")
    return token.strip()


SESSION_COOKIE = "registrum_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session: str) -> str:
    """The CSRF token of a browser session: what its state-changing requests must send in
    X-CSRF-Token (the page reads it from /api/v1/me; another site can neither read it nor
    make the browser send it)."""
    return hashlib.sha256(f"registrum-csrf:{session}".encode()).hexdigest()


def require_csrf(request: Request, session: str) -> None:
    """Raises `Forbidden` unless the request carries the session's CSRF token."""
    if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), csrf_token(session)):
        raise Forbidden(
            f"this request changes something and comes with a browser session, "
            f"but without its {CSRF_HEADER} header: reload the page"
        )


async def _principal(
    request: Request, store: Store, token_of: Callable[[Request], str]
) -> Principal:
    """Who calls: the bearer token's user, else the browser session's (whose writes must
    carry the session's CSRF token)."""
    session = request.cookies.get(SESSION_COOKIE)
    if session and not request.headers.get("authorization"):
        principal = await run_in_threadpool(store.authenticate_session, session)
        if request.method not in SAFE_METHODS:
            require_csrf(request, session)
        request.state.session = session
        return principal
    return await run_in_threadpool(store.authenticate, token_of(request))


async def acting_store(request: Request, token_of: Callable[[Request], str]) -> Store:
    """The store, acting for the caller. With access control on, the token (`token_of` reads
    it from the request) or the browser session names the user whose roles every call is
    checked against and whom audit events name (401 without either); off, audit events
    name the caller's address (`anonymous@ADDRESS`)."""
    store: Store = request.app.state.store
    if request.app.state.settings.auth:
        principal = await _principal(request, store, token_of)
        set_principal(principal)
        set_actor(principal.name)
    else:
        client = request.client.host if request.client else "unknown"
        set_actor(f"anonymous@{client}")
    return store


async def get_store(request: Request) -> Store:
    """The store, acting for the caller of a bearer token (see `acting_store`)."""
    return await acting_store(request, _bearer)


async def get_public_store(request: Request) -> Store:
    """The store for requests that need no token (health checks)."""
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]
PublicStoreDep = Annotated[Store, Depends(get_public_store)]
# A non-idempotent write's client key (the IETF draft's header); the store checks it
# (store/idempotency.py): a retry with the same key and body gets the first answer.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="A key naming this write (1 to 255 printable ASCII characters, e.g. a "
        "UUID): retried with the same key and body, the write is not made again and the "
        "first answer is returned. Kept for 24 hours, per user.",
    ),
]
