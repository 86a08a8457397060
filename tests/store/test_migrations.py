"""The migrations build exactly the tables in `registrum.store.schema`, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, event, inspect, text

import registrum.store.db
from registrum.store.db import make_engine, migrate
from registrum.store.schema import metadata
from registrum.store.service import open_store

MIGRATIONS = Path(registrum.store.db.__file__).parent / "migrations"
SCRIPT = ScriptDirectory(str(MIGRATIONS))
HEAD = SCRIPT.get_current_head()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_one_head_and_a_linear_history() -> None:
    assert len(SCRIPT.get_heads()) == 1
    assert len(SCRIPT.get_bases()) == 1
    for revision in SCRIPT.walk_revisions():
        assert not revision.is_merge_point, revision.revision


def test_migrate_an_empty_database_matches_the_models(engine: Engine) -> None:
    assert current_revision(engine) is None
    migrate(engine)
    assert current_revision(engine) == HEAD
    assert differences(engine) == []
    assert tables(engine) == set(metadata.tables) | {"alembic_version"}


def test_open_store_migrates(database_url: str, tmp_path: Path, engine: Engine) -> None:
    open_store(database_url, blobs=tmp_path / "blobs").close()
    assert current_revision(engine) == HEAD
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert rows == [HEAD]
    assert differences(engine) == []


def test_opening_again_is_a_no_op(database_url: str, tmp_path: Path, engine: Engine) -> None:
    store = open_store(database_url, blobs=tmp_path / "blobs")
    store.create_run("p", run_id="kept", config={"lr": 0.1})
    store.close()

    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    migrate(engine)
    migrate(engine)
    writes = [
        s
        for s in statements
        if s.lstrip().split(None, 1)[0].upper()
        in ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE")
    ]
    assert writes == []
    assert current_revision(engine) == HEAD

    again = open_store(database_url, blobs=tmp_path / "blobs")
    try:
        assert again.get_run("kept").params == {"lr": 0.1}
    finally:
        again.close()


def test_upgrade_one_revision_at_a_time(engine: Engine) -> None:
    revisions = [r.revision for r in reversed(list(SCRIPT.walk_revisions()))]
    assert revisions[-1] == HEAD
    for revision in revisions:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
        assert current_revision(engine) == revision
    migrate(engine)  # at head already: nothing to do
    assert current_revision(engine) == HEAD
    assert differences(engine) == []


def test_store_opens_a_database_at_the_first_revision(
    database_url: str, tmp_path: Path, engine: Engine
) -> None:
    first = SCRIPT.get_bases()[0]
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), first)
    assert current_revision(engine) == first
    store = open_store(database_url, blobs=tmp_path / "blobs")
    try:
        store.create_run("p")
    finally:
        store.close()
    assert current_revision(engine) == HEAD
    assert differences(engine) == []


def test_downgrade_to_base_and_up_again(engine: Engine) -> None:
    migrate(engine)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert current_revision(engine) is None
    assert tables(engine) <= {"alembic_version"}
    migrate(engine)
    assert current_revision(engine) == HEAD
    assert differences(engine) == []
