"""HTTP `Range` requests on blobs: the header read against the blob's size."""

from __future__ import annotations

import re

from registrum.errors import RangeNotSatisfiable

_RANGE = re.compile(r"^([0-9]*)-([0-9]*)$")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Reads a single-range HTTP `Range: bytes=...` header against a blob's size.

    Returns:
        The first and last byte offsets (inclusive, the last clamped to the blob) for
        `bytes=a-b`, `bytes=a-` or `bytes=-n`; None when the header is malformed or
        asks for several ranges, meaning: ignore it and send the whole blob.

    Raises:
        RangeNotSatisfiable: The range is well formed but lies outside the blob.
    """
    unit, sep, spec = header.partition("=")
    match = _RANGE.match(spec.strip())
    if not sep or unit.strip().lower() != "bytes" or match is None:
        return None
    first, last = match.group(1), match.group(2)
    if (not first and not last) or (first and last and int(last) < int(first)):
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"range {header!r} is empty for {size} bytes", size=size)
        return max(0, size - suffix), size - 1
    start = int(first)
    if start >= size:
        raise RangeNotSatisfiable(f"range {header!r} starts past {size} bytes", size=size)
    return start, size - 1 if not last else min(int(last), size - 1)
