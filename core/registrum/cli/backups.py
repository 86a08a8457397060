"""`registrum backup DIR` and `registrum restore DIR --store URL`: a consistent snapshot of a
store (database, blobs, signed audit anchors) into a new folder, and a checked restore of one
into an empty store. docs/backups.md says what a backup holds and how to rehearse a restore."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from registrum.cli._common import leaf
from registrum.errors import InvalidArgument, StoreError


def _report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _backup(args: argparse.Namespace) -> int:
    from registrum.store.backups import backup
    from registrum.store.locations import blob_location, database_url

    url = database_url(args.store, command="registrum backup")
    blobs = blob_location(url, args.blobs)
    try:
        manifest = backup(Path(args.dir), url, blobs, link=not args.copy, report=_report)
    except OSError as exc:
        raise StoreError(f"the backup into {args.dir} failed: {exc}") from None
    counts = ", ".join(f"{n} {k}" for k, n in sorted(manifest.counts.items()))
    print(f"backup written to {args.dir}: schema {manifest.schema_revision}, {counts}")
    if manifest.missing_blobs:
        print(f"warning: {len(manifest.missing_blobs)} blob(s) were missing from the store")
        return 1
    return 0


def _restore(args: argparse.Namespace) -> int:
    from registrum.store.backups import restore
    from registrum.store.locations import blob_location, database_url

    if args.store is None:
        raise InvalidArgument(
            "restore needs --store URL: the empty store to restore into (a new SQLite file, "
            "sqlite:///path.db, or an empty PostgreSQL database, postgresql://user@host/db)"
        )
    url = database_url(args.store, command="registrum restore")
    blobs = blob_location(url, args.blobs)
    try:
        done = restore(Path(args.dir), url, blobs, link=not args.copy, report=_report)
    except OSError as exc:
        raise StoreError(f"the restore from {args.dir} failed: {exc}") from None
    shown = _without_password(url)
    print(f"restored {args.dir} into {shown}: schema {done.manifest.schema_revision}")
    if done.needs_upgrade:
        print(f"the schema is older than this version's: run registrum db upgrade --store {shown}")
    print(f"check it: registrum audit verify --store {shown}")
    return 0


def _without_password(url: str) -> str:
    from sqlalchemy import make_url

    from registrum.store.locations import shown

    return shown(make_url(url))


def add_commands(commands: Any) -> None:
    """Adds `backup` and `restore` to the `registrum` command."""
    backup = leaf(
        commands,
        "backup",
        "write a consistent snapshot of a store (database, blobs, audit anchors) into DIR",
        _backup,
    )
    backup.add_argument("dir", metavar="DIR", help="a new (or empty) folder for the backup")
    backup.add_argument(
        "--blobs",
        default=None,
        help="the store's blob folder, or its bucket URL (default: REGISTRUM_BLOBS, else "
        "blobs/ beside the SQLite file or under REGISTRUM_HOME); a bucket is not copied",
    )
    backup.add_argument(
        "--copy",
        action="store_true",
        help="copy every blob, never a hard link (by default blobs on the same file system "
        "as DIR are hard-linked: instant, but on the same disk)",
    )
    restore = leaf(
        commands,
        "restore",
        "restore a backup from DIR into an empty store (--store URL)",
        _restore,
    )
    restore.add_argument("dir", metavar="DIR", help="a folder written by registrum backup")
    restore.add_argument(
        "--blobs",
        default=None,
        help="the folder the blobs go into (default: REGISTRUM_BLOBS, else blobs/ beside the "
        "SQLite file or under REGISTRUM_HOME)",
    )
    restore.add_argument(
        "--copy",
        action="store_true",
        help="copy every blob, never a hard link from the backup folder",
    )
