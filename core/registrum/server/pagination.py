"""Cursor pagination for list routes: an opaque cursor over the service's limit/offset."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query

from registrum.errors import InvalidArgument
from registrum.server.responses import JSON, records

Limit = Annotated[int, Query(ge=1, le=1000, description="items per page (1-1000)")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]


def encode(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = data["o"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidArgument(
            f"cursor {cursor!r} is not valid: pass back the next_cursor of the previous page"
        )
    return offset


def page(fetch: Callable[[int, int], list[Any]], limit: int, cursor: str | None) -> JSON:
    """One page from `fetch(limit, offset)`: `{"items": [...], "next_cursor": ...}`."""
    offset = decode(cursor)
    items = fetch(limit + 1, offset)
    more = len(items) > limit
    return JSON(
        {
            "items": records(items[:limit]),
            "next_cursor": encode(offset + limit) if more else None,
        }
    )
