"""Webhooks: subscriptions to audit events, and the delivery log the worker keeps.

The audit trail is the outbox. A mutation appends its event in its own transaction and does
nothing more; the delivery worker (`registrum.server.webhooks`) later calls
`dispatch_webhooks`, which matches the events after its cursor to the hooks, records one
delivery per (hook, event), and claims the deliveries that are due. The worker sends each one
and reports back with `record_delivery`, which schedules a retry with exponential backoff or
marks the delivery delivered or failed.

A claimed delivery is leased: it is not due again until the lease runs out, so two workers
on one database never send it at once, and one whose worker died mid-send is sent again.

Hooks go to public addresses only, unless `allow_private_webhooks` is set (the server's
`--allow-private-webhooks`): see `registrum.store.webhook_targets`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, func, select, update

from registrum.errors import InvalidArgument, ModelNotFound, NotFound
from registrum.store import schema as t
from registrum.store import validation as v
from registrum.store._base import StoreBase, dumps, loads, now
from registrum.store.auditing import current_actor
from registrum.store.idempotency import IdempotencyMixin, claim
from registrum.store.webhook_targets import check_new_target

WEBHOOK_EVENTS = (
    "run.finished",
    "model_version.created",
    "alias.moved",
    "approval.requested",
    "approval.decided",
)
DELIVERY_STATUSES = ("pending", "delivered", "failed")
MAX_URL = 2048
MIN_SECRET, MAX_SECRET = 16, 256
# Events matched per batch, and batches per dispatch: a long backlog is worked off over
# several dispatches, in short transactions.
MATCH_BATCH = 1000
MATCH_BATCHES = 10
# The longest wait between two attempts, however many have failed.
MAX_BACKOFF = 3600.0


def sign(secret: str, body: bytes) -> str:
    """The `X-Registrum-Signature` header value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `body` under `secret` (constant-time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


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

    def headers(self) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "user-agent": "registrum-webhooks",
            "x-registrum-event": self.action,
            "x-registrum-delivery": str(self.id),
            "x-registrum-signature": sign(self.secret, self.body()),
        }


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


