"""Alembic environment: runs on the connection the store opened."""

from __future__ import annotations

from alembic import context

from registrum.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
context.run_migrations()
