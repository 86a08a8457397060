"""Search cursors: the segment and sort values of a page's last row, tied to one query."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from registrum.errors import InvalidArgument
from registrum.store.search.plan import Segment
from registrum.store.search.syntax import OrderKey

_MAX_CURSOR = 8192
_CURSOR_VERSION = 1


def query_hash(project_id: int, filter: str | None, order: list[OrderKey]) -> str:
    """What a cursor is tied to: the project, the filter as typed and the order."""
    spec = [project_id, (filter or "").strip(), [[str(k.field), k.descending] for k in order]]
    raw = json.dumps(spec, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def encode_cursor(digest: str, segment: int, values: list[Any]) -> str:
    """An opaque, URL-safe cursor resuming after the row with these sort values."""
    raw = json.dumps({"v": _CURSOR_VERSION, "q": digest, "s": segment, "k": values})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, digest: str, segments: list[Segment]) -> tuple[int, list[Any]]:
    """The segment index and sort values a cursor holds, checked against `segments`.

    Raises:
        InvalidArgument: the cursor is malformed or belongs to another search.
    """
    bad = InvalidArgument(
        "cursor is not one this search returned: pass next_cursor unchanged, "
        "or no cursor to start from the first page"
    )
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CURSOR:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, binascii.Error):
        raise bad from None
    if not isinstance(data, dict) or data.get("v") != _CURSOR_VERSION:
        raise bad
    if data.get("q") != digest:
        raise InvalidArgument(
            "cursor belongs to a different search: use it with the same filter and "
            "order_by as the call that returned it, or drop it to start over"
        )
    segment, values = data.get("s"), data.get("k")
    if (
        not isinstance(segment, int)
        or isinstance(segment, bool)
        or not 0 <= segment < len(segments)
        or not isinstance(values, list)
        or len(values) != len(segments[segment].components)
    ):
        raise bad
    for component, value in zip(segments[segment].components, values, strict=True):
        if value is None:
            if not component.nullable:
                raise bad
        elif component.kind == "num":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad
        elif not isinstance(value, str):
            raise bad
    return segment, values
