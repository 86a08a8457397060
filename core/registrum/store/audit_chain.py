"""Who acts, and the chain of audit events every mutation appends to (see `governance/audit.py`)."""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from registrum.store import schema as t

GENESIS = "0" * 64
LOCAL_ACTOR = "local"  # the embedded store's one user

_actor: contextvars.ContextVar[str | None] = contextvars.ContextVar("registrum_actor", default=None)


def current_actor() -> str:
    """Who the service layer acts for: the server sets it per request; embedded, `local`."""
    return _actor.get() or LOCAL_ACTOR


def set_actor(name: str) -> None:
    """Names who acts from here on in this context (the server: per request)."""
    _actor.set(name)


@contextmanager
def acting_as(name: str) -> Iterator[None]:
    """Records the mutations made inside the block as done by `name`."""
    token = _actor.set(name)
    try:
        yield
    finally:
        _actor.reset(token)


def canonical(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def content(row: Any) -> dict[str, Any]:
    """What an event's hash covers."""
    return {
        "id": int(row.id),
        "at": repr(float(row.at)),
        "actor": row.actor,
        "action": row.action,
        "entity_type": row.entity_type,
        "entity_id": row.entity_id,
        "project": row.project,
        "before": row.before,
        "after": row.after,
    }


def event_hash(prev: str, event: dict[str, Any]) -> str:
    """sha256 over the previous event's hash and this event's canonical JSON."""
    body = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


class _Values:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def append_event(
    conn: Connection,
    action: str,
    entity_type: str,
    entity_id: Any,
    *,
    project: str | None,
    before: Any,
    after: Any,
) -> None:
    """Appends one event to the chain inside `conn`'s transaction, under a lock on the head
    row (PostgreSQL), so concurrent writers take turns."""
    read_head, insert_event, move_head = _statements(conn.dialect.name)
    last_id, last_hash = conn.execute(read_head).one()
    values = {
        "id": int(last_id) + 1,
        "at": time.time(),
        "actor": current_actor(),
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "project": project,
        "before": canonical(before),
        "after": canonical(after),
    }
    digest = event_hash(last_hash, content(_Values(values)))
    conn.execute(insert_event, {**values, "prev_hash": last_hash, "hash": digest})
    conn.execute(move_head, {"new_id": values["id"], "new_hash": digest})


@functools.cache
def _statements(dialect: str) -> tuple[Any, Any, Any]:
    """Reading the head (locked on PostgreSQL), adding an event, moving the head: built once,
    with parameters bound at execution."""
    head = t.audit_head.c
    read_head = select(head.last_id, head.last_hash).where(head.id == 1)
    if dialect == "postgresql":
        read_head = read_head.with_for_update()
    move_head = (
        update(t.audit_head)
        .where(head.id == 1)
        .values(last_id=bindparam("new_id"), last_hash=bindparam("new_hash"))
    )
    return read_head, t.audit_events.insert(), move_head
