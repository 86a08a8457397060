"""`registrum users|tokens|members`: users, their API tokens and their roles on projects."""

from __future__ import annotations

import argparse
import time
from typing import Any

from registrum.cli._common import leaf, open_client, when
from registrum.cli._output import Column, When, add_format, emit
from registrum.entities import ROLES


def _users_add(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        user = client.add_user(args.name, server_admin=args.server_admin, service=args.service)
    kind = "server admin" if user.server_admin else "service account" if user.service else "user"
    print(f"added {kind} {user.name}; make a token: registrum tokens create --user {user.name}")
    return 0


def _users_list(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        users = client.users()
    columns = [
        Column("name", lambda u: u.name),
        Column("server_admin", lambda u: "yes" if u.server_admin else "no"),
        Column("service", lambda u: "yes" if u.service else "no"),
        Column("disabled", lambda u: "yes" if u.disabled else "no"),
        Column("email", lambda u: u.email),
        Column("created", lambda u: When(u.created_at)),
    ]
    emit(args, users, columns)
    return 0


def _users_disable(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.disable_user(args.name)
    print(f"disabled {args.name}: their tokens no longer work")
    return 0


def _tokens_create(args: argparse.Namespace) -> int:
    expires = None if args.expires_in_days is None else time.time() + args.expires_in_days * 86400
    with open_client(args) as client:
        token = client.create_token(
            name=args.name, user=args.user, expires_at=expires, project=args.project, role=args.role
        )
    until = f", expires {when(token.expires_at)}" if token.expires_at else ""
    scope = f", at most {token.role} of {token.project}" if token.project else ""
    print(f"token {token.id} ({token.name}) for {token.user}{scope}{until}; shown this once:")
    print(token.token)
    return 0


def _tokens_list(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        tokens = client.tokens(user=args.user)
    stamp = time.time()

    def state(k: Any) -> str:
        if k.revoked_at is not None:
            return "revoked"
        return "expired" if k.expires_at is not None and k.expires_at <= stamp else "active"

    columns = [
        Column("id", lambda k: k.id),
        Column("user", lambda k: k.user),
        Column("name", lambda k: k.name),
        Column("prefix", lambda k: k.prefix),
        Column("scope", lambda k: f"{k.role} of {k.project}" if k.project else "all"),
        Column("expires", lambda k: None if k.expires_at is None else When(k.expires_at)),
        Column("state", state),
        Column("last_used", lambda k: None if k.last_used_at is None else When(k.last_used_at)),
    ]
    emit(args, tokens, columns, empty="no tokens")
    return 0


def _tokens_revoke(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.revoke_token(args.id)
    print(f"revoked token {args.id}")
    return 0


def _members_add(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        member = client.add_member(args.project, args.user, args.role)
    print(f"{member.user} is {member.role} of {member.project}")
    return 0


def _members_list(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        members = client.members(args.project)
    columns = [
        Column("user", lambda m: m.user),
        Column("role", lambda m: m.role),
        Column("given_by", lambda m: m.source or "hand"),
        Column("since", lambda m: When(m.created_at)),
    ]
    emit(args, members, columns, empty=f"project {args.project} has no members")
    return 0


def _members_remove(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.remove_member(args.project, args.user)
    print(f"removed {args.user} from {args.project}")
    return 0


def add_commands(commands: Any) -> None:
    """Adds `users`, `tokens` and `members` to the `registrum` command."""
    users = commands.add_parser(
        "users", help="add, list and disable users (a server admin)"
    ).add_subparsers(dest="action", required=True)
    add = leaf(users, "add", "add a user", _users_add)
    add.add_argument("name")
    add.add_argument("--server-admin", action="store_true", help="may do everything")
    add.add_argument(
        "--service",
        action="store_true",
        help="a service account, for machines (CI jobs, deployments): it never signs in "
        "interactively, and only server admins make its tokens",
    )
    add_format(leaf(users, "list", "list users", _users_list))
    leaf(
        users, "disable", "disable a user: their tokens stop working", _users_disable
    ).add_argument("name")

    tokens = commands.add_parser(
        "tokens", help="create, list and revoke API tokens"
    ).add_subparsers(dest="action", required=True)
    create = leaf(tokens, "create", "a new token, printed once", _tokens_create)
    create.add_argument("--user", default=None, help="whose token (default: yours)")
    create.add_argument("--name", default="default", help="what it is for, e.g. ci")
    create.add_argument("--expires-in-days", type=float, default=None, help="default: never")
    create.add_argument(
        "--project", default=None, help="scope: the one project the token may act on"
    )
    create.add_argument(
        "--role",
        default=None,
        choices=ROLES,
        help="scope: the most the token may do on --project, whatever its user may",
    )
    token_list = leaf(tokens, "list", "tokens, without their secrets", _tokens_list)
    token_list.add_argument("--user", default=None, help="whose tokens (default: yours)")
    add_format(token_list)
    leaf(tokens, "revoke", "revoke a token by id", _tokens_revoke).add_argument("id", type=int)

    members = commands.add_parser("members", help="give users roles on a project").add_subparsers(
        dest="action", required=True
    )
    member_add = leaf(members, "add", "give a user a role, or change it", _members_add)
    member_add.add_argument("project")
    member_add.add_argument("user")
    member_add.add_argument("role", choices=ROLES)
    member_list = leaf(members, "list", "a project's members", _members_list)
    member_list.add_argument("project")
    add_format(member_list)
    remove = leaf(members, "remove", "take a user's role away", _members_remove)
    remove.add_argument("project")
    remove.add_argument("user")
