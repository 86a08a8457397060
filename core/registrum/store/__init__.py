"""The store: the service layer, its schema and migrations, and blob backends.

`service.py` composes one `Store` from the four wings: `tracking/` (runs and what they log),
`registry/` (models, versions, aliases), `search/` (the run-search language) and
`governance/` (access, audit, lineage, approvals, webhooks). `Store` and `open_store` load
SQLAlchemy when first used, so the pure modules of this package (blobs, the search parser,
the gates) import without it.
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
