"""Whether the two things a store stands on answer: its database and its blob backend.

Each probe returns None when the part answers, else why not. The reasons name no address
and no credential: they reach a log, and a load balancer only needs to know which part
failed. Probes change nothing (the blob probe asks for a blob that cannot exist).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from registrum.store.blobs import BlobStore, LocalBlobStore

# No content hashes to this: asking for it reaches the backend and finds nothing.
PROBE_SHA256 = "0" * 64


def database_problem(engine: Engine) -> str | None:
    """None when the database runs a query; else the driver's reason."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(getattr(exc, 'orig', None) or exc).strip()}"
    return None


def blobs_problem(blobs: BlobStore) -> str | None:
    """None when the blob backend answers; else why not. A backend may define `check()`
    (raising when it cannot be reached); otherwise it is asked for a blob it cannot hold."""
    try:
        check = getattr(blobs, "check", None)
        if callable(check):
            check()
        elif isinstance(blobs, LocalBlobStore):
            return _folder_problem(blobs.root)
        else:
            blobs.exists(PROBE_SHA256)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _folder_problem(root: Path) -> str | None:
    """A blob folder answers when it (or, before the first blob, the folder it will be made
    in) is a folder this process may write to; `statvfs` reaches the file system itself, so a
    network mount that went away fails here rather than on the next upload."""
    folder = root
    while not folder.exists():
        if folder.parent == folder:
            return "no folder on the blob folder's path exists"
        folder = folder.parent
    if not folder.is_dir():
        return f"{'the blob folder' if folder == root else 'a parent of the blob folder'} is a file"
    os.statvfs(folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        return "the blob folder is not writable by the server's user"
    return None
