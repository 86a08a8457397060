"""Where a maintenance command (backup, restore, db upgrade) finds a store's database and
blobs: the same defaults as `open_store`, without opening (or creating, or upgrading) it."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from registrum.client.settings import store_url
from registrum.errors import InvalidArgument
from registrum.store.db import default_home

BLOBS_ENV = "REGISTRUM_BLOBS"


def database_url(store: str | None, *, command: str) -> str:
    """The database URL `command` acts on: `store`, else REGISTRUM_URL, else the embedded
    SQLite file under REGISTRUM_HOME. A server URL is refused: these commands work on the
    database itself, which a server only fronts."""
    url = store or os.environ.get("REGISTRUM_URL") or f"sqlite:///{default_home() / 'registrum.db'}"
    if url.split("://", 1)[0].lower() in ("http", "https"):
        raise InvalidArgument(
            f"{command} works on the database, not through a server ({url} is a server URL): "
            "pass the database URL the server uses, --store sqlite:///path.db or "
            "--store postgresql://user@host/db"
        )
    return store_url(url)


def blob_location(url: str, blobs: str | None) -> str | Path:
    """The store's blobs: `blobs` (a folder, or an object-store URL such as s3://bucket/prefix),
    else REGISTRUM_BLOBS, else `blobs/` beside the SQLite file, or under REGISTRUM_HOME."""
    given = blobs or os.environ.get(BLOBS_ENV)
    if given:
        return given if is_object_store(given) else Path(given).expanduser()
    parsed = make_url(url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if database and database != ":memory:":
        return Path(database).expanduser().parent / "blobs"
    return default_home() / "blobs"


def is_object_store(location: str | Path) -> bool:
    """Whether `location` names a bucket (s3://, gs://, ...) rather than a folder."""
    return isinstance(location, str) and "://" in location


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL; None for another database, or an in-memory one."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database)).expanduser()


def shown(url: URL) -> str:
    """A URL as messages and manifests show it: without its password."""
    return url._replace(password=None).render_as_string(hide_password=False)
