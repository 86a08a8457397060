"""What every fingerprint builds on: the `Fingerprint` record and a sha256 started with an
unambiguous header. `fingerprint` (files, folders, bytes, the dispatch) and `_arrays` (arrays,
tensors, frames, nested values) both import it; `fingerprint` calls into `_arrays`, never the
other way round."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

VERSION = b"registrum-fingerprint-v1\0"
SUPPORTED = (
    "numpy arrays, pandas DataFrames and Series, torch tensors, lists and tuples, "
    "bytes, and paths (str or pathlib.Path) of files or folders"
)


@dataclass(frozen=True)
class Fingerprint:
    """The identity of a dataset's content.

    Attributes:
        digest: sha256 hex of the content and its layout (dtype, shape, columns);
            the same on every process and machine for the same content.
        kind: What was hashed: ``numpy``, ``pandas``, ``torch``, ``list``,
            ``file``, ``folder`` or ``bytes``.
        schema: JSON-serialisable description: dtype and shape, columns, or
            file counts.
        rows: Number of rows (first dimension, length); None for files, folders,
            bytes and 0-d arrays.
    """

    digest: str
    kind: str
    schema: dict[str, Any]
    rows: int | None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


def start_digest(kind: str, header: dict[str, Any]) -> Hasher:
    """A hasher fed with an unambiguous header, so layouts never collide."""
    digest = hashlib.sha256(VERSION)
    digest.update(kind.encode() + b"\0")
    digest.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\0")
    return digest
