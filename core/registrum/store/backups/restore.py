"""`registrum restore`: a backup written by `registrum backup`, into an empty store.

Everything that can be checked is checked before the target changes: the manifest and the
sha256 of each file, that this version knows the backup's schema, that the target database
is empty and of the backup's kind. Blobs go first (each checked against its sha256), the
database last, in one step (SQLite's backup API; pg_restore in one transaction); then the
restored rows are counted against the manifest.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from registrum import __version__
from registrum.errors import InvalidArgument, SchemaMismatch, StoreError
from registrum.store.backups import databases as dbs
from registrum.store.backups.blob_copy import Report, copy_blobs
from registrum.store.backups.manifest import ANCHORS, BLOB_DIR, Manifest, blob_list, read
from registrum.store.backups.snapshot import audit_key_id
from registrum.store.db import head_revision, known_revision
from registrum.store.governance.anchors import Seal, audit_dir, store_id
from registrum.store.locations import is_object_store, shown, sqlite_path


@dataclass(frozen=True)
class Restored:
    """What a restore did: the manifest it followed, whether the signed anchors were put
    beside the audit key (only under the key that signed them), and whether the restored
    schema is older than this version's (then `registrum db upgrade` is the next step)."""

    manifest: Manifest
    anchors_installed: bool
    needs_upgrade: bool


def restore(
    folder: Path, url: str, blobs: str | Path, *, link: bool = True, report: Report
) -> Restored:
    """Restores the backup in `folder` into the empty store at `url`, blobs into `blobs`."""
    manifest = read(folder)
    target = make_url(url)
    _check_schema(manifest)
    _check_kind(manifest, target)
    _check_empty(target)
    _restore_blobs(folder, manifest, blobs, link=link, report=report)
    report(f"database: restoring {manifest.database_file} into {shown(target)}")
    _restore_database(folder / manifest.database_file, target)
    _check_restored(manifest, target)
    installed = _install_anchors(folder, manifest, target, report)
    revision = manifest.schema_revision
    return Restored(manifest, installed, revision is not None and revision != head_revision())


def _check_schema(manifest: Manifest) -> None:
    revision = manifest.schema_revision
    if revision is not None and not known_revision(revision):
        raise SchemaMismatch(
            f"the backup's schema revision {revision} is newer than Registrum {__version__} "
            f"knows (its newest is {head_revision()}): the backup was written by Registrum "
            f"{manifest.registrum_version}; restore it with that version or newer "
            f'(pip install "registrum>={manifest.registrum_version}")',
            revision=revision,
            head=head_revision(),
        )


def _check_kind(manifest: Manifest, target: URL) -> None:
    kind = target.get_backend_name()
    if kind != manifest.store_kind:
        example = (
            "sqlite:///path.db"
            if manifest.store_kind == "sqlite"
            else ("postgresql://user@host/db")
        )
        raise InvalidArgument(
            f"the backup holds a {manifest.store_kind} database and {shown(target)} is "
            f"{kind}: restore it into a {manifest.store_kind} store ({example})"
        )


def _check_empty(target: URL) -> None:
    path = sqlite_path(target)
    if target.get_backend_name() == "sqlite":
        if path is None:
            raise InvalidArgument("a backup cannot be restored into an in-memory database")
        tables = dbs.sqlite_tables(path)
    else:
        tables = dbs.postgres_tables(target)
    if tables:
        shown_tables = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise InvalidArgument(
            f"the target store {shown(target)} is not empty (it has {len(tables)} table(s): "
            f"{shown_tables}); a restore goes into an empty store, so that nothing there is "
            "overwritten or mixed: name a new SQLite file, or a new empty PostgreSQL "
            "database (createdb NAME)"
        )


def _restore_blobs(
    folder: Path, manifest: Manifest, blobs: str | Path, *, link: bool, report: Report
) -> None:
    if not manifest.blobs_included:
        report(
            f"blobs: not in this backup (the store kept them in {manifest.blobs_location}); "
            "serve the restored store with that bucket (--blobs), restored to the backup's "
            "time through its object versions if needed (see docs/backups.md)"
        )
        return
    if is_object_store(blobs):
        raise InvalidArgument(
            f"this backup holds its blobs in a folder, and {blobs} is a bucket: restore them "
            "into a folder (--blobs PATH), then copy them to the bucket if needed"
        )
    done = copy_blobs(
        blob_list(folder),
        folder / BLOB_DIR,
        Path(blobs),
        link=link,
        verify=True,
        report=report,
        what="blobs",
        total=manifest.blob_count,
        total_bytes=manifest.blob_bytes,
    )
    lost = [s for s in done.missing if s not in manifest.missing_blobs]
    if lost or done.damaged:
        first = (lost or done.damaged)[0]
        raise StoreError(
            f"the backup in {folder} is damaged: {len(lost)} blob(s) missing and "
            f"{len(done.damaged)} with content that does not match its sha256 (first: {first}); "
            "the database was not restored: restore another backup"
        )


def _restore_database(dump: Path, target: URL) -> None:
    path = sqlite_path(target)
    if path is not None:
        try:
            dbs.restore_sqlite(dump, path)
        except BaseException:
            if not dbs.sqlite_tables(path):
                _remove_sqlite(path)
            raise
        return
    dbs.restore_postgres(dump, target)


def _remove_sqlite(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


def _check_restored(manifest: Manifest, target: URL) -> None:
    """Counts the restored rows against the manifest: a restore that lost rows is an error,
    never a silent success."""
    path = sqlite_path(target)
    if path is not None:
        with dbs.sqlite_connection(path) as conn:
            info = dbs.read_info(conn)
    else:
        with dbs.postgres_connection(target) as conn:
            info = dbs.read_info(conn)
    wrong = {
        name: (count, info.counts.get(name))
        for name, count in manifest.counts.items()
        if info.counts.get(name) != count
    }
    if wrong or info.audit_head != manifest.audit_head or info.revision != manifest.schema_revision:
        raise StoreError(
            f"the restored store at {shown(target)} does not hold what the backup recorded "
            f"(rows: {wrong}, audit head: {info.audit_head} vs {manifest.audit_head}, "
            f"revision: {info.revision} vs {manifest.schema_revision})"
        )


def _install_anchors(folder: Path, manifest: Manifest, target: URL, report: Report) -> bool:
    """Puts the backup's signed anchors beside the audit key for the restored store, so that
    `registrum audit verify` checks the restored chain against them; only where this audit
    key is the one that signed them (another key would call them forged)."""
    source = folder / ANCHORS
    if not source.is_file():
        return False
    seal = Seal(audit_dir(), store_id(target))
    here = audit_key_id(target)
    if manifest.audit_key_id is None or here != manifest.audit_key_id:
        report(
            f"audit: the backup's signed anchors were made with audit key "
            f"{manifest.audit_key_id or '(unknown)'}, and the key here is {here or '(none)'}: "
            "they were not installed. Bring the original key (REGISTRUM_AUDIT_KEY, or the "
            f"audit.key file in REGISTRUM_AUDIT_DIR), then run: registrum audit verify "
            f"--store {shown(target)} --anchor {source}"
        )
        return False
    seal.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if seal.path.exists():
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        kept = seal.path.with_name(f"{seal.path.name}.before-restore-{stamp}")
        os.replace(seal.path, kept)
        report(f"audit: anchors recorded for an earlier store at this address were moved to {kept}")
    fd = os.open(seal.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(source.read_bytes())
        out.flush()
        os.fsync(out.fileno())
    return True
