"""`registrum webhooks add|list|remove|deliveries`: signed HTTP callbacks on a project's or
a model's events, and their delivery log."""

from __future__ import annotations

import argparse
from typing import Any

from registrum.cli._common import add_store, open_client
from registrum.cli._output import Column, When, add_format, emit


def _webhooks_add(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        hook = client.add_webhook(
            args.url, args.event, project=args.project, model=args.model, secret=args.secret
        )
    scope = f"model {hook.model}" if hook.model else f"project {hook.project}"
    print(f"webhook {hook.id}: {', '.join(hook.events)} of {scope} -> {hook.url}")
    print(f"secret (shown this once; receivers check signatures with it): {hook.secret}")
    return 0


def _webhooks_list(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        hooks = client.webhooks(project=args.project, model=args.model)
    columns = [
        Column("id", lambda h: h.id),
        Column("scope", lambda h: f"model:{h.model}" if h.model else f"project:{h.project}"),
        Column("events", lambda h: ",".join(h.events)),
        Column("url", lambda h: h.url),
    ]
    emit(args, hooks, columns, empty="no webhooks", as_json=_without_secret)
    return 0


def _without_secret(hook: Any) -> dict[str, Any]:
    return {k: x for k, x in hook.to_dict().items() if k != "secret"}


def _webhooks_remove(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.remove_webhook(args.webhook_id)
    print(f"removed webhook {args.webhook_id}")
    return 0


def _webhooks_deliveries(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        deliveries = client.webhook_deliveries(
            args.webhook_id, status=args.status, limit=args.limit
        )
    columns = [
        Column("id", lambda d: d.id),
        Column("event", lambda d: d.event_id),
        Column("action", lambda d: d.action),
        Column("status", lambda d: d.status),
        Column("attempts", lambda d: d.attempts),
        Column(
            "last_attempt", lambda d: None if d.last_attempt_at is None else When(d.last_attempt_at)
        ),
        Column(
            "outcome",
            lambda d: d.last_error or (f"HTTP {d.last_status}" if d.last_status else None),
        ),
    ]
    emit(args, deliveries, columns, empty="no deliveries")
    return 0


def add_commands(commands: Any) -> None:
    """Adds `webhooks add|list|remove|deliveries` to the `registrum` command."""
    webhooks = commands.add_parser(
        "webhooks", help="signed HTTP callbacks on a project's or a model's events"
    ).add_subparsers(dest="webhooks_command", required=True)
    add = webhooks.add_parser("add", help="subscribe a URL; prints its secret once")
    add.add_argument("url", help="http(s) URL that receives the POSTs")
    add.add_argument(
        "--event",
        action="append",
        required=True,
        help="run.finished, model_version.created, alias.moved, approval.requested or "
        "approval.decided (repeat for several)",
    )
    scope = add.add_mutually_exclusive_group(required=True)
    scope.add_argument("--project", default=None, help="every matching event of a project")
    scope.add_argument("--model", default=None, help="the matching events of one model")
    add.add_argument("--secret", default=None, help="signing secret (default: generated)")
    add_store(add)
    add.set_defaults(handler=_webhooks_add)
    hooks_list = webhooks.add_parser("list", help="webhooks, of a project or a model")
    hooks_list.add_argument("--project", default=None)
    hooks_list.add_argument("--model", default=None)
    add_format(hooks_list)
    add_store(hooks_list)
    hooks_list.set_defaults(handler=_webhooks_list)
    remove = webhooks.add_parser("remove", help="remove a webhook and its delivery log")
    remove.add_argument("webhook_id")
    add_store(remove)
    remove.set_defaults(handler=_webhooks_remove)
    log = webhooks.add_parser("deliveries", help="a webhook's delivery log, newest first")
    log.add_argument("webhook_id")
    log.add_argument("--status", choices=["pending", "delivered", "failed"], default=None)
    log.add_argument("--limit", type=int, default=50)
    add_format(log)
    add_store(log)
    log.set_defaults(handler=_webhooks_deliveries)
