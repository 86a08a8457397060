"""Arguments every MLflow search reads: page sizes, view types and opaque page tokens."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from registrum.server.mlflow._wire import Args, MlflowError, integer, invalid

# MLflow's view types, as the store's `deleted` option says them.
VIEW_TYPES = {"ACTIVE_ONLY": "exclude", "DELETED_ONLY": "only", "ALL": "include"}


def bounded(args: Args, key: str, default: int, most: int) -> int:
    """A page size: `default` when absent, refused outside 1 to `most`."""
    value = integer(args, key, default=default)
    assert value is not None
    if not 1 <= value <= most:
        raise invalid(
            f"Invalid value {value} for parameter '{key}' supplied: it must be at most {most} "
            "and at least 1."
        )
    return value


def view_type(args: Args, key: str) -> str:
    """`ACTIVE_ONLY` (the default), `DELETED_ONLY` or `ALL`, by name or proto number."""
    value = args.get(key) or "ACTIVE_ONLY"
    if isinstance(value, int) and not isinstance(value, bool):
        value = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}.get(value, str(value))
    found = VIEW_TYPES.get(str(value).upper())
    if found is None:
        raise invalid(f"Invalid value '{value}' for '{key}': use {', '.join(VIEW_TYPES)}")
    return found


def encode_token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _bad_token() -> MlflowError:
    return invalid("Invalid page token: pass next_page_token unchanged.")


def decode_token(text: str | None) -> dict[str, Any]:
    """What `encode_token` wrote; {} for no token."""
    if not text:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, binascii.Error):
        raise _bad_token() from None
    if not isinstance(data, dict):
        raise _bad_token()
    return data


def offset_of(data: dict[str, Any]) -> int:
    """The offset a decoded token holds (0 for none)."""
    found = data.get("offset", 0)
    if isinstance(found, bool) or not isinstance(found, int) or found < 0:
        raise _bad_token()
    return found