class WebhooksMixin(IdempotencyMixin, StoreBase):
    # Whether hooks may target loopback, private, link-local and other non-public
    # addresses; the server sets it from `Settings.allow_private_webhooks`.
    allow_private_webhooks: bool = False

    # -- subscriptions --------------------------------------------------------

    def create_webhook(
        self,
        url: str,
        events: Sequence[str],
        *,
        project: str | None = None,
        model: str | None = None,
        secret: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Subscribes `url` to `events` of one project or one model (exactly one of them).

        The secret signs every payload (HMAC-SHA256); one is generated when not given. The
        result is the only one that shows it: keep it. The hook is sent events made after it.
        Retried with the same `idempotency_key`, it returns the hook the first call made.
        A URL whose host is or resolves to a non-public address is refused unless
        `allow_private_webhooks` is set.
        """
        url = _check_url(url)
        wanted = _check_events(events)
        if (project is None) == (model is None):
            raise InvalidArgument(
                "a webhook needs exactly one of project and model "
                f"(got {'both' if project is not None else 'neither'})"
            )
        # Before the transaction: the check may wait on DNS.
        check_new_target(url, allow_private=self.allow_private_webhooks)
        given = None if secret is None else hashlib.sha256(_check_secret(secret).encode())
        keyed = claim(
            idempotency_key,
            "webhook.create",
            [url, wanted, project, model, given and given.hexdigest()],
        )
        if secret is None:
            secret = secrets.token_urlsafe(32)
        hook_id = uuid.uuid4().hex
        with self._tx() as conn:
            answer = self._recall(conn, keyed)
            if answer is not None:
                # The answer is kept without the secret; the hook's own row holds it.
                kept = conn.execute(
                    select(t.webhooks.c.secret).where(t.webhooks.c.id == answer.body["id"])
                ).scalar()
                return {**answer.body, "secret": kept}
            if model is not None:
                model = v.name(model, "model name")
                owner = self._hook_model_project(conn, model)
            else:
                owner = v.name(project, "project name")
            self._project_id(conn, owner, need="admin")  # hooks send data out: project admins
            self._audit(
                conn,
                "webhook.created",
                "webhook",
                hook_id,
                project=owner,
                after={"url": url, "events": wanted, "model": model},
            )
            since = conn.execute(select(t.audit_head.c.last_id)).scalar_one()
            conn.execute(
                t.webhooks.insert().values(
                    id=hook_id,
                    project=owner,
                    model=model,
                    url=url,
                    events=dumps(wanted),
                    secret=secret,
                    since_event=since,
                    created_by=current_actor(),
                    created_at=now(),
                )
            )
            hook = self._hook(conn, hook_id)
            self._remember(conn, keyed, 201, hook)
        return {**hook, "secret": secret}

    def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        """A hook, without its secret."""
        _check_id(webhook_id)
        with self._read() as conn:
            return self._hook(conn, webhook_id, need="admin")

    def list_webhooks(
        self,
        *,
        project: str | None = None,
        model: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Hooks, oldest first: of a project (its model hooks too), of a model, or all."""
        w = t.webhooks.c
        query = select(t.webhooks).order_by(w.created_at, w.id)
        if project is not None:
            query = query.where(w.project == v.name(project, "project name"))
        if model is not None:
            query = query.where(w.model == v.name(model, "model name"))
        with self._read() as conn:
            if project is not None:
                self._project_id(conn, project, need="admin")
            administered = self._visible_projects(conn, "admin")
            if administered is not None:
                names = select(t.projects.c.name).where(t.projects.c.id.in_(administered))
                query = query.where(w.project.in_(names))
            rows = conn.execute(self._window(query, limit, offset)).all()
        return [_hook_record(r) for r in rows]

    def delete_webhook(self, webhook_id: str) -> None:
        """Removes a hook with its delivery log; deliveries not yet sent are dropped."""
        _check_id(webhook_id)
        with self._tx() as conn:
            hook = self._hook(conn, webhook_id, need="admin")
            d = t.webhook_deliveries.c
            conn.execute(delete(t.webhook_deliveries).where(d.webhook_id == webhook_id))
            conn.execute(delete(t.webhooks).where(t.webhooks.c.id == webhook_id))
            self._audit(
                conn,
                "webhook.deleted",
                "webhook",
                webhook_id,
                project=hook["project"],
                before={k: hook[k] for k in ("url", "events", "model")},
            )

    def list_deliveries(
        self,
        webhook_id: str,
        *,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """A hook's delivery log, newest event first; `status` is pending, delivered or failed."""
        _check_id(webhook_id)
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
    ) -> dict[str, Any] | None:
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

    # -- helpers -------------------------------------------------------------

    def _hook(
        self, conn: Connection, webhook_id: str, *, need: str | None = None
    ) -> dict[str, Any]:
        row = conn.execute(select(t.webhooks).where(t.webhooks.c.id == webhook_id)).first()
        if row is None:
            raise NotFound(f"webhook {webhook_id!r} does not exist", webhook_id=webhook_id)
        if need is not None:
            self._project_id(conn, row.project, need=need)
        return _hook_record(row)

    def _hook_model_project(self, conn: Connection, model: str) -> str:
        found = conn.execute(
            select(t.projects.c.name)
            .join(t.registered_models, t.registered_models.c.project_id == t.projects.c.id)
            .where(t.registered_models.c.name == model)
        ).scalar()
        if found is None:
            raise ModelNotFound(f"model {model!r} does not exist", model=model)
        return str(found)

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


def _hook_record(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "url": r.url,
        "events": loads(r.events),
        "project": r.project,
        "model": r.model,
        "created_by": r.created_by,
        "created_at": r.created_at,
    }


def _delivery_record(r: Any) -> dict[str, Any]:
    return {
        "id": int(r.id),
        "webhook_id": r.webhook_id,
        "event_id": int(r.event_id),
        "action": r.action,
        "status": r.status,
        "attempts": int(r.attempts),
        "last_status": r.last_status,
        "last_error": r.last_error,
        "created_at": r.created_at,
        "last_attempt_at": r.last_attempt_at,
        "next_attempt_at": r.next_attempt_at if r.status == "pending" else None,
        "delivered_at": r.delivered_at,
    }


def _check_id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 64 or not value.isalnum():
        raise InvalidArgument(f"webhook id {value!r} is not valid: use the id create returned")
    return value


def _check_url(url: Any) -> str:
    if not isinstance(url, str):
        raise InvalidArgument(f"webhook url must be a string, got {type(url).__name__}")
    if len(url) > MAX_URL:
        raise InvalidArgument(f"webhook url is {len(url)} characters long; the limit is {MAX_URL}")
    if not url.isprintable() or any(ch.isspace() for ch in url):
        raise InvalidArgument(f"webhook url {url!r} contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidArgument(f"webhook url {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"webhook url {url!r} is not valid: give an http:// or https:// URL with a host, "
            "e.g. https://ci.example.com/hooks/registrum"
        )
    if parts.fragment:
        raise InvalidArgument(f"webhook url {url!r} must not have a #fragment")
    return url


def _check_events(events: Any) -> list[str]:
    if isinstance(events, str) or not isinstance(events, Sequence):
        raise InvalidArgument(
            f"webhook events must be a list of event names, e.g. ['alias.moved'], got {events!r}"
        )
    if not events:
        raise InvalidArgument(
            f"a webhook needs at least one event; choose from {', '.join(WEBHOOK_EVENTS)}"
        )
    wanted: list[str] = []
    for event in events:
        if not isinstance(event, str) or event not in WEBHOOK_EVENTS:
            raise InvalidArgument(
                f"unknown webhook event {event!r}; choose from {', '.join(WEBHOOK_EVENTS)}"
            )
        if event not in wanted:
            wanted.append(event)
    return wanted


def _check_secret(secret: Any) -> str:
    if not isinstance(secret, str):
        raise InvalidArgument(f"webhook secret must be a string, got {type(secret).__name__}")
    if not MIN_SECRET <= len(secret) <= MAX_SECRET or not secret.isprintable():
        raise InvalidArgument(
            f"webhook secret must be {MIN_SECRET} to {MAX_SECRET} printable characters "
            f"(got {len(secret)}); leave it out to have one generated"
        )
    return secret
