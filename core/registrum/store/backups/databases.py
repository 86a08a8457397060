"""Consistent snapshots of the two databases, and restoring them into an empty one.

SQLite: the online backup API copies the file in one step, inside one read transaction, so
the copy is the database at one instant while writers go on (WAL mode lets them). PostgreSQL:
a repeatable-read transaction exports its snapshot, reads what the manifest needs inside it,
and `pg_dump --snapshot` dumps that same instant; `pg_restore --single-transaction` restores
all of it or nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from registrum.errors import InvalidArgument, StoreError, StoreUnavailable
from registrum.store.locations import shown

# Rows a manifest counts, table by table, and checks again after a restore.
COUNTED = (
    "projects",
    "runs",
    "registered_models",
    "model_versions",
    "aliases",
    "artifacts",
    "artifact_files",
    "blobs",
    "audit_events",
    "users",
)
PG_TOOLS_HINT = (
    "install the PostgreSQL client tools, of the server's major version or newer "
    "(Debian, Ubuntu: apt-get install postgresql-client; Red Hat: dnf install postgresql; "
    "macOS: brew install libpq), or put their folder on PATH"
)


@dataclass(frozen=True)
class SnapshotInfo:
    """What the manifest records of the database at the snapshot."""

    revision: str | None
    counts: dict[str, int]
    audit_head: tuple[int, str] | None


def read_info(conn: Connection) -> SnapshotInfo:
    """Revision, row counts and the audit chain's head, read inside the snapshot."""
    tables = set(inspect(conn).get_table_names())
    revision = None
    if "alembic_version" in tables:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    counts = {
        name: int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
        for name in COUNTED
        if name in tables
    }
    if "metric_chunks" in tables:
        points = conn.execute(text("SELECT coalesce(sum(points), 0) FROM metric_chunks"))
        counts["metric_points"] = int(points.scalar_one())
    head = None
    if "audit_head" in tables:
        row = conn.execute(text("SELECT last_id, last_hash FROM audit_head WHERE id = 1")).first()
        head = (int(row[0]), str(row[1])) if row is not None else None
    return SnapshotInfo(revision=revision, counts=counts, audit_head=head)


def blob_rows(conn: Connection) -> Iterator[tuple[str, int]]:
    """Every blob the snapshot lists, `(sha256, size)`, in sha256 order, streamed."""
    if "blobs" not in inspect(conn).get_table_names():
        return
    result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
        text("SELECT sha256, size FROM blobs ORDER BY sha256")
    )
    for sha, size in result:
        yield str(sha), int(size)


# -- SQLite -----------------------------------------------------------------------------


def snapshot_sqlite(database: Path, out: Path) -> None:
    """Copies the live database file `database` into `out` with the online backup API, in
    one step: a stepwise copy restarts whenever another connection writes, and may never
    finish under a busy server. The copy is left in rollback-journal mode, one file."""
    if not database.is_file():
        raise InvalidArgument(f"there is no SQLite database at {database}")
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=60)
    try:
        target = sqlite3.connect(out)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        source.close()


@contextlib.contextmanager
def sqlite_connection(path: Path) -> Iterator[Connection]:
    """A read connection to a SQLite file (a snapshot), through SQLAlchemy."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def sqlite_tables(path: Path) -> list[str]:
    """The tables of a SQLite file; none for a file that does not exist or is empty."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError as exc:
        raise InvalidArgument(f"{path} is not a SQLite database ({exc})") from None
    finally:
        conn.close()
    return sorted(str(r[0]) for r in rows if not str(r[0]).startswith("sqlite_"))


def restore_sqlite(snapshot: Path, database: Path) -> None:
    """Writes the snapshot into `database` (new, or empty) with the backup API, then turns on
    WAL mode as the store runs it."""
    database.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{snapshot}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(database, timeout=60)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
    finally:
        source.close()


# -- PostgreSQL -------------------------------------------------------------------------


def pg_tool(name: str) -> str:
    """The path of `pg_dump` or `pg_restore`; StoreError with what to install when absent."""
    found = shutil.which(name)
    if found is None:
        raise StoreError(
            f"{name} is not on PATH, and PostgreSQL stores are backed up with it: {PG_TOOLS_HINT}"
        )
    return found


def libpq_target(url: URL) -> tuple[str, dict[str, str]]:
    """The libpq connection URI of `url` without its password, and the environment that
    carries the password (PGPASSWORD): never on a command line, where `ps` shows it."""
    plain = url._replace(drivername="postgresql", password=None)
    uri = plain.render_as_string(hide_password=False)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return uri, env


@contextlib.contextmanager
def postgres_snapshot(url: URL) -> Iterator[tuple[Connection, str]]:
    """A repeatable-read transaction on the database and its exported snapshot id; the
    snapshot lives while the block runs (pg_dump --snapshot imports it)."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                yield conn, str(snapshot)
    except DBAPIError as exc:
        raise StoreUnavailable(f"cannot read the database at {shown(url)}: {exc.orig}") from None
    finally:
        engine.dispose()


def dump_postgres(url: URL, snapshot: str, out: Path) -> None:
    """`pg_dump` of the database at `snapshot`, in the custom format pg_restore reads."""
    uri, env = libpq_target(url)
    command = [pg_tool("pg_dump"), "--format=custom", f"--file={out}", f"--snapshot={snapshot}"]
    command += ["--no-password", f"--dbname={uri}"]
    _run(command, env, "pg_dump")


def postgres_tables(url: URL) -> list[str]:
    """The tables of the target database outside PostgreSQL's own schemas."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                    "ORDER BY 1"
                )
            ).scalars()
            return [str(r) for r in rows]
    except DBAPIError as exc:
        raise StoreUnavailable(
            f"cannot reach the target database {shown(url)}: {exc.orig} (a restore goes into "
            "an existing empty database: create it first, e.g. createdb NAME)"
        ) from None
    finally:
        engine.dispose()


def restore_postgres(dump: Path, url: URL) -> None:
    """`pg_restore` of a dump into the empty database, in one transaction: all or nothing.
    Ownership and grants are left out, so the restoring user owns what it restores."""
    uri, env = libpq_target(url)
    command = [pg_tool("pg_restore"), "--single-transaction", "--exit-on-error"]
    command += ["--no-owner", "--no-privileges", "--no-password", f"--dbname={uri}", str(dump)]
    _run(command, env, "pg_restore")


@contextlib.contextmanager
def postgres_connection(url: URL) -> Iterator[Connection]:
    """A connection to the restored database, to count what it holds."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _run(command: list[str], env: dict[str, Any], name: str) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise StoreError(f"{name} failed (exit {done.returncode}): " + " | ".join(detail[-5:]))
