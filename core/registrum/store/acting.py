"""Who the service layer checks rights for: the signed-in user of a request, or nobody
(the embedded store's one local user, who may do everything)."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from registrum.entities import ROLES
from registrum.store.audit_chain import acting_as

__all__ = ["ROLES", "Principal", "current_principal", "rank", "set_principal", "signed_in_as"]


@dataclass(frozen=True)
class Principal:
    """A signed-in user: set by the server per request from the bearer token or session.

    A scoped token's principal has `scope` (project, role): it may do at most `role` on
    that project and nothing elsewhere, and is never a server admin (`scope_admin` says
    whether its user is one, who then holds the scope's role whatever the memberships)."""

    user_id: int
    name: str
    server_admin: bool = False
    scope: tuple[str, str] | None = None
    scope_admin: bool = False


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "registrum_principal", default=None
)


def current_principal() -> Principal | None:
    """The user whose rights the service layer checks; None: the embedded store, every right."""
    return _principal.get()


def set_principal(principal: Principal | None) -> None:
    """Names the user whose rights are checked from here on in this context."""
    _principal.set(principal)


@contextmanager
def signed_in_as(principal: Principal | None) -> Iterator[None]:
    """Checks the calls made inside the block against `principal`'s rights, and records
    their audit events as done by that user."""
    token = _principal.set(principal)
    try:
        if principal is None:
            yield
        else:
            with acting_as(principal.name):
                yield
    finally:
        _principal.reset(token)


def rank(role: str) -> int:
    """A role's place in viewer < editor < reviewer < admin."""
    return ROLES.index(role)
