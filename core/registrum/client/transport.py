"""The two ways to a store, one interface: the service layer in-process, or HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registrum.errors import InvalidArgument


def open_transport(store: str | None, *, home: Path, token: str | None = None) -> Any:
    """A `Store` (embedded) or an `HttpStore` for `store`.

    `store` is an `http(s)://` server, a `sqlite:///` or `postgresql+psycopg://`
    database URL, or None for the embedded store under `home`.
    """
    if store is not None and not isinstance(store, str):
        raise InvalidArgument(f"store must be a URL string, got {type(store).__name__}")
    if store and store.startswith(("http://", "https://")):
        from registrum.client.http import HttpStore

        return HttpStore(store, token=token, timeout=30.0)
    from registrum.store import open_store

    if store is None:
        home.mkdir(parents=True, exist_ok=True)
        return open_store(f"sqlite:///{home / 'registrum.db'}", blobs=home / "blobs")
    return open_store(store)
