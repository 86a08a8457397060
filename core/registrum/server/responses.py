"""JSON responses through orjson, and the error body every failure shares."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from registrum.entities import Record


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, Record):
            content = content.to_dict()
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def error(status: int, code: str, message: str, **context: Any) -> JSON:
    return JSON({"error": {"code": code, "message": message, **context}}, status_code=status)


def records(items: list[Any]) -> list[Any]:
    return [i.to_dict() if isinstance(i, Record) else i for i in items]
