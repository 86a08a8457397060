"""Engines for the two databases, and the migrations that open a store.

SQLite runs in WAL mode with a busy timeout, and every transaction that may
write starts with `BEGIN IMMEDIATE`: a deferred transaction that reads, then
writes, fails at once under a concurrent writer instead of waiting.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url

from registrum.errors import InvalidArgument

_MIGRATIONS = Path(__file__).parent / "migrations"
# Execution option marking a connection that only reads: SQLite then begins a
# deferred transaction, which does not wait for (or block) writers.
READONLY = "registrum_readonly"
_migrate_lock = threading.Lock()


def make_engine(url: str) -> Engine:
    """An engine for a `sqlite:///...` or `postgresql+psycopg://...` URL."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InvalidArgument(f"store URL {url!r} is not a database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_size=10, max_overflow=20, pool_pre_ping=True)
    raise InvalidArgument(
        f"store URL {url!r} names an unsupported database {backend!r}: "
        "use sqlite:///path.db or postgresql+psycopg://user@host/db"
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=60000")
        _switch_to_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get(READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _switch_to_wal(cur: Any) -> None:
    """Turns on WAL mode. Connections opening a new file at once can deadlock on the
    lock this needs, and SQLite answers "locked" at once instead of waiting: retry."""
    import sqlite3

    for attempt in range(100):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.02 + random.random() * 0.05)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def migrate(engine: Engine) -> None:
    """Brings the database to the newest schema; a no-op when it is current.

    Concurrent openers serialise on a lock (SQLite's write lock, PostgreSQL's
    advisory lock), so the first migrates and the rest find it done.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(_MIGRATIONS))
    head = script.get_current_head()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            conn.rollback()
            return
        conn.rollback()
    with _migrate_lock, engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7403911)"))
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
        _upgrade(conn, "head")


def _upgrade(conn: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def default_home() -> Path:
    return Path(os.environ.get("REGISTRUM_HOME") or Path.home() / ".registrum").expanduser()
