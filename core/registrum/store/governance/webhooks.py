"""Webhook subscriptions: which audit events of a project or model go to which URL.

Matching events to hooks, the delivery log and retries are the outbox's
(`registrum.store.governance.outbox`); signing and sending are the server's worker's
(`registrum.server.webhooks`).

Hooks go to public addresses only, unless `allow_private_webhooks` is set (the server's
`--allow-private-webhooks`): see `registrum.store.governance.targets`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, select

from registrum import validation as v
from registrum.entities import Webhook
from registrum.errors import InvalidArgument, ModelNotFound, NotFound
from registrum.store import schema as t
from registrum.store._base import StoreBase, dumps, loads, now
from registrum.store.audit_chain import current_actor
from registrum.store.governance.targets import check_new_target
from registrum.store.idempotency import IdempotencyMixin, claim

WEBHOOK_EVENTS = (
    "run.finished",
    "model_version.created",
    "alias.moved",
    "approval.requested",
    "approval.decided",
)
MAX_URL = 2048
MIN_SECRET, MAX_SECRET = 16, 256


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
    ) -> Webhook:
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
                return Webhook.from_dict({**answer.body, "secret": kept})
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
            self._remember(conn, keyed, 201, hook.to_dict())
        return dataclasses.replace(hook, secret=secret)

    def get_webhook(self, webhook_id: str) -> Webhook:
        """A hook, without its secret."""
        v.webhook_id(webhook_id)
        with self._read() as conn:
            return self._hook(conn, webhook_id, need="admin")

    def list_webhooks(
        self,
        *,
        project: str | None = None,
        model: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Webhook]:
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
        v.webhook_id(webhook_id)
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
                project=hook.project,
                before={"url": hook.url, "events": hook.events, "model": hook.model},
            )

    # -- helpers -------------------------------------------------------------

    def _hook(self, conn: Connection, webhook_id: str, *, need: str | None = None) -> Webhook:
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


def _hook_record(r: Any) -> Webhook:
    return Webhook(
        id=r.id,
        url=r.url,
        events=loads(r.events),
        project=r.project,
        model=r.model,
        created_by=r.created_by,
        created_at=r.created_at,
    )


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
