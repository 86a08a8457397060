"""Input rules shared by every entry point: names, keys, ids, hashes, paths."""

from __future__ import annotations

import math
import re
from typing import Any

from registrum.errors import InvalidArgument, InvalidName

MAX_NAME = 256
MAX_PATH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DIGITS = re.compile(r"^[0-9]{1,18}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")

RUN_STATUSES = ("running", "finished", "failed", "crashed", "killed")


def name(value: Any, what: str, *, slash: bool = False, max_len: int = MAX_NAME) -> str:
    """Checks a user-chosen name; `slash` allows `/` (metric keys, tags)."""
    if not isinstance(value, str):
        raise InvalidName(f"{what} must be a string, got {type(value).__name__}")
    if not value or not value.strip():
        raise InvalidName(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidName(f"{what} is {len(value)} characters long; the limit is {max_len}")
    if _CONTROL.search(value):
        raise InvalidName(f"{what} {value!r} contains a control character")
    if value != value.strip():
        raise InvalidName(f"{what} {value!r} has leading or trailing whitespace")
    if not slash and "/" in value:
        raise InvalidName(f"{what} {value!r} must not contain '/'")
    if "@" in value and not slash:
        raise InvalidName(f"{what} {value!r} must not contain '@'")
    return value


def key(value: Any, what: str = "key") -> str:
    """A metric, param or tag key: a name in which `/` and `.` group keys."""
    return name(value, what, slash=True)


def run_id(value: Any) -> str:
    if not isinstance(value, str) or not _RUN_ID.match(value):
        raise InvalidArgument(
            f"run id {value!r} is not valid: use 1-64 characters of letters, digits, '_' or '-'"
        )
    return value


def alias(value: Any) -> str:
    if not isinstance(value, str) or not _ALIAS.match(value):
        raise InvalidName(
            f"alias {value!r} is not valid: start with a letter, then up to 127 letters, "
            "digits, '_', '-' or '.' (a number would read as a version)"
        )
    if value == "latest":
        raise InvalidName("alias 'latest' is reserved: name@latest always means the newest version")
    return value


def sha256(value: Any) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise InvalidArgument(f"{value!r} is not a sha256 digest: expected 64 lowercase hex digits")
    return value


def artifact_path(value: Any) -> str:
    """A file path inside an artifact: relative, normalised, no `..`."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument("artifact file path must be a non-empty string")
    if len(value) > MAX_PATH:
        raise InvalidArgument(f"artifact file path is longer than {MAX_PATH} characters")
    if _CONTROL.search(value):
        raise InvalidArgument(f"artifact file path {value!r} contains a control character")
    if value.startswith("/") or "\\" in value or re.match(r"^[A-Za-z]:", value):
        raise InvalidArgument(
            f"artifact file path {value!r} must be relative, with '/' as separator"
        )
    parts = value.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidArgument(
            f"artifact file path {value!r} must not contain empty, '.' or '..' segments"
        )
    return value


def status(value: Any) -> str:
    if value not in RUN_STATUSES:
        raise InvalidArgument(f"run status {value!r} is not one of {', '.join(RUN_STATUSES)}")
    return str(value)


def integer(value: Any, what: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what} must be an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidArgument(f"{what} must be at least {minimum}, got {value}")
    if not -(2**63) <= value < 2**63:
        raise InvalidArgument(f"{what} {value} does not fit in 64 bits")
    return value


def number(value: Any, what: str) -> float:
    """A metric value: int or float; NaN and ±inf are kept."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{what} must be a number, got {type(value).__name__}")
    return float(value)


def optional_text(value: Any, what: str, *, max_len: int = 65536) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise InvalidArgument(f"{what} is longer than {max_len} characters")
    return value


def string_map(value: Any, what: str, *, max_value: int = 5000) -> dict[str, str]:
    """Tags: string keys to string values."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be an object of string keys to values")
    out: dict[str, str] = {}
    for k, v in value.items():
        key(k, f"{what} key")
        if isinstance(v, bool | int | float) and not isinstance(v, bool):
            v = str(v)
        if isinstance(v, bool):
            v = "true" if v else "false"
        if not isinstance(v, str):
            raise InvalidArgument(f"{what} value for {k!r} must be a string")
        if len(v) > max_value:
            raise InvalidArgument(f"{what} value for {k!r} is longer than {max_value} characters")
        out[k] = v
    return out


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


_REF = re.compile(r"^(?P<name>[^@]+?)(?:@(?P<ref>[^@]+))?$")


def model_ref(ref: Any) -> tuple[str, int | str | None]:
    """`name`, `name@3`, `name@latest`, `name@champion` -> (name, 3 | "champion" | None=latest)."""
    if not isinstance(ref, str):
        raise InvalidArgument(f"model reference must be a string like 'name@alias', got {ref!r}")
    m = _REF.match(ref)
    if m is None:
        raise InvalidArgument(
            f"model reference {ref!r} is not 'name', 'name@VERSION' or 'name@ALIAS'"
        )
    model = name(m.group("name"), "model name")
    part = m.group("ref")
    if part is None or _DIGITS.match(part) or part == "latest":
        return model, version(part or "latest")
    return model, alias(part)


def version(value: Any) -> int | None:
    """A version number (int or ASCII digits), or None for "latest"."""
    if value == "latest":
        return None
    if isinstance(value, str) and _DIGITS.match(value):
        value = int(value)
    return integer(value, "version", minimum=1)
