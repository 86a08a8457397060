"""Request dependencies, read from `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from registrum.store import Store
from registrum.store.auditing import set_actor


async def get_store(request: Request) -> Store:
    """The store, acting for the caller: the request's audit events name its address
    (`anonymous@ADDRESS`; with access control, the signed-in user)."""
    client = request.client.host if request.client else "unknown"
    set_actor(f"anonymous@{client}")
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]
