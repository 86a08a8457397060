"""`registrum backup`: a consistent snapshot of a store into a new folder.

The database first, then the blobs it lists: a blob is written before any row names it, so
every blob the snapshot needs is already there when the copy starts, and blobs written
after the snapshot are not needed by it. The recorded audit anchors are read before the
snapshot, so none of them anchors an event the snapshot does not hold.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection
from sqlalchemy.engine import URL, make_url

from registrum import __version__
from registrum.errors import InvalidArgument
from registrum.store.backups import databases as dbs
from registrum.store.backups.blob_copy import Report, copy_blobs
from registrum.store.backups.manifest import (
    ANCHORS,
    BLOB_DIR,
    BLOB_LIST,
    POSTGRES_FILE,
    SQLITE_FILE,
    Manifest,
    blob_list,
    sha256_file,
    write,
)
from registrum.store.governance.anchors import KEY_ENV, Seal, audit_dir, store_id
from registrum.store.locations import is_object_store, shown, sqlite_path


def backup(
    folder: Path, url: str, blobs: str | Path, *, link: bool = True, report: Report
) -> Manifest:
    """Writes a backup of the store at `url` (blobs at `blobs`, a folder or a bucket URL)
    into `folder`, which must not exist yet or be empty; returns its manifest."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        dbs.pg_tool("pg_dump")  # the missing tool is the first thing said, before any write
    created = _new_folder(folder)
    try:
        return _backup(folder, parsed, blobs, link=link, report=report)
    except BaseException:
        _remove_partial(folder, created=created)
        raise


def _backup(
    folder: Path, parsed: URL, blobs: str | Path, *, link: bool, report: Report
) -> Manifest:
    anchors = _copy_anchors(parsed, folder)
    with _snapshot(parsed, folder, report) as (conn, database_file):
        info = dbs.read_info(conn)
        count, total = _write_blob_list(conn, folder / BLOB_LIST)
    if anchors is not None and info.audit_head is not None:
        _keep_anchors_up_to(anchors, info.audit_head[0])
    files = {database_file: sha256_file(folder / database_file)}
    files[BLOB_LIST] = sha256_file(folder / BLOB_LIST)
    if anchors is not None:
        files[ANCHORS] = sha256_file(anchors)
    missing: list[str] = []
    included = not is_object_store(blobs)
    if included:
        missing = _copy_blobs(
            folder, Path(blobs), link=link, report=report, count=count, total=total
        )
    else:
        report(
            f"blobs are in {blobs}, not copied: the bucket's versioning and lifecycle rules "
            "keep them (see docs/backups.md); this backup holds the database"
        )
    manifest = Manifest(
        registrum_version=__version__,
        created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        schema_revision=info.revision,
        store_kind=parsed.get_backend_name(),
        store_url=shown(parsed),
        blobs_kind="folder" if included else str(blobs).split("://", 1)[0],
        blobs_location=str(blobs),
        blobs_included=included,
        blob_count=count,
        blob_bytes=total,
        missing_blobs=tuple(missing),
        counts=info.counts,
        audit_head=info.audit_head,
        audit_key_id=audit_key_id(parsed),
        files=files,
    )
    write(folder, manifest)
    return manifest


def _remove_partial(folder: Path, *, created: bool) -> None:
    """Removes what a failed backup wrote (the folder was new or empty), so that no half
    backup is left to be mistaken for one; the folder too where the backup made it."""
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _new_folder(folder: Path) -> bool:
    """Checks that `folder` is new or empty and makes it; True when it made it."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InvalidArgument(
            f"{folder} exists and is not an empty folder: a backup goes into a new folder "
            "(one per backup, e.g. named by the date)"
        )
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    return created


@contextlib.contextmanager
def _snapshot(url: URL, folder: Path, report: Report) -> Iterator[tuple[Connection, str]]:
    """The database copied into `folder`, and a connection that reads that same instant."""
    database = sqlite_path(url)
    if url.get_backend_name() == "sqlite":
        if database is None:
            raise InvalidArgument("an in-memory SQLite database cannot be backed up")
        report(f"database: copying {database} (SQLite online backup)")
        dbs.snapshot_sqlite(database, folder / SQLITE_FILE)
        with dbs.sqlite_connection(folder / SQLITE_FILE) as conn:
            yield conn, SQLITE_FILE
        _done(report, folder / SQLITE_FILE)
        return
    with dbs.postgres_snapshot(url) as (conn, snapshot):
        report(f"database: pg_dump of {shown(url)} at snapshot {snapshot}")
        dbs.dump_postgres(url, snapshot, folder / POSTGRES_FILE)
        yield conn, POSTGRES_FILE
    _done(report, folder / POSTGRES_FILE)


def _done(report: Report, path: Path) -> None:
    report(f"database: {path.name}, {path.stat().st_size / 2**20:.1f} MiB")


def _write_blob_list(conn: Connection, path: Path) -> tuple[int, int]:
    count = total = 0
    with path.open("w") as out:
        for sha, size in dbs.blob_rows(conn):
            out.write(f"{sha} {size}\n")
            count += 1
            total += size
    return count, total


def _copy_blobs(
    folder: Path, source: Path, *, link: bool, report: Report, count: int, total: int
) -> list[str]:
    target = folder / BLOB_DIR
    done = copy_blobs(
        blob_list(folder),
        source,
        target,
        link=link,
        verify=False,
        report=report,
        what="blobs",
        total=count,
        total_bytes=total,
    )
    with contextlib.suppress(OSError):
        (target / "tmp").rmdir()
    if done.missing:
        report(
            f"warning: {len(done.missing)} blob(s) the database lists are not in {source} "
            f"(first: {done.missing[0]}); the manifest names them"
        )
    return done.missing


def _copy_anchors(url: URL, folder: Path) -> Path | None:
    """The store's recorded audit anchors, copied into the backup (they are signed, not
    secret); None when there are none."""
    recorded = Seal(audit_dir(), store_id(url)).path
    if not recorded.is_file():
        return None
    copy = folder / ANCHORS
    copy.write_bytes(recorded.read_bytes())
    return copy


def _keep_anchors_up_to(path: Path, event: int) -> None:
    """Drops anchors of events after the snapshot's head (recorded while it was taken)."""
    kept = []
    for line in path.read_text().splitlines():
        try:
            anchored = int(json.loads(line)["event"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash: `audit verify` skips it too
        if anchored <= event:
            kept.append(line)
    path.write_text("".join(f"{line}\n" for line in kept))


def audit_key_id(url: URL) -> str | None:
    """The id of the audit key here for the store at `url`, where there is one (the variable,
    or the key file); None rather than making a key. The key itself never goes into a
    backup: only its id, so a restore can tell whether the key at hand signed the anchors."""
    seal = Seal(audit_dir(), store_id(url))
    if os.environ.get(KEY_ENV) is None and not (seal.folder / "audit.key").is_file():
        return None
    return seal.key_id()
