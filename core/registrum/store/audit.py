"""The audit trail: every mutation appends an event, in the transaction that makes it.

Each event holds who did what to which entity, when, and the entity before and after. Events
are chained: an event's hash covers its content and the previous event's hash, and the
`audit_head` row holds the last id and hash. Changing an event breaks its hash; deleting one
leaves a gap in the ids or breaks the head: `verify_audit` finds either.

The chain is appended under a lock on the head row, so concurrent writers on PostgreSQL take
turns (SQLite writers take turns anyway).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from registrum.errors import Forbidden, InvalidArgument
from registrum.store import schema as t
from registrum.store._base import StoreBase, loads
from registrum.store.auditing import GENESIS, content, event_hash
from registrum.store.principal import current_principal


class AuditMixin(StoreBase):
    def list_audit(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        entity_type: str | None = None,
        entity_id: str | None = None,
        actor: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Audit events, newest first, filtered; `limit`/`offset` select one page."""
        a = t.audit_events.c
        query = select(t.audit_events)
        for column, value in (
            (a.project, project),
            (a.action, action),
            (a.entity_type, entity_type),
            (a.entity_id, entity_id),
            (a.actor, actor),
        ):
            if value is not None:
                if not isinstance(value, str):
                    raise InvalidArgument(f"audit filters are strings, got {value!r}")
                query = query.where(column == value)
        for bound, op in ((since, "since"), (until, "until")):
            if bound is not None and not isinstance(bound, int | float):
                raise InvalidArgument(f"{op} must be a Unix time in seconds, got {bound!r}")
        if since is not None:
            query = query.where(a.at >= since)
        if until is not None:
            query = query.where(a.at < until)
        query = query.order_by(a.id.desc())
        with self._read() as conn:
            query = self._audit_scope(conn, query, project)
            rows = conn.execute(self._window(query, limit, offset)).all()
        return [
            {
                "id": r.id,
                "at": r.at,
                "actor": r.actor,
                "action": r.action,
                "entity_type": r.entity_type,
                "entity_id": r.entity_id,
                "project": r.project,
                "before": loads(r.before),
                "after": loads(r.after),
                "hash": r.hash,
            }
            for r in rows
        ]

    def _audit_scope(self, conn: Connection, query: Any, project: str | None) -> Any:
        """A server admin reads every event; a project admin those of their projects."""
        administered = self._visible_projects(conn, "admin")
        if administered is None:
            return query
        if project is not None:
            self._project_id(conn, project, need="admin")
            return query
        if not administered:
            principal = current_principal()
            name = principal.name if principal else ""
            raise Forbidden(
                f"the audit trail needs a server admin or a project admin; user {name!r} "
                "is neither",
                needed="admin",
            )
        names = select(t.projects.c.name).where(t.projects.c.id.in_(administered))
        return query.where(t.audit_events.c.project.in_(names))

    def verify_audit(self) -> dict[str, Any]:
        """Checks the whole chain: every event's hash, every link, no gap, the head.

        Returns `{"ok", "events", "problems"}`; each problem names the event id and what is
        wrong with it (altered, missing, or the chain's end cut off).
        """
        self._require_server_admin("verifying the audit trail")
        problems: list[dict[str, Any]] = []
        count = 0
        expected_id, prev = 1, GENESIS
        with self._read() as conn:
            rows = conn.execute(select(t.audit_events).order_by(t.audit_events.c.id))
            for row in rows:
                count += 1
                if row.id != expected_id:
                    missing = f"events {expected_id}..{row.id - 1} are missing"
                    problems.append({"id": expected_id, "problem": missing})
                elif row.prev_hash != prev:
                    broken = "its link to the event before is broken"
                    problems.append({"id": row.id, "problem": broken})
                if event_hash(row.prev_hash, content(row)) != row.hash:
                    problems.append({"id": row.id, "problem": "its content was altered"})
                expected_id, prev = row.id + 1, row.hash
            last_id, last_hash = conn.execute(
                select(t.audit_head.c.last_id, t.audit_head.c.last_hash)
            ).one()
        if (last_id, last_hash) != (expected_id - 1, prev):
            cut = f"the chain ends at {expected_id - 1}, its head at {last_id}"
            problems.append({"id": last_id, "problem": cut})
        return {"ok": not problems, "events": count, "problems": problems}
