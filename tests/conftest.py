"""Shared fixtures: a fresh store per test on every backend, fresh database URLs, and
client targets (embedded or a real server) for client and integration tests.

The backends themselves are in `backends.py`. The `store` fixture runs each
test once per backend. A backend whose name contains "postgres" is marked
`postgres` and skipped, with the reason, when the server cannot be reached.
Under REGISTRUM_TEST_NO_SKIP=1 (`make test`, CI) every skip fails instead:
see `no_skip.py`, whose hooks are imported here.

SQLAlchemy and the store are imported only when a fixture needs them, so a
test can still check what `import registrum` loads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends import (
    BACKENDS,
    HTTP_SERVER,
    POSTGRES,
    SQLITE_TEMPLATE,
    PostgresServer,
    backend_params,
)
from no_skip import (  # noqa: F401 - hooks, found by name in this module
    pytest_configure,
    pytest_make_collect_report,
    pytest_runtest_makereport,
)
from targets import Target


@pytest.fixture(scope="session", autouse=True)
def _audit_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Test stores keep their audit key and signed anchors in a temporary folder, never in
    the user's ~/.registrum (a test about the folder itself sets REGISTRUM_AUDIT_DIR)."""
    previous = os.environ.get("REGISTRUM_AUDIT_DIR")
    os.environ["REGISTRUM_AUDIT_DIR"] = str(tmp_path_factory.mktemp("audit"))
    yield
    if previous is None:
        os.environ.pop("REGISTRUM_AUDIT_DIR", None)
    else:
        os.environ["REGISTRUM_AUDIT_DIR"] = previous


@pytest.fixture(scope="session", autouse=True)
def _session_templates() -> Iterator[None]:
    yield
    HTTP_SERVER.close()
    SQLITE_TEMPLATE.close()
    POSTGRES.close()


@pytest.fixture(params=backend_params(list(BACKENDS)))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh, empty store on each backend in `BACKENDS`."""
    with BACKENDS[request.param](tmp_path) as opened:
        yield opened


@pytest.fixture
def postgres() -> PostgresServer:
    """The PostgreSQL test server; skips the test when it is unreachable."""
    POSTGRES.require()
    return POSTGRES


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty (unmigrated) database, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/r.db"
    else:
        with POSTGRES.database() as url:
            yield url


@pytest.fixture(params=["embedded", "http"])
def target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Target]:
    """Where a client or integration test sends its runs: the embedded store or a real
    server on loopback, under REGISTRUM_STRICT=1; `target.reader` reads them back."""
    home = tmp_path / "home"
    monkeypatch.setenv("REGISTRUM_HOME", str(home))
    monkeypatch.setenv("REGISTRUM_STRICT", "1")
    monkeypatch.setenv("REGISTRUM_FLUSH_TIMEOUT", "20")
    monkeypatch.delenv("REGISTRUM_URL", raising=False)
    monkeypatch.delenv("REGISTRUM_MODE", raising=False)
    if request.param == "embedded":
        from registrum.store import open_store

        home.mkdir()
        reader = open_store(f"sqlite:///{home / 'registrum.db'}", blobs=home / "blobs")
        yield Target(None, reader, home)
        reader.close()
        return
    from registrum.client.http import HttpStore
    from registrum.server import Settings
    from serving import running_server

    settings = Settings(store_url=f"sqlite:///{tmp_path}/srv.db", blobs=tmp_path / "blobs")
    with running_server(settings) as url:
        reader = HttpStore(url)
        yield Target(url, reader, home)
        reader.close()
