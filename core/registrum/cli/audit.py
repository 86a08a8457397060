"""`registrum audit list|verify|anchor`: the audit trail, every change and who made it, and a
check of its hash chain against signed heads kept elsewhere."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from registrum.cli._common import add_store, open_client
from registrum.cli._output import Column, When, add_format, emit
from registrum.entities import AUDIT_NOISE
from registrum.errors import InvalidArgument
from registrum.validation import duration, instant


def _moment(text: str | None, what: str) -> float | None:
    """A time given as ISO 8601, Unix seconds, or a duration ago (`2h`, `7d`)."""
    if text is None:
        return None
    try:
        return time.time() - duration(text, what)
    except InvalidArgument:
        pass
    try:
        return instant(text, what)
    except InvalidArgument:
        raise InvalidArgument(
            f"{what} {text!r} is neither a time (2026-11-01T00:00:00Z, Unix seconds) nor a "
            "duration ago (30m, 12h, 7d)"
        ) from None


def _audit_list(args: argparse.Namespace) -> int:
    entity_type, _, entity_id = (args.entity or "").partition(":")
    since, until = _moment(args.since, "--since"), _moment(args.until, "--until")
    quiet = () if args.all or args.event_action else AUDIT_NOISE
    with open_client(args, read=True) as client:
        events = client.audit(
            project=args.project,
            action=args.event_action,
            actor=args.actor,
            entity_type=entity_type or None,
            entity_id=entity_id or None,
            since=since,
            until=until,
            limit=args.limit,
            exclude_actions=quiet,
        )
    columns = [
        Column("id", lambda e: e.id),
        Column("at", lambda e: When(e.at)),
        Column("actor", lambda e: e.actor),
        Column("action", lambda e: e.action),
        Column("entity", lambda e: f"{e.entity_type}:{e.entity_id}"),
        Column("project", lambda e: e.project),
    ]
    hidden = "" if not quiet else f" ({', '.join(quiet)} left out: --all shows them)"
    emit(args, events, columns, empty=f"no audit events match{hidden}")
    return 0


def _read_anchors(paths: list[str]) -> list[dict[str, Any]]:
    """The anchors in each file: one JSON object (as `audit anchor` prints it), a JSON list of
    them, or one a line (an anchors file); each labelled with where it came from."""
    anchors: list[dict[str, Any]] = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise InvalidArgument(f"cannot read anchor file {path}: {exc.strerror}") from None
        try:
            parsed = json.loads(text)
            found = parsed if isinstance(parsed, list) else [parsed]
            labels = (
                [path]
                if not isinstance(parsed, list)
                else [f"{path}[{i}]" for i in range(len(found))]
            )
        except ValueError:
            lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
            try:
                found = [json.loads(line) for _, line in lines]
            except ValueError:
                raise InvalidArgument(
                    f"{path} holds no anchor: expected the JSON that `registrum audit anchor` "
                    "prints, a list of them, or one a line"
                ) from None
            labels = [f"{path}:{n}" for n, _ in lines]
        for label, anchor in zip(labels, found, strict=True):
            anchors.append({**anchor, "source": label} if isinstance(anchor, dict) else anchor)
    return anchors


def _audit_verify(args: argparse.Namespace) -> int:
    anchors = _read_anchors(args.anchor) if args.anchor else None
    with open_client(args, read=True) as client:
        result = client.verify_audit(anchors)
    if result["ok"]:
        print(
            f"audit trail intact: {result['events']} events, every hash and link checks out, "
            f"and the chain extends all {result['anchors']} anchor(s) checked"
        )
        head = result.get("anchor")
        if head:
            print(f"head signed: event {head['event']}, hash {head['hash']}, {head['time']}")
        return 0
    print(f"audit trail BROKEN ({result['events']} events):")
    for problem in result["problems"]:
        if "anchor" in problem:
            print(f"  {problem['problem']}")
        else:
            print(f"  event {problem['id']}: {problem['problem']}")
    return 1


def _audit_anchor(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        anchor = client.audit_anchor()
    print(json.dumps(anchor, indent=2))
    return 0


def add_commands(commands: Any) -> None:
    """Adds `audit list|verify|anchor` to the `registrum` command."""
    audit = commands.add_parser(
        "audit", help="the audit trail: every change, who made it, and a check of its chain"
    ).add_subparsers(dest="audit_command", required=True)
    audit_list = audit.add_parser("list", help="events, newest first")
    audit_list.add_argument("--project", default=None)
    audit_list.add_argument(
        "--action", dest="event_action", default=None, help='e.g. "alias.moved"'
    )
    audit_list.add_argument("--actor", default=None)
    audit_list.add_argument(
        "--entity", default=None, metavar="TYPE[:ID]", help="e.g. run:ID, model:NAME, project"
    )
    audit_list.add_argument(
        "--since", default=None, metavar="TIME", help="ISO 8601, Unix seconds, or ago: 12h, 7d"
    )
    audit_list.add_argument("--until", default=None, metavar="TIME", help="as --since")
    audit_list.add_argument(
        "--all",
        action="store_true",
        help="also the events that come by the thousand (metrics.logged, blob.stored), "
        "left out by default",
    )
    audit_list.add_argument("--limit", type=int, default=50)
    add_format(audit_list)
    add_store(audit_list)
    audit_list.set_defaults(handler=_audit_list)
    verify = audit.add_parser(
        "verify", help="check every event's hash and link, and that the chain extends anchors"
    )
    verify.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="FILE",
        help="a signed head saved from `registrum audit anchor` (repeat for several); "
        "each is checked besides the anchors recorded beside the audit key",
    )
    add_store(verify)
    verify.set_defaults(handler=_audit_verify)
    anchor = audit.add_parser(
        "anchor", help="print the chain's head signed with the audit key, to keep off-site"
    )
    add_store(anchor)
    anchor.set_defaults(handler=_audit_anchor)
