"""Garbage collection on request (a server admin): `registrum gc --store URL`."""

from __future__ import annotations

from fastapi import APIRouter

from registrum.server.deps import StoreDep
from registrum.server.responses import JSON
from registrum.server.routes._schemas import CollectGarbage

router = APIRouter(tags=["lifecycle"])


@router.post("/gc")
def collect_garbage(body: CollectGarbage, store: StoreDep) -> JSON:
    """Removes for good what was deleted longer ago than `older_than` (seconds, or a
    duration such as "7d"), then the blobs nothing references; with `dry_run`, reports what
    would go and removes nothing. A server admin only; audited."""
    return JSON(store.collect_garbage(body.older_than, dry_run=body.dry_run))
