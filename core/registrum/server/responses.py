"""JSON responses through orjson, and the error body every failure shares."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import Response

from registrum.entities import Record


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, Record):
            content = content.to_dict()
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError:
            # orjson refuses nesting past 254 levels and text with lone surrogates; what the
            # store holds must still be readable, so the standard encoder (escapes, deeper
            # recursion) answers instead of a 500.
            return json.dumps(content, default=str).encode()


def error(status: int, code: str, message: str, **context: Any) -> JSON:
    return JSON({"error": {"code": code, "message": message, **context}}, status_code=status)


def records(items: list[Any]) -> list[Any]:
    return [i.to_dict() if isinstance(i, Record) else i for i in items]
