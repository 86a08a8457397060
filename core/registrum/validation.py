"""Input rules shared by every entry point: names, keys, ids, hashes, paths, free-form JSON.

Every rule here runs before anything is stored, so what the store holds can always be
read back and served: no text with a lone UTF-16 surrogate (it has no UTF-8 form), no
JSON value nested deeper or larger than the limits below, no id past what the database's
integer columns hold.
"""

from __future__ import annotations

import datetime
import math
import re
import unicodedata
from typing import Any

from registrum.errors import InvalidArgument, InvalidName

MAX_NAME = 256
MAX_PATH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DIGITS = re.compile(r"^[0-9]{1,18}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# Ids and version numbers live in 32-bit integer columns on PostgreSQL.
MAX_ID = 2**31 - 1
# Free-form JSON (params, metadata, dataset schemas, environments, signatures, code extras):
# deep enough for any real configuration, far below what JSON encoders and decoders
# recurse to.
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 1024 * 1024

RUN_STATUSES = ("running", "finished", "failed", "crashed", "killed")


def name(value: Any, what: str, *, slash: bool = False, max_len: int = MAX_NAME) -> str:
    """Checks a user-chosen name; `slash` allows `/` (metric keys, tags, run names).

    A name that identifies something (a project, model, dataset, artifact or user: no
    `slash`) is returned in Unicode NFC, so a name typed with composed or decomposed accents
    is the same name, and may hold no invisible or direction-control character (`visible`).
    """
    if not isinstance(value, str):
        raise InvalidName(f"{what} must be a string, got {type(value).__name__}")
    if not value or not value.strip():
        raise InvalidName(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidName(f"{what} is {len(value)} characters long; the limit is {max_len}")
    text(value, what)
    if slash:
        # Keys and labels (metric keys, run names) are matched as logged, and must never
        # turn a training run's batch away; only control characters are refused.
        if _CONTROL.search(value):
            raise InvalidName(f"{what} {value!r} contains a control character")
    else:
        value = unicodedata.normalize("NFC", value)
        visible(value, what)
    if value != value.strip():
        raise InvalidName(f"{what} {value!r} has leading or trailing whitespace")
    if not slash and "/" in value:
        raise InvalidName(f"{what} {value!r} must not contain '/'")
    if "@" in value and not slash:
        raise InvalidName(f"{what} {value!r} must not contain '@'")
    checked: str = value
    return checked


# Characters that show nothing, or reorder what is shown, yet make a name differ from one
# that looks the same: besides the categories, invisible ones that Unicode files as letters
# or marks (variation selectors, fillers, the grapheme joiner).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
_HIDDEN = frozenset(
    chr(c)
    for c in (
        0x034F,  # COMBINING GRAPHEME JOINER
        0x115F,  # HANGUL CHOSEONG FILLER
        0x1160,  # HANGUL JUNGSEONG FILLER
        0x17B4,  # KHMER VOWEL INHERENT AQ
        0x17B5,  # KHMER VOWEL INHERENT AA
        *range(0x180B, 0x1810),  # MONGOLIAN FREE VARIATION SELECTORS, VOWEL SEPARATOR
        0x3164,  # HANGUL FILLER
        0xFFA0,  # HALFWIDTH HANGUL FILLER
        *range(0xFE00, 0xFE10),  # VARIATION SELECTORS 1-16
        *range(0xE0000, 0xE0080),  # TAGS
        *range(0xE0100, 0xE01F0),  # VARIATION SELECTORS 17-256
    )
)
_KIND = {
    "Cc": "a control character",
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
}


def visible(value: str, what: str) -> str:
    """Refuses a name holding a character that is invisible or changes the direction of the
    text (bidi controls, zero-width characters, format, private-use and unassigned code
    points), so that no two names look alike on screen yet differ."""
    if value.isascii():
        found = _CONTROL.search(value)
        at = None if found is None else found.start()
    else:
        at = next(
            (
                i
                for i, char in enumerate(value)
                if char in _HIDDEN or unicodedata.category(char) in _HIDDEN_CATEGORIES
            ),
            None,
        )
    if at is None:
        return value
    char = value[at]
    label = unicodedata.name(char, "") or f"({_KIND.get(unicodedata.category(char), '')})"
    raise InvalidName(
        f"{what} contains U+{ord(char):04X} {label} at position {at + 1}; names may not "
        "contain invisible or direction-control characters: type the name without it",
        field=what,
    )


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
    if value == "history":
        raise InvalidName(
            "alias 'history' is reserved: /models/NAME/aliases/history is the aliases' history"
        )
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


def terminal_status(value: Any) -> str:
    """The status `finish_run` ends a run with: any but `running`."""
    if value == "running":
        raise InvalidArgument("finish_run needs a terminal status, not 'running'")
    return str(value)


def webhook_id(value: Any) -> str:
    """A webhook id as `create_webhook` makes them: letters and digits, at most 64."""
    if not isinstance(value, str) or not value or len(value) > 64 or not value.isalnum():
        raise InvalidArgument(f"webhook id {value!r} is not valid: use the id create returned")
    return value


def integer(value: Any, what: str, *, minimum: int | None = None, bits: int = 32) -> int:
    """An integer that fits the database column it goes to: ids, versions and counts are
    32-bit (`bits=64` for sequence numbers, sizes, row counts and offsets)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what} must be an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidArgument(f"{what} must be at least {minimum}, got {value}")
    bound = 2 ** (bits - 1)
    if not -bound <= value < bound:
        raise InvalidArgument(f"{what} {value} is out of range: the largest is {bound - 1}")
    return value


def number(value: Any, what: str) -> float:
    """A metric value: int or float; NaN and ±inf are kept."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{what} must be a number, got {type(value).__name__}")
    return float(value)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def duration(value: Any, what: str) -> float:
    """A span of time in seconds: a number of seconds, or text such as `0s`, `90m`, `12h`,
    `7d` or `2w`; never negative, never infinite."""
    if isinstance(value, str):
        found = _DURATION.fullmatch(value.strip().lower())
        if found is None:
            raise InvalidArgument(
                f"{what} {value!r} is not a duration: write a number and a unit, such as "
                "0s, 30m, 12h, 7d or 2w"
            )
        seconds = float(found[1]) * _UNITS[found[2]]
    else:
        seconds = number(value, what)
    if not 0 <= seconds < float("inf"):
        raise InvalidArgument(f"{what} must be 0 seconds or more, got {value!r}")
    return seconds


def optional_text(value: Any, what: str, *, max_len: int = 65536) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise InvalidArgument(f"{what} is longer than {max_len} characters")
    return text(value, what)


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
        text(v, f"{what} value for {k!r}")
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


def text(value: str, what: str) -> str:
    """Refuses a string with a lone UTF-16 surrogate (as JSON's `\\ud800` escape makes):
    it has no UTF-8 form, so neither database could store it nor JSON carry it back."""
    found = _SURROGATE.search(value)
    if found is not None:
        raise InvalidArgument(
            f"{what} contains a lone UTF-16 surrogate (U+{ord(found.group()):04X}) at index "
            f"{found.start()}: send the text as valid Unicode (pair the surrogate or drop it)",
            field=what,
        )
    return value


def json_value(value: Any, what: str) -> Any:
    """Checks a free-form JSON value before it is stored: objects with string keys, arrays,
    strings, numbers, booleans and null, nested at most MAX_JSON_DEPTH levels, every string
    valid Unicode. Walked without recursion, so any depth is refused cleanly."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            text(item, what)
        elif isinstance(item, dict | list | tuple):
            if depth > MAX_JSON_DEPTH:
                raise InvalidArgument(
                    f"{what} is nested more than {MAX_JSON_DEPTH} levels deep: "
                    "flatten it or store it as an artifact",
                    field=what,
                )
            if isinstance(item, dict):
                for k, x in item.items():
                    if isinstance(k, str):
                        text(k, f"{what} key")
                    stack.append((x, depth + 1))
            else:
                stack.extend((x, depth + 1) for x in item)
    return value


def json_size(text_value: str, what: str) -> str:
    """Refuses stored JSON text over MAX_JSON_BYTES."""
    if len(text_value) > MAX_JSON_BYTES:
        raise InvalidArgument(
            f"{what} is {len(text_value)} bytes as JSON; the limit is {MAX_JSON_BYTES}: "
            "store large content as an artifact",
            field=what,
        )
    return text_value


def timestamp(value: Any, what: str) -> float:
    """A point in time (Unix seconds): a finite number."""
    number(value, what)
    if not math.isfinite(value):
        raise InvalidArgument(f"{what} must be a finite Unix time in seconds, got {value!r}")
    return float(value)


def instant(value: Any, what: str) -> float:
    """A point in time given as Unix seconds or as ISO 8601 text (`2026-11-01T00:00:00Z`,
    `2026-11-01T09:30+02:00`, `2026-11-01`; without a zone it is UTC); Unix seconds back."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+(\.\d*)?", text):
            return timestamp(float(text), what)
        try:
            value = datetime.datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise InvalidArgument(
                f"{what} must be Unix seconds or an ISO 8601 time such as "
                f"2026-11-01T00:00:00Z, got {value!r}"
            ) from None
    if isinstance(value, datetime.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
        return aware.timestamp()
    return timestamp(value, what)


MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(key: Any) -> str | None:
    """An idempotency key as given (None: the write has none): 1 to 255 printable ASCII
    characters. The quoted form of the HTTP header (`"KEY"`, a structured-field string) is the
    same key unquoted."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise InvalidArgument(f"an idempotency key must be a string, got {type(key).__name__}")
    text: str = key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key
    how = f"use 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters, e.g. a UUID"
    if not text or len(text) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(f"idempotency key is {len(text)} characters long: {how}")
    for char in text:
        if not " " <= char <= "~":
            raise InvalidArgument(f"idempotency key holds the character {char!r}: {how}")
    return text


def aliases(value: Any) -> list[str]:
    """Alias names to set: one name, or a list of names."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise InvalidArgument(
            f"aliases must be a list of alias names, got {type(value).__name__}", field="aliases"
        )
    return [alias(a) for a in value]
