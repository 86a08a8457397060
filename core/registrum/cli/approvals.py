"""Promotion with approval: `registrum policy`, `registrum requests` and
`registrum models aliases-history`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from registrum.cli._common import leaf, open_client, when
from registrum.cli._output import Column, When, add_format, emit, emit_one
from registrum.entities import ROLES, Policy, PromotionRequest


def _policy_set(args: argparse.Namespace) -> int:
    gates = [json.loads(g) for g in args.gate]
    if args.require_tag:
        gates.append({"type": "tags", "tags": args.require_tag})
    with open_client(args) as client:
        policy = client.set_policy(
            args.name,
            protected=args.protect,
            approver_role=args.approver_role,
            approvals_needed=args.approvals,
            allow_self_approval=args.allow_self_approval,
            gates=gates,
        )
    _print_policy(policy)
    return 0


def _policy_show(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        policy = client.policy(args.name)
    emit_one(args, policy.to_dict(), lambda: _print_policy(policy))
    return 0


def _print_policy(policy: Policy) -> None:
    protected = ", ".join(policy.protected) or "(none)"
    print(f"model {policy.model}: protected aliases {protected}")
    self_ok = "may" if policy.allow_self_approval else "may not"
    print(
        f"approvals: {policy.approvals_needed} by {policy.approver_role} or higher; "
        f"requesters {self_ok} approve their own request"
    )
    for gate in policy.gates:
        print(f"gate: {json.dumps(gate, sort_keys=True)}")


def _requests_open(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        request = client.request_promotion(
            args.name, args.alias, args.version, comment=args.comment
        )
    _print_request(request)
    return 0


def _requests_list(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        requests = client.requests(args.name, state=args.state)
    columns = [
        Column("id", lambda r: r.id),
        Column("alias", lambda r: r.alias),
        Column("from", lambda r: r.from_version),
        Column("to", lambda r: r.version),
        Column("state", lambda r: r.state),
        Column("approvals", lambda r: r.approvals),
        Column("needed", lambda r: r.approvals_needed),
        Column("by", lambda r: r.requested_by),
        Column("opened", lambda r: When(r.created_at)),
    ]
    emit(args, requests, columns, empty=f"no requests for {args.name}")
    return 0


def _requests_show(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        request = client.request(args.id)
    emit_one(args, request.to_dict(), lambda: _print_request(request))
    return 0


def _requests_decide(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        act = {"approve": client.approve, "reject": client.reject, "cancel": client.cancel_request}
        _print_request(act[args.action](args.id, comment=args.comment))
    return 0


def _print_request(r: PromotionRequest) -> None:
    print(
        f"request {r.id}: {r.model}@{r.alias} {r.from_version or '(unset)'} -> "
        f"{r.version}, {r.state}, {r.approvals}/{r.approvals_needed} approvals"
    )
    print(f"opened by {r.requested_by} {when(r.created_at)}: {r.comment or ''}")
    for vote in r.votes:
        print(f"  {vote.decision} by {vote.voter} {when(vote.at)}: {vote.comment or ''}")
    if r.decided_by:
        print(f"{r.state} by {r.decided_by} {when(r.decided_at)}")
    for g in r.gates:
        print(f"  gate {'pass' if g['passed'] else 'FAIL'}: {g['detail']}")


def _aliases_history(args: argparse.Namespace) -> int:
    with open_client(args, read=True) as client:
        moves = client.alias_history(args.name, args.alias)
    columns = [
        Column("when", lambda m: When(m.at)),
        Column("alias", lambda m: m.alias),
        Column("from", lambda m: m.from_version),
        Column("to", lambda m: m.to_version),
        Column("by", lambda m: m.actor),
        Column("request", lambda m: m.request_id),
    ]
    emit(args, moves, columns, empty=f"no alias of {args.name} has moved yet")
    return 0


def add_commands(commands: Any, models: Any) -> None:
    """Adds `policy`, `requests` and `models aliases-history` to the `registrum` command."""

    policy = commands.add_parser(
        "policy", help="a model's protected aliases, approvers and gates"
    ).add_subparsers(dest="action", required=True)
    set_ = leaf(policy, "set", "replace a model's policy (project admin)", _policy_set)
    set_.add_argument("name")
    set_.add_argument("--protect", action="append", default=[], help="alias (repeat)")
    set_.add_argument("--approver-role", default="reviewer", choices=ROLES[1:])
    set_.add_argument("--approvals", type=int, default=1, help="approvals needed (default 1)")
    set_.add_argument("--allow-self-approval", action="store_true")
    set_.add_argument(
        "--gate",
        action="append",
        default=[],
        help='a gate as JSON, e.g. \'{"dataset": "test", "metric": "acc"}\' (repeat)',
    )
    set_.add_argument("--require-tag", action="append", default=[], help="tag key (repeat)")
    shown = leaf(policy, "show", "a model's policy", _policy_show)
    shown.add_argument("name")
    add_format(shown)

    requests = commands.add_parser(
        "requests", help="open, list and decide promotion requests"
    ).add_subparsers(dest="action", required=True)
    opened = leaf(requests, "open", "request moving a protected alias", _requests_open)
    opened.add_argument("name")
    opened.add_argument("alias")
    opened.add_argument("version", type=int)
    opened.add_argument("--comment", default=None)
    listed = leaf(requests, "list", "a model's requests, newest first", _requests_list)
    listed.add_argument("name")
    listed.add_argument(
        "--state", default=None, help="open, approved, rejected, cancelled or stale"
    )
    add_format(listed)
    one = leaf(requests, "show", "one request: votes and gates", _requests_show)
    one.add_argument("id", type=int)
    add_format(one)
    for action, help in (
        ("approve", "approve a request; the last approval needed moves the alias"),
        ("reject", "reject a request"),
        ("cancel", "withdraw a request (its requester or a project admin)"),
    ):
        decide = leaf(requests, action, help, _requests_decide)
        decide.add_argument("id", type=int)
        decide.add_argument("--comment", default=None)

    history = leaf(models, "aliases-history", "every move of a model's aliases", _aliases_history)
    history.add_argument("name")
    history.add_argument("--alias", default=None)
    add_format(history)
