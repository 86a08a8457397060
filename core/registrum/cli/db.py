"""`registrum db upgrade|status`: the database's schema, upgraded on purpose.

A server refuses a database at an older schema revision (unless started with --upgrade):
upgrading existing data is a step to take after a backup, once, whatever number of servers
share the database. The upgrade holds a lock while it runs (PostgreSQL's advisory lock,
SQLite's write lock), so running it twice, or from two machines at once, upgrades once.
"""

from __future__ import annotations

import argparse
from typing import Any

from registrum.cli._common import leaf, require_store


def _engine(args: argparse.Namespace, command: str) -> Any:
    from registrum.store.db import make_engine
    from registrum.store.locations import database_url

    url = database_url(args.store, command=command)
    require_store(url)
    return make_engine(url)


def _upgrade(args: argparse.Namespace) -> int:
    from registrum.store.db import EMPTY, head_revision, migrate, shown_url

    engine = _engine(args, "registrum db upgrade")
    try:
        found = migrate(engine)
    finally:
        engine.dispose()
    where = shown_url(engine)
    if found is None:
        print(f"{where} is at schema revision {head_revision()}, the newest: nothing to do")
    elif found == EMPTY:
        print(f"{where} was empty: created the schema at revision {head_revision()}")
    else:
        print(f"{where} upgraded from schema revision {found} to {head_revision()}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from registrum.store.db import head_revision, known_revision, schema_revision, shown_url

    engine = _engine(args, "registrum db status")
    try:
        current = schema_revision(engine)
    finally:
        engine.dispose()
    where, head = shown_url(engine), head_revision()
    print(f"database  {where}")
    print(f"current   {current or '(empty: no schema yet)'}")
    print(f"newest    {head} (this version)")
    if current == head:
        print("up to date")
        return 0
    if current is not None and not known_revision(current):
        print("NEWER than this version knows: run the Registrum that upgraded it")
    else:
        print(f"needs an upgrade: registrum db upgrade --store {where}")
    return 1


def add_commands(commands: Any) -> None:
    """Adds `db upgrade` and `db status` to the `registrum` command."""
    db = commands.add_parser(
        "db", help="the database's schema: its revision, and upgrading it"
    ).add_subparsers(dest="db_command", required=True)
    leaf(
        db,
        "upgrade",
        "apply the schema migrations this version has (once, under a lock; safe to repeat)",
        _upgrade,
    )
    leaf(db, "status", "the database's schema revision against this version's newest", _status)
