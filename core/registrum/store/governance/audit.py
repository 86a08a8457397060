"""The audit trail: every mutation appends an event, in the transaction that makes it.

Each event holds who did what to which entity, when, and the entity before and after. Events
are chained: an event's hash covers its content and the previous event's hash, and the
`audit_head` row holds the last id and hash. Changing an event breaks its hash; deleting one
leaves a gap in the ids or breaks the head: `verify_audit` finds either.

Someone who can write to the database could also recompute every hash after a change, so the
chain head is signed with a key kept outside the database (`anchors.py`): by the server
periodically, by every verification, and on request (`audit_anchor`) for keeping off-site.
`verify_audit` checks that the chain still extends every recorded and every given anchor.

The chain is appended under a lock on the head row, so concurrent writers on PostgreSQL take
turns (SQLite writers take turns anyway).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from registrum import validation as v
from registrum.entities import AuditEvent
from registrum.errors import Forbidden, InvalidArgument
from registrum.store import schema as t
from registrum.store._base import StoreBase, loads
from registrum.store.acting import current_principal
from registrum.store.audit_chain import GENESIS, content, event_hash
from registrum.store.governance.anchors import Seal, audit_dir, parse, store_id


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
        exclude_actions: Sequence[str] = (),
    ) -> list[AuditEvent]:
        """Audit events, newest first, filtered (`exclude_actions`: leave these actions out,
        such as the metric and blob noise); `limit`/`offset` select one page."""
        a = t.audit_events.c
        query = select(t.audit_events)
        if project is not None:
            project = v.name(project, "project name")
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
        if isinstance(exclude_actions, str) or not all(isinstance(x, str) for x in exclude_actions):
            raise InvalidArgument("exclude_actions must be a list of action names")
        if exclude_actions:
            query = query.where(a.action.not_in(list(exclude_actions)))
        if since is not None:
            query = query.where(a.at >= since)
        if until is not None:
            query = query.where(a.at < until)
        query = query.order_by(a.id.desc())
        with self._read() as conn:
            query = self._audit_scope(conn, query, project)
            rows = conn.execute(self._window(query, limit, offset)).all()
        return [
            AuditEvent(
                id=r.id,
                at=r.at,
                actor=r.actor,
                action=r.action,
                entity_type=r.entity_type,
                entity_id=r.entity_id,
                project=r.project,
                before=loads(r.before),
                after=loads(r.after),
                hash=r.hash,
            )
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

    def audit_seal(self) -> Seal:
        """What signs this store's chain heads and keeps its recorded anchors (made on first
        use from the environment: see `registrum.store.governance.anchors`)."""
        seal: Seal | None = self.__dict__.get("_audit_seal")
        if seal is None:
            seal = Seal(audit_dir(), store_id(self.engine.url))
            self.__dict__["_audit_seal"] = seal
        return seal

    def _chain_head(self) -> tuple[int, str]:
        e = t.audit_events.c
        with self._read() as conn:
            row = conn.execute(select(e.id, e.hash).order_by(e.id.desc()).limit(1)).first()
        return (int(row.id), str(row.hash)) if row is not None else (0, GENESIS)

    def audit_anchor(self) -> dict[str, Any]:
        """The chain head now, signed with the audit key, for keeping off-site; it is also
        recorded beside the key. `verify_audit(anchors=[...])` checks the chain against it."""
        self._require_server_admin("signing the audit chain's head")
        return self.seal_audit_head(force=True) or {}

    def seal_audit_head(self, *, force: bool = False) -> dict[str, Any] | None:
        """Signs and records the chain head if it moved since the last recorded anchor (with
        `force`, returns the signed head either way); None when there was nothing to sign.
        The server calls it periodically; it checks no role, and no route exposes it."""
        seal = self.audit_seal()
        event, digest = self._chain_head()
        anchor = seal.sign(event, digest, time.time())
        if event == 0:
            return anchor if force else None
        appended = seal.record(anchor)
        return anchor if appended or force else None

    def verify_audit(self, anchors: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """Checks the whole chain: every event's hash, every link, no gap, the head, and that
        the chain still extends each anchor recorded beside the audit key and each of
        `anchors` (signed heads from `audit_anchor`, kept elsewhere).

        Returns `{"ok", "events", "problems", "anchors", "anchor"}`: each problem names the
        event id and what is wrong with it (altered, missing, the chain's end cut off, or an
        anchor it no longer extends, named in the problem's `anchor`); `anchors` counts the
        anchors checked; `anchor` is the head, signed and recorded when all is well.
        """
        self._require_server_admin("verifying the audit trail")
        if anchors is not None and not isinstance(anchors, list | tuple):
            raise InvalidArgument("anchors must be a list of signed anchor objects")
        given = [parse(a, f"anchors[{i}]") for i, a in enumerate(anchors or ())]
        seal = self.audit_seal()
        problems: list[dict[str, Any]] = []
        recorded_problems: list[dict[str, Any]] = []
        expected: dict[int, list[tuple[str, dict[str, Any], list[dict[str, Any]]]]] = {}

        def add(label: str, anchor: dict[str, Any], into: list[dict[str, Any]]) -> None:
            wrong = seal.signature_problem(anchor)
            if wrong is not None:
                into.append(_anchor_problem(label, anchor, wrong))
            else:
                expected.setdefault(anchor["event"], []).append((label, anchor, into))

        for entry in seal.recorded():
            label = f"{seal.path}:{entry.line}"
            if entry.anchor is None:
                broken = f"anchor {label} {entry.problem}"
                recorded_problems.append({"id": 0, "anchor": label, "problem": broken})
            else:
                add(label, entry.anchor, recorded_problems)
        for i, anchor in enumerate(given):
            add(anchor.get("source") or f"anchors[{i}]", anchor, problems)
        checked = sum(len(found) for found in expected.values())

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
                for label, anchor, into in expected.pop(row.id, ()):
                    if anchor["hash"] != row.hash:
                        rewritten = (
                            f"event {row.id} now has hash {row.hash[:16]}..., the anchor says "
                            f"{anchor['hash'][:16]}...: events up to {row.id} were rewritten "
                            "(and their hashes recomputed) after it was signed"
                        )
                        into.append(_anchor_problem(label, anchor, rewritten))
                expected_id, prev = row.id + 1, row.hash
            last_id, last_hash = conn.execute(
                select(t.audit_head.c.last_id, t.audit_head.c.last_hash)
            ).one()
        if (last_id, last_hash) != (expected_id - 1, prev):
            cut = f"the chain ends at {expected_id - 1}, its head at {last_id}"
            problems.append({"id": last_id, "problem": cut})
        for event, left in sorted(expected.items()):
            for label, anchor, into in left:
                if event == 0 and anchor["hash"] == GENESIS:
                    continue
                gone = (
                    f"the chain ends at event {expected_id - 1}, before the anchored event "
                    f"{event}: the newest events were deleted after it was signed"
                    if event > expected_id - 1
                    else f"event {event} is missing"
                )
                into.append(_anchor_problem(label, anchor, gone))
        if recorded_problems:
            first = dict(recorded_problems[0])
            if len(recorded_problems) > 1:
                more = len(recorded_problems) - 1
                first["problem"] += f" (and {more} later recorded anchor(s) fail too)"
            problems.append(first)
        signed = None
        if not problems:
            signed = seal.sign(expected_id - 1, prev, time.time())
            if expected_id > 1:
                seal.record(signed)
        return {
            "ok": not problems,
            "events": count,
            "problems": problems,
            "anchors": checked,
            "anchor": signed,
        }


def _anchor_problem(label: str, anchor: Mapping[str, Any], what: str) -> dict[str, Any]:
    return {
        "id": anchor["event"],
        "anchor": label,
        "problem": f"anchor {label} (event {anchor['event']}, signed {anchor['time']}): {what}",
    }
