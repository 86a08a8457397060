"""Request dependencies, read from `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from registrum.store import Store


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]
