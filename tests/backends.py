"""The test backends: fresh stores on SQLite, PostgreSQL and both over a real HTTP server.

`BACKENDS` maps a backend name to a factory: given a temporary folder, it
returns a context manager that yields an object with the methods of
`registrum.store.Store` and cleans up on exit. Test modules import from here
(not from `conftest`, a name that several folders' conftest files share).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from registrum.store.service import Store

POSTGRES_ADMIN_URL = os.environ.get(
    "REGISTRUM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


class PostgresServer:
    """The test PostgreSQL server: a fresh database per test, on one admin connection pool.

    Reachability is checked once per session. Migrated databases are copies of
    a template migrated once per session, faster than migrating each one.
    Databases are dropped in batches, all of a batch at once: a drop waits for
    a checkpoint, and concurrent drops share one.
    """

    DROP_BATCH = 16

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._engine: Engine | None = None
        self._unreachable: str | None = None
        self._template: str | None = None
        self._prefix = f"registrum_test_{os.getpid()}"
        self._unused: list[str] = []

    def require(self) -> None:
        """Skips the calling test when the server cannot be reached."""
        if self._engine is None and self._unreachable is None:
            from sqlalchemy import create_engine, text

            engine = create_engine(
                self.admin_url,
                isolation_level="AUTOCOMMIT",
                pool_size=self.DROP_BATCH,
                connect_args={"connect_timeout": 5},
            )
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except Exception as exc:
                engine.dispose()
                self._unreachable = (
                    f"PostgreSQL at {self.admin_url} is unreachable "
                    "(set REGISTRUM_TEST_POSTGRES to another admin URL): "
                    + str(getattr(exc, "orig", exc)).splitlines()[0]
                )
            else:
                self._engine = engine
        if self._unreachable is not None:
            pytest.skip(self._unreachable)

    def url(self, database: str) -> str:
        from sqlalchemy import make_url

        return make_url(self.admin_url).set(database=database).render_as_string(False)

    def _execute(self, sql: str) -> None:
        from sqlalchemy import text

        assert self._engine is not None
        with self._engine.connect() as conn:
            conn.execute(text(sql))

    @contextmanager
    def database(self, *, migrated: bool = False) -> Iterator[str]:
        """A new database's URL: empty, or with the current schema (`migrated`)."""
        self.require()
        name = f"{self._prefix}_{uuid.uuid4().hex[:12]}"
        template = f' TEMPLATE "{self._migrated_template()}"' if migrated else ""
        self._execute(f'CREATE DATABASE "{name}"{template}')
        try:
            yield self.url(name)
        finally:
            self._unused.append(name)
            if len(self._unused) >= self.DROP_BATCH:
                self._drop_unused()

    def _drop_unused(self) -> None:
        names, self._unused = self._unused, []
        if names:
            with ThreadPoolExecutor(max_workers=len(names)) as pool:
                drops = [f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names]
                list(pool.map(self._execute, drops))

    def _migrated_template(self) -> str:
        if self._template is None:
            from sqlalchemy import create_engine, text

            from registrum.store.service import open_store

            name = f"{self._prefix}_template"
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self._execute(f'CREATE DATABASE "{name}"')
            with tempfile.TemporaryDirectory() as blobs:
                open_store(self.url(name), blobs=blobs).close()
            # Frozen rows carry their hint bits, so copies need not rewrite them:
            # without this the first copies take ~0.1 s each instead of ~0.02 s.
            engine = create_engine(self.url(name), isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as conn:
                    conn.execute(text("VACUUM (FREEZE)"))
            finally:
                engine.dispose()
            self._template = name
        return self._template

    def close(self) -> None:
        if self._engine is not None:
            self._drop_unused()
            if self._template is not None:
                self._execute(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
                self._template = None
            self._engine.dispose()
            self._engine = None


class SQLiteTemplate:
    """A database file migrated once per session; each store starts from a copy of it."""

    def __init__(self) -> None:
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def copy_to(self, path: Path) -> None:
        if self._folder is None:
            from registrum.store.service import open_store

            self._folder = tempfile.TemporaryDirectory(prefix="registrum-template-")
            folder = Path(self._folder.name)
            # Closing the only connection checkpoints the WAL into the file.
            open_store(f"sqlite:///{folder / 'template.db'}", blobs=folder / "blobs").close()
        shutil.copyfile(Path(self._folder.name) / "template.db", path)

    def close(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


POSTGRES = PostgresServer(POSTGRES_ADMIN_URL)
SQLITE_TEMPLATE = SQLiteTemplate()


@contextmanager
def sqlite_store(tmp: Path) -> Iterator[Store]:
    from registrum.store.service import open_store

    SQLITE_TEMPLATE.copy_to(tmp / "r.db")
    store = open_store(f"sqlite:///{tmp}/r.db", blobs=tmp / "blobs")
    try:
        yield store
    finally:
        store.close()


@contextmanager
def postgres_store(tmp: Path) -> Iterator[Store]:
    from registrum.store.service import open_store

    with POSTGRES.database(migrated=True) as url:
        store = open_store(url, blobs=tmp / "blobs")
        try:
            yield store
        finally:
            store.close()


class HttpServer:
    """One real server per session on a loopback port; each test swaps in its own fresh store,
    so the HTTP backends cost no more per test than the embedded ones."""

    def __init__(self) -> None:
        self._stack: ExitStack | None = None
        self.app: Any = None
        self.url = ""

    def ensure(self) -> tuple[Any, str]:
        if self._stack is None:
            from registrum.server import Settings, create_app
            from serving import serve_app

            stack = ExitStack()
            folder = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="registrum-http-"))
            )
            self.app = create_app(
                Settings(store_url=f"sqlite:///{folder}/boot.db", blobs=folder / "blobs")
            )
            self.url = stack.enter_context(serve_app(self.app))
            self._stack = stack
        return self.app, self.url

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


HTTP_SERVER = HttpServer()


def over_http(
    inner: Callable[[Path], AbstractContextManager[Any]],
) -> Callable[[Path], AbstractContextManager[Any]]:
    """A backend that serves `inner`'s store through the HTTP server and yields an HttpStore."""

    @contextmanager
    def factory(tmp: Path) -> Iterator[Any]:
        from registrum.client.http import HttpStore

        with inner(tmp) as store:
            app, url = HTTP_SERVER.ensure()
            previous, app.state.store = app.state.store, store
            client = HttpStore(url)
            try:
                yield client
            finally:
                client.close()
                app.state.store = previous

    return factory


BACKENDS: dict[str, Callable[[Path], AbstractContextManager[Any]]] = {
    "sqlite": sqlite_store,
    "postgres": postgres_store,
    "http-sqlite": over_http(sqlite_store),
    "http-postgres": over_http(postgres_store),
}


def backend_params(names: list[str]) -> list[Any]:
    """pytest params for backend names; those on PostgreSQL carry the `postgres` marker."""
    return [
        pytest.param(n, id=n, marks=[pytest.mark.postgres] if "postgres" in n else [])
        for n in names
    ]
