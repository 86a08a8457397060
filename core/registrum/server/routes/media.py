"""A run's media (store/tracking/media.py): images, figures, tables and text by key and
step. Recording one takes a blob uploaded first (`PUT /blobs/{sha256}`); the bytes are the
run's file `path`, downloaded through `/runs/{id}/files/{path}`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from registrum.server.deps import StoreDep
from registrum.server.pagination import Cursor, Limit, page
from registrum.server.responses import JSON
from registrum.server.routes import _schemas as s

router = APIRouter(tags=["runs"])

Key = Annotated[str | None, Query(description="one key's media (all its steps); none: every key")]


@router.post("/runs/{run_id}/media")
def log_media(run_id: str, body: s.LogMedia, store: StoreDep) -> JSON:
    """Records the blob `sha256` as the run's `kind` (`image`, `figure`, `table`, `text`)
    under `key` at `step`, stored as `format` (`png`; `png` or `plotly`; `json`; `txt`),
    replacing what the key held at that step."""
    return JSON(
        store.log_media(
            run_id,
            body.key,
            step=body.step,
            kind=body.kind,
            format=body.format,
            sha256=body.sha256,
            size=body.size,
            meta=body.meta,
        )
    )


@router.get("/runs/{run_id}/media")
def list_media(
    run_id: str, store: StoreDep, key: Key = None, limit: Limit = 100, cursor: Cursor = None
) -> JSON:
    """The run's media by key, then step."""
    found = store.list_media(run_id, key)
    return page(lambda n, at: found[at : at + n], limit, cursor)


@router.get("/runs/{run_id}/media/{step}")
def get_media(
    run_id: str, step: int, store: StoreDep, key: Annotated[str, Query(description="the key")]
) -> JSON:
    """The media of `key` at `step`."""
    return JSON(store.get_media(run_id, key, step))
