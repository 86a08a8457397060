"""The webhook outbox: audit events matched to hooks, and the delivery log the worker keeps.

The audit trail is the outbox. A mutation appends its event in its own transaction and does
nothing more; the delivery worker (`registrum.server.webhooks`) later calls
`dispatch_webhooks`, which matches the events after its cursor to the hooks, records one
delivery per (hook, event), and claims the deliveries that are due. The worker signs and sends
each one and reports back with `record_delivery`, which schedules a retry with exponential
backoff or marks the delivery delivered or failed.

A claimed delivery is leased: it is not due again until the lease runs out, so two workers
on one database never send it at once, and one whose worker died mid-send is sent again
(at the latest when its lease runs out; sooner after a change of leader, see
`release_webhook_claims`). Delivery is therefore at least once: a receiver that must act once
per event keeps the `X-Registrum-Delivery` ids it has seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, update

from registrum import validation as v
from registrum.entities import Delivery
from registrum.errors import InvalidArgument
from registrum.store import schema as t
from registrum.store._base import loads, now
from registrum.store.governance.webhooks import WEBHOOK_EVENTS, WebhooksMixin

DELIVERY_STATUSES = ("pending", "delivered", "failed")
# Events matched per batch, and batches per dispatch: a long backlog is worked off over
# several dispatches, in short transactions.
MATCH_BATCH = 1000
MATCH_BATCHES = 10
# The longest wait between two attempts, however many have failed.
MAX_BACKOFF = 3600.0


def backoff(base_delay: float, attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: base, 2×base, 4×base, ..."""
    return float(min(MAX_BACKOFF, base_delay * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery: where to send it, the secret to sign with, and the payload."""

    id: int
    webhook_id: str
    url: str
    secret: str
    action: str
    attempt: int
    payload: dict[str, Any]

    def body(self) -> bytes:
        """The payload as sent and signed: compact JSON with sorted keys."""
        return json.dumps(self.payload, sort_keys=True, separators=(",", ":")).encode()


def event_model(entity_type: str, entity_id: str, before: Any, after: Any) -> str | None:
    """The model an audit event is about, if any: the model of a version or alias
    (`NAME@...`), or the `model` an event's before/after names (approval requests)."""
    if entity_type == "model":
        return entity_id
    for side in (after, before):
        if isinstance(side, dict) and isinstance(side.get("model"), str):
            return str(side["model"])
    if "@" in entity_id:
        return entity_id.split("@", 1)[0]
    return None


class OutboxMixin(WebhooksMixin):
    def list_deliveries(
        self,
        webhook_id: str,
        *,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Delivery]:
        """A hook's delivery log, newest event first; `status` is pending, delivered or failed."""
        v.webhook_id(webhook_id)
        if status is not None and status not in DELIVERY_STATUSES:
            raise InvalidArgument(
                f"delivery status {status!r} is not one of {', '.join(DELIVERY_STATUSES)}"
            )
        d = t.webhook_deliveries.c
        query = select(t.webhook_deliveries).where(d.webhook_id == webhook_id)
        if status is not None:
            query = query.where(d.status == status)
        query = query.order_by(d.event_id.desc())
        with self._read() as conn:
            self._hook(conn, webhook_id, need="admin")
            rows = conn.execute(self._window(query, limit, offset)).all()
        return [_delivery_record(r) for r in rows]

    # -- what the delivery worker calls ---------------------------------------

    def dispatch_webhooks(
        self, at: float | None = None, *, limit: int = 100, lease: float = 60.0
    ) -> list[DueDelivery]:
        """Matches new audit events to hooks, then claims up to `limit` due deliveries.

        Each claimed delivery counts one attempt and is not due again for `lease` seconds,
        unless `record_delivery` reports its outcome first.
        """
        self._require_server_admin("dispatching webhook deliveries")
        stamp = now() if at is None else v.number(at, "at")
        v.integer(limit, "limit", minimum=0)
        v.number(lease, "lease")
        if not self._dispatch_needed(stamp, limit):
            return []
        with self._tx() as conn:
            self._match_events(conn, stamp)
            return self._claim_due(conn, stamp, limit, lease) if limit else []

    def record_delivery(
        self,
        delivery_id: int,
        *,
        status_code: int | None = None,
        error: str | None = None,
        max_attempts: int = 8,
        base_delay: float = 10.0,
        at: float | None = None,
    ) -> Delivery | None:
        """Records an attempt's outcome: a 2xx answer without `error` delivers; anything else
        schedules a retry after `backoff(base_delay, attempts)`, or fails the delivery once
        `max_attempts` are used. None when the delivery is gone (its hook was deleted)."""
        self._require_server_admin("recording webhook deliveries")
        v.integer(delivery_id, "delivery id", minimum=1, bits=64)
        v.integer(max_attempts, "max_attempts", minimum=1)
        v.number(base_delay, "base_delay")
        stamp = now() if at is None else v.number(at, "at")
        ok = error is None and status_code is not None and 200 <= status_code < 300
        if error is None and not ok:
            error = f"the receiver answered HTTP {status_code}"
        d = t.webhook_deliveries.c
        with self._tx() as conn:
            row = conn.execute(
                select(t.webhook_deliveries).where(d.id == delivery_id, d.status == "pending")
            ).first()
            if row is None:
                return None
            values: dict[str, Any] = {"last_status": status_code, "last_error": error}
            if ok:
                values.update(status="delivered", delivered_at=stamp, next_attempt_at=None)
            elif row.attempts >= max_attempts:
                values.update(status="failed", next_attempt_at=None)
            else:
                values["next_attempt_at"] = stamp + backoff(base_delay, row.attempts)
            conn.execute(update(t.webhook_deliveries).where(d.id == delivery_id).values(**values))
            updated = conn.execute(select(t.webhook_deliveries).where(d.id == delivery_id)).one()
        return _delivery_record(updated)

    def release_webhook_claims(self, claimed_before: float, at: float | None = None) -> int:
        """Makes the pending deliveries claimed before `claimed_before` due now instead of
        when their lease runs out, and returns how many.

        A new leader calls it once the sends of the previous one must have ended (each is
        bounded by the worker's timeout): a delivery that leader claimed and never reported
        is otherwise held back for the whole lease. A retry waiting out its backoff from
        before then is sent early, once per change of leader."""
        self._require_server_admin("releasing webhook claims")
        v.number(claimed_before, "claimed_before")
        stamp = now() if at is None else v.number(at, "at")
        d = t.webhook_deliveries.c
        with self._tx() as conn:
            released = conn.execute(
                update(t.webhook_deliveries)
                .where(
                    d.status == "pending",
                    d.next_attempt_at > stamp,
                    d.last_attempt_at < claimed_before,
                )
                .values(next_attempt_at=stamp)
            )
        return int(released.rowcount or 0)

    def webhook_queue(self, at: float | None = None) -> dict[str, int]:
        """How far webhook delivery is behind, for monitoring: audit events not yet matched
        to hooks (`backlog`), deliveries `pending`, of them `due` now, and `failed` ones.

        Counts only, no names or content; it checks no role (the metrics endpoint decides
        who may read it)."""
        stamp = now() if at is None else v.number(at, "at")
        d = t.webhook_deliveries.c
        pending = (d.status == "pending",)
        with self._read() as conn:
            first = conn.execute(select(func.min(t.webhooks.c.since_event))).scalar()
            backlog = 0
            if first is not None:
                cursor = conn.execute(select(t.webhook_cursor.c.last_event_id)).scalar() or 0
                head = conn.execute(select(t.audit_head.c.last_id)).scalar_one()
                backlog = max(0, int(head) - max(int(cursor), int(first)))
            counts = {
                "pending": select(func.count()).where(*pending),
                "due": select(func.count()).where(*pending, d.next_attempt_at <= stamp),
                "failed": select(func.count()).where(d.status == "failed"),
            }
            found = {
                name: int(conn.execute(query.select_from(t.webhook_deliveries)).scalar_one())
                for name, query in counts.items()
            }
        return {"backlog": backlog, **found}

    # -- helpers -------------------------------------------------------------

    def _dispatch_needed(self, stamp: float, limit: int) -> bool:
        """Whether a dispatch has anything to do; read-only, so an idle worker never takes
        the write lock."""
        d = t.webhook_deliveries.c
        with self._read() as conn:
            first = conn.execute(select(func.min(t.webhooks.c.since_event))).scalar()
            if first is not None:
                cursor = conn.execute(select(t.webhook_cursor.c.last_event_id)).scalar() or 0
                head = conn.execute(select(t.audit_head.c.last_id)).scalar_one()
                if max(int(cursor), int(first)) < int(head):
                    return True
            if not limit:
                return False
            due = conn.execute(
                select(d.id).where(d.status == "pending", d.next_attempt_at <= stamp).limit(1)
            ).first()
        return due is not None

    def _match_events(self, conn: Connection, stamp: float) -> None:
        """Records a delivery for each (hook, event) that matches, for the events after the
        cursor, and moves the cursor past them."""
        c = t.webhook_cursor.c
        query = select(c.last_event_id).where(c.id == 1)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        cursor = conn.execute(query).scalar()
        if cursor is None:
            conn.execute(
                self._insert(t.webhook_cursor)
                .values(id=1, last_event_id=0)
                .on_conflict_do_nothing(index_elements=["id"])
            )
            cursor = conn.execute(query).scalar_one()
        hooks = [_Hook(r) for r in conn.execute(select(t.webhooks)).all()]
        if not hooks:
            return
        # Events are appended under a lock held until commit, so every event up to the
        # head read now is committed and visible: none is skipped by moving past it.
        head = int(conn.execute(select(t.audit_head.c.last_id)).scalar_one())
        position = max(int(cursor), min(h.since for h in hooks))
        a = t.audit_events.c
        for _ in range(MATCH_BATCHES):
            if position >= head:
                break
            events = conn.execute(
                select(a.id, a.action, a.project, a.entity_type, a.entity_id, a.before, a.after)
                .where(a.id > position, a.id <= head, a.action.in_(WEBHOOK_EVENTS))
                .order_by(a.id)
                .limit(MATCH_BATCH)
            ).all()
            rows = [
                {
                    "webhook_id": h.id,
                    "event_id": e.id,
                    "action": e.action,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": stamp,
                    "created_at": stamp,
                }
                for e in events
                for h in hooks
                if h.matches(e)
            ]
            if rows:
                conn.execute(
                    self._insert(t.webhook_deliveries).on_conflict_do_nothing(
                        index_elements=["webhook_id", "event_id"]
                    ),
                    rows,
                )
            position = head if len(events) < MATCH_BATCH else int(events[-1].id)
        if position > int(cursor):
            conn.execute(update(t.webhook_cursor).where(c.id == 1).values(last_event_id=position))

    def _claim_due(
        self, conn: Connection, stamp: float, limit: int, lease: float
    ) -> list[DueDelivery]:
        d, w, a = t.webhook_deliveries.c, t.webhooks.c, t.audit_events.c
        query = (
            select(d.id)
            .where(d.status == "pending", d.next_attempt_at <= stamp)
            .order_by(d.next_attempt_at, d.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = [int(i) for i in conn.execute(query).scalars()]
        if not ids:
            return []
        conn.execute(
            update(t.webhook_deliveries)
            .where(d.id.in_(ids))
            .values(attempts=d.attempts + 1, last_attempt_at=stamp, next_attempt_at=stamp + lease)
        )
        rows = conn.execute(
            select(
                d.id,
                d.webhook_id,
                d.attempts,
                w.url,
                w.secret,
                a.id.label("event_id"),
                a.at,
                a.actor,
                a.action,
                a.project,
                a.entity_type,
                a.entity_id,
                a.before,
                a.after,
            )
            .join(t.webhooks, w.id == d.webhook_id)
            .join(t.audit_events, a.id == d.event_id)
            .where(d.id.in_(ids))
            .order_by(d.next_attempt_at, d.id)
        ).all()
        due = []
        for r in rows:
            before, after = loads(r.before), loads(r.after)
            payload = {
                "webhook_id": r.webhook_id,
                "delivery_id": int(r.id),
                "event_id": int(r.event_id),
                "action": r.action,
                "at": r.at,
                "actor": r.actor,
                "project": r.project,
                "model": event_model(r.entity_type, r.entity_id, before, after),
                "entity_type": r.entity_type,
                "entity_id": r.entity_id,
                "before": before,
                "after": after,
            }
            due.append(
                DueDelivery(
                    id=int(r.id),
                    webhook_id=r.webhook_id,
                    url=r.url,
                    secret=r.secret,
                    action=r.action,
                    attempt=int(r.attempts),
                    payload=payload,
                )
            )
        return due


class _Hook:
    """A hook as matching needs it."""

    def __init__(self, row: Any) -> None:
        self.id: str = row.id
        self.project: str = row.project
        self.model: str | None = row.model
        self.events = frozenset(loads(row.events))
        self.since = int(row.since_event)

    def matches(self, event: Any) -> bool:
        if event.id <= self.since or event.action not in self.events:
            return False
        if self.model is None:
            return bool(event.project == self.project)
        model = event_model(
            event.entity_type, event.entity_id, loads(event.before), loads(event.after)
        )
        return model == self.model


def _delivery_record(r: Any) -> Delivery:
    return Delivery(
        id=int(r.id),
        webhook_id=r.webhook_id,
        event_id=int(r.event_id),
        action=r.action,
        status=r.status,
        attempts=int(r.attempts),
        last_status=r.last_status,
        last_error=r.last_error,
        created_at=r.created_at,
        last_attempt_at=r.last_attempt_at,
        next_attempt_at=r.next_attempt_at if r.status == "pending" else None,
        delivered_at=r.delivered_at,
    )
