"""Which server process leads: the one that runs the background work meant to run once.

On PostgreSQL the leader is the process holding a session-level advisory lock
(`pg_try_advisory_lock`) on a connection of its own, outside the request pool. The others try
to take it every `retry_every` seconds. The lock lives exactly as long as the holder's
database session: when the holder dies, its socket closes, PostgreSQL ends the session and
frees the lock, and another replica takes it at its next try. A holder that is cut off
without its socket closing (a host that vanished) is detected by the TCP keepalives this
connection asks the server for, within about `KEEPALIVE_IDLE + KEEPALIVE_INTERVAL *
KEEPALIVE_COUNT` seconds.

The holder checks its session every `retry_every` seconds and steps down as soon as a check
fails; between the loss and that check it may still believe it leads. Leader-only work is
therefore still written to be idempotent per round (see `jobs.py`): leadership keeps it from
being done N times over, not from being done twice in one unlucky second.

SQLite serves one machine: every process leads, as before replicas existed, and the jobs'
own idempotence keeps processes on one file from doing one piece of work twice.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

log = logging.getLogger("registrum.server")

# The advisory lock's key: any constant other applications are unlikely to pick (advisory
# locks are per database, so stores on one PostgreSQL server do not share it).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"registrum leader").digest()[:8], "big", signed=True)
RETRY_EVERY = 1.0
# The server side of the lock connection probes a silent client after this many seconds...
KEEPALIVE_IDLE = 5
KEEPALIVE_INTERVAL = 2
KEEPALIVE_COUNT = 3
CONNECT_TIMEOUT = 5


class Leadership:
    """Whether this process leads, kept current by a thread of its own.

    Args:
        engine: the store's engine; on PostgreSQL the lock gets its own connection to the
            same database, anything else leads from the start.
        retry_every: seconds between tries to take the lock, and between checks that it is
            still held.
    """

    def __init__(self, engine: Engine, *, retry_every: float = RETRY_EVERY) -> None:
        self.elected = engine.dialect.name == "postgresql"
        self.retry_every = retry_every
        self._url = engine.url
        self._lock_engine: Engine | None = None
        self._conn: Connection | None = None
        self._since: float | None = None if self.elected else time.time()
        self._changes = 0
        self._state = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="registrum-leader", daemon=True)

    # -- what others ask --------------------------------------------------------

    @property
    def held(self) -> bool:
        """Whether this process leads now."""
        return self.term() is not None

    def term(self) -> float | None:
        """When this process took the lead (its clock), None while it does not lead: a
        changed value is a new term, in which the work of a previous leader may be taken
        over."""
        with self._state:
            return self._since

    @property
    def changes(self) -> int:
        """How often this process took or lost the lead."""
        with self._state:
            return self._changes

    # -- the thread -------------------------------------------------------------

    def start(self) -> None:
        """Starts contending (PostgreSQL); nothing to do where every process leads."""
        if self.elected:
            self._thread.start()

    def stop(self) -> None:
        """Gives the lead up at once (another replica takes it at its next try)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._drop(release=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception as exc:  # the database is away: not the leader until it is back
                if self.held:
                    log.warning("gave up the leader role: its database session failed: %s", exc)
                self._drop(release=False)
            self._stopping.wait(self.retry_every)

    def _step(self) -> None:
        conn = self._connection()
        if self.held:
            conn.execute(text("SELECT 1"))  # the session, and so the lock, is still ours
            return
        taken = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY})
        if taken.scalar_one():
            self._set(time.time())
            log.info("this server now leads (runs webhook delivery and the periodic jobs)")

    def _connection(self) -> Connection:
        if self._conn is None:
            if self._lock_engine is None:
                self._lock_engine = _lock_engine(self._url)
            conn = self._lock_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                for setting, value in (
                    ("tcp_keepalives_idle", KEEPALIVE_IDLE),
                    ("tcp_keepalives_interval", KEEPALIVE_INTERVAL),
                    ("tcp_keepalives_count", KEEPALIVE_COUNT),
                ):
                    conn.execute(text(f"SET {setting} = {int(value)}"))
                conn.execute(text("SET application_name = 'registrum leader'"))
            except BaseException:  # a session that failed half set up is not kept open
                conn.invalidate()
                raise
            self._conn = conn
        return self._conn

    def _set(self, since: float | None) -> None:
        with self._state:
            if (since is None) != (self._since is None):
                self._changes += 1
            self._since = since

    def _drop(self, *, release: bool) -> None:
        """Closes the lock connection (which frees the lock); not the leader after it."""
        if not self.elected:
            return
        conn, self._conn = self._conn, None
        self._set(None)
        if conn is not None:
            try:
                if release:
                    conn.execute(text("SELECT pg_advisory_unlock_all()"))
                conn.close()
            except Exception:  # a session already gone has freed its lock
                conn.invalidate()
        if release and self._lock_engine is not None:
            self._lock_engine.dispose()


def _lock_engine(url: Any) -> Engine:
    """Connections outside the request pool: a pooled connection returned with the lock
    would hand the lead to whatever request takes it next."""
    return create_engine(
        url,
        poolclass=NullPool,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT,
            "keepalives": 1,
            "keepalives_idle": KEEPALIVE_IDLE,
            "keepalives_interval": KEEPALIVE_INTERVAL,
            "keepalives_count": KEEPALIVE_COUNT,
        },
    )
