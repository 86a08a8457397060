"""`registrum db upgrade|status`, and a server on a database at an older schema revision:
refused with the command that upgrades it, unless started with --upgrade."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url, text

import registrum.store.db
from backends import POSTGRES, backend_params
from registrum.errors import SchemaMismatch
from registrum.store.schema import metadata
from registrum.store.service import open_store
from serving import free_port

SCRIPT = ScriptDirectory(str(Path(registrum.store.db.__file__).parent / "migrations"))
HEAD = SCRIPT.get_current_head()
assert HEAD is not None
OLDER = SCRIPT.get_revision(HEAD).down_revision
assert isinstance(OLDER, str)
PASSWORD = "s3cret-pw"


def registrum(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registrum.cli", *args], capture_output=True, text=True, timeout=120
    )


def upgrade_to(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", SCRIPT.dir)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def revisions(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def matches_the_models(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata)) == []
    finally:
        engine.dispose()


@pytest.fixture(params=backend_params(["sqlite", "postgres"]))
def older(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at the revision before the newest; on PostgreSQL its URL carries a password
    (the test server trusts loopback and ignores it), which no message may show."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'r.db'}"
        upgrade_to(url, OLDER)
        yield url
        return
    with POSTGRES.database() as plain:
        upgrade_to(plain, OLDER)
        yield make_url(plain).set(password=PASSWORD).render_as_string(hide_password=False)


def without_password(url: str) -> str:
    return make_url(url)._replace(password=None).render_as_string(hide_password=False)


def test_upgrade_twice(older: str) -> None:
    status = registrum("db", "status", "--store", older)
    assert status.returncode == 1
    assert f"current   {OLDER}" in status.stdout
    assert f"needs an upgrade: registrum db upgrade --store {without_password(older)}" in (
        status.stdout
    )
    first = registrum("db", "upgrade", "--store", older)
    assert first.returncode == 0, first.stderr
    assert f"upgraded from schema revision {OLDER} to {HEAD}" in first.stdout
    second = registrum("db", "upgrade", "--store", older)
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout
    assert revisions(older) == [HEAD]
    assert matches_the_models(older)
    status = registrum("db", "status", "--store", older)
    assert status.returncode == 0 and "up to date" in status.stdout
    assert PASSWORD not in first.stdout + second.stdout + status.stdout


def _hold_the_migration_lock(url: str) -> tuple[object, object]:
    """Takes the lock an upgrade waits for (PostgreSQL's advisory lock, SQLite's write
    lock); returns what releases it."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        return conn, lambda: (conn.execute("COMMIT"), conn.close())
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    pg = engine.connect()
    pg.execute(text("SELECT pg_advisory_lock(7403911)"))

    def release() -> None:
        pg.execute(text("SELECT pg_advisory_unlock(7403911)"))
        pg.close()
        engine.dispose()

    return pg, release


def _waiting_on_the_lock(url: str, expected: int) -> bool:
    if url.startswith("sqlite"):
        time.sleep(3)  # SQLite shows no waiters: give both time to reach the lock
        return True
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                    "AND objid = 7403911 AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return int(waiting) >= expected


def test_two_processes_upgrading_at_once_upgrade_once(older: str) -> None:
    _, release = _hold_the_migration_lock(older)
    cmd = [sys.executable, "-m", "registrum.cli", "db", "upgrade", "--store", older]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while not _waiting_on_the_lock(older, 2):  # both are inside the upgrade, waiting
            assert time.monotonic() < deadline, "the upgrades never waited on the lock"
            assert all(p.poll() is None for p in procs)
            time.sleep(0.1)
    finally:
        release()  # type: ignore[operator]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = sorted(out for out, _ in outs)
    assert sum("upgraded from" in s for s in said) == 1, said
    assert sum("nothing to do" in s for s in said) == 1, said
    assert revisions(older) == [HEAD]
    assert matches_the_models(older)


def test_the_server_refuses_an_older_schema_with_the_command(older: str, tmp_path: Path) -> None:
    port = str(free_port())
    base = ["server", "--port", port, "--store", older, "--blobs", str(tmp_path / "blobs")]
    out = registrum(*base)
    assert out.returncode == 2
    expected = f"`registrum db upgrade --store {without_password(older)}`"
    assert expected in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and PASSWORD not in out.stderr
    assert revisions(older) == [OLDER]  # nothing was migrated

    with subprocess.Popen(
        [sys.executable, "-m", "registrum.cli", *base, "--upgrade", "--log-level", "warning"]
    ) as proc:
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, "the server with --upgrade did not start"
                assert time.monotonic() < deadline
                try:
                    health = requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
                    if health.status_code == 200:
                        break
                except requests.ConnectionError:
                    time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert revisions(older) == [HEAD]


def test_open_store_refuses_without_upgrade_and_upgrades_by_default(
    older: str, tmp_path: Path
) -> None:
    with pytest.raises(SchemaMismatch, match="registrum db upgrade --store"):
        open_store(older, blobs=tmp_path / "blobs", upgrade=False)
    assert revisions(older) == [OLDER]
    open_store(older, blobs=tmp_path / "blobs").close()  # the embedded store's one user
    assert revisions(older) == [HEAD]


def test_an_empty_database_is_created_without_upgrade(database_url: str, tmp_path: Path) -> None:
    open_store(database_url, blobs=tmp_path / "blobs", upgrade=False).close()
    assert revisions(database_url) == [HEAD]


def test_a_newer_schema_is_refused_everywhere(older: str, tmp_path: Path) -> None:
    engine = create_engine(older)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    finally:
        engine.dispose()
    with pytest.raises(SchemaMismatch, match="a newer Registrum upgraded it"):
        open_store(older, blobs=tmp_path / "blobs")
    status = registrum("db", "status", "--store", older)
    assert status.returncode == 1 and "NEWER than this version knows" in status.stdout
    upgrade = registrum("db", "upgrade", "--store", older)
    assert upgrade.returncode == 1
    assert "schema revision 9999_future, which Registrum" in upgrade.stderr
    assert revisions(older) == ["9999_future"]


def test_db_commands_refuse_a_server_url_and_a_missing_file(tmp_path: Path) -> None:
    out = registrum("db", "upgrade", "--store", "http://127.0.0.1:9")
    assert out.returncode == 1 and "not through a server" in out.stderr
    missing = tmp_path / "none.db"
    out = registrum("db", "status", "--store", f"sqlite:///{missing}")
    assert out.returncode == 1 and "there is no store yet" in out.stderr
    assert not missing.exists()
