"""The store: the service layer, its schema and migrations, and blob backends.

`Store` and `open_store` load SQLAlchemy when first used, so the pure modules
of this package (validation, blobs) import without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registrum.store.service import Store, open_store

__all__ = ["Store", "open_store"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from registrum.store import service

        return getattr(service, name)
    raise AttributeError(f"module 'registrum.store' has no attribute {name!r}")
