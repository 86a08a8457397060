"""Engines for the two databases, and the migrations that open a store.

SQLite runs in WAL mode with a busy timeout, and every transaction that may
write starts with `BEGIN IMMEDIATE`: a deferred transaction that reads, then
writes, fails at once under a concurrent writer instead of waiting.
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from registrum.errors import InvalidArgument

_MIGRATIONS = Path(__file__).parent / "migrations"
# Execution option marking a connection that only reads: SQLite then begins a
# deferred transaction, which does not wait for (or block) writers.
READONLY = "registrum_readonly"
_migrate_lock = threading.Lock()
# Engines by URL, kept after their stores close, so that a process opening a store per run
# (the embedded client does) keeps the engine's compiled SQL, and for SQLite its idle
# connections: compiling the statements again for each run costs more than the run's
# writes. A PostgreSQL engine's connections close with its store.
_engines: OrderedDict[str, Engine] = OrderedDict()
_engines_lock = threading.Lock()
# The SQLite file each kept engine opened (its identity), to tell when it was replaced.
_files: weakref.WeakKeyDictionary[Engine, tuple[int, int]] = weakref.WeakKeyDictionary()
KEPT_ENGINES = 16


def make_engine(url: str) -> Engine:
    """An engine for a `sqlite:///...` or `postgresql+psycopg://...` URL: the one this
    process made before for the same URL, if any (an in-memory database gets its own, and a
    SQLite file replaced since gets a new one)."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            _engines.move_to_end(url)
    if engine is not None:
        if engine.dialect.name != "sqlite":
            return engine
        database = Path(str(engine.url.database)).expanduser()
        database.parent.mkdir(parents=True, exist_ok=True)
        opened = _files.get(engine)
        if opened is None or opened == _identity(engine):
            return engine
        engine.dispose()  # the file was deleted or replaced: its connections are stale
    engine = _new_engine(url)
    if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        return engine
    with _engines_lock:
        _engines[url] = engine
        while len(_engines) > KEPT_ENGINES:
            _, dropped = _engines.popitem(last=False)
            dropped.dispose()
    return engine


def release(engine: Engine) -> None:
    """What closing a store does to its engine: a kept SQLite engine keeps its idle
    connections for the next store of the same file; any other closes them."""
    with _engines_lock:
        kept = any(x is engine for x in _engines.values())
    if not (kept and engine.dialect.name == "sqlite"):
        engine.dispose()


def _identity(engine: Engine) -> tuple[int, int] | None:
    """The SQLite file's (device, inode): which file the engine's connections have open."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    try:
        stat = os.stat(Path(engine.url.database).expanduser())
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _new_engine(url: str) -> Engine:
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


def migrate(engine: Engine, *, upgrade: bool = True) -> str | None:
    """Brings the database to the newest schema; a no-op when it is current.

    Concurrent openers serialise on a lock (SQLite's write lock, PostgreSQL's
    advisory lock), so the first migrates and the rest find it done.

    Args:
        upgrade: whether a database at an older revision is upgraded; False refuses it
            (SchemaMismatch naming `registrum db upgrade`), so that upgrading existing data
            is a step an operator takes on purpose. An empty database is created either way.

    Returns:
        The revision found before upgrading (`EMPTY` for an empty database), or None when
        the database was current and nothing was done.

    Raises:
        SchemaMismatch: the database is at a revision this version does not know (a newer
            Registrum upgraded it), or older and `upgrade` is False.
    """
    from alembic.runtime.migration import MigrationContext

    head = _head()
    found: str | None = None
    if not _at(engine, head):
        _check_revision(engine, schema_revision(engine), upgrade=upgrade)
        with _migrate_lock, engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(7403911)"))
            current = MigrationContext.configure(conn).get_current_revision()
            if current != head:
                _check_revision(engine, current, upgrade=upgrade)
                _upgrade(conn, "head")
                found = current or EMPTY
    identity = _identity(engine)
    if identity is not None:
        _files[engine] = identity
    return found


# What `migrate` reports for a database that had no schema yet (alembic's name for it).
EMPTY = "base"


def schema_revision(engine: Engine) -> str | None:
    """The database's schema revision; None where it has none (an empty database)."""
    with engine.connect() as conn:
        try:
            revisions = conn.execute(_REVISION).scalars().all()
        except DBAPIError:
            return None
        conn.rollback()
    return revisions[0] if revisions else None


def head_revision() -> str:
    """The newest schema revision this version of Registrum knows."""
    head = _head()
    assert head is not None, "the package ships its migrations"
    return head


def known_revision(revision: str) -> bool:
    """Whether `revision` is one of the migrations that ship with this version."""
    return revision in _revisions()


def shown_url(engine: Engine) -> str:
    """The engine's URL as a user may see and type it again: without its password."""
    return engine.url._replace(password=None).render_as_string(hide_password=False)


def _check_revision(engine: Engine, current: str | None, *, upgrade: bool) -> None:
    """Refuses a revision this version cannot run `migrate` on (see `migrate`)."""
    from registrum import __version__
    from registrum.errors import SchemaMismatch

    where = shown_url(engine)
    if current is not None and not known_revision(current):
        raise SchemaMismatch(
            f"the database at {where} has schema revision {current}, which Registrum "
            f"{__version__} does not know (its newest is {head_revision()}): a newer Registrum "
            "upgraded it; run that version (pip install -U registrum)",
            revision=current,
            head=head_revision(),
        )
    if current is not None and not upgrade:
        raise SchemaMismatch(
            f"the database at {where} has schema revision {current}, older than this "
            f"version's {head_revision()}: upgrade it with `registrum db upgrade --store "
            f"{where}` (a backup first: `registrum backup DIR --store {where}`), then start "
            f"again; or start the server with --upgrade to upgrade it on start{_password(engine)}",
            revision=current,
            head=head_revision(),
        )


def _password(engine: Engine) -> str:
    """A hint where a command shown without the URL's password needs it."""
    if not engine.url.password:
        return ""
    return " (the password goes in PGPASSWORD or ~/.pgpass, or back into the URL)"


@functools.cache
def _revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(r.revision for r in ScriptDirectory(str(_MIGRATIONS)).walk_revisions())


# What alembic reads to tell the revision, as one statement the engine compiles once:
# alembic's own check makes a table object each time, which the engine's compiled SQL keeps.
_REVISION = text("SELECT version_num FROM alembic_version")


def _at(engine: Engine, head: str | None) -> bool:
    """Whether the database is at revision `head`; False where it has no revision table."""
    with engine.connect() as conn:
        try:
            revisions = conn.execute(_REVISION).scalars().all()
        except DBAPIError:  # no revision table yet; the connection rolls back as it closes
            return False
        conn.rollback()
    return revisions == [head]


@functools.cache
def _head() -> str | None:
    """The newest revision of the migrations that ship with this package (reading them
    compiles every migration script, so once per process)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(_MIGRATIONS)).get_current_head()


def _upgrade(conn: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def default_home() -> Path:
    return Path(os.environ.get("REGISTRUM_HOME") or Path.home() / ".registrum").expanduser()
